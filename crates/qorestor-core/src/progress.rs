//! Progress reporting as a trait: the library reports, the CLI renders (with indicatif).

/// Receives progress of a long operation.
pub trait Progress: Send + Sync {
    /// The total amount of work, when known.
    fn set_length(&self, _len: u64) {}
    /// `n` more units of work were done.
    fn inc(&self, n: u64);
    /// The operation ended.
    fn finish(&self) {}
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn inc(&self, _n: u64) {}
}
