//! Comparing objects: a cheap "is everything we set still so?" check for the
//! common unchanged case, and a field-level diff for display, with Secret
//! values masked.

use serde_json::{Map, Value};

use crate::model::FieldChange;
use crate::normalize::HASH_ANNOTATION;

/// Whether every field of `desired` has the same value in `live` (lists
/// element by element). Fields the server adds are ignored.
pub fn subset_matches(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, dv)| l.get(k).is_some_and(|lv| subset_matches(dv, lv)) || (dv.is_null() && !l.contains_key(k))),
        (Value::Array(d), Value::Array(l)) => d.len() == l.len() && d.iter().zip(l).all(|(a, b)| subset_matches(a, b)),
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

/// Fields that change on every write or belong to the server: never a diff.
fn is_noise(path: &[String]) -> bool {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    matches!(
        p.as_slice(),
        ["status", ..]
            | ["metadata", "managedFields", ..]
            | ["metadata", "resourceVersion"]
            | ["metadata", "generation"]
            | ["metadata", "creationTimestamp"]
            | ["metadata", "uid"]
            | ["metadata", "selfLink"]
            | ["metadata", "annotations", HASH_ANNOTATION]
    )
}

fn render_path(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if let Some(idx) = seg.strip_prefix('#') {
            out.push_str(&format!("[{idx}]"));
        } else if seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        } else {
            out.push_str(&format!("[{}]", serde_json::to_string(seg).expect("string")));
        }
    }
    out
}

fn walk(before: Option<&Value>, after: Option<&Value>, path: &mut Vec<String>, out: &mut Vec<FieldChange>) {
    if is_noise(path) {
        return;
    }
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                path.push(k.clone());
                walk(b.get(k), a.get(k), path, out);
                path.pop();
            }
        }
        (Some(Value::Array(b)), Some(Value::Array(a))) if b.len() == a.len() => {
            for (i, (x, y)) in b.iter().zip(a).enumerate() {
                path.push(format!("#{i}"));
                walk(Some(x), Some(y), path, out);
                path.pop();
            }
        }
        (b, a) if b == a => {}
        (Some(Value::Number(x)), Some(Value::Number(y))) if x.as_f64() == y.as_f64() => {}
        (b, a) => out.push(FieldChange { path: render_path(path), before: b.cloned(), after: a.cloned() }),
    }
}

/// The field changes from `before` (live) to `after` (as the server would
/// store it after apply), server noise left out, Secret values masked.
pub fn field_diff(kind: &str, before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk(Some(before), Some(after), &mut Vec::new(), &mut out);
    if kind == "Secret" {
        mask_secret(&mut out);
    }
    out
}

/// The marker shown instead of a Secret value.
pub const MASK: &str = "(sensitive)";

/// Replaces Secret values (data, stringData, and annotations that can embed
/// them, like kubectl's last-applied-configuration) with a marker that still
/// says whether a value was added, changed or removed.
pub fn mask_secret(changes: &mut [FieldChange]) {
    for c in changes {
        let sensitive = c.path.starts_with("data")
            || c.path.starts_with("stringData")
            || c.path.contains("last-applied-configuration");
        if sensitive {
            c.before = c.before.as_ref().map(|_| Value::String(MASK.into()));
            c.after = c.after.as_ref().map(|_| Value::String(MASK.into()));
        }
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
    let _ = Map::<String, Value>::new();
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
        let live = json!({"spec": {"replicas": 2, "progressDeadlineSeconds": 600, "template": {"spec": {"containers": [{"name": "a", "image": "x:1", "imagePullPolicy": "IfNotPresent"}]}}}});
        assert!(subset_matches(&desired, &live));
        let edited =
            json!({"spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}});
        assert!(!subset_matches(&desired, &edited));
    }

    #[test]
    fn diff_paths_and_secret_masking() {
        let before = json!({"kind": "Secret", "metadata": {"name": "s", "resourceVersion": "1", "labels": {"app.kubernetes.io/name": "a"}}, "data": {"password": "aHVudGVyMg=="}});
        let after = json!({"kind": "Secret", "metadata": {"name": "s", "resourceVersion": "2", "labels": {"app.kubernetes.io/name": "b"}}, "data": {"password": "c2VjcmV0", "token": "eA=="}});
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
}
