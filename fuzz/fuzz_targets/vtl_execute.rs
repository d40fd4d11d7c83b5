//! The whole SCSI surface of a library: `Vtl::execute` on the changer, two drives and a LUN
//! that does not exist, with arbitrary CDBs and data-out buffers, on one library (in a
//! temporary data directory) that keeps its state between inputs. Every input must give a
//! response (GOOD or CHECK CONDITION with 18 bytes of fixed sense), never a panic.
//!
//! Input: LUN byte (mod 4), CDB length byte (mod 17), the CDB, then data-out.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use qorestor_core::{Engine, DEFAULT_GROUP};
use qorestor_vtl::{LibraryConfig, Vtl, CHECK_CONDITION, GOOD};

struct Fixture {
    _dir: tempfile::TempDir,
    _engine: Engine,
    vtl: Vtl,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open_or_create(dir.path()).unwrap();
        let config = LibraryConfig { slots: 4, drives: 2, ie_slots: 1, tapes: 3, tape_size: 4 << 20 };
        let vtl = Vtl::create(&engine, "fuzz", DEFAULT_GROUP, &config).unwrap();
        vtl.load("QS0001L5", 0).unwrap();
        Fixture { _dir: dir, _engine: engine, vtl }
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let lun = (data[0] % 4) as u64;
    let n = (data[1] % 17) as usize;
    let rest = &data[2..];
    let (cdb, out) = rest.split_at(n.min(rest.len()));
    let r = fixture().vtl.execute(lun, cdb, out);
    match r.status {
        GOOD => assert!(r.sense.is_empty()),
        CHECK_CONDITION => assert_eq!(r.sense.len(), 18),
        s => panic!("status {s:#x}"),
    }
});
