//! What the spec says about one environment, before any cluster is asked:
//! its cluster and prerequisites as the providers see them, its state
//! directory, its identity on shared clusters, and its rendering.

use std::collections::BTreeSet;

use rekube_cluster::prereq::Prerequisite;
use rekube_cluster::provider::{Cluster, Kind};
use rekube_render::{RenderError, RenderOptions, Rendered};
use rekube_spec::{Diagnostic, Loaded, Provider};

use crate::EngineError;
use crate::colors::Colors;

pub use crate::journal::state_root;

/// Where the spec is, as parents record it: `host:/absolute/path/rekube.yaml`.
pub fn spec_source(loaded: &Loaded) -> String {
    let path = std::fs::canonicalize(&loaded.path).unwrap_or_else(|_| loaded.path.clone());
    format!("{}:{}", crate::lease::hostname(), path.display())
}

/// The project's name, and where the spec is when that name is implicit
/// (the directory's): the kube crate refuses another spec's ApplySets then.
pub fn project_scope(loaded: &Loaded) -> (String, Option<String>) {
    let (name, explicit) = loaded.project();
    (name, (!explicit).then(|| spec_source(loaded)))
}

/// The environment named `env`, or a diagnostic naming the declared ones.
pub fn environment<'a>(loaded: &'a Loaded, env: &str) -> Result<&'a rekube_spec::Environment, EngineError> {
    loaded.spec.environments.get(env).ok_or_else(|| {
        let names: Vec<&str> = loaded.spec.environments.keys().map(String::as_str).collect();
        let hint = match rekube_spec::diag::did_you_mean(env, names.iter().copied()) {
            Some(best) => format!("did you mean `{best}`?"),
            None if names.is_empty() => "declare it under `environments:`".to_string(),
            None => format!("declared environments: {}", names.join(", ")),
        };
        EngineError::Invalid(
            Diagnostic::new(&loaded.path, None, None, format!("no environment `{env}`")).hint(hint).to_string(),
        )
    })
}

/// Fails unless every name in `names` is a declared component.
pub fn check_components(loaded: &Loaded, names: &[String]) -> Result<(), EngineError> {
    match names.iter().find(|c| !loaded.spec.components.contains_key(*c)) {
        None => Ok(()),
        Some(c) => Err(EngineError::NoComponent {
            name: c.clone(),
            declared: loaded.spec.components.keys().cloned().collect(),
        }),
    }
}

/// The components `-c` selects (with what they need, when asked), or `None` for all.
pub fn selection(
    loaded: &Loaded,
    components: &[String],
    with_needs: bool,
) -> Result<Option<BTreeSet<String>>, EngineError> {
    if components.is_empty() {
        return Ok(None);
    }
    check_components(loaded, components)?;
    Ok(Some(if with_needs {
        rekube_spec::graph::with_needs(&loaded.spec, components)
    } else {
        components.iter().cloned().collect()
    }))
}

/// The environment's cluster as its provider sees it, and its prerequisites.
pub fn provider_cluster(loaded: &Loaded, env: &str) -> Result<(Cluster, Vec<Prerequisite>), EngineError> {
    let (name, recorded) = live(loaded, env)?;
    let (mut cluster, prereqs) = named_cluster(loaded, &name);
    if recorded.is_some() {
        cluster.kubernetes = recorded;
    }
    Ok((cluster, prereqs))
}

/// The name of the cluster `env` runs on: its `cluster:`, or the live color
/// of a blue/green environment, as recorded.
pub fn live_cluster(loaded: &Loaded, env: &str) -> Result<String, EngineError> {
    Ok(live(loaded, env)?.0)
}

/// [`live_cluster`], and the Kubernetes version recorded for it by
/// `upgrade --kubernetes`, from one read of the record.
fn live(loaded: &Loaded, env: &str) -> Result<(String, Option<String>), EngineError> {
    let e = environment(loaded, env)?;
    match (&e.cluster, Colors::read(loaded, env)?) {
        (Some(c), _) => Ok((c.value.clone(), None)),
        (None, Some(mut colors)) => {
            let version = colors.versions.remove(&colors.live);
            Ok((colors.live, version))
        }
        (None, None) => Err(EngineError::Invalid(format!("environment `{env}` names no cluster"))),
    }
}

/// Cluster `name` of the spec (validated: it is declared) as its provider
/// sees it, and its prerequisites.
pub fn named_cluster(loaded: &Loaded, name: &str) -> (Cluster, Vec<Prerequisite>) {
    let name = name.to_string();
    let c = &loaded.spec.clusters[&name];
    let kind = match c.provider.value {
        Provider::Local => Kind::Local { nodes: c.nodes.as_ref().map_or(1, |n| n.value) },
        Provider::Existing => Kind::Existing {
            kubeconfig: c.kubeconfig.as_ref().map(|k| loaded.resolve(&k.value)),
            context: c.context.as_ref().map(|x| x.value.clone()),
        },
        Provider::Kind => Kind::Kind,
        Provider::K3d => Kind::K3d,
        Provider::Exec => Kind::Exec {
            program: c
                .exec
                .as_ref()
                .map(|x| loaded.resolve(&x.value))
                .map(|p| std::path::absolute(&p).unwrap_or(p))
                .unwrap_or_default(),
        },
    };
    let state_dir = state_root(loaded).join("clusters").join(&name);
    let cluster = Cluster {
        name,
        kind,
        kubernetes: c.kubernetes.as_ref().map(|k| k.value.clone()),
        spec_dir: loaded.dir.clone(),
        state_dir: std::path::absolute(&state_dir).unwrap_or(state_dir),
    };
    let prereqs = c
        .prerequisites
        .iter()
        .map(|p| Prerequisite {
            name: p.value.name.clone(),
            check: p.value.check.clone(),
            create: p.value.create.clone(),
            delete: p.value.delete.clone(),
        })
        .collect();
    (cluster, prereqs)
}

/// How to render: rekube's cache, the render cache and concurrency.
#[derive(Debug, Clone)]
pub struct RenderFlags {
    /// Render every component again, ignoring the render cache.
    pub no_cache: bool,
    /// How many components render at once.
    pub concurrency: usize,
    /// Helm releases are `<prefix>-<component>` (a preview's).
    pub release_prefix: Option<String>,
}

impl Default for RenderFlags {
    fn default() -> Self {
        Self { no_cache: false, concurrency: 8, release_prefix: None }
    }
}

/// Render options for environment `env`: the cluster's Kubernetes version
/// for helm's `--kube-version`, when it is known offline.
pub fn render_options(
    loaded: &Loaded,
    env: &str,
    flags: &RenderFlags,
    only: Option<BTreeSet<String>>,
) -> RenderOptions {
    let (name, recorded) = live(loaded, env).map_or((None, None), |(n, v)| (Some(n), v));
    let cluster = name.as_ref().and_then(|n| loaded.spec.clusters.get(n));
    let kube_version = cluster.and_then(|c| {
        match (c.provider.value, recorded.or_else(|| c.kubernetes.as_ref().map(|k| k.value.clone()))) {
            (_, Some(v)) => Some(v),
            // A local cluster without a version runs the newest build.
            (Provider::Local, None) => {
                rekube_cluster::local::builds(&rekube_cluster::local::cache_dir().join("k8s")).pop().map(|(v, _)| v)
            }
            _ => None,
        }
    });
    RenderOptions {
        cache_dir: rekube_cluster::local::cache_dir(),
        kube_version,
        api_versions: Vec::new(),
        concurrency: flags.concurrency,
        use_cache: !flags.no_cache,
        only,
        helm: None,
        kubectl: None,
        release_prefix: flags.release_prefix.clone(),
        tool_timeout: render_tool_timeout(),
    }
}

/// How long one helm or kustomize run may take: `REKUBE_TOOL_TIMEOUT`,
/// else [`rekube_render::TOOL_TIMEOUT`].
pub fn render_tool_timeout() -> std::time::Duration {
    rekube_cluster::tool::timeout_override().ok().flatten().unwrap_or(rekube_render::TOOL_TIMEOUT)
}

/// The lock file, if the spec has one.
pub fn read_lock(loaded: &Loaded) -> Result<Option<rekube_spec::LockFile>, EngineError> {
    rekube_spec::lock::read_lock(&rekube_spec::lock::lock_path(loaded)).map_err(|d| EngineError::Invalid(d.to_string()))
}

/// Renders `env`. Warnings are in the result, for the caller to show.
pub async fn render(loaded: &Loaded, env: &str, opts: &RenderOptions) -> Result<Rendered, EngineError> {
    let lock = read_lock(loaded)?;
    rekube_render::render(loaded, env, lock.as_ref(), opts).await.map_err(|e| match e {
        RenderError::Invalid(d) => EngineError::Invalid(d.to_string()),
        e => EngineError::Render(e),
    })
}
