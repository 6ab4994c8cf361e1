//! `up`, `down` and `rebuild-check`: the environment's cluster through its
//! provider, its prerequisites, and the components on it, as journaled
//! steps under the environment's lock.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rekube_cluster::prereq::{self, Outcome};
use rekube_cluster::provider::{Created, Kind, State};
use rekube_kube::{ApplyOptions, Resolver};
use rekube_plan::fingerprint::{Difference, Fingerprint};
use rekube_spec::{Loaded, Provider};
use serde::Serialize;

use crate::EngineError;
use crate::context::{Context, Select, connect};
use crate::error::io;
use crate::ops::converge;
use crate::steps::{Observer, Run, Step, StepRecord};
use crate::workspace::{RenderFlags, environment, project_scope, provider_cluster, state_root};

/// How `up` ended.
#[derive(Debug, Clone, Serialize)]
pub struct UpReport {
    /// The environment.
    pub environment: String,
    /// Its cluster.
    pub cluster: String,
    /// The provider.
    pub provider: &'static str,
    /// Whether the cluster was created by this run.
    pub created: bool,
    /// Its Kubernetes version.
    pub version: String,
    /// Its API endpoint.
    pub endpoint: Option<String>,
    /// Where its kubeconfig is.
    pub kubeconfig: Option<PathBuf>,
    /// How long it took.
    pub seconds: f64,
    /// The steps, in order.
    pub steps: Vec<StepRecord>,
}

/// How `down` ended.
#[derive(Debug, Clone, Serialize)]
pub struct DownReport {
    /// The environment.
    pub environment: String,
    /// Its cluster.
    pub cluster: String,
    /// How long it took.
    pub seconds: f64,
    /// The steps, in order.
    pub steps: Vec<StepRecord>,
}

/// How an operation ended: done, or stopped with the exit code of a
/// component failure already reported.
#[derive(Debug)]
pub enum Ended<T> {
    /// Done.
    Done(T),
    /// Stopped; the code to exit with.
    Stopped(u8),
}

/// `rekube up ENV`.
pub async fn up(loaded: &Loaded, env: &str, on: Observer<'_>) -> Result<Ended<UpReport>, EngineError> {
    environment(loaded, env)?;
    let mut run = Run::begin(loaded, env, "up", on)?;
    let report = up_steps(loaded, env, &mut run, &RenderFlags::default()).await?;
    if let Ended::Done(mut r) = report {
        r.steps = run.finish()?;
        return Ok(Ended::Done(r));
    }
    Ok(report)
}

/// A cluster made or found by [`ensure_cluster`].
pub(crate) struct Made {
    /// The cluster.
    pub cluster: rekube_cluster::provider::Cluster,
    /// Whether this run created it.
    pub created: bool,
    /// Its Kubernetes version.
    pub version: String,
    /// Its API endpoint.
    pub endpoint: Option<String>,
    /// Its kubeconfig.
    pub kubeconfig: Option<PathBuf>,
    /// A client for it.
    pub client: kube::Client,
}

/// The environment's prerequisites and cluster, each a journaled step.
/// `heading` starts the first line (`rekube up `dev``).
pub(crate) async fn ensure_cluster(
    loaded: &Loaded,
    env: &str,
    run: &mut Run<'_>,
    heading: &str,
) -> Result<Made, EngineError> {
    let (cluster, prereqs) = provider_cluster(loaded, env)?;
    run.say(format!(
        "{heading}: {} prerequisite(s), cluster `{}` ({}), {} component(s)",
        prereqs.len(),
        cluster.name,
        cluster.kind.name(),
        loaded.spec.components.len()
    ));
    for p in &prereqs {
        let step = Step::Prerequisite(p.name.clone());
        if run.resumed(&step)? {
            continue;
        }
        let t = Instant::now();
        let note = match prereq::ensure(p, &loaded.dir).await? {
            Outcome::Present => "present",
            _ => "created",
        };
        run.say(format!("  {step}: {note} ({:.1}s)", t.elapsed().as_secs_f64()));
        run.done(&step, note, t)?;
    }

    let t = Instant::now();
    let exe = std::env::current_exe().map_err(io("find the rekube executable", "/proc/self/exe"))?;
    let args = ["internal".to_string(), "fake-kubelet".to_string()];
    let created = cluster.create((&exe, &args)).await?;
    let (version, endpoint) = match cluster.state().await? {
        State::Present { version, endpoint, .. } => (version, endpoint),
        State::Absent => (None, None),
    };
    let client = connect(&cluster).await?;
    let version = match version {
        Some(v) => v,
        None => client.apiserver_version().await.map(|v| v.git_version).unwrap_or_else(|_| "unknown".into()),
    };
    let how = match created {
        Created::Created => format!("ready in {:.1}s", t.elapsed().as_secs_f64()),
        Created::Existed => "already there".to_string(),
    };
    let (kubeconfig, _) = cluster.kubeconfig().await?;
    run.say(format!(
        "  cluster `{}` {how}: {} (Kubernetes {version})",
        cluster.name,
        endpoint.as_deref().unwrap_or("(endpoint from the kubeconfig)")
    ));
    if let Some(k) = &kubeconfig {
        run.say(format!("    kubeconfig: {}", k.display()));
        run.say(format!("    try:        kubectl --kubeconfig {} get nodes", k.display()));
    }
    run.done(&Step::Cluster, how, t)?;
    Ok(Made { cluster, created: created == Created::Created, version, endpoint, kubeconfig, client })
}

/// Prerequisites, the cluster, the components: each idempotent, each journaled.
async fn up_steps(
    loaded: &Loaded,
    env: &str,
    run: &mut Run<'_>,
    flags: &RenderFlags,
) -> Result<Ended<UpReport>, EngineError> {
    let began = Instant::now();
    let Made { cluster, created, version, endpoint, kubeconfig, client } =
        ensure_cluster(loaded, env, run, &format!("rekube up `{env}`")).await?;

    // The components, health-gated; apply reports its own progress.
    let t = Instant::now();
    let ctx = Context::new(loaded.clone(), env, &Select::default(), flags).await?;
    let applied = converge::apply(&ctx, ApplyOptions::default(), false, run.observer()).await?;
    if applied.report.failed() {
        return Ok(Ended::Stopped(1));
    }
    run.done(&Step::Components, "applied", t)?;
    crate::ops::upgrade::serve_live(loaded, env, &client, run).await?;
    Ok(Ended::Done(UpReport {
        environment: env.to_string(),
        cluster: cluster.name.clone(),
        provider: cluster.kind.name(),
        created,
        version,
        endpoint,
        kubeconfig,
        seconds: began.elapsed().as_secs_f64(),
        steps: run.records().to_vec(),
    }))
}

/// `rekube down ENV`: `force` deletes the cluster even when components
/// could not be destroyed; `timeout` bounds each wait.
pub async fn down(
    loaded: &Loaded,
    env: &str,
    force: bool,
    timeout: Duration,
    on: Observer<'_>,
) -> Result<Ended<DownReport>, EngineError> {
    environment(loaded, env)?;
    if let Some(u) = crate::colors::Colors::read(loaded, env)?
        .and_then(|c| c.upgrade)
        .filter(|u| u.stage != crate::colors::Stage::RolledBack)
    {
        return Err(EngineError::Upgrade {
            message: format!(
                "an upgrade of `{env}` from `{}` to `{}` is under way ({}): `down` would delete `{}` \
                 and leave its traffic record",
                u.from,
                u.to,
                u.stage.as_str(),
                u.from
            ),
            hint: format!("finish it (`rekube upgrade {env} --finish`) or roll it back (`--rollback`) first"),
        });
    }
    let mut run = Run::begin(loaded, env, "down", on)?;
    let hint = "; `rekube down --force` deletes the cluster anyway";
    let report = down_steps(loaded, env, &mut run, force, timeout, &format!("rekube down `{env}`"), hint).await?;
    if let Ended::Done(mut r) = report {
        r.steps = run.finish()?;
        return Ok(Ended::Done(r));
    }
    Ok(report)
}

/// Load balancers, components, the cluster, the prerequisites (reversed).
/// A `local` cluster holds nothing outside its processes: it is deleted
/// at once, its components with it.
/// `heading` starts the first line (`rekube down `dev``); `force_hint`
/// ends the message when a component cannot be destroyed.
pub(crate) async fn down_steps(
    loaded: &Loaded,
    env: &str,
    run: &mut Run<'_>,
    force: bool,
    timeout: Duration,
    heading: &str,
    force_hint: &str,
) -> Result<Ended<DownReport>, EngineError> {
    let began = Instant::now();
    let (cluster, prereqs) = provider_cluster(loaded, env)?;
    run.say(format!(
        "{heading}: load balancers, {} component(s), cluster `{}` ({}), {} prerequisite(s)",
        loaded.spec.components.len(),
        cluster.name,
        cluster.kind.name(),
        prereqs.len()
    ));
    let local = matches!(cluster.kind, Kind::Local { .. });
    let existing = matches!(cluster.kind, Kind::Existing { .. });
    let reachable = !local && matches!(cluster.state().await?, State::Present { problem: None, .. });
    if local {
        run.say(format!(
            "  cluster `{}` is local: its components and load balancers go with its processes",
            cluster.name
        ));
    } else if reachable {
        let t = Instant::now();
        let client = connect(&cluster).await?;
        let (project, source) = project_scope(loaded);
        let ids = rekube_kube::environment_applysets(&client, &project, env, source.as_deref()).await?;
        let resolver = Resolver::new(client);
        let released = rekube_kube::release_load_balancers(&resolver, &ids, Duration::from_secs(600)).await?;
        let note = if released.is_empty() { "none".to_string() } else { format!("released {}", released.join(", ")) };
        run.say(format!("  load balancers: {note}"));
        run.done(&Step::ReleaseLoadBalancers, note, t)?;
        let t = Instant::now();
        let failed = match converge::destroy(loaded, env, timeout, false, run.observer()).await {
            Ok(d) => d.report.failed(),
            Err(e) if force => {
                run.say(format!("  components: {e}"));
                true
            }
            Err(e) => return Err(e),
        };
        match failed {
            false => run.done(&Step::DestroyComponents, "destroyed", t)?,
            true if force && !existing => {
                run.say("  components: some could not be destroyed (above); --force: the cluster is deleted anyway");
            }
            true => {
                let hint = if existing { "" } else { force_hint };
                run.say(format!("  components: some could not be destroyed (above){hint}"));
                return Ok(Ended::Stopped(1));
            }
        }
    } else {
        run.say(format!("  cluster `{}` is not running: its components go with it", cluster.name));
    }
    let t = Instant::now();
    let note = match &cluster.kind {
        Kind::Existing { .. } => "kept (provider `existing` never deletes its cluster)",
        _ if cluster.delete().await? => "deleted",
        _ => "did not exist",
    };
    run.say(format!("  cluster `{}`: {note}", cluster.name));
    run.done(&Step::DeleteCluster, note, t)?;
    for p in prereqs.iter().rev() {
        let t = Instant::now();
        let note = match prereq::remove(p, &loaded.dir).await? {
            Outcome::Changed => "deleted",
            _ if p.delete.is_empty() => "kept (no `delete`)",
            _ => "absent",
        };
        run.say(format!("  prerequisite {}: {note}", p.name));
        run.done(&Step::RemovePrerequisite(p.name.clone()), note, t)?;
    }
    Ok(Ended::Done(DownReport {
        environment: env.to_string(),
        cluster: cluster.name,
        seconds: began.elapsed().as_secs_f64(),
        steps: run.records().to_vec(),
    }))
}

/// How `rebuild-check` ended.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    /// The environment.
    pub environment: String,
    /// Whether the rebuilt environment is identical.
    pub identical: bool,
    /// Objects compared.
    pub objects: usize,
    /// Before.
    pub fingerprint_before: String,
    /// After.
    pub fingerprint_after: String,
    /// What differs.
    pub differences: Vec<Difference>,
    /// How long `down` took.
    pub down_seconds: f64,
    /// How long `up` took.
    pub up_seconds: f64,
    /// The whole run.
    pub seconds: f64,
    /// The steps, in order.
    pub steps: Vec<StepRecord>,
}

/// The fingerprint of everything rekube manages in `env`, rendered afresh;
/// with `look_around`, also what else lives in its namespaces (which a
/// rebuild would not bring back), from the same read.
async fn fingerprint(loaded: &Loaded, env: &str, look_around: bool) -> Result<(Fingerprint, Vec<String>), EngineError> {
    let flags = RenderFlags { no_cache: true, ..Default::default() };
    let ctx = Context::new(loaded.clone(), env, &Select::default(), &flags).await?;
    let inventory = rekube_kube::managed_objects(&ctx.resolver, &ctx.desired()).await?;
    let unmanaged = if look_around { inventory.unmanaged(&ctx.resolver).await? } else { Vec::new() };
    Ok((Fingerprint::of(&inventory.objects), unmanaged))
}

/// `rekube rebuild-check ENV`: fingerprint, down, up, fingerprint, compare.
pub async fn rebuild_check(loaded: &Loaded, env: &str, on: Observer<'_>) -> Result<Ended<RebuildReport>, EngineError> {
    let cluster = crate::workspace::live_cluster(loaded, env)?;
    let spec_cluster = &loaded.spec.clusters[&cluster];
    if spec_cluster.provider.value != Provider::Local && !spec_cluster.disposable {
        return Err(EngineError::NotDisposable { cluster });
    }
    let mut run = Run::begin(loaded, env, "rebuild-check", on)?;
    let dir = state_root(loaded).join("rebuild");
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let before_path = dir.join(format!("{env}.before.json"));
    let began = Instant::now();

    let t = Instant::now();
    let resumed = std::fs::read(&before_path)
        .ok()
        .filter(|_| run.done_before(&Step::Fingerprint))
        .and_then(|b| serde_json::from_slice(&b).ok());
    let before: Fingerprint = match resumed {
        Some(fp) => fp,
        None => {
            let (fp, unmanaged) = fingerprint(loaded, env, true).await?;
            if fp.objects.is_empty() {
                return Err(EngineError::NothingToCompare { environment: env.to_string() });
            }
            // Said before anything is torn down: the user may still stop and back these up.
            for what in &unmanaged {
                run.say(format!("note: not made by the spec, so a rebuild loses it: {what}"));
            }
            if !unmanaged.is_empty() {
                run.say(format!(
                    "note: back them up first (`rekube backup create {env}`), or put them in the spec; \
                     rebuild-check compares only what the spec makes"
                ));
            }
            let text = serde_json::to_vec_pretty(&fp).unwrap_or_default();
            rekube_cluster::files::write_private(&before_path, &text).map_err(io("write", &before_path))?;
            fp
        }
    };
    run.say(format!(
        "rebuild-check `{env}`: recorded {} objects (fingerprint {})",
        before.objects.len(),
        before.digest()
    ));
    run.done(&Step::Fingerprint, before.digest(), t)?;

    let t = Instant::now();
    // Resumed after the teardown: do not tear down the half-built cluster again.
    if !run.done_before(&Step::Down) && !run.done_before(&Step::Up) {
        let hint = "; `rekube down --force` deletes the cluster anyway";
        let heading = format!("rekube down `{env}`");
        if let Ended::Stopped(code) =
            down_steps(loaded, env, &mut run, false, Duration::from_secs(300), &heading, hint).await?
        {
            return Ok(Ended::Stopped(code));
        }
        run.done(&Step::Down, "", t)?;
    }
    let down_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let flags = RenderFlags { no_cache: true, ..Default::default() };
    if let Ended::Stopped(code) = up_steps(loaded, env, &mut run, &flags).await? {
        return Ok(Ended::Stopped(code));
    }
    run.done(&Step::Up, "", t)?;
    let up_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let (after, _) = fingerprint(loaded, env, false).await?;
    let _ = rekube_cluster::files::write_private(
        &dir.join(format!("{env}.after.json")),
        &serde_json::to_vec_pretty(&after).unwrap_or_default(),
    );
    let differences = rekube_plan::fingerprint::compare(&before, &after);
    run.done(&Step::Compare, format!("{} difference(s)", differences.len()), t)?;
    let steps = run.finish()?;
    Ok(Ended::Done(RebuildReport {
        environment: env.to_string(),
        identical: differences.is_empty(),
        objects: before.objects.len(),
        fingerprint_before: before.digest(),
        fingerprint_after: after.digest(),
        differences,
        down_seconds,
        up_seconds,
        seconds: began.elapsed().as_secs_f64(),
        steps,
    }))
}
