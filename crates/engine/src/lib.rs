//! rekube's engine: every lifecycle operation as a library, under a thin
//! CLI. An operation is a sequence of named, journaled [`steps`] under the
//! environment's local [`journal`] lock and, while it writes to a cluster,
//! its cluster-side [`lease`]; it reports through [`steps::Event`]s and
//! returns a typed report, and fails with an [`EngineError`] that carries
//! its own hint.
//!
//! - [`workspace`]: what the spec says about an environment (cluster,
//!   prerequisites, identity, rendering), before any cluster is asked.
//! - [`context`]: an environment rendered, with a client for its cluster.
//! - [`colors`]: which cluster of a blue/green environment is live.
//! - [`ops`]: `up`, `down`, `rebuild-check`, `status`, `apply`, `destroy`,
//!   `upgrade`, previews, backups.
//!
//! See docs/architecture.md for where this sits among the crates.

pub mod colors;
pub mod context;
pub mod error;
pub mod journal;
pub mod lease;
pub mod ops;
pub mod steps;
pub mod workspace;

pub use error::EngineError;
