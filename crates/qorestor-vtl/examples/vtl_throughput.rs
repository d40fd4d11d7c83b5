//! Throughput of the tape emulation itself (no network): the same bytes written as 256 KiB
//! variable blocks through `Vtl::execute` (WRITE(6), then WRITE FILEMARKS to make them durable)
//! and through the engine's stream API (`create_stream`, `write_all`, `finish`), each into a
//! fresh data directory, alternating, best of `ROUNDS`.
//!
//! ```text
//! cargo run --release -p qorestor-vtl --example vtl_throughput -- [GIB] [ROUNDS] [DIR]
//! ```
//! Defaults: 1 GiB, 2 rounds, data directories under the system temporary directory. The data
//! is pseudo-random (incompressible, unique), so both paths chunk, hash, compress-check and
//! store every byte; the difference is the emulation's cost.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use qorestor_core::{ContainerKind, Engine, DEFAULT_GROUP};
use qorestor_vtl::{LibraryConfig, Vtl, GOOD};

const BLOCK: usize = 256 << 10;

fn data(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn stream_api(dir: &Path, data: &[u8]) -> f64 {
    let engine = Engine::open_or_create(dir).unwrap();
    engine.add_container("c", DEFAULT_GROUP, ContainerKind::Object).unwrap();
    let t = Instant::now();
    let mut w = engine.create_stream("c", "s").unwrap();
    for block in data.chunks(BLOCK) {
        w.write_all(block).unwrap();
    }
    w.finish().unwrap();
    t.elapsed().as_secs_f64()
}

fn vtl_execute(dir: &Path, data: &[u8]) -> f64 {
    let engine = Engine::open_or_create(dir).unwrap();
    let config = LibraryConfig { slots: 2, drives: 1, ie_slots: 0, tapes: 1, tape_size: 100_000_000_000 };
    let vtl = Vtl::create(&engine, "lib", DEFAULT_GROUP, &config).unwrap();
    vtl.load("QS0001L5", 0).unwrap();
    // Unit attentions.
    while vtl.execute(1, &[0; 6], &[]).status != GOOD {}
    let t = Instant::now();
    for block in data.chunks(BLOCK) {
        let n = (block.len() as u32).to_be_bytes();
        let r = vtl.execute(1, &[0x0A, 0, n[1], n[2], n[3], 0], block);
        assert_eq!(r.status, GOOD, "{:?}", r.sense_code());
    }
    let r = vtl.execute(1, &[0x10, 0, 0, 0, 1, 0], &[]);
    assert_eq!(r.status, GOOD);
    t.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let gib: f64 = args.get(1).map_or(1.0, |s| s.parse().expect("GIB is a number"));
    let rounds: usize = args.get(2).map_or(2, |s| s.parse().expect("ROUNDS is a number"));
    let base = args.get(3).map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let len = (gib * (1u64 << 30) as f64) as usize;
    let bytes = data(len);
    let (mut best_stream, mut best_vtl) = (f64::MAX, f64::MAX);
    for round in 0..rounds {
        for which in ["stream", "vtl"] {
            let dir = tempfile::tempdir_in(&base).unwrap();
            let secs = match which {
                "stream" => stream_api(dir.path(), &bytes),
                _ => vtl_execute(dir.path(), &bytes),
            };
            println!("round {round} {which:6} {:8.1} MB/s ({secs:.2} s)", len as f64 / 1e6 / secs);
            if which == "stream" {
                best_stream = best_stream.min(secs);
            } else {
                best_vtl = best_vtl.min(secs);
            }
        }
    }
    let s = len as f64 / 1e6 / best_stream;
    let v = len as f64 / 1e6 / best_vtl;
    println!("best: stream API {s:.1} MB/s, VTL execute {v:.1} MB/s, ratio {:.1}%", 100.0 * v / s);
}
