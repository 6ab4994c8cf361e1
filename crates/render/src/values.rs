//! Values layering, lowest precedence first: the component's `values`, the
//! environment's `components.<c>.values`, then the environment's inline
//! `values: { <c>.path: value }`. Mappings merge deeply; anything else
//! (lists included) replaces; `null` deletes a key, as in Helm.

use std::path::Path;

use rekube_spec::{Diagnostic, Loaded, Pos, yaml_diagnostic, yaml_options};
use serde_json::{Map, Value};
use serde_saphyr::Spanned;

/// Deep-merges `over` onto `base`, as `helm -f a.yaml -f b.yaml` does: maps
/// merge, anything else replaces, and a `null` stays `null`, so that helm
/// deletes the key from the chart's defaults too. (Removing it here instead
/// would let the chart's default come back whenever an earlier layer had set
/// the key, and made merging a layer twice differ from merging it once.)
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.insert(k, Value::Null);
                } else if let Some(existing) = b.get_mut(&k) {
                    merge(existing, v);
                } else {
                    b.insert(k, v);
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Reads one values file (a YAML mapping), with positions in its errors
/// (boxed: a diagnostic is large, a value small).
pub fn read_values_file(path: &Path, shown: &Path) -> Result<Value, Box<Diagnostic>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Diagnostic::new(shown, None, None, format!("cannot read values file: {e}")))?;
    let v: Value =
        serde_saphyr::from_str_with_options(&text, yaml_options()).map_err(|e| yaml_diagnostic(shown, &text, &e))?;
    match v {
        Value::Object(_) => Ok(v),
        Value::Null => Ok(Value::Object(Map::new())),
        _ => Err(Box::new(
            Diagnostic::new(
                shown,
                Some(&text),
                Some(Pos { line: 1, column: 1 }),
                "a values file must be a mapping at the top level",
            )
            .hint("write `key: value` pairs, e.g. `replicas: 2`"),
        )),
    }
}

fn layer(loaded: &Loaded, entries: &[Spanned<Value>], into: &mut Value, diags: &mut Vec<Diagnostic>) {
    for entry in entries {
        match &entry.value {
            Value::String(file) => match read_values_file(&loaded.resolve(file), &loaded.dir.join(file)) {
                Ok(v) => merge(into, v),
                Err(d) => diags.push(*d),
            },
            Value::Object(_) => merge(into, entry.value.clone()),
            _ => {} // rejected by validation
        }
    }
}

/// The merged values of component `comp` in environment `env`.
pub fn component_values(loaded: &Loaded, env: &str, comp: &str) -> Result<Value, Vec<Diagnostic>> {
    let mut values = Value::Object(Map::new());
    let mut diags = Vec::new();
    if let Some(c) = loaded.spec.components.get(comp) {
        layer(loaded, &c.values, &mut values, &mut diags);
    }
    if let Some(e) = loaded.spec.environments.get(env) {
        if let Some(ec) = e.components.get(comp) {
            layer(loaded, &ec.values, &mut values, &mut diags);
        }
        for (key, v) in &e.values {
            if let Some(path) = key.strip_prefix(comp).and_then(|r| r.strip_prefix('.')) {
                let mut nested = v.value.clone();
                for part in path.rsplit('.') {
                    nested = Value::Object(Map::from_iter([(part.to_string(), nested)]));
                }
                merge(&mut values, nested);
            }
        }
    }
    if diags.is_empty() { Ok(values) } else { Err(diags) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_merge_lists_replace_null_stays_for_helm() {
        let mut base = json!({"image": {"repo": "nginx", "tag": "1"}, "args": ["a", "b"], "debug": true});
        merge(&mut base, json!({"image": {"tag": "2"}, "args": ["c"], "debug": null}));
        assert_eq!(base, json!({"image": {"repo": "nginx", "tag": "2"}, "args": ["c"], "debug": null}));
    }

    #[test]
    fn merging_a_layer_twice_is_merging_it_once() {
        // Found by fuzz/fuzz_targets/values_merge.rs: a null inside a new subtree
        // stayed on the first merge and was removed on the second.
        let over = json!({"=te": {"x": 1, "0B": null}, "ay:he:": {"x": 2}, "z": null});
        let mut base = json!({"base": {"x": 1, "y": [1, 2]}, "other": {"x": 1, "y": [1, 2]}});
        merge(&mut base, over.clone());
        let once = base.clone();
        merge(&mut base, over);
        assert_eq!(base, once);
    }
}
