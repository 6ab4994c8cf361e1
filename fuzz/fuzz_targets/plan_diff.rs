//! The plan's diff and masking: two objects (YAML, split at the first `---`
//! line) of a kind picked by the first byte are diffed, checked for drift
//! and printed; a Secret's values never appear in what is printed.
#![no_main]

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use rekube_plan::{diff, drift, fingerprint};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let (a, b) = text.split_once("\n---\n").unwrap_or((text, "{}"));
    let (Ok(before), Ok(after)) = (serde_saphyr::from_str::<Value>(a), serde_saphyr::from_str::<Value>(b)) else {
        return;
    };
    let kind = ["Secret", "ConfigMap", "Deployment", "Service"][usize::from(pick % 4)];
    let changes = diff::field_diff(kind, &before, &after);
    let drifted = drift::object_drift(kind, &before, &after, "rekube", &["spec.replicas".to_string()]);
    let _ = fingerprint::normal_form(&before);
    let _ = fingerprint::key(&after);
    let _ = diff::strip_noise(&after);
    let shown = format!("{changes:?}{drifted:?}");
    // What the objects say outside their secret parts (a value may be there too, as a kind or a name).
    let plain: String = [&before, &after]
        .iter()
        .map(|o| {
            let mut o = (*o).clone();
            if let Some(m) = o.as_object_mut() {
                m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "type" | "immutable" | "metadata"));
            }
            if let Some(Value::Object(meta)) = o.get_mut("metadata") {
                meta.remove("annotations");
            }
            format!("{o:?}")
        })
        .collect();
    if kind == "Secret" {
        for obj in [&before, &after] {
            for field in ["data", "stringData"] {
                let Some(Value::Object(m)) = obj.get(field) else { continue };
                for v in m.values() {
                    let Some(s) = v.as_str().filter(|s| s.len() >= 12 && !plain.contains(*s)) else { continue };
                    // Whole values only: a long value is never shown, nor its decoded form.
                    assert!(!shown.contains(s), "Secret value {s:?} shown: {shown}");
                    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(s)
                        && let Ok(plain_value) = String::from_utf8(bytes)
                        && plain_value.len() >= 12
                        && !plain.contains(&plain_value)
                    {
                        assert!(!shown.contains(&plain_value), "decoded Secret value shown: {shown}");
                    }
                }
            }
        }
    }
});
