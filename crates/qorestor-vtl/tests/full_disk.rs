//! Tape writes over the VTL API fill a small filesystem (a tmpfs; the suite runs as root): the
//! WRITE or WRITE FILEMARKS that meets the space reserve is VOLUME OVERFLOW with EOM, and then,
//! without freeing anything outside the product: every file acknowledged before (its filemark
//! GOOD) reads back bit-exact from both cartridges; erasing a cartridge through the VTL and a
//! cleaner run make room; a new tape file is written with the same library (no restart); verify
//! finds nothing.

use qorestor_core::{CleanerOptions, Engine, NoProgress, VerifyOptions, VerifyScope, DEFAULT_GROUP};
use qorestor_vtl::{LibraryConfig, ScsiResponse, Vtl, CHECK_CONDITION, GOOD};

mod common;
use common::random;

// The engine's full-disk tests' small filesystem (its `fill` is for those tests).
#[path = "../../qorestor-core/tests/common/small_fs.rs"]
#[allow(dead_code)]
mod small_fs;
use small_fs::SmallFs;

/// Blocks of a tape file, and their length (variable-block mode).
const BLOCKS: usize = 4;
const BLOCK: u32 = 256 << 10;
/// LUN of drive 0 (LUN 0 is the changer).
const DRIVE: u64 = 1;

fn be24(n: u32) -> [u8; 3] {
    let b = n.to_be_bytes();
    [b[1], b[2], b[3]]
}

fn write6(len: u32) -> Vec<u8> {
    let l = be24(len);
    vec![0x0A, 0, l[0], l[1], l[2], 0]
}

fn read6(len: u32) -> Vec<u8> {
    let l = be24(len);
    vec![0x08, 0, l[0], l[1], l[2], 0]
}

const WRITE_FILEMARK: [u8; 6] = [0x10, 0, 0, 0, 1, 0];
const REWIND: [u8; 6] = [0x01, 0, 0, 0, 0, 0];
const ERASE_LONG: [u8; 6] = [0x19, 0x01, 0, 0, 0, 0];
const TUR: [u8; 6] = [0; 6];

#[track_caller]
fn ok(v: &Vtl, cdb: &[u8], data: &[u8]) -> Vec<u8> {
    let r = v.execute(DRIVE, cdb, data);
    assert_eq!(r.status, GOOD, "{cdb:02x?}: sense {:x?}", r.sense_code());
    r.data_in
}

/// Loads `barcode` into drive 0 and clears the unit attentions of both LUNs.
fn load(v: &Vtl, barcode: &str) {
    v.load(barcode, 0).unwrap();
    for lun in [0, DRIVE] {
        for _ in 0..4 {
            if v.execute(lun, &TUR, &[]).sense_code().0 != 6 {
                break;
            }
        }
    }
}

/// Writes one tape file (its blocks, then a filemark); the failing response if any.
fn write_file(v: &Vtl, file: &[u8]) -> Result<(), ScsiResponse> {
    for block in file.chunks(BLOCK as usize) {
        let r = v.execute(DRIVE, &write6(block.len() as u32), block);
        if r.status != GOOD {
            return Err(r);
        }
    }
    let r = v.execute(DRIVE, &WRITE_FILEMARK, &[]);
    if r.status != GOOD {
        return Err(r);
    }
    Ok(())
}

/// Reads the mounted cartridge from the start: `files` bit-exact, each followed by its filemark.
fn read_back(v: &Vtl, files: &[Vec<u8>], what: &str) {
    ok(v, &REWIND, &[]);
    for (i, file) in files.iter().enumerate() {
        let mut got = Vec::new();
        for _ in 0..BLOCKS {
            got.extend(ok(v, &read6(BLOCK), &[]));
        }
        assert!(got == *file, "{what}: file {i} differs");
        let r = v.execute(DRIVE, &read6(BLOCK), &[]);
        assert_eq!((r.status, r.sense_code()), (CHECK_CONDITION, (0, 0, 1)), "{what}: filemark after file {i}");
    }
}

fn verify_clean(e: &Engine) {
    let v = e.verify(&VerifyOptions { scope: VerifyScope::All, repair: false }, &NoProgress).unwrap();
    assert!(v.damaged_streams.is_empty() && v.damaged_packs.is_empty(), "{v:?}");
}

#[test]
fn tape_writes_stop_at_the_reserve_with_volume_overflow_and_an_erase_makes_room() {
    // 1 MiB packs, so that erasing a cartridge empties whole packs for the cleaner.
    std::env::set_var(qorestor_core::test_support::PACK_SIZE_ENV, (1u64 << 20).to_string());
    let Some(fs) = SmallFs::mount(40) else { return };
    let engine = Engine::create(&fs.path().join("data")).unwrap();
    let reserve = engine.space().unwrap().reserve_bytes;
    assert_eq!(reserve, 8 << 20, "the default on a 40 MiB filesystem");
    let config = LibraryConfig { slots: 4, drives: 1, ie_slots: 1, tapes: 2, tape_size: 1 << 30 };
    let v = Vtl::create(&engine, "lib", DEFAULT_GROUP, &config).unwrap();
    let (a, b) = ("QS0001L5", "QS0002L5");

    // Cartridge A: 4 files of 1 MiB.
    load(&v, a);
    let files_a: Vec<Vec<u8>> = (0..4).map(|i| random(i + 1, BLOCKS * BLOCK as usize)).collect();
    for f in &files_a {
        write_file(&v, f).unwrap_or_else(|r| panic!("cartridge A: sense {:x?}", r.sense_code()));
    }
    v.unload(0).unwrap();

    // Cartridge B: files until the filesystem reaches the reserve.
    load(&v, b);
    let mut files_b = Vec::new();
    let failed = loop {
        let f = random(100 + files_b.len() as u64, BLOCKS * BLOCK as usize);
        match write_file(&v, &f) {
            Ok(()) => files_b.push(f),
            Err(r) => break r,
        }
        assert!(files_b.len() < 40, "40 MiB held 44 MiB of random bytes");
    };
    assert_eq!(failed.sense_code(), (0x0D, 0x00, 0x02), "VOLUME OVERFLOW after {} files", files_b.len());
    assert!(failed.sense[2] & 0x40 != 0, "EOM set");
    assert!(files_b.len() >= 10, "only {} files of 1 MiB fitted", files_b.len());
    let free = fs.available();
    assert!(free >= reserve, "{free} bytes free, under the reserve");

    // Everything acknowledged lists and reads back, from both cartridges.
    let segments = engine.streams("lib").unwrap();
    assert!(!segments.is_empty(), "no segment streams listed");
    read_back(&v, &files_b, "cartridge B at the reserve");
    let end = v.execute(DRIVE, &read6(BLOCK), &[]);
    assert_eq!(end.sense_code(), (0x08, 0x00, 0x05), "end of data right after the last acknowledged file");
    v.unload(0).unwrap();
    load(&v, a);
    read_back(&v, &files_a, "cartridge A at the reserve");

    // Erasing cartridge A through the VTL, then a cleaner run, gives its space back.
    ok(&v, &REWIND, &[]);
    ok(&v, &ERASE_LONG, &[]);
    let r = engine.run_cleaner(&CleanerOptions::default(), &NoProgress).unwrap();
    assert!(r.packs_deleted > 0, "{r:?}");
    let after = fs.available();
    assert!(after >= free + (3 << 20), "{free} bytes free before the erase and cleaner run, {after} after");

    // A new file on the same library and engine, no restart; then both cartridges read back.
    let new = random(999, BLOCKS * BLOCK as usize);
    write_file(&v, &new).unwrap_or_else(|r| panic!("after the cleaner run: sense {:x?}", r.sense_code()));
    read_back(&v, std::slice::from_ref(&new), "cartridge A rewritten");
    v.unload(0).unwrap();
    load(&v, b);
    read_back(&v, &files_b, "cartridge B after the cleaner run");
    verify_clean(&engine);
}
