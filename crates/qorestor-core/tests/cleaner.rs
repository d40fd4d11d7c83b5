//! Cleaner tests: space comes back, live streams stay bit-exact (also with a writer running
//! during the cleaner), and after a full run no pack wastes more than the threshold allows.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use qorestor_core::{
    ChunkParams, CleanerOptions, Compression, ContainerKind, Engine, GroupOptions, NoProgress, StatsScope,
};

/// Small packs, so that a few MiB of data spread over many packs.
fn small_packs() {
    std::env::set_var(qorestor_core::test_support::PACK_SIZE_ENV, (256 << 10).to_string());
}

const SMALL: ChunkParams = ChunkParams { min: 512, avg: 2048, max: 8192 };

/// Pseudo-random bytes made of 1 KiB blocks drawn from a pool of `pool` distinct blocks (so
/// different seeds share content, as backup generations do); every third block is text.
fn data(seed: u64, len: usize, pool: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut out = Vec::with_capacity(len + 1024);
    while out.len() < len {
        let block = next() % pool;
        let mut y = block.wrapping_mul(0xD6E8_FEB8_6659_FD93) | 1;
        for i in 0..128u64 {
            y ^= y >> 12;
            y ^= y << 25;
            y ^= y >> 27;
            if block.is_multiple_of(3) {
                out.extend_from_slice(format!("{:07}\n", (y >> 40) % 1000).as_bytes());
            } else {
                out.extend_from_slice(&(y ^ i).to_le_bytes());
            }
        }
    }
    out.truncate(len);
    out
}

fn setup(dir: &Path) -> Engine {
    small_packs();
    let e = Engine::create(dir).unwrap();
    e.add_storage_group("g", GroupOptions { compression: Compression::Fast, chunking: SMALL }).unwrap();
    e.add_container("c", "g", ContainerKind::Object).unwrap();
    e.add_container("bg", "g", ContainerKind::Object).unwrap();
    e
}

fn put(e: &Engine, container: &str, name: &str, bytes: &[u8]) {
    let mut w = e.create_stream(container, name).unwrap();
    for piece in bytes.chunks(100_000) {
        w.write_all(piece).unwrap();
    }
    w.finish().unwrap();
}

/// Writes `count` 3 MiB generations `gen0`.. that share part of their content; returns them
/// by name.
fn put_generations(e: &Engine, count: u64) -> HashMap<String, Vec<u8>> {
    let mut model = HashMap::new();
    for g in 0..count {
        let bytes = data(g, 3 << 20, 4000 + g * 700);
        put(e, "c", &format!("gen{g}"), &bytes);
        model.insert(format!("gen{g}"), bytes);
    }
    model
}

fn get(e: &Engine, container: &str, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    e.open_stream(container, name).unwrap().read_to_end(&mut out).unwrap();
    out
}

fn check_all(e: &Engine, container: &str, model: &HashMap<String, Vec<u8>>) {
    let mut listed: Vec<String> = e.streams(container).unwrap().into_iter().map(|s| s.name).collect();
    listed.sort();
    let mut expected: Vec<String> = model.keys().cloned().collect();
    expected.sort();
    assert_eq!(listed, expected);
    for (name, bytes) in model {
        assert!(get(e, container, name) == *bytes, "{container}/{name} differs");
    }
}

/// After a full run every pack holds at least the threshold's share of live bytes, so the
/// stored bytes exceed the live ones by at most 1/threshold (plus footers and headers).
fn assert_waste_bounded(e: &Engine, compact_below: f64) {
    let s = e.stats(&StatsScope::System).unwrap();
    let bound = s.live_stored_bytes as f64 / compact_below * 1.02 + 4096.0;
    assert!(
        (s.stored_bytes as f64) <= bound,
        "stored {} > bound {bound:.0} (live {})",
        s.stored_bytes,
        s.live_stored_bytes
    );
}

#[test]
fn deleting_generations_gives_space_back_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path());
    let mut model = put_generations(&e, 5);
    let before = e.stats(&StatsScope::System).unwrap();
    let dry = e.run_cleaner(&CleanerOptions { dry_run: true, ..Default::default() }, &NoProgress).unwrap();
    assert_eq!(dry.packs_deleted + dry.packs_compacted, 0, "nothing is garbage yet: {dry:?}");
    for g in 0..3u64 {
        e.delete_stream("c", &format!("gen{g}")).unwrap();
        model.remove(&format!("gen{g}"));
    }
    let dry = e.run_cleaner(&CleanerOptions { dry_run: true, ..Default::default() }, &NoProgress).unwrap();
    assert!(dry.bytes_reclaimed > 0, "{dry:?}");
    assert_eq!(e.stats(&StatsScope::System).unwrap().stored_bytes, before.stored_bytes, "a dry run changes nothing");
    let opts = CleanerOptions { dry_run: false, compact_below: 0.7 };
    let r = e.run_cleaner(&opts, &NoProgress).unwrap();
    assert!(r.packs_deleted + r.packs_compacted > 0, "{r:?}");
    assert!(r.bytes_reclaimed > 0, "{r:?}");
    let after = e.stats(&StatsScope::System).unwrap();
    assert_eq!(after.stored_bytes, r.stored_bytes_after);
    assert!(after.stored_bytes < before.stored_bytes, "{} !< {}", after.stored_bytes, before.stored_bytes);
    assert_eq!(after.logical_bytes, 2 * (3 << 20));
    check_all(&e, "c", &model);
    assert_waste_bounded(&e, opts.compact_below);
    let status = e.cleaner_status().unwrap();
    assert_eq!(status.state, "idle");
    assert_eq!(status.last_report.as_ref(), Some(&r));
    // Everything still reads after a reopen, and a second run finds little to do.
    drop(e);
    let e = Engine::open(dir.path()).unwrap();
    check_all(&e, "c", &model);
    let again = e.run_cleaner(&opts, &NoProgress).unwrap();
    assert_eq!(again.packs_compacted + again.packs_deleted, 0, "{again:?}");
    // Deleting everything leaves (almost) nothing.
    for name in model.keys() {
        e.delete_stream("c", name).unwrap();
    }
    e.run_cleaner(&opts, &NoProgress).unwrap();
    let empty = e.stats(&StatsScope::System).unwrap();
    assert_eq!(empty.stored_bytes, 0, "{empty:?}");
    // New data after a full clean dedups and reads as usual.
    let bytes = data(9, 1 << 20, 300);
    put(&e, "c", "after", &bytes);
    assert!(get(&e, "c", "after") == bytes);
}

#[test]
fn compaction_off_deletes_only_dead_packs() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path());
    put(&e, "c", "a", &data(1, 2 << 20, 1_000_000));
    put(&e, "c", "b", &data(2, 2 << 20, 1_000_000));
    e.delete_stream("c", "a").unwrap();
    let r = e.run_cleaner(&CleanerOptions { dry_run: false, compact_below: 0.0 }, &NoProgress).unwrap();
    assert_eq!(r.packs_compacted, 0);
    assert!(r.packs_deleted > 0, "{r:?}");
    assert_eq!(r.chunks_copied, 0);
    assert!(get(&e, "c", "b") == data(2, 2 << 20, 1_000_000));
}

/// Asks the run it watches to stop once it has copied its first pack.
struct StopAfterFirstPack<'a>(&'a AtomicBool);

impl qorestor_core::Progress for StopAfterFirstPack<'_> {
    fn inc(&self, _n: u64) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_run_asked_to_stop_finishes_what_it_copied_and_leaves_the_rest_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path());
    let mut model = put_generations(&e, 4);
    for g in 0..2u64 {
        e.delete_stream("c", &format!("gen{g}")).unwrap();
        model.remove(&format!("gen{g}"));
    }
    let opts = CleanerOptions { dry_run: false, compact_below: 0.7 };
    let dry = e.run_cleaner(&CleanerOptions { dry_run: true, ..opts }, &NoProgress).unwrap();
    let chosen = dry.packs_deleted + dry.packs_compacted;
    assert!(chosen >= 3, "the test needs several packs to reclaim: {dry:?}");

    // Already asked to stop: nothing is touched.
    let stopped = AtomicBool::new(true);
    let r = e.run_cleaner_until(&opts, &stopped, &NoProgress).unwrap();
    assert!(r.stopped_early, "{r:?}");
    assert_eq!((r.packs_deleted, r.packs_compacted, r.chunks_copied), (0, 0, 0), "{r:?}");

    // Asked to stop after the first pack it copies: the dead packs (deleted first, before
    // anything is copied) and that one are reclaimed, the others are released.
    let stop = AtomicBool::new(false);
    let before = e.stats(&StatsScope::System).unwrap().stored_bytes;
    let r = e.run_cleaner_until(&opts, &stop, &StopAfterFirstPack(&stop)).unwrap();
    assert!(r.stopped_early, "{r:?}");
    assert_eq!((r.packs_deleted, r.packs_compacted), (dry.packs_deleted, 1), "{r:?}");
    assert_eq!(r.packs_deferred, chosen - dry.packs_deleted - 1, "{r:?}");
    assert!(e.stats(&StatsScope::System).unwrap().stored_bytes < before);
    check_all(&e, "c", &model);
    // Released packs answer lookups again: rewriting a live generation stores nothing new.
    let stored = e.stats(&StatsScope::System).unwrap().stored_bytes;
    put(&e, "c", "gen3-again", &model["gen3"]);
    model.insert("gen3-again".into(), model["gen3"].clone());
    assert_eq!(e.stats(&StatsScope::System).unwrap().stored_bytes, stored);

    // The next run, not stopped, does the rest.
    let rest = e.run_cleaner(&opts, &NoProgress).unwrap();
    assert!(!rest.stopped_early && rest.packs_deferred == 0, "{rest:?}");
    assert_eq!(rest.packs_deleted + rest.packs_compacted, chosen - dry.packs_deleted - 1, "{rest:?}");
    check_all(&e, "c", &model);
    assert_waste_bounded(&e, opts.compact_below);
}

#[test]
fn schedules_are_stored_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::create(dir.path()).unwrap();
    let s = e.add_cleaner_schedule("Sat", "22:00", "06:00").unwrap();
    assert_eq!((s.id, s.day.as_str()), (1, "saturday"));
    assert!(e.add_cleaner_schedule("saturday", "22:00", "06:00").is_err(), "duplicate");
    assert!(e.add_cleaner_schedule("noday", "22:00", "06:00").is_err());
    assert!(e.add_cleaner_schedule("daily", "22:00", "22:00").is_err());
    e.add_cleaner_schedule("daily", "01:00", "02:30").unwrap();
    drop(e);
    let e = Engine::open(dir.path()).unwrap();
    assert_eq!(e.cleaner_schedules().unwrap().len(), 2);
    assert_eq!(e.delete_cleaner_schedule(1).unwrap().day, "saturday");
    assert!(e.delete_cleaner_schedule(1).is_err());
    assert_eq!(e.cleaner_schedules().unwrap()[0].day, "daily");
}

#[derive(Debug, Clone)]
enum Op {
    Put { name: u8, seed: u64, kib: usize },
    Delete { name: u8 },
    Clean { compact_below: f64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, any::<u64>(), 16usize..1536).prop_map(|(name, seed, kib)| Op::Put { name, seed, kib }),
        2 => (0u8..6).prop_map(|name| Op::Delete { name }),
        2 => prop_oneof![Just(0.0), Just(0.5), Just(0.9)].prop_map(|compact_below| Op::Clean { compact_below }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Any sequence of puts, deletes and cleaner runs, with a writer thread putting streams
    /// into another container the whole time: every live stream reads back bit-exact, and a
    /// final full run leaves no more waste than the threshold allows.
    #[test]
    fn random_puts_deletes_and_cleans_with_a_concurrent_writer(ops in prop::collection::vec(op(), 4..14)) {
        let dir = tempfile::tempdir().unwrap();
        let e = setup(dir.path());
        let stop = Arc::new(AtomicBool::new(false));
        let bg = {
            let (e, stop) = (e.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut written = HashMap::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Shares blocks with the foreground streams (same pool), so its lookups
                    // hit packs the cleaner condemns.
                    let bytes = data(1000 + i, 200 << 10, 2000);
                    let name = format!("s{}", i % 4);
                    put(&e, "bg", &name, &bytes);
                    written.insert(name, bytes);
                    i += 1;
                }
                written
            })
        };
        let mut model: HashMap<String, Vec<u8>> = HashMap::new();
        for op in &ops {
            match op {
                Op::Put { name, seed, kib } => {
                    let bytes = data(*seed, kib << 10, 2000);
                    put(&e, "c", &format!("n{name}"), &bytes);
                    model.insert(format!("n{name}"), bytes);
                }
                Op::Delete { name } => {
                    let key = format!("n{name}");
                    prop_assert_eq!(e.delete_stream("c", &key).is_ok(), model.remove(&key).is_some());
                }
                Op::Clean { compact_below } => {
                    e.run_cleaner(&CleanerOptions { dry_run: false, compact_below: *compact_below }, &NoProgress)
                        .unwrap();
                    check_all(&e, "c", &model);
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        let written = bg.join().unwrap();
        check_all(&e, "c", &model);
        check_all(&e, "bg", &written);
        let opts = CleanerOptions { dry_run: false, compact_below: 0.5 };
        e.run_cleaner(&opts, &NoProgress).unwrap();
        check_all(&e, "c", &model);
        check_all(&e, "bg", &written);
        assert_waste_bounded(&e, opts.compact_below);
        drop(e);
        let e = Engine::open(dir.path()).unwrap();
        check_all(&e, "c", &model);
        check_all(&e, "bg", &written);
    }
}

/// Chunks of up to 4 MiB (the largest a policy allows), larger than the cleaner's copy batch
/// and than a small pack: a compacting run and verify keep the surviving stream bit-exact.
#[test]
fn chunks_of_several_mebibytes_are_compacted_and_verified() {
    small_packs();
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::create(dir.path()).unwrap();
    let large = ChunkParams { min: 1 << 20, avg: 2 << 20, max: 4 << 20 };
    e.add_storage_group("g", GroupOptions { compression: Compression::Fast, chunking: large }).unwrap();
    e.add_container("c", "g", ContainerKind::Object).unwrap();
    let (kept, dropped) = (data(1, 20 << 20, 1 << 40), data(2, 20 << 20, 1 << 40));
    // Interleaved, so that packs hold chunks of both streams and must be compacted.
    let mut w1 = e.create_stream("c", "kept").unwrap();
    let mut w2 = e.create_stream("c", "dropped").unwrap();
    for (a, b) in kept.chunks(3 << 20).zip(dropped.chunks(3 << 20)) {
        w1.write_all(a).unwrap();
        w2.write_all(b).unwrap();
    }
    w1.finish().unwrap();
    w2.finish().unwrap();
    e.delete_stream("c", "dropped").unwrap();
    let before = e.stats(&StatsScope::System).unwrap().stored_bytes;
    let r = e.run_cleaner(&CleanerOptions { dry_run: false, compact_below: 0.9 }, &NoProgress).unwrap();
    let after = e.stats(&StatsScope::System).unwrap().stored_bytes;
    assert!(after < before * 6 / 10, "{before} -> {after}: {r:?}");
    assert!(r.packs_compacted > 0, "{r:?}");
    assert!(get(&e, "c", "kept") == kept);
    let opts = qorestor_core::VerifyOptions { scope: qorestor_core::VerifyScope::All, repair: false };
    let v = e.verify(&opts, &NoProgress).unwrap();
    assert_eq!(v.damaged_chunks, 0, "{v:?}");
    assert!(v.chunks_checked >= 5, "{v:?}");
}
