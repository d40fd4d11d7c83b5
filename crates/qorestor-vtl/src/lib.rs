//! `qorestor-vtl`: the virtual tape library of qorestor.
//!
//! A `vtl` container holds a tape library: a changer (StorageTek L700 personality) with
//! storage slots, import/export (mail) slots and IBM ULT3580 (LTO) drives, and barcoded
//! cartridges. The main types:
//! - [`Vtl`]: an open library: the operator's operations (add, import, export, load, unload,
//!   write protection), [`Vtl::info`] for `vtl show`, and [`Vtl::execute`], the
//!   transport-independent SCSI entry point `execute(lun, cdb, data_out) -> (status, sense,
//!   data_in)` that the iSCSI target and the NDMP server call. LUN 0 is the changer (SMC),
//!   LUN `i + 1` drive `i` (SSC); every unit answers the common SPC commands.
//! - [`LibraryRecord`] and [`CartMap`]: the persisted library and cartridge maps (catalog
//!   container metadata records, validated when read).
//! - [`cdb`]: pure CDB and parameter-list decoding; [`Sense`] and [`ScsiResponse`].
//! - [`check`]: tape maps checked against their segment streams ([`damaged_segments`], for
//!   `verify`) and [`Vtl::delete`].
//!
//! A library's streams belong to it: the engine refuses to write or delete them except through
//! [`qorestor_core::OwnedStreams`], which only this crate uses.
//!
//! A cartridge is stored as deduplicated engine streams (one or more per tape file) plus a map
//! of block lengths and filemark positions ([`map`]), so identical backups on different tapes
//! deduplicate and a tape is positioned without reading it. The durability rules are in
//! [`drive`]'s documentation and `docs/VTL.md`.
//!
//! ```
//! use qorestor_core::{Engine, DEFAULT_GROUP};
//! use qorestor_vtl::{LibraryConfig, Vtl, GOOD};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let engine = Engine::open_or_create(dir.path()).unwrap();
//! let vtl = Vtl::create(&engine, "lib1", DEFAULT_GROUP, &LibraryConfig::default()).unwrap();
//! vtl.load("QS0001L5", 0).unwrap();
//! // The first command sees the power-on unit attention, then the drive is ready.
//! assert_ne!(vtl.execute(1, &[0; 6], &[]).status, GOOD);
//! assert_eq!(vtl.execute(1, &[0; 6], &[]).status, GOOD);
//! // WRITE(6), variable block mode, 4 bytes; then WRITE FILEMARKS(6) 1 makes it durable.
//! assert_eq!(vtl.execute(1, &[0x0A, 0, 0, 0, 4, 0], b"tape").status, GOOD);
//! assert_eq!(vtl.execute(1, &[0x10, 0, 0, 0, 1, 0], &[]).status, GOOD);
//! ```

pub mod cdb;
pub mod check;
pub mod clock;
pub mod drive;
pub mod error;
mod failure;
pub mod libraries;
pub mod library;
pub mod mam;
pub mod map;
pub mod model;
pub mod sense;
pub mod spc;

pub use cdb::{parse_cdb, parse_mode_select, Command, DeviceKind};
pub use check::damaged_segments;
pub use clock::{Clock, SystemClock};
pub use error::{Error, ErrorKind, Result};
pub use libraries::{Libraries, Watcher};
pub use library::{LibraryConfig, LibraryInfo, TapePosition, Vtl};
pub use map::{CartMap, TapeMap};
pub use model::{LibraryRecord, Location};
pub use sense::{ScsiResponse, Sense, CHECK_CONDITION, GOOD};

/// Largest block a drive reads or writes (READ BLOCK LIMITS reports it).
pub const MAX_BLOCK_LEN: u32 = 8 << 20;
/// Largest transfer of one READ or WRITE in fixed-block mode.
pub const MAX_TRANSFER: u64 = 64 << 20;
