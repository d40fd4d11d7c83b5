//! The cleaner: gives back the space of chunks that no live stream references (QoreStor's
//! cleaner; mark and sweep with compaction).
//!
//! # Phases, per storage group
//! 1. **Seal.** The open pack is sealed, so that every pack written so far can be reclaimed.
//! 2. **Survey.** The footer of every sealed pack is read into an array of (record offset,
//!    record length) with one live bit per chunk. Packs whose footer cannot be read are left
//!    alone (verify and repair deal with them).
//! 3. **Mark.** Every recipe of a stream listed in the catalog sets the live bit of each
//!    location it names. A recipe that cannot be read stops the run for the group: nothing is
//!    reclaimed on a guess.
//! 4. **Choose.** Packs with no live chunk are to be deleted; packs whose live bytes are under
//!    the compaction threshold (a fraction of the pack file, [`DEFAULT_COMPACT_BELOW`]) are to
//!    be compacted. Everything else stays.
//! 5. **Condemn.** Under the group's dedup lock, the chosen packs that no running writer has
//!    pinned are condemned: lookups stop answering with them (a writer that meets one of their
//!    chunks stores it again or finds the cleaner's copy).
//! 6. **Mark again.** The recipes listed in the catalog *now* are marked (see the rule below:
//!    they are all the streams that can name a condemned pack).
//! 7. **Delete the dead.** Condemned packs with no live chunk are deleted first (steps 9 and 10
//!    for them alone), before anything is copied. Steps 8 to 10 then run per batch of packs
//!    whose live bytes add up to about one pack, so a killed run leaves at most one batch of
//!    copies behind (in packs of their own, which the next run deletes first). A pack whose
//!    live bytes do not fit in the space available is deferred.
//! 8. **Copy.** The live records of condemned packs are checked (record CRC, fingerprint in
//!    the header) and appended again through the group's append path, reusing a copy stored
//!    elsewhere when there is one; packs are made durable. A condemned pack with a damaged live
//!    record is kept (released), for verify and repair. A run asked to stop (its scheduled
//!    window closed, or the daemon is stopping) copies no further pack: the condemned packs it
//!    has not copied yet are released untouched and counted as deferred, and the steps below
//!    finish the ones it has copied.
//! 9. **Rewrite.** Every recipe of step 6 that names a condemned pack is rewritten with the new
//!    locations: temporary file, fsync, then rename under the group's recipe lock if the
//!    recipe still exists (a stream deleted meanwhile stays deleted); then the directory is
//!    synced.
//! 10. **Delete.** The condemned packs are unlinked, the pack directory synced, and their index
//!     entries dropped.
//!
//! # The rule for concurrent writers
//! A writer can reference a chunk only through a lookup, an append, or a prediction that a
//! lookup started; all of them pin the pack for the writer (`GroupStore::pin_writer`) under
//! the dedup lock, and the pin lasts until the writer's stream is in the catalog. Condemnation
//! takes the same lock, skips pinned packs, and from then on lookups skip condemned packs. So a
//! condemned pack is named only by streams that were in the catalog when step 6 listed them,
//! and step 9 rewrites all of those before step 10 deletes anything. In-flight streams are never
//! touched.
//!
//! # Lock order
//! Engine cleaner lock (one run at a time) → group recipe lock → group dedup lock. The recipe
//! lock is held only around one rename or unlink; the dedup lock only inside `GroupStore`
//! calls.
//!
//! # Crashes
//! Each step leaves a consistent store: before step 10 every old location still exists, and
//! after a rename a recipe names copies that were made durable before it. A crashed run is
//! found as `running` in the status record and a new run simply starts again: copies the
//! crashed run made and no recipe names yet are garbage for that run.
//!
//! # Memory
//! 8 bytes and one bit per chunk in sealed packs (the survey), plus 20 bytes per chunk copied
//! in the run: bounded by unique chunks, not by logical bytes. One recipe is in memory at a
//! time.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::fingerprint::Fingerprint;
use crate::format::RECORD_HEADER_LEN;
use crate::group::{GroupStore, NewChunk};
use crate::pack::{check_record_payload, decode_record_header, ChunkLoc};
use crate::progress::Progress;
use crate::recipe::{encode_recipe, visit_recipe, RecipeEntry, RecipeWriter};

/// Bytes of live records read before they are stored as one batch.
const COPY_BATCH: usize = 256 << 10;

/// Default compaction threshold: packs whose live bytes are under this fraction of the file are
/// compacted (chosen by measurement, see `docs/CLEANER.md`).
pub const DEFAULT_COMPACT_BELOW: f64 = 0.95;

/// Options of a cleaner run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerOptions {
    /// Only survey and report what a run would reclaim.
    pub dry_run: bool,
    /// Packs whose live bytes are under this fraction of the file are compacted (0 turns
    /// compaction off: only packs with no live chunk are deleted).
    pub compact_below: f64,
}

impl Default for CleanerOptions {
    fn default() -> Self {
        CleanerOptions { dry_run: false, compact_below: DEFAULT_COMPACT_BELOW }
    }
}

/// What a cleaner run did (or, dry, would do) in one storage group or in all of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CleanerReport {
    /// Storage group name (empty for the total).
    pub storage_group: String,
    /// True for a dry run.
    pub dry_run: bool,
    /// Pack files before the run.
    pub packs_before: u64,
    /// Bytes of pack files before the run.
    pub stored_bytes_before: u64,
    /// Bytes of pack files after the run.
    pub stored_bytes_after: u64,
    /// Pack bytes of live chunks (record headers included), as marked.
    pub live_stored_bytes: u64,
    /// Packs deleted because no live chunk was left in them.
    pub packs_deleted: u64,
    /// Packs compacted (live chunks copied forward, then deleted).
    pub packs_compacted: u64,
    /// Live chunks copied forward.
    pub chunks_copied: u64,
    /// Pack bytes appended by copying (a chunk found stored elsewhere costs nothing).
    pub bytes_copied: u64,
    /// Pack bytes freed: deleted files minus bytes copied.
    pub bytes_reclaimed: i64,
    /// Chosen packs kept because a running writer had pinned them.
    pub packs_pinned: u64,
    /// Packs left alone because they are damaged (unreadable footer or a bad live record).
    pub packs_damaged: u64,
    /// Condemned packs kept because the final check found a listed recipe still naming them.
    /// Always 0 unless something is wrong; the packs stay, so nothing is lost.
    #[serde(default)]
    pub packs_still_referenced: u64,
    /// Condemned packs kept because a recipe no catalog entry lists names them (a writer died
    /// between publishing its recipe and its catalog entry): kept in case repair restores it.
    #[serde(default)]
    pub packs_kept_for_orphans: u64,
    /// Recipes rewritten with new locations.
    pub recipes_rewritten: u64,
    /// Chosen packs left for a later run because the run was asked to stop (its schedule's
    /// window closed, or the daemon stopped) before it copied them.
    #[serde(default)]
    pub packs_deferred: u64,
    /// Of the deferred packs, those whose copy would not have fitted in the space left.
    #[serde(default)]
    pub deferred_for_space: u64,
    /// True when the run was asked to stop before it had dealt with every chosen pack.
    #[serde(default)]
    pub stopped_early: bool,
    /// Recycle bin entries whose retention had passed, deleted for good before the run
    /// (`CONTAINER/STREAM`; in the total only).
    #[serde(default)]
    pub recycle_bin_purged: Vec<String>,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl CleanerReport {
    /// Adds a group's figures to a total.
    pub(crate) fn add_group(&mut self, o: &CleanerReport) {
        self.packs_before += o.packs_before;
        self.stored_bytes_before += o.stored_bytes_before;
        self.stored_bytes_after += o.stored_bytes_after;
        self.live_stored_bytes += o.live_stored_bytes;
        self.packs_deleted += o.packs_deleted;
        self.packs_compacted += o.packs_compacted;
        self.chunks_copied += o.chunks_copied;
        self.bytes_copied += o.bytes_copied;
        self.bytes_reclaimed += o.bytes_reclaimed;
        self.packs_pinned += o.packs_pinned;
        self.packs_damaged += o.packs_damaged;
        self.packs_still_referenced += o.packs_still_referenced;
        self.packs_kept_for_orphans += o.packs_kept_for_orphans;
        self.recipes_rewritten += o.recipes_rewritten;
        self.packs_deferred += o.packs_deferred;
        self.deferred_for_space += o.deferred_for_space;
        self.stopped_early |= o.stopped_early;
    }
}

/// The footer of one sealed pack reduced to what marking needs.
struct PackSurvey {
    file_len: u64,
    /// Record offsets, ascending (the footer's order).
    offsets: Vec<u32>,
    /// Record lengths (header included).
    lens: Vec<u32>,
    live: Vec<u64>,
}

impl PackSurvey {
    fn mark(&mut self, offset: u32) -> bool {
        match self.offsets.binary_search(&offset) {
            Ok(i) => {
                self.live[i / 64] |= 1 << (i % 64);
                true
            }
            Err(_) => false,
        }
    }

    fn is_live(&self, i: usize) -> bool {
        self.live[i / 64] & (1 << (i % 64)) != 0
    }

    fn live_bytes(&self) -> u64 {
        (0..self.offsets.len()).filter(|&i| self.is_live(i)).map(|i| self.lens[i] as u64).sum()
    }

    fn clear(&mut self) {
        self.live.iter_mut().for_each(|w| *w = 0);
    }
}

/// A live stream's recipe file.
pub(crate) struct LiveRecipe {
    /// Where the recipe is.
    pub path: PathBuf,
    /// `CONTAINER/STREAM`, for messages.
    pub name: String,
}

/// Where the cleaner copied each live record of the packs it compacts: per pack, (old record
/// offset, new location) in offset order (16 bytes per chunk, no hashing overhead).
#[derive(Default)]
struct Moves {
    packs: HashMap<u32, Vec<(u32, ChunkLoc)>>,
}

impl Moves {
    /// Records a move; offsets of one pack arrive in ascending order (footer order).
    fn insert(&mut self, pack: u32, offset: u32, to: ChunkLoc) {
        self.packs.entry(pack).or_default().push((offset, to));
    }

    fn get(&self, pack: u32, offset: u32) -> Option<&ChunkLoc> {
        let v = self.packs.get(&pack)?;
        v.binary_search_by_key(&offset, |(o, _)| *o).ok().map(|i| &v[i].1)
    }
}

/// The surveyed packs of a group.
struct Survey {
    packs: HashMap<u32, PackSurvey>,
    /// Fingerprints of recipe entries whose location is in no surveyed pack (normally none):
    /// any record holding one of them is kept live.
    dangling: HashSet<Fingerprint>,
}

impl Survey {
    fn take(store: &GroupStore, report: &mut CleanerReport) -> Result<Survey> {
        let open = store.open_pack();
        let mut packs = HashMap::new();
        for id in store.pack_ids()? {
            let file_len = std::fs::metadata(store.pack_path(id)).map(|m| m.len()).unwrap_or(0);
            report.packs_before += 1;
            report.stored_bytes_before += file_len;
            if Some(id) == open {
                continue;
            }
            let Ok(footer) = store.pack_footer(id) else {
                report.packs_damaged += 1;
                continue;
            };
            let offsets = footer.iter().map(|e| e.offset).collect();
            let lens = footer.iter().map(|e| (RECORD_HEADER_LEN as u32).saturating_add(e.stored_len)).collect();
            let live = vec![0u64; footer.len().div_ceil(64)];
            packs.insert(id, PackSurvey { file_len, offsets, lens, live });
        }
        Ok(Survey { packs, dangling: HashSet::new() })
    }

    /// Marks every location the recipes name, and returns, per recipe, the packs of
    /// `condemned` it names.
    fn mark_naming(&mut self, recipes: &[LiveRecipe], condemned: &HashSet<u32>) -> Result<Vec<Vec<u32>>> {
        let mut names = Vec::with_capacity(recipes.len());
        self.mark_with(recipes, |i, pack| {
            if names.len() <= i {
                names.resize(i + 1, Vec::new());
            }
            if condemned.contains(&pack) && !names[i].contains(&pack) {
                names[i].push(pack);
            }
        })?;
        names.resize(recipes.len(), Vec::new());
        Ok(names)
    }

    /// Marks every location the recipes name.
    fn mark(&mut self, recipes: &[LiveRecipe]) -> Result<()> {
        self.mark_with(recipes, |_, _| {})
    }

    /// Marks every location the recipes name, telling `named(recipe index, pack)` each one.
    fn mark_with(&mut self, recipes: &[LiveRecipe], mut named: impl FnMut(usize, u32)) -> Result<()> {
        self.packs.values_mut().for_each(PackSurvey::clear);
        self.dangling.clear();
        for (i, r) in recipes.iter().enumerate() {
            // Streamed: memory does not grow with the stream's length. A recipe that turns out
            // damaged stops the run, so marks made from it before the error are harmless.
            let (packs, dangling) = (&mut self.packs, &mut self.dangling);
            let visited = visit_recipe(&r.path, |e| {
                named(i, e.loc.pack);
                if !packs.get_mut(&e.loc.pack).is_some_and(|p| p.mark(e.loc.offset)) {
                    dangling.insert(e.fp);
                }
            });
            match visited {
                Ok(_) => {}
                // Deleted since it was listed: its chunks are garbage now.
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) if e.kind() == ErrorKind::Corrupt => {
                    return Err(Error::corrupt(
                        "recipe",
                        &r.path,
                        format!(
                            "the cleaner stopped: the recipe of {} cannot be read ({e}); run qorestor verify",
                            r.name
                        ),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Reclaims space in one storage group (see the module documentation).
pub(crate) fn clean_group(
    store: &GroupStore,
    list_recipes: &dyn Fn() -> Result<Vec<LiveRecipe>>,
    opts: &CleanerOptions,
    ctl: &RunControl<'_>,
) -> Result<CleanerReport> {
    let started = Instant::now();
    let mut report =
        CleanerReport { storage_group: store.record().name.clone(), dry_run: opts.dry_run, ..Default::default() };
    if !opts.dry_run {
        store.seal_open()?;
    }
    let mut survey = Survey::take(store, &mut report)?;
    survey.mark(&list_recipes()?)?;
    let chosen = choose(&survey, opts.compact_below);
    if opts.dry_run {
        report.live_stored_bytes = survey.packs.values().map(PackSurvey::live_bytes).sum();
        for &id in &chosen {
            let p = &survey.packs[&id];
            let live = p.live_bytes();
            if live == 0 {
                report.packs_deleted += 1;
            } else {
                report.packs_compacted += 1;
                report.chunks_copied += (0..p.offsets.len()).filter(|&i| p.is_live(i)).count() as u64;
                report.bytes_copied += live;
            }
            report.bytes_reclaimed += p.file_len as i64 - live as i64;
        }
        report.stored_bytes_after = (report.stored_bytes_before as i64 - report.bytes_reclaimed) as u64;
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    let condemned = store.condemn(&chosen);
    report.packs_pinned = (chosen.len() - condemned.len()) as u64;
    let result = sweep(store, &mut survey, &condemned, list_recipes, &mut report, ctl);
    if result.is_err() {
        store.release(&condemned);
    }
    result?;
    report.stored_bytes_after = store.pack_sizes()?.iter().map(|(_, n)| n).sum();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Packs to delete (no live chunk) or compact (live bytes under the threshold), ascending.
fn choose(survey: &Survey, compact_below: f64) -> Vec<u32> {
    let mut out: Vec<u32> = survey
        .packs
        .iter()
        .filter(|(_, p)| {
            let live = p.live_bytes();
            live == 0 || (live as f64) < compact_below * p.file_len as f64
        })
        .map(|(&id, _)| id)
        .collect();
    out.sort_unstable();
    out
}

/// Steps 6 to 9 for the condemned packs: dead packs first (nothing to copy), then the packs
/// to compact in batches of about one pack's worth of live bytes, each committed and deleted
/// before the next is copied.
fn sweep(
    store: &GroupStore,
    survey: &mut Survey,
    condemned: &[u32],
    list_recipes: &dyn Fn() -> Result<Vec<LiveRecipe>>,
    report: &mut CleanerReport,
    ctl: &RunControl<'_>,
) -> Result<()> {
    let recipes = list_recipes()?;
    let condemned_set: HashSet<u32> = condemned.iter().copied().collect();
    let names = survey.mark_naming(&recipes, &condemned_set)?;
    report.live_stored_bytes = survey.packs.values().map(PackSurvey::live_bytes).sum();
    // (A recipe location in no surveyed pack keeps every record with its fingerprint live:
    // then each pack is checked record by record as it is copied.)
    let (dead, to_copy): (Vec<u32>, Vec<u32>) =
        condemned.iter().partition(|id| survey.dangling.is_empty() && survey.packs[*id].live_bytes() == 0);
    ctl.progress.set_length(condemned.iter().map(|id| survey.packs[id].file_len).sum());
    let ctx = BatchContext { store, recipes: &recipes, names: &names };
    crate::test_support::hold_point("cleaner condemned packs", || ctl.stop.load(Ordering::Relaxed));
    if ctl.stop.load(Ordering::Relaxed) {
        // Asked to stop before anything was done: everything is left for a later run.
        store.release(condemned);
        report.packs_deferred += condemned.len() as u64;
        report.stopped_early = true;
        return Ok(());
    }
    // The pack sealed at the start is durable (its sync failing fails the run) before
    // anything is deleted. Then the dead packs go first: they free space without copying.
    store.make_durable()?;
    ctx.commit(survey, dead, &Moves::default(), report)?;
    ctl.checkpoint(report)?;
    let target = store.pack_target();
    let mut pending = to_copy.into_iter().peekable();
    let mut buf = Vec::new();
    while pending.peek().is_some() {
        if ctl.stop.load(Ordering::Relaxed) {
            // Asked to stop: the packs not copied yet are released untouched.
            let rest: Vec<u32> = pending.collect();
            store.release(&rest);
            report.packs_deferred += rest.len() as u64;
            report.stopped_early = true;
            break;
        }
        // One batch: packs whose live bytes add up to about one pack.
        let (mut doomed, mut moved, mut copied) = (Vec::new(), Moves::default(), 0u64);
        while let Some(&id) = pending.peek() {
            let live = survey.packs[&id].live_bytes();
            if !doomed.is_empty() && (copied + live > target || ctl.stop.load(Ordering::Relaxed)) {
                break;
            }
            pending.next();
            // A compaction that does not fit in the space left (the reserve included: the
            // cleaner may use it) waits for a later run; the next packs may be smaller.
            let room = crate::space::available_bytes(store.packs_dir())?;
            if live.saturating_add(COPY_SLACK) > room {
                store.release(&[id]);
                report.packs_deferred += 1;
                report.deferred_for_space += 1;
                continue;
            }
            let file_len = survey.packs[&id].file_len;
            if copy_live(store, id, &survey.packs[&id], &survey.dangling, &mut buf, &mut moved, report)? {
                doomed.push(id);
                copied += live;
            } else {
                store.release(&[id]);
                report.packs_damaged += 1;
            }
            ctl.progress.inc(file_len);
        }
        if doomed.is_empty() {
            continue;
        }
        // The copies are durable and in packs of their own before any recipe names them, so
        // a run killed from here on leaves at most this batch's copies behind, in packs no
        // recipe names: the next run deletes them before it copies anything.
        store.make_durable()?;
        store.seal_open()?;
        ctx.commit(survey, doomed, &moved, report)?;
        ctl.checkpoint(report)?;
    }
    // Pack bytes freed: deleted files minus every byte copied.
    report.bytes_reclaimed -= report.bytes_copied as i64;
    Ok(())
}

/// Extra bytes a compaction needs besides its live bytes: footers, a pack header, the slack
/// of the last write buffer.
const COPY_SLACK: u64 = 2 << 20;

/// How a run is steered and reported while it goes.
pub(crate) struct RunControl<'a> {
    /// Set to stop the run at the next batch.
    pub stop: &'a AtomicBool,
    /// Progress, in pack bytes dealt with.
    pub progress: &'a dyn Progress,
    /// Called with the report so far after each committed batch (the status record).
    pub on_batch: &'a dyn Fn(&CleanerReport) -> Result<()>,
}

impl RunControl<'_> {
    fn checkpoint(&self, report: &CleanerReport) -> Result<()> {
        (self.on_batch)(report)
    }
}

/// What committing a batch needs besides the batch itself.
struct BatchContext<'a> {
    store: &'a GroupStore,
    recipes: &'a [LiveRecipe],
    /// Per recipe (same order), the condemned packs it names.
    names: &'a [Vec<u32>],
}

impl BatchContext<'_> {
    /// Rewrites the recipes that name the batch's packs, checks that none is still named, and
    /// deletes them (their index slots pointed at the copies).
    fn commit(
        &self,
        survey: &mut Survey,
        mut doomed: Vec<u32>,
        moved: &Moves,
        report: &mut CleanerReport,
    ) -> Result<()> {
        if doomed.is_empty() {
            return Ok(());
        }
        let doomed_set: HashSet<u32> = doomed.iter().copied().collect();
        let mut rewritten = false;
        for (r, named) in self.recipes.iter().zip(self.names) {
            if named.iter().any(|p| doomed_set.contains(p)) && rewrite_recipe(self.store, r, &doomed_set, moved)? {
                report.recipes_rewritten += 1;
                rewritten = true;
            }
        }
        if rewritten {
            crate::fsutil::sync_dir(self.store.recipes_dir())?;
        }
        // Last check before anything is deleted: no recipe file in the group may still name a
        // doomed pack. Packs that one does name are kept. A listed recipe that named none of
        // them when the run marked it is not read again: recipe files are named by stream id
        // (never reused) and only the cleaner rewrites one in place (one run at a time), so it
        // still names none. Reading every recipe for every batch made a run's recipe reads
        // grow with batches x streams.
        let listed: HashSet<&std::path::Path> = self.recipes.iter().map(|r| r.path.as_path()).collect();
        let naming: HashSet<&std::path::Path> = self
            .recipes
            .iter()
            .zip(self.names)
            .filter(|(_, named)| named.iter().any(|p| doomed_set.contains(p)))
            .map(|(r, _)| r.path.as_path())
            .collect();
        let (by_listed, by_orphans) = still_referenced(self.store, &doomed_set, &listed, &naming)?;
        report.packs_still_referenced += by_listed.len() as u64;
        report.packs_kept_for_orphans += by_orphans.difference(&by_listed).count() as u64;
        let still: HashSet<u32> = by_listed.union(&by_orphans).copied().collect();
        if !still.is_empty() {
            let keep: Vec<u32> = doomed.iter().copied().filter(|id| still.contains(id)).collect();
            doomed.retain(|id| !still.contains(id));
            self.store.release(&keep);
        }
        for &id in &doomed {
            let p = &survey.packs[&id];
            report.bytes_reclaimed += p.file_len as i64;
            if p.live_bytes() == 0 {
                report.packs_deleted += 1;
            } else {
                report.packs_compacted += 1;
            }
        }
        // The copies' index slots: each old slot of a deleted pack is pointed at the copy (in
        // place, so the table does not grow). Only now: had a crash kept the old pack, its slot
        // must still name it. (A crash before this re-indexes the copies at the next open: they
        // stay above the watermark until `copies_indexed`.)
        let mut repoints = Vec::new();
        for &id in &doomed {
            let Some(list) = moved.packs.get(&id) else { continue };
            let footer = self.store.pack_footer(id)?;
            for (offset, to) in list {
                if let Ok(i) = footer.binary_search_by_key(offset, |e| e.offset) {
                    repoints.push((footer[i].fp, id, to.pack));
                }
            }
        }
        self.store.delete_packs(&doomed, &repoints)?;
        self.store.copies_indexed();
        for id in &doomed {
            // Gone from the survey: its chunks no longer count as live stored bytes.
            survey.packs.remove(id);
        }
        Ok(())
    }
}

/// Copies the live records of pack `id` forward. Returns false (keep the pack) if a live
/// record is damaged.
fn copy_live(
    store: &GroupStore,
    id: u32,
    p: &PackSurvey,
    dangling: &HashSet<Fingerprint>,
    buf: &mut Vec<u8>,
    moved: &mut Moves,
    report: &mut CleanerReport,
) -> Result<bool> {
    let footer = store.pack_footer(id)?;
    let live: Vec<usize> = (0..footer.len()).filter(|&i| p.is_live(i) || dangling.contains(&footer[i].fp)).collect();
    if live.is_empty() {
        return Ok(true);
    }
    // Live records are read one by one into an arena and stored in batches of a few MiB, so
    // memory stays small whatever the pack size.
    let mut batch: Vec<(usize, usize, u32, crate::compress::Codec)> = Vec::new();
    buf.clear();
    for (n, &i) in live.iter().enumerate() {
        let e = &footer[i];
        let start = buf.len();
        let len = RECORD_HEADER_LEN + e.stored_len as usize;
        buf.resize(start + len, 0);
        if store.read_at(id, e.offset as u64, &mut buf[start..]).is_err() {
            return Ok(false);
        }
        let rec = &buf[start..];
        let Ok(h) = decode_record_header(rec) else {
            return Ok(false);
        };
        if h.fp != e.fp || check_record_payload(rec, &h, &rec[RECORD_HEADER_LEN..]).is_err() {
            return Ok(false);
        }
        batch.push((i, start + RECORD_HEADER_LEN, h.raw_len, h.codec));
        if buf.len() >= COPY_BATCH || n + 1 == live.len() {
            let chunks: Vec<NewChunk<'_>> = batch
                .iter()
                .map(|&(i, at, raw_len, codec)| NewChunk {
                    fp: footer[i].fp,
                    raw_len,
                    codec,
                    payload: &buf[at..at + footer[i].stored_len as usize],
                })
                .collect();
            let placed = store.relocate(&chunks)?;
            for (&(i, ..), (loc, appended)) in batch.iter().zip(&placed) {
                moved.insert(id, footer[i].offset, *loc);
                report.chunks_copied += 1;
                if *appended {
                    report.bytes_copied += loc.record_len();
                }
            }
            batch.clear();
            buf.clear();
        }
    }
    Ok(true)
}

/// The doomed packs that some recipe file of the group still names: (named by listed
/// recipes, named by recipes no catalog entry lists). Of the `listed` recipes only those in
/// `naming` (which named a doomed pack when marked) are read.
fn still_referenced(
    store: &GroupStore,
    doomed: &HashSet<u32>,
    listed: &HashSet<&std::path::Path>,
    naming: &HashSet<&std::path::Path>,
) -> Result<(HashSet<u32>, HashSet<u32>)> {
    let (mut by_listed, mut by_orphans) = (HashSet::new(), HashSet::new());
    let dir = store.recipes_dir();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let path = entry.map_err(|e| Error::io("list", dir, e))?.path();
        if path.extension().is_none_or(|x| x != "rcp") {
            continue;
        }
        let is_listed = listed.contains(path.as_path());
        if is_listed && !naming.contains(path.as_path()) {
            continue;
        }
        let set = if is_listed { &mut by_listed } else { &mut by_orphans };
        match visit_recipe(&path, |e| {
            if doomed.contains(&e.loc.pack) {
                set.insert(e.loc.pack);
            }
        }) {
            Ok(_) => {}
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            // An unreadable recipe names nothing we can trust: keep every doomed pack.
            Err(_) => return Ok((doomed.clone(), HashSet::new())),
        }
    }
    Ok((by_listed, by_orphans))
}

/// Rewrites a recipe that names doomed packs. Returns whether it was rewritten.
fn rewrite_recipe(store: &GroupStore, r: &LiveRecipe, doomed: &HashSet<u32>, moved: &Moves) -> Result<bool> {
    let new_loc = |e: &RecipeEntry| moved.get(e.loc.pack, e.loc.offset).filter(|_| doomed.contains(&e.loc.pack));
    // First pass: is there anything to change? (Streamed, like the rewrite itself.)
    let mut changed = false;
    let header = match visit_recipe(&r.path, |e| changed |= new_loc(e).is_some()) {
        Ok(h) => h,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !changed {
        return Ok(false);
    }
    let mut w = RecipeWriter::create_replacement(store.recipes_dir(), &header)?;
    let mut failed = None;
    let copied = visit_recipe(&r.path, |e| {
        if failed.is_none() {
            let loc = new_loc(e).copied().unwrap_or(e.loc);
            failed = w.push(&RecipeEntry { fp: e.fp, raw_len: e.raw_len, loc }).err();
        }
    });
    match copied {
        Ok(_) => {}
        // Deleted or replaced since the first pass: nothing to rewrite (the writer's temporary
        // file goes when it is dropped).
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let (tmp, dest) = w.seal()?;
    rename_if_present(store, &tmp, &dest)
}

/// Renames a synced replacement over a recipe under the group's recipe lock, only if the
/// recipe still exists (a stream deleted meanwhile stays deleted). Returns whether it did.
fn rename_if_present(store: &GroupStore, tmp: &std::path::Path, dest: &std::path::Path) -> Result<bool> {
    let _guard = store.recipe_lock();
    if dest.exists() {
        std::fs::rename(tmp, dest).map_err(|e| Error::io("rename", tmp, e))?;
        Ok(true)
    } else {
        let _ = std::fs::remove_file(tmp);
        Ok(false)
    }
}

/// Replaces a recipe file with `recipe`: temporary file, fsync, then rename under the group's
/// recipe lock if the recipe still exists (a stream deleted meanwhile stays deleted). The
/// caller syncs the directory. Returns whether it was replaced.
pub(crate) fn replace_recipe(
    store: &GroupStore,
    path: &std::path::Path,
    recipe: &crate::recipe::Recipe,
) -> Result<bool> {
    let tmp = path.with_extension("rcp.rewrite");
    crate::fileio::write_file(&tmp, &encode_recipe(recipe)).map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::File::open(&tmp).and_then(|f| crate::fileio::sync_all(&f)).map_err(|e| Error::io("fsync", &tmp, e))?;
    rename_if_present(store, &tmp, path)
}
