//! Comparing objects: a cheap "is everything we set still so?" check for the
//! common unchanged case, and a field-level diff for display, with Secret
//! values masked.

use serde_json::Value;

use crate::model::FieldChange;
use crate::normalize::HASH_ANNOTATION;
use crate::path::{self, Keys, Seg};

pub use crate::path::MASK;

/// Whether every field of `desired` has the same value in `live` (lists
/// element by element). Fields the server adds are ignored.
pub fn subset_matches(desired: &Value, live: &Value) -> bool {
    first_unmatched(desired, live).is_none()
}

/// The first field of `desired` that `live` does not have as it is, as
/// rekube prints paths (`rules[0].verbs`; `""` for the whole value), or
/// `None` when [`subset_matches`].
pub fn subset_mismatch(desired: &Value, live: &Value) -> Option<String> {
    first_unmatched(desired, live).map(|mut reversed| {
        reversed.reverse();
        path::render(&reversed)
    })
}

/// The path to the first unmatched field, innermost segment first (built
/// only on the way back from a mismatch: a match allocates nothing).
fn first_unmatched(desired: &Value, live: &Value) -> Option<Vec<Seg>> {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().find_map(|(k, dv)| match l.get(k) {
            Some(lv) => first_unmatched(dv, lv).map(|mut p| {
                p.push(Seg::Key(k.clone()));
                p
            }),
            None if dv.is_null() => None,
            None => Some(vec![Seg::Key(k.clone())]),
        }),
        (Value::Array(d), Value::Array(l)) if d.len() == l.len() => {
            d.iter().zip(l).enumerate().find_map(|(i, (a, b))| {
                first_unmatched(a, b).map(|mut p| {
                    p.push(Seg::Index(i));
                    p
                })
            })
        }
        (Value::Number(a), Value::Number(b)) if a == b || a.as_f64() == b.as_f64() => None,
        (a, b) => (a != b).then(Vec::new),
    }
}

/// Fields that change on every write or belong to the server: never a diff.
pub(crate) fn is_noise(path: &[Seg]) -> bool {
    let p: Vec<Option<&str>> = path.iter().map(Seg::key).collect();
    matches!(
        p.as_slice(),
        [Some("status"), ..]
            | [Some("metadata"), Some("managedFields"), ..]
            | [Some("metadata"), Some("resourceVersion")]
            | [Some("metadata"), Some("generation")]
            | [Some("metadata"), Some("creationTimestamp")]
            | [Some("metadata"), Some("uid")]
            | [Some("metadata"), Some("selfLink")]
            | [Some("metadata"), Some("annotations"), Some(HASH_ANNOTATION)]
    )
}

/// The field changes from `before` (live) to `after` (as the server would
/// store it after apply), server noise left out, Secret values masked.
pub fn field_diff(kind: &str, before: &Value, after: &Value) -> Vec<FieldChange> {
    path::mismatches(before, after, Keys::Both, is_noise)
        .into_iter()
        .map(|m| {
            let p = path::render(&m.path);
            FieldChange { before: path::shown(kind, &p, m.left), after: path::shown(kind, &p, m.right), path: p }
        })
        .collect()
}

/// Replaces Secret values (data, stringData, and annotations that can embed
/// them, like kubectl's last-applied-configuration) with a marker that still
/// says whether a value was added, changed or removed.
pub fn mask_secret(changes: &mut [FieldChange]) {
    for c in changes {
        c.before = path::shown("Secret", &c.path, c.before.as_ref());
        c.after = path::shown("Secret", &c.path, c.after.as_ref());
    }
}

/// `obj` without the fields `field_diff` ignores, for comparing snapshots.
pub fn strip_noise(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            for k in ["managedFields", "resourceVersion", "generation", "creationTimestamp", "uid", "selfLink"] {
                meta.remove(k);
            }
            if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
                ann.remove(HASH_ANNOTATION);
                if ann.is_empty() {
                    meta.remove("annotations");
                }
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_ignores_server_defaults_but_not_changed_values() {
        let desired =
            json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}});
        let live = json!({"spec": {"replicas": 2, "progressDeadlineSeconds": 600, "template": {"spec": {"containers": [
            {"name": "a", "image": "x:1", "imagePullPolicy": "IfNotPresent"},
        ]}}}});
        assert!(subset_matches(&desired, &live));
        let edited =
            json!({"spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}});
        assert!(!subset_matches(&desired, &edited));
        assert_eq!(subset_mismatch(&desired, &edited).as_deref(), Some("spec.replicas"));
        assert_eq!(subset_mismatch(&desired, &live), None);
        let more =
            json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x:2"}]}}}});
        assert_eq!(subset_mismatch(&more, &live).as_deref(), Some("spec.template.spec.containers[0].image"));
    }

    #[test]
    fn diff_paths_and_secret_masking() {
        let before = json!({
            "kind": "Secret",
            "metadata": {"name": "s", "resourceVersion": "1", "labels": {"app.kubernetes.io/name": "a"}},
            "data": {"password": "aHVudGVyMg=="},
        });
        let after = json!({
            "kind": "Secret",
            "metadata": {"name": "s", "resourceVersion": "2", "labels": {"app.kubernetes.io/name": "b"}},
            "data": {"password": "c2VjcmV0", "token": "eA=="},
        });
        let changes = field_diff("Secret", &before, &after);
        let shown: Vec<String> =
            changes.iter().map(|c| format!("{}: {:?} -> {:?}", c.path, c.before, c.after)).collect();
        assert_eq!(
            shown,
            [
                r#"data.password: Some(String("(sensitive)")) -> Some(String("(sensitive)"))"#,
                r#"data.token: None -> Some(String("(sensitive)"))"#,
                r#"metadata.labels["app.kubernetes.io/name"]: Some(String("a")) -> Some(String("b"))"#,
            ]
        );
        let text = format!("{changes:?}");
        assert!(!text.contains("aHVudGVyMg") && !text.contains("c2VjcmV0"), "no secret value survives: {text}");
    }

    #[test]
    fn mask_secret_masks_the_last_applied_annotation() {
        let mut changes = [FieldChange {
            path: r#"metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]"#.into(),
            before: Some(json!("{\"data\":{\"password\":\"aHVudGVyMg==\"}}")),
            after: None,
        }];
        mask_secret(&mut changes);
        assert_eq!(changes[0].before, Some(json!(MASK)));
        assert_eq!(changes[0].after, None);
    }
}
