//! The engine: a data directory with its catalog, storage groups, containers and streams.
//!
//! Directory layout (details in `docs/FORMAT.md`):
//! ```text
//! DIR/QORESTOR            format marker ("qorestor data directory" + version)
//! DIR/lock                held with an exclusive lock by the owning process; names it
//! DIR/catalog/catalog.redb the catalog: groups, containers, stream entries (redb)
//! DIR/groups/<id>/packs/  <pack id>.pack
//! DIR/groups/<id>/recipes/<stream id>.rcp
//! DIR/groups/<id>/fp.idx  the fingerprint index
//! ```

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

use crate::catalog::{Catalog, ContainerKind, ContainerRecord, GroupRecord, StreamRecord};
use crate::chunker::ChunkParams;
use crate::compress::Compression;
use crate::error::{Error, Result};
use crate::format::{MAX_OBJECT_NAME_LEN, MAX_STREAM_NAME_LEN};
use crate::group::GroupStore;
use crate::reader::StreamReader;
use crate::recipe::{read_recipe, recipe_path};
use crate::stats::{Marker, Stats, StatsScope};
use crate::writer::StreamWriter;

mod encryption;
mod ingest;
mod meta;
mod owned;
mod prefix;
mod reserve;

pub(crate) use ingest::container_quota;
pub use ingest::{ClientChunk, ClientIngest, IngestParams};
pub use owned::OwnedStreams;
pub(crate) use owned::{bin_retention, check_not_owned};

/// Name of the storage group every new data directory starts with (as in QoreStor).
pub const DEFAULT_GROUP: &str = "DefaultGroup";
const MARKER: &str = "QORESTOR";
const MARKER_TEXT: &str = "qorestor data directory\nformat 2\n";
/// The marker of format 1 (the catalog in sled): opened, migrated, and marked format 2.
const MARKER_TEXT_V1: &str = "qorestor data directory\nformat 1\n";

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Options of a new storage group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupOptions {
    /// Compression policy (default `fast`).
    pub compression: Compression,
    /// Chunking parameters (default 4/16/64 KiB).
    pub chunking: ChunkParams,
}

/// A storage group as reported to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupInfo {
    /// Name.
    pub name: String,
    /// Numeric id.
    pub id: u32,
    /// Compression policy.
    pub compression: Compression,
    /// Minimum chunk size.
    pub chunk_min: u32,
    /// Average chunk size.
    pub chunk_avg: u32,
    /// Maximum chunk size.
    pub chunk_max: u32,
    /// Containers in the group.
    pub containers: u64,
    /// Quota on the group's pack bytes, if any.
    pub quota_bytes: Option<u64>,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Encryption mode (`static` or `internal`), if the group is encrypted.
    pub encryption: Option<crate::crypto::EncryptionMode>,
    /// Days between data key rotations (encrypted groups in `internal` mode).
    pub key_rotation_days: Option<u32>,
    /// Data keys the group holds (encrypted groups; old keys stay to read old chunks).
    pub data_keys: Option<u32>,
}

/// A container as reported to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerInfo {
    /// Name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: ContainerKind,
    /// Its storage group's name.
    pub storage_group: String,
    /// Live streams.
    pub streams: u64,
    /// Their logical bytes.
    pub logical_bytes: u64,
    /// Quota on the logical bytes of its live streams, if any.
    pub quota_bytes: Option<u64>,
    /// Whether deleted streams go to the recycle bin.
    pub recycle_bin: bool,
    /// How long the recycle bin keeps a deleted stream, in days (when it is on).
    pub retention_days: Option<u64>,
    /// Streams in the recycle bin.
    pub recycled_streams: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
}

/// A finished stream as reported to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamInfo {
    /// Container name.
    pub container: String,
    /// Stream name.
    pub name: String,
    /// Length in bytes.
    pub logical_bytes: u64,
    /// Chunks.
    pub chunks: u64,
    /// Chunks stored by this stream (not stored before).
    pub new_chunks: u64,
    /// Pack bytes this stream added.
    pub new_stored_bytes: u64,
    /// Finish time, seconds since the Unix epoch.
    pub created: u64,
}

impl StreamInfo {
    pub(crate) fn new(container: &str, r: &StreamRecord) -> Self {
        StreamInfo {
            container: container.to_string(),
            name: r.name.clone(),
            logical_bytes: r.logical_len,
            chunks: r.chunks,
            new_chunks: r.new_chunks,
            new_stored_bytes: r.new_stored_bytes,
            created: r.created,
        }
    }
}

/// Checks a storage group or container name: `[A-Za-z0-9._-]{1,64}`, except `.` and `..`.
pub fn check_object_name(what: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_OBJECT_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if !ok {
        return Err(Error::invalid(what, shortened(name), "use 1 to 64 of A-Z a-z 0-9 . _ -"));
    }
    if name == "." || name == ".." {
        return Err(Error::invalid(what, name, "\".\" and \"..\" are not names"));
    }
    Ok(())
}

/// Checks the name of a stream being addressed: not empty, at most 1,024 bytes, no NUL (names
/// stored before control characters were refused stay addressable).
pub fn check_stream_address(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_STREAM_NAME_LEN || name.contains('\0') {
        return Err(Error::invalid("stream name", shortened(name), "use 1 to 1024 bytes without NUL"));
    }
    Ok(())
}

/// Checks a new stream's name: as [`check_stream_address`], and no control character (they
/// would reach terminals and break one-name-per-line listings).
pub fn check_stream_name(name: &str) -> Result<()> {
    check_stream_address(name)?;
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(
            "stream name",
            shortened(name),
            format!("control character {:?} (U+{:04X}) is not allowed in a name", c, c as u32),
        ));
    }
    Ok(())
}

/// Longest value an error message quotes in full.
const QUOTED_MAX: usize = 80;

/// A value as an error message quotes it: its first characters and its length when it is long.
pub fn shortened(value: &str) -> String {
    if value.len() <= QUOTED_MAX {
        return value.to_string();
    }
    let mut end = QUOTED_MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &value[..end], value.len())
}

/// Refuses changes to a replica container (only replication writes it).
pub(crate) fn check_writable(c: &ContainerRecord) -> Result<()> {
    match &c.replica_of {
        Some(source) => Err(Error::Conflict(format!("container {:?} is a read-only replica of {source}", c.name))),
        None => Ok(()),
    }
}

/// How long a process that finds the lock held waits for the holder to write its name (it
/// writes it right after taking the lock).
const HOLDER_NAME_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The exclusive hold of a data directory by one process (the file `DIR/lock`, see
/// `docs/FORMAT.md`). The lock file holds one line naming the holder while it is held, and is
/// emptied when the hold ends (a process killed outright leaves its line, which the next holder
/// overwrites at once).
///
/// The hold is an `flock` on the file's open description: a descriptor passed to another
/// process (inherited, or sent over a Unix socket) carries it, and the hold lasts until every
/// copy is closed. `qorestor serve` takes it in its supervisor and hands it to the serving
/// process, which [adopts](DirLock::adopt) it.
pub struct DirLock {
    file: File,
    /// Whether this process took the hold (and empties the file when it ends), rather than
    /// adopting one another process took and still owns.
    owner: bool,
    /// Whether the previous holder may have ended without releasing the directory (killed, or a
    /// crash), so a change it made may be in the catalog and not in its records. An adopted hold
    /// always says so: the process serving under it before may have died mid-change.
    previous_died: bool,
}

impl DirLock {
    /// Takes the hold of `dir`, writing `holder (pid N)` into the lock file; a directory held
    /// by another process is [`Error::Locked`] naming that holder.
    pub fn acquire(dir: &Path, holder: &str) -> Result<Self> {
        let path = dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        let started = std::time::Instant::now();
        loop {
            if file.try_lock().is_ok() {
                let previous_died = holder_line(&mut file).is_some();
                file.set_len(0).map_err(|e| Error::io("write", &path, e))?;
                file.seek(std::io::SeekFrom::Start(0)).map_err(|e| Error::io("seek", &path, e))?;
                file.write_all(format!("{holder} (pid {})\n", std::process::id()).as_bytes())
                    .map_err(|e| Error::io("write", &path, e))?;
                return Ok(DirLock { file, owner: true, previous_died });
            }
            // Held: the holder's line names it, unless the holder has only just taken the
            // lock and not written its line yet (then look again in a moment).
            if let Some(who) = holder_line(&mut file) {
                return Err(Error::Locked { path: dir.to_path_buf(), holder: who });
            }
            if started.elapsed() >= HOLDER_NAME_WAIT {
                return Err(Error::Locked { path: dir.to_path_buf(), holder: "another process".into() });
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Adopts the hold of `dir` that another process took and passed down as `fd`: the
    /// descriptor must be `dir/lock` itself and must hold the lock (else [`Error::Locked`] or
    /// an invalid-value error). The lock file keeps the owner's line, and is left as it is
    /// when this hold ends (the owner empties it).
    pub fn adopt(dir: &Path, fd: OwnedFd) -> Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let path = dir.join("lock");
        let file = File::from(fd);
        let given = file.metadata().map_err(|e| Error::io("stat", &path, e))?;
        let named = std::fs::metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
        if (given.dev(), given.ino()) != (named.dev(), named.ino()) {
            return Err(Error::invalid("inherited lock", path.display().to_string(), "the descriptor is another file"));
        }
        // On the same open description the lock is already ours and this succeeds; on
        // another one it fails while the owner holds it.
        if file.try_lock().is_err() {
            return Err(Error::Locked { path: dir.to_path_buf(), holder: "another process".into() });
        }
        Ok(DirLock { file, owner: false, previous_died: true })
    }
}

impl AsFd for DirLock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// The format marker's text, checked: a missing marker is a directory never initialised.
fn read_marker(dir: &Path) -> Result<String> {
    let marker = dir.join(MARKER);
    let text = std::fs::read_to_string(&marker).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::invalid("data directory", dir.display().to_string(), "not initialised (run qorestor init)")
        }
        _ => Error::io("read", &marker, e),
    })?;
    if text != MARKER_TEXT && text != MARKER_TEXT_V1 {
        return Err(Error::corrupt("format marker", &marker, format!("unsupported content {text:?}")));
    }
    Ok(text)
}

/// The complete first line of the lock file, if it has one.
fn holder_line(file: &mut File) -> Option<String> {
    let mut text = String::new();
    file.seek(std::io::SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    let line = text.split_inclusive('\n').next().filter(|l| l.ends_with('\n'))?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

impl Drop for DirLock {
    fn drop(&mut self) {
        if !self.owner {
            return;
        }
        // Empty before the lock goes (with the file), so no later reader takes this line for
        // the name of a newer holder.
        let _ = self.file.set_len(0);
    }
}

pub(crate) struct EngineInner {
    dir: PathBuf,
    pub(crate) catalog: Catalog,
    groups: Mutex<HashMap<u32, Arc<GroupStore>>>,
    /// Held by a cleaner or repair run (one at a time).
    pub(crate) maintenance: Mutex<()>,
    /// Held while a storage group's catalog record is read, changed and written back, so
    /// that two changes (a quota and a key rotation, say) never lose one another.
    pub(crate) group_update: Mutex<()>,
    /// The passphrase that unlocks encrypted storage groups, if given.
    pub(crate) passphrase: Mutex<Option<crate::crypto::Passphrase>>,
    /// The space reserve new data leaves free (see [`crate::space`]).
    pub(crate) reserve: Arc<crate::space::Reserve>,
    /// Closed while a repair runs: new stream data waits (see [`crate::write_gate`]).
    pub(crate) write_gate: Arc<crate::write_gate::WriteGate>,
    /// A rebuild of the catalog done at open, until a verify reports it.
    pub(crate) rebuilt: Mutex<Option<CatalogRebuild>>,
    _lock: DirLock,
}

/// A catalog that could not be opened and was rebuilt from the redundant records.
pub(crate) struct CatalogRebuild {
    /// Why it could not be opened.
    pub(crate) error: String,
    /// Where the damaged file was moved.
    pub(crate) aside: PathBuf,
    /// What the rebuild restored.
    pub(crate) done: crate::catalog::reconcile::Reconciled,
}

/// Whether stream `id` of storage group `group` has its recipe in data directory `dir`.
pub(crate) fn recipe_exists(dir: &Path, group: u32, id: u64) -> bool {
    recipe_path(&dir.join("groups").join(format!("{group:08x}")).join("recipes"), id).exists()
}

/// Whether an error opening the catalog means its file is damaged (not a full disk, a lock or
/// a permission problem).
fn catalog_damage(e: &Error) -> bool {
    matches!(e, Error::Catalog(_) | Error::Corrupt { .. })
        && !matches!(e.kind(), crate::error::ErrorKind::OutOfSpace | crate::error::ErrorKind::Locked)
}

impl EngineInner {
    pub(crate) fn group_store(&self, record: &GroupRecord) -> Result<Arc<GroupStore>> {
        let mut groups = self.groups.lock();
        if let Some(g) = groups.get(&record.id) {
            return Ok(g.clone());
        }
        let g = Arc::new(GroupStore::open(
            &self.group_dir(record.id),
            record.clone(),
            self.reserve.clone(),
            self.write_gate.clone(),
        )?);
        if let (Some(enc), Some(pass)) = (&record.encryption, &*self.passphrase.lock()) {
            match g.unlock(enc, pass) {
                // Remembered by the store: reading or writing the group reports it.
                Ok(()) | Err(Error::WrongPassphrase { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let quarantined: Vec<crate::verify::QuarantinedChunk> =
            self.catalog.meta(&crate::verify::quarantine_key(record.id))?.unwrap_or_default();
        g.set_quarantine(quarantined.iter().map(|q| (q.pack, q.offset)));
        groups.insert(record.id, g.clone());
        Ok(g)
    }

    /// The storage groups opened so far.
    pub(crate) fn open_groups(&self) -> Vec<Arc<GroupStore>> {
        self.groups.lock().values().cloned().collect()
    }

    fn group_dir(&self, id: u32) -> PathBuf {
        self.dir.join("groups").join(format!("{id:08x}"))
    }

    /// Removes a replaced or deleted stream's recipe (its chunks become garbage for the cleaner).
    pub(crate) fn remove_recipe(&self, group: &GroupStore, stream_id: u64) {
        let _guard = group.recipe_lock();
        let _ = std::fs::remove_file(recipe_path(group.recipes_dir(), stream_id));
    }
}

/// Completes stream deletions a crash interrupted: a `<id>.rcp.deleted` recipe means the
/// stream with that id was being deleted; its catalog entry (if still there) and the file go.
/// Removes the temporary recipes (`.<id>.rcp.tmp`) of writers that are gone too.
fn finish_deletions(dir: &Path, catalog: &Catalog) -> Result<()> {
    let groups = dir.join("groups");
    let Ok(rd) = std::fs::read_dir(&groups) else { return Ok(()) };
    let mut doomed: HashMap<u64, PathBuf> = HashMap::new();
    for g in rd.flatten() {
        let recipes = g.path().join("recipes");
        let Ok(files) = std::fs::read_dir(&recipes) else { continue };
        for f in files.flatten() {
            if crate::recipe::is_leftover(&f.path()) {
                // A writer killed mid-stream: its stream was never published.
                match std::fs::remove_file(f.path()) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io("remove", f.path(), e)),
                    _ => continue,
                }
            }
            let name = f.file_name();
            let id = name
                .to_str()
                .and_then(|n| n.strip_suffix(".rcp.deleted"))
                .and_then(|h| u64::from_str_radix(h, 16).ok());
            if let Some(id) = id {
                doomed.insert(id, f.path());
            }
        }
    }
    if doomed.is_empty() {
        return Ok(());
    }
    for c in catalog.containers()? {
        for s in catalog.streams(c.id)? {
            if doomed.contains_key(&s.id) {
                catalog.remove_stream_id(c.id, &s.name, s.id)?;
            }
        }
        for r in catalog.recycled(c.id)? {
            if doomed.contains_key(&r.stream.id) {
                catalog.remove_recycled_id(c.id, r.stream.id)?;
            }
        }
    }
    for path in doomed.values() {
        std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e))?;
    }
    Ok(())
}

/// The deduplication engine over one data directory. Cheap to clone; `Send + Sync`.
///
/// ```
/// use std::io::{Read, Seek, Write};
/// use qorestor_core::{ContainerKind, Engine, DEFAULT_GROUP};
///
/// let dir = tempfile::tempdir().unwrap();
/// let engine = Engine::open_or_create(dir.path()).unwrap();
/// engine.add_container("backups", DEFAULT_GROUP, ContainerKind::Object).unwrap();
/// let mut w = engine.create_stream("backups", "monday.tar").unwrap();
/// w.write_all(b"nightly full").unwrap();
/// w.finish().unwrap();
/// let mut back = String::new();
/// engine.open_stream("backups", "monday.tar").unwrap().read_to_string(&mut back).unwrap();
/// assert_eq!(back, "nightly full");
/// ```
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

impl Engine {
    /// Whether `dir` is an initialised data directory (`Ok(false)` when it, or its format
    /// marker, does not exist; an error when it cannot be looked at, e.g. for permissions).
    pub fn is_initialised(dir: &Path) -> std::io::Result<bool> {
        match std::fs::metadata(dir.join(MARKER)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Opens an existing data directory.
    pub fn open(dir: &Path) -> Result<Engine> {
        Self::open_as(dir, "another qorestor process")
    }

    /// Opens an existing data directory, naming the holder in the lock file (other processes
    /// report it when they find the directory in use).
    pub fn open_as(dir: &Path, holder: &str) -> Result<Engine> {
        read_marker(dir)?;
        Self::open_held(dir, DirLock::acquire(dir, holder)?)
    }

    /// Like [`Engine::open_as`], for a repair: a catalog that cannot be opened (damaged,
    /// truncated) is moved aside (`catalog.redb.damaged-<time>`) and a new one is made and filled
    /// from the redundant records; the next [`Engine::verify`] with repair reports it and
    /// brings back the streams from their recipes.
    pub fn open_for_repair_as(dir: &Path, holder: &str) -> Result<Engine> {
        read_marker(dir)?;
        Self::open_with_lock(dir, DirLock::acquire(dir, holder)?, true)
    }

    /// Opens an existing data directory whose hold `lock` was taken already (by this process,
    /// or by another that passed it down: see [`DirLock::adopt`]).
    pub fn open_held(dir: &Path, lock: DirLock) -> Result<Engine> {
        Self::open_with_lock(dir, lock, false)
    }

    fn open_with_lock(dir: &Path, lock: DirLock, repair: bool) -> Result<Engine> {
        let text = read_marker(dir)?;
        let engine = Self::open_locked(dir, lock, repair)?;
        if text == MARKER_TEXT_V1 {
            // The catalog was migrated by `Catalog::open`: from now on only this version opens it.
            crate::fsutil::write_atomic(&dir.join(MARKER), MARKER_TEXT.as_bytes())?;
        }
        Ok(engine)
    }

    fn open_locked(dir: &Path, lock: DirLock, repair: bool) -> Result<Engine> {
        let catalog_dir = dir.join("catalog");
        let mut rebuilt = None;
        let catalog = match Catalog::open(&catalog_dir) {
            Ok(c) => c,
            Err(e) if repair && catalog_damage(&e) => {
                let (c, aside) = Catalog::open_replacing_damaged(&catalog_dir)?;
                let done = c.reconcile(true, &|g, id| recipe_exists(dir, g, id))?;
                rebuilt = Some(CatalogRebuild { error: e.to_string(), aside, done });
                c
            }
            Err(e) if catalog_damage(&e) => {
                return Err(Error::corrupt(
                    "catalog",
                    catalog_dir.join(crate::catalog::store::FILE),
                    format!("{e} (qorestor verify --repair rebuilds it from its redundant records and the recipes)"),
                ))
            }
            Err(e) => return Err(e),
        };
        if lock.previous_died && rebuilt.is_none() {
            // A change the previous holder committed but had not copied to its record yet was
            // never acknowledged: catalog and records are made to agree again.
            catalog.reconcile(true, &|g, id| recipe_exists(dir, g, id))?;
        }
        finish_deletions(dir, &catalog)?;
        let engine = Engine {
            inner: Arc::new(EngineInner {
                dir: dir.to_path_buf(),
                catalog,
                groups: Mutex::new(HashMap::new()),
                maintenance: Mutex::new(()),
                group_update: Mutex::new(()),
                passphrase: Mutex::new(None),
                reserve: Arc::new(crate::space::Reserve::new(None)),
                write_gate: Arc::default(),
                rebuilt: Mutex::new(rebuilt),
                _lock: lock,
            }),
        };
        engine.load_space_reserve();
        Ok(engine)
    }

    /// Creates a data directory (and its parents) with the default storage group.
    pub fn create(dir: &Path) -> Result<Engine> {
        Self::create_as(dir, "another qorestor process")
    }

    /// Like [`Engine::create`], naming the holder in the lock file.
    ///
    /// The format marker is written last, after the catalog holds the default storage group:
    /// a directory without it was never initialised, or its initialisation was interrupted
    /// (nothing was stored in it yet, since [`Engine::open`] refuses it), and creating
    /// it again finishes the job.
    pub fn create_as(dir: &Path, holder: &str) -> Result<Engine> {
        let marker = dir.join(MARKER);
        if marker.exists() {
            return Err(Error::AlreadyExists { what: "data directory", name: dir.display().to_string() });
        }
        crate::fsutil::create_dir_durable(&dir.join("groups"))?;
        let lock = DirLock::acquire(dir, holder)?;
        if marker.exists() {
            return Err(Error::AlreadyExists { what: "data directory", name: dir.display().to_string() });
        }
        let engine = Self::open_locked(dir, lock, false)?;
        if engine.catalog().group(DEFAULT_GROUP)?.is_none() {
            engine.add_storage_group(DEFAULT_GROUP, GroupOptions::default())?;
        }
        crate::fsutil::write_atomic(&marker, MARKER_TEXT.as_bytes())?;
        Ok(engine)
    }

    /// Opens `dir`, creating it first if it was never initialised.
    pub fn open_or_create(dir: &Path) -> Result<Engine> {
        Self::open_or_create_as(dir, "another qorestor process")
    }

    /// Like [`Engine::open_or_create`], naming the holder in the lock file.
    pub fn open_or_create_as(dir: &Path, holder: &str) -> Result<Engine> {
        if dir.join(MARKER).exists() {
            return Self::open_as(dir, holder);
        }
        match Self::create_as(dir, holder) {
            // Another process finished creating it meanwhile.
            Err(Error::AlreadyExists { .. }) => Self::open_as(dir, holder),
            other => other,
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Pauses new stream data (every writer's next batch append waits; one appending finishes
    /// first) until the result is dropped. [`Engine::verify`] with `repair` does this for its
    /// duration.
    pub fn pause_writes(&self) -> crate::WritesPaused<'_> {
        self.inner.write_gate.close()
    }

    /// Seals the open pack of every storage group opened so far, as closing the engine does:
    /// the directory is left as a process that ends would leave it (the daemon does this after
    /// a `put` it runs for a client, so that the command leaves the directory as it would have
    /// run on its own; a writer still appending starts a new pack).
    pub fn seal_open_packs(&self) -> Result<()> {
        for store in self.inner.open_groups() {
            store.seal_open()?;
        }
        Ok(())
    }

    pub(crate) fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    pub(crate) fn group_record(&self, name: &str) -> Result<GroupRecord> {
        self.catalog().group(name)?.ok_or_else(|| Error::not_found("storage group", name))
    }

    pub(crate) fn group_by_id(&self, id: u32) -> Result<GroupRecord> {
        self.catalog()
            .groups()?
            .into_iter()
            .find(|g| g.id == id)
            .ok_or_else(|| Error::corrupt("catalog", self.dir(), format!("no storage group with id {id}")))
    }

    pub(crate) fn container_record(&self, name: &str) -> Result<ContainerRecord> {
        self.catalog().container(name)?.ok_or_else(|| Error::not_found("container", name))
    }

    pub(crate) fn group_info(&self, g: &GroupRecord) -> Result<GroupInfo> {
        let containers = self.catalog().containers()?.iter().filter(|c| c.group_id == g.id).count() as u64;
        Ok(GroupInfo {
            name: g.name.clone(),
            id: g.id,
            compression: g.compression,
            chunk_min: g.chunking.min,
            chunk_avg: g.chunking.avg,
            chunk_max: g.chunking.max,
            containers,
            quota_bytes: g.quota,
            created: g.created,
            encryption: g.encryption.as_ref().map(|e| e.mode),
            key_rotation_days: g
                .encryption
                .as_ref()
                .filter(|e| e.mode == crate::crypto::EncryptionMode::Internal)
                .map(|e| e.rotation_days),
            data_keys: g.encryption.as_ref().map(|e| e.keys.len() as u32),
        })
    }

    /// Creates a storage group.
    pub fn add_storage_group(&self, name: &str, opts: GroupOptions) -> Result<GroupInfo> {
        self.insert_group(name, opts, None).and_then(|r| self.group_info(&r))
    }

    /// Checks and inserts a new storage group's record.
    pub(crate) fn insert_group(
        &self,
        name: &str,
        opts: GroupOptions,
        encryption: Option<crate::crypto::EncryptionRecord>,
    ) -> Result<GroupRecord> {
        check_object_name("storage group name", name)?;
        opts.chunking.validate()?;
        let id = u32::try_from(self.catalog().next_id()?)
            .map_err(|_| Error::Conflict("storage group ids are exhausted".into()))?;
        let record = GroupRecord {
            id,
            name: name.to_string(),
            compression: opts.compression,
            chunking: opts.chunking,
            created: now_secs(),
            quota: None,
            encryption,
        };
        if !self.catalog().insert_group(&record)? {
            return Err(Error::AlreadyExists { what: "storage group", name: name.to_string() });
        }
        Ok(record)
    }

    /// Changes a storage group's compression policy; chunks stored from then on use it (stored
    /// chunks keep their own encoding, so nothing is rewritten).
    pub fn update_storage_group(&self, name: &str, compression: Option<Compression>) -> Result<GroupInfo> {
        let _guard = self.inner.group_update.lock();
        let mut g = self.group_record(name)?;
        if let Some(c) = compression {
            g.compression = c;
            self.catalog().replace_group(&g)?;
            if let Some(store) = self.inner.groups.lock().get(&g.id) {
                store.set_compression(c);
            }
        }
        self.group_info(&g)
    }

    /// All storage groups, by name.
    pub fn storage_groups(&self) -> Result<Vec<GroupInfo>> {
        self.catalog().groups()?.iter().map(|g| self.group_info(g)).collect()
    }

    /// One storage group.
    pub fn storage_group(&self, name: &str) -> Result<GroupInfo> {
        self.group_info(&self.group_record(name)?)
    }

    /// Deletes an empty storage group and its data.
    pub fn delete_storage_group(&self, name: &str) -> Result<()> {
        let g = self.group_record(name)?;
        let used: Vec<String> =
            self.catalog().containers()?.into_iter().filter(|c| c.group_id == g.id).map(|c| c.name).collect();
        if !used.is_empty() {
            return Err(Error::Conflict(format!("storage group {name:?} still has containers: {}", used.join(", "))));
        }
        self.inner.groups.lock().remove(&g.id);
        self.catalog().remove_group(name)?;
        let dir = self.inner.group_dir(g.id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io("remove", &dir, e))?;
        }
        Ok(())
    }

    fn container_info(&self, c: &ContainerRecord) -> Result<ContainerInfo> {
        let streams = self.catalog().streams(c.id)?;
        let group = self.group_by_id(c.group_id)?;
        Ok(ContainerInfo {
            name: c.name.clone(),
            kind: c.kind,
            storage_group: group.name,
            streams: streams.len() as u64,
            logical_bytes: streams.iter().map(|s| s.logical_len).sum(),
            quota_bytes: c.quota,
            recycle_bin: c.recycle_retention.is_some(),
            retention_days: c.recycle_retention.map(|s| s / 86_400),
            recycled_streams: self.catalog().recycled(c.id)?.len() as u64,
            created: c.created,
        })
    }

    /// Creates a container in a storage group.
    pub fn add_container(&self, name: &str, group: &str, kind: ContainerKind) -> Result<ContainerInfo> {
        check_object_name("container name", name)?;
        let g = self.group_record(group)?;
        let record = ContainerRecord {
            id: self.catalog().next_id()?,
            name: name.to_string(),
            kind,
            group_id: g.id,
            created: now_secs(),
            quota: None,
            recycle_retention: None,
            replica_of: None,
        };
        if !self.catalog().insert_container(&record)? {
            return Err(Error::AlreadyExists { what: "container", name: name.to_string() });
        }
        self.container_info(&record)
    }

    /// All containers (of one storage group, if given), by name.
    pub fn containers(&self, group: Option<&str>) -> Result<Vec<ContainerInfo>> {
        let gid = group.map(|g| self.group_record(g).map(|r| r.id)).transpose()?;
        self.catalog()
            .containers()?
            .iter()
            .filter(|c| gid.is_none_or(|id| c.group_id == id))
            .map(|c| self.container_info(c))
            .collect()
    }

    /// One container.
    pub fn container(&self, name: &str) -> Result<ContainerInfo> {
        self.container_info(&self.container_record(name)?)
    }

    /// Deletes a container; with streams in it only when `force` is set (they are deleted).
    /// A tape library's container is deleted through the library
    /// ([`OwnedStreams::delete_container`]).
    pub fn delete_container(&self, name: &str, force: bool) -> Result<()> {
        let c = self.container_record(name)?;
        if c.kind == ContainerKind::Vtl {
            owned::check_not_owned(&c)?;
        }
        self.remove_container(&c, force)
    }

    fn remove_container(&self, c: &ContainerRecord, force: bool) -> Result<()> {
        let name = c.name.as_str();
        let streams = self.catalog().streams(c.id)?;
        if !streams.is_empty() && !force {
            return Err(Error::Conflict(format!(
                "container {name:?} holds {} stream{}; delete them first or force the deletion",
                streams.len(),
                if streams.len() == 1 { "" } else { "s" }
            )));
        }
        // Deleted for good (a container's recycle bin goes with it).
        let store = self.store_for(c)?;
        for s in &streams {
            self.delete_with_recipe(&store, s.id, || self.catalog().remove_stream_id(c.id, &s.name, s.id).map(|_| ()))?;
        }
        for r in self.catalog().recycled(c.id)? {
            let id = r.stream.id;
            self.delete_with_recipe(&store, id, || self.catalog().remove_recycled_id(c.id, id).map(|_| ()))?;
        }
        self.remove_all_container_meta(c)?;
        self.catalog().remove_container(name)
    }

    pub(crate) fn store_for(&self, c: &ContainerRecord) -> Result<Arc<GroupStore>> {
        self.inner.group_store(&self.group_by_id(c.group_id)?)
    }

    /// The store of a container's group, ready for a new stream: unlocked if encrypted, its
    /// data key rotated first if due.
    pub(crate) fn writable_store_for(&self, c: &ContainerRecord) -> Result<Arc<GroupStore>> {
        let record = self.group_by_id(c.group_id)?;
        let store = self.inner.group_store(&record)?;
        store.crypto()?;
        self.rotate_if_due(&record, &store)?;
        Ok(store)
    }

    /// Starts writing a stream; it becomes visible (replacing one of the same name) when
    /// [`StreamWriter::finish`] returns.
    /// A container whose streams a frontend owns is refused (see [`OwnedStreams`]).
    pub fn create_stream(&self, container: &str, name: &str) -> Result<StreamWriter> {
        check_stream_name(name)?;
        let c = self.container_record(container)?;
        check_writable(&c)?;
        owned::check_not_owned(&c)?;
        self.start_stream(c, name)
    }

    fn start_stream(&self, c: ContainerRecord, name: &str) -> Result<StreamWriter> {
        let store = self.writable_store_for(&c)?;
        StreamWriter::start(self.inner.clone(), store, c, name.to_string(), &[], None)
    }

    pub(crate) fn stream_record(&self, c: &ContainerRecord, name: &str) -> Result<StreamRecord> {
        self.catalog().stream(c.id, name)?.ok_or_else(|| Error::not_found("stream", format!("{}/{name}", c.name)))
    }

    /// Opens a finished stream for reading.
    pub fn open_stream(&self, container: &str, name: &str) -> Result<StreamReader> {
        let c = self.container_record(container)?;
        let s = self.stream_record(&c, name)?;
        let store = self.store_for(&c)?;
        let recipe = read_recipe(&recipe_path(store.recipes_dir(), s.id))?;
        StreamReader::new(store, recipe, format!("{container}/{name}"))
    }

    /// The finished streams of a container, by name.
    pub fn streams(&self, container: &str) -> Result<Vec<StreamInfo>> {
        let c = self.container_record(container)?;
        Ok(self.catalog().streams(c.id)?.iter().map(|s| StreamInfo::new(container, s)).collect())
    }

    /// One finished stream.
    pub fn stream(&self, container: &str, name: &str) -> Result<StreamInfo> {
        let c = self.container_record(container)?;
        Ok(StreamInfo::new(container, &self.stream_record(&c, name)?))
    }

    /// Deletes a stream (its space returns when the cleaner runs), or moves it to the recycle
    /// bin when the container's bin is on. A container whose streams a frontend owns is refused
    /// (see [`OwnedStreams`]).
    pub fn delete_stream(&self, container: &str, name: &str) -> Result<StreamInfo> {
        let c = self.container_record(container)?;
        owned::check_not_owned(&c)?;
        self.remove_stream(&c, name)
    }

    fn remove_stream(&self, c: &ContainerRecord, name: &str) -> Result<StreamInfo> {
        check_writable(c)?;
        let s = self.stream_record(c, name)?;
        if let Some(retention) = owned::bin_retention(c) {
            self.recycle_stream(c, &s, retention)?;
            return Ok(StreamInfo::new(&c.name, &s));
        }
        let store = self.store_for(c)?;
        self.delete_with_recipe(&store, s.id, || self.catalog().remove_stream_id(c.id, name, s.id).map(|_| ()))?;
        Ok(StreamInfo::new(&c.name, &s))
    }

    /// Deletes stream `id` for good: its recipe is first renamed to `.rcp.deleted` (durably),
    /// then `remove_entry` removes its catalog entry, then the file goes. A crash in between is
    /// finished at the next open (`finish_deletions`), so a deletion is never undone and never
    /// leaves an entry without its recipe.
    pub(crate) fn delete_with_recipe(
        &self,
        store: &GroupStore,
        id: u64,
        remove_entry: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let path = recipe_path(store.recipes_dir(), id);
        let doomed = path.with_extension("rcp.deleted");
        {
            let _guard = store.recipe_lock();
            match std::fs::rename(&path, &doomed) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("rename", &path, e)),
            }
        }
        crate::fsutil::sync_dir(store.recipes_dir())?;
        remove_entry()?;
        let _ = std::fs::remove_file(&doomed);
        Ok(())
    }

    /// Space statistics of a scope (see [`crate::stats`]).
    pub fn stats(&self, scope: &StatsScope) -> Result<Stats> {
        let groups = self.catalog().groups()?;
        let containers = self.catalog().containers()?;
        let mut stats = Stats::default();
        let (in_groups, in_containers): (Vec<&GroupRecord>, Vec<&ContainerRecord>) = match scope {
            StatsScope::System => {
                stats.scope = "system".into();
                (groups.iter().collect(), containers.iter().collect())
            }
            StatsScope::StorageGroup(name) => {
                let g =
                    groups.iter().find(|g| &g.name == name).ok_or_else(|| Error::not_found("storage group", name))?;
                stats.scope = "storage_group".into();
                stats.name = name.clone();
                (vec![g], containers.iter().filter(|c| c.group_id == g.id).collect())
            }
            StatsScope::Container(name) => {
                let c =
                    containers.iter().find(|c| &c.name == name).ok_or_else(|| Error::not_found("container", name))?;
                stats.scope = "container".into();
                stats.name = name.clone();
                (Vec::new(), vec![c])
            }
        };
        stats.storage_groups = in_groups.len() as u64;
        stats.containers = in_containers.len() as u64;
        let mut markers: HashMap<u32, Marker> = HashMap::new();
        for c in &in_containers {
            let store = self.store_for(c)?;
            let marker = match markers.entry(c.group_id) {
                std::collections::hash_map::Entry::Occupied(m) => m.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(Marker::new(store.pack_ids()?.into_iter().collect()))
                }
            };
            for s in self.catalog().streams(c.id)? {
                let recipe = match read_recipe(&recipe_path(store.recipes_dir(), s.id)) {
                    Ok(r) => r,
                    // Deleted (or replaced) since the listing.
                    Err(Error::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound
                            && self.catalog().stream(c.id, &s.name)?.is_none_or(|now| now.id != s.id) =>
                    {
                        continue
                    }
                    Err(e) => {
                        stats.unreadable_streams += 1;
                        stats.skipped_streams.push(format!("{}/{}: {e}", c.name, s.name));
                        continue;
                    }
                };
                marker.mark(&mut stats, &recipe);
            }
        }
        if in_groups.is_empty() {
            // A container's chunks may be shared: what it stores is what it references.
            stats.stored_bytes = stats.live_stored_bytes;
        } else {
            for g in in_groups {
                let store = self.inner.group_store(g)?;
                for (_, size) in store.pack_sizes()? {
                    stats.packs += 1;
                    stats.stored_bytes += size;
                }
            }
        }
        if *scope == StatsScope::System {
            let space = self.inner.reserve.info(self.dir())?;
            stats.free_bytes = Some(space.free_bytes);
            stats.reserve_bytes = Some(space.reserve_bytes);
        }
        stats.derive();
        Ok(stats)
    }
}
