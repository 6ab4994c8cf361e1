//! Cluster providers: the code that creates, finds and destroys the cluster an
//! environment runs on.
//!
//! Only the `local` provider lives here so far. It is also the heart of the
//! test bed: the integration tests and `rekube up` on a laptop start the very
//! same control plane, so what the tests prove is what users run.

pub mod local;
