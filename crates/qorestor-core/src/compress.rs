//! Per-chunk compression: zstd with per-thread reusable contexts, or none.
//!
//! A chunk is stored raw when compression does not shrink it by at least 1/32: decompressing
//! costs more than the few bytes it would save. Chunks whose sampled byte entropy is near 8 bits
//! (already compressed or encrypted data) are not even tried: zstd spends as long failing on
//! them as it spends compressing text, and backup streams carry a lot of such data.

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
    /// The payload is the raw chunk, sealed (encrypted group; see [`crate::crypto`]).
    SealedRaw = 2,
    /// The payload is one zstd frame, sealed (encrypted group).
    SealedZstd = 3,
}

impl Codec {
    /// Decodes the on-disk codec byte.
    pub fn from_u8(b: u8) -> Option<Codec> {
        match b {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            2 => Some(Codec::SealedRaw),
            3 => Some(Codec::SealedZstd),
            _ => None,
        }
    }

    /// The sealed form of a plain codec (a sealed one is returned as is).
    pub fn sealed(self) -> Codec {
        match self {
            Codec::Raw | Codec::SealedRaw => Codec::SealedRaw,
            Codec::Zstd | Codec::SealedZstd => Codec::SealedZstd,
        }
    }

    /// The codec of the plaintext inside a sealed payload (a plain one is returned as is).
    pub fn inner(self) -> Codec {
        match self {
            Codec::Raw | Codec::SealedRaw => Codec::Raw,
            Codec::Zstd | Codec::SealedZstd => Codec::Zstd,
        }
    }

    /// Whether the payload is sealed.
    pub fn is_sealed(self) -> bool {
        matches!(self, Codec::SealedRaw | Codec::SealedZstd)
    }
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Bits per byte of sampled order-0 entropy above which a chunk is stored without trying:
/// Huffman coding could then save under 2%, less than the 1/32 a payload must save. (Uniformly
/// random bytes measure about 7.91 bits on a 2 KiB sample.)
const INCOMPRESSIBLE_BITS: f64 = 7.85;
/// Four windows of this size, spread over the chunk, are sampled.
const SAMPLE_WINDOW: usize = 512;
const SAMPLE_WINDOWS: usize = 4;

/// Whether `raw` looks incompressible: order-0 entropy of four 512-byte windows spread over
/// the chunk (start, quarter, middle, three quarters) above 7.85 bits per byte.
pub fn looks_incompressible(raw: &[u8]) -> bool {
    if raw.len() < SAMPLE_WINDOW * SAMPLE_WINDOWS {
        return false;
    }
    // Four histograms, one per byte lane, so that repeated bytes do not serialise the counts.
    let mut counts = [[0u32; 256]; 4];
    let step = raw.len() / SAMPLE_WINDOWS;
    for w in 0..SAMPLE_WINDOWS {
        let window = &raw[w * step..w * step + SAMPLE_WINDOW];
        for quad in window.chunks_exact(4) {
            counts[0][quad[0] as usize] += 1;
            counts[1][quad[1] as usize] += 1;
            counts[2][quad[2] as usize] += 1;
            counts[3][quad[3] as usize] += 1;
        }
    }
    let n = (SAMPLE_WINDOW * SAMPLE_WINDOWS) as f64;
    let table = c_log2_c();
    let sum: f64 = (0..256).map(|b| table[(counts[0][b] + counts[1][b] + counts[2][b] + counts[3][b]) as usize]).sum();
    n.log2() - sum / n > INCOMPRESSIBLE_BITS
}

/// `c * log2(c)` for every count a sample can hold (0 and 1 give 0): a table lookup instead of
/// 256 logarithms per chunk.
fn c_log2_c() -> &'static [f64; SAMPLE_WINDOW * SAMPLE_WINDOWS + 1] {
    static TABLE: std::sync::OnceLock<[f64; SAMPLE_WINDOW * SAMPLE_WINDOWS + 1]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|c| if c > 1 { c as f64 * (c as f64).log2() } else { 0.0 }))
}

/// Compresses `raw` at `level`, appending the payload to `out` when it helps.
///
/// Returns [`Codec::Zstd`] when a compressed payload was appended, [`Codec::Raw`] (and leaves
/// `out` as it was) when the chunk should be stored raw. The frame is written straight into
/// `out`'s spare capacity.
pub fn compress_into(raw: &[u8], level: i32, out: &mut Vec<u8>) -> Codec {
    if looks_incompressible(raw) {
        return Codec::Raw;
    }
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            match zstd::bulk::Compressor::new(level) {
                Ok(c) => *slot = Some((level, c)),
                Err(_) => return Codec::Raw,
            }
        }
        let (_, ctx) = slot.as_mut().expect("set above");
        let start = out.len();
        // Anything not at least 1/32 smaller is stored raw, so the frame may not exceed that.
        let limit = raw.len() - raw.len() / 32;
        out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
        let mut cursor = std::io::Cursor::new(std::mem::take(out));
        cursor.set_position(start as u64);
        let result = ctx.compress_to_buffer(raw, &mut cursor);
        *out = cursor.into_inner();
        match result {
            Ok(n) if n < limit => Codec::Zstd,
            _ => {
                out.truncate(start);
                Codec::Raw
            }
        }
    })
}

/// Decompresses a zstd payload, appending exactly `raw_len` bytes to `out`.
///
/// Returns `false` (and leaves `out` as it was) when the payload is not a valid frame of
/// exactly `raw_len` bytes. The bytes are written straight into `out`'s spare capacity.
pub fn decompress_append(payload: &[u8], raw_len: usize, out: &mut Vec<u8>) -> bool {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            match zstd::bulk::Decompressor::new() {
                Ok(d) => *slot = Some(d),
                Err(_) => return false,
            }
        }
        let ctx = slot.as_mut().expect("set above");
        let start = out.len();
        out.reserve_exact(raw_len);
        // The cursor's capacity is the Vec's: limit the frame to `raw_len` by checking after.
        let mut cursor = std::io::Cursor::new(std::mem::take(out));
        cursor.set_position(start as u64);
        let result = ctx.decompress_to_buffer(payload, &mut cursor);
        *out = cursor.into_inner();
        if matches!(result, Ok(n) if n == raw_len) {
            true
        } else {
            out.truncate(start);
            false
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entropy estimate as first written: a logarithm per byte value.
    fn looks_incompressible_direct(raw: &[u8]) -> bool {
        let mut counts = [0u32; 256];
        let step = raw.len() / SAMPLE_WINDOWS;
        for w in 0..SAMPLE_WINDOWS {
            for &b in &raw[w * step..w * step + SAMPLE_WINDOW] {
                counts[b as usize] += 1;
            }
        }
        let n = (SAMPLE_WINDOW * SAMPLE_WINDOWS) as f64;
        let sum: f64 = counts.iter().filter(|&&c| c > 1).map(|&c| c as f64 * (c as f64).log2()).sum();
        n.log2() - sum / n > INCOMPRESSIBLE_BITS
    }

    #[test]
    fn table_estimate_matches_the_direct_one() {
        // Random bytes with 1..=8 random bits, and random bytes with every k-th one fixed (near
        // the threshold).
        let mut cases: Vec<(u32, usize)> = (1..=8).map(|bits| (bits, 0)).collect();
        cases.extend([7, 11, 23, 41, 97].map(|k| (8, k)));
        let mut seen = [false; 2];
        for (seed, (bits, every)) in (11u64..).zip(cases) {
            for len in [2048usize, 5000, 16 << 10, 65_536] {
                let mut data = crate::test_data::xorshift_bytes(len, seed, bits);
                if every > 0 {
                    data.iter_mut().step_by(every).for_each(|b| *b = b'a');
                }
                let direct = looks_incompressible_direct(&data);
                assert_eq!(looks_incompressible(&data), direct, "{bits} bits, every {every}, {len} bytes");
                seen[usize::from(direct)] = true;
            }
        }
        assert_eq!(seen, [true, true], "the cases cover both answers");
    }

    #[test]
    fn round_trip_and_raw_fallback() {
        let text = b"backup backup backup backup backup backup backup backup ".repeat(100);
        let mut out = Vec::new();
        assert_eq!(compress_into(&text, FAST_LEVEL, &mut out), Codec::Zstd);
        let mut back = Vec::new();
        assert!(decompress_append(&out, text.len(), &mut back));
        assert_eq!(back, text);
        let mut appended = b"prefix".to_vec();
        assert!(decompress_append(&out, text.len(), &mut appended));
        assert_eq!(&appended[6..], &text[..]);
        assert!(!decompress_append(&out, text.len() - 1, &mut appended));
        assert_eq!(appended.len(), 6 + text.len(), "a failed append leaves the buffer as it was");

        assert!(!looks_incompressible(&text));
        let random = crate::test_data::xorshift_bytes(20_000, 7, 8);
        assert!(looks_incompressible(&random));
        let mut none = Vec::new();
        assert_eq!(compress_into(&random, FAST_LEVEL, &mut none), Codec::Raw);
        assert!(none.is_empty());
        let noise: Vec<u8> =
            (0..4096u32).map(|i| (i.wrapping_mul(0x9E3779B9) >> 24) as u8 ^ (i as u8).rotate_left(3)).collect();
        let mut out2 = Vec::new();
        if compress_into(&noise, FAST_LEVEL, &mut out2) == Codec::Raw {
            assert!(out2.is_empty());
        }
        assert!(!decompress_append(b"not zstd", 8, &mut back));
    }
}
