//! The fingerprint `rebuild-check` compares: every managed object with what
//! the server assigns on its own taken out (identity, timestamps, status,
//! cluster IPs and node ports, owners' UIDs), so two builds of the same spec
//! compare equal and any difference is one a user would care about.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::FieldChange;
use crate::diff::{field_diff, strip_noise};

/// An object as the fingerprint keeps it.
pub fn normal_form(obj: &Value) -> Value {
    let mut v = strip_noise(obj);
    let kind = v["kind"].as_str().unwrap_or("").to_string();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for r in meta.get_mut("ownerReferences").and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(o) = r.as_object_mut() {
                o.remove("uid");
            }
        }
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
            a.remove("deployment.kubernetes.io/revision");
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    if kind == "Service"
        && let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut)
    {
        if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        spec.remove("healthCheckNodePort");
        for p in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(p) = p.as_object_mut() {
                p.remove("nodePort");
            }
        }
    }
    v
}

/// `Kind namespace/name` (or `Kind name`): the fingerprint's key.
pub fn key(obj: &Value) -> String {
    let kind = obj["kind"].as_str().unwrap_or("?");
    let name = obj["metadata"]["name"].as_str().unwrap_or("?");
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// A recorded fingerprint: each object's normal form and its digest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Objects by key.
    pub objects: BTreeMap<String, Value>,
}

impl Fingerprint {
    /// From live objects.
    pub fn of<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Self {
        Self { objects: objects.into_iter().map(|o| (key(o), normal_form(o))).collect() }
    }

    /// One digest for everything.
    pub fn digest(&self) -> String {
        crate::normalize::digest(&serde_json::to_value(&self.objects).unwrap_or_default())
    }
}

/// How an object differs between two builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DifferenceState {
    /// Gone after the rebuild.
    Missing,
    /// Only after the rebuild.
    New,
    /// In both, with different fields.
    Changed,
}

impl std::fmt::Display for DifferenceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Missing => "missing",
            Self::New => "new",
            Self::Changed => "changed",
        })
    }
}

/// One difference between two builds.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// `Kind namespace/name`.
    pub object: String,
    /// Missing, new or changed.
    pub state: DifferenceState,
    /// For `changed`: the fields (Secret values masked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

/// What differs from `before` to `after`.
pub fn compare(before: &Fingerprint, after: &Fingerprint) -> Vec<Difference> {
    let mut out = Vec::new();
    for (k, b) in &before.objects {
        match after.objects.get(k) {
            None => out.push(Difference { object: k.clone(), state: DifferenceState::Missing, fields: vec![] }),
            Some(a) if crate::normalize::digest(a) != crate::normalize::digest(b) => {
                let kind = b["kind"].as_str().unwrap_or("");
                out.push(Difference {
                    object: k.clone(),
                    state: DifferenceState::Changed,
                    fields: field_diff(kind, b, a),
                });
            }
            Some(_) => {}
        }
    }
    for k in after.objects.keys().filter(|k| !before.objects.contains_key(*k)) {
        out.push(Difference { object: k.clone(), state: DifferenceState::New, fields: vec![] });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(uid: &str, ip: &str, suffix: &str) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "a", "uid": uid, "resourceVersion": "7",
                         "creationTimestamp": "t", "labels": {"x": suffix}},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "type": "NodePort",
                     "ports": [{"port": 80, "nodePort": 30000 + uid.len()}]},
            "status": {},
        })
    }

    #[test]
    fn what_the_server_assigns_is_not_a_difference() {
        let a = Fingerprint::of([&svc("u1", "10.0.0.1", "same")]);
        let b = Fingerprint::of([&svc("u22", "10.0.0.9", "same")]);
        assert!(compare(&a, &b).is_empty());
        assert_eq!(a.digest(), b.digest());
    }

    #[test]
    fn a_random_suffix_is_one() {
        let a = Fingerprint::of([&svc("u1", "10.0.0.1", "x7f2k")]);
        let b = Fingerprint::of([&svc("u1", "10.0.0.1", "p0q9z")]);
        let d = compare(&a, &b);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].state, DifferenceState::Changed);
        assert_eq!(d[0].fields[0].path, "metadata.labels.x");
        let c = Fingerprint::of([&json!({"kind": "ConfigMap", "metadata": {"name": "n", "namespace": "a"}})]);
        let states: Vec<DifferenceState> = compare(&a, &c).iter().map(|d| d.state).collect();
        assert_eq!(states, [DifferenceState::Missing, DifferenceState::New]);
    }
}
