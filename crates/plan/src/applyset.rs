//! The Kubernetes ApplySet convention (KEP-3659), so `kubectl` can read the
//! same inventory rekube prunes with: one parent object per ApplySet,
//! labelled with an id; members labelled `part-of` that id.
//!
//! An ApplySet belongs to exactly one (project, environment, component):
//! many projects and environments share a cluster, and an id derived from
//! less than all three would let one of them prune another's objects. Each
//! environment also has one ApplySet for the namespaces rekube created for
//! its components (`component: None`), so a namespace shared by two
//! components has one stable owner whatever subset is applied.
//!
//! Parents are ConfigMaps in `rekube-system` named
//! `rekube.<project>.<environment>[.<component>]`, labelled with their
//! identity. Releases before 0.2 named them `rekube.<component>`; those are
//! recognised as legacy parents and migrated by the first apply.

use base64::Engine;
use sha2::{Digest, Sha256};

/// Label on the parent: its id.
pub const ID_LABEL: &str = "applyset.kubernetes.io/id";
/// Label on members: the id of the ApplySet they belong to.
pub const PART_OF_LABEL: &str = "applyset.kubernetes.io/part-of";
/// Parent annotation: the tool that manages it.
pub const TOOLING_ANNOTATION: &str = "applyset.kubernetes.io/tooling";
/// Parent annotation: `Kind.group` of every member type, comma-separated.
pub const CONTAINS_ANNOTATION: &str = "applyset.kubernetes.io/contains-group-kinds";
/// Parent annotation: namespaces with members, other than the parent's.
pub const NAMESPACES_ANNOTATION: &str = "applyset.kubernetes.io/additional-namespaces";
/// Parent label: the project.
pub const PROJECT_LABEL: &str = "rekube.dev/project";
/// Parent label: the environment.
pub const ENVIRONMENT_LABEL: &str = "rekube.dev/environment";
/// Parent label: the component (absent on an environment's namespace set).
pub const COMPONENT_LABEL: &str = "rekube.dev/component";
/// Parent annotation: where the spec was last applied from (`host:/path/rekube.yaml`).
pub const SOURCE_ANNOTATION: &str = "rekube.dev/source";
/// On a parent: the digest of each Helm hook of its component when it was
/// last applied (JSON `{"Kind/namespace/name": digest}`); a hook runs again
/// only when its digest changes.
pub const HOOKS_ANNOTATION: &str = "rekube.dev/hooks";
/// The parent's data key holding its component's `pre-delete` and
/// `post-delete` hooks (see `HookRun::encode_all`).
pub const DELETE_HOOKS_KEY: &str = "delete-hooks";
/// On a hook object: the ApplySet id of the component it belongs to (hooks
/// are not members: never pruned, never drift; destroy deletes them).
pub const HOOK_OF_LABEL: &str = "rekube.dev/hook-of";
/// Namespace annotation, set when rekube creates it: `<project>/<environment>`.
/// rekube deletes a Namespace only when it carries this.
pub const CREATED_BY_ANNOTATION: &str = "rekube.dev/created-by";
/// Namespace of every parent.
pub const PARENT_NAMESPACE: &str = "rekube-system";
/// rekube's field manager for server-side apply.
pub const FIELD_MANAGER: &str = "rekube";
/// Namespaces that are never members of any ApplySet: the cluster owns them.
pub const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease", "default", PARENT_NAMESPACE];

/// Who an ApplySet belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    /// The project (`project:`, or the spec directory's name).
    pub project: String,
    /// The environment.
    pub environment: String,
    /// The component; `None` for the environment's namespace set.
    pub component: Option<String>,
}

impl Identity {
    /// A component's ApplySet.
    pub fn component(project: &str, environment: &str, component: &str) -> Self {
        Self { project: project.into(), environment: environment.into(), component: Some(component.into()) }
    }

    /// The environment's namespace set.
    pub fn namespaces(project: &str, environment: &str) -> Self {
        Self { project: project.into(), environment: environment.into(), component: None }
    }

    /// The parent ConfigMap's name.
    pub fn parent_name(&self) -> String {
        match &self.component {
            Some(c) => format!("rekube.{}.{}.{c}", self.project, self.environment),
            None => format!("rekube.{}.{}", self.project, self.environment),
        }
    }

    /// The ApplySet id.
    pub fn id(&self) -> String {
        id_of_parent(&self.parent_name())
    }

    /// `<project>/<environment>`, as the created-by annotation writes it.
    pub fn scope(&self) -> String {
        format!("{}/{}", self.project, self.environment)
    }

    /// Whether it belongs to `project`'s `environment`.
    pub fn is_in(&self, project: &str, environment: &str) -> bool {
        self.project == project && self.environment == environment
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.component {
            Some(c) => write!(f, "component `{c}` of project `{}`, environment `{}`", self.project, self.environment),
            None => write!(f, "the namespaces of project `{}`, environment `{}`", self.project, self.environment),
        }
    }
}

/// The ApplySet id of a parent ConfigMap in `rekube-system`, as the KEP
/// defines it: `applyset-<base64url(sha256(<name>.<namespace>.<kind>.<group>))>-v1`.
pub fn id_of_parent(parent_name: &str) -> String {
    let input = format!("{parent_name}.{PARENT_NAMESPACE}.ConfigMap.");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(input.as_bytes()));
    format!("applyset-{b64}-v1")
}

/// The parent name releases before 0.2 gave a component: `rekube.<component>`.
pub fn legacy_parent_name(component: &str) -> String {
    format!("rekube.{component}")
}

/// The ApplySet id releases before 0.2 gave a component.
pub fn legacy_id(component: &str) -> String {
    id_of_parent(&legacy_parent_name(component))
}

/// The ApplySet a live object belongs to: its `part-of` label.
pub fn part_of(obj: &serde_json::Value) -> Option<&str> {
    obj.pointer("/metadata/labels")?.get(PART_OF_LABEL)?.as_str()
}

/// The ApplySet a live hook object was run for: its `hook-of` label.
pub fn hook_of(obj: &serde_json::Value) -> Option<&str> {
    obj.pointer("/metadata/labels")?.get(HOOK_OF_LABEL)?.as_str()
}

/// The created-by annotation of a live Namespace.
pub fn created_by(obj: &serde_json::Value) -> Option<&str> {
    obj.pointer("/metadata/annotations")?.get(CREATED_BY_ANNOTATION)?.as_str()
}

/// `Kind.group` as the annotation writes it (`Kind` alone for the core group).
pub fn group_kind(group: &str, kind: &str) -> String {
    if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") }
}

/// Another tool that owns a live object, from the marks it leaves: Helm's
/// release annotations, Argo CD's tracking, Flux's labels, or `managed-by`.
pub fn foreign_owner(obj: &serde_json::Value) -> Option<String> {
    let ann = |k: &str| obj.pointer("/metadata/annotations").and_then(|a| a.get(k)).and_then(serde_json::Value::as_str);
    let label = |k: &str| obj.pointer("/metadata/labels").and_then(|a| a.get(k)).and_then(serde_json::Value::as_str);
    if let Some(release) = ann("meta.helm.sh/release-name") {
        return Some(format!("Helm release `{}/{release}`", ann("meta.helm.sh/release-namespace").unwrap_or("?")));
    }
    if let Some(id) = ann("argocd.argoproj.io/tracking-id") {
        return Some(format!("Argo CD application `{}`", id.split(':').next().unwrap_or(id)));
    }
    for (key, what) in [
        ("kustomize.toolkit.fluxcd.io/name", "Flux Kustomization"),
        ("helm.toolkit.fluxcd.io/name", "Flux HelmRelease"),
    ] {
        if let Some(name) = label(key) {
            return Some(format!("{what} `{name}`"));
        }
    }
    match label("app.kubernetes.io/managed-by") {
        Some(m) if m != "rekube" => Some(format!("`{m}` (label app.kubernetes.io/managed-by)")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn id_follows_the_kep_format() {
        let id = Identity::component("shop", "prod", "web").id();
        assert!(id.starts_with("applyset-") && id.ends_with("-v1"), "{id}");
        assert_eq!(id.len(), "applyset-".len() + 43 + "-v1".len(), "base64url of 32 bytes, unpadded");
    }

    #[test]
    fn every_part_of_the_identity_changes_the_id() {
        let base = Identity::component("a", "prod", "web");
        let others = [
            Identity::component("b", "prod", "web"),
            Identity::component("a", "staging", "web"),
            Identity::component("a", "prod", "app"),
            Identity::namespaces("a", "prod"),
        ];
        for o in &others {
            assert_ne!(base.id(), o.id(), "{o}");
        }
        assert_ne!(base.id(), legacy_id("web"), "the legacy id is not reused");
        assert_eq!(legacy_parent_name("web"), "rekube.web");
        assert_eq!(Identity::namespaces("a", "prod").parent_name(), "rekube.a.prod");
    }

    #[test]
    fn foreign_owners_are_named() {
        let helm = json!({"metadata": {"annotations": {
            "meta.helm.sh/release-name": "nginx",
            "meta.helm.sh/release-namespace": "ingress",
        }}});
        assert_eq!(foreign_owner(&helm).as_deref(), Some("Helm release `ingress/nginx`"));
        let flux = json!({"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/name": "apps"}}});
        assert_eq!(foreign_owner(&flux).as_deref(), Some("Flux Kustomization `apps`"));
        assert_eq!(foreign_owner(&json!({"metadata": {"labels": {"app": "x"}}})), None);
    }
}
