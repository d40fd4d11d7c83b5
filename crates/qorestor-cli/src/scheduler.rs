//! The daemon's cleaner scheduler: runs the cleaner once per opening of a stored window
//! (`qorestor cleaner schedule add`) and asks the run to stop when the window closes or the
//! daemon stops (see `qorestor_core::schedule`).
//!
//! A window counts as used once a run started inside it: the cleaner's status records each
//! run's start, so a daemon restarted within a window after a run does not start another (it
//! says so once per opening). Each run is reported on stderr, and its report is kept in the
//! cleaner's status (`qorestor cleaner status` once the daemon has stopped).
//!
//! The time comes from a [`Clock`]: the daemon's is [`SystemClock`]; tests set their own, so
//! the window logic is checked at any time of the week without waiting for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::Result;
use qorestor_core::schedule::{open_window, week_minute, CleanerSchedule, OpenWindow};
use qorestor_core::{CleanerOptions, CleanerReport, Engine, NoProgress};

use crate::output;

/// How often the schedules are looked at.
const CHECK_EVERY: Duration = Duration::from_secs(20);
/// How often a running cleaner's window is looked at.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// Where the scheduler reads the local time from.
pub trait Clock: Send + Sync {
    /// The current local time.
    fn now(&self) -> jiff::Zoned;
}

/// The system's clock and time zone.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Zoned {
        jiff::Zoned::now()
    }
}

/// The daemon's stop request, which wakes a waiting scheduler at once.
#[derive(Default)]
struct Shutdown {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Shutdown {
    fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.wake.notify_all();
    }

    fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `timeout` for the stop request; returns whether it came.
    fn wait(&self, timeout: Duration) -> bool {
        let stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        let (stopped, _) = self.wake.wait_timeout_while(stopped, timeout, |s| !*s).unwrap_or_else(|e| e.into_inner());
        *stopped
    }
}

/// The running scheduler; [`Scheduler::stop`] ends it.
pub struct Scheduler {
    shutdown: Arc<Shutdown>,
    thread: JoinHandle<()>,
}

impl Scheduler {
    /// Starts the scheduler thread on `clock`; it looks at the schedules at once and then
    /// every [`CHECK_EVERY`].
    pub fn start(engine: Engine, clock: Arc<dyn Clock>) -> Result<Scheduler> {
        let shutdown = Arc::new(Shutdown::default());
        let flag = shutdown.clone();
        let thread =
            thread::Builder::new().name("cleaner-schedule".into()).spawn(move || run(&engine, &*clock, &flag))?;
        Ok(Scheduler { shutdown, thread })
    }

    /// Stops the scheduler: a cleaner run in progress stops at its next pack and finishes what
    /// it copied. Returns once the thread has ended.
    pub fn stop(self) {
        self.shutdown.stop();
        let _ = self.thread.join();
    }
}

/// The scheduler loop.
fn run(engine: &Engine, clock: &dyn Clock, shutdown: &Shutdown) {
    let mut announced = None;
    loop {
        if let Err(e) = check(engine, clock, shutdown, &mut announced) {
            eprintln!("qorestor serve: cleaner schedule: {e:#}");
        }
        if shutdown.wait(CHECK_EVERY) {
            return;
        }
    }
}

/// What the scheduler does at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// No window is open.
    Closed,
    /// `window` is open (since `opened_at`, Unix seconds) and a run already started in it.
    AlreadyRan { window: OpenWindow, opened_at: u64 },
    /// Start a run in `window`, and ask it to stop at `closes_at` (Unix seconds).
    Start { window: OpenWindow, opened_at: u64, closes_at: u64 },
}

/// Seconds since the Unix epoch of `t` (0 before it).
fn unix_seconds(t: &jiff::Zoned) -> u64 {
    t.timestamp().as_second().max(0) as u64
}

/// The window logic: whether a window of `schedules` is open at local time `now`, and whether
/// the run that started last (at `last_started`, Unix seconds) started in this opening of it.
fn decide(schedules: &[CleanerSchedule], last_started: Option<u64>, now: &jiff::Zoned) -> Decision {
    let weekday = now.weekday().to_monday_zero_offset() as u32;
    let minute = week_minute(weekday, now.hour() as u32, now.minute() as u32);
    let Some(window) = open_window(schedules, minute) else { return Decision::Closed };
    let (unix, second) = (unix_seconds(now), now.second() as u64);
    let opened_at = unix.saturating_sub(window.minutes_in as u64 * 60 + second);
    if last_started.is_some_and(|t| t >= opened_at) {
        return Decision::AlreadyRan { window, opened_at };
    }
    let closes_at = (unix + window.minutes_left as u64 * 60).saturating_sub(second);
    Decision::Start { window, opened_at, closes_at }
}

/// Starts a run if a window is open and no run has started in it yet; says once per opening
/// (`announced`) that an open window already had its run.
fn check(engine: &Engine, clock: &dyn Clock, shutdown: &Shutdown, announced: &mut Option<(u32, u64)>) -> Result<()> {
    let schedules = engine.cleaner_schedules()?;
    let last_started = engine.cleaner_status()?.last_started;
    let describe = |id: u32| {
        let s = schedules.iter().find(|s| s.id == id).expect("the window comes from these schedules");
        format!("schedule {}: {} {} to {}", s.id, s.day, s.start, s.stop)
    };
    match decide(&schedules, last_started, &clock.now()) {
        Decision::Closed => {}
        Decision::AlreadyRan { window, opened_at } => {
            if *announced != Some((window.schedule, opened_at)) {
                *announced = Some((window.schedule, opened_at));
                eprintln!(
                    "qorestor serve: cleaner: the window is open ({}) but a run already started in it; \
                     next run in its next opening",
                    describe(window.schedule)
                );
            }
        }
        Decision::Start { window, closes_at, .. } => {
            eprintln!("qorestor serve: cleaner: scheduled run started ({})", describe(window.schedule));
            let cleaner = |stop: &AtomicBool| engine.run_cleaner_until(&CleanerOptions::default(), stop, &NoProgress);
            match run_until(cleaner, window.schedule, closes_at, clock, shutdown) {
                Ok(Ok(r)) => eprintln!("qorestor serve: cleaner: scheduled run finished: {}", summary(&r)),
                Ok(Err(e)) => eprintln!("qorestor serve: cleaner: scheduled run failed: {e}"),
                Err(_) => eprintln!("qorestor serve: cleaner: scheduled run failed: the cleaner panicked"),
            }
        }
    }
    Ok(())
}

/// Why a run closing at `closes_at` (Unix seconds) is to stop now, if it is.
fn stop_reason(shutdown: &Shutdown, clock: &dyn Clock, closes_at: u64) -> Option<&'static str> {
    if shutdown.is_stopped() {
        Some("the daemon is stopping")
    } else if unix_seconds(&clock.now()) >= closes_at {
        Some("its window closed")
    } else {
        None
    }
}

/// Runs `run` (the cleaner of schedule `schedule`), setting its stop flag when the clock
/// reaches `closes_at` (Unix seconds) or the daemon stops. `Err` if `run` panicked.
fn run_until<R: Send>(
    run: impl FnOnce(&AtomicBool) -> R + Send,
    schedule: u32,
    closes_at: u64,
    clock: &dyn Clock,
    shutdown: &Shutdown,
) -> thread::Result<R> {
    let stop = AtomicBool::new(false);
    let (done, finished) = mpsc::channel::<()>();
    thread::scope(|scope| {
        let stop = &stop;
        let handle = scope.spawn(move || {
            let r = run(stop);
            let _ = done.send(());
            r
        });
        loop {
            if !stop.load(Ordering::Relaxed) {
                if let Some(why) = stop_reason(shutdown, clock, closes_at) {
                    eprintln!("qorestor serve: cleaner: asking the run of schedule {schedule} to stop: {why}");
                    stop.store(true, Ordering::Relaxed);
                }
            }
            match finished.recv_timeout(WATCH_EVERY) {
                Err(RecvTimeoutError::Timeout) => {}
                // Finished, or panicked (the sender dropped).
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        handle.join()
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A clock set by the test.
    struct FakeClock(Mutex<jiff::Zoned>);

    impl FakeClock {
        /// Monday 7 December 2026 at `hh:mm:ss`, UTC.
        fn monday(hh: i8, mm: i8, ss: i8) -> FakeClock {
            FakeClock(Mutex::new(at(0, hh, mm, ss)))
        }

        fn advance(&self, seconds: i64) {
            let mut t = self.0.lock().unwrap();
            *t = t.checked_add(jiff::SignedDuration::from_secs(seconds)).unwrap();
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> jiff::Zoned {
            self.0.lock().unwrap().clone()
        }
    }

    /// `days` after Monday 7 December 2026, at `hh:mm:ss` UTC.
    fn at(days: i8, hh: i8, mm: i8, ss: i8) -> jiff::Zoned {
        jiff::civil::date(2026, 12, 7 + days).at(hh, mm, ss, 0).to_zoned(jiff::tz::TimeZone::UTC).unwrap()
    }

    fn schedule(id: u32, day: &str, start: &str, stop: &str) -> CleanerSchedule {
        CleanerSchedule { id, day: day.into(), start: start.into(), stop: stop.into() }
    }

    #[test]
    fn a_run_starts_once_per_opening_of_a_window() {
        let daily = [schedule(1, "daily", "10:00", "10:30")];
        assert_eq!(decide(&[], None, &at(0, 10, 5, 0)), Decision::Closed);
        assert_eq!(decide(&daily, None, &at(0, 9, 59, 59)), Decision::Closed);
        assert_eq!(decide(&daily, None, &at(0, 10, 30, 0)), Decision::Closed);
        let opened = unix_seconds(&at(0, 10, 0, 0));
        let closes = unix_seconds(&at(0, 10, 30, 0));
        let start = |minutes_in, minutes_left| Decision::Start {
            window: OpenWindow { schedule: 1, minutes_in, minutes_left },
            opened_at: opened,
            closes_at: closes,
        };
        assert_eq!(decide(&daily, None, &at(0, 10, 0, 0)), start(0, 30));
        assert_eq!(decide(&daily, None, &at(0, 10, 29, 59)), start(29, 1));
        // Yesterday's run does not count; one in this opening does.
        assert_eq!(decide(&daily, Some(opened - 86_400), &at(0, 10, 12, 40)), start(12, 18));
        let ran = decide(&daily, Some(opened + 5), &at(0, 10, 12, 40));
        assert_eq!(
            ran,
            Decision::AlreadyRan {
                window: OpenWindow { schedule: 1, minutes_in: 12, minutes_left: 18 },
                opened_at: opened
            }
        );
        // The next day's opening starts again.
        assert!(matches!(decide(&daily, Some(opened + 5), &at(1, 10, 0, 1)), Decision::Start { .. }));
    }

    #[test]
    fn a_window_over_midnight_closes_the_next_day() {
        let saturday_night = [schedule(3, "saturday", "22:00", "06:00")];
        assert_eq!(decide(&saturday_night, None, &at(5, 21, 59, 0)), Decision::Closed);
        let closes = unix_seconds(&at(6, 6, 0, 0));
        let Decision::Start { window, opened_at, closes_at } = decide(&saturday_night, None, &at(6, 5, 59, 59)) else {
            panic!("the window is open on Sunday at 05:59:59")
        };
        assert_eq!((window.schedule, opened_at, closes_at), (3, unix_seconds(&at(5, 22, 0, 0)), closes));
        assert_eq!(decide(&saturday_night, None, &at(6, 6, 0, 0)), Decision::Closed);
        // Not on the other nights.
        assert_eq!(decide(&saturday_night, None, &at(4, 23, 0, 0)), Decision::Closed);
    }

    /// A stand-in for the cleaner: says it started, then runs until asked to stop (a hang
    /// is bounded) and returns whether it was asked.
    fn stoppable_run(started: mpsc::Sender<()>) -> impl FnOnce(&AtomicBool) -> bool + Send {
        move |stop| {
            started.send(()).unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) {
                if Instant::now() > deadline {
                    return false;
                }
                thread::sleep(Duration::from_millis(1));
            }
            true
        }
    }

    #[test]
    fn the_run_is_asked_to_stop_when_its_window_closes() {
        let clock = FakeClock::monday(10, 29, 0);
        let closes_at = unix_seconds(&at(0, 10, 30, 0));
        let shutdown = Shutdown::default();
        let (started, is_started) = mpsc::channel();
        thread::scope(|scope| {
            let run = scope.spawn(|| run_until(stoppable_run(started), 1, closes_at, &clock, &shutdown));
            is_started.recv().unwrap();
            assert_eq!(stop_reason(&shutdown, &clock, closes_at), None);
            clock.advance(59);
            assert_eq!(stop_reason(&shutdown, &clock, closes_at), None);
            clock.advance(1);
            assert_eq!(stop_reason(&shutdown, &clock, closes_at), Some("its window closed"));
            assert!(run.join().unwrap().unwrap(), "the run was not asked to stop");
        });
    }

    #[test]
    fn the_run_is_asked_to_stop_when_the_daemon_stops() {
        let clock = FakeClock::monday(10, 0, 0);
        let shutdown = Shutdown::default();
        let (started, is_started) = mpsc::channel();
        let closes_at = unix_seconds(&at(0, 11, 0, 0));
        thread::scope(|scope| {
            let run = scope.spawn(|| run_until(stoppable_run(started), 1, closes_at, &clock, &shutdown));
            is_started.recv().unwrap();
            shutdown.stop();
            assert_eq!(stop_reason(&shutdown, &clock, closes_at), Some("the daemon is stopping"));
            assert!(run.join().unwrap().unwrap(), "the run was not asked to stop");
        });
        // A run that ends by itself is left alone, and a stopped scheduler's wait ends at once.
        let r = run_until(|stop: &AtomicBool| stop.load(Ordering::Relaxed), 1, u64::MAX, &clock, &Shutdown::default());
        assert!(!r.unwrap());
        assert!(shutdown.wait(Duration::from_secs(3600)));
    }
}
