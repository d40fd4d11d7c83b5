//! Engine operations of the cleaner: runs over every storage group, the persisted status of
//! the last run, and the cleaner schedules (stored here, run by the daemon; see
//! [`crate::schedule`]).

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::catalog::GroupRecord;
use crate::cleaner::{clean_group, CleanerOptions, CleanerReport, LiveRecipe, RunControl};
use crate::engine::{now_secs, Engine};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::recipe::recipe_path;
use crate::schedule::{parse_day, parse_hhmm, CleanerSchedule};

const STATUS_KEY: &str = "cleaner/status";
const SCHEDULES_KEY: &str = "cleaner/schedules";

/// The status of the cleaner, persisted in the catalog.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CleanerStatus {
    /// `idle` (no run yet, or the last one ended), `running` (a run in this process) or
    /// `interrupted` (the last run never ended: the process died; the next run starts again).
    pub state: String,
    /// Start of the last run, seconds since the Unix epoch.
    pub last_started: Option<u64>,
    /// End of the last run that ended.
    pub last_finished: Option<u64>,
    /// The error that ended the last run, if it failed.
    pub last_error: Option<String>,
    /// What the last run that ended did.
    pub last_report: Option<CleanerReport>,
    /// What the run going on (or, when `interrupted`, the run that died) had done by its last
    /// committed batch, storage group by storage group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<CleanerReport>,
    /// For an `interrupted` run: the packs no live stream references now (the copies of the
    /// batch it was compacting when it died, and packs it had moved every chunk out of), which
    /// the next run deletes before it copies anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_behind: Option<LeftBehind>,
}

/// Pack files an interrupted cleaner run left for the next run to delete.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LeftBehind {
    /// Pack files with no live chunk.
    pub packs: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Engine {
    /// The live recipes of a storage group, as listed in the catalog now.
    fn live_recipes(&self, g: &GroupRecord) -> Result<Vec<LiveRecipe>> {
        let store = self.inner.group_store(g)?;
        let mut out = Vec::new();
        for c in self.catalog().containers()?.into_iter().filter(|c| c.group_id == g.id) {
            for s in self.catalog().streams(c.id)? {
                out.push(LiveRecipe {
                    path: recipe_path(store.recipes_dir(), s.id),
                    name: format!("{}/{}", c.name, s.name),
                });
            }
            // Streams in the recycle bin keep their chunks until they expire.
            for r in self.catalog().recycled(c.id)? {
                out.push(LiveRecipe {
                    path: recipe_path(store.recipes_dir(), r.stream.id),
                    name: format!("{}/{} (recycle bin)", c.name, r.stream.name),
                });
            }
        }
        Ok(out)
    }

    /// Runs the cleaner over every storage group now (see [`crate::cleaner`]); safe while
    /// streams are written. One run at a time per engine.
    pub fn run_cleaner(&self, opts: &CleanerOptions, progress: &dyn Progress) -> Result<CleanerReport> {
        self.run_cleaner_until(opts, &AtomicBool::new(false), progress)
    }

    /// [`Engine::run_cleaner`] that stops early once `stop` is set: at the next pack it would
    /// copy, leaving the packs not reached for a later run (the report counts them as
    /// deferred and says `stopped_early`). Storage groups not started yet are skipped.
    pub fn run_cleaner_until(
        &self,
        opts: &CleanerOptions,
        stop: &AtomicBool,
        progress: &dyn Progress,
    ) -> Result<CleanerReport> {
        if !(0.0..=1.0).contains(&opts.compact_below) {
            return Err(Error::invalid("compaction threshold", opts.compact_below.to_string(), "use 0 to 1"));
        }
        let _running = self
            .inner
            .maintenance
            .try_lock()
            .ok_or_else(|| Error::Conflict("the cleaner or a repair is already running".into()))?;
        let mut status: CleanerStatus = self.catalog().meta(STATUS_KEY)?.unwrap_or_default();
        if !opts.dry_run {
            status.state = "running".into();
            status.last_started = Some(now_secs());
            status.progress = None;
            status.left_behind = None;
            self.catalog().put_meta(STATUS_KEY, &status)?;
        }
        let done_groups = std::cell::RefCell::new(CleanerReport::default());
        // After each committed batch the status record says how far the run got, so an
        // interrupted run is reported with what it had done.
        let on_batch = |group: &CleanerReport| -> Result<()> {
            if opts.dry_run {
                return Ok(());
            }
            let mut so_far = done_groups.borrow().clone();
            so_far.add_group(group);
            let mut s = status.clone();
            s.progress = Some(so_far);
            self.catalog().put_meta(STATUS_KEY, &s)
        };
        let ctl = RunControl { stop, progress, on_batch: &on_batch };
        let started = std::time::Instant::now();
        let result = (|| -> Result<CleanerReport> {
            let mut total = CleanerReport { dry_run: opts.dry_run, ..Default::default() };
            if !opts.dry_run {
                total.recycle_bin_purged = self.purge_recycle_bin(now_secs())?;
            }
            for g in self.catalog().groups()? {
                if stop.load(Ordering::Relaxed) {
                    total.stopped_early = true;
                    break;
                }
                let store = self.inner.group_store(&g)?;
                let r = clean_group(&store, &|| self.live_recipes(&g), opts, &ctl)?;
                total.add_group(&r);
                done_groups.borrow_mut().add_group(&r);
            }
            total.seconds = started.elapsed().as_secs_f64();
            Ok(total)
        })();
        progress.finish();
        if !opts.dry_run {
            status.state = "idle".into();
            status.progress = None;
            status.last_finished = Some(now_secs());
            match &result {
                Ok(r) => {
                    status.last_report = Some(r.clone());
                    status.last_error = None;
                }
                Err(e) => status.last_error = Some(e.to_string()),
            }
            self.catalog().put_meta(STATUS_KEY, &status)?;
        }
        result
    }

    /// The cleaner's status: whether a run is going on or was interrupted, and the last report.
    pub fn cleaner_status(&self) -> Result<CleanerStatus> {
        let mut status: CleanerStatus = self.catalog().meta(STATUS_KEY)?.unwrap_or_default();
        if status.state.is_empty() {
            status.state = "idle".into();
        }
        if status.state == "running" && self.inner.maintenance.try_lock().is_some() {
            // Recorded as running, but no run holds this engine: the process running it died.
            status.state = "interrupted".into();
            status.left_behind = Some(self.dead_packs()?);
        }
        Ok(status)
    }

    /// The pack files no live stream references (a survey, changing nothing).
    fn dead_packs(&self) -> Result<LeftBehind> {
        let opts = CleanerOptions { dry_run: true, compact_below: 0.0 };
        let (stop, none) = (AtomicBool::new(false), crate::progress::NoProgress);
        let ctl = RunControl { stop: &stop, progress: &none, on_batch: &|_| Ok(()) };
        let mut out = LeftBehind::default();
        for g in self.catalog().groups()? {
            let store = self.inner.group_store(&g)?;
            let r = clean_group(&store, &|| self.live_recipes(&g), &opts, &ctl)?;
            out.packs += r.packs_deleted;
            out.bytes += r.bytes_reclaimed.max(0) as u64;
        }
        Ok(out)
    }

    /// The stored cleaner schedules.
    pub fn cleaner_schedules(&self) -> Result<Vec<CleanerSchedule>> {
        Ok(self.catalog().meta(SCHEDULES_KEY)?.unwrap_or_default())
    }

    /// Stores a cleaner schedule: `day` as [`parse_day`] takes it, `start`/`stop` as `HH:MM`.
    pub fn add_cleaner_schedule(&self, day: &str, start: &str, stop: &str) -> Result<CleanerSchedule> {
        let day = parse_day(day)?;
        let (a, b) = (parse_hhmm(start)?, parse_hhmm(stop)?);
        if a == b {
            return Err(Error::invalid("stop time", stop, "must differ from the start time"));
        }
        let mut all = self.cleaner_schedules()?;
        if all.iter().any(|s| s.day == day && s.start == start && s.stop == stop) {
            return Err(Error::AlreadyExists { what: "cleaner schedule", name: format!("{day} {start}-{stop}") });
        }
        let id = all.iter().map(|s| s.id).max().unwrap_or(0) + 1;
        let s = CleanerSchedule { id, day: day.into(), start: start.into(), stop: stop.into() };
        all.push(s.clone());
        self.catalog().put_meta(SCHEDULES_KEY, &all)?;
        Ok(s)
    }

    /// Deletes a cleaner schedule by number.
    pub fn delete_cleaner_schedule(&self, id: u32) -> Result<CleanerSchedule> {
        let mut all = self.cleaner_schedules()?;
        let at =
            all.iter().position(|s| s.id == id).ok_or_else(|| Error::not_found("cleaner schedule", id.to_string()))?;
        let gone = all.remove(at);
        self.catalog().put_meta(SCHEDULES_KEY, &all)?;
        Ok(gone)
    }
}
