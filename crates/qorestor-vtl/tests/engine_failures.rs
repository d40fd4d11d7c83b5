//! Engine failures during tape commands reach the initiator as the sense an SSC drive reports
//! (the table in `docs/VTL.md`) and the log as one line naming the library, the cartridge, the
//! drive, the command and the engine's message. Each mapping goes through `Vtl::execute`; a
//! test subscriber captures the log lines of the calling thread.
//!
//! Fault injection is process-wide: the tests of this file run one at a time.

use std::sync::{Arc, Mutex};

use parking_lot::Mutex as Serial;

use qorestor_core::test_support::faults::{self, Fault, FaultOp};
use qorestor_core::{
    ContainerUpdate, EncryptionMode, EncryptionOptions, Engine, GroupOptions, Passphrase, DEFAULT_GROUP,
};
use qorestor_vtl::{LibraryConfig, ScsiResponse, Vtl, CHECK_CONDITION, GOOD};

mod common;
use common::random;

static SERIAL: Serial<()> = Serial::new(());

/// Keeps every event as one line of `field=value` pairs.
struct Capture(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl tracing::field::Visit for Line {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push_str(&format!(" {}={value}", field.name()));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = Line(format!("{}", event.metadata().level()));
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// Runs `f` with the log of this thread captured; returns its result and the lines.
fn logged<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let out = tracing::subscriber::with_default(Capture(lines.clone()), f);
    let lines = lines.lock().unwrap().clone();
    (out, lines)
}

#[track_caller]
fn sense(r: &ScsiResponse) -> (u8, u8, u8) {
    assert_eq!(r.status, CHECK_CONDITION, "expected CHECK CONDITION, got {:x?}", r.sense_code());
    r.sense_code()
}

fn read6(fixed: bool, len: u32) -> Vec<u8> {
    let l = len.to_be_bytes();
    vec![0x08, u8::from(fixed), l[1], l[2], l[3], 0]
}

fn write6(fixed: bool, len: u32) -> Vec<u8> {
    let l = len.to_be_bytes();
    vec![0x0A, u8::from(fixed), l[1], l[2], l[3], 0]
}

const WRITE_FILEMARK: [u8; 6] = [0x10, 0, 0, 0, 1, 0];
const REWIND: [u8; 6] = [0x01, 0, 0, 0, 0, 0];
const TUR: [u8; 6] = [0; 6];

/// MODE SELECT(6) setting a fixed block length.
fn set_block_len(v: &Vtl, lun: u64, len: u32) {
    let mut list = vec![0u8, 0, 0x10, 8, 0, 0, 0, 0, 0];
    list.extend_from_slice(&len.to_be_bytes()[1..]);
    let r = v.execute(lun, &[0x15, 0x10, 0, 0, list.len() as u8, 0], &list);
    assert_eq!(r.status, GOOD, "{:x?}", r.sense_code());
}

/// A library `lib` in `group` with cartridge QS0001L5 in drive 0 (LUN 1), unit attentions
/// cleared.
fn library(engine: &Engine, group: &str) -> Vtl {
    let config = LibraryConfig { slots: 4, drives: 1, ie_slots: 1, tapes: 2, tape_size: 256 << 20 };
    let v = Vtl::create(engine, "lib", group, &config).unwrap();
    v.load("QS0001L5", 0).unwrap();
    settle(&v);
    v
}

fn settle(v: &Vtl) {
    for lun in [0, 1] {
        // A unit attention is reported once per TEST UNIT READY; a LUN has at most two here.
        for _ in 0..3 {
            v.execute(lun, &TUR, &[]);
        }
        assert_eq!(v.execute(lun, &TUR, &[]).sense_code().0, 0, "LUN {lun} still reports a unit attention");
    }
}

/// The one log line, which must name the library, cartridge, drive and command.
fn one_line(lines: &[String], operation: &str) -> String {
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let l = &lines[0];
    for part in ["ERROR", "library=lib", "barcode=QS0001L5", "drive=0", &format!("operation={operation}")] {
        assert!(l.contains(part), "{part} missing in {l}");
    }
    l.clone()
}

#[test]
fn over_quota_is_volume_overflow_on_the_write_that_crosses_it() {
    let _serial = SERIAL.lock();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path()).unwrap();
    let v = library(&engine, DEFAULT_GROUP);
    engine.update_container("lib", &ContainerUpdate { quota: Some(Some(1 << 20)), ..Default::default() }).unwrap();
    let block = 256 << 10;
    let mut written = 0;
    let (r, lines) = logged(|| loop {
        let r = v.execute(1, &write6(false, block), &random(written + 1, block as usize));
        if r.status != GOOD {
            break r;
        }
        written += 1;
        assert!(written <= 8, "a 1 MiB quota took {written} blocks of 256 KiB");
    });
    assert_eq!(sense(&r), (0x0D, 0x00, 0x02), "after {written} blocks");
    assert!(r.sense[2] & 0x40 != 0, "EOM set");
    assert_eq!(r.sense_info(), Some(block as i32), "the whole block is not written");
    let line = one_line(&lines, "WRITE");
    assert!(line.contains("sense=0D/00/02") && line.contains("over its quota"), "{line}");
}

#[test]
fn a_full_disk_is_volume_overflow_then_the_poisoned_group_a_hardware_error_naming_the_fix() {
    let _serial = SERIAL.lock();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path()).unwrap();
    let v = library(&engine, DEFAULT_GROUP);
    assert_eq!(v.execute(1, &write6(false, 64 << 10), &random(1, 64 << 10)).status, GOOD);
    faults::inject(FaultOp::Write, 1, Fault::Errno(28));
    // WRITE FILEMARKS makes the block durable: the pack write finds the disk full.
    let (r, lines) = logged(|| v.execute(1, &WRITE_FILEMARK, &[]));
    assert!(faults::clear(), "the fault fired");
    assert_eq!(sense(&r), (0x0D, 0x00, 0x02));
    let line = one_line(&lines, "WRITE FILEMARKS");
    assert!(line.contains("out of space"), "{line}");
    // The group refuses writes from now on. A WRITE is buffered (GOOD); the next durable point
    // finds the group poisoned: a hardware error whose log line says what to do.
    assert_eq!(v.execute(1, &write6(false, 64 << 10), &random(2, 64 << 10)).status, GOOD);
    let (r, lines) = logged(|| v.execute(1, &WRITE_FILEMARK, &[]));
    assert_eq!(sense(&r), (0x04, 0x44, 0x00));
    let line = one_line(&lines, "WRITE FILEMARKS");
    assert!(line.contains("sense=04/44/00") && line.contains("restart qorestor serve"), "{line}");
    // MOVE MEDIUM out of the drive flushes its buffered write and fails the same way, logged.
    assert_eq!(v.execute(1, &write6(false, 64 << 10), &random(3, 64 << 10)).status, GOOD);
    let move_to_slot = [0xA5, 0, 0, 0, 0x01, 0xF4, 0x03, 0xE8, 0, 0, 0, 0];
    let (r, lines) = logged(|| v.execute(0, &move_to_slot, &[]));
    assert_eq!(sense(&r), (0x04, 0x44, 0x00));
    let line = one_line(&lines, "MOVE MEDIUM");
    assert!(line.contains("restart qorestor serve"), "{line}");
}

#[test]
fn damaged_data_is_a_medium_error_after_the_blocks_read_before_it() {
    let _serial = SERIAL.lock();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path()).unwrap();
    let v = library(&engine, DEFAULT_GROUP);
    let (block, count) = (64u32 << 10, 64u32);
    set_block_len(&v, 1, block);
    let data = random(7, (block * count) as usize);
    assert_eq!(v.execute(1, &write6(true, count), &data).status, GOOD);
    assert_eq!(v.execute(1, &REWIND, &[]).status, GOOD);
    // Damage the stored bytes three quarters into the only pack.
    let packs: Vec<_> = std::fs::read_dir(dir.path().join("groups"))
        .unwrap()
        .flat_map(|g| std::fs::read_dir(g.unwrap().path().join("packs")).unwrap())
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    let mut bytes = std::fs::read(&packs[0]).unwrap();
    let at = bytes.len() * 3 / 4;
    for b in &mut bytes[at..at + 64] {
        *b ^= 0x5A;
    }
    std::fs::write(&packs[0], &bytes).unwrap();
    let (r, lines) = logged(|| v.execute(1, &read6(true, count), &[]));
    assert_eq!(sense(&r), (0x03, 0x11, 0x00));
    let good = r.data_in.len() as u32 / block;
    assert_eq!(r.data_in.len() as u32 % block, 0, "whole blocks only");
    assert!(good > 0 && good < count, "{good} blocks before the damage");
    assert!(r.data_in == data[..r.data_in.len()], "the blocks before the damage, bit-exact");
    assert_eq!(r.sense_info(), Some((count - good) as i32), "blocks not transferred");
    let line = one_line(&lines, "READ");
    assert!(line.contains("sense=03/11/00") && line.contains("corrupt"), "{line}");
}

#[test]
fn a_locked_encrypted_group_is_data_protect_unable_to_decrypt() {
    let _serial = SERIAL.lock();
    let dir = tempfile::tempdir().unwrap();
    let pass = || Passphrase::new(b"tape secret".to_vec()).unwrap();
    {
        let engine = Engine::create(dir.path()).unwrap();
        let mut enc = EncryptionOptions::new(EncryptionMode::Static, 0, pass());
        (enc.kdf_memory_kib, enc.kdf_iterations) = (64, 1);
        engine.add_encrypted_storage_group("sealed", GroupOptions::default(), enc).unwrap();
        let v = library(&engine, "sealed");
        assert_eq!(v.execute(1, &write6(false, 4096), &random(3, 4096)).status, GOOD);
        assert_eq!(v.execute(1, &WRITE_FILEMARK, &[]).status, GOOD);
        v.flush_all().unwrap();
    }
    // Opened again without the passphrase: the tape cannot be read.
    let engine = Engine::open(dir.path()).unwrap();
    let v = Vtl::open(&engine, "lib").unwrap();
    settle(&v);
    assert_eq!(v.execute(1, &REWIND, &[]).status, GOOD);
    let (r, lines) = logged(|| v.execute(1, &read6(false, 4096), &[]));
    assert_eq!(sense(&r), (0x07, 0x74, 0x01));
    assert_eq!(r.sense_info(), Some(4096), "nothing transferred");
    let line = one_line(&lines, "READ");
    assert!(line.contains("sense=07/74/01") && line.contains("QORESTOR_PASSPHRASE"), "{line}");
    // With a wrong one: DATA PROTECT, incorrect data encryption key.
    engine.set_passphrase(Passphrase::new(b"guess".to_vec()).unwrap()).unwrap();
    let (r, lines) = logged(|| v.execute(1, &read6(false, 4096), &[]));
    assert_eq!(sense(&r), (0x07, 0x74, 0x03));
    let line = one_line(&lines, "READ");
    assert!(line.contains("wrong passphrase"), "{line}");
}
