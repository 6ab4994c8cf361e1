//! Preflight: is every object the platform renders served by the new
//! color's API server? Checked twice: offline against the APIs Kubernetes
//! removed (before the new cluster exists), then against the new cluster's
//! own discovery (before anything is applied to it). A custom resource
//! counts as served when a CRD of the platform serves its version.

use std::collections::BTreeSet;

use rekube_render::Rendered;
use serde_json::Value;

/// An object the new color would refuse.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unserved {
    /// The component that renders it.
    pub component: String,
    /// `policy/v1beta1`.
    pub api_version: String,
    /// `PodDisruptionBudget`.
    pub kind: String,
    /// `namespace/name` or `name`.
    pub name: String,
    /// Where it came from: `deploy/app/pdb.yaml:1`.
    pub origin: String,
    /// What to use instead, when Kubernetes removed it.
    pub hint: Option<String>,
}

impl std::fmt::Display for Unserved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} {} `{}` ({})", self.component, self.api_version, self.kind, self.name, self.origin)?;
        if let Some(h) = &self.hint {
            write!(f, ": {h}")?;
        }
        Ok(())
    }
}

/// APIs Kubernetes removed: (apiVersion, kind, removed in minor, use instead).
const REMOVED: &[(&str, &str, u32, &str)] = &[
    ("extensions/v1beta1", "Ingress", 22, "networking.k8s.io/v1"),
    ("networking.k8s.io/v1beta1", "Ingress", 22, "networking.k8s.io/v1"),
    ("networking.k8s.io/v1beta1", "IngressClass", 22, "networking.k8s.io/v1"),
    ("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition", 22, "apiextensions.k8s.io/v1"),
    ("apiregistration.k8s.io/v1beta1", "APIService", 22, "apiregistration.k8s.io/v1"),
    ("rbac.authorization.k8s.io/v1beta1", "ClusterRole", 22, "rbac.authorization.k8s.io/v1"),
    ("rbac.authorization.k8s.io/v1beta1", "ClusterRoleBinding", 22, "rbac.authorization.k8s.io/v1"),
    ("rbac.authorization.k8s.io/v1beta1", "Role", 22, "rbac.authorization.k8s.io/v1"),
    ("rbac.authorization.k8s.io/v1beta1", "RoleBinding", 22, "rbac.authorization.k8s.io/v1"),
    ("admissionregistration.k8s.io/v1beta1", "MutatingWebhookConfiguration", 22, "admissionregistration.k8s.io/v1"),
    ("admissionregistration.k8s.io/v1beta1", "ValidatingWebhookConfiguration", 22, "admissionregistration.k8s.io/v1"),
    ("scheduling.k8s.io/v1beta1", "PriorityClass", 22, "scheduling.k8s.io/v1"),
    ("storage.k8s.io/v1beta1", "CSIDriver", 22, "storage.k8s.io/v1"),
    ("storage.k8s.io/v1beta1", "CSINode", 22, "storage.k8s.io/v1"),
    ("storage.k8s.io/v1beta1", "StorageClass", 22, "storage.k8s.io/v1"),
    ("storage.k8s.io/v1beta1", "VolumeAttachment", 22, "storage.k8s.io/v1"),
    ("coordination.k8s.io/v1beta1", "Lease", 22, "coordination.k8s.io/v1"),
    ("certificates.k8s.io/v1beta1", "CertificateSigningRequest", 22, "certificates.k8s.io/v1"),
    ("batch/v1beta1", "CronJob", 25, "batch/v1"),
    ("discovery.k8s.io/v1beta1", "EndpointSlice", 25, "discovery.k8s.io/v1"),
    ("events.k8s.io/v1beta1", "Event", 25, "events.k8s.io/v1"),
    ("policy/v1beta1", "PodDisruptionBudget", 25, "policy/v1"),
    (
        "policy/v1beta1",
        "PodSecurityPolicy",
        25,
        "Pod Security Admission (namespace labels); there is no replacement API",
    ),
    ("node.k8s.io/v1beta1", "RuntimeClass", 25, "node.k8s.io/v1"),
    ("autoscaling/v2beta1", "HorizontalPodAutoscaler", 25, "autoscaling/v2"),
    ("autoscaling/v2beta2", "HorizontalPodAutoscaler", 26, "autoscaling/v2"),
    ("flowcontrol.apiserver.k8s.io/v1beta1", "FlowSchema", 26, "flowcontrol.apiserver.k8s.io/v1"),
    ("flowcontrol.apiserver.k8s.io/v1beta1", "PriorityLevelConfiguration", 26, "flowcontrol.apiserver.k8s.io/v1"),
    ("storage.k8s.io/v1beta1", "CSIStorageCapacity", 27, "storage.k8s.io/v1"),
    ("flowcontrol.apiserver.k8s.io/v1beta2", "FlowSchema", 29, "flowcontrol.apiserver.k8s.io/v1"),
    ("flowcontrol.apiserver.k8s.io/v1beta2", "PriorityLevelConfiguration", 29, "flowcontrol.apiserver.k8s.io/v1"),
    ("flowcontrol.apiserver.k8s.io/v1beta3", "FlowSchema", 32, "flowcontrol.apiserver.k8s.io/v1"),
    ("flowcontrol.apiserver.k8s.io/v1beta3", "PriorityLevelConfiguration", 32, "flowcontrol.apiserver.k8s.io/v1"),
];

/// The minor of `1.34`, `v1.34.2`, `1.34.0-rc.1`.
pub fn minor(version: &str) -> Option<u32> {
    version.trim_start_matches('v').split('.').nth(1)?.split(['-', '+']).next()?.parse().ok()
}

fn removal(api_version: &str, kind: &str) -> Option<(u32, &'static str)> {
    REMOVED.iter().find(|(a, k, _, _)| *a == api_version && *k == kind).map(|(_, _, m, u)| (*m, *u))
}

fn hint_for(api_version: &str, kind: &str) -> Option<String> {
    removal(api_version, kind).map(|(m, instead)| format!("removed in Kubernetes 1.{m}; use {instead}"))
}

/// An object's `apiVersion` and `kind`.
fn api_kind(v: &Value) -> (&str, &str) {
    (v["apiVersion"].as_str().unwrap_or_default(), v["kind"].as_str().unwrap_or_default())
}

fn unserved(component: &str, v: &Value, origin: String) -> Unserved {
    let (api_version, kind) = api_kind(v);
    let (api_version, kind) = (api_version.to_string(), kind.to_string());
    let name = v["metadata"]["name"].as_str().unwrap_or_default();
    let name = match v["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    };
    let hint = hint_for(&api_version, &kind);
    Unserved { component: component.to_string(), api_version, kind, name, origin, hint }
}

fn origin(o: &rekube_render::Object) -> String {
    format!("{}:{}", o.origin.file.display(), o.origin.line)
}

/// Offline: the objects that use an API Kubernetes `version` no longer serves.
pub fn removed_in(rendered: &Rendered, version: &str) -> Vec<Unserved> {
    let Some(target) = minor(version) else { return Vec::new() };
    rendered
        .objects()
        .filter(|(_, o)| {
            let (a, k) = api_kind(&o.value);
            removal(a, k).is_some_and(|(m, _)| target >= m)
        })
        .map(|(c, o)| unserved(c, &o.value, origin(o)))
        .collect()
}

/// Against the new cluster: `served` is its discovery as
/// [`rekube_kube::api_versions`] lists it (`group/version/Kind` and
/// `group/version`); CRDs of the platform add what they serve.
pub fn not_served(rendered: &Rendered, served: &[String]) -> Vec<Unserved> {
    let mut ok: BTreeSet<String> = served.iter().cloned().collect();
    for (_, o) in rendered.objects() {
        let v = &o.value;
        if v["kind"] != "CustomResourceDefinition" {
            continue;
        }
        let (group, kind) = (v["spec"]["group"].as_str().unwrap_or_default(), v["spec"]["names"]["kind"].as_str());
        for ver in v["spec"]["versions"].as_array().into_iter().flatten() {
            if ver["served"].as_bool() != Some(false)
                && let (Some(name), Some(kind)) = (ver["name"].as_str(), kind)
            {
                ok.insert(format!("{group}/{name}/{kind}"));
            }
        }
    }
    rendered
        .objects()
        .filter(|(_, o)| {
            let (a, k) = api_kind(&o.value);
            !ok.contains(&format!("{a}/{k}"))
        })
        .map(|(c, o)| {
            let mut u = unserved(c, &o.value, origin(o));
            if u.hint.is_none() {
                u.hint =
                    Some("no CRD of the platform serves it: if a CRD made by hand does, put it in a component".into());
            }
            u
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rekube_render::{ComponentOutput, Object, Origin};
    use serde_json::json;

    fn rendered(objects: Vec<Value>) -> Rendered {
        let objects = objects
            .into_iter()
            .enumerate()
            .map(|(i, value)| Object {
                value,
                origin: Origin { file: "deploy/app/all.yaml".into(), line: i as u64 + 1 },
            })
            .collect();
        Rendered {
            components: vec![ComponentOutput {
                name: "app".into(),
                namespace: None,
                objects,
                hooks: vec![],
                cached: false,
            }],
            warnings: vec![],
        }
    }

    fn pdb(api: &str) -> Value {
        json!({"apiVersion": api, "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "app"}})
    }

    #[test]
    fn a_removed_api_is_named_with_its_replacement_only_from_the_version_that_removed_it() {
        let r = rendered(vec![pdb("policy/v1beta1"), pdb("policy/v1")]);
        assert!(removed_in(&r, "1.24").is_empty());
        let found = removed_in(&r, "v1.34.2");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "app: policy/v1beta1 PodDisruptionBudget `app/web` (deploy/app/all.yaml:1): \
             removed in Kubernetes 1.25; use policy/v1"
        );
    }

    #[test]
    fn discovery_and_the_platforms_own_crds_decide_what_is_served() {
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "names": {"kind": "Widget"},
                     "versions": [{"name": "v1", "served": true}, {"name": "v1alpha1", "served": false}]}});
        let w = |v: &str| json!({"apiVersion": v, "kind": "Widget", "metadata": {"name": "w"}});
        let r = rendered(vec![crd, w("example.com/v1"), w("example.com/v1alpha1"), pdb("policy/v1")]);
        let served = ["apiextensions.k8s.io/v1/CustomResourceDefinition".to_string(), "policy/v1".into()];
        let names: Vec<String> =
            not_served(&r, &served).iter().map(|u| format!("{} {}", u.api_version, u.kind)).collect();
        assert_eq!(names, ["example.com/v1alpha1 Widget", "policy/v1 PodDisruptionBudget"]);
    }

    #[test]
    fn minors_parse_from_every_spelling() {
        assert_eq!(minor("1.34"), Some(34));
        assert_eq!(minor("v1.20.2"), Some(20));
        assert_eq!(minor("1.31.0-rc.1"), Some(31));
        assert_eq!(minor("latest"), None);
    }
}
