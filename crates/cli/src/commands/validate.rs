//! `rekube validate`: every offline check, including rendering each
//! environment; nothing touches a cluster.

use serde_json::json;

use crate::Failure;
use crate::args::{Global, Output, RenderFlags};
use crate::commands::load_valid;
use crate::commands::render::render_env;
use crate::printer;
use rekube_engine::workspace::{environment, render_options};

pub async fn run(g: &Global, env: Option<&str>, flags: &RenderFlags) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    let envs: Vec<String> = match env {
        Some(e) => {
            environment(&loaded, e)?;
            vec![e.to_string()]
        }
        None => loaded.spec.environments.keys().cloned().collect(),
    };
    let mut objects = 0;
    let mut failed = false;
    for e in &envs {
        match render_env(&loaded, e, &render_options(&loaded, e, &flags.engine(), None)).await {
            Ok(r) => objects += r.objects().count(),
            Err(Failure::Reported) => failed = true,
            Err(other) => return Err(other),
        }
    }
    if failed {
        return Err(Failure::Reported);
    }
    let spec = &loaded.spec;
    match g.output {
        Output::Json => printer::json(&json!({
            "valid": true, "file": loaded.path, "environments": envs,
            "clusters": spec.clusters.len(), "components": spec.components.len(), "objects": objects,
        })),
        _ => printer::message(format!(
            "{}: valid ({} clusters, {} components, {} environments rendered: {objects} objects)",
            loaded.path.display(),
            spec.clusters.len(),
            spec.components.len(),
            envs.len()
        )),
    }
    Ok(0)
}
