//! The chunker: `Chunker::cut_all` with parameters from the first bytes. At end of input it
//! must consume everything, never cut a chunk longer than `max` (nor, but for the last one,
//! shorter than `min`), and cut the same when the input is fed in pieces.
//!
//! Input: min, avg, max (3 × u32 LE; if `Chunker::new` refuses them, valid parameters are
//! derived from the same bytes), a step byte for the incremental feed, then the data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qorestor_core::format::MAX_CHUNK_LEN;
use qorestor_core::{ChunkParams, Chunker};

fn derive(a: u32, b: u32, c: u32) -> ChunkParams {
    let bits = 7 + b % 15; // avg 128 B ..= 2 MiB
    let avg = 1u32 << bits;
    let min = 64 + a % (avg - 64);
    let max = avg + 1 + c % (MAX_CHUNK_LEN - avg);
    ChunkParams { min, avg, max }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 13 {
        return;
    }
    let w = |i: usize| u32::from_le_bytes(data[i..i + 4].try_into().unwrap());
    let (a, b, c) = (w(0), w(4), w(8));
    let step = data[12] as usize * 61 + 1;
    let input = &data[13..];
    let chunker = match Chunker::new(ChunkParams { min: a, avg: b, max: c }) {
        Ok(ch) => ch,
        Err(_) => Chunker::new(derive(a, b, c)).expect("derived parameters are valid"),
    };
    let p = chunker.params();
    let mut cuts = Vec::new();
    assert_eq!(chunker.cut_all(input, true, &mut cuts), input.len());
    let mut prev = 0usize;
    for (i, &end) in cuts.iter().enumerate() {
        let len = end as usize - prev;
        assert!(len >= 1 && len <= p.max as usize, "chunk {i}: {len} bytes, max {}", p.max);
        if i + 1 < cuts.len() {
            assert!(len >= p.min as usize, "chunk {i}: {len} bytes, min {}", p.min);
        }
        prev = end as usize;
    }
    assert_eq!(prev, input.len());
    let mut inc = Vec::new();
    let (mut base, mut fed) = (0usize, 0usize);
    while base < input.len() {
        fed = (fed + step).min(input.len());
        let mut local = Vec::new();
        let used = chunker.cut_all(&input[base..fed], fed == input.len(), &mut local);
        inc.extend(local.iter().map(|e| (base + *e as usize) as u32));
        base += used;
    }
    assert_eq!(inc, cuts);
});
