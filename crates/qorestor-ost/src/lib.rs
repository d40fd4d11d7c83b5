//! `qorestor-ost`: the OST server of qorestor and its client library (the plug-in side).
//!
//! Backup applications write to a deduplicating appliance through an OpenStorage plug-in on
//! their media server, by **passthrough writes** (raw bytes; the server deduplicates) or
//! **optimized writes** (the plug-in cuts and fingerprints, asks which fingerprints the server
//! lacks, and sends only those, compressed), and restore by reading images at any offset. This
//! crate has both ends of an open protocol with those operations (`docs/OST-PROTOCOL.md`):
//!
//! - [`codec`]: the frames, a pure decoder (fuzz target `ost_wire`).
//! - [`auth`]: the SCRAM-SHA-256-shaped login over Argon2id-salted passwords (keys in
//!   [`qorestor_core::users`]).
//! - [`session`]: one session's state and requests, no I/O; [`server`]: the listener
//!   ([`listen`], run by `qorestor serve --ost-listen`).
//! - [`OstClient`], [`ImageWriter`] (`impl Write`; modes [`ClientMode`]) and [`ImageReader`]
//!   (`impl Read + Seek`): the client library.
//!
//! What a client needs to cut matching chunks is public in `qorestor-core`'s narrow API:
//! [`qorestor_core::Chunker`], [`qorestor_core::ChunkParams`], [`qorestor_core::Fingerprint`]
//! and the compression codec ([`qorestor_core::compress`]). On the server, images are the
//! streams of `ost` containers (storage units), stored through
//! [`qorestor_core::OwnedStreams`]: passthrough writes through its stream writer, optimized
//! writes through its client ingest ([`qorestor_core::ClientIngest`]).
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use qorestor_ost::{ClientMode, ImageSpec, OstClient};
//!
//! let mut client = OstClient::connect("127.0.0.1:10011", "backup", b"secret").unwrap();
//! let mut w = client.create("lsu1", "monday", &ImageSpec::default(), ClientMode::Auto).unwrap();
//! w.write_all(b"nightly backup bytes").unwrap();
//! w.close().unwrap();
//! let mut back = Vec::new();
//! client.open("lsu1", "monday").unwrap().read_to_end(&mut back).unwrap();
//! ```

pub mod auth;
mod client;
pub mod codec;
pub mod error;
mod frame_io;
mod reader;
pub mod server;
pub mod session;
mod writer;

pub use client::{ConnectOptions, OstClient};
pub use codec::{FailCode, ImageInfo, LsuInfo};
pub use error::{Error, Result};
pub use reader::{ImageReader, READ_LEN};
pub use server::{listen, serve_listener};
pub use writer::{ClientMode, ImageSpec, ImageWriter, BATCH_BYTES, PASSTHROUGH_FRAME, WINDOW};
