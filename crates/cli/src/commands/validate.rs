//! `rekube validate`: every offline check, nothing touches a cluster.

use serde_json::json;

use crate::Failure;
use crate::args::{Global, Output};
use crate::commands::{environment, load_valid};
use crate::printer;

pub fn run(g: &Global, env: Option<&str>) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    if let Some(env) = env {
        environment(&loaded, env)?;
    }
    let spec = &loaded.spec;
    match g.output {
        Output::Json => printer::json(&json!({
            "valid": true,
            "file": loaded.path,
            "clusters": spec.clusters.len(),
            "components": spec.components.len(),
            "environments": spec.environments.len(),
        })),
        Output::Text => printer::message(format!(
            "{}: valid ({} clusters, {} components, {} environments)",
            loaded.path.display(),
            spec.clusters.len(),
            spec.components.len(),
            spec.environments.len()
        )),
    }
    Ok(0)
}
