//! Content-defined chunking: FastCDC-style normalized chunking with a gear hash.
//!
//! A cut point is declared where the rolling gear hash has all bits of a mask clear. Normalized
//! chunking uses a harder mask (one more bit) before the average size and an easier one (one bit
//! fewer) after it, which narrows the size distribution around the average. The first `min`
//! bytes of a chunk are skipped; a chunk never exceeds `max`. Because the hash depends only on
//! the last 64 bytes, an insertion or deletion moves only the cut points near it: the chunks
//! after it re-synchronise and deduplicate again (shift resistance).
//!
//! The gear table is derived from a fixed seed: it is part of the format in the sense that a
//! different table cuts differently (correctness is unaffected, dedup against old data is lost).
//! An encrypted storage group draws its table from its secret chunker key instead
//! ([`Chunker::keyed`]), so that its cut points cannot be predicted from known data.

use crate::error::{Error, Result};
use crate::format::MAX_CHUNK_LEN;

const fn splitmix64(state: u64) -> (u64, u64) {
    let s = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (s, z ^ (z >> 31))
}

const fn gear_table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut state = 0x716F_7265_7374_6F72; // "qorestor"
    let mut i = 0;
    while i < 256 {
        let (s, v) = splitmix64(state);
        state = s;
        table[i] = v;
        i += 1;
    }
    table
}

static GEAR: [u64; 256] = gear_table();

/// A gear table: one 64-bit value per byte value.
type Gear = [u64; 256];

/// Rolls the gear hash over `data[from..to]` starting from `hash`; returns the hash and the
/// end of the first chunk (one past the byte whose hash has all `mask` bits clear), if any.
///
/// Four bytes per step, with the values of the byte-wise recurrence `h = (h << 1) + GEAR[b]`
/// regrouped so that the loop-carried dependency is one shift and one add per four bytes: the
/// table values' combinations (`u`, `w`) and the three intermediate hashes are computed off
/// that chain. Each intermediate hash is tested with its own (rarely taken) branch. This runs
/// about 1.5 times as fast as the previous four-byte step, which combined the four hashes before
/// one branch (thread CPU time; see `docs/CHUNKING.md`).
#[inline(always)]
fn scan(gear: &Gear, data: &[u8], from: usize, to: usize, mut hash: u64, mask: u64) -> (u64, Option<usize>) {
    let span = &data[from..to];
    let mut steps = span.chunks_exact(4);
    let mut at = from;
    for step in &mut steps {
        let (g1, g2, g3, g4) =
            (gear[step[0] as usize], gear[step[1] as usize], gear[step[2] as usize], gear[step[3] as usize]);
        let h1 = (hash << 1).wrapping_add(g1);
        let u = (g1 << 1).wrapping_add(g2);
        let h2 = (hash << 2).wrapping_add(u);
        let h3 = (h2 << 1).wrapping_add(g3);
        let w = (u << 2).wrapping_add((g3 << 1).wrapping_add(g4));
        let h4 = (hash << 4).wrapping_add(w);
        if h1 & mask == 0 {
            return (h1, Some(at + 1));
        }
        if h2 & mask == 0 {
            return (h2, Some(at + 2));
        }
        if h3 & mask == 0 {
            return (h3, Some(at + 3));
        }
        if h4 & mask == 0 {
            return (h4, Some(at + 4));
        }
        hash = h4;
        at += 4;
    }
    for &b in steps.remainder() {
        hash = (hash << 1).wrapping_add(gear[b as usize]);
        at += 1;
        if hash & mask == 0 {
            return (hash, Some(at));
        }
    }
    (hash, None)
}

/// Chunk size parameters of a storage group: minimum, average (a power of two) and maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkParams {
    /// No chunk is shorter than this, except the last one of a stream.
    pub min: u32,
    /// Target average size; a power of two.
    pub avg: u32,
    /// No chunk is longer than this.
    pub max: u32,
}

impl Default for ChunkParams {
    /// 4 KiB / 16 KiB / 64 KiB: chosen by measurement on the shared dataset (`docs/CHUNKING.md`).
    fn default() -> Self {
        ChunkParams { min: 4 << 10, avg: 16 << 10, max: 64 << 10 }
    }
}

impl ChunkParams {
    /// Checks the parameters: `64 <= min < avg < max <= 4 MiB`, `avg` a power of two.
    pub fn validate(&self) -> Result<()> {
        let value = format!("{}/{}/{}", self.min, self.avg, self.max);
        if !self.avg.is_power_of_two() {
            return Err(Error::invalid("chunk sizes", value, "the average must be a power of two"));
        }
        if !(64 <= self.min && self.min < self.avg && self.avg < self.max && self.max <= MAX_CHUNK_LEN) {
            return Err(Error::invalid("chunk sizes", value, format!("need 64 <= min < avg < max <= {MAX_CHUNK_LEN}")));
        }
        Ok(())
    }
}

/// A content-defined chunker for one set of parameters.
#[derive(Debug, Clone)]
pub struct Chunker {
    params: ChunkParams,
    gear: std::sync::Arc<Gear>,
    mask_small: u64,
    mask_large: u64,
}

fn top_bits_mask(bits: u32) -> u64 {
    // The gear hash shifts left, so the high bits depend on the most bytes: use them.
    if bits == 0 {
        0
    } else {
        (!0u64) << (64 - bits)
    }
}

impl Chunker {
    /// Creates a chunker; the parameters must be valid (see [`ChunkParams::validate`]).
    pub fn new(params: ChunkParams) -> Result<Self> {
        Self::with_gear(params, GEAR)
    }

    /// Creates a chunker whose gear table is drawn from a secret key (BLAKE3 in keyed mode,
    /// extended output), for an encrypted storage group.
    pub fn keyed(params: ChunkParams, key: &[u8; 32]) -> Result<Self> {
        let mut bytes = [0u8; 256 * 8];
        blake3::Hasher::new_keyed(key).update(b"gear table").finalize_xof().fill(&mut bytes);
        let mut gear = [0u64; 256];
        for (g, b) in gear.iter_mut().zip(bytes.chunks_exact(8)) {
            *g = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        }
        Self::with_gear(params, gear)
    }

    fn with_gear(params: ChunkParams, gear: Gear) -> Result<Self> {
        params.validate()?;
        let bits = params.avg.trailing_zeros();
        Ok(Chunker {
            params,
            gear: std::sync::Arc::new(gear),
            mask_small: top_bits_mask(bits + 1),
            mask_large: top_bits_mask(bits.saturating_sub(1)),
        })
    }

    /// The parameters.
    pub fn params(&self) -> ChunkParams {
        self.params
    }

    /// Length of the first chunk of `data`.
    ///
    /// When `data` is shorter than `max` and more input may follow, the result is only final if
    /// it is less than `data.len()`; the caller keeps the tail for the next call (see
    /// [`Chunker::cut_all`]).
    pub fn cut(&self, data: &[u8]) -> usize {
        let min = self.params.min as usize;
        if data.len() <= min {
            return data.len();
        }
        let end = data.len().min(self.params.max as usize);
        let normal = end.min(self.params.avg as usize);
        let (hash, cut) = scan(&self.gear, data, min, normal, 0, self.mask_small);
        if let Some(at) = cut {
            return at;
        }
        scan(&self.gear, data, normal, end, hash, self.mask_large).1.unwrap_or(end)
    }

    /// Appends the end offsets of the chunks of `data` to `cuts` and returns how many bytes were
    /// consumed. Without `eof`, a final piece that could still grow (shorter than `max` and not
    /// ended by a cut point) is left unconsumed for the next call.
    pub fn cut_all(&self, data: &[u8], eof: bool, cuts: &mut Vec<u32>) -> usize {
        let mut start = 0;
        while start < data.len() {
            let rest = &data[start..];
            let len = self.cut(rest);
            let complete = len < rest.len() || len == self.params.max as usize || eof;
            if !complete {
                break;
            }
            start += len;
            cuts.push(start as u32);
        }
        start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(c: &Chunker, data: &[u8]) -> Vec<Vec<u8>> {
        let mut cuts = Vec::new();
        let used = c.cut_all(data, true, &mut cuts);
        assert_eq!(used, data.len());
        let mut prev = 0;
        cuts.iter()
            .map(|&e| {
                let v = data[prev..e as usize].to_vec();
                prev = e as usize;
                v
            })
            .collect()
    }

    /// The byte-wise definition the unrolled scan must match exactly.
    fn cut_bytewise(c: &Chunker, data: &[u8]) -> usize {
        let p = c.params;
        if data.len() <= p.min as usize {
            return data.len();
        }
        let end = data.len().min(p.max as usize);
        let normal = end.min(p.avg as usize);
        let mut h = 0u64;
        for (i, &b) in data.iter().enumerate().take(end).skip(p.min as usize) {
            h = (h << 1).wrapping_add(GEAR[b as usize]);
            let mask = if i < normal { c.mask_small } else { c.mask_large };
            if h & mask == 0 {
                return i + 1;
            }
        }
        end
    }

    #[test]
    fn unrolled_scan_matches_the_bytewise_definition() {
        let c = Chunker::new(ChunkParams { min: 64, avg: 256, max: 1024 }).unwrap();
        let data: Vec<u8> = (0..400_000u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
        let mut at = 0;
        while at < data.len() {
            let rest = &data[at..];
            let n = c.cut(rest);
            assert_eq!(n, cut_bytewise(&c, rest), "at {at}");
            at += n;
        }
    }

    proptest::proptest! {
        /// Random parameters and inputs of 1 to 8 random bits per byte (fewer bits, more
        /// hashes with the mask clear, so every branch of the step is taken).
        #[test]
        fn unrolled_scan_matches_the_bytewise_definition_on_random_input(
            seed in 1u64..u64::MAX,
            len in 0usize..100_000,
            shift in 7u32..14,
            bits in 1u32..=8,
        ) {
            let avg = 1u32 << shift;
            let c = Chunker::new(ChunkParams { min: 64.max(avg / 4), avg, max: avg * 4 }).unwrap();
            let data = crate::test_data::xorshift_bytes(len, seed, bits);
            let mut at = 0;
            while at < data.len() {
                let n = c.cut(&data[at..]);
                proptest::prop_assert_eq!(n, cut_bytewise(&c, &data[at..]), "at {}", at);
                at += n;
            }
        }
    }

    #[test]
    fn rejects_bad_params() {
        let bad = [(64, 100, 1000), (0, 1024, 4096), (2048, 1024, 4096), (512, 1024, 1024), (512, 1024, 8 << 20)];
        for (min, avg, max) in bad {
            assert!(Chunker::new(ChunkParams { min, avg, max }).is_err(), "{min}/{avg}/{max}");
        }
    }

    #[test]
    fn sizes_stay_within_bounds_and_average_is_near_target() {
        let c = Chunker::new(ChunkParams::default()).unwrap();
        let data = crate::test_data::xorshift_bytes(8 << 20, 1, 8);
        let cs = chunks(&c, &data);
        for ch in &cs[..cs.len() - 1] {
            assert!(ch.len() >= 4096 && ch.len() <= 65536, "{}", ch.len());
        }
        let avg = data.len() / cs.len();
        assert!((12 << 10..24 << 10).contains(&avg), "average {avg}");
    }

    #[test]
    fn incremental_cutting_matches_one_shot() {
        let c = Chunker::new(ChunkParams { min: 256, avg: 1024, max: 4096 }).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let whole: Vec<u32> = {
            let mut v = Vec::new();
            c.cut_all(&data, true, &mut v);
            v
        };
        let mut inc = Vec::new();
        let mut base = 0usize;
        let mut fed = 0usize;
        while base < data.len() {
            fed = (fed + 7777).min(data.len());
            let mut local = Vec::new();
            let used = c.cut_all(&data[base..fed], fed == data.len(), &mut local);
            inc.extend(local.iter().map(|e| (base + *e as usize) as u32));
            base += used;
        }
        assert_eq!(whole, inc);
    }
}
