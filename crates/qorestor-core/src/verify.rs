//! Verify and repair (QoreStor's verify scans, repair and quarantine).
//!
//! # Checks
//! - **Data** (`VerifyScope::Data`): every record of every pack is read again: header, CRC,
//!   decompression and the BLAKE3 of the raw bytes against the fingerprint. A pack whose footer
//!   cannot be read is scanned from its header (the records before the first bad one count as
//!   intact). Then every recipe is read, and each stream that names a damaged or missing record
//!   is damaged.
//! - **Metadata** (`VerifyScope::Metadata`): every catalog stream has a readable recipe that
//!   names it and agrees with the entry (length, chunk count); every location a recipe names is
//!   a record of its pack with that fingerprint; every intact record is in the fingerprint
//!   index; recipes that no catalog entry names are counted.
//!
//! # Repair
//! 1. A damaged record is healed from any other intact record with the same fingerprint: the
//!    recipes that name it are rewritten (atomically) to the intact copy.
//! 2. A damaged record with no intact copy is quarantined (persisted in the catalog): lookups
//!    never answer with it, so the next backup of the same data stores a fresh copy, which a
//!    later repair then heals from. The streams that name it are reported as losing data; their
//!    other bytes stay readable. Nothing is deleted.
//! 3. The fingerprint index is rebuilt from the intact records of all packs.
//! 4. A pack whose footer is damaged but whose records are all intact gets its footer rebuilt.
//! 5. Catalog entries are corrected from their recipes; a recipe no entry names (an orphan:
//!    its writer died between publishing the recipe and the entry, or the entry was lost) gets
//!    its entry back when its container exists and the name is free. A deleted stream's recipe
//!    is removed before its entry, so a deletion is never undone.
//!
//! Repair never deletes a chunk because an index or a cache says so: only recipes are changed,
//! and only to point at records verified intact in this run.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::catalog::{GroupRecord, StreamRecord};
use crate::cleaner::replace_recipe;
use crate::crypto::GroupCrypto;
use crate::engine::{now_secs, Engine};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::group::GroupStore;
use crate::pack::{self, decode_chunk, ChunkLoc, FooterEntry};
use crate::progress::Progress;
use crate::recipe::{read_recipe, recipe_path, Recipe};

/// What verify checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyScope {
    /// Pack records (and the streams they belong to).
    Data,
    /// Catalog, recipes and index.
    Metadata,
    /// Both.
    All,
}

impl VerifyScope {
    fn data(self) -> bool {
        matches!(self, VerifyScope::Data | VerifyScope::All)
    }

    fn metadata(self) -> bool {
        matches!(self, VerifyScope::Metadata | VerifyScope::All)
    }
}

/// Options of a verify run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    /// What to check.
    pub scope: VerifyScope,
    /// Heal, quarantine and rebuild (see the module documentation).
    pub repair: bool,
}

/// A damaged record that repair could not heal, kept in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedChunk {
    /// Pack id.
    pub pack: u32,
    /// Record offset.
    pub offset: u32,
    /// Fingerprint (hex).
    pub fingerprint: String,
    /// When it was quarantined, seconds since the Unix epoch.
    pub since: u64,
}

/// The catalog key of a storage group's quarantine list.
pub(crate) fn quarantine_key(group_id: u32) -> String {
    format!("quarantine/{group_id}")
}

/// What verify found (and repair did).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// `data`, `metadata` or `all`.
    pub scope: String,
    /// Whether repair ran.
    pub repair: bool,
    /// Packs checked.
    pub packs_checked: u64,
    /// Records checked (data scope: decoded and hashed).
    pub chunks_checked: u64,
    /// Pack bytes read.
    pub bytes_checked: u64,
    /// Damaged records found (not counting those quarantined by an earlier repair).
    pub damaged_chunks: u64,
    /// Damaged records an earlier repair quarantined (no longer damage to report unless a
    /// stream still names them).
    pub known_quarantined: u64,
    /// Damaged packs, as `GROUP pack ID: what is wrong`.
    pub damaged_packs: Vec<String>,
    /// Recipes checked.
    pub recipes_checked: u64,
    /// Streams that name damaged or missing data, `CONTAINER/STREAM` (before any repair).
    pub damaged_streams: Vec<String>,
    /// What is wrong with the damaged references (the first 100): stream, chunk, location, why.
    pub damaged_references: Vec<String>,
    /// Damaged streams that repair made whole again.
    pub healed_streams: Vec<String>,
    /// Streams still damaged at the end (losing data), `CONTAINER/STREAM`.
    pub lost_streams: Vec<String>,
    /// Damaged records healed from another intact copy.
    pub healed_chunks: u64,
    /// Damaged records quarantined (no intact copy).
    pub quarantined_chunks: u64,
    /// Stored fingerprints the fingerprint index cannot find (they are stored again instead of
    /// deduplicated; not damage). Repair rebuilds the index.
    pub index_missing: u64,
    /// Recipes that no catalog entry names: streams whose writer died between publishing the
    /// recipe and the catalog entry (never acknowledged), or entries lost. Not damage.
    pub orphan_recipes: u64,
    /// Streams repair brought back from orphan recipes (`CONTAINER/STREAM`).
    pub restored_streams: Vec<String>,
    /// Catalog rows repair put back from their redundant records (a rebuilt catalog, or one
    /// that had lost changes): `storage group NAME`, `container NAME`, `stream C/S`...
    #[serde(default)]
    pub catalog_restored: Vec<String>,
    /// What repair could not restore to the catalog (an unreadable record of a row the catalog
    /// lacks too). Empty when everything came back.
    #[serde(default)]
    pub catalog_not_restored: Vec<String>,
    /// Other findings, one sentence each.
    pub problems: Vec<String>,
    /// Findings of `problems` that repair fixed.
    pub fixed: Vec<String>,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl VerifyReport {
    /// Whether damage remains: damaged streams or packs, or problems, not all fixed.
    pub fn damage_remains(&self) -> bool {
        if self.repair {
            !self.lost_streams.is_empty()
                || self.problems.len() > self.fixed.len()
                || !self.catalog_not_restored.is_empty()
        } else {
            !self.damaged_streams.is_empty() || !self.damaged_packs.is_empty() || !self.problems.is_empty()
        }
    }
}

/// The records of one pack as verify found them.
struct PackRecords {
    entries: Vec<FooterEntry>,
    /// Offsets of entries that failed the check.
    bad: HashSet<u32>,
    /// Footer unreadable (entries come from a scan).
    footer_damaged: bool,
}

impl PackRecords {
    fn entry(&self, offset: u32) -> Option<&FooterEntry> {
        let i = self.entries.binary_search_by_key(&offset, |e| e.offset).ok()?;
        Some(&self.entries[i])
    }

    fn intact(&self, offset: u32, fp: &Fingerprint) -> bool {
        self.entry(offset).is_some_and(|e| e.fp == *fp) && !self.bad.contains(&offset)
    }
}

/// Reads (and, for the data scope, decodes and hashes) every record of every pack.
fn check_packs(
    store: &GroupStore,
    data: bool,
    quarantined: &HashSet<(u32, u32)>,
    report: &mut VerifyReport,
    progress: &dyn Progress,
) -> Result<HashMap<u32, PackRecords>> {
    let group = &store.record().name;
    // Decoding an encrypted group's records needs its keys (a clear error without them).
    let crypto = if data { store.crypto()? } else { GroupCrypto::default() };
    let open = store.open_pack();
    let mut packs = HashMap::new();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for id in store.pack_ids()? {
        crate::test_support::hold_point("verify pack", || progress.stop_requested());
        if progress.stop_requested() {
            return Err(crate::progress::stopped("verify"));
        }
        if Some(id) == open {
            // Being appended to: its records are checked once it is sealed.
            continue;
        }
        let path = store.pack_path(id);
        report.packs_checked += 1;
        let (entries, footer_damaged) = match store.pack_footer(id) {
            Ok(e) => (e, false),
            Err(e) => {
                report.damaged_packs.push(format!("{group} pack {id}: {e}"));
                let entries = match pack::scan_records(&path) {
                    Ok((entries, _)) => entries,
                    Err(_) => Vec::new(),
                };
                (entries, true)
            }
        };
        let mut bad = HashSet::new();
        if data {
            buf.clear();
            let len = {
                use std::io::Read;
                let f = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
                let mut f = std::io::BufReader::new(f);
                f.read_to_end(&mut buf).map_err(|e| Error::io("read", &path, e))?
            };
            report.bytes_checked += len as u64;
            for e in &entries {
                report.chunks_checked += 1;
                let start = e.offset as usize;
                let end = start + crate::format::RECORD_HEADER_LEN + e.stored_len as usize;
                out.clear();
                let ok = buf.get(start..end).is_some_and(|rec| decode_chunk(rec, &e.fp, &crypto, &mut out).is_ok());
                if !ok {
                    bad.insert(e.offset);
                }
            }
            progress.inc(len as u64);
            let known = bad.iter().filter(|o| quarantined.contains(&(id, **o))).count();
            let new = bad.len() - known;
            if new > 0 && !footer_damaged {
                report.damaged_packs.push(format!("{group} pack {id}: {new} damaged records"));
            }
            report.damaged_chunks += new as u64;
            report.known_quarantined += known as u64;
        }
        packs.insert(id, PackRecords { entries, bad, footer_damaged });
    }
    Ok(packs)
}

/// How many of `fps` (fingerprints live recipes use, whose recipe location the index does not
/// name) the index cannot find at all. Every fingerprint a live recipe uses must be findable,
/// so that new backups dedup against it: the index must name a pack holding an intact copy
/// (one entry per fingerprint is enough; garbage awaiting the cleaner need not be indexed).
fn count_unfindable(store: &GroupStore, packs: &HashMap<u32, PackRecords>, fps: &HashSet<Fingerprint>) -> u64 {
    let findable = |fp: &Fingerprint| {
        store
            .index_candidates(fp)
            .iter()
            .any(|c| packs.get(c).is_some_and(|p| p.entries.iter().any(|x| x.fp == *fp && !p.bad.contains(&x.offset))))
    };
    fps.iter().filter(|fp| !findable(fp)).count() as u64
}

/// A stream of the group with a recipe: live, or in its container's recycle bin.
struct LiveStream {
    container_id: u64,
    container: String,
    record: StreamRecord,
    in_bin: bool,
}

impl LiveStream {
    fn name(&self) -> String {
        let bin = if self.in_bin { " (recycle bin)" } else { "" };
        format!("{}/{}{bin}", self.container, self.record.name)
    }
}

impl Engine {
    fn group_streams(&self, g: &GroupRecord) -> Result<Vec<LiveStream>> {
        let mut out = Vec::new();
        for c in self.catalog().containers()?.into_iter().filter(|c| c.group_id == g.id) {
            for record in self.catalog().streams(c.id)? {
                out.push(LiveStream { container_id: c.id, container: c.name.clone(), record, in_bin: false });
            }
            for r in self.catalog().recycled(c.id)? {
                out.push(LiveStream { container_id: c.id, container: c.name.clone(), record: r.stream, in_bin: true });
            }
        }
        Ok(out)
    }

    /// Whether the catalog still lists stream `s` (same id, live or in the recycle bin).
    fn still_listed(&self, s: &LiveStream) -> Result<bool> {
        let live = self.catalog().stream(s.container_id, &s.record.name)?.is_some_and(|r| r.id == s.record.id);
        let binned = self.catalog().recycled(s.container_id)?.iter().any(|r| r.stream.id == s.record.id);
        Ok(live || binned)
    }

    /// Verifies (and with `repair`, repairs) every storage group; see [`crate::verify`].
    pub fn verify(&self, opts: &VerifyOptions, progress: &dyn Progress) -> Result<VerifyReport> {
        let _running = self
            .inner
            .maintenance
            .try_lock()
            .ok_or_else(|| Error::Conflict("the cleaner or a repair is already running".into()))?;
        // A repair in a running daemon: frontends' and clients' writes wait until it is done.
        let _paused = opts.repair.then(|| self.pause_writes());
        let started = Instant::now();
        let mut report = VerifyReport {
            scope: match opts.scope {
                VerifyScope::Data => "data",
                VerifyScope::Metadata => "metadata",
                VerifyScope::All => "all",
            }
            .into(),
            repair: opts.repair,
            ..Default::default()
        };
        self.check_catalog_records(opts, &mut report)?;
        let groups = self.catalog().groups()?;
        let mut total = 0;
        for g in &groups {
            total += self.inner.group_store(g)?.pack_sizes()?.iter().map(|(_, n)| n).sum::<u64>();
        }
        progress.set_length(if opts.scope.data() { total } else { 0 });
        for g in &groups {
            self.verify_group(g, opts, &mut report, progress)?;
        }
        progress.finish();
        for list in [&mut report.damaged_streams, &mut report.healed_streams, &mut report.lost_streams] {
            list.sort();
            list.dedup();
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Reports a catalog rebuilt at open, and (metadata scope) checks the catalog against its
    /// redundant records, making them agree on repair (`catalog::reconcile`).
    fn check_catalog_records(&self, opts: &VerifyOptions, report: &mut VerifyReport) -> Result<()> {
        if let Some(r) = self.inner.rebuilt.lock().take() {
            let problem = format!("the catalog could not be opened: {}", r.error);
            report.problems.push(problem);
            report.fixed.push(format!(
                "the catalog was rebuilt from its redundant records and the recipes (the damaged file is kept as {})",
                r.aside.display()
            ));
            report.catalog_restored.extend(r.done.restored);
            report.catalog_not_restored.extend(r.done.not_restored);
        }
        if !opts.scope.metadata() {
            return Ok(());
        }
        let dir = self.dir().to_path_buf();
        let done = self.catalog().reconcile(opts.repair, &|g, id| crate::engine::recipe_exists(&dir, g, id))?;
        report.problems.extend(done.problems);
        report.fixed.extend(done.fixed);
        report.catalog_restored.extend(done.restored);
        report.catalog_not_restored.extend(done.not_restored);
        Ok(())
    }

    fn verify_group(
        &self,
        g: &GroupRecord,
        opts: &VerifyOptions,
        report: &mut VerifyReport,
        progress: &dyn Progress,
    ) -> Result<()> {
        let store = self.inner.group_store(g)?;
        // Seal the open pack (when repairing) so that every record is checked.
        if opts.repair {
            store.seal_open()?;
        }
        let key = quarantine_key(g.id);
        let mut quarantined: Vec<QuarantinedChunk> = self.catalog().meta(&key)?.unwrap_or_default();
        let known_bad: HashSet<(u32, u32)> = quarantined.iter().map(|q| (q.pack, q.offset)).collect();
        let packs = check_packs(&store, opts.scope.data(), &known_bad, report, progress)?;
        let streams = self.group_streams(g)?;
        // Damaged references: (pack, offset, fingerprint) → streams naming it.
        let mut damaged_refs: HashMap<(u32, u32), (Fingerprint, Vec<usize>)> = HashMap::new();
        let open = store.open_pack();
        let mut recipes_ok: Vec<Option<Recipe>> = Vec::with_capacity(streams.len());
        // Fingerprints live recipes use whose recipe location is not what the index names
        // (checked further below: usually none).
        let mut unindexed: HashSet<Fingerprint> = HashSet::new();
        for (i, s) in streams.iter().enumerate() {
            report.recipes_checked += 1;
            let path = recipe_path(store.recipes_dir(), s.record.id);
            let recipe = match read_recipe(&path) {
                Ok(r) => r,
                // Deleted or replaced since it was listed (a writer or a deletion ran meanwhile).
                Err(Error::Io { ref source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && !self.still_listed(s)? =>
                {
                    recipes_ok.push(None);
                    continue;
                }
                Err(e) => {
                    report.damaged_streams.push(s.name());
                    if opts.repair {
                        report.lost_streams.push(s.name());
                    }
                    report.problems.push(format!("{}: recipe unreadable: {e}", s.name()));
                    recipes_ok.push(None);
                    continue;
                }
            };
            if opts.scope.metadata() {
                let (len, chunks) = (recipe.logical_len, recipe.entries.len() as u64);
                let names_match = recipe.header.container == s.container && recipe.header.stream == s.record.name;
                if !names_match || len != s.record.logical_len || chunks != s.record.chunks {
                    report.problems.push(format!(
                        "{}: catalog entry ({} bytes, {} chunks) disagrees with its recipe ({len} bytes, {chunks} chunks, named {}/{})",
                        s.name(),
                        s.record.logical_len,
                        s.record.chunks,
                        recipe.header.container,
                        recipe.header.stream
                    ));
                    if opts.repair && names_match && !s.in_bin {
                        let mut fixed = s.record.clone();
                        fixed.logical_len = len;
                        fixed.chunks = chunks;
                        self.catalog().put_stream(s.container_id, &fixed)?;
                        report.fixed.push(format!("{}: catalog entry corrected from its recipe", s.name()));
                    }
                }
            }
            for e in &recipe.entries {
                let why = match packs.get(&e.loc.pack) {
                    Some(p) if p.intact(e.loc.offset, &e.fp) => None,
                    Some(p) => Some(match p.entry(e.loc.offset) {
                        None => "no record starts there",
                        Some(r) if r.fp != e.fp => "the record there holds another chunk",
                        Some(_) => "the record is damaged",
                    }),
                    // The open pack is checked once sealed; a missing pack is damage.
                    None if Some(e.loc.pack) == open => None,
                    None => Some("the pack is missing"),
                };
                if why.is_none() && opts.scope.metadata() && !store.index_has(&e.fp, e.loc.pack) {
                    unindexed.insert(e.fp);
                }
                if let Some(why) = why {
                    if report.damaged_references.len() < 100 {
                        report.damaged_references.push(format!(
                            "{}: chunk {} at pack {} offset {}: {why}",
                            s.name(),
                            e.fp.to_hex(),
                            e.loc.pack,
                            e.loc.offset
                        ));
                    }
                    damaged_refs.entry((e.loc.pack, e.loc.offset)).or_insert((e.fp, Vec::new())).1.push(i);
                }
            }
            recipes_ok.push(Some(recipe));
        }
        // A pack that recipes name but that is gone is a damaged pack too (counted and named).
        let mut missing: HashMap<u32, HashSet<usize>> = HashMap::new();
        for (&(pack, _), (_, users)) in &damaged_refs {
            if !packs.contains_key(&pack) && Some(pack) != open {
                missing.entry(pack).or_default().extend(users.iter().copied());
            }
        }
        let mut missing: Vec<(u32, usize)> = missing.into_iter().map(|(p, u)| (p, u.len())).collect();
        missing.sort_unstable();
        for (pack, users) in missing {
            let s = if users == 1 { "" } else { "s" };
            report.damaged_packs.push(format!("{} pack {pack}: missing (named by {users} stream{s})", g.name));
        }
        let damaged_stream_ids: HashSet<usize> = damaged_refs.values().flat_map(|(_, v)| v.iter().copied()).collect();
        for &i in &damaged_stream_ids {
            report.damaged_streams.push(streams[i].name());
        }
        if opts.scope.metadata() {
            report.index_missing += count_unfindable(&store, &packs, &unindexed);
            self.check_orphans(&store, g, &streams, opts.repair, report)?;
        }
        if !opts.repair {
            return Ok(());
        }
        // Heal from intact copies.
        let wanted: HashSet<Fingerprint> = damaged_refs.values().map(|(fp, _)| *fp).collect();
        let mut intact_copy: HashMap<Fingerprint, ChunkLoc> = HashMap::new();
        for (&id, p) in &packs {
            for e in &p.entries {
                if wanted.contains(&e.fp) && !p.bad.contains(&e.offset) && !intact_copy.contains_key(&e.fp) {
                    intact_copy.insert(e.fp, ChunkLoc { pack: id, offset: e.offset, stored_len: e.stored_len });
                }
            }
        }
        let mut lost_ids = HashSet::new();
        for (fp, users) in damaged_refs.values() {
            if !intact_copy.contains_key(fp) {
                lost_ids.extend(users.iter().copied());
            }
        }
        for &i in &damaged_stream_ids {
            let Some(mut recipe) = recipes_ok[i].take() else { continue };
            let mut changed = false;
            for e in recipe.entries.iter_mut() {
                if damaged_refs.contains_key(&(e.loc.pack, e.loc.offset)) {
                    if let Some(copy) = intact_copy.get(&e.fp) {
                        e.loc = *copy;
                        changed = true;
                    }
                }
            }
            if changed {
                replace_recipe(&store, &recipe_path(store.recipes_dir(), streams[i].record.id), &recipe)?;
            }
            if lost_ids.contains(&i) {
                report.lost_streams.push(streams[i].name());
            } else {
                report.healed_streams.push(streams[i].name());
            }
        }
        crate::fsutil::sync_dir(store.recipes_dir())?;
        for (&(pack, offset), (fp, _)) in &damaged_refs {
            if intact_copy.contains_key(fp) {
                report.healed_chunks += 1;
            } else if packs.get(&pack).is_some_and(|p| p.bad.contains(&offset)) {
                report.quarantined_chunks += 1;
            }
        }
        // Quarantine every damaged record (referenced or not): never a dedup target again.
        for (&id, p) in &packs {
            for e in p.entries.iter().filter(|e| p.bad.contains(&e.offset)) {
                if !known_bad.contains(&(id, e.offset)) {
                    quarantined.push(QuarantinedChunk {
                        pack: id,
                        offset: e.offset,
                        fingerprint: e.fp.to_hex(),
                        since: now_secs(),
                    });
                }
            }
        }
        quarantined.retain(|q| store.pack_path(q.pack).exists());
        self.catalog().put_meta(&key, &quarantined)?;
        store.set_quarantine(quarantined.iter().map(|q| (q.pack, q.offset)));
        // Footers, then the index from every intact record.
        for (&id, p) in &packs {
            if p.footer_damaged && pack::rebuild_footer(&store.pack_path(id))? {
                report.fixed.push(format!("{} pack {id}: footer rebuilt from its records", g.name));
            }
        }
        let q: HashSet<(u32, u32)> = quarantined.iter().map(|q| (q.pack, q.offset)).collect();
        let mut entries = Vec::new();
        for (&id, p) in &packs {
            for e in p.entries.iter().filter(|e| !p.bad.contains(&e.offset) && !q.contains(&(id, e.offset))) {
                entries.push((e.fp, id));
            }
        }
        store.rebuild_index(&entries)?;
        Ok(())
    }

    /// Metadata checks beyond recipes: index coverage and recipes without a catalog entry.
    fn check_orphans(
        &self,
        store: &GroupStore,
        g: &GroupRecord,
        streams: &[LiveStream],
        repair: bool,
        report: &mut VerifyReport,
    ) -> Result<()> {
        let listed: HashSet<u64> = streams.iter().map(|s| s.record.id).collect();
        let rd = std::fs::read_dir(store.recipes_dir()).map_err(|e| Error::io("list", store.recipes_dir(), e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("list", store.recipes_dir(), e))?;
            let name = entry.file_name();
            let Some(id) =
                name.to_str().and_then(|n| n.strip_suffix(".rcp")).and_then(|h| u64::from_str_radix(h, 16).ok())
            else {
                continue;
            };
            if listed.contains(&id) {
                continue;
            }
            report.orphan_recipes += 1;
            if repair {
                if let Some(restored) = self.restore_entry(g, &entry.path())? {
                    report.restored_streams.push(restored);
                }
            }
        }
        Ok(())
    }

    /// Brings back the catalog entry of a recipe whose container exists and whose name is free.
    fn restore_entry(&self, g: &GroupRecord, path: &std::path::Path) -> Result<Option<String>> {
        let Ok(recipe) = read_recipe(path) else { return Ok(None) };
        let h = &recipe.header;
        let Some(c) = self.catalog().container(&h.container)? else { return Ok(None) };
        if c.group_id != g.id || h.group_id != g.id || self.catalog().stream(c.id, &h.stream)?.is_some() {
            return Ok(None);
        }
        let record = StreamRecord {
            id: h.stream_id,
            name: h.stream.clone(),
            logical_len: recipe.logical_len,
            chunks: recipe.entries.len() as u64,
            new_chunks: 0,
            new_stored_bytes: 0,
            created: h.created,
        };
        self.catalog().put_stream(c.id, &record)?;
        Ok(Some(format!("{}/{}", c.name, h.stream)))
    }
}
