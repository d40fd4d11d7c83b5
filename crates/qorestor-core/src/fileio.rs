//! The engine's file writes and syncs, with fault injection in test builds.
//!
//! Every pack, recipe and directory write or fsync of the engine goes through these functions.
//! Built with the `fault-injection` feature (tests only: the crate's integration tests turn it
//! on through its dev-dependencies; release builds never have it), tests can make the Nth write
//! or fsync from now on fail ([`inject`]): with an errno such as `ENOSPC` or `EIO` (nothing
//! written), or as a short write (half of the bytes reach the file, then `ENOSPC`), which is how
//! a disk that fills up or a dying device looks to the engine. The plan is process-wide; unarmed,
//! the cost is one relaxed atomic load per operation (operations are whole 1 MiB buffers, recipe
//! buffers and fsyncs). Without the feature these are the plain system calls.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

#[cfg(feature = "fault-injection")]
pub use plan::{clear, inject, Fault, FaultOp};

#[cfg(feature = "fault-injection")]
mod plan {
    use std::fs::File;
    use std::io::{self, Write};
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicBool, Ordering};

    use parking_lot::Mutex;

    /// The kind of I/O a fault applies to.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum FaultOp {
        /// A write of file data.
        Write,
        /// An fsync (of a file or a directory).
        Fsync,
    }

    /// What happens to the chosen operation.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Fault {
        /// The operation fails with this errno and has no effect.
        Errno(i32),
        /// A write stores only the first half of its bytes, then fails with `ENOSPC`.
        ShortWrite,
    }

    /// ENOSPC on Linux.
    const ENOSPC: i32 = 28;

    impl Fault {
        fn error(self) -> io::Error {
            match self {
                Fault::Errno(e) => io::Error::from_raw_os_error(e),
                Fault::ShortWrite => io::Error::from_raw_os_error(ENOSPC),
            }
        }

        /// A fsync that fails.
        pub(crate) fn sync(self) -> io::Result<()> {
            Err(self.error())
        }

        /// A positioned write that fails (after half of `buf` for a short write).
        pub(crate) fn write_at(self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
            if self == Fault::ShortWrite {
                file.write_all_at(&buf[..buf.len() / 2], offset)?;
            }
            Err(self.error())
        }

        /// A stream write that fails (after half of `buf` for a short write).
        pub(crate) fn write(self, w: &mut impl Write, buf: &[u8]) -> io::Result<usize> {
            if self == Fault::ShortWrite {
                w.write_all(&buf[..buf.len() / 2])?;
            }
            Err(self.error())
        }
    }

    struct Plan {
        op: FaultOp,
        remaining: u64,
        fault: Fault,
        fired: bool,
    }

    static ARMED: AtomicBool = AtomicBool::new(false);
    static PLAN: Mutex<Option<Plan>> = Mutex::new(None);

    /// Makes the `nth` operation of kind `op` from now on fail with `fault`, in the whole
    /// process (replacing any plan).
    pub fn inject(op: FaultOp, nth: u64, fault: Fault) {
        *PLAN.lock() = Some(Plan { op, remaining: nth.max(1), fault, fired: false });
        ARMED.store(true, Ordering::SeqCst);
    }

    /// Removes the plan; returns whether its fault fired.
    pub fn clear() -> bool {
        ARMED.store(false, Ordering::SeqCst);
        PLAN.lock().take().is_some_and(|p| p.fired)
    }

    /// The fault planned for this operation, if it is the chosen one.
    pub(crate) fn check(op: FaultOp) -> Option<Fault> {
        if !ARMED.load(Ordering::Relaxed) {
            return None;
        }
        let mut g = PLAN.lock();
        let p = g.as_mut()?;
        if p.op != op || p.fired {
            return None;
        }
        p.remaining -= 1;
        if p.remaining == 0 {
            p.fired = true;
            return Some(p.fault);
        }
        None
    }
}

/// `write_all_at`, subject to write faults.
pub(crate) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(feature = "fault-injection")]
    if let Some(f) = plan::check(FaultOp::Write) {
        return f.write_at(file, buf, offset);
    }
    file.write_all_at(buf, offset)
}

/// `sync_all`, subject to fsync faults.
pub(crate) fn sync_all(file: &File) -> io::Result<()> {
    #[cfg(feature = "fault-injection")]
    if let Some(f) = plan::check(FaultOp::Fsync) {
        return f.sync();
    }
    file.sync_all()
}

/// `sync_data`, subject to fsync faults.
pub(crate) fn sync_data(file: &File) -> io::Result<()> {
    #[cfg(feature = "fault-injection")]
    if let Some(f) = plan::check(FaultOp::Fsync) {
        return f.sync();
    }
    file.sync_data()
}

/// A [`Write`] adapter whose writes are subject to write faults.
pub(crate) struct FileWriter<W>(pub W);

impl<W: Write> Write for FileWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(feature = "fault-injection")]
        if let Some(f) = plan::check(FaultOp::Write) {
            return f.write(&mut self.0, buf);
        }
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Writes a whole file (create or truncate), subject to write faults.
pub(crate) fn write_file(path: &std::path::Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = FileWriter(File::create(path)?);
    f.write_all(bytes)
}
