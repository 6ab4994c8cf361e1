//! `rekube preview up|list|down|gc`: per-feature copies of an environment
//! on a shared cluster (docs/previews.md).

use std::time::Duration;

use rekube_engine::ops::preview::{self as ops, PreviewStatus, Request};
use serde_json::json;

use crate::Failure;
use crate::args::{Global, Output, Preview};
use crate::commands::load_valid;
use crate::commands::progress::Reporter;
use crate::printer;

/// Runs one preview subcommand.
pub async fn run(g: &Global, cmd: &Preview) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    let text = g.output != Output::Json;
    match cmd {
        Preview::Up { name, from, components, sets, values, ttl, copy_secrets, no_wait, timeout, render } => {
            let req = Request {
                name: name.clone(),
                from: from.clone(),
                components: components.clone(),
                sets: sets.clone(),
                values_file: values.clone(),
                ttl: ttl.clone(),
                copy_secrets: *copy_secrets,
            };
            let opts = rekube_kube::ApplyOptions {
                timeout: Duration::from_secs(*timeout),
                no_wait: *no_wait,
                ..Default::default()
            };
            let reporter = Reporter::new("applying", true, text);
            let run = ops::up(&loaded, &req, &render.engine(), opts, g.break_lock, &|e| reporter.on(e)).await?;
            let failed = run.apply.report.failed();
            let r = &run.record;
            let urls: Vec<String> = r.hosts.values().map(|h| format!("http://{h}/")).collect();
            if !text {
                printer::json(&json!({
                    "name": r.name, "from": r.from, "cluster": run.cluster, "updated": run.updated,
                    "failed": failed, "expires": r.expires, "namespaces": r.namespaces, "urls": urls,
                    "shared": r.shared, "copied_secrets": run.copied_secrets,
                    "written": run.apply.report.written(), "seconds": run.seconds,
                }));
            } else if !failed {
                let verb = if run.updated { "updated" } else { "ready" };
                let state = if *no_wait { "applied (not waited for)" } else { verb };
                printer::message(format!(
                    "preview `{}` of `{}` is {state} on cluster `{}` in {:.1}s",
                    r.name, r.from, run.cluster, run.seconds
                ));
                printer::message(format!("  namespaces: {}", r.namespaces.join(", ")));
                for u in &urls {
                    printer::message(format!("  url: {u}"));
                }
                for s in &r.shared {
                    printer::message(format!("  shares {s} (cluster-scoped, the same as the cluster's)"));
                }
                for s in &run.copied_secrets {
                    printer::message(format!("  copied Secret {s}"));
                }
                printer::message(format!(
                    "  expires {} (in {}); `rekube preview down {}` deletes it sooner",
                    r.expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    span((r.expires - chrono::Utc::now()).num_seconds()),
                    r.name
                ));
            }
            Ok(if failed { 1 } else { 0 })
        }
        Preview::List { from } => {
            let all = ops::list(&loaded, from.as_deref()).await?;
            match g.output {
                Output::Json => printer::json(&json!({"previews": all})),
                _ if all.is_empty() => printer::message("no previews"),
                _ => printer::data(list_text(&all)),
            }
            Ok(0)
        }
        Preview::Down { name, from, timeout, no_wait } => {
            let wait = rekube_kube::DestroyWait { timeout: Duration::from_secs(*timeout), namespaces: !no_wait };
            let reporter = Reporter::new("deleting", true, text);
            let run = ops::down(&loaded, name, from.as_deref(), wait, g.break_lock, &|e| reporter.on(e)).await?;
            let failed = run.destroy.report.failed();
            if !text {
                printer::json(&json!({
                    "name": run.name, "cluster": run.cluster, "deleted": run.destroy.deleted,
                    "failed": failed, "seconds": run.destroy.seconds,
                }));
            }
            Ok(if failed { 1 } else { 0 })
        }
        Preview::Gc { from, dry_run, timeout, no_wait } => {
            let wait = rekube_kube::DestroyWait { timeout: Duration::from_secs(*timeout), namespaces: !no_wait };
            let reporter = Reporter::new("deleting", true, text);
            let run = ops::gc(&loaded, from.as_deref(), *dry_run, wait, g.break_lock, &|e| reporter.on(e)).await?;
            if !text {
                printer::json(&json!({
                    "dry_run": dry_run, "deleted": run.deleted, "kept": run.kept,
                    "failed": run.failed.iter().map(|(n, why)| json!({"name": n, "error": why})).collect::<Vec<_>>(),
                }));
            } else {
                let verb = if *dry_run { "would delete" } else { "deleted" };
                let names = if run.deleted.is_empty() { "none".to_string() } else { run.deleted.join(", ") };
                printer::message(format!("expired previews {verb}: {names}; {} not expired", run.kept));
                for (n, why) in &run.failed {
                    printer::message(format!("preview `{n}` could not be deleted: {why}"));
                }
            }
            Ok(if run.failed.is_empty() { 0 } else { 1 })
        }
    }
}

/// `3h12m`, `45s`; negative spans read `expired 5m ago`.
fn span(seconds: i64) -> String {
    if seconds < 0 {
        return format!("expired {} ago", span(-seconds));
    }
    let (d, h, m, s) = (seconds / 86400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

fn list_text(all: &[PreviewStatus]) -> String {
    use crate::table::{Table, left, right};
    let mut table = Table::new([
        left("NAME", 10),
        left("FROM", 8),
        left("AGE", 6),
        left("TTL LEFT", 9),
        left("HEALTH", 8),
        right("OBJECTS", 7).gap(2),
        left("URL", 0),
    ]);
    for p in all {
        let health = if p.health.chars().count() > 48 {
            format!("{}…", p.health.chars().take(47).collect::<String>())
        } else {
            p.health.clone()
        };
        table.row(
            [
                p.name.clone(),
                p.from.clone(),
                span(p.age_seconds),
                span(p.ttl_left_seconds),
                health,
                p.objects.to_string(),
                p.urls.first().cloned().unwrap_or_else(|| "-".into()),
            ],
            Vec::new(),
        );
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::span;

    #[test]
    fn spans_read_like_a_clock() {
        assert_eq!(span(42), "42s");
        assert_eq!(span(300), "5m");
        assert_eq!(span(3 * 3600 + 12 * 60), "3h12m");
        assert_eq!(span(2 * 86400 + 3600), "2d01h");
        assert_eq!(span(-300), "expired 5m ago");
    }
}
