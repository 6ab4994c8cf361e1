//! Planning, as pure data: what apply will create, update, delete or leave
//! alone, field by field, with Secret values masked. No I/O here (like
//! kube-core's request builders): the kube crate feeds live objects in and
//! executes the result, so `plan`, `apply --dry-run` and JSON output share
//! one model.
//!
//! Modules are layered, each using only those below it: `path` (walking,
//! naming and masking JSON fields) and `applyset` at the bottom, then
//! `model` (plain types) and `normalize`, then `diff` and `drift`, then
//! `fingerprint`.

pub mod applyset;
pub mod diff;
pub mod drift;
pub mod fingerprint;
pub mod model;
pub mod normalize;
mod path;
pub mod text;

pub use model::{Action, ComponentPlan, FieldChange, FieldDrift, HookRun, Op, Plan, Summary};
