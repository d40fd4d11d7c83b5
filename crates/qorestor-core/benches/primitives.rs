//! Throughput of the engine's per-byte primitives on this machine: chunking, fingerprinting,
//! compression and the decode path, on the first generation of the benchmark dataset
//! (`bench/gen_dataset.py`) when it exists (else on generated data).
//! `cargo bench -p qorestor-core --bench primitives`. Prints MB/s per single core; compare
//! with the figures in `docs/CHUNKING.md` ("This host against the reference machine").

use std::time::Instant;

use qorestor_core::compress::{compress_into, decompress_append, Codec, FAST_LEVEL};
use qorestor_core::{ChunkParams, Chunker, Fingerprint};

fn sample() -> Vec<u8> {
    let path = "/tmp/qorestor-bench/ds/tars/gen1.tar";
    match std::fs::read(path) {
        Ok(mut d) => {
            d.truncate(256 << 20);
            d
        }
        Err(_) => {
            let mut x = 1u64;
            (0..(256usize << 20))
                .map(|i| {
                    if i % 8192 < 4096 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    } else {
                        b"log line text "[i % 14]
                    }
                })
                .collect()
        }
    }
}

fn report(name: &str, bytes: usize, f: impl FnOnce()) {
    let t = Instant::now();
    f();
    let s = t.elapsed().as_secs_f64();
    println!("{name:<40} {:>8.0} MB/s", bytes as f64 / s / 1e6);
}

fn main() {
    let data = sample();
    let chunker = Chunker::new(ChunkParams::default()).unwrap();
    let mut cuts = Vec::new();
    report("chunking (4/16/64 KiB)", data.len(), || {
        chunker.cut_all(&data, true, &mut cuts);
    });
    let chunks: Vec<&[u8]> = {
        let mut prev = 0usize;
        cuts.iter()
            .map(|&e| {
                let c = &data[prev..e as usize];
                prev = e as usize;
                c
            })
            .collect()
    };
    println!("{} chunks, average {} bytes", chunks.len(), data.len() / chunks.len().max(1));
    let mut fps = Vec::with_capacity(chunks.len());
    report("BLAKE3 per chunk", data.len(), || {
        fps.extend(chunks.iter().map(|c| Fingerprint::of(c)));
    });
    let skipped = chunks.iter().filter(|c| qorestor_core::compress::looks_incompressible(c)).count();
    println!("{skipped} of {} chunks look incompressible (not tried)", chunks.len());
    let mut payloads = Vec::with_capacity(chunks.len());
    report(&format!("zstd level {FAST_LEVEL} per chunk"), data.len(), || {
        for c in &chunks {
            let mut out = Vec::new();
            let codec = compress_into(c, FAST_LEVEL, &mut out);
            payloads.push((codec, out));
        }
    });
    let tried_raw = payloads
        .iter()
        .zip(&chunks)
        .filter(|((codec, _), c)| *codec == Codec::Raw && !qorestor_core::compress::looks_incompressible(c))
        .count();
    println!("{tried_raw} chunks were tried and still stored raw");
    let stored: usize =
        payloads.iter().zip(&chunks).map(|((codec, p), c)| if *codec == Codec::Raw { c.len() } else { p.len() }).sum();
    println!("compressed to {:.1}% of raw", 100.0 * stored as f64 / data.len() as f64);
    let mut out = Vec::with_capacity(1 << 20);
    report("zstd decompress + BLAKE3 verify", data.len(), || {
        for (((codec, p), c), fp) in payloads.iter().zip(&chunks).zip(&fps) {
            out.clear();
            if *codec == Codec::Zstd {
                assert!(decompress_append(p, c.len(), &mut out));
            } else {
                out.extend_from_slice(c);
            }
            assert!(Fingerprint::of(&out) == *fp);
        }
    });
}
