//! Helm hooks: objects annotated `helm.sh/hook` are not part of what a
//! component applies. They run at their events (`pre-install`,
//! `post-upgrade`, ...; `test` only under `rekube test`), in
//! `helm.sh/hook-weight` order, and are deleted as their
//! `helm.sh/hook-delete-policy` says, as Helm does.

use serde_json::Value;

use crate::objects::Object;

/// The annotation that makes an object a hook.
pub const HOOK_ANNOTATION: &str = "helm.sh/hook";
/// Its order among the hooks of one event (an integer, default 0).
pub const WEIGHT_ANNOTATION: &str = "helm.sh/hook-weight";
/// When it is deleted.
pub const DELETE_POLICY_ANNOTATION: &str = "helm.sh/hook-delete-policy";

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HookEvent {
    /// Before the component's objects, on its first apply.
    PreInstall,
    /// After they are healthy, on its first apply.
    PostInstall,
    /// Before the component's objects, on later applies.
    PreUpgrade,
    /// After they are healthy, on later applies.
    PostUpgrade,
    /// Before destroy.
    PreDelete,
    /// After destroy.
    PostDelete,
    /// Only under `rekube test` (`helm test`).
    Test,
}

impl HookEvent {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "pre-install" => Self::PreInstall,
            "post-install" => Self::PostInstall,
            "pre-upgrade" => Self::PreUpgrade,
            "post-upgrade" => Self::PostUpgrade,
            "pre-delete" => Self::PreDelete,
            "post-delete" => Self::PostDelete,
            // `test-success` is Helm 2's name; `test-failure` hooks are not run by Helm 3 either.
            "test" | "test-success" => Self::Test,
            _ => return None,
        })
    }

    /// As Helm spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreInstall => "pre-install",
            Self::PostInstall => "post-install",
            Self::PreUpgrade => "pre-upgrade",
            Self::PostUpgrade => "post-upgrade",
            Self::PreDelete => "pre-delete",
            Self::PostDelete => "post-delete",
            Self::Test => "test",
        }
    }
}

/// When a hook object is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletePolicy {
    /// Before it runs again (Helm's default).
    BeforeHookCreation,
    /// Once it succeeded.
    HookSucceeded,
    /// When it failed.
    HookFailed,
}

/// A hook of a component.
#[derive(Debug, Clone)]
pub struct Hook {
    /// The object to create when it runs.
    pub object: Object,
    /// Its events.
    pub events: Vec<HookEvent>,
    /// Its weight: lower runs first.
    pub weight: i64,
    /// When it is deleted (default: before it runs again).
    pub delete_policies: Vec<DeletePolicy>,
}

impl Hook {
    /// The hook, if `object` is one. Unknown events are ignored (Helm's
    /// `crd-install` is gone; rekube applies CRDs first anyway).
    pub fn of(object: &Object) -> Option<Self> {
        let annotations = object.value.pointer("/metadata/annotations")?;
        let text = |k: &str| annotations.get(k).and_then(Value::as_str);
        let events: Vec<HookEvent> = text(HOOK_ANNOTATION)?.split(',').filter_map(HookEvent::parse).collect();
        if events.is_empty() {
            return None;
        }
        let weight = text(WEIGHT_ANNOTATION).and_then(|w| w.trim().parse().ok()).unwrap_or(0);
        let mut delete_policies: Vec<DeletePolicy> = text(DELETE_POLICY_ANNOTATION)
            .unwrap_or_default()
            .split(',')
            .filter_map(|p| match p.trim() {
                "before-hook-creation" => Some(DeletePolicy::BeforeHookCreation),
                "hook-succeeded" => Some(DeletePolicy::HookSucceeded),
                "hook-failed" => Some(DeletePolicy::HookFailed),
                _ => None,
            })
            .collect();
        if delete_policies.is_empty() {
            delete_policies.push(DeletePolicy::BeforeHookCreation);
        }
        Some(Self { object: object.clone(), events, weight, delete_policies })
    }

    /// Whether it runs at `event`.
    pub fn runs_at(&self, event: HookEvent) -> bool {
        self.events.contains(&event)
    }

    /// Whether it is deleted under `policy`.
    pub fn deleted_on(&self, policy: DeletePolicy) -> bool {
        self.delete_policies.contains(&policy)
    }

    /// `Kind name`.
    pub fn display_name(&self) -> String {
        format!("{} {}", self.object.kind(), self.object.name())
    }
}

/// Helm's install order of kinds: among hooks of one weight, a Job's
/// ServiceAccount and RBAC go before the Job. Other kinds come after these.
const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

fn install_rank(kind: &str) -> usize {
    INSTALL_ORDER.iter().position(|k| *k == kind).unwrap_or(INSTALL_ORDER.len())
}

/// Takes the hooks out of `objects`, in the order they run: by weight, then
/// kind in Helm's install order, then name (as Helm sorts them).
pub fn split(objects: &mut Vec<Object>) -> Vec<Hook> {
    let mut hooks = Vec::new();
    objects.retain(|o| match Hook::of(o) {
        Some(h) => {
            hooks.push(h);
            false
        }
        None => true,
    });
    let key =
        |h: &Hook| (h.weight, install_rank(h.object.kind()), h.object.kind().to_string(), h.object.name().to_string());
    hooks.sort_by_cached_key(key);
    hooks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::Origin;

    fn object(annotations: Value, name: &str) -> Object {
        Object {
            value: serde_json::json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "annotations": annotations}}),
            origin: Origin { file: "t.yaml".into(), line: 1 },
        }
    }

    #[test]
    fn hooks_leave_the_objects_sorted_by_weight_with_helms_defaults() {
        let mut objects = vec![
            object(serde_json::json!({"helm.sh/hook": "post-install,post-upgrade", "helm.sh/hook-weight": "5"}), "b"),
            object(serde_json::json!({}), "plain"),
            object(
                serde_json::json!({"helm.sh/hook": "pre-install", "helm.sh/hook-weight": "-1",
                "helm.sh/hook-delete-policy": "hook-succeeded,hook-failed"}),
                "a",
            ),
            object(serde_json::json!({"helm.sh/hook": "test"}), "t"),
            object(serde_json::json!({"helm.sh/hook": "crd-install"}), "old"),
        ];
        let hooks = split(&mut objects);
        let names: Vec<&str> = objects.iter().map(Object::name).collect();
        assert_eq!(names, ["plain", "old"], "only real hooks leave; an unknown event is an ordinary object");
        let order: Vec<&str> = hooks.iter().map(|h| h.object.name()).collect();
        assert_eq!(order, ["a", "t", "b"]);
        assert_eq!(hooks[0].delete_policies, [DeletePolicy::HookSucceeded, DeletePolicy::HookFailed]);
        assert_eq!(hooks[1].delete_policies, [DeletePolicy::BeforeHookCreation], "Helm's default");
        assert!(hooks[1].runs_at(HookEvent::Test) && !hooks[1].runs_at(HookEvent::PreInstall));
        assert!(hooks[2].runs_at(HookEvent::PostUpgrade));
    }

    #[test]
    fn within_a_weight_a_jobs_service_account_and_rbac_go_first() {
        let hook = |kind: &str, name: &str| Object {
            value: serde_json::json!({"apiVersion": "v1", "kind": kind,
                "metadata": {"name": name, "annotations": {"helm.sh/hook": "pre-install"}}}),
            origin: Origin { file: "t.yaml".into(), line: 1 },
        };
        let mut objects = vec![
            hook("Job", "admission-create"),
            hook("RoleBinding", "admission"),
            hook("ClusterRole", "admission"),
            hook("ServiceAccount", "admission"),
            hook("Widget", "custom"),
        ];
        let kinds: Vec<String> = split(&mut objects).iter().map(|h| h.object.kind().to_string()).collect();
        assert_eq!(kinds, ["ServiceAccount", "ClusterRole", "RoleBinding", "Job", "Widget"]);
    }
}
