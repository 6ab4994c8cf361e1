//! `rekube up`, `down`, `status` and `rebuild-check`: the environment's
//! cluster through its provider, its prerequisites, and the components on
//! it. `up`, `down` and `rebuild-check` hold the environment's lock and
//! record each finished step in a journal, so a run that dies is resumed by
//! running it again.

use std::time::Instant;

use anyhow::Context as _;
use rekube_cluster::journal::{Journal, Lock};
use rekube_cluster::prereq::{self, Outcome};
use rekube_cluster::provider::{Created, Kind, State};
use rekube_spec::Loaded;
use serde_json::{Value, json};

use crate::Failure;
use crate::args::{Global, Output, RenderFlags};
use crate::commands::converge::{Context, connect};
use crate::commands::{environment, load_valid, provider_cluster, state_root};
use crate::printer;

fn say(g: &Global, line: impl std::fmt::Display) {
    if g.output != Output::Json {
        printer::message(line);
    }
}

fn failure(e: impl Into<anyhow::Error>) -> Failure {
    let e = e.into();
    let hint = match e.downcast_ref::<rekube_cluster::journal::JournalError>() {
        Some(rekube_cluster::journal::JournalError::Locked { .. }) => {
            Some("wait for it to finish, or stop it; the lock is released the moment its process ends".to_string())
        }
        _ => match e.downcast_ref::<rekube_cluster::provider::ProviderError>() {
            Some(rekube_cluster::provider::ProviderError::Local(
                rekube_cluster::local::LocalError::BinariesMissing { .. },
            )) => Some("scripts/testbed-setup.sh builds them (about 10 minutes, once)".to_string()),
            Some(rekube_cluster::provider::ProviderError::Tool(rekube_cluster::tool::ToolError::Spawn {
                program,
                ..
            })) => Some(format!("is `{program}` installed, executable and on PATH? (docs/providers.md)")),
            _ => None,
        },
    };
    Failure::Error(e, hint)
}

/// Takes the lock and begins the journal, saying what an interrupted run left.
fn begin(g: &Global, loaded: &Loaded, env: &str, command: &str) -> Result<(Lock, Journal), Failure> {
    let root = state_root(loaded);
    let lock = Lock::acquire(&root, env, command).map_err(failure)?;
    let (journal, interrupted) = Journal::begin(&root, env, command).map_err(failure)?;
    if let Some(i) = interrupted {
        let done: Vec<&str> = i.steps.iter().map(|s| s.name.as_str()).collect();
        let done = if done.is_empty() { "nothing yet".to_string() } else { done.join(", ") };
        say(
            g,
            format!(
                "resuming `rekube {command} {env}` interrupted (PID {}, started {}); finished then: {done}",
                i.pid, i.started
            ),
        );
    }
    Ok((lock, journal))
}

pub async fn up(g: &Global, env: &str) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    environment(&loaded, env)?;
    let (_lock, mut journal) = begin(g, &loaded, env, "up")?;
    let code = up_steps(g, &loaded, env, &mut journal, &RenderFlags::default()).await?;
    if code == 0 {
        journal.finish().map_err(failure)?;
    }
    Ok(code)
}

/// Prerequisites, the cluster, the components: each idempotent, each
/// journaled.
async fn up_steps(
    g: &Global,
    loaded: &Loaded,
    env: &str,
    journal: &mut Journal,
    flags: &RenderFlags,
) -> Result<u8, Failure> {
    let began = Instant::now();
    let (cluster, prereqs) = provider_cluster(loaded, env)?;
    say(
        g,
        format!(
            "rekube up `{env}`: {} prerequisite(s), cluster `{}` ({}), {} component(s)",
            prereqs.len(),
            cluster.name,
            cluster.kind.name(),
            loaded.spec.components.len()
        ),
    );
    for p in &prereqs {
        let step = format!("prerequisite {}", p.name);
        if journal.done_before(&step) {
            say(g, format!("  {step}: done by the interrupted run"));
            journal.done(&step, "done before").map_err(failure)?;
            continue;
        }
        let t = Instant::now();
        let note = match prereq::ensure(p, &loaded.dir).await.map_err(failure)? {
            Outcome::Present => "present",
            _ => "created",
        };
        say(g, format!("  {step}: {note} ({:.1}s)", t.elapsed().as_secs_f64()));
        journal.done(&step, note).map_err(failure)?;
    }

    let t = Instant::now();
    let exe = std::env::current_exe().context("cannot find the rekube executable for the fake kubelet")?;
    let args = ["internal".to_string(), "fake-kubelet".to_string()];
    let created = cluster.create((&exe, &args)).await.map_err(failure)?;
    let state = cluster.state().await.map_err(failure)?;
    let (version, endpoint) = match &state {
        State::Present { version, endpoint, .. } => (version.clone(), endpoint.clone()),
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
    let (kubeconfig, _) = cluster.kubeconfig().await.map_err(failure)?;
    say(
        g,
        format!(
            "  cluster `{}` {how}: {} (Kubernetes {version})",
            cluster.name,
            endpoint.as_deref().unwrap_or("(endpoint from the kubeconfig)")
        ),
    );
    if let Some(k) = &kubeconfig {
        say(g, format!("    kubeconfig: {}", k.display()));
        say(g, format!("    try:        kubectl --kubeconfig {} get nodes", k.display()));
    }
    journal.done("cluster", how).map_err(failure)?;

    // The components, health-gated; apply prints its own progress.
    let quiet = Global { output: Output::Text, ..g.clone() };
    let code =
        crate::commands::converge::apply(&quiet, env, rekube_kube::ApplyOptions::default(), &Default::default(), flags)
            .await?;
    if code != 0 {
        return Ok(code);
    }
    journal.done("components", "applied").map_err(failure)?;
    match g.output {
        Output::Json => printer::json(&json!({
            "environment": env, "cluster": cluster.name, "provider": cluster.kind.name(), "created": created == Created::Created,
            "version": version, "endpoint": endpoint, "kubeconfig": kubeconfig, "seconds": began.elapsed().as_secs_f64(),
        })),
        _ => say(g, format!("up `{env}` done in {:.1}s", began.elapsed().as_secs_f64())),
    }
    Ok(0)
}

pub async fn down(g: &Global, env: &str, force: bool, timeout: u64) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    environment(&loaded, env)?;
    let (_lock, mut journal) = begin(g, &loaded, env, "down")?;
    let code = down_steps(g, &loaded, env, &mut journal, force, timeout).await?;
    if code == 0 {
        journal.finish().map_err(failure)?;
    }
    Ok(code)
}

/// Load balancers, components, the cluster, the prerequisites (reversed).
/// A `local` cluster holds nothing outside its processes: it is deleted
/// at once, its components with it.
async fn down_steps(
    g: &Global,
    loaded: &Loaded,
    env: &str,
    journal: &mut Journal,
    force: bool,
    timeout: u64,
) -> Result<u8, Failure> {
    let began = Instant::now();
    let (cluster, prereqs) = provider_cluster(loaded, env)?;
    say(
        g,
        format!(
            "rekube down `{env}`: load balancers, {} component(s), cluster `{}` ({}), {} prerequisite(s)",
            loaded.spec.components.len(),
            cluster.name,
            cluster.kind.name(),
            prereqs.len()
        ),
    );
    let local = matches!(cluster.kind, Kind::Local { .. });
    let reachable = !local && matches!(cluster.state().await.map_err(failure)?, State::Present { problem: None, .. });
    if local {
        say(
            g,
            format!("  cluster `{}` is local: its components and load balancers go with its processes", cluster.name),
        );
    } else if reachable {
        let client = connect(&cluster).await?;
        let (project, source) = crate::commands::project_scope(loaded);
        let ids = rekube_kube::environment_applysets(&client, &project, env, source.as_deref())
            .await
            .map_err(crate::commands::converge::kube_failure)?;
        let resolver = rekube_kube::Resolver::new(client);
        let released = rekube_kube::release_load_balancers(&resolver, &ids, std::time::Duration::from_secs(600))
            .await
            .map_err(crate::commands::converge::kube_failure)?;
        let note = if released.is_empty() { "none".to_string() } else { format!("released {}", released.join(", ")) };
        say(g, format!("  load balancers: {note}"));
        journal.done("release load balancers", note).map_err(failure)?;
        let quiet = Global { output: Output::Text, ..g.clone() };
        let code = match crate::commands::converge::destroy(&quiet, env, timeout).await {
            Ok(code) => code,
            Err(Failure::Error(e, _)) if force => {
                say(g, format!("  components: {e:#}"));
                1
            }
            Err(e) => return Err(e),
        };
        match code {
            0 => journal.done("destroy components", "destroyed").map_err(failure)?,
            _ if force && !matches!(cluster.kind, Kind::Existing { .. }) => {
                say(g, "  components: some could not be destroyed (above); --force: the cluster is deleted anyway");
            }
            _ => {
                let hint = if matches!(cluster.kind, Kind::Existing { .. }) {
                    ""
                } else {
                    "; `rekube down --force` deletes the cluster anyway"
                };
                say(g, format!("  components: some could not be destroyed (above){hint}"));
                return Ok(code);
            }
        }
    } else {
        say(g, format!("  cluster `{}` is not running: its components go with it", cluster.name));
    }
    let note = match &cluster.kind {
        Kind::Existing { .. } => "kept (provider `existing` never deletes its cluster)",
        _ if cluster.delete().await.map_err(failure)? => "deleted",
        _ => "did not exist",
    };
    say(g, format!("  cluster `{}`: {note}", cluster.name));
    journal.done("delete cluster", note).map_err(failure)?;
    for p in prereqs.iter().rev() {
        let step = format!("prerequisite {}", p.name);
        let note = match prereq::remove(p, &loaded.dir).await.map_err(failure)? {
            Outcome::Changed => "deleted",
            _ if p.delete.is_empty() => "kept (no `delete`)",
            _ => "absent",
        };
        say(g, format!("  {step}: {note}"));
        // Named apart from up's steps: rebuild-check journals both.
        journal.done(&format!("remove {step}"), note).map_err(failure)?;
    }
    match g.output {
        Output::Json => printer::json(
            &json!({"environment": env, "cluster": cluster.name, "seconds": began.elapsed().as_secs_f64()}),
        ),
        _ => say(g, format!("down `{env}` done in {:.1}s", began.elapsed().as_secs_f64())),
    }
    Ok(0)
}

/// Each component's health, pending changes and drift.
pub(crate) async fn components(g: &Global, env: &str) -> Result<Vec<Value>, Failure> {
    let ctx = Context::new(g, env, &Default::default(), &RenderFlags::default()).await?;
    let plan = ctx.plan().await?;
    let drift = ctx.drift().await?;
    let healths =
        rekube_kube::health_of(&ctx.resolver, &ctx.desired()).await.map_err(crate::commands::converge::kube_failure)?;
    let mut out = Vec::new();
    let mut comps: Vec<_> = plan.components.iter().filter(|c| c.identity.component.is_some()).collect();
    comps.sort_by_key(|c| (c.wave, c.name.clone()));
    for c in comps {
        let pending = c.actions.iter().filter(|a| a.op != rekube_plan::Op::Unchanged).count();
        let drifted = drift.iter().filter(|d| d.component == c.name && d.state != "pending-apply").count();
        let (mut ready, mut waiting, mut failed) = (0, Vec::new(), Vec::new());
        for (_, _, h) in healths.iter().filter(|(comp, _, _)| *comp == c.name) {
            match h {
                rekube_kube::Health::Ready => ready += 1,
                rekube_kube::Health::Pending(why) => waiting.push(why.clone()),
                rekube_kube::Health::Failed(why) => failed.push(why.clone()),
            }
        }
        let health = match (failed.first(), waiting.first()) {
            (Some(f), _) => format!("failed: {f}"),
            (None, Some(w)) => format!("progressing: {w}"),
            (None, None) if c.actions.iter().all(|a| a.op == rekube_plan::Op::Create) => "not applied".to_string(),
            (None, None) => "healthy".to_string(),
        };
        out.push(json!({"component": c.name, "health": health, "ready": ready, "pending_changes": pending, "drifted": drifted}));
    }
    Ok(out)
}

pub async fn status(g: &Global, only: Option<&str>) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    if let Some(env) = only {
        environment(&loaded, env)?;
    }
    let root = state_root(&loaded);
    let mut rows = Vec::new();
    for env in loaded.spec.environments.keys() {
        if only.is_some_and(|o| o != env) {
            continue;
        }
        let (cluster, _) = provider_cluster(&loaded, env)?;
        let (state, version, endpoint) = match cluster.state().await {
            Ok(State::Absent) => ("absent".to_string(), None, None),
            Ok(State::Present { version, endpoint, problem: Some(p) }) => (p, version, endpoint),
            Ok(State::Present { version, endpoint, problem: None }) => ("running".to_string(), version, endpoint),
            Err(e) => (format!("unknown: {e}"), None, None),
        };
        let (mut state, mut version, mut problem) = (state, version, None);
        if state == "running" {
            let reached = match cluster.client().await {
                Ok(c) => c.apiserver_version().await.map(|v| v.git_version).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match reached {
                Ok(v) => version = version.or(Some(v)),
                Err(e) => {
                    state = "unreachable".into();
                    problem = Some(e);
                }
            }
        }
        let comps = if state == "running" {
            match components(&Global { output: Output::Json, ..g.clone() }, env).await {
                Ok(c) => Some(c),
                Err(Failure::Error(e, _)) => Some(vec![json!({"component": "*", "health": format!("unknown: {e}")})]),
                Err(Failure::Reported) => None,
            }
        } else {
            None
        };
        rows.push(json!({
            "environment": env, "cluster": cluster.name, "provider": cluster.kind.name(), "state": state,
            "version": version, "endpoint": endpoint, "problem": problem, "last_applied": rekube_cluster::journal::last_applied(&root, env),
            "components": comps,
        }));
    }
    match g.output {
        Output::Json => printer::json(&json!(rows)),
        _ => printer::data(status_text(&rows)),
    }
    Ok(0)
}

fn status_text(rows: &[Value]) -> String {
    let s = |r: &Value, k: &str| r[k].as_str().unwrap_or("-").to_string();
    let mut out = format!(
        "{:<14} {:<12} {:<9} {:<12} {:<9} {:<25} {}\n",
        "ENVIRONMENT", "CLUSTER", "PROVIDER", "STATE", "VERSION", "LAST APPLIED", "ENDPOINT"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<14} {:<12} {:<9} {:<12} {:<9} {:<25} {}\n",
            s(r, "environment"),
            s(r, "cluster"),
            s(r, "provider"),
            s(r, "state"),
            s(r, "version"),
            s(r, "last_applied"),
            s(r, "endpoint")
        ));
        if let Some(p) = r["problem"].as_str() {
            out.push_str(&format!("  {p}\n"));
        }
        for c in r["components"].as_array().into_iter().flatten() {
            let mut line = format!("  {}: {}", s(c, "component"), s(c, "health"));
            match c["pending_changes"].as_u64() {
                Some(0) | None => {}
                Some(n) => line.push_str(&format!(", {n} change(s) to apply")),
            }
            match c["drifted"].as_u64() {
                Some(0) => line.push_str(", no drift"),
                Some(n) => line.push_str(&format!(", {n} object(s) drifted (`rekube drift`)")),
                None => {}
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out.trim_end().to_string()
}

/// The fingerprint of everything rekube manages in `env`, rendered afresh.
async fn fingerprint(g: &Global, env: &str) -> Result<rekube_plan::fingerprint::Fingerprint, Failure> {
    let flags = RenderFlags { no_cache: true, ..Default::default() };
    let ctx = Context::new(g, env, &Default::default(), &flags).await?;
    let objects = rekube_kube::managed_objects(&ctx.resolver, &ctx.desired())
        .await
        .map_err(crate::commands::converge::kube_failure)?;
    Ok(rekube_plan::fingerprint::Fingerprint::of(&objects))
}

pub async fn rebuild_check(g: &Global, env: &str) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    let e = environment(&loaded, env)?;
    let spec_cluster = &loaded.spec.clusters[&e.cluster.value];
    if spec_cluster.provider.value != rekube_spec::Provider::Local && !spec_cluster.disposable {
        return Err(Failure::Error(
            anyhow::anyhow!("cluster `{}` is not disposable: rebuild-check would delete it", e.cluster.value),
            Some("mark it `disposable: true` if it may be torn down and rebuilt, or use a `local` cluster".into()),
        ));
    }
    let (_lock, mut journal) = begin(g, &loaded, env, "rebuild-check")?;
    let dir = state_root(&loaded).join("rebuild");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let before_path = dir.join(format!("{env}.before.json"));
    let began = Instant::now();

    let before = match std::fs::read(&before_path)
        .ok()
        .filter(|_| journal.done_before("fingerprint"))
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(fp) => fp,
        None => {
            let fp = fingerprint(g, env).await?;
            if fp.objects.is_empty() {
                return Err(Failure::Error(
                    anyhow::anyhow!("`{env}` has no objects to compare"),
                    Some(format!("bring it up first: `rekube up {env}`")),
                ));
            }
            rekube_cluster::journal::write_private(&before_path, &serde_json::to_vec_pretty(&fp).unwrap_or_default())
                .with_context(|| format!("cannot write {}", before_path.display()))?;
            fp
        }
    };
    say(
        g,
        format!("rebuild-check `{env}`: recorded {} objects (fingerprint {})", before.objects.len(), before.digest()),
    );
    journal.done("fingerprint", before.digest()).map_err(failure)?;

    let t = Instant::now();
    // Resumed after the teardown: do not tear down the half-built cluster again.
    if !journal.done_before("down") && !journal.done_before("up") {
        let code = down_steps(g, &loaded, env, &mut journal, false, 300).await?;
        if code != 0 {
            return Ok(code);
        }
        journal.done("down", "").map_err(failure)?;
    }
    let down_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let code = up_steps(g, &loaded, env, &mut journal, &RenderFlags { no_cache: true, ..Default::default() }).await?;
    if code != 0 {
        return Ok(code);
    }
    journal.done("up", "").map_err(failure)?;
    let up_secs = t.elapsed().as_secs_f64();

    let after = fingerprint(g, env).await?;
    let _ = rekube_cluster::journal::write_private(
        &dir.join(format!("{env}.after.json")),
        &serde_json::to_vec_pretty(&after).unwrap_or_default(),
    );
    let diffs = rekube_plan::fingerprint::compare(&before, &after);
    journal.done("compare", format!("{} difference(s)", diffs.len())).map_err(failure)?;
    journal.finish().map_err(failure)?;
    let total = began.elapsed().as_secs_f64();
    match g.output {
        Output::Json => printer::json(&json!({
            "environment": env, "identical": diffs.is_empty(), "objects": before.objects.len(), "fingerprint_before": before.digest(),
            "fingerprint_after": after.digest(), "differences": diffs, "down_seconds": down_secs, "up_seconds": up_secs, "seconds": total,
        })),
        _ if diffs.is_empty() => printer::data(format!(
            "IDENTICAL: `{env}` was torn down and rebuilt from the spec: {} objects, fingerprint {} (down {down_secs:.1}s, up {up_secs:.1}s, total {total:.1}s)",
            before.objects.len(),
            before.digest()
        )),
        _ => {
            let mut out =
                format!("DIFFERENT: the rebuilt `{env}` differs from the one before in {} object(s):\n", diffs.len());
            for d in &diffs {
                out.push_str(&format!("  {} {}\n", d.state, d.object));
                for f in &d.fields {
                    let show = |v: &Option<Value>| v.as_ref().map_or("(none)".to_string(), Value::to_string);
                    out.push_str(&format!("      {}: {} → {}\n", f.path, show(&f.before), show(&f.after)));
                }
            }
            out.push_str("Something in the spec's output is not reproducible (random names or values, timestamps, unpinned versions).");
            printer::data(out);
        }
    }
    Ok(if diffs.is_empty() { 0 } else { 2 })
}

/// `rekube graph`: the spec's picture of `env`, with `health`, colored from
/// the live cluster (as `status` reads it).
pub async fn graph(g: &Global, env: &str, format: crate::args::GraphFormat, health: bool) -> Result<u8, Failure> {
    use rekube_spec::diagram::{Format, State, draw};
    let loaded = load_valid(g)?;
    environment(&loaded, env)?;
    let states = if health {
        let rows = components(&Global { output: Output::Json, ..g.clone() }, env).await?;
        Some(
            rows.iter()
                .filter_map(|r| {
                    let h = r["health"].as_str()?;
                    let s = if h == "healthy" {
                        State::Healthy
                    } else if h.starts_with("failed") {
                        State::Failed
                    } else if h.starts_with("progressing") {
                        State::Progressing
                    } else {
                        State::Absent
                    };
                    Some((r["component"].as_str()?.to_string(), s))
                })
                .collect(),
        )
    } else {
        None
    };
    let format = match format {
        crate::args::GraphFormat::Mermaid => Format::Mermaid,
        crate::args::GraphFormat::Dot => Format::Dot,
    };
    printer::data(draw(&loaded.spec, env, format, states.as_ref()).trim_end());
    Ok(0)
}
