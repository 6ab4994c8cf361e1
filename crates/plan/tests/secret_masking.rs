//! Property: no Secret value ever appears in a plan's text or JSON, or in a
//! drift report, whatever the Secret holds and however it changed (data,
//! stringData, kubectl's last-applied-configuration or any annotation that
//! copies the Secret, a whole map added or removed), in plain text or base64.

use base64::Engine;
use proptest::prelude::*;
use rekube_plan::applyset::Identity;
use rekube_plan::diff::field_diff;
use rekube_plan::drift::object_drift;
use rekube_plan::{Action, ComponentPlan, Op, Plan};
use serde_json::{Map, Value, json};

/// A secret value: long enough that finding it in text is never chance.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/=_!@#%^&*.-]{12,40}"
}

fn key() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9._-]{0,11}"
}

/// A Secret's fields: `data` (base64), `stringData`, and optionally the
/// last-applied annotation holding both in plain JSON.
#[derive(Debug, Clone)]
struct Fields {
    data: Vec<(String, String)>,
    string_data: Vec<(String, String)>,
    last_applied: bool,
    /// Another annotation that copies the Secret (any tool may).
    copy: Option<String>,
    label: String,
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        proptest::collection::vec((key(), secret()), 0..4),
        proptest::collection::vec((key(), secret()), 0..3),
        any::<bool>(),
        proptest::option::of("[a-z]{1,8}(\\.[a-z]{1,8})?/[a-z-]{1,12}|[a-z]{1,10}"),
        "[a-z]{1,8}",
    )
        .prop_map(|(data, string_data, last_applied, copy, label)| Fields {
            data,
            string_data,
            last_applied,
            copy,
            label,
        })
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn object(f: &Fields) -> Value {
    let data: Map<String, Value> = f.data.iter().map(|(k, v)| (k.clone(), Value::String(b64(v)))).collect();
    let string_data: Map<String, Value> = f.string_data.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let mut obj = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "app", "labels": {"tier": f.label}},
        "type": "Opaque",
    });
    if !data.is_empty() {
        obj["data"] = Value::Object(data);
    }
    if !string_data.is_empty() {
        obj["stringData"] = Value::Object(string_data);
    }
    let copy = serde_json::to_string(&obj).unwrap();
    let mut annotations = Map::new();
    if f.last_applied {
        annotations.insert("kubectl.kubernetes.io/last-applied-configuration".into(), json!(copy));
    }
    if let Some(key) = &f.copy {
        annotations.insert(key.clone(), json!(copy));
    }
    if !annotations.is_empty() {
        obj["metadata"]["annotations"] = Value::Object(annotations);
    }
    obj
}

fn secrets_of(fs: &[&Fields]) -> Vec<String> {
    fs.iter().flat_map(|f| f.data.iter().chain(&f.string_data)).flat_map(|(_, v)| [v.clone(), b64(v)]).collect()
}

fn plan_of(before: &Value, after: &Value) -> Plan {
    let changes = field_diff("Secret", before, after);
    let action = Action {
        op: Op::Update,
        api_version: "v1".into(),
        kind: "Secret".into(),
        namespace: Some("app".into()),
        name: "db".into(),
        changes,
        object: Some(after.clone()),
        owner: None,
        immutable: Vec::new(),
        reverts: object_drift("Secret", after, before, "rekube", &[]),
    };
    Plan {
        project: "shop".into(),
        environment: "dev".into(),
        cluster: "dev".into(),
        components: vec![ComponentPlan {
            name: "app".into(),
            identity: Identity::component("shop", "dev", "app"),
            wave: 0,
            needs: Vec::new(),
            removed: false,
            adopt: false,
            legacy_parent: None,
            parent_missing: false,
            actions: vec![action],
            hooks: Vec::new(),
            hook_digests: Default::default(),
            delete_hooks: Vec::new(),
            record_hooks: false,
        }],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_secret_value_reaches_plan_or_drift_text(before in fields(), after in fields()) {
        let (old, new) = (object(&before), object(&after));
        let plan = plan_of(&old, &new);
        let drift = object_drift("Secret", &old, &new, "rekube", &[]);
        let shown = [
            rekube_plan::text::plan(&plan),
            serde_json::to_string(&plan).unwrap(),
            serde_json::to_string(&drift).unwrap(),
            format!("{drift:?}"),
            format!("{:?}", plan.components[0].actions[0].changes),
        ];
        for s in secrets_of(&[&before, &after]) {
            for text in &shown {
                prop_assert!(!text.contains(&s), "secret {s:?} shown in:\n{text}");
            }
        }
        // The masking still says that something changed.
        if old.get("data") != new.get("data") {
            prop_assert!(plan.components[0].actions[0].changes.iter().any(|c| c.path.starts_with("data")));
        }
    }
}
