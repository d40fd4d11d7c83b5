//! Streams started from a prefix of another stream (no data copied) and per-container
//! metadata records.

mod common;

use std::io::{Read, Write};
use std::path::Path;

use common::random;
use proptest::prelude::*;
use qorestor_core::{
    ChunkParams, Compression, ContainerKind, Engine, ErrorKind, GroupOptions, StatsScope, DEFAULT_GROUP,
};

fn engine(dir: &Path) -> Engine {
    let e = Engine::create(dir).unwrap();
    let chunking = ChunkParams { min: 256, avg: 1024, max: 4096 };
    e.add_storage_group("small", GroupOptions { compression: Compression::None, chunking }).unwrap();
    e.add_container("c", "small", ContainerKind::Object).unwrap();
    e
}

fn read_all(e: &Engine, name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    e.open_stream("c", name).unwrap().read_to_end(&mut v).unwrap();
    v
}

fn put(e: &Engine, name: &str, bytes: &[u8]) {
    let mut w = e.create_stream("c", name).unwrap();
    w.write_all(bytes).unwrap();
    w.finish().unwrap();
}

#[test]
fn prefix_stream_keeps_the_prefix_and_stores_almost_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let src = random(1, 1 << 20);
    put(&e, "src", &src);
    let stored = e.stats(&StatsScope::StorageGroup("small".into())).unwrap().stored_bytes;
    let tail = random(2, 10_000);
    let cut = 700_001;
    let mut w = e.create_stream_from_prefix("c", "cut", "src", cut as u64).unwrap();
    w.write_all(&tail).unwrap();
    let info = w.finish().unwrap();
    let mut want = src[..cut].to_vec();
    want.extend_from_slice(&tail);
    assert_eq!(info.logical_bytes, want.len() as u64);
    assert_eq!(read_all(&e, "cut"), want);
    // The source is untouched.
    assert_eq!(read_all(&e, "src"), src);
    // New bytes: at most the tail, the partial chunk and one chunk around the cut.
    let after = e.stats(&StatsScope::StorageGroup("small".into())).unwrap().stored_bytes;
    assert!(after - stored < 10_000 + 3 * 4096 + 4096, "stored {} new bytes", after - stored);
}

#[test]
fn prefix_errors_and_edge_lengths() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let src = random(3, 50_000);
    put(&e, "src", &src);
    let err = e.create_stream_from_prefix("c", "x", "src", 50_001).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.create_stream_from_prefix("c", "x", "nope", 0).err().unwrap().kind(), ErrorKind::NotFound);
    // Empty prefix and full prefix.
    e.create_stream_from_prefix("c", "empty", "src", 0).unwrap().finish().unwrap();
    assert!(read_all(&e, "empty").is_empty());
    e.create_stream_from_prefix("c", "all", "src", 50_000).unwrap().finish().unwrap();
    assert_eq!(read_all(&e, "all"), src);
    // Replacing the source by its own prefix works (the tape case).
    e.create_stream_from_prefix("c", "src", "src", 10).unwrap().finish().unwrap();
    assert_eq!(read_all(&e, "src"), &src[..10]);
    // A writer dropped without finish publishes nothing.
    drop(e.create_stream_from_prefix("c", "gone", "all", 5).unwrap());
    assert_eq!(e.stream("c", "gone").err().unwrap().kind(), ErrorKind::NotFound);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn any_prefix_plus_tail_reads_back(len in 0usize..60_000, cut_frac in 0.0f64..=1.0, tail in 0usize..5000) {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path());
        let src = random(len as u64, len);
        put(&e, "src", &src);
        let cut = ((len as f64) * cut_frac) as usize;
        let t = random(9, tail);
        let mut w = e.create_stream_from_prefix("c", "dst", "src", cut as u64).unwrap();
        w.write_all(&t).unwrap();
        w.finish().unwrap();
        let mut want = src[..cut].to_vec();
        want.extend_from_slice(&t);
        prop_assert_eq!(read_all(&e, "dst"), want);
    }
}

#[test]
fn container_metadata_round_trips_and_dies_with_its_container() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = Engine::create(dir.path()).unwrap();
        e.add_container("lib", DEFAULT_GROUP, ContainerKind::Vtl).unwrap();
        e.add_container("other", DEFAULT_GROUP, ContainerKind::Vtl).unwrap();
        e.put_container_meta("lib", "library", &vec![1u32, 2, 3]).unwrap();
        e.put_container_meta("lib", "cart/A", &"a".to_string()).unwrap();
        e.put_container_meta("lib", "cart/B", &"b".to_string()).unwrap();
        e.put_container_meta("other", "cart/C", &"c".to_string()).unwrap();
        assert_eq!(e.container_meta_keys("lib", "cart/").unwrap(), vec!["cart/A", "cart/B"]);
        assert!(e.remove_container_meta("lib", "cart/B").unwrap());
        assert!(!e.remove_container_meta("lib", "cart/B").unwrap());
        assert_eq!(e.put_container_meta("nope", "k", &1).err().unwrap().kind(), ErrorKind::NotFound);
        assert_eq!(e.put_container_meta("lib", "", &1).err().unwrap().kind(), ErrorKind::InvalidInput);
    }
    // Durable across a reopen.
    let e = Engine::open(dir.path()).unwrap();
    assert_eq!(e.container_meta::<Vec<u32>>("lib", "library").unwrap(), Some(vec![1, 2, 3]));
    assert_eq!(e.container_meta::<String>("lib", "cart/A").unwrap().as_deref(), Some("a"));
    assert_eq!(e.container_meta::<String>("lib", "cart/B").unwrap(), None);
    // A record of another type is refused, not misread.
    assert_eq!(e.container_meta::<Vec<u32>>("lib", "cart/A").err().unwrap().kind(), ErrorKind::Corrupt);
    e.owned_streams("lib", ContainerKind::Vtl).unwrap().delete_container(true).unwrap();
    e.add_container("lib", DEFAULT_GROUP, ContainerKind::Vtl).unwrap();
    assert!(e.container_meta_keys("lib", "").unwrap().is_empty());
    assert_eq!(e.container_meta_keys("other", "").unwrap(), vec!["cart/C"]);
}

#[test]
fn the_cleaner_keeps_what_a_prefix_writer_inherited() {
    let dir = tempfile::tempdir().unwrap();
    let src = random(5, 2 << 20);
    {
        let e = engine(dir.path());
        put(&e, "src", &src);
    }
    // Reopened: the pack holding the source is sealed, so the cleaner may reclaim it.
    let e = Engine::open(dir.path()).unwrap();
    let cut = 1_500_000;
    let mut w = e.create_stream_from_prefix("c", "dst", "src", cut as u64).unwrap();
    e.delete_stream("c", "src").unwrap();
    let opts = qorestor_core::CleanerOptions { dry_run: false, compact_below: 0.99 };
    e.run_cleaner(&opts, &qorestor_core::NoProgress).unwrap();
    w.write_all(b"tail").unwrap();
    w.finish().unwrap();
    let mut want = src[..cut].to_vec();
    want.extend_from_slice(b"tail");
    assert_eq!(read_all(&e, "dst"), want);
    // Once finished, the new stream's own recipe keeps its chunks.
    e.run_cleaner(&opts, &qorestor_core::NoProgress).unwrap();
    assert_eq!(read_all(&e, "dst"), want);
}
