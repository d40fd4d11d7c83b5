//! The engine-wide write gate: new stream data (every writer's batch append, so `put`, tape
//! writes, OST and replication ingest) passes it; a repair (`verify --repair`) closes it for its
//! duration, so that nothing is appended while packs, index and catalog are being repaired in a
//! running daemon. A writer that arrives while the gate is closed waits for it to open; one
//! appending when a repair starts finishes its batch first.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct WriteGate {
    lock: RwLock<()>,
    /// Writers waiting at the closed gate.
    waiting: AtomicUsize,
}

/// A writer passing the gate (one batch append).
pub(crate) struct Passing<'a>(#[allow(dead_code)] RwLockReadGuard<'a, ()>);

/// The gate held closed; it opens when this is dropped.
pub struct WritesPaused<'a>(#[allow(dead_code)] RwLockWriteGuard<'a, ()>);

impl WriteGate {
    /// Passes the gate, waiting while it is closed.
    pub(crate) fn pass(&self) -> Passing<'_> {
        if let Some(g) = self.lock.try_read() {
            return Passing(g);
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let g = self.lock.read();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        Passing(g)
    }

    /// Closes the gate once the batches being appended are done; it stays closed while the
    /// result lives.
    pub(crate) fn close(&self) -> WritesPaused<'_> {
        WritesPaused(self.lock.write())
    }

    /// Writers waiting at the closed gate now.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::Arc;

    #[test]
    fn a_closed_gate_holds_writers_until_it_opens() {
        let gate = Arc::new(WriteGate::default());
        drop(gate.pass());
        let closed = gate.close();
        let (done_tx, done) = mpsc::channel();
        let writer = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                let _passing = gate.pass();
                done_tx.send(()).unwrap();
            })
        };
        // The writer is seen waiting at the gate (an event; no clock), and has not passed it.
        while gate.waiting() == 0 {
            std::thread::yield_now();
        }
        assert!(done.try_recv().is_err());
        drop(closed);
        done.recv().unwrap();
        writer.join().unwrap();
        assert_eq!(gate.waiting(), 0);
    }
}
