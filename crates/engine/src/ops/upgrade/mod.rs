//! `rekube upgrade ENV`: a blue/green upgrade as one resumable command.
//!
//! The idle color is built from the spec (prerequisites, cluster, the whole
//! platform, health-gated) after a preflight that names every object its
//! API server would refuse; it must be drift-free; `copy:` is carried over
//! through the backup store; the checks pass; then traffic moves to it step
//! by step (each step one atomic change of both weighted records, waited
//! until in sync), soaking with the checks running. Any failed check puts
//! all traffic back on the old color. `--finish` retires the old color;
//! `--rollback` puts all traffic back at any point before that.
//!
//! Every step is journaled and every change of stage is recorded in
//! [`crate::colors`], so a run killed anywhere resumes where it was: a
//! traffic step is journaled only after its soak, and setting a split is
//! idempotent, so a resumed step sets the same split again.

pub mod checks;
pub mod preflight;
pub mod status;

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use rekube_backup::crypt::Identities;
use rekube_backup::{Existing, RestoreOptions};
use rekube_cluster::traffic::{Route53Config, Target, Traffic};
use rekube_kube::ApplyOptions;
use rekube_spec::{BlueGreen, Loaded};
use serde::Serialize;
use serde_saphyr::{Location, Spanned};

use crate::EngineError;
use crate::colors::{Colors, Finished, Stage, Upgrade, now};
use crate::context::{Context, Select};
use crate::journal::Journal;
use crate::ops::cluster::{Ended, Made, down_steps, ensure_cluster};
use crate::ops::converge;
use crate::steps::{Event, Observer, Run, Step, StepRecord, kill_point};
use crate::workspace::{RenderFlags, environment, state_root};

/// What `upgrade` was asked.
#[derive(Default)]
pub struct Options {
    /// The new color's Kubernetes version (`--kubernetes`).
    pub kubernetes: Option<String>,
    /// Print the steps; change nothing.
    pub dry_run: bool,
    /// To decrypt the Secrets `copy:` carries.
    pub identities: Option<Identities>,
}

/// How an upgrade (or its `--finish`, `--rollback`) ended.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeReport {
    /// The environment.
    pub environment: String,
    /// The color that served when the upgrade began.
    pub from: String,
    /// The color it built.
    pub to: String,
    /// The live color now.
    pub live: String,
    /// Where it stands (`shifted`, `rolled back`, `finished`, `dry run`).
    pub stage: String,
    /// Percent of traffic on `to`.
    pub percent: u32,
    /// The new color's Kubernetes version.
    pub version: Option<String>,
    /// Why it was rolled back.
    pub rolled_back: Option<String>,
    /// What a dry run would do, in order.
    pub planned: Vec<String>,
    /// How long it took.
    pub seconds: f64,
    /// The steps, in order.
    pub steps: Vec<StepRecord>,
}

fn refuse(message: impl Into<String>, hint: impl Into<String>) -> EngineError {
    EngineError::Upgrade { message: message.into(), hint: hint.into() }
}

fn spanned<T>(v: T) -> Spanned<T> {
    Spanned::new(v, Location::UNKNOWN, Location::UNKNOWN)
}

/// The environment's `blue-green:`, or a refusal.
fn blue_green<'a>(loaded: &'a Loaded, env: &str) -> Result<&'a BlueGreen, EngineError> {
    let e = environment(loaded, env)?;
    e.blue_green.as_ref().map(|b| &b.value).ok_or_else(|| {
        refuse(
            format!("environment `{env}` is not blue/green: it runs on one cluster"),
            "declare `blue-green: { clusters: [<env>-blue, <env>-green], traffic: ... }` instead of `cluster:` \
             (docs/upgrade.md)",
        )
    })
}

/// The spec as it is on color `color`: the environment runs on that
/// cluster, at `version` when one was asked; everything else (plan, apply,
/// backup, down) works on it unchanged.
pub fn on_color(loaded: &Loaded, env: &str, color: &str, version: Option<&str>) -> Loaded {
    let mut l = loaded.clone();
    if let Some(e) = l.spec.environments.get_mut(env) {
        e.cluster = Some(spanned(color.to_string()));
        e.blue_green = None;
    }
    if let (Some(v), Some(c)) = (version, l.spec.clusters.get_mut(color)) {
        c.kubernetes = Some(spanned(v.to_string()));
    }
    l
}

/// Where traffic is split for `env`.
pub fn traffic(loaded: &Loaded, env: &str, bg: &BlueGreen) -> Traffic {
    let t = &bg.traffic.value;
    match (&t.route53, &t.exec) {
        (Some(r), _) => {
            let r = &r.value;
            let mut c = Route53Config::new(r.zone.value.clone(), r.record.value.clone());
            c.ttl = r.ttl.as_ref().map_or(60, |t| t.value);
            c.endpoint = r.endpoint.as_ref().map(|e| e.value.clone());
            c.region = r.region.as_ref().map(|e| e.value.clone());
            Traffic::Route53(c)
        }
        (None, exec) => {
            let program = exec.as_ref().map(|x| loaded.resolve(&x.value)).unwrap_or_default();
            let state_dir = state_root(loaded).join("upgrade").join(format!("{env}.traffic"));
            Traffic::Exec {
                program: std::path::absolute(&program).unwrap_or(program),
                spec_dir: std::path::absolute(&loaded.dir).unwrap_or_else(|_| loaded.dir.clone()),
                state_dir: std::path::absolute(&state_dir).unwrap_or(state_dir),
                environment: env.to_string(),
                record: None,
            }
        }
    }
}

/// `from` gets `100 - percent`, `to` gets `percent`: one change, both records.
fn split(from: (&str, &Option<String>), to: (&str, &Option<String>), percent: u32) -> Vec<Target> {
    let w = |p: u32| u8::try_from(p.min(100)).unwrap_or(100);
    vec![
        Target { color: from.0.to_string(), address: from.1.clone(), weight: w(100 - percent.min(100)) },
        Target { color: to.0.to_string(), address: to.1.clone(), weight: w(percent) },
    ]
}

/// The address of `blue-green.address` on a color: its Service's
/// load-balancer IP or host name.
async fn address(client: &kube::Client, bg: &BlueGreen, color: &str) -> Result<Option<String>, EngineError> {
    let Some(a) = &bg.address else { return Ok(None) };
    let (ns, name) = a.value.split_once('/').unwrap_or(("default", &a.value));
    let api: kube::Api<Service> = kube::Api::namespaced(client.clone(), ns);
    let svc = api.get_opt(name).await.map_err(|e| refuse(format!("cannot read Service {}: {e}", a.value), ""))?;
    let ingress =
        svc.as_ref().and_then(|s| s.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref()?.first().cloned());
    match ingress.and_then(|i| i.ip.or(i.hostname)) {
        Some(addr) => Ok(Some(addr)),
        None => Err(refuse(
            format!("Service {} on cluster `{color}` has no load-balancer address", a.value),
            "`blue-green.address` must name a Service of type LoadBalancer that the platform makes",
        )),
    }
}

/// `up` of a blue/green environment: when no color has traffic yet, the
/// live color gets all of it (its record is made); otherwise traffic is
/// the upgrade's to move, and is left alone.
pub(crate) async fn serve_live(
    loaded: &Loaded,
    env: &str,
    client: &kube::Client,
    run: &mut Run<'_>,
) -> Result<(), EngineError> {
    let Some(bg) = environment(loaded, env)?.blue_green.as_ref().map(|b| &b.value) else { return Ok(()) };
    let Some(colors) = Colors::read(loaded, env)? else { return Ok(()) };
    let tr = traffic(loaded, env, bg);
    let all: Vec<String> = bg.clusters.iter().map(|c| c.value.clone()).collect();
    if tr.read(&all).await?.iter().any(|t| t.weight > 0) {
        return Ok(());
    }
    let t = Instant::now();
    let addr = address(client, bg, &colors.live).await?;
    tr.set(&[Target { color: colors.live.clone(), address: addr.clone(), weight: 100 }]).await?;
    let to = addr.map(|a| format!(" -> {a}")).unwrap_or_default();
    run.say(format!("  traffic: {}: `{}` 100%{to} (in sync)", tr.describe(), colors.live));
    run.done(&Step::Traffic(100), format!("{} 100%", colors.live), t)
}

/// The steps an upgrade takes, for `--dry-run` and the docs.
fn planned(bg: &BlueGreen, from: &str, to: &str, version: Option<&str>, t: &Traffic) -> Vec<String> {
    let at = version.map(|v| format!(" (Kubernetes {v})")).unwrap_or_default();
    let mut out = vec![
        format!("build `{to}`{at}: prerequisites, cluster"),
        format!("preflight: every rendered object's API is served by `{to}`"),
        format!("apply the platform to `{to}`, health-gated; verify it is drift-free"),
    ];
    if let Some(c) = &bg.copy {
        let ns: Vec<&str> = c.value.namespaces.iter().map(|n| n.value.as_str()).collect();
        out.push(format!("copy from `{from}` through the backup store: namespaces {}", ns.join(", ")));
    }
    out.push(format!("run {} check(s) on `{to}`", bg.checks.len()));
    let soak = soak_of(bg);
    let checking = if bg.checks.is_empty() { "" } else { ", checks running" };
    for p in steps_of(bg) {
        out.push(format!(
            "traffic `{from}` {}% / `{to}` {p}% ({}, one change, waited until in sync); soak {}{checking}",
            100 - p,
            t.describe(),
            humantime::format_duration(soak)
        ));
    }
    out.push(format!("stop at 100% on `{to}`; `--finish` retires `{from}`, `--rollback` puts traffic back"));
    out
}

fn steps_of(bg: &BlueGreen) -> Vec<u32> {
    bg.steps.as_ref().map_or_else(|| rekube_spec::DEFAULT_STEPS.to_vec(), |s| s.value.clone())
}

fn soak_of(bg: &BlueGreen) -> Duration {
    bg.soak.as_ref().and_then(|s| rekube_spec::parse_soak(&s.value).ok()).unwrap_or(rekube_spec::DEFAULT_SOAK)
}

/// Runs every check; the first failure, named.
async fn check_all(bg: &BlueGreen, target: &checks::Target, dir: &Path) -> Result<(), String> {
    for c in &bg.checks {
        checks::run(&c.value, target, dir).await.map_err(|e| format!("check `{}`: {e}", checks::describe(&c.value)))?;
    }
    Ok(())
}

/// `rekube upgrade ENV`.
pub async fn upgrade(
    loaded: &Loaded,
    env: &str,
    opts: &Options,
    on: Observer<'_>,
) -> Result<Ended<UpgradeReport>, EngineError> {
    let began = Instant::now();
    let bg = blue_green(loaded, env)?;
    let mut colors = Colors::read(loaded, env)?.unwrap_or_else(|| unreachable_colors(env));
    let tr = traffic(loaded, env, bg);
    // An upgrade under way resumes; a rolled-back one is replaced by a new one.
    let current = colors.upgrade.clone().filter(|u| u.stage != Stage::RolledBack);
    let (from, to) = match &current {
        Some(u) => (u.from.clone(), u.to.clone()),
        None => (colors.live.clone(), colors.idle(loaded)),
    };
    let spec_version = loaded.spec.clusters.get(&to).and_then(|c| c.kubernetes.as_ref()).map(|k| k.value.clone());
    let version = match (&current, &opts.kubernetes) {
        (Some(u), Some(k)) if u.kubernetes.as_deref() != Some(k.as_str()) => {
            return Err(refuse(
                format!(
                    "an upgrade of `{env}` to `{to}` (Kubernetes {}) is under way",
                    u.kubernetes.as_deref().unwrap_or("as the spec says")
                ),
                format!(
                    "finish it first (`rekube upgrade {env}`), or `rekube upgrade {env} --rollback`, then start again"
                ),
            ));
        }
        (Some(u), _) => u.kubernetes.clone(),
        (None, k) => k.clone(),
    };
    match current.as_ref().map(|u| u.stage) {
        Some(Stage::Shifted) => {
            on(Event::Line(format!(
                "`{env}`: all traffic is on `{to}` already; `rekube upgrade {env} --finish` retires `{from}`, \
                 `--rollback` moves traffic back"
            )));
            return Ok(Ended::Done(report(env, &colors, &from, &to, version, began, Vec::new(), Vec::new())));
        }
        Some(Stage::Finishing) => {
            return Err(refuse(
                format!("`rekube upgrade {env} --finish` was interrupted while retiring `{from}`"),
                format!("run `rekube upgrade {env} --finish` again to complete it"),
            ));
        }
        _ => {}
    }
    if opts.dry_run {
        let steps = planned(bg, &from, &to, version.as_deref().or(spec_version.as_deref()), &tr);
        let mut r = report(env, &colors, &from, &to, version, began, Vec::new(), steps);
        r.stage = "dry run".into();
        return Ok(Ended::Done(r));
    }
    let mut run = Run::begin(loaded, env, "upgrade", on)?;
    if current.is_none() {
        colors.upgrade = Some(Upgrade {
            from: from.clone(),
            to: to.clone(),
            kubernetes: version.clone(),
            started: now(),
            stage: Stage::Building,
            percent: 0,
            soak_until: None,
            reason: None,
            updated: now(),
        });
        match &version {
            Some(v) => colors.versions.insert(to.clone(), v.clone()),
            None => colors.versions.remove(&to),
        };
        colors.save(loaded)?;
    }
    run.say(format!("rekube upgrade `{env}`: `{from}` (live) -> `{to}`, traffic by {}", tr.describe()));

    // The new color: its spec is the environment's, on the other cluster.
    let green = on_color(loaded, env, &to, version.as_deref());
    let blue = on_color(loaded, env, &from, colors.versions.get(&from).map(String::as_str));
    if let Some(v) = version.clone().or(spec_version)
        && !run.done_before(&Step::Preflight)
    {
        offline_preflight(&green, env, &v, &to).await?;
    }
    let Made { client: green_client, kubeconfig, version: green_version, .. } =
        ensure_cluster(&green, env, &mut run, &format!("  building `{to}`")).await?;
    let flags = RenderFlags::default();
    let ctx = Context::new(green.clone(), env, &Select::default(), &flags).await?;
    if !run.resumed(&Step::Preflight)? {
        let t = Instant::now();
        let served = rekube_kube::api_versions(&green_client).await;
        let missing = preflight::not_served(&ctx.rendered, &served);
        if !missing.is_empty() {
            return Err(preflight_error(env, &to, &green_version, &missing));
        }
        let n = ctx.rendered.objects().count();
        run.say(format!("  preflight: all {n} objects are served by `{to}` ({green_version})"));
        run.done(&Step::Preflight, format!("{n} objects served"), t)?;
    }
    if !run.resumed(&Step::Components)? {
        let t = Instant::now();
        let applied = converge::apply(&ctx, ApplyOptions::default(), false, run.observer()).await?;
        if applied.report.failed() {
            run.say(format!("  `{to}` is not healthy (above); no traffic moved. Fix it and run the upgrade again"));
            return Ok(Ended::Stopped(1));
        }
        run.done(&Step::Components, "applied", t)?;
    }
    if !run.resumed(&Step::Verify)? {
        let t = Instant::now();
        let again = Context::new(green.clone(), env, &Select::default(), &flags).await?;
        let plan = again.plan().await?;
        let sum = plan.summary();
        let changes = sum.create + sum.update + sum.delete + sum.replace + sum.adopt + sum.conflict;
        if plan.has_changes() {
            return Err(refuse(
                format!("`{to}` is not converged: a second plan still has {changes} change(s); no traffic moved"),
                format!(
                    "see them with `rekube plan {env}` after the upgrade stops; a chart that rewrites its own objects \
                         needs `ignore-differences`"
                ),
            ));
        }
        run.say(format!("  verify: `{to}` is drift-free (second plan empty)"));
        run.done(&Step::Verify, "drift-free", t)?;
    }
    let blue_client = crate::context::cluster_client(&blue, env).await?.0;
    if let Some(copy) = &bg.copy
        && !run.resumed(&Step::Copy)?
    {
        let t = Instant::now();
        let note = copy_state(&blue, &green, env, &copy.value, opts, run.observer()).await?;
        run.say(format!("  copy: {note}"));
        run.done(&Step::Copy, note, t)?;
    }
    let green_target =
        |percent| checks::Target { color: to.clone(), address: None, kubeconfig: kubeconfig.clone(), percent };
    let (from_addr, to_addr) = (address(&blue_client, bg, &from).await?, address(&green_client, bg, &to).await?);
    let mut target = green_target(0);
    target.address = to_addr.clone();
    if !run.resumed(&Step::Checks)? {
        let t = Instant::now();
        if let Err(why) = check_all(bg, &target, &loaded.dir).await {
            return rolled_back(
                loaded,
                env,
                &mut colors,
                &tr,
                run,
                split((&from, &from_addr), (&to, &to_addr), 0),
                why,
            )
            .await;
        }
        run.say(format!("  checks: {} passed on `{to}`", bg.checks.len()));
        run.done(&Step::Checks, format!("{} passed", bg.checks.len()), t)?;
    }

    let soak = soak_of(bg);
    for p in steps_of(bg) {
        let step = Step::Traffic(p);
        if run.resumed(&step)? {
            continue;
        }
        let t = Instant::now();
        tr.set(&split((&from, &from_addr), (&to, &to_addr), p)).await?;
        kill_point(&format!("set traffic {p}%"));
        let until = chrono::Utc::now() + soak;
        if let Some(u) = colors.upgrade.as_mut() {
            u.stage = if p == 100 { Stage::Shifted } else { Stage::Shifting };
            u.percent = p;
            u.soak_until = Some(until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            u.updated = now();
        }
        colors.save(loaded)?;
        run.say(format!("  traffic: `{from}` {}% / `{to}` {p}% (in sync); soaking {}s", 100 - p, soak.as_secs()));
        target.percent = p;
        let end = Instant::now() + soak;
        loop {
            if let Err(why) = check_all(bg, &target, &loaded.dir).await {
                let back = split((&from, &from_addr), (&to, &to_addr), 0);
                return rolled_back(loaded, env, &mut colors, &tr, run, back, format!("at {p}%: {why}")).await;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(Duration::from_secs(5))).await;
        }
        run.done(&step, format!("{p}% on {to}"), t)?;
    }
    if let Some(u) = colors.upgrade.as_mut() {
        u.soak_until = None;
        u.updated = now();
    }
    colors.save(loaded)?;
    run.say(format!(
        "`{env}`: all traffic on `{to}` ({green_version}); `{from}` is kept. \
         `rekube upgrade {env} --finish` retires it, `--rollback` moves traffic back"
    ));
    let steps = run.finish()?;
    let mut r = report(env, &colors, &from, &to, version, began, steps, Vec::new());
    r.version = Some(green_version);
    Ok(Ended::Done(r))
}

fn unreachable_colors(env: &str) -> Colors {
    Colors {
        environment: env.to_string(),
        live: String::new(),
        versions: Default::default(),
        upgrade: None,
        finished: None,
    }
}

#[allow(clippy::too_many_arguments, reason = "a report is the sum of these")]
fn report(
    env: &str,
    colors: &Colors,
    from: &str,
    to: &str,
    version: Option<String>,
    began: Instant,
    steps: Vec<StepRecord>,
    planned: Vec<String>,
) -> UpgradeReport {
    let u = colors.upgrade.as_ref();
    UpgradeReport {
        environment: env.to_string(),
        from: from.to_string(),
        to: to.to_string(),
        live: colors.live.clone(),
        stage: u.map_or("finished", |u| u.stage.as_str()).to_string(),
        percent: u.map_or(100, |u| u.percent),
        version,
        rolled_back: u.and_then(|u| u.reason.clone()),
        planned,
        seconds: began.elapsed().as_secs_f64(),
        steps,
    }
}

/// Puts all traffic back on the old color, records why, and ends the
/// upgrade's journal: the next `upgrade` starts afresh.
async fn rolled_back(
    loaded: &Loaded,
    env: &str,
    colors: &mut Colors,
    tr: &Traffic,
    run: Run<'_>,
    back: Vec<Target>,
    why: String,
) -> Result<Ended<UpgradeReport>, EngineError> {
    let began = Instant::now();
    let (from, to) = colors.upgrade.as_ref().map(|u| (u.from.clone(), u.to.clone())).unwrap_or_default();
    run.say(format!("  {why}"));
    tr.set(&back).await?;
    if let Some(u) = colors.upgrade.as_mut() {
        u.stage = Stage::RolledBack;
        u.percent = 0;
        u.soak_until = None;
        u.reason = Some(why.clone());
        u.updated = now();
    }
    colors.save(loaded)?;
    run.say(format!("  rolled back: all traffic on `{from}` again (in sync); `{to}` is kept for a look"));
    let version = colors.upgrade.as_ref().and_then(|u| u.kubernetes.clone());
    let steps = run.finish()?;
    Ok(Ended::Done(report(env, colors, &from, &to, version, began, steps, Vec::new())))
}

/// Before the new cluster exists: the APIs its version removed.
async fn offline_preflight(green: &Loaded, env: &str, version: &str, to: &str) -> Result<(), EngineError> {
    let opts = crate::workspace::render_options(green, env, &RenderFlags::default(), None);
    let rendered = crate::workspace::render(green, env, &opts).await?;
    let removed = preflight::removed_in(&rendered, version);
    if removed.is_empty() { Ok(()) } else { Err(preflight_error(env, to, version, &removed)) }
}

fn preflight_error(env: &str, to: &str, version: &str, missing: &[preflight::Unserved]) -> EngineError {
    let list: Vec<String> = missing.iter().map(|m| format!("  - {m}")).collect();
    refuse(
        format!(
            "preflight: {} object(s) of `{env}` use an API that `{to}` (Kubernetes {version}) does not serve; \
             nothing was applied and no traffic moved:\n{}",
            missing.len(),
            list.join("\n")
        ),
        "move them to the API named, then run the upgrade again",
    )
}

/// `copy:`: a backup of the old color's namespaces and kinds into the
/// store (Secrets encrypted), restored into the new color; objects there
/// already are left as they are.
async fn copy_state(
    blue: &Loaded,
    green: &Loaded,
    env: &str,
    copy: &rekube_spec::CopyState,
    opts: &Options,
    on: Observer<'_>,
) -> Result<String, EngineError> {
    use crate::ops::backup;
    let kinds: Vec<String> = if copy.kinds.is_empty() {
        rekube_spec::DEFAULT_COPY_KINDS.iter().map(|k| k.to_string()).collect()
    } else {
        copy.kinds.iter().map(|k| k.value.clone()).collect()
    };
    let name = format!("{env}-upgrade-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    let req = backup::CreateRequest {
        env: env.to_string(),
        namespaces: copy.namespaces.iter().map(|n| n.value.clone()).collect(),
        kinds,
        name: Some(name.clone()),
        ..Default::default()
    };
    let created = backup::create(blue, &req, on).await?;
    let ropts =
        RestoreOptions { existing: Some(Existing::Skip), identities: opts.identities.clone(), ..Default::default() };
    let signed = green.spec.backup.as_ref().is_some_and(|b| b.value.sign_with.is_some());
    let restored = backup::restore(green, &name, env, &ropts, !signed, false, on).await?;
    let r = &restored.report;
    if !r.failed.is_empty() {
        return Err(refuse(
            format!(
                "copy: {} object(s) could not be restored into `{}`: {}",
                r.failed.len(),
                restored.cluster,
                r.failed.join("; ")
            ),
            "no traffic moved; fix them and run the upgrade again",
        ));
    }
    let made: usize = r.created.values().sum();
    Ok(format!(
        "{} object(s) from backup {name} ({} Secret(s), encrypted): {made} created, {} already there",
        created.manifest.objects.len(),
        created.manifest.secrets.count,
        r.skipped.len()
    ))
}

/// `rekube upgrade ENV --finish`: the new color becomes live, the old
/// color's record is deleted, and the old cluster is retired (`down`).
pub async fn finish(loaded: &Loaded, env: &str, on: Observer<'_>) -> Result<Ended<UpgradeReport>, EngineError> {
    let began = Instant::now();
    let bg = blue_green(loaded, env)?;
    let mut colors = Colors::read(loaded, env)?.unwrap_or_else(|| unreachable_colors(env));
    let Some(u) = colors.upgrade.clone() else {
        return Err(nothing_under_way(env, &colors, "finish"));
    };
    match u.stage {
        Stage::Shifted | Stage::Finishing => {}
        Stage::RolledBack => {
            return Err(refuse(
                format!("the upgrade of `{env}` to `{}` was rolled back: all traffic is on `{}`", u.to, u.from),
                format!("start again with `rekube upgrade {env}`"),
            ));
        }
        _ => {
            return Err(refuse(
                format!("`{}` has {}% of `{env}`'s traffic; --finish needs all of it", u.to, u.percent),
                format!("`rekube upgrade {env}` continues the shift; `--rollback` moves traffic back"),
            ));
        }
    }
    let tr = traffic(loaded, env, bg);
    let mut run = Run::begin(loaded, env, "upgrade-finish", on)?;
    if !run.resumed(&Step::Promote)? {
        let t = Instant::now();
        colors.live = u.to.clone();
        if let Some(x) = colors.upgrade.as_mut() {
            x.stage = Stage::Finishing;
            x.updated = now();
        }
        colors.save(loaded)?;
        run.say(format!("  `{}` is live for `{env}`: plan, apply, drift and backup now act on it", u.to));
        run.done(&Step::Promote, format!("{} live", u.to), t)?;
    }
    let step = Step::RemoveRecord(u.from.clone());
    if !run.resumed(&step)? {
        let t = Instant::now();
        tr.remove(&u.from).await?;
        run.say(format!("  {}: the record of `{}` is deleted", tr.describe(), u.from));
        run.done(&step, "deleted", t)?;
    }
    let old = on_color(loaded, env, &u.from, colors.versions.get(&u.from).map(String::as_str));
    if let Ended::Stopped(code) = down_steps(&old, env, &mut run, false, Duration::from_secs(600)).await? {
        return Ok(Ended::Stopped(code));
    }
    colors.upgrade = None;
    colors.versions.remove(&u.from);
    colors.finished = Some(Finished { from: u.from.clone(), to: u.to.clone(), at: now() });
    colors.save(loaded)?;
    let steps = run.finish()?;
    let mut r = report(env, &colors, &u.from, &u.to, u.kubernetes.clone(), began, steps, Vec::new());
    r.stage = "finished".into();
    Ok(Ended::Done(r))
}

fn nothing_under_way(env: &str, colors: &Colors, what: &str) -> EngineError {
    match &colors.finished {
        Some(f) if what == "rollback" => refuse(
            format!(
                "the upgrade of `{env}` finished at {}: `{}` was retired and `{}` is live; \
                 there is nothing to roll back to",
                f.at, f.from, f.to
            ),
            format!(
                "to go back, run `rekube upgrade {env}`: it builds `{}` again from the spec and moves traffic to it",
                f.from
            ),
        ),
        _ => refuse(
            format!("no upgrade of `{env}` is under way (`{}` is live)", colors.live),
            format!("`rekube upgrade {env}` starts one"),
        ),
    }
}

/// `rekube upgrade ENV --rollback`: all traffic back on the old color, at
/// any point before `--finish`; the new color is kept for a look.
pub async fn rollback(loaded: &Loaded, env: &str, on: Observer<'_>) -> Result<Ended<UpgradeReport>, EngineError> {
    let bg = blue_green(loaded, env)?;
    let mut colors = Colors::read(loaded, env)?.unwrap_or_else(|| unreachable_colors(env));
    let Some(u) = colors.upgrade.clone() else {
        return Err(nothing_under_way(env, &colors, "rollback"));
    };
    if u.stage == Stage::Finishing {
        return Err(refuse(
            format!("`rekube upgrade {env} --finish` has begun: `{}` is live and `{}` is being retired", u.to, u.from),
            format!("run `rekube upgrade {env} --finish` again to complete it; then `rekube upgrade {env}` moves back"),
        ));
    }
    let tr = traffic(loaded, env, bg);
    let run = Run::begin(loaded, env, "upgrade-rollback", on)?;
    // The interrupted upgrade is over: the next one starts afresh.
    let (journal, _) = Journal::begin(&state_root(loaded), env, "upgrade")?;
    journal.finish()?;
    let blue = on_color(loaded, env, &u.from, colors.versions.get(&u.from).map(String::as_str));
    let blue_client = crate::context::cluster_client(&blue, env).await?.0;
    let from_addr = address(&blue_client, bg, &u.from).await?;
    // The new color's address stays as it is; only its weight goes to 0.
    let current = tr.read(&[u.from.clone(), u.to.clone()]).await?;
    let to_addr = current.iter().find(|t| t.color == u.to && t.weight > 0).map(|t| t.address.clone());
    let mut back = split((&u.from, &from_addr), (&u.to, &to_addr.clone().flatten()), 0);
    if to_addr.is_none() {
        back.truncate(1); // the new color has no traffic (or no record): leave it be
    }
    rolled_back(loaded, env, &mut colors, &tr, run, back, "rolled back by --rollback".into()).await
}
