//! Producing a component's raw YAML: `helm template` of a local or published
//! chart, the files of a plain-YAML directory, or `kubectl kustomize`.

use std::path::{Path, PathBuf};

use rekube_spec::{Diagnostic, Diagnostics, Loaded, LockFile, Pos};
use tokio::process::Command;

use crate::helm::{ChartCache, Helm, RenderCache, dir_digest, find_tool, render_key};
use crate::{RenderError, RenderOptions, shown, values};

pub(crate) struct Ctx<'a> {
    pub loaded: &'a Loaded,
    pub env: &'a str,
    pub lock: Option<&'a LockFile>,
    pub opts: &'a RenderOptions,
    pub helm: Option<&'a Helm>,
}

pub(crate) enum Src {
    File(PathBuf),
    Helm,
    Kustomize(PathBuf),
}

pub(crate) struct Raw {
    pub streams: Vec<(String, Src)>,
    pub cached: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RenderError {
    let path = path.to_path_buf();
    move |source| RenderError::Io { path, cause: source }
}

pub(crate) async fn produce(ctx: &Ctx<'_>, name: &str) -> Result<Raw, RenderError> {
    let comp = &ctx.loaded.spec.components[name];
    if let Some(chart) = &comp.chart {
        return chart_output(ctx, name, &chart.value).await;
    }
    let rel = comp.manifests.as_ref().map(|m| m.value.clone()).unwrap_or_default();
    let dir = ctx.loaded.resolve(&rel);
    if ["kustomization.yaml", "kustomization.yml", "Kustomization"].iter().any(|k| dir.join(k).is_file()) {
        return kustomize(ctx, &dir, &shown(ctx.loaded, Path::new(&rel))).await;
    }
    plain(&dir, &shown(ctx.loaded, Path::new(&rel)))
}

fn plain(dir: &Path, shown_dir: &Path) -> Result<Raw, RenderError> {
    fn walk(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), RenderError> {
        let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(io(dir))?.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let path = e.path();
            if path.is_dir() {
                walk(&path, &rel.join(&name), out)?;
            } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json") {
                out.push(rel.join(&name));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    if dir.is_file() {
        let text = std::fs::read_to_string(dir).map_err(io(dir))?;
        return Ok(Raw { streams: vec![(text, Src::File(shown_dir.to_path_buf()))], cached: false });
    }
    walk(dir, Path::new(""), &mut files)?;
    let mut streams = Vec::new();
    for rel in files {
        let path = dir.join(&rel);
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        streams.push((text, Src::File(shown_dir.join(&rel))));
    }
    Ok(Raw { streams, cached: false })
}

async fn kustomize(ctx: &Ctx<'_>, dir: &Path, shown_dir: &Path) -> Result<Raw, RenderError> {
    let digest = dir_digest(dir).map_err(io(dir))?;
    let key = render_key(&["kustomize", &digest]);
    let cache = RenderCache::new(&ctx.opts.cache_dir);
    if ctx.opts.use_cache
        && let Some(text) = cache.get(&key)
    {
        return Ok(Raw { streams: vec![(text, Src::Kustomize(shown_dir.to_path_buf()))], cached: true });
    }
    let bin = find_tool(&ctx.opts.cache_dir, ctx.opts.kubectl.as_deref(), "REKUBE_KUBECTL", "kubectl");
    let what = format!("kubectl kustomize {}", shown_dir.display());
    let mut cmd = Command::new(&bin);
    cmd.arg("kustomize").arg(dir);
    let out = crate::within(ctx.opts.tool_timeout, &what, crate::bounded_output(cmd, &what))
        .await??
        .map_err(|e| RenderError::ToolMissing { tool: "kubectl".into(), detail: format!("{}: {e}", bin.display()) })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(RenderError::Invalid(Diagnostics(vec![
            Diagnostic::new(shown_dir, None, None, format!("kustomize failed: {stderr}"))
                .hint("run `kubectl kustomize` on this directory to see the problem"),
        ])));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if ctx.opts.use_cache {
        cache.put(&key, &text);
    }
    Ok(Raw { streams: vec![(text, Src::Kustomize(shown_dir.to_path_buf()))], cached: false })
}

async fn chart_output(ctx: &Ctx<'_>, name: &str, chart: &rekube_spec::model::ChartRef) -> Result<Raw, RenderError> {
    let helm = ctx.helm.expect("helm is discovered when a chart is rendered");
    let comp = &ctx.loaded.spec.components[name];
    // Resolve the chart to a path and a digest.
    let (chart_path, digest, local_dir) = match (&chart.path, &chart.repo, &chart.name) {
        (Some(p), _, _) => {
            let path = ctx.loaded.resolve(&p.value);
            let digest = dir_digest(&path).map_err(io(&path))?;
            (std::path::absolute(&path).unwrap_or(path.clone()), digest, Some(path))
        }
        (None, Some(repo), Some(chart_name)) => {
            let entry = ctx.lock.and_then(|l| l.charts.get(name));
            let version = entry
                .map(|e| e.version.clone())
                .or_else(|| chart.version.as_ref().map(|v| v.value.clone()))
                .unwrap_or_default();
            let cache = ChartCache::new(&ctx.opts.cache_dir);
            let (path, digest) =
                cache.fetch(helm, &repo.value, &chart_name.value, &version, entry.map(|e| e.digest.as_str())).await?;
            (path, digest, None)
        }
        _ => unreachable!("validated: a chart has a path or a repo and name"),
    };
    let values =
        values::component_values(ctx.loaded, ctx.env, name).map_err(|d| RenderError::Invalid(Diagnostics(d)))?;
    let values_json = serde_json::to_string(&values).expect("values serialise");
    let namespace = comp.namespace.as_ref().map_or("default", |n| n.value.as_str());
    let kube_version = ctx.opts.kube_version.as_deref();
    let api_versions = ctx.opts.api_versions.join(",");
    let release = ctx.opts.release_prefix.as_ref().map_or_else(|| name.to_string(), |p| format!("{p}-{name}"));
    let key = render_key(&[
        "helm",
        &helm.version,
        &digest,
        &release,
        namespace,
        &values_json,
        kube_version.unwrap_or(""),
        &api_versions,
    ]);
    let cache = RenderCache::new(&ctx.opts.cache_dir);
    if ctx.opts.use_cache
        && let Some(text) = cache.get(&key)
    {
        return Ok(Raw { streams: vec![(text, Src::Helm)], cached: true });
    }
    let values_file = tempfile::Builder::new().suffix(".json").tempfile().map_err(io(Path::new("values.json")))?;
    std::fs::write(values_file.path(), &values_json).map_err(io(values_file.path()))?;
    let text = helm
        .template(&release, &chart_path, namespace, values_file.path(), kube_version, &ctx.opts.api_versions)
        .await
        .map_err(|e| template_diagnostic(ctx.loaded, name, local_dir.as_deref(), e))?;
    if ctx.opts.use_cache {
        cache.put(&key, &text);
    }
    Ok(Raw { streams: vec![(text, Src::Helm)], cached: false })
}

/// Turns helm's "template: chart/templates/x.yaml:9:23: ..." (or
/// "parse error at (chart/templates/x.yaml:5): ...") into a diagnostic
/// pointing into the template file of a local chart.
fn template_diagnostic(loaded: &Loaded, comp: &str, chart_dir: Option<&Path>, err: RenderError) -> RenderError {
    let RenderError::Helm { stderr, .. } = &err else { return err };
    // helm v4: "Error: <file:line:col>\n  executing ...:\n    nil pointer ...";
    // older: "Error: template: <file:line:col>: executing ...". Join the
    // lines, and leave out the advice about --debug.
    let msg = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Use --debug"))
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("Error: ")
        .to_string();
    let located = msg.split(['(', ' ']).find_map(|word| {
        let mut parts = word.trim_end_matches([')', ':']).splitn(3, ':');
        let file = parts.next()?;
        let line: u64 = parts.next()?.parse().ok()?;
        let column: u64 = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1);
        file.contains("/templates/").then(|| (file.to_string(), Pos { line, column }))
    });
    let Some((file, pos)) = located else {
        let hint = if msg.contains("missing in charts/ directory") {
            "rekube renders charts offline from their directory: vendor the dependencies with \
             `helm dependency build <chart dir>`, or take the chart from a repository"
                .to_string()
        } else if msg.contains("Chart.yaml file is missing") {
            "a chart directory needs a Chart.yaml (`helm create` makes one); check the component's `chart.path`"
                .to_string()
        } else {
            format!("`helm template` on the chart, with the values of component `{comp}`, shows the same error")
        };
        return RenderError::Invalid(Diagnostics(vec![
            Diagnostic::new(
                Path::new(&format!("component `{comp}`")),
                None,
                None,
                format!("helm template failed: {msg}"),
            )
            .hint(hint),
        ]));
    };
    // "hello/templates/x.yaml" is relative to the chart's parent directory.
    let (path, source) = match chart_dir {
        Some(dir) => {
            let rel = file.split_once('/').map_or(file.as_str(), |(_, r)| r);
            let path = dir.join(rel);
            let source = std::fs::read_to_string(&path).ok();
            let p: PathBuf = path.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect();
            (p, source)
        }
        None => (PathBuf::from(&file), None),
    };
    let _ = loaded;
    // The position is shown by the diagnostic; keep the cause in the message.
    let cause = msg
        .replace("template: ", "")
        .replace(&format!("{file}:{}:{}", pos.line, pos.column), "")
        .replace(&format!(" at ({file}:{})", pos.line), "");
    let cause = cause.trim_start_matches([':', ' ']).to_string();
    RenderError::Invalid(Diagnostics(vec![
        Diagnostic::new(&path, source.as_deref(), Some(pos), format!("helm template failed: {cause}")).hint(format!(
            "check the values given to component `{comp}`; `rekube render --component {comp}` shows them applied"
        )),
    ]))
}
