//! A full disk never takes the store down: on a small tmpfs, writes fail with an out-of-space
//! error and everything acknowledged before stays listed and readable, by the same engine and
//! after a reopen at 0 bytes free; the catalog takes changes again once space is back, without
//! a restart.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use qorestor_core::{
    CleanerOptions, ContainerKind, Engine, ErrorKind, NoProgress, VerifyOptions, VerifyScope, DEFAULT_GROUP,
};

mod common;
use common::random;
use common::small_fs::SmallFs;

fn put(e: &Engine, name: &str, bytes: &[u8]) -> qorestor_core::Result<()> {
    let mut w = e.create_stream("c", name)?;
    w.write_all(bytes).map_err(|err| qorestor_core::Error::Conflict(err.to_string()))?;
    w.finish().map(|_| ())
}

fn check(e: &Engine, model: &BTreeMap<String, Vec<u8>>, what: &str) {
    let names: Vec<String> = e.streams("c").unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, model.keys().cloned().collect::<Vec<_>>(), "{what}");
    for (n, b) in model {
        let mut out = Vec::new();
        e.open_stream("c", n).unwrap().read_to_end(&mut out).unwrap();
        assert!(out == *b, "{what}: {n} differs");
    }
}

fn catalog_files(e: &Engine) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(e.dir().join("catalog"))
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn a_catalog_commit_on_a_full_disk_fails_cleanly_and_works_again_once_space_is_back() {
    let Some(fs) = SmallFs::mount(16) else { return };
    let dir = fs.path().join("data");
    let e = Engine::create(&dir).unwrap();
    e.add_container("c", DEFAULT_GROUP, ContainerKind::Object).unwrap();
    let mut model = BTreeMap::new();
    for i in 0..3 {
        let b = random(i, 256 << 10);
        put(&e, &format!("s{i}"), &b).unwrap();
        model.insert(format!("s{i}"), b);
    }
    let filler = fs.fill();
    assert_eq!(fs.available(), 0);
    // Catalog-only changes at 0 bytes free: an out-of-space error, nothing half done.
    let mut refused = 0;
    for i in 0..20 {
        match e.add_container(&format!("more{i}"), DEFAULT_GROUP, ContainerKind::Object) {
            Ok(_) => {}
            Err(err) => {
                assert_eq!(err.kind(), ErrorKind::OutOfSpace, "{err}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "a full disk refused no catalog commit");
    check(&e, &model, "same engine, full disk");
    drop(e);
    // A new process at 0 bytes free opens and reads everything; the store left nothing behind.
    let e = Engine::open(&dir).unwrap();
    check(&e, &model, "reopened at 0 bytes free");
    assert_eq!(catalog_files(&e), ["catalog.redb"]);
    // Space back: the same engine takes catalog changes and streams again, no restart.
    std::fs::remove_file(filler).unwrap();
    e.add_container("after", DEFAULT_GROUP, ContainerKind::Object).unwrap();
    let b = random(99, 256 << 10);
    put(&e, "after", &b).unwrap();
    model.insert("after".into(), b);
    check(&e, &model, "after space came back");
    let v = e.verify(&VerifyOptions { scope: VerifyScope::All, repair: false }, &NoProgress).unwrap();
    assert!(v.damaged_streams.is_empty() && v.damaged_packs.is_empty(), "{v:?}");
}

/// 1 MiB packs, so that deleting a stream empties whole packs (the cleaner does not copy what
/// does not fit in the space left; with 32 MiB packs one pack would hold everything).
fn small_packs() {
    std::env::set_var("QORESTOR_PACK_SIZE", (1u64 << 20).to_string());
}

/// Puts streams of 2 MiB of random bytes until one fails; returns the error.
fn fill_with_puts(e: &Engine, model: &mut BTreeMap<String, Vec<u8>>) -> qorestor_core::Error {
    for i in 0..40 {
        let b = random(i, 2 << 20);
        match put(e, &format!("s{i:02}"), &b) {
            Ok(()) => {
                model.insert(format!("s{i:02}"), b);
            }
            Err(err) => return err,
        }
    }
    panic!("the filesystem held 80 MiB of random bytes");
}

/// Frees space the way the product does (a deletion, then the cleaner), writes a new stream
/// with the same engine, and verifies.
fn free_write_verify(e: &Engine, model: &mut BTreeMap<String, Vec<u8>>) {
    let first = model.keys().next().unwrap().clone();
    e.delete_stream("c", &first).unwrap();
    model.remove(&first);
    let r = e.run_cleaner(&CleanerOptions::default(), &NoProgress).unwrap();
    assert!(r.packs_deleted > 0, "{r:?}");
    let b = random(1000, 1 << 20);
    put(e, "after", &b).unwrap();
    model.insert("after".into(), b);
    check(e, model, "after rm and cleaner run");
    let v = e.verify(&VerifyOptions { scope: VerifyScope::All, repair: false }, &NoProgress).unwrap();
    assert!(v.damaged_streams.is_empty() && v.damaged_packs.is_empty(), "{v:?}");
}

#[test]
fn puts_stop_at_the_space_reserve_and_reads_deletions_the_cleaner_and_verify_work_at_it() {
    small_packs();
    let Some(fs) = SmallFs::mount(32) else { return };
    let dir = fs.path().join("data");
    let e = Engine::create(&dir).unwrap();
    e.add_container("c", DEFAULT_GROUP, ContainerKind::Object).unwrap();
    // The default on a 32 MiB filesystem: 1% is below the 8 MiB floor.
    let space = e.space().unwrap();
    assert!(space.reserve_is_default, "{space:?}");
    assert_eq!(space.reserve_bytes, 8 << 20, "{space:?}");
    let mut model = BTreeMap::new();
    let err = fill_with_puts(&e, &mut model);
    assert_eq!(err.kind(), ErrorKind::OutOfSpace, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("new data refused") && text.contains("available") && text.contains("8388608 bytes (8.0 MiB)"),
        "{text}"
    );
    assert!(model.len() >= 4, "only {} streams fit", model.len());
    // Refused before the reserve was touched, and not far above it.
    let free = fs.available();
    assert!(free >= 8 << 20, "{free} bytes free, under the reserve");
    assert!(free < 14 << 20, "refused with {free} bytes free");
    let stats = e.stats(&qorestor_core::StatsScope::System).unwrap();
    assert_eq!(stats.reserve_bytes, Some(8 << 20));
    assert!(stats.free_bytes.unwrap().abs_diff(free) < 1 << 20, "{stats:?}");
    // Small streams fit in what is left above the reserve, and then are refused too; nothing
    // was poisoned, and the reserve is still free.
    let mut small = None;
    for i in 0..64 {
        let b = random(500 + i, 256 << 10);
        match put(&e, &format!("small{i:02}"), &b) {
            Ok(()) => {
                model.insert(format!("small{i:02}"), b);
            }
            Err(err) => {
                small = Some(err);
                break;
            }
        }
    }
    let small = small.expect("16 MiB of small streams fitted above the reserve");
    assert_eq!(small.kind(), ErrorKind::OutOfSpace, "{small}");
    let free = fs.available();
    assert!(free >= 8 << 20, "{free} bytes free, under the reserve");
    check(&e, &model, "same engine at the reserve");
    drop(e);
    let e = Engine::open(&dir).unwrap();
    check(&e, &model, "reopened at the reserve");
    assert_eq!(e.space().unwrap().reserve_bytes, 8 << 20);
    free_write_verify(&e, &mut model);
    // A reserve set as given, 0 included, is kept across a reopen.
    e.set_space_reserve(Some(0)).unwrap();
    drop(e);
    let e = Engine::open(&dir).unwrap();
    let space = e.space().unwrap();
    assert!(!space.reserve_is_default && space.reserve_bytes == 0, "{space:?}");
}

#[test]
fn with_no_reserve_puts_fill_the_disk_and_every_acknowledged_stream_stays_readable() {
    small_packs();
    let Some(fs) = SmallFs::mount(24) else { return };
    let dir = fs.path().join("data");
    let e = Engine::create(&dir).unwrap();
    e.set_space_reserve(Some(0)).unwrap();
    e.add_container("c", DEFAULT_GROUP, ContainerKind::Object).unwrap();
    let mut model = BTreeMap::new();
    let err = fill_with_puts(&e, &mut model);
    assert!(matches!(err.kind(), ErrorKind::OutOfSpace | ErrorKind::Poisoned), "{err}");
    assert!(model.len() >= 4, "only {} streams fit", model.len());
    // The next command, read-only, on the same full disk.
    check(&e, &model, "same engine after the failed put");
    drop(e);
    let e = Engine::open(&dir).unwrap();
    check(&e, &model, "reopened on the full disk");
    assert_eq!(catalog_files(&e), ["catalog.redb"]);
    free_write_verify(&e, &mut model);
}

/// The names of the streams on the replica at `target`, each checked bit-exact against the
/// source's copy in `model`.
fn replica_streams(target: &std::path::Path, model: &BTreeMap<String, Vec<u8>>, what: &str) -> Vec<String> {
    let t = Engine::open(target).unwrap();
    let names: Vec<String> = t.streams("c").unwrap().into_iter().map(|s| s.name).collect();
    let source =
        |n: &String| model.get(n).unwrap_or_else(|| panic!("{what}: {n} is on the replica, not at the source"));
    let copied: BTreeMap<String, Vec<u8>> = names.iter().map(|n| (n.clone(), source(n).clone())).collect();
    check(&t, &copied, what);
    names
}

#[test]
fn a_replication_pass_into_a_full_target_stops_at_its_reserve_and_deletions_from_the_source_make_room() {
    small_packs();
    let Some(fs) = SmallFs::mount(32) else { return };
    let src_dir = tempfile::tempdir().unwrap();
    let target = fs.path().join("replica");
    let src = Engine::create(src_dir.path()).unwrap();
    src.add_container("c", DEFAULT_GROUP, ContainerKind::Object).unwrap();
    src.add_replication("c", target.to_str().unwrap(), None).unwrap();
    let mut model = BTreeMap::new();
    // A first pass that fits.
    for i in 0..3 {
        let b = random(i, 2 << 20);
        put(&src, &format!("s{i:02}"), &b).unwrap();
        model.insert(format!("s{i:02}"), b);
    }
    src.run_replication("c", false, &NoProgress).unwrap();
    // 24 MiB more than a 32 MiB target with an 8 MiB reserve can take.
    for i in 3..15 {
        let b = random(i, 2 << 20);
        put(&src, &format!("s{i:02}"), &b).unwrap();
        model.insert(format!("s{i:02}"), b);
    }
    let err = src.run_replication("c", false, &NoProgress).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfSpace, "{err}");
    assert!(err.to_string().contains("new data refused"), "{err}");
    let free = fs.available();
    assert!(free >= 8 << 20, "{free} bytes free on the target, under its reserve");
    // Every stream on the replica is a bit-exact copy; the first pass's are all there.
    let at_reserve = replica_streams(&target, &model, "replica at its reserve");
    assert!(at_reserve.len() >= 3 && at_reserve.len() < 15, "{at_reserve:?}");
    // The replica is read-only: space is freed by deletions at the source, which the next pass
    // applies before it sends anything, and a cleaner run on the target.
    for i in 0..8 {
        src.delete_stream("c", &format!("s{i:02}")).unwrap();
        model.remove(&format!("s{i:02}"));
    }
    match src.run_replication("c", false, &NoProgress) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), ErrorKind::OutOfSpace, "{e}"),
    }
    replica_streams(&target, &model, "after the deletions arrived");
    {
        let t = Engine::open(&target).unwrap();
        let r = t.run_cleaner(&CleanerOptions::default(), &NoProgress).unwrap();
        assert!(r.packs_deleted > 0, "{r:?}");
    }
    // The same source engine (no restart) writes and replicates a new stream; all arrive.
    let b = random(1000, 2 << 20);
    put(&src, "after", &b).unwrap();
    model.insert("after".into(), b);
    src.run_replication("c", false, &NoProgress).unwrap();
    let names = replica_streams(&target, &model, "after the cleaner run");
    assert_eq!(names, model.keys().cloned().collect::<Vec<_>>());
    let t = Engine::open(&target).unwrap();
    let v = t.verify(&VerifyOptions { scope: VerifyScope::All, repair: false }, &NoProgress).unwrap();
    assert!(v.damaged_streams.is_empty() && v.damaged_packs.is_empty(), "{v:?}");
}
