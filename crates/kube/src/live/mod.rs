//! Layer 2, live-state reads: discovery (which types the cluster serves),
//! the objects and ApplySet parents on it, and their health. Reads only;
//! nothing here writes.

mod discovery;
mod health;
mod objects;

pub use crate::request::Resolved;
pub use discovery::{Resolver, Served, api_versions, served};
pub use health::{Health, check, evaluate, has_rule};
pub(crate) use objects::{
    LiveState, ObjectKey, Parent, action, check_project_source, load_live, made_by_the_system, parents,
};
