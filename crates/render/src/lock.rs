//! `rekube lock`: resolve every published chart to an exact version and the
//! sha256 of its archive.

use rekube_spec::{Loaded, LockFile, LockedChart};

use crate::RenderError;
use crate::helm::{ChartCache, Helm};

/// Resolves every component with a published chart. Entries whose constraint,
/// repo and name are unchanged keep their pin unless `update` is set, like
/// `cargo` keeps Cargo.lock.
pub async fn resolve(
    loaded: &Loaded,
    old: Option<&LockFile>,
    helm: &Helm,
    cache: &ChartCache,
    update: bool,
) -> Result<LockFile, RenderError> {
    let mut lock = LockFile { version: 1, charts: Default::default() };
    for (name, comp) in &loaded.spec.components {
        let Some(chart) = &comp.chart else { continue };
        let (Some(repo), Some(chart_name)) = (&chart.value.repo, &chart.value.name) else { continue };
        let constraint = chart.value.version.as_ref().map_or("latest".to_string(), |v| v.value.clone());
        let kept = old
            .and_then(|l| l.charts.get(name))
            .filter(|e| !update && e.repo == repo.value && e.name == chart_name.value && e.constraint == constraint);
        let entry = match kept {
            Some(e) => e.clone(),
            None => {
                let version = if rekube_spec::lock::is_exact_version(&constraint) {
                    constraint.clone()
                } else {
                    helm.resolve_version(&repo.value, &chart_name.value, &constraint).await?
                };
                let (_, digest) = cache.fetch(helm, &repo.value, &chart_name.value, &version, None).await?;
                LockedChart { repo: repo.value.clone(), name: chart_name.value.clone(), constraint, version, digest }
            }
        };
        lock.charts.insert(name.clone(), entry);
    }
    Ok(lock)
}
