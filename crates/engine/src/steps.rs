//! Operations as named, journaled steps. Every lifecycle operation runs
//! under the environment's local lock, records each finished step in its
//! journal, and reports through the same [`Event`]s; a run that dies is
//! resumed by running it again: [`Run::begin`] says what the interrupted
//! run finished, and [`Run::resumed`] skips what need not run twice.

use std::fmt;
use std::time::Instant;

use rekube_kube::ApplyReport;
use rekube_plan::{Plan, Summary};
use rekube_spec::Loaded;
use serde::Serialize;

use crate::EngineError;
use crate::journal::{Journal, Lock};
use crate::workspace::state_root;

/// A step of an operation: its name is its journal key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `up`: make a prerequisite (check, then create).
    Prerequisite(String),
    /// `up`: create the cluster, or find it.
    Cluster,
    /// `up`: apply every component, health-gated.
    Components,
    /// `down`: delete LoadBalancer Services and Ingresses first.
    ReleaseLoadBalancers,
    /// `down`: destroy every component.
    DestroyComponents,
    /// `down`: delete the cluster.
    DeleteCluster,
    /// `down`: remove a prerequisite (reverse order).
    RemovePrerequisite(String),
    /// `rebuild-check`: record what is there.
    Fingerprint,
    /// `rebuild-check`: the whole of `down`.
    Down,
    /// `rebuild-check`: the whole of `up`.
    Up,
    /// `rebuild-check`: compare before and after.
    Compare,
    /// `upgrade`: every rendered object is served by the new color.
    Preflight,
    /// `upgrade`: the new color is drift-free (a second plan is empty).
    Verify,
    /// `upgrade`: `copy:` carried from the old color through the backup store.
    Copy,
    /// `upgrade`: the checks pass before any traffic moves.
    Checks,
    /// `upgrade`: this percent of traffic on the new color, soaked and checked.
    Traffic(u32),
    /// `upgrade --finish`: the new color is recorded live.
    Promote,
    /// `upgrade --finish`: the old color's DNS record is deleted.
    RemoveRecord(String),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Prerequisite(p) => write!(f, "prerequisite {p}"),
            Step::Cluster => f.write_str("cluster"),
            Step::Components => f.write_str("components"),
            Step::ReleaseLoadBalancers => f.write_str("release load balancers"),
            Step::DestroyComponents => f.write_str("destroy components"),
            Step::DeleteCluster => f.write_str("delete cluster"),
            // Named apart from up's steps: rebuild-check journals both.
            Step::RemovePrerequisite(p) => write!(f, "remove prerequisite {p}"),
            Step::Fingerprint => f.write_str("fingerprint"),
            Step::Down => f.write_str("down"),
            Step::Up => f.write_str("up"),
            Step::Compare => f.write_str("compare"),
            Step::Preflight => f.write_str("preflight"),
            Step::Verify => f.write_str("verify"),
            Step::Copy => f.write_str("copy"),
            Step::Checks => f.write_str("checks"),
            Step::Traffic(p) => write!(f, "traffic {p}%"),
            Step::Promote => f.write_str("promote"),
            Step::RemoveRecord(c) => write!(f, "remove record {c}"),
        }
    }
}

/// A finished step, as `-o json` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// Its name.
    pub step: String,
    /// What it did.
    pub note: String,
    /// How long it took.
    pub seconds: f64,
}

/// What an operation reports as it goes.
#[derive(Debug, Clone)]
pub enum Event {
    /// A line about the operation or one of its steps (`  cluster `dev`: deleted`).
    Line(String),
    /// Component progress of an apply or destroy.
    Component(rekube_kube::Event),
    /// An apply starts.
    Applying(Box<ApplyStart>),
    /// An apply ended.
    Applied(Box<ApplyRun>),
    /// A destroy ended.
    Destroyed(Box<DestroyRun>),
}

/// An apply begins: what it will do.
#[derive(Debug, Clone)]
pub struct ApplyStart {
    /// The environment.
    pub env: String,
    /// Server-side dry-run.
    pub dry_run: bool,
    /// The plan's counts.
    pub summary: Summary,
}

/// An apply ended.
#[derive(Debug, Clone)]
pub struct ApplyRun {
    /// The environment.
    pub env: String,
    /// Server-side dry-run.
    pub dry_run: bool,
    /// What was planned (with the hand changes it reverted).
    pub plan: Plan,
    /// What happened per component.
    pub report: ApplyReport,
    /// How long it took.
    pub seconds: f64,
}

/// A destroy ended.
#[derive(Debug, Clone)]
pub struct DestroyRun {
    /// The environment.
    pub env: String,
    /// What happened per component.
    pub report: ApplyReport,
    /// Objects deleted.
    pub deleted: usize,
    /// How long it took.
    pub seconds: f64,
}

/// Where events go.
pub type Observer<'a> = &'a (dyn Fn(Event) + Sync);

/// One run of an operation on one environment: its lock and journal.
pub struct Run<'a> {
    _lock: Lock,
    journal: Journal,
    on: Observer<'a>,
    records: Vec<StepRecord>,
    began: Instant,
}

impl<'a> Run<'a> {
    /// Takes the lock and begins the journal, saying what an interrupted run left.
    pub fn begin(loaded: &Loaded, env: &str, command: &str, on: Observer<'a>) -> Result<Self, EngineError> {
        let lock = Lock::acquire(&state_root(loaded), env, command)?;
        Self::with_lock(lock, loaded, env, command, on)
    }

    /// [`Run::begin`] under a lock already taken (to read state under it first).
    pub fn with_lock(
        lock: Lock,
        loaded: &Loaded,
        env: &str,
        command: &str,
        on: Observer<'a>,
    ) -> Result<Self, EngineError> {
        let root = state_root(loaded);
        let (journal, interrupted) = Journal::begin(&root, env, command)?;
        if let Some(i) = interrupted {
            let done: Vec<&str> = i.steps.iter().map(|s| s.name.as_str()).collect();
            let done = if done.is_empty() { "nothing yet".to_string() } else { done.join(", ") };
            on(Event::Line(format!(
                "resuming `rekube {command} {env}` interrupted (PID {}, started {}); finished then: {done}",
                i.pid, i.started
            )));
        }
        Ok(Self { _lock: lock, journal, on, records: Vec::new(), began: Instant::now() })
    }

    /// Reports a line.
    pub fn say(&self, line: impl Into<String>) {
        (self.on)(Event::Line(line.into()));
    }

    /// Where events go.
    pub fn observer(&self) -> Observer<'a> {
        self.on
    }

    /// Whether the interrupted run this one resumes had finished `step`.
    pub fn done_before(&self, step: &Step) -> bool {
        self.journal.done_before(&step.to_string())
    }

    /// When the interrupted run finished `step`: says so, records it, and
    /// returns true (the step is skipped).
    pub fn resumed(&mut self, step: &Step) -> Result<bool, EngineError> {
        if !self.done_before(step) {
            return Ok(false);
        }
        self.say(format!("  {step}: done by the interrupted run"));
        self.done(step, "done before", Instant::now())?;
        Ok(true)
    }

    /// Records that `step`, begun at `began`, finished with `note`.
    pub fn done(&mut self, step: &Step, note: impl Into<String>, began: Instant) -> Result<(), EngineError> {
        let note = note.into();
        self.journal.done(&step.to_string(), note.clone())?;
        kill_point(&step.to_string());
        self.records.push(StepRecord { step: step.to_string(), note, seconds: began.elapsed().as_secs_f64() });
        Ok(())
    }

    /// Seconds since the run began.
    pub fn elapsed(&self) -> f64 {
        self.began.elapsed().as_secs_f64()
    }

    /// Marks the run finished; returns its steps.
    pub fn finish(self) -> Result<Vec<StepRecord>, EngineError> {
        self.journal.finish()?;
        Ok(self.records)
    }

    /// The steps recorded so far.
    pub fn records(&self) -> &[StepRecord] {
        &self.records
    }
}

/// The variable that names a kill point (test builds only).
pub const KILL_VAR: &str = "REKUBE_KILL_AFTER";

/// Test builds only: when `REKUBE_KILL_AFTER` names `point` (a journal step
/// as its journal spells it, such as `traffic 50%`, or another named point),
/// the process kills itself with SIGKILL right there, as `kill -9` would:
/// the kill matrix picks its points with it. Release builds ignore it.
pub fn kill_point(point: &str) {
    rekube_cluster::api::kill_point(KILL_VAR, point);
}
