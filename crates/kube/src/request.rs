//! Layer 1, requests: the typed handle for a resource and the retry policy.
//! The modules above never build an `Api` by hand for rekube's own
//! ConfigMaps and Namespaces. Retrying transient failures is the client's
//! request layer's job (`rekube_cluster::api`), for every request; writes
//! also go through [`retry`], which waits out a CRD that was just created.

use std::time::Duration;

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use kube::{Api, Client};
use rekube_plan::applyset::{FIELD_MANAGER, PARENT_NAMESPACE};
use serde_json::json;

use crate::KubeError;

/// A served kind: how to reach it, and whether it lives in namespaces.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// How to reach it.
    pub resource: ApiResource,
    /// Whether it lives in namespaces.
    pub namespaced: bool,
}

/// The handle for one resolved type: namespaced when the type is and a
/// namespace is given, cluster-wide otherwise.
pub(crate) fn api_for(client: &Client, r: &Resolved, ns: Option<&str>) -> Api<DynamicObject> {
    match (r.namespaced, ns) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &r.resource),
        _ => Api::all_with(client.clone(), &r.resource),
    }
}

/// `v1 ConfigMap`, the kind of ApplySet parents.
pub(crate) fn configmap_resource() -> ApiResource {
    ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&())
}

/// The ConfigMaps in `rekube-system`, where ApplySet parents live.
pub(crate) fn parents_api(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), PARENT_NAMESPACE, &configmap_resource())
}

/// Server-side apply as rekube's field manager, taking fields over.
pub(crate) fn apply_params(dry_run: bool) -> PatchParams {
    let p = PatchParams::apply(FIELD_MANAGER).force();
    if dry_run { p.dry_run() } else { p }
}

/// Whether an error is worth another try here: the 404 that a
/// just-established CRD's resource answers for a moment. Transport errors,
/// throttling, server errors and spurious conflicts are retried below, by
/// the client's request layer (`rekube_cluster::api`), for every request.
fn transient(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 && s.message.contains("could not find the requested resource"))
}

/// Whether the connection failed or was dropped (rather than the server answering).
pub fn dropped(e: &kube::Error) -> bool {
    matches!(e, kube::Error::HyperError(_) | kube::Error::Service(_))
}

/// Runs `f` up to 6 times while a CRD's resource is not served yet (backing off 0.2 s, 0.4 s, ...).
pub(crate) async fn retry<T, F, Fut>(mut f: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        match f().await {
            Err(e) if attempt < 6 && transient(&e) => tokio::time::sleep(Duration::from_millis(200 * attempt)).await,
            other => return other,
        }
    }
}

/// Creates `rekube-system`, where parents and leases live (idempotent).
pub async fn ensure_parent_namespace(client: &Client, dry_run: bool) -> Result<(), KubeError> {
    let api: Api<DynamicObject> =
        Api::all_with(client.clone(), &ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()));
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PARENT_NAMESPACE}});
    api.patch(PARENT_NAMESPACE, &apply_params(dry_run), &Patch::Apply(&ns))
        .await
        .map_err(KubeError::api("create namespace rekube-system"))?;
    Ok(())
}
