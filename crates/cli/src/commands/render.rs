//! `rekube render` and `rekube lock`, and the rendering shared with
//! `validate` (and later `plan`/`apply`).

use std::collections::BTreeSet;

use rekube_render::{ChartCache, Helm, RenderError, RenderOptions, Rendered};
use rekube_spec::{Loaded, Provider};
use serde_json::json;

use crate::Failure;
use crate::args::{Global, Output, RenderFlags};
use crate::commands::{check_components, environment, load_valid};
use crate::printer;

/// Render options for environment `env`: the cluster's Kubernetes version
/// for helm's `--kube-version`, when it is known offline.
pub fn options(loaded: &Loaded, env: &str, flags: &RenderFlags, only: Option<BTreeSet<String>>) -> RenderOptions {
    let cluster = loaded.spec.environments.get(env).and_then(|e| loaded.spec.clusters.get(&e.cluster.value));
    let kube_version = cluster.and_then(|c| match (c.provider.value, &c.kubernetes) {
        (_, Some(v)) => Some(v.value.clone()),
        // A local cluster without a version runs the newest build.
        (Provider::Local, None) => {
            rekube_cluster::local::builds(&rekube_cluster::local::cache_dir().join("k8s")).pop().map(|(v, _)| v)
        }
        _ => None,
    });
    RenderOptions {
        cache_dir: rekube_cluster::local::cache_dir(),
        kube_version,
        api_versions: Vec::new(),
        concurrency: flags.render_concurrency,
        use_cache: !flags.no_cache,
        only,
        helm: None,
        kubectl: None,
    }
}

fn read_lock(loaded: &Loaded) -> Result<Option<rekube_spec::LockFile>, Failure> {
    rekube_spec::lock::read_lock(&rekube_spec::lock::lock_path(loaded)).map_err(|d| {
        printer::diagnostics(&d);
        Failure::Reported
    })
}

/// Renders `env`, printing diagnostics (and warnings) itself.
pub async fn render_env(loaded: &Loaded, env: &str, opts: &RenderOptions) -> Result<Rendered, Failure> {
    let lock = read_lock(loaded)?;
    match rekube_render::render(loaded, env, lock.as_ref(), opts).await {
        Ok(r) => {
            for w in &r.warnings {
                printer::diagnostics(w);
            }
            Ok(r)
        }
        Err(RenderError::Invalid(d)) => {
            printer::diagnostics(&d);
            Err(Failure::Reported)
        }
        Err(e) => {
            let hint = match &e {
                RenderError::ToolMissing { .. } => Some("scripts/testbed-setup.sh installs helm and kubectl into rekube's cache".to_string()),
                RenderError::Component { source, .. } if matches!(**source, RenderError::DigestMismatch { .. }) => {
                    Some("do not apply it: check with the chart's publisher; if the change is expected, run `rekube lock --update`".to_string())
                }
                _ => None,
            };
            Err(Failure::Error(e.into(), hint))
        }
    }
}

pub async fn render(g: &Global, env: &str, components: &[String], flags: &RenderFlags) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    environment(&loaded, env)?;
    check_components(&loaded, components)?;
    let only = (!components.is_empty()).then(|| components.iter().cloned().collect());
    let rendered = render_env(&loaded, env, &options(&loaded, env, flags, only)).await?;
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
    let helm = Helm::discover(&cache_dir, None).await?;
    let lock = rekube_render::lock::resolve(&loaded, old.as_ref(), &helm, &ChartCache::new(&cache_dir), update).await?;
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
