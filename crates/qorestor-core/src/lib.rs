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
//! Data path: content-defined chunking ([`chunker`]), BLAKE3 fingerprints, dedup lookup
//! ([`index`] with a locality cache in [`group`]), zstd per chunk ([`compress`]), append to
//! packs ([`pack`]), recipes ([`recipe`]), catalog in sled ([`catalog`]). The byte layout of
//! every file is in `docs/FORMAT.md`.
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

pub mod catalog;
pub mod chunker;
pub mod cleaner;
pub mod compress;
pub mod crypto;
mod engine;
pub mod error;
pub mod faults;
pub mod fingerprint;
pub mod format;
mod fsutil;
pub mod group;
pub mod index;
pub mod listener;
mod maintenance;
mod mmap;
pub mod pack;
mod pack_flusher;
pub mod policy;
mod pool;
mod progress;
mod reader;
pub mod recipe;
pub mod replication;
pub mod schedule;
pub mod stats;
#[cfg(test)]
mod test_data;
pub mod verify;
mod writer;

pub use catalog::ContainerKind;
pub use chunker::{ChunkParams, Chunker};
pub use cleaner::{CleanerOptions, CleanerReport};
pub use compress::Compression;
pub use crypto::{EncryptionMode, EncryptionOptions, Passphrase};
pub use engine::{
    check_object_name, check_stream_address, check_stream_name, shortened, ContainerInfo, Engine, GroupInfo,
    GroupOptions, OwnedStreams, StreamInfo, DEFAULT_GROUP,
};
pub use error::{CatalogError, DecodeError, Error, ErrorKind, Result};
pub use fingerprint::Fingerprint;
pub use maintenance::CleanerStatus;
pub use policy::{ContainerUpdate, RecycledInfo};
pub use progress::{NoProgress, Progress};
pub use reader::StreamReader;
pub use replication::{ReplicationInfo, ReplicationRun};
pub use schedule::{parse_day, parse_hhmm, CleanerSchedule};
pub use stats::{Stats, StatsScope};
pub use verify::{VerifyOptions, VerifyReport, VerifyScope};
pub use writer::{StreamWriter, WriteCounters};
