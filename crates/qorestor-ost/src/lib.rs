//! `qorestor-ost`: the OST-style image server and its client library.
//!
//! It will define one dedup-aware transfer protocol for passthrough writes (raw bytes, chunked
//! by the server), optimized writes (client-side chunking; the client asks which fingerprints
//! are missing and sends only those), restores, and image copies between servers. Nothing is
//! implemented yet (see the OST issue).
