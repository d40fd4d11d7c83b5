//! Every on-disk magic, version, record size and limit, in one place.
//!
//! `docs/FORMAT.md` documents the byte layout of each record named here. All integers are
//! little-endian. Sizes that decoders rely on are checked at compile time below.

/// Pack file header magic (8 bytes).
pub const PACK_MAGIC: [u8; 8] = *b"QSPACK\0\x01";
/// Pack file format version.
pub const PACK_VERSION: u16 = 1;
/// Size of the pack file header.
pub const PACK_HEADER_LEN: usize = 32;

/// Chunk record magic (2 bytes, "QC").
pub const RECORD_MAGIC: [u8; 2] = *b"QC";
/// Chunk record format version.
pub const RECORD_VERSION: u8 = 1;
/// Size of a chunk record header (the payload follows).
pub const RECORD_HEADER_LEN: usize = 48;

/// Size of one pack footer entry.
pub const FOOTER_ENTRY_LEN: usize = 48;
/// Pack trailer magic (8 bytes), the last bytes of a sealed pack.
pub const TRAILER_MAGIC: [u8; 8] = *b"QSPKEND1";
/// Size of the pack trailer.
pub const TRAILER_LEN: usize = 24;

/// Recipe file magic.
pub const RECIPE_MAGIC: [u8; 8] = *b"QSRECIPE";
/// Recipe format version.
pub const RECIPE_VERSION: u16 = 2;
/// Longest recipe header extension (version 2), in bytes.
pub const MAX_RECIPE_EXTENSION_LEN: usize = 8192;
/// Size of the fixed part of the recipe header (names follow).
pub const RECIPE_HEADER_LEN: usize = 40;
/// Size of one recipe entry.
pub const RECIPE_ENTRY_LEN: usize = 48;
/// Recipe trailer magic.
pub const RECIPE_TRAILER_MAGIC: [u8; 8] = *b"QSRCPEND";
/// Size of the recipe trailer.
pub const RECIPE_TRAILER_LEN: usize = 32;

/// Fingerprint index file magic.
pub const INDEX_MAGIC: [u8; 8] = *b"QSFPIDX1";
/// Fingerprint index format version.
pub const INDEX_VERSION: u16 = 1;
/// Size of the index header (one page, so slots stay page-aligned).
pub const INDEX_HEADER_LEN: usize = 4096;
/// Size of one index slot.
pub const INDEX_SLOT_LEN: usize = 32;
/// Fingerprint bytes kept in an index slot (the pack footer holds all 32).
pub const INDEX_FP_PREFIX: usize = 24;

/// Catalog value magic (2 bytes) wrapping every value stored in the catalog.
pub const CATALOG_MAGIC: [u8; 2] = *b"QV";
/// Catalog value format version.
pub const CATALOG_VERSION: u8 = 1;

/// Largest chunk the engine writes or accepts from disk (raw bytes).
pub const MAX_CHUNK_LEN: u32 = 4 << 20;
/// Largest pack file the engine writes (offsets are u32).
pub const MAX_PACK_LEN: u64 = u32::MAX as u64;
/// Largest stream name in bytes.
pub const MAX_STREAM_NAME_LEN: usize = 1024;
/// Largest storage group or container name in bytes.
pub const MAX_OBJECT_NAME_LEN: usize = 64;

const _: () = assert!(RECORD_HEADER_LEN == 2 + 1 + 1 + 4 + 4 + 32 + 4);
const _: () = assert!(FOOTER_ENTRY_LEN == 32 + 4 + 4 + 4 + 1 + 3);
const _: () = assert!(TRAILER_LEN == 8 + 4 + 4 + 8);
const _: () = assert!(RECIPE_ENTRY_LEN == 32 + 4 + 4 + 4 + 4);
const _: () = assert!(INDEX_SLOT_LEN == INDEX_FP_PREFIX + 4 + 4);

/// Reads a little-endian u16 at `at`; the caller has checked the length.
pub(crate) fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Reads a little-endian u32 at `at`; the caller has checked the length.
pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads a little-endian u64 at `at`; the caller has checked the length.
pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// CRC-32 (IEEE) of the concatenation of `parts`.
pub(crate) fn crc32(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}
