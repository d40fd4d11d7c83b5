//! The engine's file writes and syncs, with optional fault injection.
//!
//! Every pack, recipe and directory write or fsync of the engine goes through these functions.
//! Tests can make the Nth write or fsync from now on fail ([`inject`]): with an errno such as
//! `ENOSPC` or `EIO` (nothing written), or as a short write (half of the bytes reach the file,
//! then `ENOSPC`), which is how a disk that fills up or a dying device looks to the engine. The
//! plan is process-wide and meant for tests only; unarmed, the cost is one relaxed atomic load
//! per operation (operations are whole 4 MiB buffers, recipe buffers and fsyncs).

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

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

mod plan {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::{Fault, FaultOp};
    use parking_lot::Mutex;

    struct Plan {
        op: FaultOp,
        remaining: u64,
        fault: Fault,
        fired: bool,
    }

    static ARMED: AtomicBool = AtomicBool::new(false);
    static PLAN: Mutex<Option<Plan>> = Mutex::new(None);

    pub fn inject(op: FaultOp, nth: u64, fault: Fault) {
        *PLAN.lock() = Some(Plan { op, remaining: nth.max(1), fault, fired: false });
        ARMED.store(true, Ordering::SeqCst);
    }

    pub fn clear() -> bool {
        ARMED.store(false, Ordering::SeqCst);
        PLAN.lock().take().is_some_and(|p| p.fired)
    }

    pub fn check(op: FaultOp) -> Option<Fault> {
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

/// Makes the `nth` operation of kind `op` from now on fail with `fault`, in the whole process
/// (replacing any plan). For tests.
pub fn inject(op: FaultOp, nth: u64, fault: Fault) {
    plan::inject(op, nth, fault);
}

/// Removes the plan; returns whether its fault fired.
pub fn clear() -> bool {
    plan::clear()
}

fn check(op: FaultOp) -> Option<Fault> {
    plan::check(op)
}

fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

/// ENOSPC on Linux.
const ENOSPC: i32 = 28;

/// `write_all_at`, subject to write faults.
pub(crate) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    match check(FaultOp::Write) {
        None => file.write_all_at(buf, offset),
        Some(Fault::Errno(e)) => Err(errno(e)),
        Some(Fault::ShortWrite) => {
            file.write_all_at(&buf[..buf.len() / 2], offset)?;
            Err(errno(ENOSPC))
        }
    }
}

/// `sync_all`, subject to fsync faults.
pub(crate) fn sync_all(file: &File) -> io::Result<()> {
    match check(FaultOp::Fsync) {
        None => file.sync_all(),
        Some(Fault::Errno(e)) => Err(errno(e)),
        Some(Fault::ShortWrite) => Err(errno(ENOSPC)),
    }
}

/// `sync_data`, subject to fsync faults.
pub(crate) fn sync_data(file: &File) -> io::Result<()> {
    match check(FaultOp::Fsync) {
        None => file.sync_data(),
        Some(Fault::Errno(e)) => Err(errno(e)),
        Some(Fault::ShortWrite) => Err(errno(ENOSPC)),
    }
}

/// A [`Write`] adapter whose writes are subject to write faults.
pub(crate) struct FaultyWriter<W>(pub W);

impl<W: Write> Write for FaultyWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match check(FaultOp::Write) {
            None => self.0.write(buf),
            Some(Fault::Errno(e)) => Err(errno(e)),
            Some(Fault::ShortWrite) => {
                self.0.write_all(&buf[..buf.len() / 2])?;
                Err(errno(ENOSPC))
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Writes a whole file (create or truncate), subject to write faults.
pub(crate) fn write_file(path: &std::path::Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = FaultyWriter(File::create(path)?);
    f.write_all(bytes)
}
