//! The live registry ([`Libraries`]): libraries created, opened, reloaded and deleted while
//! others hold them; a retired library refuses everything; watchers are told.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use qorestor_core::{ContainerKind, Engine, DEFAULT_GROUP};
use qorestor_vtl::{Clock, ErrorKind, Libraries, LibraryConfig, Vtl, Watcher, CHECK_CONDITION, GOOD};

use crate::{bytes, cdbs};

/// Records the libraries it is told of.
#[derive(Default)]
struct Told(Mutex<Vec<String>>);

impl Watcher for Told {
    fn retired(&self, library: &Arc<Vtl>) {
        assert!(library.is_retired(), "a watcher hears of a library only once it is retired");
        self.0.lock().unwrap().push(library.name().to_string());
    }
}

fn small() -> LibraryConfig {
    LibraryConfig { slots: 4, drives: 2, ie_slots: 1, tapes: 2, tape_size: 10_000_000_000 }
}

/// A registry over a fresh data directory, with a watcher.
fn registry() -> (tempfile::TempDir, Engine, Libraries, Arc<Told>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_or_create(dir.path()).unwrap();
    let libraries = Libraries::open_all(&engine).unwrap();
    let told = Arc::new(Told::default());
    let weak: Weak<Told> = Arc::downgrade(&told);
    libraries.watch(weak);
    (dir, engine, libraries, told)
}

/// Loads the first cartridge into drive 0, settles the drive and writes `data` as one block,
/// buffered (not yet durable).
fn write_buffered(vtl: &Vtl, data: &[u8]) {
    let barcode = vtl.info().unwrap().cartridges[0].barcode.clone();
    vtl.load(&barcode, 0).unwrap();
    settle(vtl);
    let r = vtl.execute(1, &cdbs::write6(false, data.len() as u32), data);
    assert_eq!(r.status, GOOD, "{:x?}", r.sense_code());
}

/// TEST UNIT READY on drive 0 until its unit attentions are reported.
fn settle(vtl: &Vtl) {
    let ready = (0..4).any(|_| vtl.execute(1, &cdbs::tur(), &[]).status == GOOD);
    assert!(ready, "drive 0 keeps reporting unit attentions");
}

#[test]
fn created_and_opened_libraries_are_listed_in_name_order() {
    let (_dir, engine, libraries, _) = registry();
    assert!(libraries.is_empty());
    let before = libraries.list();
    libraries.create("zeta", DEFAULT_GROUP, &small()).unwrap();
    engine.add_container("alpha", DEFAULT_GROUP, ContainerKind::Vtl).unwrap();
    assert!(libraries.get("alpha").is_none(), "a container added without the registry is not served yet");
    let alpha = libraries.open("alpha").unwrap();
    assert!(Arc::ptr_eq(&alpha, &libraries.open("alpha").unwrap()), "one copy per library");
    let names: Vec<_> = libraries.list().iter().map(|l| l.name().to_string()).collect();
    assert_eq!(names, ["alpha", "zeta"]);
    assert!(before.is_empty(), "a snapshot does not change");
    engine.add_container("objects", DEFAULT_GROUP, ContainerKind::Object).unwrap();
    assert_eq!(libraries.open("objects").err().unwrap().kind(), ErrorKind::InvalidInput);
    assert_eq!(libraries.open("nothing").err().unwrap().kind(), ErrorKind::NotFound);
    assert_eq!(libraries.len(), 2);
}

#[test]
fn delete_retires_the_library_that_sessions_still_hold_then_deletes_it() {
    let (_dir, engine, libraries, told) = registry();
    let held = libraries.create("lib", DEFAULT_GROUP, &small()).unwrap();
    write_buffered(&held, &bytes(1, 4096));

    // Data only buffered in a drive counts: refused without --force, and nothing changed.
    let e = libraries.delete("lib", false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("QS0001L5"), "{e}");
    assert!(!held.is_retired());
    assert_eq!(held.execute(1, &cdbs::write6(false, 4), b"more").status, GOOD);
    assert!(told.0.lock().unwrap().is_empty());

    libraries.delete("lib", true).unwrap();
    assert_eq!(*told.0.lock().unwrap(), ["lib"]);
    assert!(libraries.get("lib").is_none() && libraries.is_empty());
    assert_eq!(engine.container("lib").unwrap_err().kind(), qorestor_core::ErrorKind::NotFound);
    // A session still holding the library can no longer reach it.
    for lun in [0, 1, 2] {
        let r = held.execute(lun, &cdbs::tur(), &[]);
        assert_eq!((r.status, r.sense_code()), (CHECK_CONDITION, (5, 0x25, 0)), "LUN {lun}");
    }
    let r = held.execute(1, &cdbs::write6(false, 4), b"late");
    assert_eq!((r.status, r.sense_code()), (CHECK_CONDITION, (5, 0x25, 0)));
    let e = held.load("QS0002L5", 1).unwrap_err();
    assert!(e.to_string().contains("no longer in service"), "{e}");
    assert!(held.add_cartridges(1, 10_000_000_000).is_err());
    // Ticking and flushing a retired library touch nothing.
    held.tick().unwrap();
    held.flush_all().unwrap();
    // The name can be used again.
    libraries.create("lib", DEFAULT_GROUP, &small()).unwrap();
    assert_eq!(libraries.get("lib").unwrap().info().unwrap().cartridges[0].used_bytes, 0);
}

#[test]
fn delete_of_a_library_not_served_works_as_without_a_registry() {
    let (_dir, engine, libraries, told) = registry();
    Vtl::create(&engine, "quiet", DEFAULT_GROUP, &small()).unwrap();
    libraries.delete("quiet", false).unwrap();
    assert!(engine.container("quiet").is_err());
    assert!(told.0.lock().unwrap().is_empty());
    assert_eq!(libraries.delete("quiet", true).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn reload_makes_buffered_writes_durable_and_serves_a_fresh_copy() {
    let (_dir, _engine, libraries, told) = registry();
    let old = libraries.create("lib", DEFAULT_GROUP, &small()).unwrap();
    let data = bytes(7, 10_000);
    write_buffered(&old, &data);
    let fresh = libraries.reload("lib").unwrap();
    assert!(old.is_retired() && !fresh.is_retired());
    assert_eq!(*told.0.lock().unwrap(), ["lib"]);
    assert!(Arc::ptr_eq(&fresh, &libraries.get("lib").unwrap()));
    // The cartridge is still in drive 0 and reads back what was only buffered before.
    settle(&fresh);
    assert_eq!(fresh.execute(1, &cdbs::rewind(), &[]).status, GOOD);
    let r = fresh.execute(1, &cdbs::read6(false, true, data.len() as u32), &[]);
    assert_eq!(r.status, GOOD, "{:x?}", r.sense_code());
    assert_eq!(r.data_in, data);
    assert_eq!(libraries.reload("other").err().unwrap().kind(), ErrorKind::NotFound);
}

#[test]
fn flush_all_reaches_a_library_added_later() {
    let (dir, engine, libraries, _) = registry();
    let vtl = libraries.create("late", DEFAULT_GROUP, &small()).unwrap();
    let data = bytes(3, 5000);
    write_buffered(&vtl, &data);
    libraries.flush_all().unwrap();
    // A crash now (nothing more flushed) keeps the block.
    drop((vtl, libraries, engine));
    let engine = Engine::open(dir.path()).unwrap();
    let again = Vtl::open(&engine, "late").unwrap();
    assert_eq!(again.info().unwrap().cartridges[0].used_bytes, data.len() as u64);
}

/// A clock that, once armed, holds the first caller inside `now` (a drive command, its drive
/// held) until the test lets it go: a command in flight, without timing.
struct Gate {
    armed: AtomicBool,
    entered: Mutex<Sender<()>>,
    release: Mutex<Receiver<()>>,
}

impl Clock for Gate {
    fn now(&self) -> Instant {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.entered.lock().unwrap().send(()).unwrap();
            self.release.lock().unwrap().recv().unwrap();
        }
        Instant::now()
    }
}

#[test]
fn retire_waits_for_a_command_in_flight_and_makes_its_write_durable() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_or_create(dir.path()).unwrap();
    Vtl::create(&engine, "lib", DEFAULT_GROUP, &small()).unwrap();
    let (entered_tx, entered) = channel();
    let (release, release_rx) = channel();
    let gate = Arc::new(Gate {
        armed: AtomicBool::new(false),
        entered: Mutex::new(entered_tx),
        release: Mutex::new(release_rx),
    });
    let vtl = Arc::new(Vtl::open_with_clock(&engine, "lib", gate.clone()).unwrap());
    vtl.load("QS0001L5", 0).unwrap();
    settle(&vtl);

    // The WRITE stops inside the drive (the first buffered write reads the clock).
    gate.armed.store(true, Ordering::SeqCst);
    let data = bytes(11, 3000);
    let writer = {
        let (vtl, data) = (vtl.clone(), data.clone());
        std::thread::spawn(move || vtl.execute(1, &cdbs::write6(false, data.len() as u32), &data))
    };
    entered.recv().unwrap();
    // A retirement now must wait for it: it holds every unit.
    let retiring = {
        let vtl = vtl.clone();
        std::thread::spawn(move || vtl.retire(true, |_| Ok(())))
    };
    release.send(()).unwrap();
    let written = writer.join().unwrap();
    assert_eq!(written.status, GOOD, "the command in flight ran on a library in service: {:x?}", written.sense_code());
    retiring.join().unwrap().unwrap();
    assert!(vtl.is_retired());

    // Its write was made durable by the retirement: a fresh copy reads it back.
    let fresh = Vtl::open(&engine, "lib").unwrap();
    settle(&fresh);
    assert_eq!(fresh.execute(1, &cdbs::rewind(), &[]).status, GOOD);
    let r = fresh.execute(1, &cdbs::read6(false, true, data.len() as u32), &[]);
    assert_eq!((r.status, r.data_in), (GOOD, data));
}
