//! Cluster providers: the code that creates, finds and destroys the cluster an
//! environment runs on.
//!
//! The `local` provider is also the heart of the
//! test bed: the integration tests and `rekube up` on a laptop start the very
//! same control plane, so what the tests prove is what users run.

pub mod api;
pub mod files;
pub mod local;
pub mod prereq;
pub mod provider;
pub mod tool;
pub mod traffic;
