//! Restarts, crashes, the flush interval, and dedup across tapes.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use qorestor_core::{ContainerKind, StatsScope, DEFAULT_GROUP};
use qorestor_vtl::{Clock, LibraryRecord};

use super::cdbs::*;
use super::{bytes, Lib};

const CAP: u64 = 100_000_000_000;

#[test]
fn a_loaded_cartridge_stays_loaded_across_a_restart() {
    let mut l = Lib::small(CAP).loaded("QS0001L5");
    let a = bytes(1, 5000);
    l.ok(1, &write6(false, 5000), &a);
    l.ok(1, &write_filemarks(1, false), &[]);
    l.crash_and_reopen();
    assert_eq!(l.vtl().info().unwrap().drives[0].barcode.as_deref(), Some("QS0001L5"));
    // Power-on unit attention first, then ready at the beginning of the tape.
    l.check(1, &tur(), &[], (6, 0x29, 0));
    l.ok(1, &tur(), &[]);
    let p = l.ok(1, &read_position(0), &[]);
    assert_eq!((p[0] & 0x80, &p[4..8]), (0x80, &[0u8, 0, 0, 0][..]));
    assert_eq!(l.ok(1, &read6(false, false, 5000), &[]), a);
    l.check(1, &read6(false, false, 5000), &[], (0, 0, 1));
    l.check(1, &read6(false, false, 5000), &[], (8, 0, 5));
}

#[test]
fn a_crash_loses_only_buffered_writes() {
    let mut l = Lib::small(CAP).loaded("QS0001L5");
    let a = bytes(1, 3000);
    l.ok(1, &write6(false, 3000), &a);
    l.ok(1, &write_filemarks(1, false), &[]);
    l.ok(1, &write6(false, 3000), &bytes(2, 3000));
    l.ok(1, &write6(false, 3000), &bytes(3, 3000));
    // A stream of this cartridge that no durable map names (as a crash can leave).
    let segments = l.engine().owned_streams("lib", ContainerKind::Vtl).unwrap();
    let mut w = segments.create_stream("QS0001L5/0000009999").unwrap();
    std::io::Write::write_all(&mut w, b"orphan").unwrap();
    w.finish().unwrap();
    // And a stream that is not a segment: left alone.
    let mut w = segments.create_stream("notes.txt").unwrap();
    std::io::Write::write_all(&mut w, b"kept").unwrap();
    w.finish().unwrap();
    drop(segments);
    l.crash_and_reopen();
    l.settle(1);
    assert_eq!(l.ok(1, &read6(false, false, 3000), &[]), a);
    l.check(1, &read6(false, false, 3000), &[], (0, 0, 1));
    l.check(1, &read6(false, false, 3000), &[], (8, 0, 5));
    let streams: Vec<String> = l.engine().streams("lib").unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(streams.len(), 2, "{streams:?}");
    assert!(streams.contains(&"notes.txt".to_string()));
    // Writing at end of data continues the tape.
    l.ok(1, &write6(false, 10), &[7; 10]);
    l.ok(1, &rewind(), &[]);
    l.ok(1, &space6(1, 1), &[]);
    assert_eq!(l.ok(1, &read6(false, false, 10), &[]), vec![7; 10]);
}

#[test]
fn a_crash_during_an_overwrite_keeps_the_old_tape() {
    let mut l = Lib::small(CAP).loaded("QS0001L5");
    let blocks: Vec<Vec<u8>> = (0..3).map(|i| bytes(i, 20_000)).collect();
    l.ok(1, &write6(false, 20_000), &blocks[0]);
    l.ok(1, &write6(false, 20_000), &blocks[1]);
    l.ok(1, &write_filemarks(1, false), &[]);
    l.ok(1, &write6(false, 20_000), &blocks[2]);
    l.ok(1, &rewind(), &[]);
    l.ok(1, &space6(0, 1), &[]);
    l.ok(1, &write6(false, 100), &[1; 100]);
    l.crash_and_reopen();
    l.settle(1);
    assert_eq!(l.ok(1, &read6(false, false, 20_000), &[]), blocks[0]);
    assert_eq!(l.ok(1, &read6(false, false, 20_000), &[]), blocks[1]);
    l.check(1, &read6(false, false, 1), &[], (0, 0, 1));
    assert_eq!(l.ok(1, &read6(false, false, 20_000), &[]), blocks[2]);
    // The overwrite made durable this time: the old tail is gone, its streams too.
    l.ok(1, &rewind(), &[]);
    l.ok(1, &space6(0, 1), &[]);
    l.ok(1, &write6(false, 100), &[1; 100]);
    l.ok(1, &write_filemarks(1, false), &[]);
    l.crash_and_reopen();
    l.settle(1);
    assert_eq!(l.ok(1, &read6(false, false, 20_000), &[]), blocks[0]);
    assert_eq!(l.ok(1, &read6(false, false, 100), &[]), vec![1; 100]);
    l.check(1, &read6(false, false, 1), &[], (0, 0, 1));
    l.check(1, &read6(false, false, 1), &[], (8, 0, 5));
    let used = l.vtl().info().unwrap().cartridges[0].used_bytes;
    assert_eq!(used, 20_100);
    let stored: u64 = l.engine().streams("lib").unwrap().iter().map(|s| s.logical_bytes).sum();
    assert_eq!(stored, 20_100);
}

#[test]
fn the_flush_interval_bounds_what_a_crash_loses() {
    let mut l = Lib::small(CAP);
    let mut rec: LibraryRecord = l.engine().container_meta("lib", "library").unwrap().unwrap();
    rec.flush_bytes = 1000;
    l.engine().put_container_meta("lib", "library", &rec).unwrap();
    l.crash_and_reopen();
    let mut l = l.loaded("QS0001L5");
    for i in 0..3 {
        l.ok(1, &write6(false, 600), &bytes(i, 600));
    }
    // The second write crossed 1000 buffered bytes: the first two blocks are durable.
    l.crash_and_reopen();
    l.settle(1);
    assert_eq!(l.ok(1, &read6(false, false, 600), &[]), bytes(0, 600));
    assert_eq!(l.ok(1, &read6(false, false, 600), &[]), bytes(1, 600));
    l.check(1, &read6(false, false, 600), &[], (8, 0, 5));
}

#[test]
fn flush_all_unload_and_moves_make_writes_durable() {
    let mut l = Lib::small(CAP).loaded("QS0001L5");
    l.ok(1, &write6(false, 100), &[1; 100]);
    l.vtl().flush_all().unwrap();
    l.crash_and_reopen();
    l.settle(1);
    assert_eq!(l.ok(1, &read6(false, false, 100), &[]), vec![1; 100]);
    l.ok(1, &write6(false, 100), &[2; 100]);
    l.vtl().unload(0).unwrap();
    l.vtl().load("QS0001L5", 1).unwrap();
    l.settle(2);
    l.ok(2, &space6(0, 2), &[]);
    l.ok(2, &write6(false, 100), &[3; 100]);
    l.settle(0);
    l.ok(0, &move_medium(0, 501, 1003), &[]);
    l.crash_and_reopen();
    let used = l.vtl().info().unwrap().cartridges[0].used_bytes;
    assert_eq!(used, 300);
}

#[test]
fn the_same_backup_on_two_tapes_is_stored_once() {
    let l = Lib::small(CAP).loaded("QS0001L5");
    l.vtl().load("QS0002L5", 1).unwrap();
    l.settle(2);
    let data = bytes(42, 64 << 20);
    let stored = || l.engine().stats(&StatsScope::StorageGroup(DEFAULT_GROUP.into())).unwrap().stored_bytes;
    let before = stored();
    for lun in [1, 2] {
        for block in data.chunks(256 << 10) {
            l.ok(lun, &write6(false, block.len() as u32), block);
        }
        l.ok(lun, &write_filemarks(1, false), &[]);
        if lun == 1 {
            let one = stored() - before;
            assert!(one >= 60 << 20, "one copy stored {one} bytes");
        }
    }
    let one_tape = (64u64 << 20) as f64;
    let both = (stored() - before) as f64;
    assert!(both < 1.1 * one_tape, "two tapes stored {both} bytes, one tape's data is {one_tape}");
    // And the second tape reads back.
    l.ok(2, &rewind(), &[]);
    assert_eq!(l.ok(2, &read6(false, false, 256 << 10), &[]), &data[..256 << 10]);
}

/// A clock that moves only when told to.
#[derive(Default)]
struct ManualClock {
    elapsed: Mutex<Duration>,
}

impl ManualClock {
    fn advance(&self, by: Duration) {
        *self.elapsed.lock() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        static START: OnceLock<Instant> = OnceLock::new();
        *START.get_or_init(Instant::now) + *self.elapsed.lock()
    }
}

#[test]
fn tick_flushes_an_idle_drive_once_the_interval_has_passed() {
    let mut l = Lib::small(CAP);
    let mut rec: LibraryRecord = l.engine().container_meta("lib", "library").unwrap().unwrap();
    rec.flush_secs = 1;
    l.engine().put_container_meta("lib", "library", &rec).unwrap();
    let clock = Arc::new(ManualClock::default());
    l.crash_and_reopen_with_clock(clock.clone());
    let mut l = l.loaded("QS0001L5");
    // Just short of the interval: the tick leaves the write buffered, and a crash loses it.
    l.ok(1, &write6(false, 100), &[5; 100]);
    clock.advance(Duration::from_millis(999));
    l.vtl().tick().unwrap();
    l.crash_and_reopen_with_clock(clock.clone());
    l.settle(1);
    l.check(1, &read6(false, false, 100), &[], (8, 0, 5));
    // The interval reached: the tick makes it durable.
    l.ok(1, &write6(false, 100), &[6; 100]);
    clock.advance(Duration::from_millis(1000));
    l.vtl().tick().unwrap();
    l.crash_and_reopen();
    l.settle(1);
    assert_eq!(l.ok(1, &read6(false, false, 100), &[]), vec![6; 100]);
}

/// The child half of the SIGKILL test: writes a durable file and buffered blocks, says so,
/// and waits to be killed.
fn killed_child(dir: &std::path::Path) {
    let engine = qorestor_core::Engine::open(dir).unwrap();
    let vtl = qorestor_vtl::Vtl::open(&engine, "lib").unwrap();
    while vtl.execute(1, &tur(), &[]).status != qorestor_vtl::GOOD {}
    let ok = |cdb: &[u8], data: &[u8]| assert_eq!(vtl.execute(1, cdb, data).status, qorestor_vtl::GOOD);
    ok(&write6(false, 5000), &bytes(1, 5000));
    ok(&write_filemarks(1, false), &[]);
    ok(&write6(false, 5000), &bytes(2, 5000));
    for i in 0..40 {
        ok(&write6(false, 256 << 10), &bytes(10 + i, 256 << 10));
    }
    println!("ready");
    loop {
        std::thread::park();
    }
}

#[test]
fn a_killed_process_keeps_exactly_the_durable_part() {
    const VAR: &str = "QORESTOR_VTL_KILL_CHILD_DIR";
    if let Some(dir) = std::env::var_os(VAR) {
        killed_child(std::path::Path::new(&dir));
        return;
    }
    let mut l = Lib::small(CAP).loaded("QS0001L5");
    l.vtl = None;
    l.engine = None;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "durability::a_killed_process_keeps_exactly_the_durable_part", "--nocapture"])
        .env(VAR, l.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let ready = std::io::BufRead::lines(std::io::BufReader::new(out)).any(|line| line.unwrap().trim() == "ready");
    assert!(ready, "the child did not get ready");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    l.crash_and_reopen();
    l.settle(1);
    assert_eq!(l.ok(1, &read6(false, false, 5000), &[]), bytes(1, 5000));
    l.check(1, &read6(false, false, 5000), &[], (0, 0, 1));
    l.check(1, &read6(false, false, 5000), &[], (8, 0, 5));
    // End of data is at the last durable point: writing there continues the tape.
    l.ok(1, &write6(false, 3), b"new");
    l.ok(1, &rewind(), &[]);
    l.ok(1, &space6(1, 1), &[]);
    assert_eq!(l.ok(1, &read6(false, false, 3), &[]), b"new");
}
