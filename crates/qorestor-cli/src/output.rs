//! Rendering of results: JSON documents, aligned tables, human-readable sizes, ratios, times.

/// `n` and a noun, plural unless `n` is 1: "1 stream", "2 streams".
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A byte count in decimal units: `"512 B"`, `"1.07 GB"`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KB", "MB", "GB", "TB", "PB", "EB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 999.995 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.2} {}", UNITS[unit])
}

/// A size someone set (a quota, a cartridge capacity, a rate limit), in the units it was most
/// likely given in: sizes are stored as bytes, so the unit is the one, decimal (KB, MB, ...) or
/// binary (KiB, MiB, ...), that writes the value exactly with the largest unit and at most two
/// decimals, decimal on a tie (`10GiB` is shown back as `"10 GiB"`, `1.5TB` as `"1.5 TB"`,
/// 65,536 as `"64 KiB"`). A value neither writes exactly from 1 KB up is shown as [`bytes`] shows
/// it.
pub fn setting_bytes(n: u64) -> String {
    const DECIMAL: [&str; 6] = ["KB", "MB", "GB", "TB", "PB", "EB"];
    const BINARY: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1000 {
        return format!("{n} B");
    }
    // The largest unit (as an index into the tables) that writes n exactly with at most two
    // decimals, in hundredths of that unit.
    let exact = |base: u128| -> Option<(usize, u128)> {
        let hundredths = u128::from(n) * 100;
        (0..6).rev().find_map(|i| {
            let unit = base.pow(i as u32 + 1);
            (u128::from(n) >= unit && hundredths % unit == 0).then_some((i, hundredths / unit))
        })
    };
    let shown = |(i, hundredths): (usize, u128), names: [&str; 6]| {
        let (whole, frac) = (hundredths / 100, hundredths % 100);
        match frac {
            0 => format!("{whole} {}", names[i]),
            f if f % 10 == 0 => format!("{whole}.{} {}", f / 10, names[i]),
            f => format!("{whole}.{f:02} {}", names[i]),
        }
    };
    match (exact(1000), exact(1024)) {
        (Some(d), Some(b)) if b.0 > d.0 => shown(b, BINARY),
        (Some(d), _) => shown(d, DECIMAL),
        (None, Some(b)) => shown(b, BINARY),
        (None, None) => bytes(n),
    }
}

/// A throughput in decimal units per second: `"1.05 GB/s"`.
pub fn rate(bytes_per_sec: f64) -> String {
    if !bytes_per_sec.is_finite() || bytes_per_sec < 0.0 {
        return "-".into();
    }
    format!("{}/s", bytes(bytes_per_sec as u64))
}

/// A ratio such as `"8.4x"`.
pub fn ratio(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.1}x")
    } else {
        "-".into()
    }
}

/// Megabytes (10^6 bytes) per second, rounded to 3 decimals (for JSON reports).
pub fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    round3(bytes as f64 / 1e6 / seconds)
}

/// Rounds to 3 decimals.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Seconds since the Unix epoch as a UTC time, `"2024-03-01 12:00:00"`.
pub fn time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Alignment of a table column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text, padded on the right.
    Left,
    /// Numbers, padded on the left.
    Right,
}

/// A text table with a header row and aligned columns.
#[derive(Debug)]
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers and alignments.
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        Table { columns: columns.to_vec(), rows: Vec::new() }
    }

    /// Adds a row (one cell per column).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    /// Renders the table, columns separated by two spaces, no trailing spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.columns.iter().map(|(h, _)| h.len()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|(h, _)| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i].saturating_sub(cell.chars().count());
                match self.columns[i].1 {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&" ".repeat(pad));
                    }
                    Align::Right => {
                        line.push_str(&" ".repeat(pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Renders `label: value` lines with the values aligned.
pub fn fields(items: &[(&str, String)]) -> String {
    let width = items.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (k, v) in items {
        out.push_str(&format!("{:<width$} {v}\n", format!("{k}:")));
    }
    out
}

/// A name as printed for people: control characters escaped (`\u{1b}`, `\n`, `\t`), so a
/// name never writes to the terminal nor breaks a one-name-per-line listing.
pub fn name(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_print_control_characters_escaped() {
        assert_eq!(name("plain/név.tar"), "plain/név.tar");
        assert_eq!(name("a\u{1b}[2J\u{7}b\tc\nd"), "a\\u{1b}[2J\\u{7}b\\tc\\nd");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1000), "1.00 KB");
        assert_eq!(bytes(1_073_741_824), "1.07 GB");
        assert_eq!(bytes(999_999), "1.00 MB");
        assert_eq!(bytes(u64::MAX), "18.45 EB");
        assert_eq!(rate(1.05e9), "1.05 GB/s");
    }

    #[test]
    fn set_sizes_are_shown_in_the_units_they_were_given_in() {
        use crate::values::parse_size;
        for given in ["10 GiB", "1.5 TiB", "64 KiB", "500 GB", "1.5 TB", "100 GB", "10 MB", "1.25 MiB"] {
            assert_eq!(setting_bytes(parse_size(given).unwrap()), given);
        }
        assert_eq!(setting_bytes(3 << 60), "3 EiB");
        assert_eq!(setting_bytes(3 << 50), "3 PiB");
        assert_eq!(setting_bytes(999), "999 B");
        assert_eq!(setting_bytes(1_024_000), "1024 KB", "a tie goes to decimal");
        assert_eq!(setting_bytes(1_234_567), "1.23 MB", "no exact unit: as bytes() shows it");
        assert_eq!(setting_bytes(u64::MAX), "18.45 EB");
    }

    #[test]
    fn ratios_and_rates() {
        assert_eq!(ratio(8.44), "8.4x");
        assert_eq!(ratio(1.0), "1.0x");
        assert_eq!(ratio(f64::INFINITY), "-");
        assert_eq!(mb_per_s(2_000_000, 2.0), 1.0);
        assert_eq!(mb_per_s(1, 0.0), 0.0);
    }

    #[test]
    fn utc_times() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(time(1_709_294_400), "2024-03-01 12:00:00");
        assert_eq!(time(4_102_444_799), "2099-12-31 23:59:59");
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(&[("NAME", Align::Left), ("SIZE", Align::Right)]);
        t.row(vec!["a".into(), "1.00 KB".into()]);
        t.row(vec!["longer".into(), "5 B".into()]);
        assert_eq!(t.render(), "NAME       SIZE\na       1.00 KB\nlonger      5 B\n");
    }

    #[test]
    fn aligned_fields() {
        let s = fields(&[("name", "x".into()), ("type", "nas".into())]);
        assert_eq!(s, "name: x\ntype: nas\n");
        let s = fields(&[("a", "1".into()), ("long", "2".into())]);
        assert_eq!(s, "a:    1\nlong: 2\n");
    }
}
