//! Parsers of command-line values (used as clap value parsers, so a bad value is a usage error).

use std::fmt;
use std::str::FromStr;

/// Parses a SIZE: a number (decimals allowed) with an optional unit, `B`, `KB`/`MB`/`GB`/`TB`
/// (powers of 10), `KiB`/`MiB`/`GiB`/`TiB` or `K`/`M`/`G`/`T` (powers of 2, as dd reads them).
/// Units are case-insensitive; a space may precede them. A fraction of a byte is dropped.
///
/// `"64KiB"` and `"64K"` are 65,536; `"1 MB"` is 1,000,000; `"1.5TB"` is 1,500,000,000,000.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let int_len = t.bytes().take_while(u8::is_ascii_digit).count();
    let (int, rest) = t.split_at(int_len);
    let (frac, unit) = match rest.strip_prefix('.') {
        Some(r) => r.split_at(r.bytes().take_while(u8::is_ascii_digit).count()),
        None => ("", rest),
    };
    let shown = qorestor_core::shortened(s);
    if int.is_empty() && frac.is_empty() {
        return Err(format!(
            "{shown:?} is not a size (expected a number with an optional unit, such as 64KiB, 512M or 1.5TB)"
        ));
    }
    let mult: u128 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "size {shown:?} has an unknown unit {:?} (use B, KB, MB, GB, TB, K, M, G, T, KiB, MiB, GiB or TiB)",
                qorestor_core::shortened(unit.trim_start())
            ))
        }
    };
    let too_large = || format!("size {shown:?} is too large (at most 16 EiB)");
    if int.len() > 20 || frac.len() > 18 {
        return Err(too_large());
    }
    let whole: u128 = if int.is_empty() { 0 } else { int.parse().map_err(|_| too_large())? };
    let fraction: u128 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| too_large())? };
    let bytes = whole * mult + fraction * mult / 10u128.pow(frac.len() as u32);
    u64::try_from(bytes).map_err(|_| too_large())
}

/// Parses a SIZE that must fit in 32 bits (chunk sizes).
pub fn parse_size_u32(s: &str) -> Result<u32, String> {
    let n = parse_size(s)?;
    u32::try_from(n).map_err(|_| format!("size {s:?} is too large (at most 4GiB - 1)"))
}

/// A quota given on the command line: bytes, or none (no quota).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota(pub Option<u64>);

/// Parses a quota: a SIZE, or `none` to remove the quota.
pub fn parse_quota(s: &str) -> Result<Quota, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(Quota(None));
    }
    match parse_size(s)? {
        0 => Err(format!("quota {s:?} is zero (give a size, or none to remove the quota)")),
        n => Ok(Quota(Some(n))),
    }
}

/// A space reserve given on the command line: bytes, or `None` for the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserve(pub Option<u64>);

/// Parses a space reserve: a SIZE (0 allowed), or `default`.
pub fn parse_reserve(s: &str) -> Result<Reserve, String> {
    if s.eq_ignore_ascii_case("default") {
        return Ok(Reserve(None));
    }
    parse_size(s).map(|n| Reserve(Some(n)))
}

/// Parses DAYS: a positive integer with an optional `d` (`7`, `7d`).
pub fn parse_days(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let n = t.strip_suffix(['d', 'D']).unwrap_or(t);
    match n.parse::<u64>() {
        Ok(d) if (1..=36_500).contains(&d) => Ok(d),
        _ => Err(format!("{s:?} is not a number of days (expected 1 to 36500, optionally followed by d)")),
    }
}

/// Parses a DURATION: an integer with `s`, `m` or `h` (`90s`, `10m`, `2h`); a bare integer is
/// seconds (`0` means no waiting).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.bytes().take_while(u8::is_ascii_digit).count());
    let secs: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        _ => return Err(format!("{s:?} is not a duration (expected an integer with s, m or h, such as 90s or 10m)")),
    };
    match num.parse::<u64>().ok().and_then(|n| n.checked_mul(secs)) {
        Some(total) if total <= 7 * 86_400 => Ok(std::time::Duration::from_secs(total)),
        Some(_) => Err(format!("duration {s:?} is too long (at most 168h)")),
        None => Err(format!("{s:?} is not a duration (expected an integer with s, m or h, such as 90s or 10m)")),
    }
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// Turned on.
    On,
    /// Turned off.
    Off,
}

/// A stream address, `CONTAINER/STREAM`: split at the first `/`; the stream name may contain
/// more `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAddr {
    /// The container name.
    pub container: String,
    /// The stream name.
    pub stream: String,
}

impl FromStr for StreamAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let shown = qorestor_core::shortened(s);
        let Some((container, stream)) = s.split_once('/') else {
            return Err(format!("{shown:?} is not a stream address (expected CONTAINER/STREAM)"));
        };
        if container.is_empty() {
            return Err(format!("empty container name in {shown:?} (expected CONTAINER/STREAM)"));
        }
        if stream.is_empty() {
            return Err(format!("empty stream name in {shown:?} (expected CONTAINER/STREAM)"));
        }
        qorestor_core::check_stream_address(stream).map_err(|e| e.to_string())?;
        Ok(StreamAddr { container: container.to_string(), stream: stream.to_string() })
    }
}

/// As printed for people: control characters escaped, a very long address shortened.
impl fmt::Display for StreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = format!("{}/{}", self.container, self.stream);
        f.write_str(&crate::output::name(&qorestor_core::shortened(&full)))
    }
}

/// Checks a name given to a new storage group or container (`[A-Za-z0-9._-]{1,64}`).
pub fn parse_object_name(s: &str) -> Result<String, String> {
    match qorestor_core::check_object_name("name", s) {
        Ok(()) => Ok(s.to_string()),
        Err(qorestor_core::Error::InvalidInput { value, reason, .. }) => Err(format!("{value:?}: {reason}")),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_and_without_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("12B"), Ok(12));
        assert_eq!(parse_size("1KB"), Ok(1_000));
        assert_eq!(parse_size("3MB"), Ok(3_000_000));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("1TB"), Ok(1_000_000_000_000));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert_eq!(parse_size("16kib"), Ok(16 << 10));
        assert_eq!(parse_size("1 MiB"), Ok(1 << 20));
        assert_eq!(parse_size(" 7 "), Ok(7));
        assert_eq!(parse_size("64K"), Ok(65_536));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("1.5TB"), Ok(1_500_000_000_000));
        assert_eq!(parse_size("1.5K"), Ok(1_536));
        assert_eq!(parse_size("0.5"), Ok(0), "a fraction of a byte is dropped");
        assert_eq!(parse_size(".25MiB"), Ok(1 << 18));
        assert_eq!(parse_size("2.0000001GB"), Ok(2_000_000_100));
    }

    #[test]
    fn bad_sizes_name_the_value() {
        for bad in ["", "MB", "-1", "1.5XB", "12XB", "1 2", "0x10", "1KiBs", ".", "1.2.3"] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        let e = parse_size("1.5TBB").unwrap_err();
        assert!(e.contains("unknown unit \"TBB\""), "{e}");
        assert!(parse_size("99999999999999999999999").is_err());
        assert!(parse_size("18446744073709551615").is_ok());
        assert!(parse_size("18446744073709551616").is_err());
        assert!(parse_size("20000000TiB").is_err());
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        for bad in ["", "m", "1.5m", "-1s", "10 min", "200h"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    #[test]
    fn u32_sizes() {
        assert_eq!(parse_size_u32("4MiB"), Ok(4 << 20));
        assert!(parse_size_u32("4GiB").is_err());
    }

    #[test]
    fn stream_addresses_split_at_the_first_slash() {
        let a: StreamAddr = "backups/2024/jan/full.tar".parse().unwrap();
        assert_eq!(a.container, "backups");
        assert_eq!(a.stream, "2024/jan/full.tar");
        assert_eq!(a.to_string(), "backups/2024/jan/full.tar");
        let b: StreamAddr = "c/s".parse().unwrap();
        assert_eq!((b.container.as_str(), b.stream.as_str()), ("c", "s"));
    }

    #[test]
    fn existing_names_with_control_characters_stay_addressable_and_print_escaped() {
        let a: StreamAddr = "c/a\u{1b}[2Jb\n".parse().unwrap();
        assert_eq!(a.stream, "a\u{1b}[2Jb\n");
        assert_eq!(a.to_string(), "c/a\\u{1b}[2Jb\\n");
    }

    #[test]
    fn bad_stream_addresses_name_the_value() {
        for bad in ["nocontainer", "/s", "c/", "/", ""] {
            let e = bad.parse::<StreamAddr>().unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        let long = format!("c/{}", "x".repeat(10_000));
        let e = long.parse::<StreamAddr>().unwrap_err();
        assert!(e.len() < 300, "the name is shortened: {e}");
        assert!("c/a\0b".parse::<StreamAddr>().is_err());
    }

    #[test]
    fn object_names() {
        assert_eq!(parse_object_name("Nightly-1.a_b"), Ok("Nightly-1.a_b".into()));
        assert!(parse_object_name("").is_err());
        assert!(parse_object_name("a/b").is_err());
        assert!(parse_object_name(&"n".repeat(65)).is_err());
        for bad in [".", "..", "a\tb", "a\u{1b}b"] {
            assert!(parse_object_name(bad).is_err(), "{bad:?}");
        }
        let long = parse_object_name(&"n".repeat(10_000)).unwrap_err();
        assert!(long.len() < 300, "{long}");
    }
}
