//! The upgrade itself: build, preflight, apply, verify, copy, check, shift.

use std::time::{Duration, Instant};

use rekube_backup::{Existing, RestoreOptions};
use rekube_cluster::traffic::Traffic;
use rekube_kube::ApplyOptions;
use rekube_spec::{BlueGreen, Loaded};

use super::finish::rolled_back;
use super::{
    Options, UpgradeReport, address, blue_green, check_all, checks, on_color, planned, preflight, refuse, report,
    soak_of, split, steps_of, traffic,
};
use crate::EngineError;
use crate::colors::{Colors, Stage, Upgrade, now};
use crate::context::{Context, Select};
use crate::journal::{Lock, discard};
use crate::ops::cluster::{Ended, Made, ensure_cluster};
use crate::ops::converge;
use crate::steps::{Event, Observer, Run, Step, kill_point};
use crate::workspace::{RenderFlags, state_root};

/// What the colors are, as the record says and the options ask.
struct Plan {
    from: String,
    to: String,
    /// `--kubernetes` (or the one the upgrade under way was started with).
    version: Option<String>,
    /// The version the new color will run, when known offline.
    target: Option<String>,
    /// An upgrade under way is resumed (rather than a new one started).
    resuming: bool,
}

fn plan_of(loaded: &Loaded, env: &str, colors: &Colors, opts: &Options) -> Result<Plan, EngineError> {
    // An upgrade under way resumes; a rolled-back one is replaced by a new one.
    let current = colors.upgrade.as_ref().filter(|u| u.stage != Stage::RolledBack);
    let (from, to) = match current {
        Some(u) => (u.from.clone(), u.to.clone()),
        None => (colors.live.clone(), colors.idle(loaded)),
    };
    let version = match (current, &opts.kubernetes) {
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
    let spec_version = loaded.spec.clusters.get(&to).and_then(|c| c.kubernetes.as_ref()).map(|k| k.value.clone());
    let target = version.clone().or(spec_version);
    Ok(Plan { from, to, version, target, resuming: current.is_some() })
}

/// Refuses to start when traffic is not all on the color the record calls
/// live: a lost or stale record, or weights moved by hand, would otherwise
/// send production to a cluster nothing checked.
async fn check_starting_split(tr: &Traffic, env: &str, from: &str, to: &str) -> Result<(), EngineError> {
    let now = tr.read(&[from.to_string(), to.to_string()]).await?;
    let weight = |c: &str| now.iter().find(|t| t.color == c).map_or(0, |t| t.weight);
    let (f, t) = (weight(from), weight(to));
    if (f, t) == (100, 0) || (f, t) == (0, 0) {
        return Ok(());
    }
    Err(refuse(
        format!(
            "traffic of `{env}` is `{from}` {f}% / `{to}` {t}% by {}, but the record says `{from}` is live and no \
             upgrade is under way; nothing was changed",
            tr.describe()
        ),
        format!(
            "if `{to}` is live, the record (.rekube/upgrade/{env}.json) is stale: restore it; if the weights were \
             moved by hand, put all traffic back on `{from}` first"
        ),
    ))
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
    let tr = traffic(loaded, env, bg);
    if opts.dry_run {
        let colors = Colors::of(loaded, env, bg)?;
        let p = plan_of(loaded, env, &colors, opts)?;
        let steps = planned(bg, &p.from, &p.to, p.target.as_deref(), &tr);
        let mut r = report(env, &colors, &p.from, &p.to, p.version, began, Vec::new(), steps);
        r.stage = "dry run".into();
        r.rolled_back = None;
        return Ok(Ended::Done(r));
    }
    // The record is read under the lock: another run may have just changed it.
    let lock = Lock::acquire(&state_root(loaded), env, "upgrade")?;
    let mut colors = Colors::of(loaded, env, bg)?;
    match colors.upgrade.as_ref().map(|u| u.stage) {
        Some(Stage::RollingBack) => {
            // A rollback was interrupted: complete it before anything else.
            let run = Run::with_lock(lock, loaded, env, "upgrade", on)?;
            let why = colors.upgrade.as_ref().and_then(|u| u.reason.clone()).unwrap_or_default();
            return rolled_back(loaded, env, bg, &mut colors, &tr, run, why).await;
        }
        Some(Stage::Finishing) => {
            let from = colors.upgrade.as_ref().map(|u| u.from.clone()).unwrap_or_default();
            return Err(refuse(
                format!("`rekube upgrade {env} --finish` was interrupted while retiring `{from}`"),
                format!("run `rekube upgrade {env} --finish` again to complete it"),
            ));
        }
        _ => {}
    }
    let Plan { from, to, version, target, resuming } = plan_of(loaded, env, &colors, opts)?;
    if colors.upgrade.as_ref().is_some_and(|u| u.stage == Stage::Shifted) {
        on(Event::Line(format!(
            "`{env}`: all traffic is on `{to}` already; `rekube upgrade {env} --finish` retires `{from}`, \
             `--rollback` moves traffic back"
        )));
        return Ok(Ended::Done(report(env, &colors, &from, &to, version, began, Vec::new(), Vec::new())));
    }
    if !resuming {
        check_starting_split(&tr, env, &from, &to).await?;
        // Whatever an earlier upgrade journaled is over.
        discard(&state_root(loaded), env, "upgrade")?;
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
    let mut run = Run::with_lock(lock, loaded, env, "upgrade", on)?;
    run.say(format!("rekube upgrade `{env}`: `{from}` (live) -> `{to}`, traffic by {}", tr.describe()));

    // The new color: its spec is the environment's, on the other cluster.
    let green = on_color(loaded, env, &to, version.as_deref());
    let blue = on_color(loaded, env, &from, colors.versions.get(&from).map(String::as_str));
    if let Some(v) = &target {
        offline_preflight(&green, env, v, &to).await?;
    }
    let Made { client: green_client, kubeconfig, version: green_version, .. } =
        ensure_cluster(&green, env, &mut run, &format!("  building `{to}`")).await?;
    if let Some(v) = &target
        && preflight::minor(v) != preflight::minor(&green_version)
    {
        return Err(refuse(
            format!("`{to}` exists already and runs Kubernetes {green_version}, not {v}; nothing was applied"),
            format!("retire it first: `rekube upgrade {env} --rollback --discard`, then start again"),
        ));
    }
    // Preflight, apply and verify run again on a resumed upgrade: the spec
    // may have changed, and each is idempotent.
    let flags = RenderFlags::default();
    let ctx = Context::new(green.clone(), env, &Select::default(), &flags).await?;
    let t = Instant::now();
    let served = rekube_kube::api_versions(&green_client).await;
    if served.is_empty() {
        return Err(refuse(
            format!("cannot read which APIs `{to}` serves (its discovery answered nothing); no traffic moved"),
            "check that the cluster's API server is up and reachable, then run the upgrade again",
        ));
    }
    let missing = preflight::not_served(&ctx.rendered, &served);
    if !missing.is_empty() {
        return Err(preflight_error(env, &to, &green_version, &missing));
    }
    let n = ctx.rendered.objects().count();
    run.say(format!("  preflight: all {n} objects are served by `{to}` ({green_version})"));
    run.done(&Step::Preflight, format!("{n} objects served"), t)?;
    let t = Instant::now();
    let applied = converge::apply(&ctx, ApplyOptions::default(), false, run.observer()).await?;
    if applied.report.failed() {
        run.say(format!("  `{to}` is not healthy (above); no traffic moved. Fix it and run the upgrade again"));
        return Ok(Ended::Stopped(1));
    }
    run.done(&Step::Components, "applied", t)?;
    let t = Instant::now();
    let again = Context::new(green.clone(), env, &Select::default(), &flags).await?;
    let plan = again.plan().await?;
    if plan.has_changes() {
        let sum = plan.summary();
        let changes = sum.create + sum.update + sum.delete + sum.replace + sum.adopt + sum.conflict;
        return Err(refuse(
            format!("`{to}` is not converged: a second plan still has {changes} change(s); no traffic moved"),
            "a chart that rewrites its own objects needs `ignore-differences` (docs/drift.md)",
        ));
    }
    run.say(format!("  verify: `{to}` is drift-free (second plan empty)"));
    run.done(&Step::Verify, "drift-free", t)?;

    let blue_client = crate::context::cluster_client(&blue, env).await?.0;
    if let Some(copy) = &bg.copy
        && !run.resumed(&Step::Copy)?
    {
        let t = Instant::now();
        let note = copy_state(&blue, &green, env, &copy.value, opts, run.observer()).await?;
        run.say(format!("  copy: {note}"));
        run.done(&Step::Copy, note, t)?;
    }
    let (from_addr, to_addr) = (address(&blue_client, bg, &from).await?, address(&green_client, bg, &to).await?);
    let mut target = checks::Target { color: to.clone(), address: to_addr.clone(), kubeconfig, percent: 0 };
    if !run.resumed(&Step::Checks)? {
        let t = Instant::now();
        if let Err(why) = check_all(bg, &target, &loaded.dir).await {
            return rolled_back(loaded, env, bg, &mut colors, &tr, run, why).await;
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
        // Recorded first: a run killed from here on resumes this step.
        let until = chrono::Utc::now() + soak;
        if let Some(u) = colors.upgrade.as_mut() {
            u.stage = Stage::Shifting;
            u.percent = p;
            u.soak_until = Some(until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            u.updated = now();
        }
        colors.save(loaded)?;
        tr.set(&split((&from, &from_addr), (&to, &to_addr), p)).await?;
        kill_point(&format!("set traffic {p}%"));
        run.say(format!("  traffic: `{from}` {}% / `{to}` {p}% (in sync); soaking {}s", 100 - p, soak.as_secs()));
        target.percent = p;
        if let Err(why) = soak_checked(bg, &target, &loaded.dir, soak).await {
            return rolled_back(loaded, env, bg, &mut colors, &tr, run, format!("at {p}%: {why}")).await;
        }
        run.done(&step, format!("{p}% on {to}"), t)?;
    }
    if let Some(u) = colors.upgrade.as_mut() {
        u.stage = Stage::Shifted;
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

/// Holds a step for `soak`, running the checks at once and every 5 s.
async fn soak_checked(
    bg: &BlueGreen,
    target: &checks::Target,
    dir: &std::path::Path,
    soak: Duration,
) -> Result<(), String> {
    let end = Instant::now() + soak;
    loop {
        check_all(bg, target, dir).await?;
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        tokio::time::sleep(left.min(Duration::from_secs(5))).await;
    }
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
