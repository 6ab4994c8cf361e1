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
mod finish;
pub mod preflight;
mod run;
pub mod status;

pub use finish::{Retire, finish, rollback};
pub use run::upgrade;

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use rekube_backup::crypt::Identities;
use rekube_cluster::traffic::{Route53Config, Target, Traffic};
use rekube_spec::{BlueGreen, Loaded};
use serde::Serialize;
use serde_saphyr::{Location, Spanned};

use crate::EngineError;
use crate::colors::{Colors, Stage};
use crate::steps::{Run, Step, StepRecord};
use crate::workspace::{environment, state_root};

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

pub(super) fn refuse(message: impl Into<String>, hint: impl Into<String>) -> EngineError {
    EngineError::Upgrade { message: message.into(), hint: hint.into() }
}

fn spanned<T>(v: T) -> Spanned<T> {
    Spanned::new(v, Location::UNKNOWN, Location::UNKNOWN)
}

/// The environment's `blue-green:`, or a refusal.
pub(super) fn blue_green<'a>(loaded: &'a Loaded, env: &str) -> Result<&'a BlueGreen, EngineError> {
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
pub(super) fn split(from: (&str, &Option<String>), to: (&str, &Option<String>), percent: u32) -> Vec<Target> {
    let w = |p: u32| u8::try_from(p.min(100)).unwrap_or(100);
    vec![
        Target { color: from.0.to_string(), address: from.1.clone(), weight: w(100 - percent.min(100)) },
        Target { color: to.0.to_string(), address: to.1.clone(), weight: w(percent) },
    ]
}

/// The address of `blue-green.address` on a color: its Service's
/// load-balancer IP or host name.
pub(super) async fn address(client: &kube::Client, bg: &BlueGreen, color: &str) -> Result<Option<String>, EngineError> {
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
/// live color gets all of it (its record is made). When no upgrade is under
/// way and the live color's address changed (its load balancer was made
/// again), its record follows, weights kept. Otherwise traffic is the
/// upgrade's to move, and is left alone.
pub(crate) async fn serve_live(
    loaded: &Loaded,
    env: &str,
    client: &kube::Client,
    run: &mut Run<'_>,
) -> Result<(), EngineError> {
    let Some(bg) = environment(loaded, env)?.blue_green.as_ref().map(|b| &b.value) else { return Ok(()) };
    let colors = Colors::of(loaded, env, bg)?;
    let under_way = colors.upgrade.as_ref().is_some_and(|u| u.stage != Stage::RolledBack);
    let tr = traffic(loaded, env, bg);
    let all: Vec<String> = bg.clusters.iter().map(|c| c.value.clone()).collect();
    let now = tr.read(&all).await?;
    let t = Instant::now();
    let addr = address(client, bg, &colors.live).await?;
    let live = now.iter().find(|x| x.color == colors.live && x.weight > 0);
    let target = match live {
        None if now.iter().all(|x| x.weight == 0) => Target { color: colors.live.clone(), address: addr, weight: 100 },
        Some(l) if !under_way && addr.is_some() && l.address != addr => {
            Target { color: colors.live.clone(), address: addr, weight: l.weight }
        }
        _ => return Ok(()),
    };
    tr.set(std::slice::from_ref(&target)).await?;
    let to = target.address.as_ref().map(|a| format!(" -> {a}")).unwrap_or_default();
    run.say(format!("  traffic: {}: `{}` {}%{to} (in sync)", tr.describe(), colors.live, target.weight));
    run.done(&Step::Traffic(target.weight.into()), format!("{} {}%", colors.live, target.weight), t)
}

/// The steps an upgrade takes, for `--dry-run` and the docs.
pub(super) fn planned(bg: &BlueGreen, from: &str, to: &str, version: Option<&str>, t: &Traffic) -> Vec<String> {
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

pub(super) fn steps_of(bg: &BlueGreen) -> Vec<u32> {
    bg.steps.as_ref().map_or_else(|| rekube_spec::DEFAULT_STEPS.to_vec(), |s| s.value.clone())
}

pub(super) fn soak_of(bg: &BlueGreen) -> Duration {
    bg.soak.as_ref().and_then(|s| rekube_spec::parse_soak(&s.value).ok()).unwrap_or(rekube_spec::DEFAULT_SOAK)
}

/// Runs every check; the first failure, named.
pub(super) async fn check_all(bg: &BlueGreen, target: &checks::Target, dir: &Path) -> Result<(), String> {
    for c in &bg.checks {
        checks::run(&c.value, target, dir).await.map_err(|e| format!("check `{}`: {e}", checks::describe(&c.value)))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments, reason = "a report is the sum of these")]
pub(super) fn report(
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
