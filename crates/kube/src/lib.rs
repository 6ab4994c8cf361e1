//! rekube's side of the Kubernetes API, in three layers; each module uses
//! only the layers below it (a test in crates/engine checks this):
//!
//! 1. [`request`]: the typed handle for a resource, and the retry policy.
//! 2. [`live`]: reads of live state: discovery, objects, ApplySet parents,
//!    health.
//! 3. The operations: [`planner`] (plan), [`apply`], [`hooks`], [`delete`] (shared by
//!    prune and destroy), [`destroy`], [`drift`], [`release`] (load
//!    balancers before a cluster goes), [`members`] (an environment read
//!    through its ApplySets alone).
//!
//! Leaves every layer may use: [`error`], [`desired`] (what the caller
//! wants) and [`report`] (progress and outcomes).
//!
//! Everything is `DynamicObject`: typed structs lack v1.20's beta groups
//! and drop unknown fields.

pub mod desired;
pub mod error;
pub mod report;

pub mod request;
pub mod stop;

pub mod live;

pub mod apply;
pub mod delete;
pub mod destroy;
pub mod drift;
pub mod hooks;
pub mod members;
pub mod planner;
pub mod release;

pub use apply::{ApplyOptions, apply, check_ownership};
pub use desired::{Desired, IgnoreRule};
pub use destroy::{DestroyWait, destroy};
pub use drift::{DriftState, ObjectDrift, drift};
pub use error::{Clash, KubeError, describe};
pub use live::{Health, Resolved, Resolver, Served, api_versions, served};
pub use planner::{Inventory, ObjectHealth, build_plan, environment_applysets, health_of, managed_objects};
pub use release::release_load_balancers;
pub use report::{ApplyReport, ComponentOutcome, Event};
