//! Planning, as pure data: what apply will create, update, delete or leave
//! alone, field by field, with Secret values masked. No I/O here (like
//! kube-core's request builders): the kube crate feeds live objects in and
//! executes the result, so `plan`, `apply --dry-run` and JSON output share
//! one model.

pub mod applyset;
pub mod diff;
pub mod drift;
pub mod fingerprint;
pub mod model;
pub mod normalize;

pub use model::{Action, ComponentPlan, FieldChange, Op, Plan, Summary};
