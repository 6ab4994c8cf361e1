//! The JSON Schema (for editors) is derived from the model, and must list
//! exactly the keys the parser accepts. The parser's own "unknown key" errors
//! list the known keys at each level, so the test asks it and compares.
//! `rekube.schema.json` is a generated copy for editors that point at the
//! file; a test keeps it equal to `schema()`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

/// The generated copy, next to `Cargo.toml`.
const SCHEMA_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/rekube.schema.json");

fn schema() -> Value {
    serde_json::from_str(&rekube_spec::schema()).unwrap()
}

/// The keys the parser accepts where `probe` puts an unknown key `zzz`.
fn parser_keys(probe: &str) -> BTreeSet<String> {
    let err = rekube_spec::parse(Path::new("probe.yaml"), probe).unwrap_err();
    let hint = err.0[0].hint.clone().unwrap_or_default();
    let list = hint.strip_prefix("known keys here: ").unwrap_or_else(|| panic!("no key list for {probe:?}: {hint}"));
    list.split(", ").map(str::to_string).collect()
}

/// Follows `$ref`s (draft 07 wraps one that has a description in `allOf`),
/// and looks through `Option`'s `anyOf: [T, null]`.
fn deref<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    loop {
        if let Some(target) = node.get("$ref").and_then(Value::as_str) {
            let pointer = target.strip_prefix('#').unwrap_or_else(|| panic!("external $ref {target}"));
            node = root.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {target}"));
        } else if let Some([inner]) = node.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            node = inner;
        } else if let Some(any) = node.get("anyOf").and_then(Value::as_array)
            && let [inner] = any.iter().filter(|s| s.get("type") != Some(&"null".into())).collect::<Vec<_>>()[..]
        {
            node = inner;
        } else {
            return node;
        }
    }
}

/// The schema of the value at `path` (keys, or `*` for any map key or list
/// item), wherever the generator put it.
fn schema_at<'a>(root: &'a Value, path: &[&str]) -> &'a Value {
    let mut node = deref(root, root);
    for (i, step) in path.iter().enumerate() {
        let next = match *step {
            "*" if node.get("type") == Some(&"array".into()) => node.get("items"),
            "*" => node.get("additionalProperties"),
            key => node.get("properties").and_then(|p| p.get(key)),
        };
        let next = next.unwrap_or_else(|| panic!("the schema has nothing at {:?}", &path[..=i]));
        node = deref(root, next);
    }
    node
}

/// The keys the schema allows at `path`, after checking it allows no others.
fn schema_keys(root: &Value, path: &[&str]) -> BTreeSet<String> {
    let node = schema_at(root, path);
    assert_eq!(node.get("additionalProperties"), Some(&false.into()), "the schema allows any key at {path:?}");
    node["properties"].as_object().unwrap_or_else(|| panic!("no properties at {path:?}")).keys().cloned().collect()
}

/// The strings an enum's schema allows: `enum`, or `oneOf` of `const`s (which
/// carry each variant's description).
fn enum_values(node: &Value) -> BTreeSet<String> {
    let values: Vec<&Value> = match (node.get("enum"), node.get("oneOf")) {
        (Some(Value::Array(values)), _) => values.iter().collect(),
        (_, Some(Value::Array(variants))) => variants
            .iter()
            .flat_map(|v| match (v.get("const"), v.get("enum")) {
                (Some(c), _) => vec![c],
                (_, Some(Value::Array(e))) => e.iter().collect(),
                _ => panic!("not a string variant: {v}"),
            })
            .collect(),
        _ => panic!("not an enum: {node}"),
    };
    values.into_iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

#[test]
fn schema_lists_exactly_the_keys_the_parser_accepts() {
    let schema = schema();
    let levels: [(&str, &[&str]); 9] = [
        ("zzz: 1\n", &[]),
        ("clusters: {a: {provider: local, zzz: 1}}\n", &["clusters", "*"]),
        ("components: {a: {zzz: 1}}\n", &["components", "*"]),
        ("components: {a: {chart: {zzz: 1}}}\n", &["components", "*", "chart"]),
        (
            "components: {a: {ignore-differences: [{paths: [x], zzz: 1}]}}\n",
            &["components", "*", "ignore-differences", "*"],
        ),
        ("environments: {a: {cluster: b, zzz: 1}}\n", &["environments", "*"]),
        ("backup: {store: x, zzz: 1}\n", &["backup"]),
        (
            "clusters: {a: {provider: local, prerequisites: [{name: n, check: [t], create: [t], zzz: 1}]}}\n",
            &["clusters", "*", "prerequisites", "*"],
        ),
        ("environments: {a: {cluster: b, components: {c: {zzz: 1}}}}\n", &["environments", "*", "components", "*"]),
    ];
    for (probe, path) in levels {
        assert_eq!(parser_keys(probe), schema_keys(&schema, path), "schema at {path:?}");
    }
}

#[test]
fn schema_lists_the_enums_and_rules_that_validation_enforces() {
    let schema = schema();
    let providers = enum_values(schema_at(&schema, &["clusters", "*", "provider"]));
    assert_eq!(providers, ["local", "existing", "kind", "k3d", "exec"].map(String::from).into());
    for provider in &providers {
        let spec = rekube_spec::parse(Path::new("p.yaml"), &format!("clusters: {{a: {{provider: {provider}}}}}\n"));
        assert_eq!(spec.unwrap().clusters["a"].provider.value.as_str(), provider);
    }

    let kebab = schema_at(&schema, &["components"])["propertyNames"]["pattern"].as_str().unwrap();
    assert_eq!(schema_at(&schema, &["project"])["pattern"], kebab);
    assert_eq!(schema_at(&schema, &["components", "*", "namespace"])["pattern"], kebab);
    assert_eq!(schema_at(&schema, &["backup", "keep"])["minimum"], 1);
    assert_eq!(schema_at(&schema, &["components", "*", "ignore-differences", "*", "paths"])["minItems"], 1);
    let required = &schema_at(&schema, &["clusters", "*"])["required"];
    assert_eq!(required, &serde_json::json!(["provider"]));
    let values = schema_at(&schema, &["components", "*", "values", "*"])["anyOf"].as_array().unwrap();
    let types: Vec<&Value> = values.iter().map(|v| &v["type"]).collect();
    assert_eq!(types, ["string", "object"]);
}

#[test]
fn generated_schema_file_is_current() {
    let want = format!("{}\n", rekube_spec::schema());
    let have = std::fs::read_to_string(SCHEMA_FILE).unwrap_or_default();
    if have == want {
        return;
    }
    if std::env::var_os("REKUBE_UPDATE_SCHEMA").is_some_and(|v| v == "1") {
        std::fs::write(SCHEMA_FILE, want).unwrap();
        return;
    }
    panic!(
        "crates/spec/rekube.schema.json differs from rekube_spec::schema() (the model changed); \
         regenerate it with `REKUBE_UPDATE_SCHEMA=1 cargo test -p rekube-spec --test schema`"
    );
}

#[test]
fn example_platform_uses_only_schema_keys() {
    // The example parses, so its keys are known to the parser, hence to the schema.
    rekube_spec::load(Path::new("../../examples/platform/rekube.yaml")).unwrap();
}
