//! Progress reporting as a trait: the library reports, the CLI renders (with indicatif).

/// Receives progress of a long operation.
pub trait Progress: Send + Sync {
    /// The total amount of work, when known.
    fn set_length(&self, _len: u64) {}
    /// `n` more units of work were done.
    fn inc(&self, n: u64);
    /// The operation ended.
    fn finish(&self) {}
    /// Whether whoever watches asks the operation to stop: verify (at its next pack) and
    /// replication (at its next stream) then end with a [`crate::Error::Conflict`] saying they
    /// stopped. Never, by default.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// The error of an operation that stopped at a cancel point because [`Progress::stop_requested`]
/// said so (a [`crate::Error::Conflict`]: what it did so far stands).
pub(crate) fn stopped(what: &str) -> crate::Error {
    crate::Error::Conflict(format!("{what} stopped before it was done: asked to stop"))
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn inc(&self, _n: u64) {}
}
