//! A storage group at run time: its packs, fingerprint index, locality cache and open pack.
//!
//! Dedup lookup order (DESIGN.md): the open pack's own map, the locality cache (footers of
//! recently hit or sealed packs: the next chunks of a duplicate stream are almost always in the
//! same pack), then the index (Bloom filter first, then the mapped table), whose answer is
//! confirmed against the named pack's footer. All of this state sits behind one mutex, taken
//! once per batch of chunks, never per byte.
//!
//! Durability: records are appended to the open pack through a write buffer; a pack that
//! reaches the target size is sealed (footer and trailer) and handed to a background thread
//! that fsyncs it. [`GroupStore::make_durable`] flushes and fsyncs the open pack, waits for the
//! background syncs and fsyncs the pack directory: a stream is acknowledged only after it. Any
//! write or fsync failure poisons the group: further appends fail until the engine is reopened.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::catalog::GroupRecord;
use crate::compress::{Codec, Compression};
use crate::crypto::{EncryptionRecord, GroupCrypto, GroupKeys, Passphrase};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::fsutil::sync_dir;
use crate::index::FingerprintIndex;
use crate::pack::{self, ChunkLoc, FooterEntry, PackWriter};
use crate::space::Reserve;
use crate::write_gate::WriteGate;

/// Packs are sealed once they reach this size.
pub const PACK_TARGET_LEN: u64 = 32 << 20;
/// Environment variable that overrides [`PACK_TARGET_LEN`] (bytes, 64 KiB to 1 GiB) in builds
/// with the `fault-injection` feature: tests use small packs to exercise the cleaner.
#[cfg(feature = "fault-injection")]
pub const PACK_SIZE_ENV: &str = "QORESTOR_PACK_SIZE";

/// The pack size in effect: [`PACK_TARGET_LEN`], or in test builds `PACK_SIZE_ENV` if set to
/// a number in range.
pub fn pack_target_len() -> u64 {
    #[cfg(feature = "fault-injection")]
    if let Some(n) = std::env::var(PACK_SIZE_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|n| (64 << 10..=1 << 30).contains(n))
    {
        return n;
    }
    PACK_TARGET_LEN
}
/// Packs whose footers the locality cache keeps.
const CACHE_PACKS: usize = 32;
/// Entries of the open pack copied for predictions after one probe hit.
const OPEN_PACK_SNAPSHOT: usize = 4096;
/// Open read handles kept before the handle cache is emptied.
const MAX_OPEN_HANDLES: usize = 256;
/// The index is checkpointed after this many sealed packs (bounds recovery work).
const CHECKPOINT_EVERY: u32 = 64;

/// Fingerprint → location for the footers of recently used packs, evicted whole packs at a time.
struct LocalityCache {
    map: HashMap<Fingerprint, ChunkLoc>,
    packs: VecDeque<(u32, Arc<Vec<FooterEntry>>)>,
}

impl LocalityCache {
    fn new() -> Self {
        LocalityCache { map: HashMap::new(), packs: VecDeque::new() }
    }

    fn has_pack(&self, id: u32) -> bool {
        self.packs.iter().any(|(p, _)| *p == id)
    }

    /// Caches a pack's footer (replacing an older copy of it, so that a pack is never cached
    /// twice: removing it must remove every trace of it).
    fn insert_pack(&mut self, id: u32, entries: Vec<FooterEntry>) {
        self.remove_pack(id);
        if self.packs.len() >= CACHE_PACKS {
            if let Some((old, entries)) = self.packs.pop_front() {
                for e in entries.iter() {
                    if self.map.get(&e.fp).is_some_and(|l| l.pack == old) {
                        self.map.remove(&e.fp);
                    }
                }
            }
        }
        for e in &entries {
            self.map.entry(e.fp).or_insert(ChunkLoc { pack: id, offset: e.offset, stored_len: e.stored_len });
        }
        self.packs.push_back((id, Arc::new(entries)));
    }

    /// Drops a pack's footer from the cache.
    fn remove_pack(&mut self, id: u32) {
        let Some(at) = self.packs.iter().position(|(p, _)| *p == id) else {
            return;
        };
        if let Some((_, entries)) = self.packs.remove(at) {
            for e in entries.iter() {
                if self.map.get(&e.fp).is_some_and(|l| l.pack == id) {
                    self.map.remove(&e.fp);
                }
            }
        }
    }

    /// The chunks stored after `loc` in its pack, if the pack's footer is cached.
    fn successors(&self, loc: &ChunkLoc) -> Option<Successors> {
        let (_, entries) = self.packs.iter().find(|(p, _)| *p == loc.pack)?;
        let at = entries.binary_search_by_key(&loc.offset, |e| e.offset).ok()?;
        Some(Successors { pack: loc.pack, entries: entries.clone(), next: at + 1 })
    }
}

struct DedupState {
    index: FingerprintIndex,
    cache: LocalityCache,
    open: Option<PackWriter>,
    open_map: HashMap<Fingerprint, ChunkLoc>,
    next_pack: u32,
    sealed_since_checkpoint: u32,
    poisoned: Option<String>,
    candidates: Vec<u32>,
    /// Packs each running writer may reference (see [`WriterPin`]).
    pins: HashMap<u64, HashSet<u32>>,
    next_pin: u64,
    /// Packs the cleaner is reclaiming: lookups no longer answer with them.
    condemned: HashSet<u32>,
    /// Damaged records repair could not heal (pack, offset): never a dedup target.
    quarantine: HashSet<(u32, u32)>,
    /// Bytes of the sealed pack files (the open pack's length is added for the quota).
    sealed_bytes: u64,
    /// The first pack that received cleaner copies not indexed yet (see
    /// [`GroupStore::copies_indexed`]): checkpoints stay below it, so a crash before the
    /// copies are indexed has them indexed again at the next open.
    unindexed_since: Option<u32>,
}

impl DedupState {
    fn pin(&mut self, token: u64, pack: u32) {
        if let Some(set) = self.pins.get_mut(&token) {
            set.insert(pack);
        }
    }
}

#[derive(Default)]
struct SyncProgress {
    submitted: u64,
    done: u64,
    /// The first failure: the file and the operating system's error (kind and text).
    error: Option<(PathBuf, std::io::ErrorKind, String)>,
}

/// Background fsync of sealed packs.
struct Syncer {
    tx: Option<crossbeam_channel::Sender<(Arc<File>, PathBuf)>>,
    progress: Arc<(Mutex<SyncProgress>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    fn start() -> Self {
        let (tx, rx) = crossbeam_channel::unbounded::<(Arc<File>, PathBuf)>();
        let progress = Arc::new((Mutex::new(SyncProgress::default()), Condvar::new()));
        let p = progress.clone();
        let thread = std::thread::Builder::new()
            .name("qorestor-pack-sync".into())
            .spawn(move || {
                for (file, path) in rx {
                    let r = crate::fileio::sync_all(&file);
                    let mut g = p.0.lock();
                    g.done += 1;
                    if let Err(e) = r {
                        g.error.get_or_insert((path, e.kind(), e.to_string()));
                    }
                    p.1.notify_all();
                }
            })
            .expect("spawn pack sync thread");
        Syncer { tx: Some(tx), progress, thread: Some(thread) }
    }

    fn submit(&self, file: Arc<File>, path: PathBuf) {
        self.progress.0.lock().submitted += 1;
        if let Some(tx) = &self.tx {
            let _ = tx.send((file, path));
        }
    }

    fn submitted(&self) -> u64 {
        self.progress.0.lock().submitted
    }

    fn wait(&self, target: u64) -> Result<()> {
        let mut g = self.progress.0.lock();
        while g.done < target && g.error.is_none() {
            self.progress.1.wait(&mut g);
        }
        match &g.error {
            Some((path, kind, text)) => Err(Error::io("fsync", path, std::io::Error::new(*kind, text.clone()))),
            None => Ok(()),
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The chunks that follow a given chunk in its pack, in the order they were stored: where a
/// duplicate stream will most likely continue (see `writer`'s predictive chunking).
#[derive(Debug, Clone)]
pub struct Successors {
    pack: u32,
    entries: Arc<Vec<FooterEntry>>,
    next: usize,
}

impl Successors {
    /// The next chunk and its location, if any.
    pub fn peek(&self) -> Option<(&FooterEntry, ChunkLoc)> {
        let e = self.entries.get(self.next)?;
        Some((e, ChunkLoc { pack: self.pack, offset: e.offset, stored_len: e.stored_len }))
    }

    /// Moves past the next chunk.
    pub fn advance(&mut self) {
        self.next += 1;
    }
}

/// The result of a dedup lookup for one chunk.
pub type Lookup = Option<ChunkLoc>;

/// A storage group's engine-side state.
pub struct GroupStore {
    record: GroupRecord,
    /// The compression policy for new chunks (it can be changed while the group is open).
    compression: Mutex<Compression>,
    packs_dir: PathBuf,
    recipes_dir: PathBuf,
    state: Mutex<DedupState>,
    handles: Mutex<HashMap<u32, Arc<File>>>,
    syncer: Syncer,
    /// Records listed by a footer but unreadable when the group was opened (pack, offset):
    /// quarantined in memory from the start.
    unreadable: Vec<(u32, u32)>,
    /// Packs left unsealed at open because the disk was full ([`pack::PackState::Unsealed`]);
    /// [`GroupStore::seal_open`] seals them once there is space.
    unsealed: Mutex<Vec<u32>>,
    /// Packs are sealed at this size.
    pack_target: u64,
    /// Quota on the group's pack bytes (it can be changed while the group is open).
    quota: Mutex<Option<u64>>,
    /// Held while a recipe file is replaced or removed, so that the cleaner never puts back
    /// the recipe of a stream deleted meanwhile.
    recipe_lock: Mutex<()>,
    /// How chunks are named, cut and sealed (see [`crate::crypto`]).
    crypto: Mutex<CryptoState>,
    /// The space reserve new data must leave free (see [`crate::space`]).
    reserve: Arc<Reserve>,
    /// The engine's write gate, passed by every batch append.
    gate: Arc<WriteGate>,
}

/// Whether a group's chunks can be named and sealed now.
enum CryptoState {
    /// Not encrypted, or encrypted and unlocked.
    Ready(GroupCrypto),
    /// Encrypted; `wrong` when the passphrase given did not unlock it.
    Locked { wrong: bool },
}

/// A running writer's registration: every pack a lookup hands to the writer, and every pack it
/// appends to, is recorded under the token until the writer's stream is in the catalog (or
/// abandoned). The cleaner never deletes a pinned pack (see `cleaner`).
#[derive(Debug, Clone)]
pub struct WriterPin {
    token: u64,
}

/// A chunk ready to be appended: fingerprint, raw length, codec and payload.
pub struct NewChunk<'a> {
    /// Fingerprint of the raw bytes.
    pub fp: Fingerprint,
    /// Raw length.
    pub raw_len: u32,
    /// Payload encoding.
    pub codec: Codec,
    /// Payload bytes.
    pub payload: &'a [u8],
}

impl GroupStore {
    /// Opens a group's directory (creating it), recovering torn packs and re-indexing packs
    /// written since the index's last checkpoint. New data stored in it leaves `reserve` free
    /// and passes `gate` (closed while a repair runs).
    pub(crate) fn open(dir: &Path, record: GroupRecord, reserve: Arc<Reserve>, gate: Arc<WriteGate>) -> Result<Self> {
        let packs_dir = dir.join("packs");
        let recipes_dir = dir.join("recipes");
        for d in [dir, &packs_dir, &recipes_dir] {
            crate::fsutil::create_dir_durable(d)?;
        }
        let mut index = FingerprintIndex::open(&dir.join("fp.idx"))?;
        let mut ids = list_packs(&packs_dir)?;
        ids.sort_unstable();
        // Packs from the watermark on may be missing from the index; any pack without a valid
        // trailer was being written at a crash and gets its torn tail dropped and sealed.
        let watermark = index.watermark();
        let mut unreadable = Vec::new();
        let mut unsealed = Vec::new();
        for &id in &ids {
            let path = pack::pack_path(&packs_dir, id);
            let len = std::fs::metadata(&path).map_err(|e| Error::io("stat", &path, e))?.len();
            if len < crate::format::PACK_HEADER_LEN as u64 {
                // Created but never written: nothing in it was ever acknowledged.
                std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
                continue;
            }
            if id < watermark && pack::is_sealed(&path)? {
                continue;
            }
            let (entries, state) = pack::recover(&path)?;
            if state == pack::PackState::Unsealed {
                unsealed.push(id);
            }
            // A damaged pack is left untouched for verify and repair (which check it again).
            if let pack::PackState::Damaged(_) = state {
                // Records the footer lists but that did not survive are never a dedup target.
                if let Ok(footer) = File::open(&path)
                    .map_err(|e| Error::io("open", &path, e))
                    .and_then(|f| pack::read_footer(&f, &path))
                {
                    unreadable.extend(footer.iter().filter(|e| !entries.contains(e)).map(|e| (id, e.offset)));
                }
            }
            for e in entries {
                index.insert(&e.fp, id)?;
            }
        }
        ids.retain(|&id| pack::pack_path(&packs_dir, id).exists());
        // Pack ids are never reused: the watermark is above every pack the cleaner deleted.
        let next_pack = ids.last().map_or(1, |m| m + 1).max(watermark);
        index.checkpoint(next_pack)?;
        let quota = record.quota;
        let record_encrypted = record.encryption.is_some();
        let sealed_bytes =
            ids.iter().filter_map(|&id| std::fs::metadata(pack::pack_path(&packs_dir, id)).ok()).map(|m| m.len()).sum();
        Ok(GroupStore {
            compression: Mutex::new(record.compression),
            record,
            packs_dir,
            recipes_dir,
            state: Mutex::new(DedupState {
                index,
                cache: LocalityCache::new(),
                open: None,
                open_map: HashMap::new(),
                next_pack,
                sealed_since_checkpoint: 0,
                poisoned: None,
                candidates: Vec::new(),
                pins: HashMap::new(),
                next_pin: 1,
                condemned: HashSet::new(),
                quarantine: unreadable.iter().copied().collect(),
                sealed_bytes,
                unindexed_since: None,
            }),
            quota: Mutex::new(quota),
            recipe_lock: Mutex::new(()),
            pack_target: pack_target_len(),
            handles: Mutex::new(HashMap::new()),
            syncer: Syncer::start(),
            unreadable,
            unsealed: Mutex::new(unsealed),
            crypto: Mutex::new(if record_encrypted {
                CryptoState::Locked { wrong: false }
            } else {
                CryptoState::Ready(GroupCrypto::default())
            }),
            reserve,
            gate,
        })
    }

    /// How the group names, cuts and seals chunks; for an encrypted group that has not been
    /// unlocked, [`Error::PassphraseRequired`] or [`Error::WrongPassphrase`].
    pub fn crypto(&self) -> Result<GroupCrypto> {
        match &*self.crypto.lock() {
            CryptoState::Ready(c) => Ok(c.clone()),
            CryptoState::Locked { wrong: false } => Err(Error::PassphraseRequired { group: self.record.name.clone() }),
            CryptoState::Locked { wrong: true } => Err(Error::WrongPassphrase { group: self.record.name.clone() }),
        }
    }

    /// Whether the group is encrypted but not unlocked.
    pub(crate) fn is_locked(&self) -> bool {
        matches!(*self.crypto.lock(), CryptoState::Locked { .. })
    }

    /// Unlocks an encrypted group with `pass` (its current encryption record is `enc`). A
    /// wrong passphrase leaves it locked, remembered as wrong, and is an error.
    pub(crate) fn unlock(&self, enc: &EncryptionRecord, pass: &Passphrase) -> Result<()> {
        match GroupKeys::unlock(&self.record.name, enc, pass) {
            Ok(keys) => {
                self.set_crypto(GroupCrypto::with_keys(Arc::new(keys)));
                Ok(())
            }
            Err(e @ Error::WrongPassphrase { .. }) => {
                *self.crypto.lock() = CryptoState::Locked { wrong: true };
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Installs an encrypted group's unlocked keys.
    pub(crate) fn set_crypto(&self, crypto: GroupCrypto) {
        *self.crypto.lock() = CryptoState::Ready(crypto);
    }

    /// The group's catalog record as it was when the group was opened (name, id and chunking
    /// never change; see [`GroupStore::compression`] for the current policy).
    pub fn record(&self) -> &GroupRecord {
        &self.record
    }

    /// The compression policy for chunks stored from now on.
    pub fn compression(&self) -> Compression {
        *self.compression.lock()
    }

    /// Changes the compression policy for streams started from now on (stored chunks keep
    /// their encoding; every chunk records its own codec).
    pub fn set_compression(&self, c: Compression) {
        *self.compression.lock() = c;
    }

    /// Changes the quota on the group's pack bytes.
    pub fn set_quota(&self, quota: Option<u64>) {
        *self.quota.lock() = quota;
    }

    /// The directory of recipes.
    pub fn recipes_dir(&self) -> &Path {
        &self.recipes_dir
    }

    fn handle(&self, id: u32) -> Result<Arc<File>> {
        let mut h = self.handles.lock();
        if let Some(f) = h.get(&id) {
            return Ok(f.clone());
        }
        if h.len() >= MAX_OPEN_HANDLES {
            h.clear();
        }
        let path = pack::pack_path(&self.packs_dir, id);
        let f = Arc::new(File::open(&path).map_err(|e| Error::io("open", &path, e))?);
        h.insert(id, f.clone());
        Ok(f)
    }

    fn lookup_locked(&self, st: &mut DedupState, fp: &Fingerprint) -> Lookup {
        if let Some(l) = st.open_map.get(fp) {
            return Some(*l);
        }
        // (A condemned pack is never a dedup target, even if some path left it cached.)
        if let Some(l) = st.cache.map.get(fp).filter(|l| !st.condemned.contains(&l.pack)) {
            return Some(*l);
        }
        let mut candidates = std::mem::take(&mut st.candidates);
        st.index.lookup(fp, &mut candidates);
        let mut found = None;
        for &id in &candidates {
            if st.open.as_ref().is_some_and(|o| o.id() == id) || st.cache.has_pack(id) || st.condemned.contains(&id) {
                continue;
            }
            let mut entries =
                match self.handle(id).and_then(|f| pack::read_footer(&f, &pack::pack_path(&self.packs_dir, id))) {
                    Ok(entries) => entries,
                    // A stale slot: its pack was deleted (a crash came between the unlink and the
                    // index update). Nothing to cache: the id may be given to a new pack later.
                    Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => continue,
                    // A pack that cannot be read is cached as empty: the chunk is stored again.
                    Err(_) => Vec::new(),
                };
            if !st.quarantine.is_empty() {
                entries.retain(|e| !st.quarantine.contains(&(id, e.offset)));
            }
            st.cache.insert_pack(id, entries);
            if let Some(l) = st.cache.map.get(fp) {
                found = Some(*l);
                break;
            }
        }
        st.candidates = candidates;
        found
    }

    /// Registers a writer: lookups and appends made with its pin keep their packs safe from
    /// the cleaner until [`GroupStore::unpin`].
    pub fn pin_writer(&self) -> WriterPin {
        let mut st = self.state.lock();
        let token = st.next_pin;
        st.next_pin += 1;
        st.pins.insert(token, HashSet::new());
        WriterPin { token }
    }

    /// Ends a writer's registration (its stream is in the catalog, or it was abandoned).
    pub fn unpin(&self, pin: &WriterPin) {
        self.state.lock().pins.remove(&pin.token);
    }

    /// Records that a writer holds references into these packs (chunks it inherits without a
    /// lookup, e.g. from another stream's recipe). Returns false, pinning nothing, if one of
    /// them is being reclaimed or is gone: the caller then reads the recipe again (the cleaner
    /// rewrote it) and retries.
    pub fn pin_packs(&self, pin: &WriterPin, packs: &[u32]) -> bool {
        let mut st = self.state.lock();
        if packs.iter().any(|p| st.condemned.contains(p) || !self.pack_path(*p).exists()) {
            return false;
        }
        for &p in packs {
            st.pin(pin.token, p);
        }
        true
    }

    /// Looks up a batch of fingerprints under one lock, pinning the packs found.
    pub fn lookup_batch(&self, pin: &WriterPin, fps: &[Fingerprint], out: &mut Vec<Lookup>) {
        let mut st = self.state.lock();
        out.clear();
        for fp in fps {
            let l = self.lookup_locked(&mut st, fp);
            if let Some(l) = l {
                st.pin(pin.token, l.pack);
            }
            out.push(l);
        }
    }

    /// Finds where a chunk is stored and, when its pack's footer is cached, the chunks stored
    /// after it.
    /// The pack is pinned for the writer (the successors are in the same pack).
    pub fn locate_with_successors(&self, pin: &WriterPin, fp: &Fingerprint) -> Option<(ChunkLoc, Option<Successors>)> {
        let mut st = self.state.lock();
        let loc = self.lookup_locked(&mut st, fp)?;
        st.pin(pin.token, loc.pack);
        let successors = match st.open.as_ref().filter(|o| o.id() == loc.pack) {
            // The open pack grows: follow a bounded snapshot of what it holds now.
            Some(open) => {
                let entries = open.entries();
                entries.binary_search_by_key(&loc.offset, |e| e.offset).ok().map(|at| {
                    let rest = &entries[at + 1..entries.len().min(at + 1 + OPEN_PACK_SNAPSHOT)];
                    Successors { pack: loc.pack, entries: Arc::new(rest.to_vec()), next: 0 }
                })
            }
            None => st.cache.successors(&loc),
        };
        Some((loc, successors))
    }

    /// Finds where a chunk is stored now.
    pub fn locate(&self, fp: &Fingerprint) -> Lookup {
        let mut st = self.state.lock();
        self.lookup_locked(&mut st, fp)
    }

    /// Resolves a batch in stream order under one lock: known chunks (`None` in `new`) are
    /// looked up again only if the worker found nothing, new ones are appended unless another
    /// writer stored them meanwhile. Returns each chunk's location and whether it was appended.
    /// Every pack named in `out` is pinned for the writer.
    pub fn store_batch(
        &self,
        pin: &WriterPin,
        chunks: &[(Lookup, Option<NewChunk<'_>>)],
        out: &mut Vec<(ChunkLoc, bool)>,
    ) -> Result<()> {
        let _passing = self.gate.pass();
        let quota = *self.quota.lock();
        let mut st = self.state.lock();
        out.clear();
        if !chunks.is_empty() {
            self.reserve.admit(&self.packs_dir, Self::space_needed(&st, chunks))?;
        }
        for (known, new) in chunks {
            if let Some(l) = known {
                out.push((*l, false));
                continue;
            }
            let new = new.as_ref().expect("a chunk that was not found carries its payload");
            if let Some(l) = self.lookup_locked(&mut st, &new.fp) {
                st.pin(pin.token, l.pack);
                out.push((l, false));
                continue;
            }
            if let Some(quota) = quota {
                let used = st.sealed_bytes
                    + st.open.as_ref().map_or(crate::format::PACK_HEADER_LEN as u64, |o| o.len())
                    + (crate::format::RECORD_HEADER_LEN + new.payload.len()) as u64;
                if used > quota {
                    let name = self.record.name.clone();
                    return Err(Error::QuotaExceeded { what: "storage group", name, quota, used });
                }
            }
            let loc = self.append_locked(&mut st, new, true)?;
            st.pin(pin.token, loc.pack);
            out.push((loc, true));
        }
        Ok(())
    }

    /// An upper bound of the filesystem space that storing a batch takes: its new records and
    /// their footer entries, what the open pack has not written yet (or a new pack's header and
    /// trailer), the batch's recipe entries, and a bigger fingerprint table if the new chunks
    /// make the index grow (it is allocated for real before it is mapped).
    fn space_needed(st: &DedupState, chunks: &[(Lookup, Option<NewChunk<'_>>)]) -> u64 {
        use crate::format::{FOOTER_ENTRY_LEN, PACK_HEADER_LEN, RECIPE_ENTRY_LEN, RECORD_HEADER_LEN, TRAILER_LEN};
        let new = chunks.iter().filter_map(|(_, n)| n.as_ref());
        let records: u64 = new.clone().map(|n| (RECORD_HEADER_LEN + FOOTER_ENTRY_LEN + n.payload.len()) as u64).sum();
        let open = st.open.as_ref().map_or((PACK_HEADER_LEN + TRAILER_LEN) as u64, |o| o.space_still_needed());
        let recipe = (chunks.len() * RECIPE_ENTRY_LEN) as u64;
        records + open + recipe + st.index.growth_bytes(new.count() as u64)
    }

    /// Makes the group refuse further appends after `e`. The error returned for the failing
    /// operation itself is `e` when it is [`crate::ErrorKind::OutOfSpace`] (so that the write which
    /// found the disk full says so: a tape drive reports it as the end of the volume), else
    /// [`Error::Poisoned`].
    fn poison(&self, st: &mut DedupState, e: Error) -> Error {
        st.poisoned.get_or_insert_with(|| e.to_string());
        match e {
            Error::OutOfSpace { .. } => e,
            _ => Error::Poisoned { group: self.record.name.clone(), reason: e.to_string() },
        }
    }

    fn check_poison(&self, st: &DedupState) -> Result<()> {
        match &st.poisoned {
            Some(r) => Err(Error::Poisoned { group: self.record.name.clone(), reason: r.clone() }),
            None => Ok(()),
        }
    }

    /// Appends a chunk to the open pack and indexes it, unless `index` is false (a copy the
    /// cleaner makes: its old index slot is pointed at the copy when the old pack is deleted, see
    /// [`GroupStore::delete_packs`], so the table does not grow during compaction).
    fn append_locked(&self, st: &mut DedupState, c: &NewChunk<'_>, index: bool) -> Result<ChunkLoc> {
        self.check_poison(st)?;
        let full = st.open.as_ref().is_some_and(|o| o.len() >= self.pack_target || !o.fits(c.payload.len()));
        if full {
            self.seal_locked(st)?;
        }
        if st.open.is_none() {
            let id = st.next_pack;
            let w = PackWriter::create(&self.packs_dir, self.record.id, id).map_err(|e| self.poison(st, e))?;
            st.next_pack += 1;
            st.open = Some(w);
        }
        let open = st.open.as_mut().expect("opened above");
        let id = open.id();
        let loc = match open.append(&c.fp, c.raw_len, c.codec, c.payload) {
            Ok(l) => l,
            Err(e) => return Err(self.poison(st, e)),
        };
        st.open_map.insert(c.fp, loc);
        if index {
            st.index.insert(&c.fp, id)?;
        } else {
            st.unindexed_since.get_or_insert(id);
        }
        Ok(loc)
    }

    fn seal_locked(&self, st: &mut DedupState) -> Result<()> {
        let Some(open) = st.open.take() else {
            return Ok(());
        };
        let id = open.id();
        let sealed_len =
            open.len() + (open.entries().len() * crate::format::FOOTER_ENTRY_LEN + crate::format::TRAILER_LEN) as u64;
        let (file, path, entries) = match open.seal() {
            Ok(x) => x,
            Err(e) => return Err(self.poison(st, e)),
        };
        st.open_map.clear();
        st.sealed_bytes += sealed_len;
        if !st.condemned.contains(&id) {
            st.cache.insert_pack(id, entries);
        }
        self.syncer.submit(file, path);
        st.sealed_since_checkpoint += 1;
        if st.sealed_since_checkpoint >= CHECKPOINT_EVERY {
            st.sealed_since_checkpoint = 0;
            // Packs below the watermark are not checked again at open: they must be on disk.
            let target = self.syncer.submitted();
            if let Err(e) = self.syncer.wait(target) {
                return Err(self.poison(st, e));
            }
            let watermark = Self::safe_watermark(st);
            st.index.checkpoint(watermark)?;
        }
        Ok(())
    }

    /// Makes every chunk appended so far durable: flush and fsync the open pack, wait for the
    /// background syncs of sealed packs, fsync the pack directory.
    pub fn make_durable(&self) -> Result<()> {
        let (file, target) = {
            let mut st = self.state.lock();
            self.check_poison(&st)?;
            let flushed = match st.open.as_mut() {
                Some(o) => o.flush().map(|_| Some(o.file().clone())),
                None => Ok(None),
            };
            let file = flushed.map_err(|e| self.poison(&mut st, e))?;
            (file, self.syncer.submitted())
        };
        let synced = match file {
            Some(f) => crate::fileio::sync_data(&f).map_err(|e| Error::io("fsync", &self.packs_dir, e)),
            None => Ok(()),
        };
        let result = synced.and_then(|_| self.syncer.wait(target)).and_then(|_| sync_dir(&self.packs_dir));
        if let Err(e) = result {
            let mut st = self.state.lock();
            return Err(self.poison(&mut st, e));
        }
        Ok(())
    }

    /// Hands the open pack's buffered records to the operating system (no fsync): a process
    /// killed afterwards leaves them for recovery to find (replication resumes from them).
    pub fn flush_open(&self) -> Result<()> {
        let mut st = self.state.lock();
        let flushed = st.open.as_mut().map_or(Ok(()), |o| o.flush());
        flushed.map_err(|e| self.poison(&mut st, e))
    }

    /// Seals the open pack, if any, and the packs a full disk left unsealed at open (the
    /// cleaner reclaims sealed packs only).
    pub fn seal_open(&self) -> Result<()> {
        let mut st = self.state.lock();
        self.check_poison(&st)?;
        self.seal_locked(&mut st)?;
        drop(st);
        let mut unsealed = self.unsealed.lock();
        let mut still = Vec::new();
        for &id in unsealed.iter() {
            if pack::recover(&self.pack_path(id))?.1 == pack::PackState::Unsealed {
                still.push(id);
            }
        }
        *unsealed = still;
        Ok(())
    }

    /// The id of the pack being appended to, if one is open.
    pub fn open_pack(&self) -> Option<u32> {
        self.state.lock().open.as_ref().map(|o| o.id())
    }

    /// Ids of the pack files in the group, ascending.
    pub fn pack_ids(&self) -> Result<Vec<u32>> {
        let mut ids = list_packs(&self.packs_dir)?;
        ids.sort_unstable();
        Ok(ids)
    }

    /// The path of pack `id`.
    pub fn pack_path(&self, id: u32) -> PathBuf {
        pack::pack_path(&self.packs_dir, id)
    }

    /// Reads the footer of sealed pack `id`.
    pub fn pack_footer(&self, id: u32) -> Result<Vec<FooterEntry>> {
        pack::read_footer(&*self.handle(id)?, &self.pack_path(id))
    }

    /// Condemns packs for reclamation: from now on lookups never answer with them. Packs that
    /// a running writer has pinned are left alone. Returns the packs condemned.
    pub fn condemn(&self, packs: &[u32]) -> Vec<u32> {
        let mut st = self.state.lock();
        let mut out = Vec::with_capacity(packs.len());
        for &p in packs {
            if st.pins.values().any(|set| set.contains(&p)) || st.open.as_ref().is_some_and(|o| o.id() == p) {
                continue;
            }
            st.condemned.insert(p);
            st.cache.remove_pack(p);
            out.push(p);
        }
        out
    }

    /// Ends the condemnation of packs that are kept after all.
    pub fn release(&self, packs: &[u32]) {
        let mut st = self.state.lock();
        for p in packs {
            st.condemned.remove(p);
        }
    }

    /// Stores chunks the cleaner moves: each one reuses a copy stored outside the condemned
    /// packs if there is one, else is appended (not indexed yet: see [`GroupStore::delete_packs`]).
    /// Returns the new locations and whether each was appended.
    pub fn relocate(&self, chunks: &[NewChunk<'_>]) -> Result<Vec<(ChunkLoc, bool)>> {
        let mut st = self.state.lock();
        let mut out = Vec::with_capacity(chunks.len());
        for c in chunks {
            let placed = match self.lookup_locked(&mut st, &c.fp) {
                Some(l) => (l, false),
                None => (self.append_locked(&mut st, c, false)?, true),
            };
            out.push(placed);
        }
        Ok(out)
    }

    /// Every cleaner copy that matters is indexed now (by [`GroupStore::delete_packs`]; copies
    /// of packs that were kept stay unindexed: the kept pack's own slot finds the chunk).
    pub fn copies_indexed(&self) {
        self.state.lock().unindexed_since = None;
    }

    /// Deletes packs no recipe references any more: the files are unlinked (the directory is
    /// synced); then, in the index, the slots of moved chunks, `(fingerprint, old pack, new
    /// pack)` each, are pointed at their copies and the other slots of the deleted packs are
    /// removed; cached footers are dropped.
    pub fn delete_packs(&self, packs: &[u32], moved: &[(Fingerprint, u32, u32)]) -> Result<()> {
        let mut freed = 0;
        for &p in packs {
            let path = self.pack_path(p);
            freed += std::fs::metadata(&path).map_or(0, |m| m.len());
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", &path, e)),
            }
        }
        sync_dir(&self.packs_dir)?;
        let gone: HashSet<u32> = packs.iter().copied().collect();
        {
            let mut handles = self.handles.lock();
            handles.retain(|id, _| !gone.contains(id));
        }
        let mut st = self.state.lock();
        st.sealed_bytes = st.sealed_bytes.saturating_sub(freed);
        for p in packs {
            st.condemned.remove(p);
            st.cache.remove_pack(*p);
        }
        for (fp, from, to) in moved {
            st.index.repoint(fp, *from, *to)?;
        }
        st.index.remove_packs(|id| gone.contains(&id));
        let watermark = Self::safe_watermark(&st);
        st.index.checkpoint(watermark)
    }

    /// Sets the damaged records that lookups must never answer with (repair's quarantine).
    pub fn set_quarantine(&self, locs: impl IntoIterator<Item = (u32, u32)>) {
        let mut st = self.state.lock();
        st.quarantine = locs.into_iter().chain(self.unreadable.iter().copied()).collect();
        let packs: HashSet<u32> = st.quarantine.iter().map(|(p, _)| *p).collect();
        for p in packs {
            st.cache.remove_pack(p);
        }
    }

    /// Replaces the fingerprint index with one built from `entries` (fingerprint, pack): the
    /// intact records of every pack, as repair found them.
    pub fn rebuild_index(&self, entries: &[(Fingerprint, u32)]) -> Result<()> {
        let mut st = self.state.lock();
        st.index.retain_packs(|_| false)?;
        for (fp, pack) in entries {
            st.index.insert(fp, *pack)?;
        }
        if let Some(open) = st.open.as_ref() {
            let id = open.id();
            let fps: Vec<Fingerprint> = open.entries().iter().map(|e| e.fp).collect();
            for fp in fps {
                st.index.insert(&fp, id)?;
            }
        }
        st.cache = LocalityCache::new();
        let watermark = Self::safe_watermark(&st);
        st.index.checkpoint(watermark)
    }

    /// Whether the index answers `fp` with `pack` among its candidates.
    pub fn index_has(&self, fp: &Fingerprint, pack: u32) -> bool {
        self.index_candidates(fp).contains(&pack)
    }

    /// The packs the index names for `fp`.
    pub fn index_candidates(&self, fp: &Fingerprint) -> Vec<u32> {
        let st = self.state.lock();
        let mut out = Vec::new();
        st.index.lookup(fp, &mut out);
        out
    }

    /// The watermark a checkpoint may record now: the open pack (if any) is still growing, so
    /// it and later packs must be indexed again after a crash.
    /// Packs holding cleaner copies that are not indexed yet are not covered either.
    fn safe_watermark(st: &DedupState) -> u32 {
        let open = st.open.as_ref().map_or(st.next_pack, |o| o.id());
        open.min(st.unindexed_since.unwrap_or(u32::MAX))
    }

    /// The pack size in effect (packs are sealed once they reach it).
    pub fn pack_target(&self) -> u64 {
        self.pack_target
    }

    /// The directory of the group's pack files.
    pub fn packs_dir(&self) -> &Path {
        &self.packs_dir
    }

    /// Held while a recipe file is replaced or removed.
    pub fn recipe_lock(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.recipe_lock.lock()
    }

    /// Reads `len` bytes of pack `pack` at `offset` into `buf`.
    pub fn read_at(&self, pack: u32, offset: u64, buf: &mut [u8]) -> Result<()> {
        let f = self.handle(pack)?;
        f.read_exact_at(buf, offset).map_err(|e| Error::io("read", pack::pack_path(&self.packs_dir, pack), e))
    }

    /// Sealed and open pack files with their sizes.
    pub fn pack_sizes(&self) -> Result<Vec<(u32, u64)>> {
        let mut out = Vec::new();
        for id in list_packs(&self.packs_dir)? {
            let p = pack::pack_path(&self.packs_dir, id);
            if let Ok(m) = std::fs::metadata(&p) {
                out.push((id, m.len()));
            }
        }
        Ok(out)
    }

    /// Seals the open pack, waits for syncs and checkpoints the index (on close).
    fn close(&self) -> Result<()> {
        let mut st = self.state.lock();
        if st.poisoned.is_some() {
            return Ok(());
        }
        self.seal_locked(&mut st)?;
        let target = self.syncer.submitted();
        self.syncer.wait(target)?;
        sync_dir(&self.packs_dir)?;
        let watermark = Self::safe_watermark(&st);
        st.index.checkpoint(watermark)
    }
}

impl Drop for GroupStore {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            eprintln!("qorestor: closing storage group {:?}: {e}", self.record.name);
        }
    }
}

fn list_packs(dir: &Path) -> Result<Vec<u32>> {
    let mut ids = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        if let Some(id) = entry.file_name().to_str().and_then(pack::parse_pack_name) {
            ids.push(id);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fp: u8, offset: u32) -> FooterEntry {
        FooterEntry { fp: Fingerprint([fp; 32]), offset, stored_len: 10, raw_len: 10, codec: Codec::Raw }
    }

    /// A pack cached twice (once empty, as a stale index slot used to leave it, then with its
    /// real footer) is removed whole: the cleaner relies on this when it condemns a pack.
    #[test]
    fn a_pack_cached_again_is_removed_whole() {
        let mut c = LocalityCache::new();
        c.insert_pack(7, Vec::new());
        c.insert_pack(7, vec![entry(1, 32), entry(2, 90)]);
        assert_eq!(c.packs.len(), 1);
        assert_eq!(c.map.get(&Fingerprint([1; 32])).map(|l| l.pack), Some(7));
        c.remove_pack(7);
        assert!(c.map.is_empty() && c.packs.is_empty() && !c.has_pack(7));
    }

    /// Eviction and removal only drop the map entries that point at the pack removed.
    #[test]
    fn shared_fingerprints_stay_with_the_pack_still_cached() {
        let mut c = LocalityCache::new();
        c.insert_pack(1, vec![entry(1, 32)]);
        c.insert_pack(2, vec![entry(1, 32), entry(2, 90)]);
        c.remove_pack(2);
        assert_eq!(c.map.get(&Fingerprint([1; 32])).map(|l| l.pack), Some(1));
        assert!(!c.map.contains_key(&Fingerprint([2; 32])));
        for id in 10..10 + CACHE_PACKS as u32 {
            c.insert_pack(id, vec![entry(id as u8, 32)]);
        }
        assert!(!c.has_pack(1) && !c.map.contains_key(&Fingerprint([1; 32])));
        assert_eq!(c.packs.len(), CACHE_PACKS);
    }
}
