//! Cleaner schedules: weekly windows in which the daemon runs the cleaner (after QoreStor's
//! `schedule --add --cleaner`), and which window is open at a given local time.
//!
//! Times are local wall-clock minutes: a window is open from its start minute up to, not
//! including, its stop minute, and a stop earlier than the start ends the next day (a
//! `saturday 22:00-06:00` window is open from Saturday 22:00 to Sunday 05:59). The daemon
//! starts one cleaner run per opening of a window and asks it to stop when the window closes;
//! what the run has not reached by then waits for the next one.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Minutes in a day.
const DAY_MINUTES: u32 = 24 * 60;
/// Minutes in a week.
pub const WEEK_MINUTES: u32 = 7 * DAY_MINUTES;

/// A weekly window in which the daemon runs the cleaner (after QoreStor's
/// `schedule --add --cleaner`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanerSchedule {
    /// Number (to delete it by).
    pub id: u32,
    /// `monday` … `sunday`, or `daily`.
    pub day: String,
    /// Start, `HH:MM` (local time).
    pub start: String,
    /// Stop, `HH:MM`; earlier than the start means the next day.
    pub stop: String,
}

/// Day names in week order (Monday first), then `daily`.
const DAYS: [&str; 8] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "daily"];

/// Parses a day name (`monday` or `mon`, any case, or `daily`) into its canonical name.
pub fn parse_day(s: &str) -> Result<&'static str> {
    let l = s.to_ascii_lowercase();
    DAYS.iter()
        .find(|d| **d == l || (l.len() == 3 && d.starts_with(&l) && **d != "daily"))
        .copied()
        .ok_or_else(|| Error::invalid("day", s, "use monday..sunday (or mon..sun) or daily"))
}

/// Parses `HH:MM` (00:00 to 23:59) into minutes after midnight.
pub fn parse_hhmm(s: &str) -> Result<u32> {
    let bad = || Error::invalid("time", s, "use HH:MM from 00:00 to 23:59");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// One opening of a schedule's window that contains a given minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenWindow {
    /// The schedule's number.
    pub schedule: u32,
    /// Whole minutes since this opening started (0 in its first minute).
    pub minutes_in: u32,
    /// Whole minutes until it closes, counted from the start of the current minute (at least 1).
    pub minutes_left: u32,
}

impl CleanerSchedule {
    /// The opening of this schedule's window that contains minute `now` of the week (0 is
    /// Monday 00:00, local time), if any. A schedule whose stored fields do not parse (not
    /// written by this program) is never open.
    pub fn open_at(&self, now: u32) -> Option<OpenWindow> {
        let now = now % WEEK_MINUTES;
        let day = DAYS.iter().position(|d| *d == self.day)? as u32;
        let (start, stop) = (parse_hhmm(&self.start).ok()?, parse_hhmm(&self.stop).ok()?);
        let len = (stop + DAY_MINUTES - start) % DAY_MINUTES;
        if len == 0 {
            return None;
        }
        let days = if day == 7 { 0..7 } else { day..day + 1 };
        // Openings of one schedule last under a day, so at most one contains `now`.
        days.map(|d| (now + WEEK_MINUTES - (d * DAY_MINUTES + start)) % WEEK_MINUTES)
            .find(|&minutes_in| minutes_in < len)
            .map(|minutes_in| OpenWindow { schedule: self.id, minutes_in, minutes_left: len - minutes_in })
    }
}

/// The window open at minute `now` of the week among `schedules`: when several overlap, the
/// one that stays open longest.
pub fn open_window(schedules: &[CleanerSchedule], now: u32) -> Option<OpenWindow> {
    schedules.iter().filter_map(|s| s.open_at(now)).max_by_key(|w| (w.minutes_left, std::cmp::Reverse(w.schedule)))
}

/// Minute of the week (0 is Monday 00:00) of a weekday (0 is Monday), hour and minute.
pub fn week_minute(weekday: u32, hour: u32, minute: u32) -> u32 {
    ((weekday % 7) * DAY_MINUTES + (hour % 24) * 60 + minute % 60) % WEEK_MINUTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_times_parse_strictly() {
        assert_eq!(parse_day("Mon").unwrap(), "monday");
        assert_eq!(parse_day("SUNDAY").unwrap(), "sunday");
        assert_eq!(parse_day("daily").unwrap(), "daily");
        for bad in ["", "mo", "dai", "funday"] {
            assert!(parse_day(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_hhmm("00:00").unwrap(), 0);
        assert_eq!(parse_hhmm("23:59").unwrap(), 23 * 60 + 59);
        for bad in ["24:00", "9:00", "09:60", "0900", "ab:cd", "09:00:00", "-1:00"] {
            assert!(parse_hhmm(bad).is_err(), "{bad:?}");
        }
    }

    fn sched(id: u32, day: &str, start: &str, stop: &str) -> CleanerSchedule {
        CleanerSchedule { id, day: day.into(), start: start.into(), stop: stop.into() }
    }

    #[test]
    fn a_window_is_open_from_its_start_to_before_its_stop_and_may_cross_midnight_and_the_week() {
        let sat = sched(1, "saturday", "22:00", "06:00");
        assert_eq!(sat.open_at(week_minute(5, 21, 59)), None);
        assert_eq!(
            sat.open_at(week_minute(5, 22, 0)),
            Some(OpenWindow { schedule: 1, minutes_in: 0, minutes_left: 480 })
        );
        assert_eq!(
            sat.open_at(week_minute(6, 5, 59)),
            Some(OpenWindow { schedule: 1, minutes_in: 479, minutes_left: 1 })
        );
        assert_eq!(sat.open_at(week_minute(6, 6, 0)), None);
        // Sunday night into Monday morning wraps the week.
        let sun = sched(2, "sun", "23:30", "00:30");
        let sun = CleanerSchedule { day: "sunday".into(), ..sun };
        assert_eq!(sun.open_at(week_minute(0, 0, 10)).map(|w| (w.minutes_in, w.minutes_left)), Some((40, 20)));
        assert_eq!(sun.open_at(week_minute(0, 23, 40)), None, "only on Sunday");
        let daily = sched(3, "daily", "12:00", "13:00");
        for d in 0..7 {
            assert!(daily.open_at(week_minute(d, 12, 30)).is_some());
            assert!(daily.open_at(week_minute(d, 13, 0)).is_none());
        }
    }

    #[test]
    fn overlapping_windows_pick_the_one_open_longest() {
        let all = [sched(1, "daily", "01:00", "02:00"), sched(2, "monday", "00:00", "05:00")];
        assert_eq!(open_window(&all, week_minute(0, 1, 30)).map(|w| w.schedule), Some(2));
        assert_eq!(open_window(&all, week_minute(1, 1, 30)).map(|w| w.schedule), Some(1));
        assert_eq!(open_window(&all, week_minute(1, 3, 0)), None);
        let broken = [sched(9, "someday", "01:00", "02:00"), sched(8, "daily", "1:00", "02:00")];
        assert_eq!(open_window(&broken, week_minute(0, 1, 30)), None);
    }

    proptest::proptest! {
        /// Against a minute-by-minute walk of the week: the window is open exactly on the
        /// minutes from each start (on its days) for the window's length, and the counts agree.
        #[test]
        fn open_at_agrees_with_walking_the_week(day in 0usize..8, start in 0u32..1440, len in 1u32..1440, now in 0u32..WEEK_MINUTES) {
            let hhmm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
            let s = sched(1, DAYS[day], &hhmm(start), &hhmm((start + len) % 1440));
            let days: Vec<u32> = if day == 7 { (0..7).collect() } else { vec![day as u32] };
            let expected = days.iter().find_map(|d| {
                let first = d * 1440 + start;
                (0..len).find(|i| (first + i) % WEEK_MINUTES == now).map(|i| (i, len - i))
            });
            proptest::prop_assert_eq!(s.open_at(now).map(|w| (w.minutes_in, w.minutes_left)), expected);
        }
    }
}
