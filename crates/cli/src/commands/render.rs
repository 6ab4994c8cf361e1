//! `rekube render` and `rekube lock`, and the rendering shared with
//! `validate` (and later `plan`/`apply`).

use rekube_engine::workspace::{self, check_components, environment, read_lock, render_options};
use rekube_render::{ChartCache, Helm, RenderOptions, Rendered};
use rekube_spec::Loaded;
use serde_json::json;

use crate::Failure;
use crate::args::{Global, Output, RenderFlags};
use crate::commands::load_valid;
use crate::printer;

/// Renders `env`, printing its warnings.
pub async fn render_env(loaded: &Loaded, env: &str, opts: &RenderOptions) -> Result<Rendered, Failure> {
    let rendered = workspace::render(loaded, env, opts).await?;
    for w in &rendered.warnings {
        printer::diagnostics(w);
    }
    Ok(rendered)
}

pub async fn render(g: &Global, env: &str, components: &[String], flags: &RenderFlags) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    environment(&loaded, env)?;
    check_components(&loaded, components)?;
    let only = (!components.is_empty()).then(|| components.iter().cloned().collect());
    let rendered = render_env(&loaded, env, &render_options(&loaded, env, &flags.engine(), only)).await?;
    match g.output {
        Output::Json => {
            let items: Vec<_> = rendered.objects().map(|(_, o)| o.value.clone()).collect();
            printer::json(&json!({"apiVersion": "v1", "kind": "List", "items": items}));
        }
        Output::Text | Output::Yaml => {
            for (comp, obj) in rendered.objects() {
                let yaml = serde_saphyr::to_string(&obj.value).map_err(anyhow::Error::from)?;
                printer::data(format!(
                    "---\n# component: {comp}, from: {}\n{}",
                    obj.origin.file.display(),
                    yaml.trim_end()
                ));
            }
        }
    }
    let n: usize = rendered.components.iter().map(|c| c.objects.len()).sum();
    if g.output != Output::Json {
        printer::message(format!("rendered {n} objects from {} component(s)", rendered.spec_components().count()));
    }
    Ok(0)
}

pub async fn lock(g: &Global, check: bool, update: bool) -> Result<u8, Failure> {
    // The lock is what makes an unpinned spec valid, so only the spec itself
    // must be valid here: stale-lock errors are what `lock` fixes.
    let loaded = rekube_spec::load(&g.file).map_err(|d| {
        printer::diagnostics(&d);
        Failure::Reported
    })?;
    let path = rekube_spec::lock::lock_path(&loaded);
    let old = read_lock(&loaded)?;
    let problems = rekube_spec::lock::check_lock(&loaded, old.as_ref());
    let published = loaded.spec.components.values().any(|c| c.chart.as_ref().is_some_and(|ch| ch.value.repo.is_some()));
    if check {
        let missing = old.is_none() && published;
        if problems.is_empty() && !missing {
            if g.output == Output::Json {
                printer::json(&json!({"lock": path, "fresh": true}));
            } else {
                printer::message(format!("{}: up to date", path.display()));
            }
            return Ok(0);
        }
        for p in &problems {
            printer::diagnostics(p);
        }
        if missing {
            printer::diagnostics(
                rekube_spec::Diagnostic::new(&path, None, None, "no lock file, but the spec has published charts")
                    .hint("run `rekube lock` and commit rekube.lock"),
            );
        }
        if g.output == Output::Json {
            printer::json(&json!({"lock": path, "fresh": false, "problems": problems.len() + usize::from(missing)}));
        }
        return Err(Failure::Reported);
    }
    let cache_dir = rekube_cluster::local::cache_dir();
    let timeout = rekube_engine::workspace::render_tool_timeout();
    let helm = Helm::discover(&cache_dir, None).await.map_err(rekube_engine::EngineError::from)?.with_timeout(timeout);
    let lock = rekube_render::lock::resolve(&loaded, old.as_ref(), &helm, &ChartCache::new(&cache_dir), update)
        .await
        .map_err(rekube_engine::EngineError::from)?;
    rekube_spec::lock::write_lock(&path, &lock).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    match g.output {
        Output::Json => printer::json(&json!({"lock": path, "charts": lock.charts})),
        _ => {
            for (name, c) in &lock.charts {
                printer::message(format!("{name}: {} {} ({}) {}", c.name, c.version, c.constraint, &c.digest[..19]));
            }
            printer::message(format!("wrote {} ({} charts)", path.display(), lock.charts.len()));
        }
    }
    Ok(0)
}
