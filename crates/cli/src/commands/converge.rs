//! `rekube plan`, `apply` and `destroy`: render, compare with the cluster,
//! converge. Nothing touches a cluster until every input has rendered.

use std::collections::BTreeSet;
use std::time::Duration;

use rekube_cluster::provider::State;
use rekube_kube::{ApplyOptions, ComponentOutcome, Desired, Resolver};
use rekube_plan::{Op, Plan};
use rekube_spec::Loaded;
use serde_json::{Value, json};

use crate::Failure;
use crate::args::{Global, Output, RenderFlags, Select};
use crate::commands::progress::Progress;
use crate::commands::render::{options, render_env};
use crate::commands::{check_components, environment, load_valid, provider_cluster};
use crate::printer;

/// A client for the environment's cluster, which must exist.
pub(crate) async fn cluster_client(loaded: &Loaded, env: &str) -> Result<(kube::Client, String), Failure> {
    let (cluster, _) = provider_cluster(loaded, env)?;
    let name = cluster.name.clone();
    match cluster.state().await.map_err(|e| Failure::Error(e.into(), None))? {
        State::Absent => {
            return Err(Failure::Error(
                anyhow::anyhow!("cluster `{name}` does not exist"),
                Some(format!("create it with `rekube up {env}`")),
            ));
        }
        State::Present { problem: Some(p), .. }
            if matches!(cluster.kind, rekube_cluster::provider::Kind::Local { .. }) =>
        {
            return Err(Failure::Error(
                anyhow::anyhow!("cluster `{name}` is not running: {p}"),
                Some(format!("start it with `rekube up {env}`")),
            ));
        }
        State::Present { .. } => {}
    }
    Ok((connect(&cluster).await?, name))
}

/// A client for `cluster`, or an error naming it.
pub(crate) async fn connect(cluster: &rekube_cluster::provider::Cluster) -> Result<kube::Client, Failure> {
    cluster
        .client()
        .await
        .map_err(|e| Failure::Error(anyhow::anyhow!("cannot reach cluster `{}`: {e}", cluster.name), None))
}

fn selection(loaded: &Loaded, select: &Select) -> Result<Option<BTreeSet<String>>, Failure> {
    if select.components.is_empty() {
        return Ok(None);
    }
    check_components(loaded, &select.components)?;
    Ok(Some(if select.with_needs {
        rekube_spec::graph::with_needs(&loaded.spec, &select.components)
    } else {
        select.components.iter().cloned().collect()
    }))
}

/// Everything plan, apply and drift share: the rendered environment and a
/// way to its cluster. Rendering comes first, so a bad input stops
/// everything before the cluster is asked anything but its version.
pub(crate) struct Context {
    pub(crate) loaded: Loaded,
    project: (String, bool),
    source: String,
    env: String,
    cluster: String,
    pub(crate) rendered: rekube_render::Rendered,
    pub(crate) resolver: Resolver,
    partial: bool,
}

impl Context {
    pub(crate) async fn new(g: &Global, env: &str, select: &Select, flags: &RenderFlags) -> Result<Self, Failure> {
        let loaded = load_valid(g)?;
        environment(&loaded, env)?;
        let only = selection(&loaded, select)?;
        let partial = only.is_some();
        let mut opts = options(&loaded, env, flags, only);
        let (client, cluster) = cluster_client(&loaded, env).await?;
        if let Ok(v) = client.apiserver_version().await {
            opts.kube_version =
                Some(v.git_version.trim_start_matches('v').split(['-', '+']).next().unwrap_or_default().to_string());
        }
        opts.api_versions = rekube_kube::api_versions(&client).await;
        let mut rendered = render_env(&loaded, env, &opts).await?;
        let resolver = Resolver::new(client);
        place_custom_resources(&mut rendered, &resolver).await;
        let (project, source) = (loaded.project(), crate::commands::spec_source(&loaded));
        Ok(Self { loaded, project, source, env: env.to_string(), cluster, rendered, resolver, partial })
    }

    pub(crate) fn desired(&self) -> Desired<'_> {
        let spec = &self.loaded.spec;
        Desired {
            project: &self.project.0,
            explicit_project: self.project.1,
            source: &self.source,
            environment: &self.env,
            cluster: &self.cluster,
            rendered: &self.rendered,
            waves: rekube_spec::graph::waves(spec),
            spec_components: spec.components.keys().cloned().collect(),
            partial: self.partial,
            ignore: spec
                .components
                .iter()
                .map(|(n, c)| {
                    (
                        n.clone(),
                        c.ignore_differences
                            .iter()
                            .map(|r| (r.value.kind.clone(), r.value.name.clone(), r.value.paths.clone()))
                            .collect(),
                    )
                })
                .collect(),
            adopt: spec.components.iter().filter(|(_, c)| c.adopt).map(|(n, _)| n.clone()).collect(),
        }
    }

    pub(crate) async fn plan(&self) -> Result<Plan, Failure> {
        rekube_kube::build_plan(&self.resolver, &self.desired()).await.map_err(kube_failure)
    }

    pub(crate) async fn drift(&self) -> Result<Vec<rekube_kube::ObjectDrift>, Failure> {
        rekube_kube::drift(&self.resolver, &self.desired()).await.map_err(kube_failure)
    }
}

/// Custom resources whose CRD is on the cluster but in no component: only
/// the cluster knows whether they are namespaced. Those that are go into
/// their component's namespace, as `helm install` would put them.
async fn place_custom_resources(rendered: &mut rekube_render::Rendered, resolver: &Resolver) {
    for comp in rendered.components.iter_mut() {
        let Some(ns) = comp.namespace.clone() else { continue };
        for obj in comp
            .objects
            .iter_mut()
            .filter(|o| o.namespace().is_none() && !rekube_render::BUILTIN_GROUPS.contains(&o.group()))
        {
            if let Ok(Some(r)) = resolver.resolve(obj.api_version(), obj.kind()).await
                && r.namespaced
            {
                obj.set_namespace(&ns);
            }
        }
    }
}

pub(crate) fn kube_failure(e: rekube_kube::KubeError) -> Failure {
    use rekube_kube::KubeError as K;
    let hint = match &e {
        K::UnknownKind { .. } => Some("install the CustomResourceDefinition first (in a component this one `needs`), or fix apiVersion/kind".to_string()),
        K::ProjectClash(c) => Some(format!(
            "the project name `{p}` comes from the spec's directory; if both specs are one project, write `project: {p}` in each rekube.yaml; if not, give this one its own `project:`",
            p = c.project
        )),
        K::Refused { conflicts, adoptions } if conflicts.is_empty() && !adoptions.is_empty() => {
            Some("to take them over, run `rekube apply --adopt` (or set `adopt: true` on the component); or remove them from the spec".to_string())
        }
        K::Leased { .. } => Some(format!(
            "wait for it to finish; if its process died, the lease expires within {}s of its last renewal; `--break-lock` takes it at once (only when you are sure it is not running)",
            rekube_kube::lease::LEASE_SECONDS
        )),
        K::Refused { .. } => Some("rename the objects, remove them from the spec, or release them from their owner first; rekube never takes over what another owner manages".to_string()),
        _ => None,
    };
    Failure::Error(e.into(), hint)
}

fn show(v: &Option<Value>) -> String {
    match v {
        None => "(none)".to_string(),
        Some(v) => v.to_string(),
    }
}

/// The plan for people.
pub fn plan_text(plan: &Plan) -> String {
    let mut out = format!("Plan for environment `{}` (cluster `{}`):\n", plan.environment, plan.cluster);
    for c in &plan.components {
        let head = if c.removed {
            format!("{} (removed from the spec: destroy)", c.name)
        } else if c.identity.component.is_none() {
            "namespaces (created for the components, shared by them)".to_string()
        } else {
            format!("{} (wave {})", c.name, c.wave + 1)
        };
        out.push_str(&format!("\n{head}\n"));
        if c.parent_missing {
            out.push_str("  inventory: the ApplySet parent is missing; apply writes it again\n");
        }
        if let Some(legacy) = &c.legacy_parent {
            out.push_str(&format!("  migrate: members move from ApplySet rekube-system/{legacy} (rekube before 0.2) to this environment's own\n"));
        }
        let mut unchanged = 0;
        for a in &c.actions {
            match a.op {
                Op::Create => out.push_str(&format!("  + {}\n", a.display_name())),
                Op::Delete => out.push_str(&format!("  - {}\n", a.display_name())),
                Op::Unchanged => unchanged += 1,
                Op::Adopt if c.adopt => {
                    out.push_str(&format!("  > {} (exists, not rekube's: adopted)\n", a.display_name()))
                }
                Op::Adopt => out.push_str(&format!(
                    "  > {} (exists, not rekube's: apply refuses it without --adopt)\n",
                    a.display_name()
                )),
                Op::Conflict => out.push_str(&format!(
                    "  ! {}: belongs to {} (apply refuses)\n",
                    a.display_name(),
                    a.owner.as_deref().unwrap_or("someone else")
                )),
                Op::Use => {
                    out.push_str(&format!("  · {} ({})\n", a.display_name(), a.owner.as_deref().unwrap_or("used")))
                }
                Op::Update => {
                    out.push_str(&format!("  ~ {}\n", a.display_name()));
                    for ch in &a.changes {
                        let by =
                            a.reverts.iter().find(|r| r.path == ch.path).map_or(String::new(), |r| match &r.manager {
                                Some(m) => format!("  (hand change by {m}: reverted)"),
                                None => "  (hand change: reverted)".to_string(),
                            });
                        out.push_str(&format!("      {}: {} → {}{by}\n", ch.path, show(&ch.before), show(&ch.after)));
                    }
                }
            }
        }
        if unchanged > 0 {
            out.push_str(&format!("  = {unchanged} unchanged\n"));
        }
    }
    let s = plan.summary();
    let mut extra = String::new();
    if s.adopt > 0 {
        extra.push_str(&format!(", {} to adopt", s.adopt));
    }
    if s.conflict > 0 {
        extra.push_str(&format!(", {} owned by others", s.conflict));
    }
    out.push_str(&format!(
        "\nPlan: {} to create, {} to update, {} to delete, {} unchanged{extra}.\n",
        s.create, s.update, s.delete, s.unchanged
    ));
    out
}

fn plan_json(plan: &Plan) -> Value {
    json!({"plan": plan, "summary": plan.summary(), "changes": plan.has_changes()})
}

pub async fn plan(g: &Global, env: &str, detailed: bool, select: &Select, flags: &RenderFlags) -> Result<u8, Failure> {
    let plan = Context::new(g, env, select, flags).await?.plan().await?;
    match g.output {
        Output::Json => printer::json(&plan_json(&plan)),
        _ => printer::data(plan_text(&plan).trim_end()),
    }
    if plan.conflicts().next().is_some() {
        printer::message("apply would refuse this plan: objects belong to someone else (marked `!`)");
        return Ok(1);
    }
    Ok(if detailed && plan.has_changes() { 2 } else { 0 })
}

/// Holds the environment's lease on `client`'s cluster while `body` runs,
/// and releases it however `body` ends.
pub(crate) async fn leased<T>(
    g: &Global,
    client: &kube::Client,
    loaded: &Loaded,
    env: &str,
    command: &str,
    body: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    let (guard, broken) =
        rekube_kube::lease::acquire(client, &loaded.project().0, env, &format!("{command} {env}"), g.break_lock)
            .await
            .map_err(kube_failure)?;
    if let Some(h) = broken {
        printer::message(format!("note: broke the lease of {h}"));
    }
    let result = body.await;
    guard.release().await;
    result
}

pub async fn apply(
    g: &Global,
    env: &str,
    opts: ApplyOptions,
    select: &Select,
    flags: &RenderFlags,
) -> Result<u8, Failure> {
    let ctx = Context::new(g, env, select, flags).await?;
    if opts.dry_run {
        return apply_in(g, env, opts, &ctx).await;
    }
    let client = ctx.resolver.client().clone();
    leased(g, &client, &ctx.loaded, env, "apply", apply_in(g, env, opts, &ctx)).await
}

async fn apply_in(g: &Global, env: &str, mut opts: ApplyOptions, ctx: &Context) -> Result<u8, Failure> {
    let dry_run = opts.dry_run;
    opts.source = ctx.source.clone();
    let plan = ctx.plan().await?;
    rekube_kube::check_ownership(&plan, &opts).map_err(kube_failure)?;
    let s = plan.summary();
    if g.output != Output::Json {
        let mode = if dry_run { " (server dry-run: nothing is persisted)" } else { "" };
        printer::message(format!(
            "applying `{env}`{mode}: {} to create, {} to update, {} to delete, {} unchanged",
            s.create, s.update, s.delete, s.unchanged
        ));
    }
    let progress = Progress::new(if dry_run { "dry-run" } else { "applying" });
    let report = rekube_kube::apply(&ctx.resolver, &plan, &ctx.rendered, &opts, &|e| progress.on(e)).await?;
    let failed = report.failed();
    match g.output {
        Output::Json => printer::json(&json!({
            "environment": env, "dry_run": dry_run, "summary": s, "failed": failed,
            "components": report.components.iter().map(|(n, o)| json!({"name": n, "outcome": match o {
                ComponentOutcome::Done { written, deleted, unchanged } => json!({"status": "done", "written": written, "deleted": deleted, "unchanged": unchanged}),
                ComponentOutcome::Failed(why) => json!({"status": "failed", "error": why}),
                ComponentOutcome::Skipped => json!({"status": "skipped"}),
            }})).collect::<Vec<_>>(),
        })),
        _ if failed => printer::message(format!("apply of `{env}` FAILED after {:.1}s", progress.elapsed())),
        _ if !plan.has_changes() => printer::message(format!(
            "no changes: `{env}` already matches the spec ({} objects checked, all healthy)",
            s.unchanged
        )),
        _ => {
            printer::message(format!(
                "applied `{env}` in {:.1}s: {} written, {} deleted, {} unchanged",
                progress.elapsed(),
                report.written(),
                s.delete,
                s.unchanged
            ));
            if !dry_run {
                for a in plan.components.iter().flat_map(|c| &c.actions) {
                    for r in &a.reverts {
                        let who =
                            r.manager.as_deref().map_or("a /scale write or an unrecorded manager".to_string(), |m| {
                                match (&r.subresource, &r.time) {
                                    (Some(sub), _) => format!("{m} through /{sub}"),
                                    (None, t) => format!("{m} at {}", t.as_deref().unwrap_or("?")),
                                }
                            });
                        printer::message(format!(
                            "  reverted {} {}: {} → {} (changed by {who})",
                            a.display_name(),
                            r.path,
                            show(&r.live),
                            show(&r.applied)
                        ));
                    }
                }
            }
        }
    }
    if !failed && !dry_run {
        let _ =
            rekube_cluster::journal::record_applied(&crate::commands::state_root(&ctx.loaded), env, report.written());
    }
    Ok(if failed { 1 } else { 0 })
}

pub async fn destroy(g: &Global, env: &str, timeout: u64) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    let (client, _) = cluster_client(&loaded, env).await?;
    let resolver = Resolver::new(client);
    let order: Vec<Vec<String>> = rekube_spec::graph::waves(&loaded.spec).into_iter().rev().collect();
    let progress = Progress::new("deleting");
    let (project, source) = crate::commands::project_scope(&loaded);
    let client = resolver.client().clone();
    let report = leased(g, &client, &loaded, env, "destroy", async {
        rekube_kube::destroy(&resolver, &project, env, source.as_deref(), &order, Duration::from_secs(timeout), &|e| {
            progress.on(e)
        })
        .await
        .map_err(kube_failure)
    })
    .await?;
    let deleted: usize = report
        .components
        .iter()
        .map(|(_, o)| if let ComponentOutcome::Done { deleted, .. } = o { *deleted } else { 0 })
        .sum();
    let failed = report.failed();
    match g.output {
        Output::Json => printer::json(&json!({"environment": env, "deleted": deleted, "failed": failed})),
        _ if failed => printer::message(format!("destroy of `{env}` FAILED")),
        _ => printer::message(format!(
            "destroyed `{env}`: {deleted} objects in {} component(s), in {:.1}s",
            report.components.len(),
            progress.elapsed()
        )),
    }
    Ok(if failed { 1 } else { 0 })
}

pub async fn drift(g: &Global, env: &str, flags: &RenderFlags) -> Result<u8, Failure> {
    let report = Context::new(g, env, &Select::default(), flags).await?.drift().await?;
    let drifted = report.iter().filter(|d| d.state != "pending-apply").count();
    match g.output {
        Output::Json => printer::json(&json!({"environment": env, "drifted": drifted, "objects": report})),
        _ => {
            for d in &report {
                let name = d.display_name();
                match d.state {
                    "deleted" => printer::data(format!(
                        "{}: {name}: missing (deleted by hand, or new in the spec since the last apply)",
                        d.component
                    )),
                    "pending-apply" => printer::data(format!(
                        "{}: {name}: the spec changed since the last apply (see `rekube plan`)",
                        d.component
                    )),
                    "added" => printer::data(format!(
                        "{}: {name}: added by hand to a namespace rekube owns (by {} at {}; not in the spec, never pruned)",
                        d.component,
                        d.manager.as_deref().unwrap_or("an unknown manager"),
                        d.time.as_deref().unwrap_or("?")
                    )),
                    _ => {
                        printer::data(format!("{}: {name}", d.component));
                        for f in &d.fields {
                            let who = match (&f.manager, &f.operation) {
                                (Some(m), Some(op)) => {
                                    let through = f.subresource.as_deref().map_or(String::new(), |s| format!(" through /{s}"));
                                    let at = f.time.as_deref().map_or(String::new(), |t| format!(" at {t}"));
                                    format!("by {m} ({op}{through}){at}")
                                }
                                _ if f.path == "spec.replicas" => "by a /scale write (kubectl scale or an autoscaler: Kubernetes before 1.22 records no manager for it)".to_string(),
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
            let added = report.iter().filter(|d| d.state == "added").count();
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
                    "drift: {added} object(s) added by hand; apply never deletes what it did not create: delete them, or add them to the spec"
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
    let ctx = Context::new(g, env, &Select::default(), flags).await?;
    loop {
        let report = ctx.drift().await?;
        for d in report.iter().filter(|d| d.state != "pending-apply") {
            let name = d.display_name();
            let lines: Vec<(String, Value)> = if d.fields.is_empty() {
                vec![(
                    format!("{}: {name}: missing", d.component),
                    json!({"component": d.component, "kind": d.kind, "namespace": d.namespace, "name": d.name, "state": d.state}),
                )]
            } else {
                d.fields
                    .iter()
                    .map(|f| {
                        let who = f.manager.as_deref().unwrap_or("an unrecorded manager");
                        (
                            format!("{}: {name} {}: {} → {} by {who}", d.component, f.path, show(&f.applied), show(&f.live)),
                            json!({"component": d.component, "kind": d.kind, "namespace": d.namespace, "name": d.name, "state": d.state, "field": f}),
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
