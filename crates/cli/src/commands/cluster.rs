//! `rekube up`, `down`, `status`, `rebuild-check` and `graph`: the engine
//! runs them; this prints what it reports.

use std::time::Duration;

use rekube_engine::ops::cluster::{self as ops, Ended};
use rekube_engine::ops::status::{self, EnvironmentStatus};
use serde_json::json;

use crate::Failure;
use crate::args::{Global, Output};
use crate::commands::load_valid;
use crate::commands::progress::Reporter;
use crate::printer;

/// Step lines only for people; apply's and destroy's words always (as text,
/// on stderr, also under `-o json`).
fn reporter(g: &Global, verb: &'static str) -> Reporter {
    Reporter::new(verb, g.output != Output::Json, true)
}

pub async fn up(g: &Global, env: &str) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    let r = reporter(g, "applying");
    match ops::up(&loaded, env, &|e| r.on(e)).await? {
        Ended::Stopped(code) => Ok(code),
        Ended::Done(report) => {
            match g.output {
                Output::Json => printer::json(&json!(report)),
                _ => printer::message(format!("up `{env}` done in {:.1}s", report.seconds)),
            }
            Ok(0)
        }
    }
}

pub async fn down(g: &Global, env: &str, force: bool, timeout: u64) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    let r = reporter(g, "deleting");
    match ops::down(&loaded, env, force, Duration::from_secs(timeout), &|e| r.on(e)).await? {
        Ended::Stopped(code) => Ok(code),
        Ended::Done(report) => {
            match g.output {
                Output::Json => printer::json(&json!(report)),
                _ => printer::message(format!("down `{env}` done in {:.1}s", report.seconds)),
            }
            Ok(0)
        }
    }
}

pub async fn rebuild_check(g: &Global, env: &str) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    let r = reporter(g, "deleting");
    let report = match ops::rebuild_check(&loaded, env, &|e| r.on(e)).await? {
        Ended::Stopped(code) => return Ok(code),
        Ended::Done(report) => report,
    };
    match g.output {
        Output::Json => printer::json(&json!(report)),
        _ if report.identical => printer::data(format!(
            "IDENTICAL: `{env}` was torn down and rebuilt from the spec: {} objects, fingerprint {} \
             (down {:.1}s, up {:.1}s, total {:.1}s)",
            report.objects, report.fingerprint_before, report.down_seconds, report.up_seconds, report.seconds
        )),
        _ => {
            let mut out = format!(
                "DIFFERENT: the rebuilt `{env}` differs from the one before in {} object(s):\n",
                report.differences.len()
            );
            for d in &report.differences {
                out.push_str(&format!("  {} {}\n", d.state, d.object));
                for f in &d.fields {
                    let (before, after) = (crate::commands::show(&f.before), crate::commands::show(&f.after));
                    out.push_str(&format!("      {}: {before} → {after}\n", f.path));
                }
            }
            out.push_str(
                "Something in the spec's output is not reproducible (random names or values, timestamps, \
                 unpinned versions).",
            );
            printer::data(out);
        }
    }
    Ok(if report.identical { 0 } else { 2 })
}

pub async fn status(g: &Global, only: Option<&str>) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    let rows = status::status(&loaded, only).await?;
    match g.output {
        Output::Json => printer::json(&json!(rows)),
        _ => printer::data(status_text(&rows)),
    }
    Ok(0)
}

fn status_text(rows: &[EnvironmentStatus]) -> String {
    use crate::table::{Table, left};
    let mut table = Table::new([
        left("ENVIRONMENT", 14),
        left("CLUSTER", 12),
        left("PROVIDER", 9),
        left("STATE", 12),
        left("VERSION", 9),
        left("LAST APPLIED", 25),
        left("ENDPOINT", 0),
    ]);
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for r in rows {
        let mut notes = Vec::new();
        if let Some(p) = &r.problem {
            notes.push(p.clone());
        }
        if let Some(bg) = &r.blue_green {
            notes.extend(blue_green_lines(bg));
        }
        for c in r.components.iter().flatten() {
            let mut line = format!("{}: {}", c.component, c.health);
            match c.pending_changes {
                Some(0) | None => {}
                Some(n) => line.push_str(&format!(", {n} change(s) to apply")),
            }
            match c.drifted {
                Some(0) => line.push_str(", no drift"),
                Some(n) => line.push_str(&format!(", {n} object(s) drifted (`rekube drift`)")),
                None => {}
            }
            notes.push(line);
        }
        table.row(
            [
                r.environment.clone(),
                r.cluster.clone(),
                r.provider.to_string(),
                r.state.clone(),
                dash(&r.version),
                dash(&r.last_applied),
                dash(&r.endpoint),
            ],
            notes,
        );
    }
    table.render()
}

/// Both colors, the split and the upgrade's stage, under the environment's row.
fn blue_green_lines(bg: &rekube_engine::ops::upgrade::status::BlueGreenStatus) -> Vec<String> {
    let mut out = Vec::new();
    let split: Vec<String> = bg
        .colors
        .iter()
        .map(|c| format!("{} {}", c.cluster, c.weight.map_or("?".to_string(), |w| format!("{w}%"))))
        .collect();
    let mut head = format!("blue/green: traffic {} ({})", split.join(" / "), bg.traffic);
    if let Some(e) = &bg.traffic_error {
        head.push_str(&format!("; cannot read it: {e}"));
    }
    out.push(head);
    for c in &bg.colors {
        out.push(format!(
            "  {} ({}): {}{}",
            c.cluster,
            c.role,
            c.state,
            c.version.as_ref().map(|v| format!(" {v}")).unwrap_or_default()
        ));
    }
    if let (Some(stage), Some(p)) = (&bg.stage, bg.percent) {
        let mut line = format!("  upgrade: {stage}, {p}% on the new color");
        if let Some(s) = bg.soak_left_seconds.filter(|s| *s > 0) {
            line.push_str(&format!(", soak {s}s left"));
        }
        if let Some(why) = &bg.rolled_back {
            line.push_str(&format!(" ({why})"));
        }
        if !bg.running && ["building", "shifting", "rolling back"].contains(&stage.as_str()) {
            line.push_str("; interrupted: run `rekube upgrade` again to resume it");
        }
        out.push(line);
    }
    if let Some(f) = &bg.last_finished {
        out.push(format!("  last upgrade: {f}"));
    }
    out
}

/// `rekube graph`: the spec's picture of `env`, with `health`, colored from
/// the live cluster (as `status` reads it).
pub async fn graph(g: &Global, env: &str, format: crate::args::GraphFormat, health: bool) -> Result<u8, Failure> {
    use rekube_spec::diagram::{Format, State, draw};
    let loaded = load_valid(g)?;
    rekube_engine::workspace::environment(&loaded, env)?;
    let states = if health {
        let rows = status::components(&loaded, env).await?;
        Some(
            rows.into_iter()
                .map(|r| {
                    let s = match r.health.as_str() {
                        "healthy" => State::Healthy,
                        h if h.starts_with("failed") => State::Failed,
                        h if h.starts_with("progressing") => State::Progressing,
                        _ => State::Absent,
                    };
                    (r.component, s)
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
