//! Integration tests of the VTL, without sockets: CDBs are built byte by byte and sent to
//! [`Vtl::execute`]; data-in, status and sense are checked.
//! - `spc`: commands every unit answers; `ssc`: tape drives; `smc`: the changer;
//! - `decoders`: property tests and golden fixtures of the pure decoders;
//! - `model`: a model-based property test against an in-memory reference tape;
//! - `durability`: restarts, crashes, flush interval, dedup across tapes; `operator`: the
//!   operator's operations and `info`; `registry`: the live registry of a server.

mod cdbs;
mod decoders;
mod durability;
mod model;
mod operator;
mod registry;
mod smc;
mod spc;
mod ssc;

use std::sync::Arc;

use qorestor_core::{Engine, DEFAULT_GROUP};
use qorestor_vtl::{Clock, LibraryConfig, ScsiResponse, SystemClock, Vtl, CHECK_CONDITION, GOOD};

/// A library in a temporary data directory.
pub struct Lib {
    /// The data directory.
    pub dir: tempfile::TempDir,
    /// The engine (none while reopening).
    pub engine: Option<Engine>,
    /// The library (none while reopening).
    pub vtl: Option<Vtl>,
}

impl Lib {
    /// A library named `lib` with `config`.
    pub fn new(config: LibraryConfig) -> Lib {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open_or_create(dir.path()).unwrap();
        let vtl = Vtl::create(&engine, "lib", DEFAULT_GROUP, &config).unwrap();
        Lib { dir, engine: Some(engine), vtl: Some(vtl) }
    }

    /// 4 slots, 2 drives, 2 import/export slots, 3 cartridges of `capacity`.
    pub fn small(capacity: u64) -> Lib {
        Lib::new(LibraryConfig { slots: 4, drives: 2, ie_slots: 2, tapes: 3, tape_size: capacity })
    }

    /// The library.
    pub fn vtl(&self) -> &Vtl {
        self.vtl.as_ref().unwrap()
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        self.engine.as_ref().unwrap()
    }

    /// Sends a command.
    pub fn cmd(&self, lun: u64, cdb: &[u8], data: &[u8]) -> ScsiResponse {
        self.vtl().execute(lun, cdb, data)
    }

    /// Sends a command that must succeed; returns its data.
    pub fn ok(&self, lun: u64, cdb: &[u8], data: &[u8]) -> Vec<u8> {
        let r = self.cmd(lun, cdb, data);
        assert_eq!(r.status, GOOD, "{cdb:02x?}: sense {:x?}", r.sense_code());
        r.data_in
    }

    /// Sends a command that must fail with key/asc/ascq; returns the response.
    pub fn check(&self, lun: u64, cdb: &[u8], data: &[u8], code: (u8, u8, u8)) -> ScsiResponse {
        let r = self.cmd(lun, cdb, data);
        assert_eq!(r.status, CHECK_CONDITION, "{cdb:02x?}: expected {code:x?}");
        assert_eq!(r.sense_code(), code, "{cdb:02x?}");
        r
    }

    /// Clears the unit attentions of a LUN (TEST UNIT READY until not a unit attention).
    pub fn settle(&self, lun: u64) {
        for _ in 0..4 {
            let r = self.cmd(lun, &cdbs::tur(), &[]);
            if r.sense_code().0 != 6 {
                return;
            }
        }
        panic!("LUN {lun} keeps reporting unit attentions");
    }

    /// Loads `barcode` into drive 0 and settles LUN 1 and the changer.
    pub fn loaded(self, barcode: &str) -> Lib {
        self.vtl().load(barcode, 0).unwrap();
        self.settle(0);
        self.settle(1);
        self
    }

    /// Drops the library and the engine without flushing (a crash) and opens them again.
    pub fn crash_and_reopen(&mut self) {
        self.crash_and_reopen_with_clock(Arc::new(SystemClock));
    }

    /// [`Lib::crash_and_reopen`], the library's flush interval counting on `clock`.
    pub fn crash_and_reopen_with_clock(&mut self, clock: Arc<dyn Clock>) {
        self.vtl = None;
        self.engine = None;
        let engine = Engine::open(self.dir.path()).unwrap();
        self.vtl = Some(Vtl::open_with_clock(&engine, "lib", clock).unwrap());
        self.engine = Some(engine);
    }
}

/// Deterministic bytes.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}
