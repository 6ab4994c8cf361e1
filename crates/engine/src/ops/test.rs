//! `rekube test`: the components' Helm test hooks (`helm.sh/hook: test`),
//! as `helm test` runs them: each created (after deleting the one before),
//! waited for, its log shown when it fails, deleted as its policy says.
//! `apply` never creates them.

use std::time::{Duration, Instant};

use rekube_kube::hooks::{HookOutcome, clean_succeeded, run_hook};
use rekube_kube::planner::{hook_run, prepare_hook};
use rekube_render::hooks::HookEvent;
use serde::Serialize;

use crate::EngineError;
use crate::context::Context;
use crate::ops::converge::leased;
use crate::steps::{Event, Observer};

/// One test's result.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    /// Its component.
    pub component: String,
    /// `Pod namespace/name`.
    pub test: String,
    /// Whether it passed.
    pub passed: bool,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long it took.
    pub seconds: f64,
}

/// Runs the test hooks of `ctx`'s (selected) components, in order, under
/// the environment's lease; each test's end is reported as a line.
pub async fn test(
    ctx: &Context,
    timeout: Duration,
    break_lock: bool,
    on: Observer<'_>,
) -> Result<Vec<TestResult>, EngineError> {
    let client = ctx.resolver.client().clone();
    leased(&client, &ctx.loaded, &ctx.env, "test", break_lock, on, async {
        let mut out = Vec::new();
        let desired = ctx.desired();
        for comp in ctx.rendered.spec_components() {
            let identity = desired.identity(&comp.name);
            let mut succeeded = Vec::new();
            for h in comp.hooks.iter().filter(|h| h.runs_at(HookEvent::Test)) {
                let run = hook_run(h, HookEvent::Test, true, prepare_hook(&h.object.value, &identity));
                let t = Instant::now();
                let outcome = run_hook(&ctx.resolver, &comp.name, &run, timeout, &|e| on(Event::Component(e))).await?;
                let (passed, reason) = match outcome {
                    HookOutcome::Succeeded => (true, None),
                    HookOutcome::Failed(why) => (false, Some(why)),
                };
                let r = TestResult {
                    component: comp.name.clone(),
                    test: run.display_name(),
                    passed,
                    reason,
                    seconds: t.elapsed().as_secs_f64(),
                };
                let verdict = match &r.reason {
                    None => "passed".to_string(),
                    Some(why) => format!("FAILED: {why}"),
                };
                on(Event::Line(format!("{}: {} {verdict} ({:.1}s)", r.component, r.test, r.seconds)));
                out.push(r);
                if passed {
                    succeeded.push(run);
                }
            }
            let runs: Vec<_> = succeeded.iter().collect();
            clean_succeeded(&ctx.resolver, &runs, timeout).await?;
        }
        Ok::<_, EngineError>(out)
    })
    .await
}
