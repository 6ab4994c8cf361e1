//! The `rekube.yaml` model: parsing with positions, strict offline
//! validation, and diagnostics that name the file, line and column.
//!
//! Nothing in this crate touches a network or a cluster: it is the first
//! pipeline stage, and everything later trusts what it accepted.

pub mod diag;
pub mod diagram;
pub mod graph;
mod load;
pub mod lock;
pub mod model;
mod validate;

pub use diag::{Diagnostic, Diagnostics, Pos};
pub use load::{Loaded, load, parse, project_from_dir, yaml_diagnostic, yaml_options};
pub use lock::{LockFile, LockedChart};
pub use model::{Backup, Cluster, Component, Environment, Prerequisite, Provider, Spec};
pub use validate::{is_dns_label, validate};

/// JSON Schema of `rekube.yaml`, for editors (`rekube schema > rekube.schema.json`).
pub const SCHEMA: &str = include_str!("../rekube.schema.json");
