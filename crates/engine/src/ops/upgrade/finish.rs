//! The ends of an upgrade: rolling back (on a failed check, or
//! `--rollback`, optionally discarding the new color) and `--finish`.

use std::time::{Duration, Instant};

use rekube_cluster::traffic::{Target, Traffic};
use rekube_spec::{BlueGreen, Loaded};

use super::{UpgradeReport, address, blue_green, on_color, refuse, report, traffic};
use crate::EngineError;
use crate::colors::{Colors, Finished, Stage, now};
use crate::journal::{Lock, discard};
use crate::ops::cluster::{Ended, down_steps};
use crate::steps::{Observer, Run, Step};
use crate::workspace::state_root;

/// Puts all traffic back on the old color. The reason is recorded first
/// (stage `rolling back`), so a run killed half-way is completed by the
/// next `upgrade` or `--rollback`.
async fn roll_back(
    loaded: &Loaded,
    env: &str,
    bg: &BlueGreen,
    colors: &mut Colors,
    tr: &Traffic,
    run: &Run<'_>,
    why: String,
) -> Result<(), EngineError> {
    let Some(u) = colors.upgrade.as_mut() else {
        return Err(refuse(
            format!("no upgrade of `{env}` is under way"),
            format!("`rekube upgrade {env}` starts one"),
        ));
    };
    u.stage = Stage::RollingBack;
    u.reason = Some(why.clone());
    u.soak_until = None;
    u.updated = now();
    let (from, to) = (u.from.clone(), u.to.clone());
    colors.save(loaded)?;
    run.say(format!("  {why}"));
    // The addresses already in the records: rolling back must not depend on
    // reaching either cluster's API server.
    let current = tr.read(&[from.clone(), to.clone()]).await?;
    let from_addr = match current.iter().find(|t| t.color == from).and_then(|t| t.address.clone()) {
        Some(a) => Some(a),
        None if bg.address.is_some() => {
            let blue = on_color(loaded, env, &from, colors.versions.get(&from).map(String::as_str));
            address(&crate::context::cluster_client(&blue, env).await?.0, bg, &from).await?
        }
        None => None,
    };
    let mut back = vec![Target { color: from.clone(), address: from_addr, weight: 100 }];
    // The new color keeps its record (at 0) when it has one.
    if let Some(t) = current.iter().find(|t| t.color == to && t.weight > 0) {
        back.push(Target { color: to.clone(), address: t.address.clone(), weight: 0 });
    }
    tr.set(&back).await?;
    if let Some(u) = colors.upgrade.as_mut() {
        u.stage = Stage::RolledBack;
        u.percent = 0;
        u.updated = now();
    }
    colors.save(loaded)?;
    run.say(format!("  rolled back: all traffic on `{from}` again (in sync); `{to}` is kept for a look"));
    Ok(())
}

/// [`roll_back`], then the run's end: the upgrade's journal is ended last,
/// so the next `upgrade` starts afresh.
pub(super) async fn rolled_back(
    loaded: &Loaded,
    env: &str,
    bg: &BlueGreen,
    colors: &mut Colors,
    tr: &Traffic,
    run: Run<'_>,
    why: String,
) -> Result<Ended<UpgradeReport>, EngineError> {
    let began = Instant::now();
    roll_back(loaded, env, bg, colors, tr, &run, why).await?;
    let steps = run.finish()?;
    discard(&state_root(loaded), env, "upgrade")?;
    let (from, to, version) =
        colors.upgrade.as_ref().map(|u| (u.from.clone(), u.to.clone(), u.kubernetes.clone())).unwrap_or_default();
    Ok(Ended::Done(report(env, colors, &from, &to, version, began, steps, Vec::new())))
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

/// How `--finish` and `--rollback --discard` retire a color.
#[derive(Debug, Clone, Copy)]
pub struct Retire {
    /// Delete the cluster even when some component cannot be destroyed.
    pub force: bool,
    /// How long to wait for each component's objects to disappear.
    pub timeout: Duration,
}

/// `rekube upgrade ENV --finish`: once the traffic side confirms all of it
/// is on the new color, the new color becomes live, the old color's record
/// is deleted, and the old cluster is retired as `down` does.
pub async fn finish(
    loaded: &Loaded,
    env: &str,
    how: Retire,
    on: Observer<'_>,
) -> Result<Ended<UpgradeReport>, EngineError> {
    let began = Instant::now();
    let bg = blue_green(loaded, env)?;
    let lock = Lock::acquire(&state_root(loaded), env, "upgrade-finish")?;
    let mut colors = Colors::of(loaded, env, bg)?;
    let Some(u) = colors.upgrade.clone() else {
        return Err(nothing_under_way(env, &colors, "finish"));
    };
    match u.stage {
        Stage::Shifted | Stage::Finishing => {}
        Stage::RolledBack | Stage::RollingBack => {
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
    if u.stage == Stage::Shifted {
        // The record says 100%; the traffic side must agree before anything is deleted.
        let now = tr.read(&[u.from.clone(), u.to.clone()]).await?;
        let weight = |c: &str| now.iter().find(|t| t.color == c).map_or(0, |t| t.weight);
        if (weight(&u.from), weight(&u.to)) != (0, 100) {
            return Err(refuse(
                format!(
                    "{} says `{}` {}% / `{}` {}%, not all on `{}`; nothing was retired",
                    tr.describe(),
                    u.from,
                    weight(&u.from),
                    u.to,
                    weight(&u.to),
                    u.to
                ),
                format!(
                    "someone moved the weights: `rekube upgrade {env} --rollback` puts all traffic back on `{}`, \
                     or move it all to `{}` and finish again",
                    u.from, u.to
                ),
            ));
        }
    }
    let mut run = Run::with_lock(lock, loaded, env, "upgrade-finish", on)?;
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
    if let Ended::Stopped(code) = retire(loaded, env, &colors, &tr, &mut run, &u.from, how, "--finish").await? {
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

/// Deletes `color`'s DNS record, then its components, cluster and
/// prerequisites as `down` does. `flag` is the command's own flag, for the
/// hint when a component cannot be destroyed.
#[allow(clippy::too_many_arguments, reason = "the retirement's inputs")]
async fn retire(
    loaded: &Loaded,
    env: &str,
    colors: &Colors,
    tr: &Traffic,
    run: &mut Run<'_>,
    color: &str,
    how: Retire,
    flag: &str,
) -> Result<Ended<()>, EngineError> {
    let step = Step::RemoveRecord(color.to_string());
    if !run.resumed(&step)? {
        let t = Instant::now();
        tr.remove(color).await?;
        run.say(format!("  {}: the record of `{color}` is deleted", tr.describe()));
        run.done(&step, "deleted", t)?;
    }
    let old = on_color(loaded, env, color, colors.versions.get(color).map(String::as_str));
    let hint = format!("; `rekube upgrade {env} {flag} --force` deletes `{color}` anyway");
    let heading = format!("  retiring `{color}`");
    Ok(match down_steps(&old, env, run, how.force, how.timeout, &heading, &hint).await? {
        Ended::Stopped(code) => Ended::Stopped(code),
        Ended::Done(_) => Ended::Done(()),
    })
}

/// `rekube upgrade ENV --rollback [--discard]`: all traffic back on the old
/// color, at any point before `--finish`; the new color is kept for a look,
/// or with `discard` retired (its record and cluster deleted).
pub async fn rollback(
    loaded: &Loaded,
    env: &str,
    discard_new: Option<Retire>,
    on: Observer<'_>,
) -> Result<Ended<UpgradeReport>, EngineError> {
    let bg = blue_green(loaded, env)?;
    let lock = Lock::acquire(&state_root(loaded), env, "upgrade-rollback")?;
    let mut colors = Colors::of(loaded, env, bg)?;
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
    let mut run = Run::with_lock(lock, loaded, env, "upgrade-rollback", on)?;
    let why = "rolled back by --rollback".to_string();
    let Some(how) = discard_new else {
        return rolled_back(loaded, env, bg, &mut colors, &tr, run, why).await;
    };
    // Traffic back first (again, when it is there already), then the new color goes.
    roll_back(loaded, env, bg, &mut colors, &tr, &run, why).await?;
    discard(&state_root(loaded), env, "upgrade")?;
    let began = Instant::now();
    if let Ended::Stopped(code) =
        retire(loaded, env, &colors, &tr, &mut run, &u.to, how, "--rollback --discard").await?
    {
        return Ok(Ended::Stopped(code));
    }
    colors.upgrade = None;
    colors.versions.remove(&u.to);
    colors.save(loaded)?;
    let steps = run.finish()?;
    let mut r = report(env, &colors, &u.from, &u.to, u.kubernetes.clone(), began, steps, Vec::new());
    r.stage = "discarded".into();
    r.rolled_back = Some(format!("rolled back; `{}` retired", u.to));
    Ok(Ended::Done(r))
}
