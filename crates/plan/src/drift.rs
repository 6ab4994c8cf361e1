//! Drift, as pure data: the fields of a live object that differ from what
//! rekube applied, and who changed each one, from `metadata.managedFields`
//! (the manager, its operation and time: `kubectl-edit Update 10:02Z`).

use serde::Serialize;
use serde_json::Value;

use crate::diff::MASK;

/// One field changed by hand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDrift {
    /// `spec.template.spec.containers[0].image`.
    pub path: String,
    /// What rekube applied (`None`: rekube did not set it).
    pub applied: Option<Value>,
    /// What is live (`None`: removed).
    pub live: Option<Value>,
    /// The field manager that owns the live value (`kubectl-edit`, ...).
    pub manager: Option<String>,
    /// `Update` or `Apply`.
    pub operation: Option<String>,
    /// When that manager last wrote the object (servers record no time
    /// for some subresource writes).
    pub time: Option<String>,
    /// The subresource it wrote through (`scale`), if any: since 1.22
    /// servers record `/scale` writers; before, nobody.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
}

/// Who wrote a field, from one managedFields entry.
struct Writer {
    manager: String,
    operation: String,
    time: Option<String>,
    subresource: Option<String>,
}

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::Key(k) if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Key(k) => out.push_str(&format!("[{}]", serde_json::to_string(k).expect("string"))),
        }
    }
    out
}

fn walk(
    applied: &Value,
    live: Option<&Value>,
    path: &mut Vec<Seg>,
    out: &mut Vec<(Vec<Seg>, Option<Value>, Option<Value>)>,
) {
    match (applied, live) {
        (Value::Object(a), Some(Value::Object(l))) => {
            for (k, av) in a {
                path.push(Seg::Key(k.clone()));
                walk(av, l.get(k), path, out);
                path.pop();
            }
        }
        (Value::Array(a), Some(Value::Array(l))) if a.len() == l.len() => {
            for (i, (x, y)) in a.iter().zip(l).enumerate() {
                path.push(Seg::Index(i));
                walk(x, Some(y), path, out);
                path.pop();
            }
        }
        (Value::Number(x), Some(Value::Number(y))) if x.as_f64() == y.as_f64() => {}
        (a, Some(l)) if a == l => {}
        (a, l) => out.push((path.clone(), Some(a.clone()), l.cloned())),
    }
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

/// Fields of `live` that differ from `applied`, with who changed them.
/// `ignore` holds rendered paths (`spec.replicas`) to leave out; Secret
/// values are masked.
pub fn object_drift(
    kind: &str,
    applied: &Value,
    live: &Value,
    own_manager: &str,
    ignore: &[String],
) -> Vec<FieldDrift> {
    let mut raw = Vec::new();
    walk(applied, Some(live), &mut Vec::new(), &mut raw);
    let secret = kind == "Secret";
    raw.into_iter()
        .filter_map(|(path, a, l)| {
            let p = render(&path);
            if ignore.iter().any(|i| &p == i || p.starts_with(&format!("{i}.")) || p.starts_with(&format!("{i}["))) {
                return None;
            }
            let who = owner(live, &path, own_manager);
            let sensitive = secret && (p.starts_with("data") || p.starts_with("stringData"));
            let mask = |v: Option<Value>| if sensitive { v.map(|_| Value::String(MASK.into())) } else { v };
            Some(FieldDrift {
                applied: mask(a),
                live: mask(l),
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
    use serde_json::json;

    #[test]
    fn names_the_manager_of_a_changed_list_item() {
        let applied = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}});
        let live = json!({
            "metadata": {"managedFields": [
                {"manager": "rekube", "operation": "Apply", "time": "2026-11-27T10:00:00Z", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                {"manager": "kubectl-set", "operation": "Update", "time": "2026-11-27T10:05:00Z",
                 "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:image": {}}}}}}}},
            ]},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.26", "imagePullPolicy": "IfNotPresent"}]}}},
        });
        let d = object_drift("Deployment", &applied, &live, "rekube", &[]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, "spec.template.spec.containers[0].image");
        assert_eq!(d[0].manager.as_deref(), Some("kubectl-set"));
        assert_eq!(d[0].time.as_deref(), Some("2026-11-27T10:05:00Z"));
        assert!(object_drift("Deployment", &applied, &live, "rekube", &["spec.template".into()]).is_empty());
    }
}
