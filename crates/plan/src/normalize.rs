//! What rekube does to every object before applying it: defaults that old
//! API servers require for server-side apply, and the labels and hash that
//! tie it to its component.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::applyset;

/// Annotation holding the digest of the object as rekube last applied it.
pub const HASH_ANNOTATION: &str = "rekube.dev/hash";

/// Defaults `protocol: TCP` in every `ports` list entry that lacks it.
///
/// On v1.20, SSA of a Service (or container) port without `protocol` fails:
/// "associative list with keys has an element that omits key field
/// protocol". The API server would default it to TCP anyway.
pub fn default_port_protocols(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "ports"
                    && let Value::Array(items) = child
                {
                    for item in items.iter_mut().filter_map(Value::as_object_mut) {
                        let is_port = item.contains_key("port") || item.contains_key("containerPort");
                        if is_port && !item.contains_key("protocol") {
                            item.insert("protocol".into(), Value::String("TCP".into()));
                        }
                    }
                }
                default_port_protocols(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(default_port_protocols),
        _ => {}
    }
}

fn metadata(obj: &mut Value) -> &mut Map<String, Value> {
    let meta = obj.as_object_mut().expect("an object").entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().expect("metadata is a mapping")
}

fn entry<'a>(meta: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = meta.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut().expect("a mapping")
}

/// The object as rekube applies it: protocols defaulted, the ApplySet
/// `part-of` label set, and the hash annotation over all of that.
pub fn prepare(desired: &Value, applyset_id: &str) -> Value {
    let mut obj = desired.clone();
    default_port_protocols(&mut obj);
    let meta = metadata(&mut obj);
    entry(meta, "labels").insert(applyset::PART_OF_LABEL.into(), Value::String(applyset_id.to_string()));
    entry(meta, "annotations").remove(HASH_ANNOTATION);
    let hash = digest(&obj);
    entry(metadata(&mut obj), "annotations").insert(HASH_ANNOTATION.into(), Value::String(hash));
    obj
}

/// Whether a JSON object is a core `v1` Namespace.
pub fn is_namespace(v: &Value) -> bool {
    v["kind"] == "Namespace" && v["apiVersion"] == "v1"
}

/// The object as rekube applies it for `identity`'s ApplySet: [`prepare`]d,
/// and a Namespace also records who created it (rekube deletes only those).
pub fn prepare_for(desired: &Value, identity: &applyset::Identity) -> Value {
    if !is_namespace(desired) {
        return prepare(desired, &identity.id());
    }
    let mut v = desired.clone();
    entry(metadata(&mut v), "annotations")
        .insert(applyset::CREATED_BY_ANNOTATION.into(), Value::String(identity.scope()));
    prepare(&v, &identity.id())
}

/// A stable digest of a JSON value (keys sorted), 16 hex digits.
pub fn digest(v: &Value) -> String {
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for k in keys {
                    out.push_str(&serde_json::to_string(k).expect("string"));
                    out.push(':');
                    canonical(&m[k], out);
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for x in a {
                    canonical(x, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    canonical(v, &mut s);
    hex::encode(&Sha256::digest(s.as_bytes())[..8])
}

/// A Secret as the server stores it: `stringData` is write-only and folded
/// into base64 `data`. Comparisons with live Secrets need this form.
pub fn fold_string_data(obj: &Value) -> Value {
    use base64::Engine;
    let mut v = obj.clone();
    if v["kind"] != "Secret" {
        return v;
    }
    let Some(map) = v.as_object_mut() else { return v };
    if let Some(Value::Object(sd)) = map.remove("stringData") {
        let data = map.entry("data").or_insert_with(|| Value::Object(Map::new()));
        if let Some(data) = data.as_object_mut() {
            for (k, val) in sd {
                let text = val.as_str().map(str::to_string).unwrap_or_else(|| val.to_string());
                data.insert(k, Value::String(base64::engine::general_purpose::STANDARD.encode(text)));
            }
        }
    }
    v
}

/// The hash annotation of a live object, if any.
pub fn live_hash(live: &Value) -> Option<&str> {
    live.pointer("/metadata/annotations")?.get(HASH_ANNOTATION)?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_and_container_ports_get_tcp() {
        let mut svc = json!({"kind": "Service", "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}});
        default_port_protocols(&mut svc);
        assert_eq!(svc["spec"]["ports"], json!([{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]));
        let mut dep = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "ports": [{"containerPort": 8080}]},
        ]}}}});
        default_port_protocols(&mut dep);
        assert_eq!(dep.pointer("/spec/template/spec/containers/0/ports/0/protocol"), Some(&json!("TCP")));
    }

    #[test]
    fn prepare_labels_and_hashes_stably() {
        let a = prepare(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}}),
            "applyset-abc-v1",
        );
        let b = prepare(
            &json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"a": "1"}, "metadata": {"name": "x"}}),
            "applyset-abc-v1",
        );
        assert_eq!(a, b, "key order does not matter");
        assert_eq!(a["metadata"]["labels"][crate::applyset::PART_OF_LABEL], "applyset-abc-v1");
        let c = prepare(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "2"}}),
            "applyset-abc-v1",
        );
        assert_ne!(live_hash(&a), live_hash(&c));
    }

    #[test]
    fn namespaces_record_who_created_them() {
        let id = crate::applyset::Identity::namespaces("shop", "prod");
        let ns = prepare_for(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}), &id);
        assert_eq!(crate::applyset::created_by(&ns), Some("shop/prod"));
        assert_eq!(ns["metadata"]["labels"][crate::applyset::PART_OF_LABEL], id.id());
        let cm = prepare_for(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}), &id);
        assert_eq!(crate::applyset::created_by(&cm), None, "only Namespaces carry the mark");
    }
}
