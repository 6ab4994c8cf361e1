//! The Kubernetes ApplySet convention (KEP-3659), so `kubectl` can read the
//! same inventory rekube prunes with: one parent object per component,
//! labelled with an id; members labelled `part-of` that id.
//!
//! rekube's parents are ConfigMaps named `rekube.<component>` in the
//! `rekube-system` namespace.

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
/// Namespace of every parent.
pub const PARENT_NAMESPACE: &str = "rekube-system";
/// rekube's field manager for server-side apply.
pub const FIELD_MANAGER: &str = "rekube";

/// The parent ConfigMap's name for a component.
pub fn parent_name(component: &str) -> String {
    format!("rekube.{component}")
}

/// The ApplySet id, as the KEP defines it:
/// `applyset-<base64url(sha256(<name>.<namespace>.<kind>.<group>))>-v1`.
pub fn id(component: &str) -> String {
    let input = format!("{}.{}.ConfigMap.", parent_name(component), PARENT_NAMESPACE);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(input.as_bytes()));
    format!("applyset-{b64}-v1")
}

/// The component a parent name belongs to.
pub fn component_of(parent: &str) -> Option<&str> {
    parent.strip_prefix("rekube.")
}

/// The ApplySet a live object belongs to: its `part-of` label.
pub fn part_of(obj: &serde_json::Value) -> Option<&str> {
    obj.pointer("/metadata/labels")?.get(PART_OF_LABEL)?.as_str()
}

/// `Kind.group` as the annotation writes it (`Kind` alone for the core group).
pub fn group_kind(group: &str, kind: &str) -> String {
    if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") }
}

#[cfg(test)]
mod tests {
    #[test]
    fn id_follows_the_kep_format() {
        let id = super::id("web");
        assert!(id.starts_with("applyset-") && id.ends_with("-v1"), "{id}");
        assert_eq!(id.len(), "applyset-".len() + 43 + "-v1".len(), "base64url of 32 bytes, unpadded");
        assert_ne!(super::id("web"), super::id("app"));
    }
}
