//! Engine integration tests: round trips, shift resistance, seeking, catalog operations,
//! statistics and torn pack tails (the SIGKILL suite is `tests/crash.rs`).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use proptest::prelude::*;
use qorestor_core::{
    ChunkParams, Chunker, Compression, ContainerKind, ContainerUpdate, Engine, ErrorKind, GroupOptions, NoProgress,
    StatsScope, DEFAULT_GROUP,
};

mod common;
use common::data;

const SMALL: ChunkParams = ChunkParams { min: 256, avg: 1024, max: 4096 };

fn engine_with_small_chunks(dir: &Path) -> Engine {
    let e = Engine::create(dir).unwrap();
    e.add_storage_group("small", GroupOptions { compression: Compression::Fast, chunking: SMALL }).unwrap();
    e.add_container("c", "small", ContainerKind::Object).unwrap();
    e
}

fn put(e: &Engine, container: &str, name: &str, bytes: &[u8], call: usize) {
    let mut w = e.create_stream(container, name).unwrap();
    for piece in bytes.chunks(call.max(1)) {
        w.write_all(piece).unwrap();
    }
    let info = w.finish().unwrap();
    assert_eq!(info.logical_bytes, bytes.len() as u64);
}

fn get(e: &Engine, container: &str, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    e.open_stream(container, name).unwrap().read_to_end(&mut out).unwrap();
    out
}

/// Chunks up to the largest a policy allows (4 MiB), longer than the writer's 1 MiB blocks: both
/// write paths, a second generation that repeats the first (predicted chunks), and seeks.
#[test]
fn chunks_longer_than_a_write_block_round_trip_through_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::create(dir.path()).unwrap();
    let large = ChunkParams { min: 1 << 20, avg: 2 << 20, max: 4 << 20 };
    e.add_storage_group("large", GroupOptions { compression: Compression::Fast, chunking: large }).unwrap();
    e.add_container("c", "large", ContainerKind::Object).unwrap();
    let bytes = data(5, 24 << 20);
    put(&e, "c", "calls", &bytes, 64 << 10);
    let mut w = e.create_stream("c", "bulk").unwrap();
    w.write_from(&mut &bytes[..], &NoProgress).unwrap();
    w.finish().unwrap();
    let mut edited = bytes.clone();
    edited[9 << 20..(9 << 20) + 1000].copy_from_slice(&data(6, 1000));
    put(&e, "c", "edited", &edited, 1 << 20);
    for (name, want) in [("calls", &bytes), ("bulk", &bytes), ("edited", &edited)] {
        assert!(get(&e, "c", name) == *want, "{name}");
    }
    let stream = e.streams("c").unwrap().into_iter().find(|s| s.name == "calls").unwrap();
    assert!(stream.chunks < 24, "{} chunks: the policy's sizes were not used", stream.chunks);
    let mut r = e.open_stream("c", "edited").unwrap();
    r.seek(SeekFrom::Start((9 << 20) - 7)).unwrap();
    let mut buf = vec![0u8; 3 << 20];
    r.read_exact(&mut buf).unwrap();
    assert!(buf[..] == edited[(9 << 20) - 7..(12 << 20) - 7]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn put_then_get_is_bit_exact(seed in any::<u64>(), len in 0usize..600_000, call in 1usize..200_000, repeat in 0usize..3) {
        let dir = tempfile::tempdir().unwrap();
        let e = engine_with_small_chunks(dir.path());
        let mut bytes = data(seed, len);
        for _ in 0..repeat {
            let copy = bytes[..bytes.len() / 2].to_vec();
            bytes.extend_from_slice(&copy);
        }
        put(&e, "c", "s", &bytes, call);
        prop_assert!(get(&e, "c", "s") == bytes);
        // Through the bulk path as well.
        let mut w = e.create_stream("c", "bulk").unwrap();
        w.write_from(&mut &bytes[..], &NoProgress).unwrap();
        w.finish().unwrap();
        let mut out = Vec::new();
        e.open_stream("c", "bulk").unwrap().copy_to(&mut out, &NoProgress).unwrap();
        prop_assert!(out == bytes);
    }

    #[test]
    fn put_then_get_is_bit_exact_under_any_chunking_policy(
        seed in any::<u64>(),
        bits in 10u32..=21,
        min_part in 1u32..100,
        max_mult in 2u32..=8,
        len in 0usize..10_000_000,
        call in 1usize..3_000_000,
    ) {
        // Every policy the engine accepts, up to 4 MiB chunks (longer than a write block).
        let avg = 1u32 << bits;
        let params = ChunkParams { min: (avg / 100 * min_part).max(64), avg, max: (avg * max_mult).min(4 << 20) };
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::create(dir.path()).unwrap();
        e.add_storage_group("g", GroupOptions { compression: Compression::Fast, chunking: params }).unwrap();
        e.add_container("c", "g", ContainerKind::Object).unwrap();
        let bytes = data(seed, len);
        put(&e, "c", "calls", &bytes, call);
        let mut w = e.create_stream("c", "bulk").unwrap();
        w.write_from(&mut &bytes[..], &NoProgress).unwrap();
        w.finish().unwrap();
        prop_assert!(get(&e, "c", "calls") == bytes, "{:?}", params);
        prop_assert!(get(&e, "c", "bulk") == bytes, "{:?}", params);
    }

    #[test]
    fn edited_generations_read_back_bit_exact(seed in any::<u64>(), edits in prop::collection::vec((0usize..14_000_000, 0usize..5000, any::<bool>()), 1..6)) {
        // Multi-block streams after a stored base: predictions start, fail at the edits, and
        // the chunker takes over inside the worker.
        let dir = tempfile::tempdir().unwrap();
        let e = engine_with_small_chunks(dir.path());
        let base = data(seed, 14 << 20);
        put(&e, "c", "base", &base, 1 << 20);
        let mut edited = base.clone();
        for (at, n, insert) in edits {
            let at = at.min(edited.len());
            if insert {
                edited.splice(at..at, data(seed ^ at as u64, n));
            } else {
                let end = (at + n).min(edited.len());
                edited.drain(at..end);
            }
        }
        put(&e, "c", "edited", &edited, 3 << 20);
        prop_assert!(get(&e, "c", "edited") == edited);
        prop_assert!(get(&e, "c", "base") == base);
    }

    #[test]
    fn seek_then_read_returns_the_right_bytes(seed in any::<u64>(), positions in prop::collection::vec((0u64..1_000_000, 1usize..70_000), 1..12)) {
        let bytes = data(seed, 900_000);
        let dir = tempfile::tempdir().unwrap();
        let e = engine_with_small_chunks(dir.path());
        put(&e, "c", "s", &bytes, 1 << 20);
        let mut r = e.open_stream("c", "s").unwrap();
        for (pos, n) in positions {
            let at = r.seek(SeekFrom::Start(pos)).unwrap();
            prop_assert_eq!(at, pos);
            let mut buf = vec![0u8; n];
            let mut got = 0;
            while got < n {
                let k = r.read(&mut buf[got..]).unwrap();
                if k == 0 { break; }
                got += k;
            }
            let start = (pos as usize).min(bytes.len());
            let end = (start + n).min(bytes.len());
            prop_assert_eq!(&buf[..got], &bytes[start..end]);
        }
        let end = r.seek(SeekFrom::End(-10)).unwrap();
        prop_assert_eq!(end, bytes.len() as u64 - 10);
        let mut tail = Vec::new();
        r.read_to_end(&mut tail).unwrap();
        prop_assert_eq!(&tail[..], &bytes[bytes.len() - 10..]);
        prop_assert!(r.seek(SeekFrom::Current(-(bytes.len() as i64) - 1)).is_err());
    }

    #[test]
    fn with_next_hands_over_the_bytes_read_would_give(seed in any::<u64>(), len in 0usize..3_500_000, steps in prop::collection::vec((any::<bool>(), 0u64..4_000_000, 0u64..5_000_000), 1..10)) {
        // Streams over several 1 MiB segments; reads from wherever a seek or the last read
        // left the position, of up to more than the stream holds.
        let bytes = data(seed, len);
        let dir = tempfile::tempdir().unwrap();
        let e = engine_with_small_chunks(dir.path());
        put(&e, "c", "s", &bytes, 1 << 20);
        let mut r = e.open_stream("c", "s").unwrap();
        let mut pos = 0u64;
        for (jump, to, max) in steps {
            if jump {
                pos = r.seek(SeekFrom::Start(to)).unwrap();
            }
            let (n, got) = r.with_next(max, |parts| parts.concat()).unwrap();
            let start = (pos as usize).min(bytes.len());
            let end = (start as u64 + max).min(bytes.len() as u64) as usize;
            prop_assert_eq!(n as usize, got.len());
            prop_assert!(got == bytes[start..end], "{} bytes at {}", got.len(), start);
            pos = pos.max(start as u64) + n;
            prop_assert_eq!(r.stream_position().unwrap(), pos);
        }
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        prop_assert!(rest == bytes[(pos as usize).min(bytes.len())..]);
    }

    #[test]
    fn an_edit_changes_only_nearby_chunks(seed in any::<u64>(), at in 0usize..20_000, insert in 1usize..100, delete in any::<bool>()) {
        let c = Chunker::new(SMALL).unwrap();
        let original = data(seed, 300_000);
        let mut edited = original.clone();
        if delete {
            edited.drain(at..at + insert);
        } else {
            let extra = data(seed ^ 1, insert);
            edited.splice(at..at, extra);
        }
        let pieces = |d: &[u8]| {
            let mut cuts = Vec::new();
            c.cut_all(d, true, &mut cuts);
            let mut prev = 0usize;
            cuts.iter().map(|&e| { let p = d[prev..e as usize].to_vec(); prev = e as usize; p }).collect::<Vec<_>>()
        };
        let before: std::collections::HashSet<Vec<u8>> = pieces(&original).into_iter().collect();
        let after = pieces(&edited);
        let changed = after.iter().filter(|p| !before.contains(*p)).count();
        prop_assert!(changed <= 8, "{} of {} chunks changed", changed, after.len());
        // Every chunk that starts more than four maximum chunk lengths past the edit is shared.
        let resync = at + insert + 4 * SMALL.max as usize;
        let mut start = 0usize;
        for p in &after {
            if start >= resync {
                prop_assert!(before.contains(p), "chunk at {} (edit at {}) not shared", start, at);
            }
            start += p.len();
        }
    }
}

#[test]
fn catalog_operations_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open_or_create(dir.path()).unwrap();
    assert_eq!(e.storage_groups().unwrap()[0].name, DEFAULT_GROUP);
    assert_eq!(
        e.add_storage_group(DEFAULT_GROUP, GroupOptions::default()).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    let bad = e.add_storage_group("no spaces", GroupOptions::default()).unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);
    assert!(bad.to_string().contains("no spaces"));
    e.add_container("share1", DEFAULT_GROUP, ContainerKind::Nas).unwrap();
    assert_eq!(e.add_container("x", "nope", ContainerKind::Nas).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        e.add_container("share1", DEFAULT_GROUP, ContainerKind::Ost).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    put(&e, "share1", "tape/file1", b"hello", 2);
    put(&e, "share1", "tape/file1", b"hello again", 3); // replaces
    assert_eq!(get(&e, "share1", "tape/file1"), b"hello again");
    assert_eq!(e.streams("share1").unwrap().len(), 1);
    assert_eq!(e.delete_container("share1", false).unwrap_err().kind(), ErrorKind::Conflict);
    assert_eq!(e.delete_storage_group(DEFAULT_GROUP).unwrap_err().kind(), ErrorKind::Conflict);
    let err = e.open_stream("share1", "missing").err().unwrap();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("share1/missing"));
    e.delete_stream("share1", "tape/file1").unwrap();
    assert!(e.streams("share1").unwrap().is_empty());
    e.delete_container("share1", false).unwrap();
    e.delete_storage_group(DEFAULT_GROUP).unwrap();
    assert!(e.storage_groups().unwrap().is_empty());
    assert_eq!(e.create_stream("share1", "s").err().unwrap().kind(), ErrorKind::NotFound);
}

#[test]
fn the_streams_of_a_tape_library_belong_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::create(dir.path()).unwrap();
    e.add_container("lib9", DEFAULT_GROUP, ContainerKind::Vtl).unwrap();
    let tape = e.owned_streams("lib9", ContainerKind::Vtl).unwrap();
    let mut w = tape.create_stream("QS0001L5/0000000000").unwrap();
    w.write_all(b"tape data").unwrap();
    w.finish().unwrap();
    // Everyone else is refused, naming the vtl commands; the segment stays as it was.
    let refusals = [
        e.create_stream("lib9", "QS0001L5/0000000000").err().unwrap(),
        e.create_stream("lib9", "new").err().unwrap(),
        e.create_stream_from_prefix("lib9", "x", "QS0001L5/0000000000", 4).err().unwrap(),
        e.delete_stream("lib9", "QS0001L5/0000000000").unwrap_err(),
        e.restore_stream("lib9", "QS0001L5/0000000000", None).unwrap_err(),
        e.delete_container("lib9", true).unwrap_err(),
        e.update_container("lib9", &ContainerUpdate { recycle_retention_days: Some(Some(7)), ..Default::default() })
            .unwrap_err(),
    ];
    for err in refusals {
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        assert!(err.to_string().contains("lib9") && err.to_string().contains("vtl"), "{err}");
    }
    assert_eq!(get(&e, "lib9", "QS0001L5/0000000000"), b"tape data");
    assert!(e.owned_streams("lib9", ContainerKind::Ost).is_err(), "the owner names its type");
    // The library's own path works.
    tape.create_stream_from_prefix("QS0001L5/0000000001", "QS0001L5/0000000000", 4).unwrap().finish().unwrap();
    assert_eq!(get(&e, "lib9", "QS0001L5/0000000001"), b"tape");
    tape.delete_stream("QS0001L5/0000000000").unwrap();
    assert!(e.recycle_bin("lib9").unwrap().is_empty());
    tape.delete_container(true).unwrap();
    assert!(e.containers(None).unwrap().is_empty());
    // An OST storage unit's images belong to the OST server; the unit itself can be deleted.
    e.add_container("lsu1", DEFAULT_GROUP, ContainerKind::Ost).unwrap();
    assert_eq!(e.create_stream("lsu1", "image").err().unwrap().kind(), ErrorKind::Conflict);
    e.delete_container("lsu1", false).unwrap();
}

#[test]
fn a_second_process_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let _e = Engine::create_as(dir.path(), "qorestor serve").unwrap();
    // flock locks belong to the open file description, so a second open in this process
    // conflicts just like another process would.
    let err = Engine::open(dir.path()).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Locked);
    assert!(err.to_string().contains("qorestor serve (pid"), "{err}");
}

#[test]
fn stats_count_dedup_and_compression() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine_with_small_chunks(dir.path());
    e.add_container("d", "small", ContainerKind::Object).unwrap();
    let bytes = data(7, 400_000);
    put(&e, "c", "a", &bytes, 10_000);
    put(&e, "c", "b", &bytes, 70_000);
    put(&e, "d", "a", &bytes[..200_000], 70_000);
    let c = e.stats(&StatsScope::Container("c".into())).unwrap();
    assert_eq!(c.logical_bytes, 800_000);
    assert_eq!(c.unique_bytes, 400_000);
    assert!((c.dedup_ratio - 2.0).abs() < 0.01, "{c:?}");
    assert!(c.compression_ratio > 1.0);
    let g = e.stats(&StatsScope::StorageGroup("small".into())).unwrap();
    assert_eq!(g.logical_bytes, 1_000_000);
    // d's stream ends early, so only its last chunk can differ from c's chunks.
    assert!(g.unique_chunks <= c.unique_chunks + 1, "{g:?}");
    assert!(g.stored_bytes >= g.live_stored_bytes);
    let s = e.stats(&StatsScope::System).unwrap();
    assert_eq!(s.logical_bytes, 1_000_000);
    assert!(s.savings_percent > 50.0);
    e.delete_stream("c", "a").unwrap();
    e.delete_stream("c", "b").unwrap();
    let after = e.stats(&StatsScope::StorageGroup("small".into())).unwrap();
    assert_eq!(after.logical_bytes, 200_000);
    assert!(after.live_stored_bytes < g.live_stored_bytes);
    assert_eq!(after.stored_bytes, g.stored_bytes, "space returns only when the cleaner runs");
}

#[test]
fn reopen_keeps_dedup_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(3, 1_500_000);
    {
        let e = engine_with_small_chunks(dir.path());
        put(&e, "c", "first", &bytes, 1 << 16);
    }
    let e = Engine::open(dir.path()).unwrap();
    let mut w = e.create_stream("c", "second").unwrap();
    w.write_all(&bytes).unwrap();
    let info = w.finish().unwrap();
    assert_eq!(info.new_chunks, 0, "the index survived the reopen");
    assert_eq!(get(&e, "c", "first"), bytes);
    assert_eq!(get(&e, "c", "second"), bytes);
}

#[test]
fn a_torn_pack_tail_is_dropped_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(11, 700_000);
    {
        let e = engine_with_small_chunks(dir.path());
        put(&e, "c", "kept", &bytes, 1 << 16);
    }
    // Unseal the pack (cut off footer and trailer) and leave half a record at its end, as a
    // crash in the middle of an append would.
    let pack = only_pack(dir.path());
    let file_bytes = std::fs::read(&pack).unwrap();
    let t = &file_bytes[file_bytes.len() - 24..];
    let footer_at = u64::from_le_bytes(t[0..8].try_into().unwrap()) as usize;
    let mut torn = file_bytes[..footer_at].to_vec();
    let stored_len = u32::from_le_bytes(file_bytes[32 + 8..32 + 12].try_into().unwrap()) as usize;
    torn.extend_from_slice(&file_bytes[32..32 + 48 + stored_len / 2]);
    std::fs::write(&pack, &torn).unwrap();
    let e = Engine::open(dir.path()).unwrap();
    assert_eq!(get(&e, "c", "kept"), bytes);
    let repaired = std::fs::read(&pack).unwrap();
    assert!(repaired == file_bytes, "recovery re-seals the pack exactly as it was");
}

/// A data directory holding stream c/s (returned) with a bit flipped inside its first chunk's
/// record, opened.
fn store_with_a_damaged_chunk(dir: &Path) -> (Engine, Vec<u8>) {
    let bytes = data(5, 300_000);
    {
        let e = engine_with_small_chunks(dir);
        put(&e, "c", "s", &bytes, 1 << 16);
    }
    let pack = only_pack(dir);
    let mut b = std::fs::read(&pack).unwrap();
    b[32 + 48 + 10] ^= 0x40; // inside the first record's payload
    std::fs::write(&pack, &b).unwrap();
    (Engine::open(dir).unwrap(), bytes)
}

#[test]
fn damaged_chunks_are_reported_not_returned() {
    let dir = tempfile::tempdir().unwrap();
    let (e, _) = store_with_a_damaged_chunk(dir.path());
    let mut out = Vec::new();
    let err = e.open_stream("c", "s").unwrap().read_to_end(&mut out).unwrap_err();
    assert!(err.to_string().contains("c/s"), "{err}");
}

#[test]
fn with_next_hands_over_nothing_from_a_damaged_stretch() {
    let dir = tempfile::tempdir().unwrap();
    let (e, bytes) = store_with_a_damaged_chunk(dir.path());
    let mut r = e.open_stream("c", "s").unwrap();
    r.seek(SeekFrom::Start(1000)).unwrap();
    let mut called = false;
    let err = r.with_next(bytes.len() as u64, |_| called = true).unwrap_err();
    assert!(err.to_string().contains("c/s"), "{err}");
    assert!(!called, "bytes were handed over from a stream with a damaged chunk");
    assert_eq!(r.stream_position().unwrap(), 1000);
    // Decoding is by whole segments (this stream is one): a smaller read fails the same way.
    assert!(r.with_next(10, |_| called = true).is_err() && !called);
}

/// The one pack file of a small test data directory.
fn only_pack(dir: &Path) -> std::path::PathBuf {
    let packs: Vec<_> = walk(dir).into_iter().filter(|p| p.extension().is_some_and(|x| x == "pack")).collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    packs.into_iter().next().unwrap()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn ids_are_dense_across_sessions() {
    // sled's own id generator skips a million ids per session; the catalog's counter does not,
    // so 32-bit group ids cannot run out after a few thousand CLI invocations.
    let dir = tempfile::tempdir().unwrap();
    drop(Engine::create(dir.path()).unwrap());
    for i in 0..5 {
        let e = Engine::open(dir.path()).unwrap();
        let g = e.add_storage_group(&format!("g{i}"), GroupOptions::default()).unwrap();
        assert!(g.id < 20, "session {i}: group id {}", g.id);
    }
    let e = Engine::open(dir.path()).unwrap();
    let mut ids: Vec<u32> = e.storage_groups().unwrap().iter().map(|g| g.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6, "every group got its own id");
}

#[test]
fn a_repeated_stream_is_cut_by_prediction_exactly_like_the_chunker() {
    // 64 MiB = 16 blocks: at most ~11 blocks are in flight, so the appender has reported the
    // first (all duplicate) block before the writer cuts the last ones, whatever the timing.
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::create(dir.path()).unwrap();
    e.add_container("c", DEFAULT_GROUP, ContainerKind::Object).unwrap();
    let mut bytes = data(21, 64 << 20);
    put(&e, "c", "first", &bytes, 1 << 20);
    let scope = StatsScope::StorageGroup(DEFAULT_GROUP.into());
    let before = e.stats(&scope).unwrap();
    let mut w = e.create_stream("c", "second").unwrap();
    let counters = w.counters();
    w.write_all(&bytes).unwrap();
    let info = w.finish().unwrap();
    let predicted = counters.predicted_chunks.load(std::sync::atomic::Ordering::Relaxed);
    assert!(predicted > 0, "no chunk of {} was predicted", info.chunks);
    assert_eq!(info.new_chunks, 0);
    let after = e.stats(&scope).unwrap();
    assert_eq!(after.unique_chunks, before.unique_chunks, "the same cut points as the chunker");
    assert!(get(&e, "c", "second") == bytes);
    // An edited copy: predictions fail at the edits, the chunker takes over and resynchronises.
    bytes.splice(5_000_000..5_000_000, data(22, 3000));
    bytes.drain(45_000_000..45_000_100);
    put(&e, "c", "third", &bytes, 1 << 20);
    assert!(get(&e, "c", "third") == bytes);
    let edited = e.stats(&scope).unwrap();
    let new = edited.unique_chunks - after.unique_chunks;
    assert!(new < 12, "{new} new chunks for two small edits");
}

#[test]
fn concurrent_writers_and_readers_share_a_group() {
    // Several client streams at once into one storage group (as VTL drives or OST clients
    // will), with shared content, while another thread reads a finished stream.
    let dir = tempfile::tempdir().unwrap();
    let e = engine_with_small_chunks(dir.path());
    let base = data(31, 6 << 20);
    put(&e, "c", "base", &base, 1 << 20);
    let streams: Vec<Vec<u8>> = (0..4u64)
        .map(|i| {
            let mut d = base.clone();
            let at = (i as usize + 1) * 1_000_000;
            d.splice(at..at, data(40 + i, 50_000));
            d
        })
        .collect();
    std::thread::scope(|s| {
        for (i, d) in streams.iter().enumerate() {
            let e = e.clone();
            s.spawn(move || put(&e, "c", &format!("w{i}"), d, 100_000 + i * 7777));
        }
        let e2 = e.clone();
        let base = &base;
        s.spawn(move || {
            for _ in 0..3 {
                assert!(get(&e2, "c", "base") == *base);
            }
        });
    });
    for (i, d) in streams.iter().enumerate() {
        assert!(get(&e, "c", &format!("w{i}")) == *d, "w{i}");
    }
    let st = e.stats(&StatsScope::Container("c".into())).unwrap();
    // Five ~6 MB streams that are mostly the same data: close to 5x dedup.
    assert!(st.dedup_ratio > 4.0, "{st:?}");
}

#[test]
fn a_group_compression_change_applies_to_new_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine_with_small_chunks(dir.path());
    let text = b"a log line that compresses well, repeated many times over\n".repeat(20_000);
    put(&e, "c", "fast", &text, 1 << 16);
    let fast = e.stats(&StatsScope::Container("c".into())).unwrap();
    assert!(fast.compression_ratio > 2.0, "{fast:?}");
    let info = e.update_storage_group("small", Some(Compression::None)).unwrap();
    assert_eq!(info.compression, Compression::None);
    e.add_container("d", "small", ContainerKind::Object).unwrap();
    let other: Vec<u8> = text.iter().map(|b| b.wrapping_add(1)).collect();
    put(&e, "d", "raw", &other, 1 << 16);
    let raw = e.stats(&StatsScope::Container("d".into())).unwrap();
    assert!(raw.compression_ratio < 1.0, "stored raw (record headers only add bytes): {raw:?}");
    assert_eq!(get(&e, "c", "fast"), text);
    assert_eq!(get(&e, "d", "raw"), other);
    drop(e);
    let e = Engine::open(dir.path()).unwrap();
    assert_eq!(e.storage_group("small").unwrap().compression, Compression::None, "durable");
    assert_eq!(e.update_storage_group("nope", None).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn a_deletion_interrupted_after_the_recipe_rename_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine_with_small_chunks(dir.path());
    put(&e, "c", "keep", &data(1, 50_000), 4096);
    put(&e, "c", "gone", &data(2, 50_000), 4096);
    drop(e);
    // The state a crash leaves between `rename(<id>.rcp, <id>.rcp.deleted)` and the removal of
    // the catalog entry: rename the newest recipe (stream ids grow) by hand.
    let recipes = std::fs::read_dir(dir.path().join("groups"))
        .unwrap()
        .flatten()
        .map(|g| g.path().join("recipes"))
        .find(|r| r.read_dir().is_ok_and(|mut d| d.next().is_some()))
        .unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&recipes).unwrap().flatten().map(|f| f.path()).collect();
    files.sort();
    let newest = files.last().unwrap().clone();
    std::fs::rename(&newest, newest.with_extension("rcp.deleted")).unwrap();
    let e = Engine::open(dir.path()).unwrap();
    let names: Vec<String> = e.streams("c").unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, vec!["keep".to_string()]);
    assert!(!newest.with_extension("rcp.deleted").exists());
    assert!(get(&e, "c", "keep") == data(1, 50_000));
}
