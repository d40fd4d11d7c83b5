//! Per-chunk compression: zstd with per-thread reusable contexts, or none.
//!
//! A chunk is stored raw when compression does not shrink it by at least 1/32: decompressing
//! costs more than the few bytes it would save.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};

/// A storage group's compression policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Store chunks raw.
    None,
    /// zstd at a fast level (the default).
    #[default]
    Fast,
    /// zstd at a high level: smaller, slower to write, as fast to read.
    Best,
}

impl Compression {
    /// The zstd level used, if any.
    pub fn zstd_level(self) -> Option<i32> {
        match self {
            Compression::None => None,
            Compression::Fast => Some(FAST_LEVEL),
            Compression::Best => Some(BEST_LEVEL),
        }
    }

    /// The policy's name as used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Fast => "fast",
            Compression::Best => "best",
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "none" => Ok(Compression::None),
            "fast" => Ok(Compression::Fast),
            "best" => Ok(Compression::Best),
            _ => Err(crate::Error::invalid("compression", s, "expected none, fast or best")),
        }
    }
}

/// zstd level of the `fast` policy (see `docs/CHUNKING.md` for the measurement).
pub const FAST_LEVEL: i32 = 1;
/// zstd level of the `best` policy.
pub const BEST_LEVEL: i32 = 12;

/// How a chunk's payload is encoded in its pack record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    /// The payload is the raw chunk.
    Raw = 0,
    /// The payload is one zstd frame.
    Zstd = 1,
}

impl Codec {
    /// Decodes the on-disk codec byte.
    pub fn from_u8(b: u8) -> Option<Codec> {
        match b {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            _ => None,
        }
    }
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>, Vec<u8>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Compresses `raw` at `level`, appending the payload to `out` when it helps.
///
/// Returns [`Codec::Zstd`] when a compressed payload was appended, [`Codec::Raw`] (and appends
/// nothing) when the chunk should be stored raw.
pub fn compress_into(raw: &[u8], level: i32, out: &mut Vec<u8>) -> Codec {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _, _)| *l != level) {
            match zstd::bulk::Compressor::new(level) {
                Ok(c) => *slot = Some((level, c, Vec::new())),
                Err(_) => return Codec::Raw,
            }
        }
        let (_, ctx, scratch) = slot.as_mut().expect("set above");
        let bound = zstd::zstd_safe::compress_bound(raw.len());
        if scratch.len() < bound {
            scratch.resize(bound, 0);
        }
        match ctx.compress_to_buffer(raw, &mut scratch[..]) {
            Ok(n) if n < raw.len() - raw.len() / 32 => {
                out.extend_from_slice(&scratch[..n]);
                Codec::Zstd
            }
            _ => Codec::Raw,
        }
    })
}

/// Decompresses a zstd payload into `out`, which must be exactly the raw length.
///
/// Returns `false` when the payload is not a valid frame of exactly `out.len()` bytes.
pub fn decompress_exact(payload: &[u8], out: &mut [u8]) -> bool {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            match zstd::bulk::Decompressor::new() {
                Ok(d) => *slot = Some(d),
                Err(_) => return false,
            }
        }
        let ctx = slot.as_mut().expect("set above");
        matches!(ctx.decompress_to_buffer(payload, out), Ok(n) if n == out.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_raw_fallback() {
        let text = b"backup backup backup backup backup backup backup backup ".repeat(100);
        let mut out = Vec::new();
        assert_eq!(compress_into(&text, FAST_LEVEL, &mut out), Codec::Zstd);
        let mut back = vec![0u8; text.len()];
        assert!(decompress_exact(&out, &mut back));
        assert_eq!(back, text);
        let mut short = vec![0u8; text.len() - 1];
        assert!(!decompress_exact(&out, &mut short));

        let noise: Vec<u8> =
            (0..4096u32).map(|i| (i.wrapping_mul(0x9E3779B9) >> 24) as u8 ^ (i as u8).rotate_left(3)).collect();
        let mut out2 = Vec::new();
        if compress_into(&noise, FAST_LEVEL, &mut out2) == Codec::Raw {
            assert!(out2.is_empty());
        }
        assert!(!decompress_exact(b"not zstd", &mut back));
    }
}
