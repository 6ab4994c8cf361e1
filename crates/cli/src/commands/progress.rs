//! Progress of apply and destroy: one live line per component on a
//! terminal (indicatif), plain lines otherwise (CI logs, tests).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rekube_kube::Event;

/// Renders events as they come.
pub struct Progress {
    bars: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
    verb: Mutex<&'static str>,
}

impl Progress {
    /// Live bars when stderr is a terminal, plain lines otherwise.
    pub fn new(verb: &'static str) -> Self {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| (MultiProgress::with_draw_target(ProgressDrawTarget::stderr()), Mutex::new(HashMap::new())));
        Self { bars, verb: Mutex::new(verb) }
    }

    fn line(&self, component: &str, text: &str) {
        match &self.bars {
            Some((multi, bars)) => {
                let mut bars = bars.lock().expect("not poisoned");
                let bar = bars.entry(component.to_string()).or_insert_with(|| {
                    let b = multi.add(ProgressBar::new_spinner());
                    b.set_style(
                        ProgressStyle::with_template("{spinner} {prefix:<20} {wide_msg}").expect("valid template"),
                    );
                    b.set_prefix(component.to_string());
                    b.enable_steady_tick(std::time::Duration::from_millis(120));
                    b
                });
                bar.set_message(text.to_string());
            }
            None => crate::printer::message(format!("{component}: {text}")),
        }
    }

    fn finish(&self, component: &str, text: &str) {
        match &self.bars {
            Some((_, bars)) => {
                if let Some(b) = bars.lock().expect("not poisoned").get(component) {
                    b.finish_with_message(text.to_string());
                } else {
                    crate::printer::message(format!("{component}: {text}"));
                }
            }
            None => crate::printer::message(format!("{component}: {text}")),
        }
    }

    /// What component lines say while objects are written (`applying`, `deleting`, `dry-run`).
    pub fn set_verb(&self, verb: &'static str) {
        *self.verb.lock().expect("not poisoned") = verb;
    }

    fn verb(&self) -> &'static str {
        *self.verb.lock().expect("not poisoned")
    }

    /// Handles one event.
    pub fn on(&self, e: Event) {
        match e {
            Event::Waiting { component } => self.line(&component, "waiting for dependencies"),
            Event::Applying { component, done, total } if total > 0 => {
                self.line(&component, &format!("{} {done}/{total}", self.verb()))
            }
            Event::Applying { component, .. } => self.line(&component, self.verb()),
            Event::WaitingHealth { component, pending } => self.line(&component, &format!("waiting: {pending}")),
            Event::Kept { what, .. } | Event::Note { what, .. } => crate::printer::message(format!("note: {what}")),
            Event::Done { component, outcome } => {
                let text = outcome.to_string();
                self.finish(&component, &text);
            }
        }
    }
}

/// Prints an operation's events: its step lines (unless `lines` is off,
/// for `-o json`), component progress, and apply's and destroy's first and
/// last words (unless `text` is off: the command prints JSON instead).
pub struct Reporter {
    progress: Progress,
    lines: bool,
    text: bool,
}

impl Reporter {
    /// Component lines say `verb` until an apply starts.
    pub fn new(verb: &'static str, lines: bool, text: bool) -> Self {
        Self { progress: Progress::new(verb), lines, text }
    }

    /// Handles one event.
    pub fn on(&self, e: rekube_engine::steps::Event) {
        use rekube_engine::steps::Event as E;
        match e {
            E::Line(line) if self.lines => crate::printer::message(line),
            E::Line(_) => {}
            E::Component(e) => self.progress.on(e),
            E::Applying(start) => {
                self.progress.set_verb(if start.dry_run { "dry-run" } else { "applying" });
                if self.text {
                    crate::printer::message(applying_text(&start));
                }
            }
            E::Applied(run) if self.text => applied_text(&run).into_iter().for_each(crate::printer::message),
            E::Destroyed(run) if self.text => crate::printer::message(destroyed_text(&run)),
            E::Applied(_) | E::Destroyed(_) => {}
        }
    }
}

fn applying_text(s: &rekube_engine::ops::converge::ApplyStart) -> String {
    let mode = if s.dry_run { " (server dry-run: nothing is persisted)" } else { "" };
    let n = &s.summary;
    format!(
        "applying `{}`{mode}: {} to create, {} to update, {} to delete, {} unchanged",
        s.env, n.create, n.update, n.delete, n.unchanged
    )
}

fn applied_text(run: &rekube_engine::ops::converge::ApplyRun) -> Vec<String> {
    let (env, s) = (&run.env, run.plan.summary());
    if run.report.failed() {
        return vec![format!("apply of `{env}` FAILED after {:.1}s", run.seconds)];
    }
    if !run.plan.has_changes() {
        return vec![format!(
            "no changes: `{env}` already matches the spec ({} objects checked, all healthy)",
            s.unchanged
        )];
    }
    let mut out = vec![format!(
        "applied `{env}` in {:.1}s: {} written, {} deleted, {} unchanged",
        run.seconds,
        run.report.written(),
        s.delete,
        s.unchanged
    )];
    if !run.dry_run {
        for a in run.plan.components.iter().flat_map(|c| &c.actions) {
            for r in &a.reverts {
                let who =
                    r.manager.as_deref().map_or("a /scale write or an unrecorded manager".to_string(), |m| {
                        match (&r.subresource, &r.time) {
                            (Some(sub), _) => format!("{m} through /{sub}"),
                            (None, t) => format!("{m} at {}", t.as_deref().unwrap_or("?")),
                        }
                    });
                out.push(format!(
                    "  reverted {} {}: {} → {} (changed by {who})",
                    a.display_name(),
                    r.path,
                    crate::commands::show(&r.live),
                    crate::commands::show(&r.applied)
                ));
            }
        }
    }
    out
}

fn destroyed_text(run: &rekube_engine::ops::converge::DestroyRun) -> String {
    if run.report.failed() {
        return format!("destroy of `{}` FAILED", run.env);
    }
    format!(
        "destroyed `{}`: {} objects in {} component(s), in {:.1}s",
        run.env,
        run.deleted,
        run.report.components.len(),
        run.seconds
    )
}
