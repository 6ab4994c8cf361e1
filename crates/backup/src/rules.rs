//! Pure rules: in which order kinds are written (and so restored), which
//! objects are left out and why, and how an object is made fit for another
//! cluster.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

/// Restore order for built-in resources, after Velero's proven default
/// (CRDs and Namespaces first, storage, identities, configuration, then
/// workloads) with RBAC next to the ServiceAccounts that use it.
const PRIORITY: &[&str] = &[
    "customresourcedefinitions.apiextensions.k8s.io",
    "namespaces",
    "storageclasses.storage.k8s.io",
    "persistentvolumes",
    "persistentvolumeclaims",
    "serviceaccounts",
    "roles.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "clusterroles.rbac.authorization.k8s.io",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "secrets",
    "configmaps",
    "limitranges",
    "resourcequotas",
    "pods",
    "replicasets.apps",
    "endpoints",
    "services",
];

/// Resources never backed up: state the cluster makes and remakes itself.
pub const NEVER: &[&str] = &[
    "events",
    "events.events.k8s.io",
    "nodes",
    "leases.coordination.k8s.io",
    "componentstatuses",
    "certificatesigningrequests.certificates.k8s.io",
    "endpointslices.discovery.k8s.io",
    // 1.33+: the Service IP allocator's record of each cluster IP; a
    // restored Service gets a new IP and a new record.
    "ipaddresses.networking.k8s.io",
];

/// Namespaces every cluster has; their contents are backed up only when named.
pub const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease"];

/// `deployments.apps`, or `configmaps` for the core group.
pub fn resource_key(plural: &str, group: &str) -> String {
    if group.is_empty() { plural.to_string() } else { format!("{plural}.{group}") }
}

/// Restored after everything else: they route requests to Services (a
/// webhook, an aggregated API) that must exist and run first, or every
/// later create would fail calling a webhook that is not there yet.
const LAST: &[&str] = &[
    "mutatingwebhookconfigurations.admissionregistration.k8s.io",
    "validatingwebhookconfigurations.admissionregistration.k8s.io",
    "apiservices.apiregistration.k8s.io",
];

/// Sort key: listed built-ins in [`PRIORITY`] order, other built-ins by
/// name, custom resources after them (so their CRDs are Established by
/// then), and webhooks and API services last.
pub fn rank(key: &str, custom: bool) -> (u8, usize, String) {
    match PRIORITY.iter().position(|p| *p == key) {
        Some(i) => (0, i, key.to_string()),
        None if LAST.contains(&key) => (3, 0, key.to_string()),
        None if !custom => (1, 0, key.to_string()),
        None => (2, 0, key.to_string()),
    }
}

/// Kinds whose children their controller recreates from the template.
const RECREATING_OWNERS: &[&str] =
    &["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicationController"];

/// What the backup needs to know beyond the object itself.
#[derive(Debug, Default)]
pub struct Context {
    /// `namespace/name` of Services with a selector (their Endpoints are the
    /// endpoints controller's).
    pub selector_services: HashSet<String>,
}

/// The string at `pointer`, or `""`.
pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Why `obj` (of resource `key`) is left out, or `None` to keep it.
pub fn excluded(key: &str, obj: &Value, ctx: &Context) -> Option<&'static str> {
    let name = str_at(obj, "/metadata/name");
    let ns = str_at(obj, "/metadata/namespace");
    let owned_by_controller = obj.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|refs| {
        refs.iter().any(|r| {
            r.get("controller").and_then(Value::as_bool) == Some(true)
                && RECREATING_OWNERS.contains(&str_at(r, "/kind"))
                && matches!(str_at(r, "/apiVersion").split('/').next(), Some("apps" | "batch" | "v1" | "extensions"))
        })
    });
    if owned_by_controller {
        return Some("recreated by its controller (Deployment, ReplicaSet, Job...)");
    }
    let builtin = "built into Kubernetes";
    match key {
        "secrets" if str_at(obj, "/type") == "kubernetes.io/service-account-token" => {
            Some("service-account token (the token controller makes a new one)")
        }
        "configmaps" if name == "kube-root-ca.crt" => Some("published into every namespace by the cluster"),
        "serviceaccounts" if name == "default" && is_plain_default_sa(obj) => {
            Some("created in every namespace by the cluster")
        }
        "services" if ns == "default" && name == "kubernetes" => Some("the API server's own Service"),
        "endpoints"
            if (ns == "default" && name == "kubernetes") || ctx.selector_services.contains(&format!("{ns}/{name}")) =>
        {
            Some("maintained by the endpoints controller")
        }
        "namespaces" if name == "default" || SYSTEM_NAMESPACES.contains(&name) => Some("exists in every cluster"),
        "priorityclasses.scheduling.k8s.io" if name.starts_with("system-") => Some(builtin),
        "servicecidrs.networking.k8s.io" if name == "kubernetes" => Some(builtin),
        "apiservices.apiregistration.k8s.io"
            if obj.pointer("/metadata/labels/kube-aggregator.kubernetes.io~1automanaged").is_some() =>
        {
            Some(builtin)
        }
        _ if key.starts_with("flowschemas.") || key.starts_with("prioritylevelconfigurations.") => (APF_DEFAULTS
            .contains(&name)
            || str_at(obj, "/metadata/annotations/apf.kubernetes.io~1autoupdate-spec") == "true")
            .then_some(builtin),
        _ if ns.is_empty()
            && (name.starts_with("system:")
                || str_at(obj, "/metadata/labels/kubernetes.io~1bootstrapping") == "rbac-defaults") =>
        {
            Some(builtin)
        }
        _ => None,
    }
}

/// API priority and fairness objects the API server creates and keeps
/// (1.20 marks them with no annotation yet).
const APF_DEFAULTS: &[&str] = &[
    "exempt",
    "catch-all",
    "global-default",
    "system",
    "leader-election",
    "workload-high",
    "workload-low",
    "node-high",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-system-service-accounts",
    "service-accounts",
    "system-leader-election",
    "system-nodes",
    "workload-leader-election",
    "endpoint-controller",
    "probes",
];

/// A `default` ServiceAccount that carries nothing but its token.
fn is_plain_default_sa(obj: &Value) -> bool {
    let empty = |p: &str| {
        obj.pointer(p)
            .is_none_or(|v| v.as_object().is_some_and(|o| o.is_empty()) || v.as_array().is_some_and(|a| a.is_empty()))
    };
    empty("/imagePullSecrets") && empty("/metadata/labels") && empty("/metadata/annotations")
}

/// Fields the server sets; never restored.
const SERVER_FIELDS: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "managedFields",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// A `--namespace-map old:new` table.
pub type NamespaceMap = BTreeMap<String, String>;

/// `old:new` pairs (`--namespace-map`); both sides must be namespace names.
pub fn parse_namespace_map(pairs: &[String]) -> Result<NamespaceMap, crate::BackupError> {
    let mut map = NamespaceMap::new();
    for p in pairs {
        match p.split_once(':') {
            Some((old, new)) if rekube_spec::is_dns_label(old) && rekube_spec::is_dns_label(new) => {
                map.insert(old.to_string(), new.to_string());
            }
            _ => {
                return Err(crate::BackupError::refused(
                    format!("--namespace-map `{p}` is not OLD:NEW"),
                    "write it like `--namespace-map shop:shop-restored`; both are namespace names",
                ));
            }
        }
    }
    Ok(map)
}

/// Makes a backed-up object fit to create in another cluster: server fields
/// stripped, namespace mapped, status kept only when asked, and fields that
/// belong to the old cluster dropped (a Service's cluster IP, a Pod's node
/// and its old token volume). Owner references are left for the caller to
/// relink.
pub fn prepare(key: &str, obj: &mut Value, map: &NamespaceMap, keep_status: bool) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    for f in SERVER_FIELDS {
        meta.remove(*f);
    }
    if let Some(ns) = meta.get("namespace").and_then(Value::as_str).and_then(|ns| map.get(ns)) {
        meta.insert("namespace".into(), Value::String(ns.clone()));
    }
    if key == "namespaces" {
        if let Some(new) = meta.get("name").and_then(Value::as_str).and_then(|n| map.get(n)).cloned() {
            meta.insert("name".into(), Value::String(new.clone()));
            // The name label mirrors the name (1.21+ sets it; keep it true).
            if let Some(l) = meta.get_mut("labels").and_then(Value::as_object_mut)
                && l.contains_key("kubernetes.io/metadata.name")
            {
                l.insert("kubernetes.io/metadata.name".into(), Value::String(new));
            }
        }
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("finalizers");
        }
    }
    if !keep_status && let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
    match key {
        "services" => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
                && spec.get("clusterIP").and_then(Value::as_str) != Some("None")
            {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
        }
        "pods" => strip_pod_binding(obj),
        "jobs.batch" => strip_job_selector(obj),
        "serviceaccounts" => {
            let sa = str_at(obj, "/metadata/name").to_string();
            if let Some(secrets) = obj.get_mut("secrets").and_then(Value::as_array_mut) {
                secrets.retain(|s| !str_at(s, "/name").starts_with(&format!("{sa}-token-")));
            }
        }
        "rolebindings.rbac.authorization.k8s.io" | "clusterrolebindings.rbac.authorization.k8s.io" => {
            for s in obj.get_mut("subjects").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(new) = s.get("namespace").and_then(Value::as_str).and_then(|ns| map.get(ns)).cloned() {
                    s["namespace"] = Value::String(new);
                }
            }
        }
        _ => {}
    }
}

/// A Job's generated selector and Pod labels name the old Job's UID: the
/// server refuses them on create ("selector not auto-generated"), so they go
/// and the server generates new ones (as Velero does). A selector the user
/// chose (`manualSelector: true`) stays.
fn strip_job_selector(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else { return };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    spec.remove("selector");
    if let Some(labels) =
        spec.get_mut("template").and_then(|t| t.pointer_mut("/metadata/labels")).and_then(Value::as_object_mut)
    {
        for l in ["controller-uid", "job-name", "batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name"] {
            labels.remove(l);
        }
    }
}

/// A bare Pod's node and its admission-injected token volume belong to the
/// old cluster: a `<sa>-token-*` Secret volume before 1.22, a projected
/// `kube-api-access-*` one since.
fn strip_pod_binding(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else { return };
    spec.remove("nodeName");
    let sa = spec.get("serviceAccountName").and_then(Value::as_str).unwrap_or("default").to_string();
    let token = |name: &str| name.starts_with(&format!("{sa}-token-")) || name.starts_with("kube-api-access-");
    if let Some(vols) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        vols.retain(|v| !token(str_at(v, "/name")));
    }
    for list in ["containers", "initContainers"] {
        for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(mounts) = c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                mounts.retain(|m| !token(str_at(m, "/name")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_restored_job_gets_a_new_generated_selector() {
        let uid = "0b3f-old";
        let mut job = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "app", "uid": uid, "labels": {"app": "db"}},
            "spec": {
                "selector": {"matchLabels": {"controller-uid": uid}},
                "template": {"metadata": {"labels": {"app": "db", "controller-uid": uid, "job-name": "migrate",
                    "batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "migrate"}}},
            },
        });
        prepare("jobs.batch", &mut job, &NamespaceMap::default(), false);
        assert_eq!(job["spec"].get("selector"), None);
        assert_eq!(job["spec"]["template"]["metadata"]["labels"], json!({"app": "db"}));
        assert_eq!(job["metadata"]["labels"], json!({"app": "db"}), "the user's own labels stay");

        let mut manual = json!({"spec": {"manualSelector": true, "selector": {"matchLabels": {"app": "db"}}},
                                "metadata": {"name": "m"}});
        prepare("jobs.batch", &mut manual, &NamespaceMap::default(), false);
        assert_eq!(manual["spec"]["selector"], json!({"matchLabels": {"app": "db"}}), "a chosen selector stays");
    }

    #[test]
    fn crds_and_namespaces_first_custom_resources_last() {
        let mut keys = [
            ("widgets.example.com", true),
            ("deployments.apps", false),
            ("services", false),
            ("configmaps", false),
            ("namespaces", false),
            ("customresourcedefinitions.apiextensions.k8s.io", false),
            ("secrets", false),
        ];
        keys.sort_by_key(|(k, c)| rank(k, *c));
        let order: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            order,
            [
                "customresourcedefinitions.apiextensions.k8s.io",
                "namespaces",
                "secrets",
                "configmaps",
                "services",
                "deployments.apps",
                "widgets.example.com"
            ]
        );
    }

    #[test]
    fn what_the_cluster_remakes_is_left_out_and_the_rest_kept() {
        let ctx = Context { selector_services: ["app/web".to_string()].into() };
        let rs_pod = json!({"metadata": {"name": "web-1", "namespace": "app", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "controller": true}
        ]}});
        assert!(excluded("pods", &rs_pod, &ctx).is_some());
        let cr_owned = json!({"metadata": {"name": "c", "namespace": "app", "ownerReferences": [
            {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "controller": true}
        ]}});
        assert_eq!(excluded("configmaps", &cr_owned, &ctx), None);
        let token = json!({
            "type": "kubernetes.io/service-account-token",
            "metadata": {"name": "default-token-abcde", "namespace": "app"}
        });
        assert!(excluded("secrets", &token, &ctx).is_some());
        let opaque = json!({"type": "Opaque", "metadata": {"name": "db", "namespace": "app"}});
        assert_eq!(excluded("secrets", &opaque, &ctx), None);
        assert!(excluded("endpoints", &json!({"metadata": {"name": "web", "namespace": "app"}}), &ctx).is_some());
        assert_eq!(
            excluded("endpoints", &json!({"metadata": {"name": "external-db", "namespace": "app"}}), &ctx),
            None
        );
        assert!(
            excluded(
                "serviceaccounts",
                &json!({"metadata": {"name": "default", "namespace": "app"}, "secrets": [{"name": "default-token-x"}]}),
                &ctx
            )
            .is_some()
        );
        assert_eq!(
            excluded(
                "serviceaccounts",
                &json!({"metadata": {"name": "default", "namespace": "app"}, "imagePullSecrets": [{"name": "reg"}]}),
                &ctx
            ),
            None
        );
        assert!(
            excluded(
                "clusterroles.rbac.authorization.k8s.io",
                &json!({"metadata": {"name": "system:basic-user"}}),
                &ctx
            )
            .is_some()
        );
        assert_eq!(
            excluded("clusterroles.rbac.authorization.k8s.io", &json!({"metadata": {"name": "app-reader"}}), &ctx),
            None
        );
    }

    #[test]
    fn prepare_strips_the_old_cluster_and_maps_the_namespace() {
        let map: NamespaceMap = [("shop".to_string(), "shop-copy".to_string())].into();
        let mut svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {
                "name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": "9", "creationTimestamp": "t",
                "managedFields": [], "generation": 1, "selfLink": "/x"
            },
            "spec": {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "ports": [{"port": 80}]},
            "status": {"loadBalancer": {}}
        });
        prepare("services", &mut svc, &map, false);
        assert_eq!(
            svc,
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "shop-copy"},
                "spec": {"ports": [{"port": 80}]}
            })
        );

        let mut ns = json!({
            "metadata": {"name": "shop", "labels": {"kubernetes.io/metadata.name": "shop"}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"}
        });
        prepare("namespaces", &mut ns, &map, true);
        assert_eq!(
            ns,
            json!({
                "metadata": {"name": "shop-copy", "labels": {"kubernetes.io/metadata.name": "shop-copy"}},
                "spec": {},
                "status": {"phase": "Active"}
            })
        );

        let mut rb = json!({
            "metadata": {"name": "r", "namespace": "shop"},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "shop"}]
        });
        prepare("rolebindings.rbac.authorization.k8s.io", &mut rb, &map, false);
        assert_eq!(rb["subjects"][0]["namespace"], "shop-copy");

        let mut pod = json!({"metadata": {"name": "p", "namespace": "x"}, "spec": {
            "nodeName": "node-1",
            "volumes": [{"name": "default-token-ab"}, {"name": "data"}],
            "containers": [{"name": "c", "volumeMounts": [{"name": "default-token-ab"}, {"name": "data"}]}]
        }});
        prepare("pods", &mut pod, &map, false);
        assert_eq!(
            pod["spec"],
            json!({"volumes": [{"name": "data"}], "containers": [{"name": "c", "volumeMounts": [{"name": "data"}]}]})
        );
    }
}
