//! Quotas (storage group and container, crossed mid-stream) and the recycle bin.

mod common;

use std::io::{Read, Write};

use common::random;
use qorestor_core::{
    CleanerOptions, ContainerKind, ContainerUpdate, Engine, ErrorKind, GroupOptions, NoProgress, StatsScope,
    VerifyOptions, VerifyScope,
};

/// Writes a stream in 64 KiB calls; the error of the first failing call or of `finish`.
fn put(e: &Engine, c: &str, name: &str, bytes: &[u8]) -> qorestor_core::Result<()> {
    let mut w = e.create_stream(c, name)?;
    for piece in bytes.chunks(64 << 10) {
        if let Err(err) = w.write_all(piece) {
            let inner = err.into_inner().expect("engine errors travel inside io::Error");
            return Err(*inner.downcast::<qorestor_core::Error>().expect("an engine error"));
        }
    }
    w.finish().map(|_| ())
}

fn get(e: &Engine, c: &str, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    e.open_stream(c, name).unwrap().read_to_end(&mut out).unwrap();
    out
}

fn names(e: &Engine, c: &str) -> Vec<String> {
    e.streams(c).unwrap().into_iter().map(|s| s.name).collect()
}

#[test]
fn a_storage_group_quota_stops_a_stream_mid_way_and_leaves_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::create(dir.path()).unwrap();
    e.add_storage_group("g", GroupOptions::default()).unwrap();
    e.add_container("c", "g", ContainerKind::Object).unwrap();
    let info = e.set_storage_group_quota("g", Some(3 << 20)).unwrap();
    assert_eq!(info.quota_bytes, Some(3 << 20));
    let first = random(1, 2 << 20);
    put(&e, "c", "first", &first).unwrap();
    // Random data does not compress: 2 MiB more crosses 3 MiB part way through.
    let err = put(&e, "c", "second", &random(2, 2 << 20)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QuotaExceeded, "{err}");
    assert!(err.to_string().contains("\"g\""), "{err}");
    assert_eq!(names(&e, "c"), vec!["first"]);
    // Duplicates cost nothing and still go in; the group was not poisoned.
    put(&e, "c", "first-again", &first).unwrap();
    assert!(get(&e, "c", "first-again") == first);
    drop(e);
    let e = Engine::open(dir.path()).unwrap();
    assert_eq!(e.storage_group("g").unwrap().quota_bytes, Some(3 << 20), "the quota is persisted");
    assert_eq!(put(&e, "c", "second", &random(2, 2 << 20)).unwrap_err().kind(), ErrorKind::QuotaExceeded);
    e.set_storage_group_quota("g", None).unwrap();
    put(&e, "c", "second", &random(2, 2 << 20)).unwrap();
    assert!(get(&e, "c", "second") == random(2, 2 << 20));
    let r = e.verify(&VerifyOptions { scope: VerifyScope::All, repair: false }, &NoProgress).unwrap();
    assert!(!r.damage_remains(), "{r:?}");
}

#[test]
fn a_container_quota_counts_logical_bytes_and_a_replacement_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::create(dir.path()).unwrap();
    e.add_container("c", qorestor_core::DEFAULT_GROUP, ContainerKind::Object).unwrap();
    let update = ContainerUpdate { quota: Some(Some(3_000_000)), ..Default::default() };
    assert_eq!(e.update_container("c", &update).unwrap().quota_bytes, Some(3_000_000));
    put(&e, "c", "a", &random(1, 2_000_000)).unwrap();
    // The same bytes again dedup to nothing, but logical bytes count: 4 MB > 3 MB.
    let err = put(&e, "c", "b", &random(1, 2_000_000)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QuotaExceeded, "{err}");
    assert!(err.to_string().contains("\"c\""), "{err}");
    assert_eq!(names(&e, "c"), vec!["a"]);
    // Replacing "a" counts only the new version.
    put(&e, "c", "a", &random(3, 2_900_000)).unwrap();
    assert!(get(&e, "c", "a") == random(3, 2_900_000));
    e.update_container("c", &ContainerUpdate { quota: Some(None), ..Default::default() }).unwrap();
    put(&e, "c", "b", &random(1, 2_000_000)).unwrap();
}

#[test]
fn the_recycle_bin_keeps_restores_and_finally_gives_space_back() {
    std::env::set_var(qorestor_core::test_support::PACK_SIZE_ENV, (256 << 10).to_string());
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::create(dir.path()).unwrap();
    e.add_container("c", qorestor_core::DEFAULT_GROUP, ContainerKind::Object).unwrap();
    let info = e
        .update_container("c", &ContainerUpdate { recycle_retention_days: Some(Some(7)), ..Default::default() })
        .unwrap();
    assert!(info.recycle_bin && info.retention_days == Some(7));
    let (a, b) = (random(1, 2 << 20), random(2, 2 << 20));
    put(&e, "c", "a", &a).unwrap();
    put(&e, "c", "b", &b).unwrap();
    e.delete_stream("c", "a").unwrap();
    assert_eq!(names(&e, "c"), vec!["b"]);
    let bin = e.recycle_bin("c").unwrap();
    assert_eq!(bin.len(), 1);
    assert_eq!(bin[0].name, "a");
    assert_eq!(bin[0].expires - bin[0].deleted, 7 * 86_400);
    // The cleaner keeps what is in the bin.
    let before = e.stats(&StatsScope::System).unwrap().stored_bytes;
    let r = e.run_cleaner(&CleanerOptions::default(), &NoProgress).unwrap();
    assert_eq!(r.packs_deleted + r.packs_compacted, 0, "{r:?}");
    assert!(r.recycle_bin_purged.is_empty());
    let v = e.verify(&VerifyOptions { scope: VerifyScope::All, repair: false }, &NoProgress).unwrap();
    assert!(!v.damage_remains() && v.orphan_recipes == 0, "{v:?}");
    // Restore it; a live stream of the same name blocks a restore.
    e.restore_stream("c", "a", None).unwrap();
    assert!(get(&e, "c", "a") == a);
    let first_id = bin[0].id;
    e.delete_stream("c", "a").unwrap();
    put(&e, "c", "a", &b).unwrap();
    assert_eq!(e.restore_stream("c", "a", None).unwrap_err().kind(), ErrorKind::AlreadyExists);
    // Replacing a stream bins the replaced version too; every version is kept, under its id.
    put(&e, "c", "a", &random(3, 1 << 20)).unwrap();
    e.delete_stream("c", "a").unwrap();
    let bin = e.recycle_bin("c").unwrap();
    assert_eq!(bin.iter().map(|r| r.logical_bytes).collect::<Vec<_>>(), [2 << 20, 2 << 20, 1 << 20]);
    assert_eq!(bin[0].id, first_id, "ids are stable");
    e.restore_stream("c", "a", Some(bin[1].id)).unwrap();
    assert!(get(&e, "c", "a") == b);
    e.delete_stream("c", "a").unwrap();
    drop(e);
    let e = Engine::open(dir.path()).unwrap();
    assert_eq!(e.recycle_bin("c").unwrap().len(), 3, "the bin is persisted");
    // Past its retention the entry is purged and its chunks reclaimed.
    let purged = e
        .purge_recycle_bin(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 8 * 86_400,
        )
        .unwrap();
    assert_eq!(purged, vec!["c/a".to_string(); 3]);
    assert!(e.recycle_bin("c").unwrap().is_empty());
    let r = e.run_cleaner(&CleanerOptions::default(), &NoProgress).unwrap();
    assert!(r.packs_deleted + r.packs_compacted > 0, "{r:?}");
    assert!(e.stats(&StatsScope::System).unwrap().stored_bytes < before);
    assert!(get(&e, "c", "b") == b);
    // Deleting the container takes its bin with it.
    e.delete_stream("c", "b").unwrap();
    e.delete_container("c", false).unwrap();
    let v = e.verify(&VerifyOptions { scope: VerifyScope::All, repair: false }, &NoProgress).unwrap();
    assert!(!v.damage_remains() && v.orphan_recipes == 0, "{v:?}");
}
