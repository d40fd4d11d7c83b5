//! The catalog: storage groups, containers and stream entries, in sled.
//!
//! Every value is wrapped as `"QV"`, a version byte, a kind byte, a JSON body and a CRC-32 of
//! all of that (see `docs/FORMAT.md`), so a damaged value is reported, never misread. Stream
//! entries only ever point at recipes that are already durable: the writer syncs the recipe,
//! then inserts the entry and flushes sled, then acknowledges.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::chunker::ChunkParams;
use crate::compress::Compression;
use crate::error::{DecodeError, Error, Result};
use crate::format::*;

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

/// The sled catalog.
pub struct Catalog {
    path: PathBuf,
    db: sled::Db,
    groups: sled::Tree,
    containers: sled::Tree,
    streams: sled::Tree,
    meta: sled::Tree,
    /// The recycle bins, format 2: key = container id (big-endian u64), then the stream id
    /// (big-endian u64); value kind [`KIND_BIN_ENTRY`].
    bin: sled::Tree,
}

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

/// The sled settings of the catalog (a database must be opened with the settings it was made with).
fn sled_config(dir: &Path) -> sled::Config {
    sled::Config::new().path(dir).cache_capacity(16 << 20).segment_size(256 << 10)
}

/// How long [`Catalog::open`] waits for a just-dropped handle of this process to release sled's
/// file lock.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Catalog {
    /// Opens (creating) the catalog database in `dir`. The caller holds the data directory's
    /// lock (`engine::DirLock`), so the only other holder of sled's own file lock can be a handle
    /// this process has just dropped: sled releases that lock from its flusher thread, a moment
    /// after the drop. Such a conflict is waited out (at most [`LOCK_WAIT`]).
    pub fn open(dir: &Path) -> Result<Self> {
        let config = sled_config(dir);
        let started = std::time::Instant::now();
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock") && started.elapsed() < LOCK_WAIT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                opened => break opened?,
            }
        };
        let catalog = Catalog {
            path: dir.to_path_buf(),
            groups: db.open_tree("groups")?,
            containers: db.open_tree("containers")?,
            streams: db.open_tree("streams")?,
            meta: db.open_tree("meta")?,
            bin: db.open_tree("recycle_bin")?,
            db,
        };
        catalog.migrate_recycle_bins()?;
        catalog.raise_id_counter()?;
        Ok(catalog)
    }

    /// Makes sure the id counter is above every id in use, so that no id is handed out twice
    /// whatever happened to the counter.
    fn raise_id_counter(&self) -> Result<()> {
        let mut max = self.groups()?.iter().map(|g| g.id as u64).max().unwrap_or(0);
        for c in self.containers()? {
            max = max.max(c.id);
            max = self.streams(c.id)?.iter().map(|s| s.id).fold(max, u64::max);
        }
        let binned: Vec<RecycledRecord> = self.all(self.bin.iter(), KIND_BIN_ENTRY)?;
        max = binned.iter().map(|r| r.stream.id).fold(max, u64::max);
        if self.current_id()? < max {
            self.meta.insert(b"next_id", &max.to_le_bytes()[..])?;
            self.flush()?;
        }
        Ok(())
    }

    /// Moves the recycle bin entries of format 1 (tree `recycle`, keyed by stream name) to the
    /// format-2 tree `recycle_bin` (keyed by stream id), each in one transaction, then drops the
    /// old tree. An interrupted migration resumes at the next open.
    fn migrate_recycle_bins(&self) -> Result<()> {
        use sled::Transactional;
        if !self.db.tree_names().iter().any(|n| n.as_ref() == b"recycle") {
            return Ok(());
        }
        let old = self.db.open_tree("recycle")?;
        for item in old.iter() {
            let (key, value) = item?;
            let r: RecycledRecord = decode_value(KIND_RECYCLED, &value).map_err(|e| e.at(&self.path))?;
            let container_id = key.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes);
            let Some(container_id) = container_id else {
                return Err(Error::corrupt("recycle bin key", &self.path, format!("{} bytes", key.len())));
            };
            let new_key = bin_key(container_id, r.stream.id);
            let new_value = encode_value(KIND_BIN_ENTRY, &r);
            (&old, &self.bin)
                .transaction(|(old, bin)| {
                    bin.insert(new_key.as_slice(), new_value.as_slice())?;
                    old.remove(&key)?;
                    Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                })
                .map_err(|e| match e {
                    sled::transaction::TransactionError::Storage(e) => Error::from(e),
                    sled::transaction::TransactionError::Abort(()) => Error::Conflict("recycle bin migration".into()),
                })?;
        }
        self.flush()?;
        self.db.drop_tree("recycle")?;
        self.flush()
    }

    fn current_id(&self) -> Result<u64> {
        match self.meta.get(b"next_id")? {
            None => Ok(0),
            Some(b) => Ok(u64::from_le_bytes(<[u8; 8]>::try_from(&b[..]).map_err(|_| {
                Error::corrupt("catalog id counter", &self.path, format!("{} bytes, expected 8", b.len()))
            })?)),
        }
    }

    fn get<T: DeserializeOwned>(&self, tree: &sled::Tree, kind: u8, key: &[u8]) -> Result<Option<T>> {
        match tree.get(key)? {
            None => Ok(None),
            Some(v) => decode_value(kind, &v).map(Some).map_err(|e| e.at(&self.path)),
        }
    }

    fn all<T: DeserializeOwned>(&self, iter: sled::Iter, kind: u8) -> Result<Vec<T>> {
        iter.values().map(|v| decode_value(kind, &v?).map_err(|e| e.at(&self.path))).collect()
    }

    /// Opens (creating) another tree of the catalog database, for records kept by other modules
    /// (their values are framed with [`encode_value`] like every catalog value).
    pub(crate) fn open_tree(&self, name: &str) -> Result<sled::Tree> {
        Ok(self.db.open_tree(name)?)
    }

    /// Makes every change so far durable.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// A fresh unique id: a counter in the `meta` tree (sled's own `generate_id` skips a
    /// million ids at every open, which would exhaust 32-bit group ids in a few thousand runs).
    /// Durable with the record that uses it (every insert is followed by a flush).
    pub fn next_id(&self) -> Result<u64> {
        loop {
            let old = self.meta.get(b"next_id")?;
            let next = self.current_id()? + 1;
            if self.meta.compare_and_swap(b"next_id", old, Some(&next.to_le_bytes()[..]))?.is_ok() {
                return Ok(next);
            }
        }
    }

    /// A storage group by name.
    pub fn group(&self, name: &str) -> Result<Option<GroupRecord>> {
        self.get(&self.groups, KIND_GROUP, name.as_bytes())
    }

    /// All storage groups, by name.
    pub fn groups(&self) -> Result<Vec<GroupRecord>> {
        self.all(self.groups.iter(), KIND_GROUP)
    }

    /// Inserts a storage group unless the name is taken; returns whether it was inserted.
    pub fn insert_group(&self, g: &GroupRecord) -> Result<bool> {
        let done =
            self.groups.compare_and_swap(g.name.as_bytes(), None::<&[u8]>, Some(encode_value(KIND_GROUP, g)))?.is_ok();
        self.flush()?;
        Ok(done)
    }

    /// Replaces an existing storage group record (same name) durably.
    pub fn replace_group(&self, g: &GroupRecord) -> Result<()> {
        self.groups.insert(g.name.as_bytes(), encode_value(KIND_GROUP, g))?;
        self.flush()
    }

    /// Removes a storage group record.
    pub fn remove_group(&self, name: &str) -> Result<()> {
        self.groups.remove(name.as_bytes())?;
        self.flush()
    }

    /// A container by name.
    pub fn container(&self, name: &str) -> Result<Option<ContainerRecord>> {
        self.get(&self.containers, KIND_CONTAINER, name.as_bytes())
    }

    /// All containers, by name.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>> {
        self.all(self.containers.iter(), KIND_CONTAINER)
    }

    /// Inserts a container unless the name is taken; returns whether it was inserted.
    pub fn insert_container(&self, c: &ContainerRecord) -> Result<bool> {
        let done = self
            .containers
            .compare_and_swap(c.name.as_bytes(), None::<&[u8]>, Some(encode_value(KIND_CONTAINER, c)))?
            .is_ok();
        self.flush()?;
        Ok(done)
    }

    /// Replaces a container record (same name) durably.
    pub fn replace_container(&self, c: &ContainerRecord) -> Result<()> {
        self.containers.insert(c.name.as_bytes(), encode_value(KIND_CONTAINER, c))?;
        self.flush()
    }

    /// Removes a container record.
    pub fn remove_container(&self, name: &str) -> Result<()> {
        self.containers.remove(name.as_bytes())?;
        self.flush()
    }

    /// An engine state record in the `meta` tree (`key` names it, e.g. `cleaner/status`).
    pub fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.get(&self.meta, KIND_META, key.as_bytes())
    }

    /// Stores an engine state record durably.
    pub fn put_meta<T: Serialize>(&self, key: &str, v: &T) -> Result<()> {
        self.meta.insert(key.as_bytes(), encode_value(KIND_META, v))?;
        self.flush()
    }

    /// Removes an engine state record durably; returns whether it existed.
    pub fn remove_meta(&self, key: &str) -> Result<bool> {
        let old = self.meta.remove(key.as_bytes())?;
        self.flush()?;
        Ok(old.is_some())
    }

    /// A stream of a container.
    pub fn stream(&self, container_id: u64, name: &str) -> Result<Option<StreamRecord>> {
        self.get(&self.streams, KIND_STREAM, &stream_key(container_id, name))
    }

    /// All streams of a container, by name.
    pub fn streams(&self, container_id: u64) -> Result<Vec<StreamRecord>> {
        self.all(self.streams.scan_prefix(container_id.to_be_bytes()), KIND_STREAM)
    }

    /// Publishes a finished stream (replacing one of the same name) and makes it durable.
    /// Returns the replaced record.
    pub fn put_stream(&self, container_id: u64, s: &StreamRecord) -> Result<Option<StreamRecord>> {
        let old = self.streams.insert(stream_key(container_id, &s.name), encode_value(KIND_STREAM, s))?;
        self.flush()?;
        match old {
            None => Ok(None),
            Some(v) => decode_value(KIND_STREAM, &v).map(Some).map_err(|e| e.at(&self.path)),
        }
    }

    /// The recycle bin of a container: every kept version, by id (the order they were made).
    pub fn recycled(&self, container_id: u64) -> Result<Vec<RecycledRecord>> {
        self.all(self.bin.scan_prefix(container_id.to_be_bytes()), KIND_BIN_ENTRY)
    }

    /// Moves a live stream to the recycle bin in one transaction (only if the live entry is
    /// still stream `r.stream.id`); `Err(Conflict)` if the live entry changed meanwhile. Give
    /// `r.binned` a fresh [`Catalog::next_id`].
    pub fn recycle_stream(&self, container_id: u64, r: &RecycledRecord) -> Result<()> {
        use sled::transaction::{ConflictableTransactionError as Abort, TransactionError};
        use sled::Transactional;
        let key = stream_key(container_id, &r.stream.name);
        let value = encode_value(KIND_BIN_ENTRY, r);
        let outcome = (&self.streams, &self.bin).transaction(|(streams, bin)| {
            let current = streams.get(&key)?;
            let same = current
                .as_ref()
                .and_then(|v| decode_value::<StreamRecord>(KIND_STREAM, v).ok())
                .is_some_and(|s| s.id == r.stream.id);
            if !same {
                return Err(Abort::Abort(()));
            }
            streams.remove(key.as_slice())?;
            bin.insert(bin_key(container_id, r.stream.id), value.as_slice())?;
            Ok(())
        });
        match outcome {
            Ok(()) => self.flush(),
            Err(TransactionError::Abort(())) => {
                Err(Error::Conflict(format!("stream {:?} changed while it was being deleted", r.stream.name)))
            }
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
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
        use sled::transaction::{ConflictableTransactionError as Abort, TransactionError};
        use sled::Transactional;
        let key = stream_key(container_id, &s.name);
        let value = encode_value(KIND_STREAM, s);
        let binned = self.next_id()?;
        let outcome = (&self.streams, &self.bin).transaction(|(streams, bin)| {
            let Some(old) = streams.insert(key.as_slice(), value.as_slice())? else { return Ok(None) };
            let old: StreamRecord = decode_value(KIND_STREAM, &old).map_err(Abort::Abort)?;
            let entry = RecycledRecord { stream: old.clone(), deleted, expires, binned };
            bin.insert(bin_key(container_id, old.id), encode_value(KIND_BIN_ENTRY, &entry))?;
            Ok(Some(old))
        });
        let old = match outcome {
            Ok(old) => old,
            Err(TransactionError::Abort(e)) => return Err(e.at(&self.path)),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        };
        self.flush()?;
        Ok(old)
    }

    /// Moves a stream back from the recycle bin to the live streams in one transaction: bin
    /// entry `id`, or the most recently binned version of `name` when `id` is `None`.
    /// `Err(NotFound)` if there is no such entry, `Err(AlreadyExists)` if a live stream has the
    /// name.
    pub fn restore_recycled(&self, container_id: u64, name: &str, id: Option<u64>) -> Result<RecycledRecord> {
        use sled::transaction::{ConflictableTransactionError as Abort, TransactionError};
        use sled::Transactional;
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
        let outcome = (&self.streams, &self.bin).transaction(|(streams, bin)| {
            if bin.get(&entry_key)?.is_none() {
                return Err(Abort::Abort(true));
            }
            if streams.get(&key)?.is_some() {
                return Err(Abort::Abort(false));
            }
            streams.insert(key.as_slice(), value.as_slice())?;
            bin.remove(entry_key.as_slice())?;
            Ok(())
        });
        match outcome {
            Ok(()) => {}
            Err(TransactionError::Abort(true)) => return Err(Error::not_found("stream in the recycle bin", name)),
            Err(TransactionError::Abort(false)) => {
                return Err(Error::AlreadyExists { what: "live stream", name: name.to_string() })
            }
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        }
        self.flush()?;
        Ok(chosen)
    }

    /// Removes recycle bin entry `id` of a container durably. Returns whether it was there.
    pub fn remove_recycled_id(&self, container_id: u64, id: u64) -> Result<bool> {
        let old = self.bin.remove(bin_key(container_id, id))?;
        self.flush()?;
        Ok(old.is_some())
    }

    /// Removes a stream entry durably if it is still the stream with id `id` (not one that
    /// replaced it meanwhile). Returns whether it was removed.
    pub fn remove_stream_id(&self, container_id: u64, name: &str, id: u64) -> Result<bool> {
        let key = stream_key(container_id, name);
        loop {
            let Some(current) = self.streams.get(&key)? else { return Ok(false) };
            let record: StreamRecord = decode_value(KIND_STREAM, &current).map_err(|e| e.at(&self.path))?;
            if record.id != id {
                return Ok(false);
            }
            if self.streams.compare_and_swap(&key, Some(current), None::<&[u8]>)?.is_ok() {
                self.flush()?;
                return Ok(true);
            }
        }
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
        let dir = tempfile::tempdir().unwrap();
        {
            // A catalog as format 1 left it: one bin entry per name, keyed by the name.
            let db = sled_config(dir.path()).open().unwrap();
            let old = db.open_tree("recycle").unwrap();
            for (cid, id, name) in [(3u64, 40u64, "a"), (3, 41, "b/c"), (9, 42, "a")] {
                let r = RecycledRecord { stream: stream(id, name), deleted: 1_000 + id, expires: 9_000, binned: 0 };
                old.insert(stream_key(cid, name), encode_value(KIND_RECYCLED, &r)).unwrap();
            }
            db.flush().unwrap();
        }
        let catalog = Catalog::open(dir.path()).unwrap();
        let ids = |cid| catalog.recycled(cid).unwrap().iter().map(|r| (r.stream.id, r.stream.name.clone())).collect();
        let in_3: Vec<(u64, String)> = ids(3);
        assert_eq!(in_3, [(40, "a".to_string()), (41, "b/c".to_string())]);
        let in_9: Vec<(u64, String)> = ids(9);
        assert_eq!(in_9, [(42, "a".to_string())]);
        assert!(!catalog.db.tree_names().iter().any(|n| n.as_ref() == b"recycle"), "the old tree is gone");
        assert!(catalog.next_id().unwrap() > 42, "ids of migrated entries are never handed out again");
        drop(catalog);
        // Opening again changes nothing.
        let catalog = Catalog::open(dir.path()).unwrap();
        assert_eq!(catalog.recycled(3).unwrap().len(), 2);
    }

    #[test]
    fn the_bin_keeps_every_version_and_restores_the_one_asked() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path()).unwrap();
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
