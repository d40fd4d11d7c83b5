//! Where the library reads the time from: the flush interval of buffered writes
//! ([`Vtl::tick`](crate::Vtl::tick)) counts on a [`Clock`]. Servers use [`SystemClock`]; a test
//! passes one it advances itself (see [`Vtl::open_with_clock`](crate::Vtl::open_with_clock)), so
//! it waits on no wall clock.

use std::time::Instant;

/// A monotonic clock.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The system's monotonic clock ([`Instant::now`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}
