//! rekube's side of the Kubernetes API: which resources the cluster serves,
//! what is live, server-side apply in dependency waves with health gates,
//! ApplySet pruning, and destroy. Everything is `DynamicObject`: typed
//! structs lack v1.20's beta groups and drop unknown fields.

mod apply;
mod destroy;
mod drift;
mod discovery;
mod health;
mod planner;
mod release;

pub use apply::{ApplyOptions, ApplyReport, ComponentOutcome, Event, apply};
pub use destroy::destroy;
pub use drift::{ObjectDrift, drift};
pub use discovery::{Resolved, Resolver, Served, api_versions, served};
pub use health::{Health, check as check_health};
pub use planner::{Desired, build_plan, health_of, managed_objects};
pub use release::release_load_balancers;

/// Errors talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// An API call failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The cause.
        source: kube::Error,
    },
    /// The cluster does not serve a kind the platform uses.
    #[error("{file}:{line}: the cluster does not serve {kind} ({api_version})")]
    UnknownKind {
        /// `apiVersion`.
        api_version: String,
        /// Kind.
        kind: String,
        /// The manifest that uses it.
        file: String,
        /// Its line.
        line: u64,
    },
}

impl KubeError {
    pub(crate) fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> KubeError {
        let what = what.into();
        move |source| KubeError::Api { what, source }
    }
}
