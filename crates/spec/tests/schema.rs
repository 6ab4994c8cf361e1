//! The JSON Schema (for editors) must list exactly the keys the parser
//! accepts. The parser's own "unknown key" errors list the known keys at each
//! level, so the test asks it and compares.

use std::collections::BTreeSet;
use std::path::Path;

const SCHEMA: &str = include_str!("../rekube.schema.json");

/// The keys the parser accepts where `probe` puts an unknown key `zzz`.
fn parser_keys(probe: &str) -> BTreeSet<String> {
    let err = rekube_spec::parse(Path::new("probe.yaml"), probe).unwrap_err();
    let hint = err.0[0].hint.clone().unwrap_or_default();
    let list = hint.strip_prefix("known keys here: ").unwrap_or_else(|| panic!("no key list for {probe:?}: {hint}"));
    list.split(", ").map(str::to_string).collect()
}

fn schema_keys(schema: &serde_json::Value, pointer: &str) -> BTreeSet<String> {
    schema
        .pointer(pointer)
        .and_then(|v| v.as_object())
        .unwrap_or_else(|| panic!("no {pointer}"))
        .keys()
        .cloned()
        .collect()
}

#[test]
fn schema_lists_exactly_the_keys_the_parser_accepts() {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    let levels = [
        ("zzz: 1\n", "/properties"),
        ("clusters: {a: {provider: local, zzz: 1}}\n", "/definitions/cluster/properties"),
        ("components: {a: {zzz: 1}}\n", "/definitions/component/properties"),
        ("components: {a: {chart: {zzz: 1}}}\n", "/definitions/chart/properties"),
        ("components: {a: {ignore-differences: [{paths: [x], zzz: 1}]}}\n", "/definitions/ignoreRule/properties"),
        ("environments: {a: {cluster: b, zzz: 1}}\n", "/definitions/environment/properties"),
        ("backup: {store: x, zzz: 1}\n", "/definitions/backup/properties"),
        (
            "clusters: {a: {provider: local, prerequisites: [{name: n, check: [t], create: [t], zzz: 1}]}}\n",
            "/definitions/prerequisite/properties",
        ),
        (
            "environments: {a: {cluster: b, components: {c: {zzz: 1}}}}\n",
            "/definitions/environment/properties/components/additionalProperties/properties",
        ),
    ];
    for (probe, pointer) in levels {
        assert_eq!(parser_keys(probe), schema_keys(&schema, pointer), "schema at {pointer}");
    }
}

#[test]
fn example_platform_uses_only_schema_keys() {
    // The example parses, so its keys are known; this guards the schema's enum too.
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    let providers = schema.pointer("/definitions/cluster/properties/provider/enum").unwrap().as_array().unwrap().len();
    assert_eq!(providers, 5);
    rekube_spec::load(Path::new("../../examples/platform/rekube.yaml")).unwrap();
}
