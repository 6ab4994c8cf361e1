//! One module per command family; each turns arguments into calls on the
//! library crates and hands results to the printer.

mod backup;
mod cluster;
mod converge;
mod internal;
mod preview;
mod progress;
mod render;
mod upgrade;
mod validate;

use rekube_spec::Loaded;

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
        Command::Apply { env, dry_run, no_wait, concurrency, timeout, adopt, force_replace, select, render } => {
            let opts = rekube_kube::ApplyOptions {
                concurrency: *concurrency,
                timeout: std::time::Duration::from_secs(*timeout),
                dry_run: *dry_run,
                no_wait: *no_wait,
                adopt: *adopt,
                force_replace: *force_replace,
                ..Default::default()
            };
            converge::apply(g, env, opts, select, render).await
        }
        Command::Drift { env, watch: false, render, .. } => converge::drift(g, env, render).await,
        Command::Drift { env, watch: true, interval, render } => converge::watch_drift(g, env, *interval, render).await,
        Command::Destroy { env, timeout } => converge::destroy(g, env, *timeout).await,
        Command::Test { env, timeout, select, render } => converge::test(g, env, *timeout, select, render).await,
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
        Command::Preview(cmd) => preview::run(g, cmd).await,
        Command::Upgrade { env, kubernetes, finish, rollback, discard, force, timeout, dry_run, identity } => {
            let how = upgrade::How {
                kubernetes: kubernetes.clone(),
                finish: *finish,
                rollback: *rollback,
                discard: *discard,
                retire: rekube_engine::ops::upgrade::Retire {
                    force: *force,
                    timeout: std::time::Duration::from_secs(*timeout),
                },
                dry_run: *dry_run,
            };
            upgrade::run(g, env, &how, identity.as_deref()).await
        }
        Command::Schema => {
            printer::data(rekube_spec::schema());
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

pub use rekube_plan::text::value as show;
