//! One module per command family; each turns arguments into calls on the
//! library crates and hands results to the printer.

mod backup;
mod cluster;
mod converge;
mod internal;
mod progress;
mod render;
mod validate;

use std::path::PathBuf;

use rekube_spec::{Diagnostic, Loaded};

use crate::Failure;
use crate::args::{Cli, Command, Global};
use crate::printer;

/// Runs one command; `Ok` carries the exit code.
pub async fn run(cli: Cli) -> Result<u8, Failure> {
    let g = &cli.global;
    match &cli.command {
        Command::Validate { env, render } => validate::run(g, env.as_deref(), render).await,
        Command::Render { env, components, render } => render::render(g, env, components, render).await,
        Command::Plan { env, detailed_exitcode, select, render } => {
            converge::plan(g, env, *detailed_exitcode, select, render).await
        }
        Command::Apply { env, dry_run, no_wait, concurrency, timeout, adopt, select, render } => {
            let opts = rekube_kube::ApplyOptions {
                concurrency: *concurrency,
                timeout: std::time::Duration::from_secs(*timeout),
                dry_run: *dry_run,
                no_wait: *no_wait,
                adopt: *adopt,
                ..Default::default()
            };
            converge::apply(g, env, opts, select, render).await
        }
        Command::Drift { env, watch: false, render, .. } => converge::drift(g, env, render).await,
        Command::Drift { env, watch: true, interval, render } => converge::watch_drift(g, env, *interval, render).await,
        Command::Destroy { env, timeout } => converge::destroy(g, env, *timeout).await,
        Command::Lock { check, update } => render::lock(g, *check, *update).await,
        Command::Up { env } => cluster::up(g, env).await,
        Command::Down { env, force, timeout } => cluster::down(g, env, *force, *timeout).await,
        Command::RebuildCheck { env } => cluster::rebuild_check(g, env).await,
        Command::Status { env } => cluster::status(g, env.as_deref()).await,
        Command::Graph { env, format, health } => cluster::graph(g, env, *format, *health).await,
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut <Cli as clap::CommandFactory>::command(), "rekube", &mut out);
            printer::data(String::from_utf8_lossy(&out).trim_end());
            Ok(0)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut out)?;
            printer::data(String::from_utf8_lossy(&out).trim_end());
            Ok(0)
        }
        Command::Backup(cmd) => backup::run(g, cmd).await,
        Command::Schema => {
            printer::data(rekube_spec::SCHEMA.trim_end());
            Ok(0)
        }
        Command::Internal(cmd) => internal::run(cmd).await,
    }
}

/// Loads and validates the spec, printing diagnostics (and warnings) itself.
pub fn load_valid(g: &Global) -> Result<Loaded, Failure> {
    let loaded = rekube_spec::load(&g.file).map_err(|d| {
        printer::diagnostics(&d);
        Failure::Reported
    })?;
    match rekube_spec::validate(&loaded) {
        Ok(warnings) => {
            for w in warnings {
                printer::diagnostics(&w);
            }
            Ok(loaded)
        }
        Err(d) => {
            printer::diagnostics(&d);
            Err(Failure::Reported)
        }
    }
}

/// The environment's cluster as its provider sees it, and its prerequisites.
pub fn provider_cluster(
    loaded: &Loaded,
    env: &str,
) -> Result<(rekube_cluster::provider::Cluster, Vec<rekube_cluster::prereq::Prerequisite>), Failure> {
    use rekube_cluster::provider::{Cluster, Kind};
    use rekube_spec::Provider;
    let e = environment(loaded, env)?;
    let name = e.cluster.value.clone();
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
        .map(|p| rekube_cluster::prereq::Prerequisite {
            name: p.value.name.clone(),
            check: p.value.check.clone(),
            create: p.value.create.clone(),
            delete: p.value.delete.clone(),
        })
        .collect();
    Ok((cluster, prereqs))
}

/// Where the spec is, as parents record it: `host:/absolute/path/rekube.yaml`.
pub fn spec_source(loaded: &Loaded) -> String {
    let path = std::fs::canonicalize(&loaded.path).unwrap_or_else(|_| loaded.path.clone());
    format!("{}:{}", rekube_kube::lease::hostname(), path.display())
}

/// The project's name, and where the spec is when that name is implicit
/// (the directory's): the kube crate refuses another spec's ApplySets then.
pub fn project_scope(loaded: &Loaded) -> (String, Option<String>) {
    let (name, explicit) = loaded.project();
    (name, (!explicit).then(|| spec_source(loaded)))
}

/// Where rekube keeps local state for this spec: `<spec dir>/.rekube`.
pub fn state_root(loaded: &Loaded) -> PathBuf {
    loaded.dir.join(".rekube")
}

/// Fails unless every name in `names` is a declared component.
pub fn check_components(loaded: &Loaded, names: &[String]) -> Result<(), Failure> {
    match names.iter().find(|c| !loaded.spec.components.contains_key(*c)) {
        None => Ok(()),
        Some(c) => {
            let declared: Vec<&str> = loaded.spec.components.keys().map(String::as_str).collect();
            Err(Failure::Error(
                anyhow::anyhow!("no component `{c}`"),
                Some(format!("declared components: {}", declared.join(", "))),
            ))
        }
    }
}

/// The environment named `env`, or a diagnostic naming the declared ones.
pub fn environment<'a>(loaded: &'a Loaded, env: &str) -> Result<&'a rekube_spec::Environment, Failure> {
    loaded.spec.environments.get(env).ok_or_else(|| {
        let names: Vec<&str> = loaded.spec.environments.keys().map(String::as_str).collect();
        let hint = match rekube_spec::diag::did_you_mean(env, names.iter().copied()) {
            Some(best) => format!("did you mean `{best}`?"),
            None if names.is_empty() => "declare it under `environments:`".to_string(),
            None => format!("declared environments: {}", names.join(", ")),
        };
        let d = Diagnostic::new(&loaded.path, None, None, format!("no environment `{env}`")).hint(hint);
        printer::diagnostics(&d);
        Failure::Reported
    })
}
