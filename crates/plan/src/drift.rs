//! Drift, as pure data: the fields of a live object that differ from what
//! rekube applied, and who changed each one, from `metadata.managedFields`
//! (the manager, its operation and time: `kubectl-edit Update 10:02Z`).

use serde_json::Value;

pub use crate::model::FieldDrift;
use crate::path::{self, Keys, Seg};

/// Who wrote a field, from one managedFields entry.
struct Writer {
    manager: String,
    operation: String,
    time: Option<String>,
    subresource: Option<String>,
}

/// Whether the fieldsV1 set `fields` contains `path` (walking `live` alongside
/// to match associative-list keys `k:{...}` and set values `v:...`).
fn owns(fields: &Value, path: &[Seg], live: &Value) -> bool {
    let Some((first, rest)) = path.split_first() else { return true };
    let Some(map) = fields.as_object() else { return false };
    match first {
        Seg::Key(k) => match map.get(&format!("f:{k}")) {
            Some(next) => owns(next, rest, live.get(k).unwrap_or(&Value::Null)),
            None => false,
        },
        Seg::Index(i) => {
            let Some(elem) = live.as_array().and_then(|a| a.get(*i)) else { return false };
            for (key, next) in map {
                let hit = if let Some(k) = key.strip_prefix("k:") {
                    serde_json::from_str::<serde_json::Map<String, Value>>(k)
                        .is_ok_and(|m| m.iter().all(|(mk, mv)| elem.get(mk) == Some(mv)))
                } else if let Some(v) = key.strip_prefix("v:") {
                    serde_json::from_str::<Value>(v).is_ok_and(|v| &v == elem)
                } else {
                    false
                };
                if hit {
                    return owns(next, rest, elem);
                }
            }
            false
        }
    }
}

/// The newest non-rekube manager owning `path` in `live`'s managedFields.
fn owner(live: &Value, path: &[Seg], own_manager: &str) -> Option<Writer> {
    let entries = live.pointer("/metadata/managedFields")?.as_array()?;
    entries
        .iter()
        .filter(|e| e["manager"].as_str() != Some(own_manager))
        .filter(|e| {
            // Subresource updates (status, scale) may be recorded without fields in older servers.
            owns(&e["fieldsV1"], path, live)
        })
        .max_by_key(|e| e["time"].as_str().unwrap_or_default().to_string())
        .map(|e| {
            let text = |k: &str| e[k].as_str().filter(|s| !s.is_empty()).map(str::to_string);
            Writer {
                manager: text("manager").unwrap_or_default(),
                operation: text("operation").unwrap_or_default(),
                time: text("time"),
                subresource: text("subresource"),
            }
        })
}

/// Fields of `live` that differ from `applied` (fields rekube did not set
/// are not drift), with who changed them. `ignore` holds rendered paths
/// (`spec.replicas`) to leave out; Secret values are masked, as in a diff.
pub fn object_drift(
    kind: &str,
    applied: &Value,
    live: &Value,
    own_manager: &str,
    ignore: &[String],
) -> Vec<FieldDrift> {
    // Server-owned fields (status, creationTimestamp) in a manifest are not drift either.
    path::mismatches(applied, live, Keys::Left, crate::diff::is_noise)
        .into_iter()
        .filter_map(|m| {
            let p = path::render(&m.path);
            if ignore.iter().any(|i| p == *i || p.starts_with(&format!("{i}.")) || p.starts_with(&format!("{i}["))) {
                return None;
            }
            let who = owner(live, &m.path, own_manager);
            Some(FieldDrift {
                applied: path::shown(kind, &p, m.left),
                live: path::shown(kind, &p, m.right),
                path: p,
                manager: who.as_ref().map(|w| w.manager.clone()),
                operation: who.as_ref().map(|w| w.operation.clone()),
                time: who.as_ref().and_then(|w| w.time.clone()),
                subresource: who.and_then(|w| w.subresource),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::MASK;
    use serde_json::json;

    #[test]
    fn names_the_manager_of_a_changed_list_item() {
        let applied = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1.25"},
        ]}}}});
        let live = json!({
            "metadata": {"managedFields": [
                {"manager": "rekube", "operation": "Apply", "time": "2026-11-27T10:00:00Z",
                 "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                {"manager": "kubectl-set", "operation": "Update", "time": "2026-11-27T10:05:00Z",
                 "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                     "k:{\"name\":\"web\"}": {"f:image": {}},
                 }}}}}},
            ]},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:1.26", "imagePullPolicy": "IfNotPresent"},
            ]}}},
        });
        let d = object_drift("Deployment", &applied, &live, "rekube", &[]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, "spec.template.spec.containers[0].image");
        assert_eq!(d[0].manager.as_deref(), Some("kubectl-set"));
        assert_eq!(d[0].time.as_deref(), Some("2026-11-27T10:05:00Z"));
        assert!(object_drift("Deployment", &applied, &live, "rekube", &["spec.template".into()]).is_empty());
    }

    /// A Secret as `kubectl apply` leaves it: the last-applied annotation
    /// repeats its data.
    fn kubectl_applied_secret(password: &str) -> Value {
        let last_applied = json!({"apiVersion": "v1", "kind": "Secret", "data": {"password": password}});
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": last_applied.to_string(),
            }},
            "data": {"password": password},
        })
    }

    #[test]
    fn drift_of_a_secret_masks_the_last_applied_annotation() {
        let applied = kubectl_applied_secret("aHVudGVyMg==");
        let live = kubectl_applied_secret("c2VjcmV0");
        let d = object_drift("Secret", &applied, &live, "rekube", &[]);
        let paths: Vec<&str> = d.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [r#"metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]"#, "data.password"]
        );
        assert!(d.iter().all(|f| f.applied == Some(json!(MASK)) && f.live == Some(json!(MASK))), "{d:?}");
        let text = serde_json::to_string(&d).expect("json");
        assert!(!text.contains("aHVudGVyMg") && !text.contains("c2VjcmV0"), "no secret value survives: {text}");

        // Annotations gone as a whole: the applied map is shown, its secret not.
        let mut bare = live.clone();
        bare["metadata"].as_object_mut().expect("metadata").remove("annotations");
        let d = object_drift("Secret", &applied, &bare, "rekube", &[]);
        assert_eq!(d[0].path, "metadata.annotations");
        assert_eq!(d[0].live, None);
        let text = serde_json::to_string(&d).expect("json");
        assert!(!text.contains("aHVudGVyMg") && !text.contains("c2VjcmV0"), "no secret value survives: {text}");
    }
}
