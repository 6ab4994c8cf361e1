//! Progress of apply and destroy: one live line per component on a
//! terminal (indicatif), plain lines otherwise (CI logs, tests).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rekube_kube::{ComponentOutcome, Event};

/// Renders events as they come.
pub struct Progress {
    began: Instant,
    bars: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
    verb: &'static str,
}

impl Progress {
    /// Live bars when stderr is a terminal, plain lines otherwise.
    pub fn new(verb: &'static str) -> Self {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| (MultiProgress::with_draw_target(ProgressDrawTarget::stderr()), Mutex::new(HashMap::new())));
        Self { began: Instant::now(), bars, verb }
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

    /// Handles one event.
    pub fn on(&self, e: Event) {
        match e {
            Event::Waiting { component } => self.line(&component, "waiting for dependencies"),
            Event::Applying { component, done, total } if total > 0 => {
                self.line(&component, &format!("{} {done}/{total}", self.verb))
            }
            Event::Applying { component, .. } => self.line(&component, self.verb),
            Event::WaitingHealth { component, pending } => self.line(&component, &format!("waiting: {pending}")),
            Event::Kept { what, .. } => crate::printer::message(format!("note: {what}")),
            Event::Done { component, outcome } => {
                let text = match outcome {
                    ComponentOutcome::Done { written, deleted, unchanged } => {
                        format!("done ({written} written, {deleted} deleted, {unchanged} unchanged)")
                    }
                    ComponentOutcome::Failed(why) => format!("FAILED: {why}"),
                    ComponentOutcome::Skipped => "skipped: a component it needs failed".to_string(),
                };
                self.finish(&component, &text);
            }
        }
    }

    /// Seconds since start.
    pub fn elapsed(&self) -> f64 {
        self.began.elapsed().as_secs_f64()
    }
}
