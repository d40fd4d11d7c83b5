//! Parsers of command-line values (used as clap value parsers, so a bad value is a usage error).

use std::fmt;
use std::str::FromStr;

/// Parses a SIZE: an integer with an optional unit, `B`, `KB`/`MB`/`GB`/`TB` (powers of 10) or
/// `KiB`/`MiB`/`GiB`/`TiB` (powers of 2). Units are case-insensitive; a space may precede them.
///
/// `"64KiB"` is 65,536; `"1 MB"` is 1,000,000; `"4096"` is 4,096.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    if num.is_empty() {
        return Err(format!("{s:?} is not a size (expected an integer with an optional unit such as 64KiB or 1GB)"));
    }
    let mult: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(format!("unknown unit {unit:?} in size {s:?} (use KB, MB, GB, TB, KiB, MiB, GiB or TiB)")),
    };
    num.parse::<u64>().ok().and_then(|n| n.checked_mul(mult)).ok_or_else(|| format!("size {s:?} is too large"))
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

/// Parses DAYS: a positive integer with an optional `d` (`7`, `7d`).
pub fn parse_days(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let n = t.strip_suffix(['d', 'D']).unwrap_or(t);
    match n.parse::<u64>() {
        Ok(d) if (1..=36_500).contains(&d) => Ok(d),
        _ => Err(format!("{s:?} is not a number of days (expected 1 to 36500, optionally followed by d)")),
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
        let Some((container, stream)) = s.split_once('/') else {
            return Err(format!("{s:?} is not a stream address (expected CONTAINER/STREAM)"));
        };
        if container.is_empty() {
            return Err(format!("empty container name in {s:?} (expected CONTAINER/STREAM)"));
        }
        if stream.is_empty() {
            return Err(format!("empty stream name in {s:?} (expected CONTAINER/STREAM)"));
        }
        qorestor_core::check_stream_name(stream).map_err(|e| e.to_string())?;
        Ok(StreamAddr { container: container.to_string(), stream: stream.to_string() })
    }
}

impl fmt::Display for StreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.container, self.stream)
    }
}

/// Checks a name given to a new storage group or container (`[A-Za-z0-9._-]{1,64}`).
pub fn parse_object_name(s: &str) -> Result<String, String> {
    match qorestor_core::check_object_name("name", s) {
        Ok(()) => Ok(s.to_string()),
        Err(qorestor_core::Error::InvalidInput { reason, .. }) => Err(reason),
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
    }

    #[test]
    fn bad_sizes_name_the_value() {
        for bad in ["", "MB", "-1", "1.5MB", "12XB", "1 2", "0x10", "1KiBs"] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        assert!(parse_size("18446744073709551615").is_ok());
        assert!(parse_size("18446744073709551616").is_err());
        assert!(parse_size("20000000TiB").is_err());
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
    fn bad_stream_addresses_name_the_value() {
        for bad in ["nocontainer", "/s", "c/", "/", ""] {
            let e = bad.parse::<StreamAddr>().unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        let long = format!("c/{}", "x".repeat(1025));
        assert!(long.parse::<StreamAddr>().is_err());
        assert!("c/a\0b".parse::<StreamAddr>().is_err());
    }

    #[test]
    fn object_names() {
        assert_eq!(parse_object_name("Nightly-1.a_b"), Ok("Nightly-1.a_b".into()));
        assert!(parse_object_name("").is_err());
        assert!(parse_object_name("a/b").is_err());
        assert!(parse_object_name(&"n".repeat(65)).is_err());
    }
}
