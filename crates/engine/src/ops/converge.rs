//! apply and destroy of one environment, under its cluster-side lease.

use std::time::{Duration, Instant};

use rekube_kube::{ApplyOptions, DestroyWait, Resolver};
use rekube_spec::Loaded;

use crate::EngineError;
use crate::context::{Context, cluster_client};
use crate::lease;
pub use crate::steps::{ApplyRun, ApplyStart, DestroyRun};
use crate::steps::{Event, Observer};
use crate::workspace::{project_scope, state_root};

/// Holds the environment's lease on `client`'s cluster while `body` runs,
/// and releases it however `body` ends. `break_lock` takes it from a
/// holder that is gone (said through `on`).
pub async fn leased<T, E: From<lease::LeaseError>>(
    client: &kube::Client,
    loaded: &Loaded,
    env: &str,
    command: &str,
    break_lock: bool,
    on: Observer<'_>,
    body: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let (guard, broken) =
        lease::acquire(client, &loaded.project().0, env, &format!("{command} {env}"), break_lock).await?;
    if let Some(h) = broken {
        on(Event::Line(match break_lock {
            true => format!("note: broke the lease of {h}"),
            false => format!("note: took over the lease of {h}: that process no longer runs on this machine"),
        }));
    }
    let result = body.await;
    guard.release().await;
    result
}

/// Plans and applies `ctx`'s environment (under its lease unless a dry-run).
pub async fn apply(
    ctx: &Context,
    mut opts: ApplyOptions,
    break_lock: bool,
    on: Observer<'_>,
) -> Result<ApplyRun, EngineError> {
    opts.source = ctx.source.clone();
    if opts.dry_run {
        return apply_in(ctx, opts, on).await;
    }
    let client = ctx.resolver.client().clone();
    leased(&client, &ctx.loaded, &ctx.env, "apply", break_lock, on, apply_in(ctx, opts, on)).await
}

async fn apply_in(ctx: &Context, opts: ApplyOptions, on: Observer<'_>) -> Result<ApplyRun, EngineError> {
    let began = Instant::now();
    let plan = ctx.plan().await?;
    rekube_kube::check_ownership(&plan, &opts)?;
    apply_planned(ctx, plan, opts, began, on).await
}

/// Applies a `plan` of `ctx` whose ownership was checked, under a lease the
/// caller holds (unless a dry-run); `began` is when the command's work started.
pub async fn apply_planned(
    ctx: &Context,
    plan: rekube_plan::Plan,
    opts: ApplyOptions,
    began: Instant,
    on: Observer<'_>,
) -> Result<ApplyRun, EngineError> {
    on(Event::Applying(Box::new(ApplyStart { env: ctx.env.clone(), dry_run: opts.dry_run, summary: plan.summary() })));
    let report = rekube_kube::apply(&ctx.resolver, &plan, &ctx.rendered, &opts, &|e| on(Event::Component(e))).await?;
    if !report.failed() && !opts.dry_run {
        let _ = crate::journal::record_applied(&state_root(&ctx.loaded), &ctx.env, report.written());
    }
    let run =
        ApplyRun { env: ctx.env.clone(), dry_run: opts.dry_run, plan, report, seconds: began.elapsed().as_secs_f64() };
    on(Event::Applied(Box::new(run.clone())));
    Ok(run)
}

/// Destroys everything of `env` that rekube applied, components in reverse
/// dependency order, under the environment's lease.
pub async fn destroy(
    loaded: &Loaded,
    env: &str,
    timeout: Duration,
    break_lock: bool,
    on: Observer<'_>,
) -> Result<DestroyRun, EngineError> {
    let began = Instant::now();
    let (client, _) = cluster_client(loaded, env).await?;
    let resolver = Resolver::new(client.clone());
    let order: Vec<Vec<String>> = rekube_spec::graph::waves(&loaded.spec).into_iter().rev().collect();
    let (project, source) = project_scope(loaded);
    let report = leased(&client, loaded, env, "destroy", break_lock, on, async {
        let report = rekube_kube::destroy(
            &resolver,
            &project,
            env,
            source.as_deref(),
            &order,
            DestroyWait::gone(timeout),
            &|e| on(Event::Component(e)),
        )
        .await?;
        Ok::<_, EngineError>(report)
    })
    .await?;
    let deleted = report.deleted();
    let run = DestroyRun { env: env.to_string(), report, deleted, seconds: began.elapsed().as_secs_f64() };
    on(Event::Destroyed(Box::new(run.clone())));
    Ok(run)
}
