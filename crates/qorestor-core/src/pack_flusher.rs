//! Writing an open pack's buffered records behind the appender.
//!
//! The appender fills a 1 MiB buffer of records while holding the group lock; copying each full
//! buffer into the page cache (`pwrite`) was the largest single cost on that serial path when
//! new data is incompressible. A [`PackFlusher`] is one thread per open pack that does that
//! write while the appender fills the next buffer. At most one write is in flight, so writes
//! reach the file in order; every durability point ([`crate::pack::PackWriter::flush`]) waits
//! for it first. A failed write is reported by the next wait.

use std::fs::File;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

/// A background writer for one pack file.
pub(crate) struct PackFlusher {
    jobs: Option<Sender<(Vec<u8>, u64)>>,
    done: Receiver<(Vec<u8>, io::Result<()>)>,
    thread: Option<JoinHandle<()>>,
    in_flight: bool,
    /// The buffer of the last finished write, emptied, for the appender to fill next.
    spare: Vec<u8>,
}

fn stopped() -> io::Error {
    io::Error::other("the pack write thread stopped")
}

impl PackFlusher {
    /// Starts the thread that writes to `file`.
    pub(crate) fn start(file: Arc<File>) -> io::Result<Self> {
        let (jobs, rx) = bounded::<(Vec<u8>, u64)>(1);
        let (done_tx, done) = bounded(1);
        let thread = std::thread::Builder::new().name("qorestor-pack-write".into()).spawn(move || {
            for (buf, at) in rx {
                let r = crate::fileio::write_all_at(&file, &buf, at);
                if done_tx.send((buf, r)).is_err() {
                    return;
                }
            }
        })?;
        Ok(PackFlusher { jobs: Some(jobs), done, thread: Some(thread), in_flight: false, spare: Vec::new() })
    }

    /// Waits for the write in flight, if any (its buffer is kept for the next
    /// [`PackFlusher::write_behind`]).
    pub(crate) fn wait(&mut self) -> io::Result<()> {
        if !self.in_flight {
            return Ok(());
        }
        self.in_flight = false;
        let (mut buf, result) = self.done.recv().map_err(|_| stopped())?;
        result?;
        buf.clear();
        self.spare = buf;
        Ok(())
    }

    /// Whether a write may still be in flight (its bytes not yet in the file).
    pub(crate) fn busy(&self) -> bool {
        self.in_flight
    }

    /// Starts writing `full` at offset `at` once the previous write is done; returns an empty
    /// buffer to fill meanwhile (the previous write's).
    pub(crate) fn write_behind(&mut self, full: Vec<u8>, at: u64) -> io::Result<Vec<u8>> {
        self.wait()?;
        self.jobs.as_ref().ok_or_else(stopped)?.send((full, at)).map_err(|_| stopped())?;
        self.in_flight = true;
        Ok(std::mem::take(&mut self.spare))
    }
}

impl Drop for PackFlusher {
    /// Lets the write in flight finish (a pack dropped after a failure is left as written).
    fn drop(&mut self) {
        let _ = self.wait();
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
