//! `rekube plan`, `apply` and `destroy`: render, compare with the cluster,
//! converge. Nothing touches a cluster until every input has rendered.

use std::time::Duration;

use rekube_engine::context::Context;
use rekube_engine::ops::converge;
use rekube_kube::{ApplyOptions, ComponentOutcome, DriftState};
use rekube_plan::Plan;
use serde_json::{Value, json};

use crate::Failure;
use crate::args::{Global, Output, RenderFlags, Select};
use crate::commands::progress::Reporter;
use crate::commands::{load_valid, show};
use crate::printer;

/// Loads the spec and renders `env` against its cluster, printing render warnings.
pub(crate) async fn context(g: &Global, env: &str, select: &Select, flags: &RenderFlags) -> Result<Context, Failure> {
    let loaded = load_valid(g)?;
    let select =
        rekube_engine::context::Select { components: select.components.clone(), with_needs: select.with_needs };
    let ctx = Context::new(loaded, env, &select, &flags.engine()).await?;
    for w in &ctx.rendered.warnings {
        printer::diagnostics(w);
    }
    Ok(ctx)
}

fn plan_json(plan: &Plan) -> Value {
    json!({"plan": plan, "summary": plan.summary(), "changes": plan.has_changes()})
}

pub async fn plan(g: &Global, env: &str, detailed: bool, select: &Select, flags: &RenderFlags) -> Result<u8, Failure> {
    let plan = context(g, env, select, flags).await?.plan().await?;
    match g.output {
        Output::Json => printer::json(&plan_json(&plan)),
        _ => printer::data(rekube_plan::text::plan(&plan).trim_end()),
    }
    if plan.conflicts().next().is_some() {
        printer::message("apply would refuse this plan: objects belong to someone else (marked `!`)");
        return Ok(1);
    }
    Ok(if detailed && plan.has_changes() { 2 } else { 0 })
}

pub async fn apply(
    g: &Global,
    env: &str,
    opts: ApplyOptions,
    select: &Select,
    flags: &RenderFlags,
) -> Result<u8, Failure> {
    let ctx = context(g, env, select, flags).await?;
    let reporter = Reporter::new("applying", true, g.output != Output::Json);
    let run = converge::apply(&ctx, opts, g.break_lock, &|e| reporter.on(e)).await?;
    let failed = run.report.failed();
    if g.output == Output::Json {
        printer::json(&json!({
            "environment": env, "dry_run": run.dry_run, "summary": run.plan.summary(), "failed": failed,
            "components": run.report.components.iter().map(|(n, o)| json!({"name": n, "outcome": match o {
                ComponentOutcome::Done { written, deleted, unchanged } => {
                    json!({"status": "done", "written": written, "deleted": deleted, "unchanged": unchanged})
                }
                ComponentOutcome::Failed(why) => json!({"status": "failed", "error": why}),
                ComponentOutcome::Skipped { need, failed } => {
                    json!({"status": "skipped", "needs": need, "need_failed": failed})
                }
            }})).collect::<Vec<_>>(),
        }));
    }
    Ok(if failed { 1 } else { 0 })
}

pub async fn destroy(g: &Global, env: &str, timeout: u64) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    let reporter = Reporter::new("deleting", true, g.output != Output::Json);
    let run = converge::destroy(&loaded, env, Duration::from_secs(timeout), g.break_lock, &|e| reporter.on(e)).await?;
    let failed = run.report.failed();
    if g.output == Output::Json {
        printer::json(&json!({"environment": env, "deleted": run.deleted, "failed": failed}));
    }
    Ok(if failed { 1 } else { 0 })
}

pub async fn test(g: &Global, env: &str, timeout: u64, select: &Select, flags: &RenderFlags) -> Result<u8, Failure> {
    let ctx = context(g, env, select, flags).await?;
    let reporter = Reporter::new("testing", g.output != Output::Json, false);
    let results =
        rekube_engine::ops::test::test(&ctx, Duration::from_secs(timeout), g.break_lock, &|e| reporter.on(e)).await?;
    let failed = results.iter().filter(|r| !r.passed).count();
    match g.output {
        Output::Json => printer::json(&json!({"environment": env, "tests": results, "failed": failed})),
        _ if results.is_empty() => printer::message(format!("no tests in `{env}` (no `helm.sh/hook: test` objects)")),
        _ => printer::message(format!("tests of `{env}`: {} passed, {failed} failed", results.len() - failed)),
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

pub async fn drift(g: &Global, env: &str, flags: &RenderFlags) -> Result<u8, Failure> {
    let report = context(g, env, &Select::default(), flags).await?.drift().await?;
    let drifted = report.iter().filter(|d| d.state.is_drift()).count();
    match g.output {
        Output::Json => printer::json(&json!({"environment": env, "drifted": drifted, "objects": report})),
        _ => {
            for d in &report {
                let name = d.display_name();
                match d.state {
                    DriftState::Deleted => printer::data(format!(
                        "{}: {name}: missing (deleted by hand, or new in the spec since the last apply)",
                        d.component
                    )),
                    DriftState::PendingApply => printer::data(format!(
                        "{}: {name}: the spec changed since the last apply (see `rekube plan`)",
                        d.component
                    )),
                    DriftState::Added => printer::data(format!(
                        "{}: {name}: added by hand to a namespace rekube owns \
                         (by {} at {}; not in the spec, never pruned)",
                        d.component,
                        d.manager.as_deref().unwrap_or("an unknown manager"),
                        d.time.as_deref().unwrap_or("?")
                    )),
                    DriftState::Changed => {
                        printer::data(format!("{}: {name}", d.component));
                        for f in &d.fields {
                            let who = match (&f.manager, &f.operation) {
                                (Some(m), Some(op)) => {
                                    let through =
                                        f.subresource.as_deref().map_or(String::new(), |s| format!(" through /{s}"));
                                    let at = f.time.as_deref().map_or(String::new(), |t| format!(" at {t}"));
                                    format!("by {m} ({op}{through}){at}")
                                }
                                _ if f.path == "spec.replicas" => "by a /scale write (kubectl scale or an autoscaler: \
                                     Kubernetes before 1.22 records no manager for it)"
                                    .to_string(),
                                _ => "with no field-manager record".to_string(),
                            };
                            printer::data(format!(
                                "    {}: applied {} → live {}  {who}",
                                f.path,
                                show(&f.applied),
                                show(&f.live)
                            ));
                        }
                    }
                }
            }
            let added = report.iter().filter(|d| d.state == DriftState::Added).count();
            let revertable = drifted - added;
            if drifted == 0 {
                printer::message(format!("no drift: `{env}` is as rekube applied it"));
            }
            if revertable > 0 {
                printer::message(format!(
                    "drift: {revertable} object(s) changed by hand; `rekube apply {env}` reverts them"
                ));
            }
            if added > 0 {
                printer::message(format!(
                    "drift: {added} object(s) added by hand; apply never deletes what it did not create: \
                     delete them, or add them to the spec"
                ));
            }
        }
    }
    Ok(if drifted > 0 { 2 } else { 0 })
}

/// `drift --watch`: one cheap check (a LIST per type) every `interval`
/// seconds; each hand change is printed once, when it first appears.
pub async fn watch_drift(g: &Global, env: &str, interval: u64, flags: &RenderFlags) -> Result<u8, Failure> {
    let mut seen = std::collections::BTreeSet::new();
    if g.output != Output::Json {
        printer::message(format!("watching `{env}` for hand changes every {interval}s (Ctrl-C to stop)"));
    }
    // Rendered and connected once: each poll only reads live state.
    let ctx = context(g, env, &Select::default(), flags).await?;
    loop {
        let report = ctx.drift().await?;
        for d in report.iter().filter(|d| d.state.is_drift()) {
            let name = d.display_name();
            let lines: Vec<(String, Value)> = if d.fields.is_empty() {
                vec![(
                    format!("{}: {name}: missing", d.component),
                    json!({
                        "component": d.component,
                        "kind": d.kind,
                        "namespace": d.namespace,
                        "name": d.name,
                        "state": d.state
                    }),
                )]
            } else {
                d.fields
                    .iter()
                    .map(|f| {
                        let who = f.manager.as_deref().unwrap_or("an unrecorded manager");
                        (
                            format!(
                                "{}: {name} {}: {} → {} by {who}",
                                d.component,
                                f.path,
                                show(&f.applied),
                                show(&f.live)
                            ),
                            json!({
                                "component": d.component,
                                "kind": d.kind,
                                "namespace": d.namespace,
                                "name": d.name,
                                "state": d.state,
                                "field": f
                            }),
                        )
                    })
                    .collect()
            };
            for (text, value) in lines {
                if seen.insert(text.clone()) {
                    match g.output {
                        Output::Json => printer::data(value),
                        _ => printer::data(text),
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(0),
            _ = tokio::time::sleep(Duration::from_secs(interval)) => {}
        }
    }
}
