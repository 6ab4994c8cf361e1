//! `rekube upgrade ENV [--kubernetes V] [--finish | --rollback] [--dry-run]`:
//! the engine runs the blue/green cycle; this prints what it reports.

use std::path::Path;

use rekube_engine::ops::cluster::Ended;
use rekube_engine::ops::upgrade::{self as ops, UpgradeReport};
use serde_json::json;

use crate::Failure;
use crate::args::{Global, Identity, Output};
use crate::commands::load_valid;
use crate::commands::progress::Reporter;
use crate::printer;

/// Which part of the cycle.
pub struct How {
    /// `--kubernetes`.
    pub kubernetes: Option<String>,
    /// `--finish`.
    pub finish: bool,
    /// `--rollback`.
    pub rollback: bool,
    /// `--discard` (with `--rollback`).
    pub discard: bool,
    /// `--force`, `--timeout`.
    pub retire: ops::Retire,
    /// `--dry-run`.
    pub dry_run: bool,
}

/// Runs it; exit 1 when a check rolled the upgrade back.
pub async fn run(g: &Global, env: &str, how: &How, identity: Option<&Path>) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    let r = Reporter::new("applying", g.output != Output::Json, true);
    let on = |e| r.on(e);
    let ended = if how.finish {
        ops::finish(&loaded, env, how.retire, &on).await?
    } else if how.rollback {
        ops::rollback(&loaded, env, how.discard.then_some(how.retire), &on).await?
    } else {
        let id = Identity { identity: identity.map(Path::to_path_buf), allow_unsigned: false };
        let opts = ops::Options {
            kubernetes: how.kubernetes.clone(),
            dry_run: how.dry_run,
            identities: crate::commands::backup::identities(&id)?,
        };
        ops::upgrade(&loaded, env, &opts, &on).await?
    };
    let report = match ended {
        Ended::Stopped(code) => return Ok(code),
        Ended::Done(report) => report,
    };
    match g.output {
        Output::Json => printer::json(&json!(report)),
        _ => printer::data(text(&report, how)),
    }
    let failed = report.rolled_back.is_some() && !how.rollback && !how.dry_run;
    Ok(u8::from(failed))
}

/// The closing lines people read.
fn text(r: &UpgradeReport, how: &How) -> String {
    let env = &r.environment;
    if !r.planned.is_empty() {
        let mut out = format!("upgrade `{env}` would (dry run, nothing changed):\n");
        for (i, s) in r.planned.iter().enumerate() {
            out.push_str(&format!("  {}. {s}\n", i + 1));
        }
        return out.trim_end().to_string();
    }
    match (&r.rolled_back, how.rollback, r.stage.as_str()) {
        (_, true, "discarded") => {
            format!("ROLLED BACK: all traffic of `{env}` is on `{}`; `{}` is retired ({:.1}s)", r.from, r.to, r.seconds)
        }
        (_, true, _) => format!("ROLLED BACK: all traffic of `{env}` is on `{}` again ({:.1}s)", r.from, r.seconds),
        (Some(why), _, _) => format!(
            "ROLLED BACK: all traffic of `{env}` is on `{}` again; `{}` is kept for a look\n  why: {why}",
            r.from, r.to
        ),
        (None, _, "finished") => {
            format!("FINISHED: `{}` is live for `{env}`; `{}` is retired ({:.1}s)", r.to, r.from, r.seconds)
        }
        _ => format!(
            "SHIFTED: {}% of `{env}` on `{}`{} in {:.1}s; `{}` is kept.\n  next: `rekube upgrade {env} --finish` \
             retires it, or `rekube upgrade {env} --rollback` moves traffic back",
            r.percent,
            r.to,
            r.version.as_deref().map(|v| format!(" ({v})")).unwrap_or_default(),
            r.seconds,
            r.from
        ),
    }
}
