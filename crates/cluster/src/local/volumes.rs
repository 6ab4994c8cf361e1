//! A fake volume provisioner for the `local` provider, beside its fake
//! kubelet: a default StorageClass, and a PersistentVolume for every claim
//! of that class (or of none), which the real controller-manager then binds.
//!
//! kind and k3d ship the same shape (a default `standard` or `local-path`
//! class with a host-path provisioner), so charts whose StatefulSets have
//! `volumeClaimTemplates` behave as they would there. Nothing is stored: the
//! volumes are host paths that no container ever mounts. A volume whose claim
//! is gone (Released, or Failed because no plugin can delete a host path) is
//! deleted, as a `Delete` reclaim policy promises.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;

/// The default StorageClass of a `local` cluster, named as kind's is.
pub const STORAGE_CLASS: &str = "standard";
/// Its provisioner: claims of other classes are left to whoever serves them.
pub const PROVISIONER: &str = "local.rekube.dev/fake-hostpath";
/// The label on every volume this provisioner made.
const PROVISIONED_BY: &str = "local.rekube.dev/provisioned-by";
const MANAGER: &str = "rekube-fake-provisioner";

/// Makes [`STORAGE_CLASS`] the cluster's default class (once; a class the
/// user changed is left as it is).
pub async fn ensure_storage_class(client: &Client) -> Result<(), kube::Error> {
    let classes: Api<StorageClass> = Api::all(client.clone());
    let class: StorageClass = serde_json::from_value(json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }))
    .expect("static storage class");
    match classes.create(&PostParams { field_manager: Some(MANAGER.into()), ..Default::default() }, &class).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Provisions claims and reclaims volumes until the watches end.
pub async fn serve_volumes(client: Client) {
    tokio::join!(serve_claims(client.clone()), reclaim_volumes(client));
}

async fn serve_claims(client: Client) {
    let all: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let stream = watcher(all, watcher::Config::default()).default_backoff().applied_objects();
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        let Ok(claim) = item else { continue };
        if let Some(volume) = volume_for(&claim) {
            let api: Api<PersistentVolume> = Api::all(client.clone());
            let params = PostParams { field_manager: Some(MANAGER.into()), ..Default::default() };
            match api.create(&params, &volume).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => tracing::debug!("fake provisioner: volume for {:?}: {e}", claim.metadata.name),
            }
        }
    }
}

/// The volume that satisfies `claim`, when it is pending and of our class
/// (or of none); `None` when it is not ours to provision.
fn volume_for(claim: &PersistentVolumeClaim) -> Option<PersistentVolume> {
    let (name, ns, uid) =
        (claim.metadata.name.as_ref()?, claim.metadata.namespace.as_ref()?, claim.metadata.uid.as_ref()?);
    let spec = claim.spec.as_ref()?;
    let pending = claim.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending") == "Pending";
    let class = spec.storage_class_name.as_deref().unwrap_or_default();
    if !pending || spec.volume_name.is_some() || claim.metadata.deletion_timestamp.is_some() {
        return None;
    }
    if !class.is_empty() && class != STORAGE_CLASS {
        return None;
    }
    if spec.selector.is_some() || spec.data_source.is_some() {
        return None; // asks for a particular volume: not ours to invent
    }
    let size = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map_or_else(|| "1Gi".to_string(), |q| q.0.clone());
    let modes = spec.access_modes.clone().unwrap_or_else(|| vec!["ReadWriteOnce".into()]);
    let volume = format!("pvc-{uid}");
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": volume, "labels": {PROVISIONED_BY: "rekube"},
                     "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": modes,
            "volumeMode": spec.volume_mode.clone().unwrap_or_else(|| "Filesystem".into()),
            "storageClassName": class,
            "persistentVolumeReclaimPolicy": "Delete",
            "hostPath": {"path": format!("/var/lib/rekube-local/{volume}"), "type": ""},
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                         "namespace": ns, "name": name, "uid": uid},
        },
    }))
    .ok()
}

async fn reclaim_volumes(client: Client) {
    let api: Api<PersistentVolume> = Api::all(client);
    let config = watcher::Config::default().labels(&format!("{PROVISIONED_BY}=rekube"));
    let stream = watcher(api.clone(), config).default_backoff().applied_objects();
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        let Ok(volume) = item else { continue };
        let phase = volume.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default();
        let Some(name) = volume.metadata.name.as_deref() else { continue };
        if matches!(phase, "Released" | "Failed")
            && volume.metadata.deletion_timestamp.is_none()
            && let Err(e) = api.delete(name, &DeleteParams::default()).await
        {
            tracing::debug!("fake provisioner: reclaim {name}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(class: Option<&str>, phase: &str) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "data-vault-0", "namespace": "vault", "uid": "u-1"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}},
                     "storageClassName": class},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn pending_claims_of_our_class_or_none_get_a_volume_bound_to_them() {
        let v = volume_for(&claim(Some(STORAGE_CLASS), "Pending")).expect("provisioned");
        let spec = v.spec.unwrap();
        assert_eq!(spec.capacity.unwrap()["storage"].0, "10Gi");
        assert_eq!(spec.claim_ref.as_ref().unwrap().uid.as_deref(), Some("u-1"));
        assert_eq!(spec.storage_class_name.as_deref(), Some(STORAGE_CLASS));
        assert!(volume_for(&claim(None, "Pending")).is_some(), "a claim of no class gets a volume of no class");
    }

    #[test]
    fn bound_claims_and_other_classes_are_left_alone() {
        assert!(volume_for(&claim(Some(STORAGE_CLASS), "Bound")).is_none());
        assert!(volume_for(&claim(Some("gp3"), "Pending")).is_none(), "another provisioner's class");
    }
}
