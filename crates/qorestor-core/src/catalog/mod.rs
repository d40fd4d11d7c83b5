//! The catalog: storage groups, containers and stream entries, in one redb file
//! (`DATA/catalog/catalog.redb`, see `store.rs`; a sled catalog of earlier versions is migrated
//! once, see `migrate.rs`).
//!
//! Every value is wrapped as `"QV"`, a version byte, a kind byte, a JSON body and a CRC-32 of
//! all of that (see `docs/FORMAT.md`), so a damaged value is reported, never misread. Stream
//! entries only ever point at recipes that are already durable: the writer syncs the recipe,
//! then commits the entry (fsync), then acknowledges.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

mod migrate;
mod mirror;
pub(crate) mod reconcile;
pub mod records;
pub(crate) mod store;

use redb::{ReadableTable, ReadableTableMetadata, TableHandle};

use crate::chunker::ChunkParams;
use crate::compress::Compression;
use crate::error::{DecodeError, Error, Result};
use crate::format::*;
use records::{CatalogRecord, RecordDir};
use store::{Durability, OrCatalog, Store, Table, TABLES};

/// The type of a container, as in QoreStor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerKind {
    /// Objects written through the API or the CLI.
    Object,
    /// Files of a NAS share.
    Nas,
    /// An OST logical storage unit.
    Ost,
    /// A virtual tape library.
    Vtl,
    /// Rapid data access (RDA) images.
    Rda,
}

impl ContainerKind {
    /// The type's name as used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerKind::Object => "object",
            ContainerKind::Nas => "nas",
            ContainerKind::Ost => "ost",
            ContainerKind::Vtl => "vtl",
            ContainerKind::Rda => "rda",
        }
    }
}

impl std::str::FromStr for ContainerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "object" => ContainerKind::Object,
            "nas" => ContainerKind::Nas,
            "ost" => ContainerKind::Ost,
            "vtl" => ContainerKind::Vtl,
            "rda" => ContainerKind::Rda,
            _ => return Err(Error::invalid("container type", s, "expected object, nas, ost, vtl or rda")),
        })
    }
}

/// A storage group's catalog record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// Numeric id (names the group's directory).
    pub id: u32,
    /// Name, unique system-wide.
    pub name: String,
    /// Compression policy.
    pub compression: Compression,
    /// Chunking parameters.
    pub chunking: ChunkParams,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Quota on the bytes of its pack files, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<u64>,
    /// Encryption settings and wrapped keys, if the group is encrypted (never removed once set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crate::crypto::EncryptionRecord>,
}

/// A container's catalog record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// Numeric id (prefixes its stream keys).
    pub id: u64,
    /// Name, unique system-wide.
    pub name: String,
    /// Type.
    pub kind: ContainerKind,
    /// Id of its storage group.
    pub group_id: u32,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Quota on the logical bytes of its live streams, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<u64>,
    /// Recycle bin retention in seconds when the bin is on: deleted streams are kept that long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recycle_retention: Option<u64>,
    /// For a replica: `SOURCE_DATA_DIR/CONTAINER` it replicates. A replica is read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_of: Option<String>,
}

/// A finished stream's catalog record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// Numeric id (names its recipe file).
    pub id: u64,
    /// Name within the container.
    pub name: String,
    /// Logical length in bytes.
    pub logical_len: u64,
    /// Number of chunks.
    pub chunks: u64,
    /// Chunks this stream stored that were not stored before.
    pub new_chunks: u64,
    /// Pack bytes this stream added.
    pub new_stored_bytes: u64,
    /// Time the stream was finished, seconds since the Unix epoch.
    pub created: u64,
}

/// A stream version in a container's recycle bin: its entry as it was, when it was deleted (or
/// replaced) and when the cleaner may reclaim it. Its bin id is its stream id (unique for ever,
/// so never reused within a container).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecycledRecord {
    /// The stream's catalog entry (its recipe is kept).
    pub stream: StreamRecord,
    /// Deletion time, seconds since the Unix epoch.
    pub deleted: u64,
    /// From this time on the cleaner deletes it for good.
    pub expires: u64,
    /// When it was binned, as a value of the id counter (a later binning has a larger value;
    /// 0 for entries binned before format 2, left out of the record then).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub binned: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

const KIND_GROUP: u8 = 1;
const KIND_CONTAINER: u8 = 2;
const KIND_STREAM: u8 = 3;
/// Kind byte of engine state kept in the `meta` tree (cleaner status, schedules).
const KIND_META: u8 = 4;
/// Kind byte of a recycle bin entry of format 1 (tree `recycle`, one per stream name; read
/// only to migrate it).
const KIND_RECYCLED: u8 = 5;
/// Kind byte of a recycle bin entry of format 2 (tree `recycle_bin`, one per kept version).
/// Kind 6 is a container metadata record (`engine::meta`).
pub const KIND_BIN_ENTRY: u8 = 7;

/// Wraps a catalog value: magic, version, kind, JSON body, CRC-32.
pub fn encode_value<T: Serialize>(kind: u8, v: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&CATALOG_MAGIC);
    out.push(CATALOG_VERSION);
    out.push(kind);
    serde_json::to_writer(&mut out, v).expect("catalog records serialize");
    let crc = crc32(&[&out]);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Unwraps and checks a catalog value of the expected kind.
pub fn decode_value<T: DeserializeOwned>(kind: u8, b: &[u8]) -> Result<T, DecodeError> {
    let what = "catalog value";
    if b.len() < 8 {
        return Err(DecodeError::new(what, "too short"));
    }
    if b[0..2] != CATALOG_MAGIC || b[2] != CATALOG_VERSION || b[3] != kind {
        return Err(DecodeError::new(what, format!("bad magic, version or kind {}", b[3])));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32(&[body]) != le_u32(crc, 0) {
        return Err(DecodeError::new(what, "checksum mismatch"));
    }
    serde_json::from_slice(&body[4..]).map_err(|e| DecodeError::new(what, e.to_string()))
}

/// The catalog (see the module documentation).
pub struct Catalog {
    store: Store,
    records: RecordDir,
}

/// Key of a recycle bin entry: the container id, then the stream id (big-endian u64 each).
fn bin_key(container_id: u64, id: u64) -> Vec<u8> {
    let mut k = container_id.to_be_bytes().to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn stream_key(container_id: u64, name: &str) -> Vec<u8> {
    let mut k = container_id.to_be_bytes().to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

const GROUPS: Table = TABLES[0];
const CONTAINERS: Table = TABLES[1];
const STREAMS: Table = TABLES[2];
const META: Table = TABLES[3];
/// The recycle bins of format 1 (one entry per stream name, keyed like the stream): only read,
/// to migrate them to [`RECYCLE_BIN`] (empty after that).
const RECYCLE_V1: Table = TABLES[4];
/// The table of frontends' per-container records (see `engine::meta`).
pub(crate) const CONTAINER_META: Table = TABLES[5];
/// The recycle bins: key [`bin_key`], value kind [`KIND_BIN_ENTRY`], one entry per kept version.
const RECYCLE_BIN: Table = TABLES[6];

/// The tables copied to the redundant records (all but the format-1 recycle bins).
pub(crate) const MIRRORED: [Table; 6] = [GROUPS, CONTAINERS, META, CONTAINER_META, STREAMS, RECYCLE_BIN];

fn record(table: &str, key: &[u8], value: Option<&[u8]>) -> CatalogRecord {
    CatalogRecord {
        table: table.to_string(),
        key: key.to_vec(),
        value: value.map(<[u8]>::to_vec),
        written: crate::engine::now_secs(),
    }
}

/// The key that holds the id counter in the `meta` table.
const NEXT_ID: &[u8] = b"next_id";

/// Reads one raw value.
pub(crate) fn get_raw(t: &impl ReadableTable<&'static [u8], &'static [u8]>, key: &[u8]) -> Result<Option<Vec<u8>>> {
    Ok(t.get(key).db()?.map(|v| v.value().to_vec()))
}

/// (key, value) pairs of a table.
pub(crate) type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Every (key, value) of `t` whose key starts with `prefix`, in key order.
pub(crate) fn scan_prefix(t: &impl ReadableTable<&'static [u8], &'static [u8]>, prefix: &[u8]) -> Result<Rows> {
    let mut out = Vec::new();
    for kv in t.range(prefix..).db()? {
        let (k, v) = kv.db()?;
        if !k.value().starts_with(prefix) {
            break;
        }
        out.push((k.value().to_vec(), v.value().to_vec()));
    }
    Ok(out)
}

impl Catalog {
    /// Opens (creating) the catalog in `dir` (`DATA/catalog/`). The caller holds the data
    /// directory's lock (`engine::DirLock`). A catalog still in the sled format of earlier
    /// versions is migrated first (`migrate.rs`); leftovers of an interrupted creation or
    /// migration are removed.
    pub fn open(dir: &Path) -> Result<Self> {
        migrate::migrate_if_needed(dir)?;
        let catalog = Catalog { store: Store::open(dir)?, records: RecordDir::beside(dir) };
        catalog.migrate_recycle_bins()?;
        catalog.raise_id_counter()?;
        catalog.backfill_records()?;
        Ok(catalog)
    }

    /// Moves a catalog file that cannot be opened aside (`catalog.redb.damaged-<time>`) and
    /// opens a new, empty one in its place; [`reconcile`] then fills it from the redundant
    /// records. Returns where the damaged file went.
    pub(crate) fn open_replacing_damaged(dir: &Path) -> Result<(Self, PathBuf)> {
        let file = dir.join(store::FILE);
        let aside = dir.join(format!("{}.damaged-{}", store::FILE, crate::engine::now_secs()));
        std::fs::rename(&file, &aside).map_err(|e| Error::io("rename", &file, e))?;
        crate::fsutil::sync_dir(dir)?;
        let catalog = Catalog { store: Store::open(dir)?, records: RecordDir::beside(dir) };
        Ok((catalog, aside))
    }

    /// Writes a record of every row once, for a catalog made before records existed (or whose
    /// backfill was interrupted), then the marker that says it is done.
    fn backfill_records(&self) -> Result<()> {
        if self.records.marker().exists() {
            return Ok(());
        }
        for table in MIRRORED {
            let rows = self.store.read(|tx| scan_prefix(&tx.open_table(table).db()?, b""))?;
            for (k, v) in rows {
                self.mirror(table, &k, None, Some(&v))?;
            }
        }
        crate::fsutil::create_dir_durable(self.records.marker().parent().unwrap_or(Path::new(".")))?;
        crate::fsutil::write_atomic(&self.records.marker(), b"every catalog row has a record\n")
    }

    fn path(&self) -> &Path {
        self.store.file()
    }

    /// The underlying store, for records kept by other modules (their values are framed with
    /// [`encode_value`] like every catalog value).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Makes sure the id counter is above every id in use, so that no id is handed out twice
    /// whatever happened to the counter.
    fn raise_id_counter(&self) -> Result<()> {
        let mut max = self.groups()?.iter().map(|g| g.id as u64).max().unwrap_or(0);
        for c in self.containers()? {
            max = max.max(c.id);
            max = self.streams(c.id)?.iter().map(|s| s.id).fold(max, u64::max);
        }
        let binned: Vec<RecycledRecord> = self.all(RECYCLE_BIN, KIND_BIN_ENTRY, b"")?;
        max = binned.iter().map(|r| r.stream.id).fold(max, u64::max);
        if self.store.read(|tx| self.current_id(&tx.open_table(META).db()?))? < max {
            self.store.write(Durability::Durable, |tx| {
                tx.open_table(META).db()?.insert(NEXT_ID, &max.to_le_bytes()[..]).db()?;
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Moves the recycle bin entries of format 1 (table `recycle`, keyed by stream name; a sled
    /// catalog's tree `recycle` is copied there by the migration to redb) to the table
    /// `recycle_bin` (keyed by stream id), all in one transaction, and creates `recycle_bin` in a
    /// catalog made before it existed. Nothing is written when there is nothing to move.
    fn migrate_recycle_bins(&self) -> Result<()> {
        let needed = self.store.read(|tx| {
            let names: Vec<String> = tx.list_tables().db()?.map(|t| t.name().to_string()).collect();
            let has = |t: Table| names.iter().any(|n| n == t.name());
            if !has(RECYCLE_BIN) {
                return Ok(true);
            }
            Ok(has(RECYCLE_V1) && !tx.open_table(RECYCLE_V1).db()?.is_empty().db()?)
        })?;
        if !needed {
            return Ok(());
        }
        let moved = self.store.write(Durability::Durable, |tx| {
            let mut moved = Vec::new();
            let mut old = tx.open_table(RECYCLE_V1).db()?;
            let mut bin = tx.open_table(RECYCLE_BIN).db()?;
            for (key, value) in scan_prefix(&old, b"")? {
                let r: RecycledRecord = decode_value(KIND_RECYCLED, &value).map_err(|e| e.at(self.path()))?;
                let container_id = key.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes);
                let Some(container_id) = container_id else {
                    return Err(Error::corrupt("recycle bin key", self.path(), format!("{} bytes", key.len())));
                };
                let entry = encode_value(KIND_BIN_ENTRY, &r);
                let entry_key = bin_key(container_id, r.stream.id);
                bin.insert(entry_key.as_slice(), entry.as_slice()).db()?;
                old.remove(key.as_slice()).db()?;
                moved.push((entry_key, entry));
            }
            Ok(moved)
        })?;
        for (key, value) in moved {
            self.mirror(RECYCLE_BIN, &key, None, Some(&value))?;
        }
        Ok(())
    }

    fn current_id(&self, meta: &impl ReadableTable<&'static [u8], &'static [u8]>) -> Result<u64> {
        match get_raw(meta, NEXT_ID)? {
            None => Ok(0),
            Some(b) => Ok(u64::from_le_bytes(<[u8; 8]>::try_from(&b[..]).map_err(|_| {
                Error::corrupt("catalog id counter", self.path(), format!("{} bytes, expected 8", b.len()))
            })?)),
        }
    }

    fn get<T: DeserializeOwned>(&self, table: Table, kind: u8, key: &[u8]) -> Result<Option<T>> {
        match self.store.read(|tx| get_raw(&tx.open_table(table).db()?, key))? {
            None => Ok(None),
            Some(v) => decode_value(kind, &v).map(Some).map_err(|e| e.at(self.path())),
        }
    }

    fn all<T: DeserializeOwned>(&self, table: Table, kind: u8, prefix: &[u8]) -> Result<Vec<T>> {
        let rows = self.store.read(|tx| scan_prefix(&tx.open_table(table).db()?, prefix))?;
        rows.iter().map(|(_, v)| decode_value(kind, v).map_err(|e| e.at(self.path()))).collect()
    }

    /// Stores `value` under `key` durably; returns the value it replaced.
    fn put(&self, table: Table, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        let old = self.with_record_ahead(table, key, Some(value), || {
            self.store.write(Durability::Durable, |tx| {
                let mut t = tx.open_table(table).db()?;
                let old = t.insert(key, value).db()?.map(|v| v.value().to_vec());
                Ok(old)
            })
        })?;
        self.record_gone(table, old.as_deref(), Some(value))?;
        Ok(old)
    }

    /// Stores `value` under `key` durably unless the key is taken; returns whether it did.
    fn insert_new(&self, table: Table, key: &[u8], value: &[u8]) -> Result<bool> {
        if self.store.read(|tx| get_raw(&tx.open_table(table).db()?, key))?.is_some() {
            return Ok(false);
        }
        let inserted = self.with_record_ahead(table, key, Some(value), || {
            self.store.write(Durability::Durable, |tx| {
                let mut t = tx.open_table(table).db()?;
                if t.get(key).db()?.is_some() {
                    return Ok(false);
                }
                t.insert(key, value).db()?;
                Ok(true)
            })
        })?;
        if !inserted {
            // Taken meanwhile: the record is made to say what the catalog has.
            self.resync_record(table, key, Some(value))?;
        }
        Ok(inserted)
    }

    /// Removes `key` durably; returns the value it had.
    fn remove(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let old = self.with_record_ahead(table, key, None, || {
            self.store.write(Durability::Durable, |tx| {
                let mut t = tx.open_table(table).db()?;
                let old = t.remove(key).db()?.map(|v| v.value().to_vec());
                Ok(old)
            })
        })?;
        self.record_gone(table, old.as_deref(), None)?;
        Ok(old)
    }

    /// A fresh unique id: a counter in the `meta` table. Its commit is not synced on its own: it
    /// is durable with the record that uses it (every record change is a durable commit), and
    /// [`Catalog::open`] raises it past every id in use.
    pub fn next_id(&self) -> Result<u64> {
        self.store.write(Durability::Soft, |tx| {
            let mut meta = tx.open_table(META).db()?;
            let next = self.current_id(&meta)? + 1;
            meta.insert(NEXT_ID, &next.to_le_bytes()[..]).db()?;
            Ok(next)
        })
    }

    /// A storage group by name.
    pub fn group(&self, name: &str) -> Result<Option<GroupRecord>> {
        self.get(GROUPS, KIND_GROUP, name.as_bytes())
    }

    /// All storage groups, by name.
    pub fn groups(&self) -> Result<Vec<GroupRecord>> {
        self.all(GROUPS, KIND_GROUP, b"")
    }

    /// Inserts a storage group unless the name is taken; returns whether it was inserted.
    pub fn insert_group(&self, g: &GroupRecord) -> Result<bool> {
        self.insert_new(GROUPS, g.name.as_bytes(), &encode_value(KIND_GROUP, g))
    }

    /// Replaces an existing storage group record (same name) durably.
    pub fn replace_group(&self, g: &GroupRecord) -> Result<()> {
        self.put(GROUPS, g.name.as_bytes(), &encode_value(KIND_GROUP, g)).map(drop)
    }

    /// Removes a storage group record.
    pub fn remove_group(&self, name: &str) -> Result<()> {
        self.remove(GROUPS, name.as_bytes()).map(drop)
    }

    /// A container by name.
    pub fn container(&self, name: &str) -> Result<Option<ContainerRecord>> {
        self.get(CONTAINERS, KIND_CONTAINER, name.as_bytes())
    }

    /// All containers, by name.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>> {
        self.all(CONTAINERS, KIND_CONTAINER, b"")
    }

    /// Inserts a container unless the name is taken; returns whether it was inserted.
    pub fn insert_container(&self, c: &ContainerRecord) -> Result<bool> {
        self.insert_new(CONTAINERS, c.name.as_bytes(), &encode_value(KIND_CONTAINER, c))
    }

    /// Replaces a container record (same name) durably.
    pub fn replace_container(&self, c: &ContainerRecord) -> Result<()> {
        self.put(CONTAINERS, c.name.as_bytes(), &encode_value(KIND_CONTAINER, c)).map(drop)
    }

    /// Removes a container record.
    pub fn remove_container(&self, name: &str) -> Result<()> {
        self.remove(CONTAINERS, name.as_bytes()).map(drop)
    }

    /// An engine state record in the `meta` table (`key` names it, e.g. `cleaner/status`).
    pub fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.get(META, KIND_META, key.as_bytes())
    }

    /// Stores an engine state record durably.
    pub fn put_meta<T: Serialize>(&self, key: &str, v: &T) -> Result<()> {
        self.put(META, key.as_bytes(), &encode_value(KIND_META, v)).map(drop)
    }

    /// Removes an engine state record durably; returns whether it existed.
    pub fn remove_meta(&self, key: &str) -> Result<bool> {
        Ok(self.remove(META, key.as_bytes())?.is_some())
    }

    /// A stream of a container.
    pub fn stream(&self, container_id: u64, name: &str) -> Result<Option<StreamRecord>> {
        self.get(STREAMS, KIND_STREAM, &stream_key(container_id, name))
    }

    /// All streams of a container, by name.
    pub fn streams(&self, container_id: u64) -> Result<Vec<StreamRecord>> {
        self.all(STREAMS, KIND_STREAM, &container_id.to_be_bytes())
    }

    /// Publishes a finished stream (replacing one of the same name) and makes it durable.
    /// Returns the replaced record.
    pub fn put_stream(&self, container_id: u64, s: &StreamRecord) -> Result<Option<StreamRecord>> {
        let old = self.put(STREAMS, &stream_key(container_id, &s.name), &encode_value(KIND_STREAM, s))?;
        old.map(|v| decode_value(KIND_STREAM, &v).map_err(|e| e.at(self.path()))).transpose()
    }

    /// The recycle bin of a container: every kept version, by id (the order they were made).
    pub fn recycled(&self, container_id: u64) -> Result<Vec<RecycledRecord>> {
        self.all(RECYCLE_BIN, KIND_BIN_ENTRY, &container_id.to_be_bytes())
    }

    /// Moves a live stream to the recycle bin in one transaction (only if the live entry is
    /// still stream `r.stream.id`); `Err(Conflict)` if the live entry changed meanwhile. Give
    /// `r.binned` a fresh [`Catalog::next_id`].
    pub fn recycle_stream(&self, container_id: u64, r: &RecycledRecord) -> Result<()> {
        let key = stream_key(container_id, &r.stream.name);
        let value = encode_value(KIND_BIN_ENTRY, r);
        let entry_key = bin_key(container_id, r.stream.id);
        self.with_record_ahead(RECYCLE_BIN, &entry_key, Some(&value), || self.move_to_bin(&key, &entry_key, &value, r))
    }

    fn move_to_bin(&self, key: &[u8], entry_key: &[u8], value: &[u8], r: &RecycledRecord) -> Result<()> {
        self.store.write(Durability::Durable, |tx| {
            let mut streams = tx.open_table(STREAMS).db()?;
            let same = get_raw(&streams, key)?
                .and_then(|v| decode_value::<StreamRecord>(KIND_STREAM, &v).ok())
                .is_some_and(|s| s.id == r.stream.id);
            if !same {
                return Err(Error::Conflict(format!("stream {:?} changed while it was being deleted", r.stream.name)));
            }
            streams.remove(key).db()?;
            tx.open_table(RECYCLE_BIN).db()?.insert(entry_key, value).db()?;
            Ok(())
        })
    }

    /// Publishes a finished stream like [`Catalog::put_stream`]; the stream it replaces, if
    /// any, goes to the recycle bin in the same transaction (`deleted`, `expires` given).
    /// Returns the replaced record.
    pub fn put_stream_binning_replaced(
        &self,
        container_id: u64,
        s: &StreamRecord,
        deleted: u64,
        expires: u64,
    ) -> Result<Option<StreamRecord>> {
        let key = stream_key(container_id, &s.name);
        let value = encode_value(KIND_STREAM, s);
        let binned = self.next_id()?;
        let bin_entry = |old: &StreamRecord| {
            let entry = RecycledRecord { stream: old.clone(), deleted, expires, binned };
            (bin_key(container_id, old.id), encode_value(KIND_BIN_ENTRY, &entry))
        };
        // Both records ahead of the commit: the replaced version's, in the bin, and the new one's.
        let expected = self.stream(container_id, &s.name)?;
        if let Some(old) = &expected {
            let (entry_key, entry) = bin_entry(old);
            self.with_record_ahead(RECYCLE_BIN, &entry_key, Some(&entry), || Ok(()))?;
        }
        let replaced = self.with_record_ahead(STREAMS, &key, Some(&value), || {
            self.store.write(Durability::Durable, |tx| {
                let mut streams = tx.open_table(STREAMS).db()?;
                let old = streams.insert(key.as_slice(), value.as_slice()).db()?.map(|v| v.value().to_vec());
                drop(streams);
                let Some(old) = old else { return Ok(None) };
                let old: StreamRecord = decode_value(KIND_STREAM, &old).map_err(|e| e.at(self.path()))?;
                let (entry_key, entry) = bin_entry(&old);
                tx.open_table(RECYCLE_BIN).db()?.insert(entry_key.as_slice(), entry.as_slice()).db()?;
                Ok(Some(old))
            })
        });
        let replaced = replaced.inspect_err(|_| {
            if let Some(old) = &expected {
                let _ = self.resync_record(STREAMS, &key, Some(&encode_value(KIND_STREAM, old)));
            }
        })?;
        if replaced.as_ref().map(|r| r.id) != expected.as_ref().map(|r| r.id) {
            // Another writer replaced the name meanwhile: the records say what the catalog has.
            for old in replaced.iter().chain(&expected) {
                self.resync_record(STREAMS, &key, Some(&encode_value(KIND_STREAM, old)))?;
            }
        }
        Ok(replaced)
    }

    /// Moves a stream back from the recycle bin to the live streams in one transaction: bin
    /// entry `id`, or the most recently binned version of `name` when `id` is `None`.
    /// `Err(NotFound)` if there is no such entry, `Err(AlreadyExists)` if a live stream has the
    /// name.
    pub fn restore_recycled(&self, container_id: u64, name: &str, id: Option<u64>) -> Result<RecycledRecord> {
        let versions: Vec<RecycledRecord> =
            self.recycled(container_id)?.into_iter().filter(|r| r.stream.name == name).collect();
        let chosen = match id {
            Some(id) => versions.into_iter().find(|r| r.stream.id == id),
            None => versions.into_iter().max_by_key(|r| (r.binned, r.deleted)),
        };
        let Some(chosen) = chosen else {
            let what = match id {
                Some(id) => format!("{name} with id {id}"),
                None => name.to_string(),
            };
            return Err(Error::not_found("stream in the recycle bin", what));
        };
        let key = stream_key(container_id, name);
        let entry_key = bin_key(container_id, chosen.stream.id);
        let value = encode_value(KIND_STREAM, &chosen.stream);
        self.with_record_ahead(STREAMS, &key, Some(&value), || {
            self.store.write(Durability::Durable, |tx| {
                let mut bin = tx.open_table(RECYCLE_BIN).db()?;
                let mut streams = tx.open_table(STREAMS).db()?;
                if bin.get(entry_key.as_slice()).db()?.is_none() {
                    return Err(Error::not_found("stream in the recycle bin", name));
                }
                if streams.get(key.as_slice()).db()?.is_some() {
                    return Err(Error::AlreadyExists { what: "live stream", name: name.to_string() });
                }
                streams.insert(key.as_slice(), value.as_slice()).db()?;
                bin.remove(entry_key.as_slice()).db()?;
                Ok(())
            })
        })?;
        Ok(chosen)
    }

    /// Removes recycle bin entry `id` of a container durably. Returns whether it was there.
    pub fn remove_recycled_id(&self, container_id: u64, id: u64) -> Result<bool> {
        let removed = self.store.write(Durability::Durable, |tx| {
            let mut bin = tx.open_table(RECYCLE_BIN).db()?;
            let old = bin.remove(bin_key(container_id, id).as_slice()).db()?;
            Ok(old.is_some())
        })?;
        if removed {
            self.records.remove(&self.records.stream_path(id))?;
        }
        Ok(removed)
    }

    /// Removes a stream entry durably if it is still the stream with id `id` (not one that
    /// replaced it meanwhile). Returns whether it was removed.
    pub fn remove_stream_id(&self, container_id: u64, name: &str, id: u64) -> Result<bool> {
        self.remove_if_id(STREAMS, &stream_key(container_id, name), |v| {
            decode_value::<StreamRecord>(KIND_STREAM, v).map(|s| s.id == id)
        })
    }

    fn remove_if_id(
        &self,
        table: Table,
        key: &[u8],
        is_it: impl Fn(&[u8]) -> Result<bool, DecodeError>,
    ) -> Result<bool> {
        let removed = self.store.write(Durability::Durable, |tx| {
            let mut t = tx.open_table(table).db()?;
            let Some(current) = get_raw(&t, key)? else { return Ok(None) };
            if !is_it(&current).map_err(|e| e.at(self.path()))? {
                return Ok(None);
            }
            t.remove(key).db()?;
            Ok(Some(current))
        })?;
        if let Some(old) = &removed {
            self.mirror(table, key, Some(old), None)?;
        }
        Ok(removed.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(id: u64, name: &str) -> StreamRecord {
        StreamRecord {
            id,
            name: name.into(),
            logical_len: id * 10,
            chunks: 1,
            new_chunks: 1,
            new_stored_bytes: 5,
            created: 100,
        }
    }

    #[test]
    fn format_1_recycle_bins_migrate_to_one_entry_per_version() {
        let data = tempfile::tempdir().unwrap();
        let dir = &data.path().join("catalog");
        std::fs::create_dir(dir).unwrap();
        {
            // A catalog as format 1 left it: one bin entry per name, keyed by the name.
            let db = migrate::sled_config(dir).open().unwrap();
            let old = db.open_tree("recycle").unwrap();
            for (cid, id, name) in [(3u64, 40u64, "a"), (3, 41, "b/c"), (9, 42, "a")] {
                let r = RecycledRecord { stream: stream(id, name), deleted: 1_000 + id, expires: 9_000, binned: 0 };
                old.insert(stream_key(cid, name), encode_value(KIND_RECYCLED, &r)).unwrap();
            }
            // And a version kept by the sled code of the versioned bin.
            let r = RecycledRecord { stream: stream(39, "a"), deleted: 1_039, expires: 9_000, binned: 45 };
            db.open_tree("recycle_bin").unwrap().insert(bin_key(3, 39), encode_value(KIND_BIN_ENTRY, &r)).unwrap();
            db.flush().unwrap();
        }
        // Opening migrates the sled catalog to redb, then the old bins to the versioned bin.
        let catalog = Catalog::open(dir).unwrap();
        assert!(dir.join(store::FILE).exists() && !dir.join("db").exists());
        let ids = |cid| catalog.recycled(cid).unwrap().iter().map(|r| (r.stream.id, r.stream.name.clone())).collect();
        let in_3: Vec<(u64, String)> = ids(3);
        assert_eq!(in_3, [(39, "a".to_string()), (40, "a".to_string()), (41, "b/c".to_string())]);
        assert_eq!(catalog.recycled(3).unwrap()[0].binned, 45, "a versioned entry is copied as it was");
        let in_9: Vec<(u64, String)> = ids(9);
        assert_eq!(in_9, [(42, "a".to_string())]);
        let old_left = catalog.store.read(|tx| tx.open_table(RECYCLE_V1).db()?.len().db()).unwrap();
        assert_eq!(old_left, 0, "the format-1 entries are moved, not copied");
        assert!(catalog.next_id().unwrap() > 42, "ids of migrated entries are never handed out again");
        drop(catalog);
        // Opening again changes nothing.
        let catalog = Catalog::open(dir).unwrap();
        assert_eq!(catalog.recycled(3).unwrap().len(), 3);
    }

    #[test]
    fn the_bin_keeps_every_version_and_restores_the_one_asked() {
        let data = tempfile::tempdir().unwrap();
        let dir = &data.path().join("catalog");
        let catalog = Catalog::open(dir).unwrap();
        catalog.put_stream(1, &stream(10, "x")).unwrap();
        let binned = catalog.next_id().unwrap();
        catalog
            .recycle_stream(1, &RecycledRecord { stream: stream(10, "x"), deleted: 6, expires: 50, binned })
            .unwrap();
        catalog.put_stream(1, &stream(11, "x")).unwrap();
        let replaced = catalog.put_stream_binning_replaced(1, &stream(12, "x"), 6, 60).unwrap();
        assert_eq!(replaced.map(|r| r.id), Some(11));
        let bin: Vec<u64> = catalog.recycled(1).unwrap().iter().map(|r| r.stream.id).collect();
        assert_eq!(bin, [10, 11]);
        // A live stream has the name: refused.
        assert!(matches!(catalog.restore_recycled(1, "x", None), Err(Error::AlreadyExists { .. })));
        catalog.remove_stream_id(1, "x", 12).unwrap();
        assert!(matches!(catalog.restore_recycled(1, "x", Some(99)), Err(Error::NotFound { .. })));
        assert_eq!(catalog.restore_recycled(1, "x", Some(10)).unwrap().stream.id, 10);
        assert_eq!(catalog.stream(1, "x").unwrap().map(|s| s.id), Some(10));
        catalog.remove_stream_id(1, "x", 10).unwrap();
        // Without an id: the most recently binned.
        assert_eq!(catalog.restore_recycled(1, "x", None).unwrap().stream.id, 11);
        assert!(catalog.recycled(1).unwrap().is_empty());
    }

    #[test]
    fn value_wrapper_rejects_damage() {
        let g = GroupRecord {
            id: 1,
            name: "g".into(),
            compression: Compression::Fast,
            chunking: ChunkParams::default(),
            created: 5,
            quota: None,
            encryption: None,
        };
        let b = encode_value(KIND_GROUP, &g);
        assert_eq!(decode_value::<GroupRecord>(KIND_GROUP, &b).unwrap(), g);
        assert!(decode_value::<GroupRecord>(KIND_CONTAINER, &b).is_err());
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 1;
            assert!(decode_value::<GroupRecord>(KIND_GROUP, &c).is_err(), "flip at {i}");
        }
    }
}
