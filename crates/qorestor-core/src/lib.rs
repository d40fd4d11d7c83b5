//! `qorestor-core`: the deduplicating storage engine of qorestor.
//!
//! The main types:
//! - [`Engine`]: one data directory: storage groups (dedup domains with a compression and
//!   chunking policy), containers (typed namespaces: object, nas, ost, vtl, rda) and streams.
//! - [`StreamWriter`]: writes a stream through [`std::io::Write`]; [`StreamWriter::finish`]
//!   publishes it atomically and durably.
//! - [`StreamReader`]: reads a stream back through [`std::io::Read`] and [`std::io::Seek`],
//!   every chunk verified against its BLAKE3 fingerprint.
//! - [`Stats`]: logical and stored bytes, dedup and compression ratios of a scope.
//!
//! Data path: content-defined chunking ([`chunker`]), BLAKE3 fingerprints, dedup lookup (a
//! fingerprint index with a locality cache), zstd per chunk ([`compress`]), append to packs,
//! recipes, catalog in redb. The byte layout of every file is in `docs/FORMAT.md`. Everything
//! that reads or writes the data directory's files goes through [`Engine`], which holds the
//! directory's lock: the storage layers (packs, index, recipes, catalog) are not public.
//!
//! ```
//! use std::io::Write;
//! use qorestor_core::{ContainerKind, Engine, StatsScope, DEFAULT_GROUP};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let engine = Engine::open_or_create(dir.path()).unwrap();
//! engine.add_container("nightly", DEFAULT_GROUP, ContainerKind::Object).unwrap();
//! let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
//! for name in ["mon", "tue"] {
//!     let mut w = engine.create_stream("nightly", name).unwrap();
//!     w.write_all(&data).unwrap();
//!     w.finish().unwrap();
//! }
//! let stats = engine.stats(&StatsScope::Container("nightly".into())).unwrap();
//! assert!(stats.dedup_ratio >= 2.0);
//! ```

mod catalog;
pub mod chunker;
pub mod cleaner;
pub mod compress;
pub mod control;
pub mod counted;
pub mod crypto;
mod engine;
pub mod error;
pub mod events;
mod fileio;
pub mod fingerprint;
pub mod format;
mod fsutil;
mod group;
mod index;
pub mod listener;
mod maintenance;
mod mmap;
mod pack;
mod pack_flusher;
pub mod policy;
mod pool;
mod progress;
mod reader;
mod recipe;
pub mod replication;
pub mod schedule;
pub mod space;
pub mod stats;
#[cfg(test)]
mod test_data;
pub mod users;
pub mod verify;
mod write_gate;
mod writer;

pub use catalog::ContainerKind;
pub use chunker::{ChunkParams, Chunker};
pub use cleaner::{CleanerOptions, CleanerReport};
pub use compress::Compression;
pub use crypto::{EncryptionMode, EncryptionOptions, Passphrase};
pub use engine::{
    check_object_name, check_stream_address, check_stream_name, shortened, ClientChunk, ClientIngest, ContainerInfo,
    DirLock, Engine, GroupInfo, GroupOptions, IngestParams, OwnedStreams, StreamInfo, DEFAULT_GROUP,
};
pub use error::{CatalogError, DecodeError, Error, ErrorKind, Result};
pub use fingerprint::Fingerprint;
pub use maintenance::CleanerStatus;
pub use policy::{ContainerUpdate, RecycledInfo};
pub use progress::{NoProgress, Progress};
pub use reader::StreamReader;
pub use recipe::{ImageMeta, MAX_IMAGE_PROPERTIES};
pub use replication::{ReplicationInfo, ReplicationRun};
pub use schedule::{parse_day, parse_hhmm, CleanerSchedule};
pub use space::SpaceInfo;
pub use stats::{Stats, StatsScope};
pub use verify::{VerifyOptions, VerifyReport, VerifyScope};
pub use write_gate::WritesPaused;
pub use writer::{StreamWriter, WriteCounters};

/// The engine's internals that its own tests, benches and fuzz targets exercise directly: the
/// pure encoders and decoders of the on-disk records and of the replication protocol, and, in
/// builds with the `fault-injection` feature (tests only; release builds never have it), fault
/// injection, the pack-size knob and pack recovery on a bare file. Not part of the API: none of
/// it takes the data directory's lock, and any of it may change or go without notice.
#[doc(hidden)]
pub mod test_support {
    /// Pack files: headers, records, footers.
    pub mod pack {
        #[cfg(feature = "fault-injection")]
        pub use crate::pack::recover;
        pub use crate::pack::{
            check_record_payload, decode_chunk, decode_footer, decode_pack_header, decode_record_header,
            decode_trailer, encode_footer, encode_pack_header, encode_record_header, pack_path, parse_pack_name,
            read_footer, scan_records, ChunkLoc, FooterEntry, PackState, RecordHeader,
        };
    }
    /// The fingerprint index file's header.
    pub mod index {
        pub use crate::index::{decode_index_header, encode_index_header, IndexHeader};
    }
    /// Recipe files.
    pub mod recipe {
        pub use crate::recipe::{
            decode_recipe, encode_recipe, read_recipe, ImageMeta, Recipe, RecipeEntry, RecipeHeader,
        };
    }
    /// Catalog values.
    pub mod catalog {
        pub use crate::catalog::{
            decode_value, encode_value, ContainerRecord, GroupRecord, RecycledRecord, StreamRecord,
        };
    }
    /// Redundant catalog records (`DATA/records/`).
    pub mod catalog_record {
        pub use crate::catalog::records::{decode_record, encode_record, CatalogRecord};
    }
    /// Replication protocol frames.
    pub mod wire {
        pub use crate::replication::wire::{decode, encode, frame_len, Message, MAX_FRAME, VERSION};
    }
    /// Failing the Nth write or fsync of the process (see the module's source).
    #[cfg(feature = "fault-injection")]
    pub mod faults {
        pub use crate::fileio::{clear, inject, Fault, FaultOp};
    }
    /// The environment variable that sets the pack size of test builds.
    #[cfg(feature = "fault-injection")]
    pub use crate::group::PACK_SIZE_ENV;

    /// The environment variable naming the [`fault_point`] at which test builds panic.
    pub const PANIC_POINT_ENV: &str = "QORESTOR_PANIC_POINT";

    /// A point where builds with the `fault-injection` feature (tests only) panic when
    /// [`PANIC_POINT_ENV`] names it, so tests can see that a panic is contained. Does nothing in
    /// other builds.
    pub fn fault_point(point: &str) {
        #[cfg(feature = "fault-injection")]
        if std::env::var(PANIC_POINT_ENV).is_ok_and(|p| p == point) {
            panic!("injected panic at {point} ({PANIC_POINT_ENV})");
        }
        #[cfg(not(feature = "fault-injection"))]
        let _ = point;
    }

    /// The environment variable naming the [`hold_point`] at which test builds wait.
    pub const HOLD_POINT_ENV: &str = "QORESTOR_HOLD_POINT";

    /// A point where builds with the `fault-injection` feature (tests only) wait, the first time
    /// a process reaches it while [`HOLD_POINT_ENV`] names it, until `released` says so (at most
    /// 60 s), after saying so on stderr: a test can then cancel a long run at a known place and
    /// see it stop at its next cancel point. Does nothing in other builds.
    pub fn hold_point(point: &str, released: impl Fn() -> bool) {
        #[cfg(feature = "fault-injection")]
        if std::env::var(HOLD_POINT_ENV).is_ok_and(|p| p == point) {
            static HELD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if HELD.swap(true, std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            eprintln!("qorestor: holding at {point} ({HOLD_POINT_ENV})");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while !released() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        #[cfg(not(feature = "fault-injection"))]
        let _ = (point, released);
    }
}
