//! The `rekube.yaml` model: parsing with positions, strict offline
//! validation, and diagnostics that name the file, line and column.
//!
//! Nothing in this crate touches a network or a cluster: it is the first
//! pipeline stage, and everything later trusts what it accepted.

pub mod diag;
pub mod diagram;
pub mod graph;
mod load;
pub mod lock;
pub mod model;
mod validate;

pub use diag::{Diagnostic, Diagnostics, Pos};
pub use load::{Loaded, load, parse, project_from_dir, yaml_diagnostic, yaml_options};
pub use lock::{LockFile, LockedChart};
pub use model::{
    Backup, BlueGreen, Check, Cluster, Component, ComponentPreview, CopyState, EnvComponent, Environment, HttpCheck,
    Prerequisite, Previews, Provider, Route53, Spec, Traffic,
};
pub use validate::bluegreen::{DEFAULT_COPY_KINDS, DEFAULT_SOAK, DEFAULT_STEPS, parse_soak};
pub use validate::{DEFAULT_PREVIEW_TTL, parse_ttl, preview_host};
pub use validate::{is_dns_label, validate};

/// Where editors find the schema; `rekube.schema.json` in this crate is a
/// generated copy (`tests/schema.rs` keeps it current).
const SCHEMA_ID: &str = "https://rekube.dev/schema/rekube.schema.json";

/// The JSON Schema (draft 07, which every YAML editor reads) of
/// `rekube.yaml`, pretty-printed without a trailing newline. It is derived
/// from the [`model`] types, so it accepts exactly the keys the parser does,
/// and their doc comments are its descriptions.
pub fn schema() -> String {
    let settings = schemars::generate::SchemaSettings::draft07().with_transform(unwrap_descriptions);
    let mut root = settings.into_generator().into_root_schema_for::<Spec>();
    root.insert("$id".into(), SCHEMA_ID.into());
    serde_json::to_string_pretty(&root).expect("a JSON Schema is plain JSON")
}

/// Joins the lines of wrapped doc comments, so that editors reflow them;
/// a blank line still separates paragraphs.
fn unwrap_descriptions(schema: &mut schemars::Schema) {
    if let Some(serde_json::Value::String(text)) = schema.get_mut("description") {
        *text = text.split("\n\n").map(|p| p.replace('\n', " ")).collect::<Vec<_>>().join("\n\n");
    }
    schemars::transform::transform_subschemas(&mut unwrap_descriptions, schema);
}
