//! Keeping the redundant records (`records.rs`) in step with the catalog.
//!
//! A change's record is written **ahead** of its catalog commit ([`Catalog::with_record_ahead`]):
//! if the record cannot be written (a full disk), the change fails and nothing changed; if the
//! commit then fails, the record is made to say what the catalog has again. So every
//! acknowledged change is in the records, and a failed one leaves the two agreeing. A process
//! killed between the two leaves a record one unacknowledged change ahead, which the next open
//! (it sees the previous holder died) or `verify --repair` settles. The records of streams that
//! are gone are removed after the commit ([`Catalog::record_gone`]).

use redb::TableHandle;

use super::store::{OrCatalog, Table};
use super::{
    decode_value, get_raw, record, scan_prefix, Catalog, RecycledRecord, StreamRecord, KIND_BIN_ENTRY, KIND_STREAM,
    META, MIRRORED, NEXT_ID, RECYCLE_BIN, STREAMS,
};
use crate::error::Result;

fn is_stream_table(table: Table) -> bool {
    table.name() == STREAMS.name() || table.name() == RECYCLE_BIN.name()
}

impl Catalog {
    /// The stream id of a `streams` or `recycle_bin` value.
    fn value_id(&self, table: Table, v: &[u8]) -> Result<u64> {
        let id = if table.name() == STREAMS.name() {
            decode_value::<StreamRecord>(KIND_STREAM, v).map(|s| s.id)
        } else {
            decode_value::<RecycledRecord>(KIND_BIN_ENTRY, v).map(|r| r.stream.id)
        };
        id.map_err(|e| e.at(self.store.file()))
    }

    fn is_copied(table: Table, key: &[u8]) -> bool {
        MIRRORED.iter().any(|t| t.name() == table.name()) && !(table.name() == META.name() && key == NEXT_ID)
    }

    /// Writes the record of row `key` of `table` as it will be once `new` is committed (a
    /// tombstone for `None`; for a stream, its value's id file, nothing for `None`).
    fn record_ahead(&self, table: Table, key: &[u8], new: Option<&[u8]>) -> Result<()> {
        if !Self::is_copied(table, key) {
            return Ok(());
        }
        if is_stream_table(table) {
            let Some(v) = new else { return Ok(()) };
            let id = self.value_id(table, v)?;
            return self.records.write(&self.records.stream_path(id), &record(table.name(), key, Some(v)));
        }
        self.records.write(&self.records.row_path(table.name(), key), &record(table.name(), key, new))
    }

    /// Runs `commit` (a catalog transaction that sets row `key` of `table` to `new`) with the
    /// change's record written first; if either fails, the record is made to match the catalog
    /// again (best effort: the first error is what the caller gets).
    pub(crate) fn with_record_ahead<R>(
        &self,
        table: Table,
        key: &[u8],
        new: Option<&[u8]>,
        commit: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        // A record that failed part way (renamed, then the directory sync failed) is put back.
        self.record_ahead(table, key, new).and_then(|()| commit()).inspect_err(|_| {
            let _ = self.resync_record(table, key, new);
        })
    }

    /// Rewrites the record of row `key` of `table` (or, for a stream table, of the stream
    /// `value` names) from what the catalog has now.
    pub(crate) fn resync_record(&self, table: Table, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        if !Self::is_copied(table, key) {
            return Ok(());
        }
        if !is_stream_table(table) {
            let now = self.store.read(|tx| get_raw(&tx.open_table(table).db()?, key))?;
            return self
                .records
                .write(&self.records.row_path(table.name(), key), &record(table.name(), key, now.as_deref()));
        }
        let Some(id) = value.map(|v| self.value_id(table, v)).transpose()? else { return Ok(()) };
        for t in [STREAMS, RECYCLE_BIN] {
            for (k, v) in self.store.read(|tx| scan_prefix(&tx.open_table(t).db()?, b""))? {
                if self.value_id(t, &v).ok() == Some(id) {
                    return self.records.write(&self.records.stream_path(id), &record(t.name(), &k, Some(&v)));
                }
            }
        }
        self.records.remove(&self.records.stream_path(id))
    }

    /// After a commit that replaced or removed a stream row (`old`): removes the record of the
    /// stream that is gone from the table (unless `new` is the same stream).
    pub(crate) fn record_gone(&self, table: Table, old: Option<&[u8]>, new: Option<&[u8]>) -> Result<()> {
        if !is_stream_table(table) {
            return Ok(());
        }
        let Some(old) = old else { return Ok(()) };
        let old_id = self.value_id(table, old)?;
        if new.map(|v| self.value_id(table, v)).transpose()? == Some(old_id) {
            return Ok(());
        }
        self.records.remove(&self.records.stream_path(old_id))
    }

    /// Copies one change of a committed transaction to the records (backfill, migration,
    /// repair, and the bin entry of a replaced stream): a table row gets its new value or a
    /// tombstone, a stream row its new value, or loses its file when the stream is gone.
    pub(crate) fn mirror(&self, table: Table, key: &[u8], old: Option<&[u8]>, new: Option<&[u8]>) -> Result<()> {
        if is_stream_table(table) {
            self.record_gone(table, old, new)?;
            return self.record_ahead(table, key, new);
        }
        self.record_ahead(table, key, new)
    }
}
