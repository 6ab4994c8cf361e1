//! Stopping on Ctrl-C or SIGTERM: the CLI calls [`request`] on the first
//! signal; from then on apply and destroy start no new work (no component,
//! no object write or delete, no health wait), while the requests already
//! sent finish. What stopped early reports [`crate::KubeError::Interrupted`];
//! the caller's lease is released and its journal kept as usual, so running
//! the same command again finishes the job.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks every operation of this process to start no new work.
pub fn request() {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// `Err(Interrupted)` once a stop was asked for.
pub fn check() -> Result<(), crate::KubeError> {
    if requested() { Err(crate::KubeError::Interrupted) } else { Ok(()) }
}
