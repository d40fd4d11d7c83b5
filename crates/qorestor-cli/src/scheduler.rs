//! The daemon's cleaner scheduler: runs the cleaner once per opening of a stored window
//! (`qorestor cleaner schedule add`) and asks the run to stop when the window closes or the
//! daemon stops (see `qorestor_core::schedule`).
//!
//! A window counts as used once a run started inside it: the cleaner's status records each
//! run's start, so a daemon restarted within a window after a run does not start another.
//! Each run is reported on stderr, and its report is kept in the cleaner's status
//! (`qorestor cleaner status` once the daemon has stopped).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Result;
use qorestor_core::schedule::{open_window, week_minute, OpenWindow};
use qorestor_core::{CleanerOptions, CleanerReport, Engine, NoProgress};

use crate::output;

/// How often the schedules are looked at.
const CHECK_EVERY: Duration = Duration::from_secs(20);
/// How often a waiting or running scheduler looks at the stop flags.
const POLL: Duration = Duration::from_millis(200);

/// The running scheduler; [`Scheduler::stop`] ends it.
pub struct Scheduler {
    shutdown: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Scheduler {
    /// Starts the scheduler thread; it looks at the schedules at once and then every
    /// [`CHECK_EVERY`].
    pub fn start(engine: Engine) -> Result<Scheduler> {
        let shutdown = Arc::new(AtomicBool::new(false));
        let flag = shutdown.clone();
        let thread = thread::Builder::new().name("cleaner-schedule".into()).spawn(move || run(&engine, &flag))?;
        Ok(Scheduler { shutdown, thread })
    }

    /// Stops the scheduler: a cleaner run in progress stops at its next pack and finishes what
    /// it copied. Returns once the thread has ended.
    pub fn stop(self) {
        self.shutdown.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// The scheduler loop.
fn run(engine: &Engine, shutdown: &AtomicBool) {
    let mut next_check = Instant::now();
    while !shutdown.load(Ordering::Relaxed) {
        if Instant::now() >= next_check {
            if let Err(e) = check(engine, shutdown) {
                eprintln!("qorestor serve: cleaner schedule: {e:#}");
            }
            next_check = Instant::now() + CHECK_EVERY;
        }
        thread::sleep(POLL);
    }
}

/// Local time now: the minute of the week and the seconds into the current minute.
fn local_now() -> (u32, u64) {
    let now = jiff::Zoned::now();
    let weekday = now.weekday().to_monday_zero_offset() as u32;
    (week_minute(weekday, now.hour() as u32, now.minute() as u32), now.second() as u64)
}

/// Starts a run if a window is open and no run has started in it yet.
fn check(engine: &Engine, shutdown: &AtomicBool) -> Result<()> {
    let (minute, second) = local_now();
    let schedules = engine.cleaner_schedules()?;
    let Some(window) = open_window(&schedules, minute) else { return Ok(()) };
    let opened_at = unix_now().saturating_sub(window.minutes_in as u64 * 60 + second);
    if engine.cleaner_status()?.last_started.is_some_and(|t| t >= opened_at) {
        return Ok(());
    }
    let closes = Instant::now() + Duration::from_secs((window.minutes_left as u64 * 60).saturating_sub(second));
    let s = schedules.iter().find(|s| s.id == window.schedule).expect("the window comes from these schedules");
    eprintln!(
        "qorestor serve: cleaner: scheduled run started (schedule {}: {} {} to {})",
        s.id, s.day, s.start, s.stop
    );
    match run_until(engine, &window, closes, shutdown) {
        Ok(r) => eprintln!("qorestor serve: cleaner: scheduled run finished: {}", summary(&r)),
        Err(e) => eprintln!("qorestor serve: cleaner: scheduled run failed: {e}"),
    }
    Ok(())
}

/// Runs the cleaner, setting its stop flag when the window closes or the daemon stops.
fn run_until(
    engine: &Engine,
    window: &OpenWindow,
    closes: Instant,
    shutdown: &AtomicBool,
) -> qorestor_core::Result<CleanerReport> {
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let run = scope.spawn(|| engine.run_cleaner_until(&CleanerOptions::default(), &stop, &NoProgress));
        while !run.is_finished() {
            if !stop.load(Ordering::Relaxed) && (shutdown.load(Ordering::Relaxed) || Instant::now() >= closes) {
                let why = if shutdown.load(Ordering::Relaxed) { "the daemon is stopping" } else { "its window closed" };
                eprintln!("qorestor serve: cleaner: asking the run of schedule {} to stop: {why}", window.schedule);
                stop.store(true, Ordering::Relaxed);
            }
            thread::sleep(POLL);
        }
        run.join().unwrap_or_else(|_| Err(qorestor_core::Error::Internal("the cleaner run panicked".into())))
    })
}

/// One line saying what a run did.
fn summary(r: &CleanerReport) -> String {
    let mut s = format!(
        "reclaimed {}, {} packs deleted, {} compacted, {} chunks copied in {:.1} s",
        output::bytes(r.bytes_reclaimed.max(0) as u64),
        r.packs_deleted,
        r.packs_compacted,
        r.chunks_copied,
        r.seconds
    );
    if r.stopped_early {
        s.push_str(&format!("; stopped early, {} packs left for the next window", r.packs_deferred));
    }
    s
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
