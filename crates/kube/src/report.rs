//! What apply and destroy report, as they go and at the end. A leaf: it
//! imports nothing from the crate, so every operation can share it.

/// Progress, reported as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Waiting for the components it needs.
    Waiting {
        /// The component.
        component: String,
    },
    /// Writing objects.
    Applying {
        /// The component.
        component: String,
        /// Objects written so far.
        done: usize,
        /// Objects to write.
        total: usize,
    },
    /// Waiting for health.
    WaitingHealth {
        /// The component.
        component: String,
        /// What it waits for.
        pending: String,
    },
    /// A Namespace that was to be deleted is kept: it holds what is not ours.
    Kept {
        /// The component.
        component: String,
        /// `Namespace x: holds ConfigMap x/y (by kubectl-create)`.
        what: String,
    },
    /// Something the user should know about one object (written another way).
    Note {
        /// The component.
        component: String,
        /// What happened.
        what: String,
    },
    /// Finished.
    Done {
        /// The component.
        component: String,
        /// What happened.
        outcome: ComponentOutcome,
    },
}

impl Event {
    /// The component it is about.
    pub fn component_mut(&mut self) -> &mut String {
        match self {
            Self::Waiting { component }
            | Self::Applying { component, .. }
            | Self::WaitingHealth { component, .. }
            | Self::Kept { component, .. }
            | Self::Note { component, .. }
            | Self::Done { component, .. } => component,
        }
    }
}

/// How one component ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentOutcome {
    /// Converged and healthy.
    Done {
        /// Objects created or updated.
        written: usize,
        /// Objects deleted.
        deleted: usize,
        /// Objects left alone.
        unchanged: usize,
    },
    /// Failed; why.
    Failed(String),
    /// Not started: a component it needs failed, or was skipped itself.
    Skipped {
        /// That component.
        need: String,
        /// Whether it failed (else it was skipped too).
        failed: bool,
    },
}

impl ComponentOutcome {
    /// Whether it converged (components that need it may start).
    pub fn is_done(&self) -> bool {
        matches!(self, Self::Done { .. })
    }
}

impl std::fmt::Display for ComponentOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Done { written, deleted, unchanged } => {
                write!(f, "done ({written} written, {deleted} deleted, {unchanged} unchanged)")
            }
            Self::Failed(why) => write!(f, "FAILED: {why}"),
            Self::Skipped { need, failed: true } => write!(f, "skipped: needs {need}, which failed"),
            Self::Skipped { need, failed: false } => write!(f, "skipped: needs {need}, which was skipped"),
        }
    }
}

/// The result of an apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyReport {
    /// Outcome per component, in plan order.
    pub components: Vec<(String, ComponentOutcome)>,
}

impl ApplyReport {
    /// Whether any component failed or was skipped.
    pub fn failed(&self) -> bool {
        self.components.iter().any(|(_, o)| !matches!(o, ComponentOutcome::Done { .. }))
    }

    /// Total objects written.
    pub fn written(&self) -> usize {
        self.components
            .iter()
            .map(|(_, o)| if let ComponentOutcome::Done { written, .. } = o { *written } else { 0 })
            .sum()
    }

    /// Total objects deleted.
    pub fn deleted(&self) -> usize {
        self.components
            .iter()
            .map(|(_, o)| if let ComponentOutcome::Done { deleted, .. } = o { *deleted } else { 0 })
            .sum()
    }
}
