//! Redundant records: a second copy of every catalog row, outside `DATA/catalog/`, so that a
//! damaged or unopenable catalog can be rebuilt (`verify --repair`, see `reconcile.rs`).
//!
//! Each row is one small file under `DATA/records/`:
//! - `rows/<32 hex>.rec`: a row of the `groups`, `containers`, `meta` (system settings, cleaner
//!   schedules and status, replication links, quarantine lists) or `container_meta` (VTL
//!   libraries, cartridge maps) table; the file name is a hash of table and key. Removing a row
//!   writes a tombstone (a record without a value), so a catalog that fell back to an older
//!   commit cannot bring a deleted row back.
//! - `streams/<16 hex>.rec`: the row of stream id N, in the `streams` table while it is live, in
//!   `recycle_bin` while it is in its container's recycle bin; removed when the stream is gone
//!   (its recipe, removed first, says whether the stream exists).
//!
//! A record is written after the catalog commit and before the change is acknowledged:
//! temporary file, fsync, rename, fsync of the directory, so a crash or a full disk leaves the
//! previous record whole. The id counter (`meta/next_id`) is not copied: opening the catalog
//! raises it past every id in use.
//!
//! File layout (little-endian, `docs/FORMAT.md`): magic `QSCATREC` (8), version u16, flags u16
//! (bit 0: tombstone), table name length u16, key length u16, value length u32, written time
//! u64 (seconds), then the table name, the key, the value (the catalog value exactly as the
//! catalog stores it, itself framed and checksummed) and a CRC-32 of everything before it.

use std::path::{Path, PathBuf};

use crate::error::{DecodeError, Error, Result};
use crate::format::{crc32, le_u16, le_u32, le_u64};

/// Magic of a redundant catalog record.
pub const RECORD_MAGIC: [u8; 8] = *b"QSCATREC";
/// Format version of redundant catalog records.
pub const RECORD_VERSION: u16 = 1;
/// Size of the fixed header.
pub const RECORD_HEADER_LEN: usize = 28;
/// Longest table name a record may carry.
pub const MAX_TABLE_NAME_LEN: usize = 32;
/// Longest key a record may carry (a container id and the longest stream name, with room).
pub const MAX_KEY_LEN: usize = 4096;
/// Largest value a record may carry.
pub const MAX_VALUE_LEN: usize = 64 << 20;
const FLAG_TOMBSTONE: u16 = 1;
/// Directory of table rows inside the records directory.
const ROWS: &str = "rows";
/// Directory of stream rows inside the records directory.
const STREAMS: &str = "streams";

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRecord {
    /// Catalog table name.
    pub table: String,
    /// Row key.
    pub key: Vec<u8>,
    /// The row's value as the catalog stores it; `None` for a tombstone (row removed).
    pub value: Option<Vec<u8>>,
    /// When it was written, seconds since the Unix epoch.
    pub written: u64,
}

/// Encodes a record.
pub fn encode_record(r: &CatalogRecord) -> Vec<u8> {
    let value = r.value.as_deref().unwrap_or(&[]);
    let mut b = Vec::with_capacity(RECORD_HEADER_LEN + r.table.len() + r.key.len() + value.len() + 4);
    b.extend_from_slice(&RECORD_MAGIC);
    b.extend_from_slice(&RECORD_VERSION.to_le_bytes());
    let flags = if r.value.is_none() { FLAG_TOMBSTONE } else { 0 };
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(&(r.table.len() as u16).to_le_bytes());
    b.extend_from_slice(&(r.key.len() as u16).to_le_bytes());
    b.extend_from_slice(&(value.len() as u32).to_le_bytes());
    b.extend_from_slice(&r.written.to_le_bytes());
    b.extend_from_slice(r.table.as_bytes());
    b.extend_from_slice(&r.key);
    b.extend_from_slice(value);
    let crc = crc32(&[&b]);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes and checks a record file's bytes (magic, version, lengths against the limits and
/// the file's length, flags, CRC).
pub fn decode_record(b: &[u8]) -> Result<CatalogRecord, DecodeError> {
    let what = "catalog record";
    if b.len() < RECORD_HEADER_LEN + 4 {
        return Err(DecodeError::new(what, format!("{} bytes is too short", b.len())));
    }
    if b[0..8] != RECORD_MAGIC {
        return Err(DecodeError::new(what, "bad magic"));
    }
    let version = le_u16(b, 8);
    if version != RECORD_VERSION {
        return Err(DecodeError::new(what, format!("unsupported version {version}")));
    }
    let flags = le_u16(b, 10);
    if flags & !FLAG_TOMBSTONE != 0 {
        return Err(DecodeError::new(what, format!("unknown flags {flags:#x}")));
    }
    let (tlen, klen, vlen) = (le_u16(b, 12) as usize, le_u16(b, 14) as usize, le_u32(b, 16) as usize);
    if tlen == 0 || tlen > MAX_TABLE_NAME_LEN || klen > MAX_KEY_LEN || vlen > MAX_VALUE_LEN {
        return Err(DecodeError::new(what, format!("lengths {tlen}/{klen}/{vlen} exceed the limits")));
    }
    let end = RECORD_HEADER_LEN + tlen + klen + vlen;
    if b.len() != end + 4 {
        return Err(DecodeError::new(what, format!("{} bytes, the header says {}", b.len(), end + 4)));
    }
    if crc32(&[&b[..end]]) != le_u32(b, end) {
        return Err(DecodeError::new(what, "checksum mismatch"));
    }
    let tombstone = flags & FLAG_TOMBSTONE != 0;
    if tombstone && vlen != 0 {
        return Err(DecodeError::new(what, "a tombstone carries a value"));
    }
    let table = std::str::from_utf8(&b[RECORD_HEADER_LEN..RECORD_HEADER_LEN + tlen])
        .map_err(|_| DecodeError::new(what, "table name is not UTF-8"))?
        .to_string();
    let key = b[RECORD_HEADER_LEN + tlen..RECORD_HEADER_LEN + tlen + klen].to_vec();
    let value = (!tombstone).then(|| b[RECORD_HEADER_LEN + tlen + klen..end].to_vec());
    Ok(CatalogRecord { table, key, value, written: le_u64(b, 20) })
}

/// The records directory of a data directory and the files in it.
#[derive(Debug, Clone)]
pub struct RecordDir {
    dir: PathBuf,
}

/// Where a record file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A table row (file name from table and key).
    Row,
    /// A stream's row (file name from the stream id).
    Stream,
}

/// A record file as read back: its path and its record, or why it could not be read.
pub type ReadRecord = (PathBuf, std::result::Result<CatalogRecord, String>);

impl RecordDir {
    /// The records of the data directory whose catalog directory is `catalog_dir`
    /// (`DATA/catalog` → `DATA/records`).
    pub fn beside(catalog_dir: &Path) -> RecordDir {
        let data = catalog_dir.parent().unwrap_or(Path::new("."));
        RecordDir { dir: data.join("records") }
    }

    /// The marker written once every row has a record (after the backfill of a catalog made
    /// before records existed).
    pub fn marker(&self) -> PathBuf {
        self.dir.join("COMPLETE")
    }

    /// The file of a table row.
    pub fn row_path(&self, table: &str, key: &[u8]) -> PathBuf {
        let mut h = blake3::Hasher::new();
        h.update(table.as_bytes());
        h.update(&[0]);
        h.update(key);
        let hex: String = h.finalize().as_bytes()[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(ROWS).join(format!("{hex}.rec"))
    }

    /// The file of stream `id`'s row.
    pub fn stream_path(&self, id: u64) -> PathBuf {
        self.dir.join(STREAMS).join(format!("{id:016x}.rec"))
    }

    /// Writes a record durably (temporary file, fsync, rename, directory fsync).
    pub fn write(&self, path: &Path, r: &CatalogRecord) -> Result<()> {
        if let Some(parent) = path.parent() {
            crate::fsutil::create_dir_durable(parent)?;
        }
        crate::fsutil::write_atomic(path, &encode_record(r))
    }

    /// Removes a record file durably (nothing if it does not exist).
    pub fn remove(&self, path: &Path) -> Result<()> {
        match std::fs::remove_file(path) {
            Ok(()) => crate::fsutil::sync_dir(path.parent().unwrap_or(Path::new("."))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", path, e)),
        }
    }

    /// Every record file of one kind, decoded (an unreadable file says why).
    pub fn read_all(&self, kind: RecordKind) -> Result<Vec<ReadRecord>> {
        let dir = self.dir.join(match kind {
            RecordKind::Row => ROWS,
            RecordKind::Stream => STREAMS,
        });
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", &dir, e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("rec") {
                continue;
            }
            out.push((path.clone(), read_one(&path)));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

fn read_one(path: &Path) -> std::result::Result<CatalogRecord, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    let limit = (RECORD_HEADER_LEN + MAX_TABLE_NAME_LEN + MAX_KEY_LEN + MAX_VALUE_LEN + 4) as u64;
    if len > limit {
        return Err(format!("{len} bytes exceeds the {limit}-byte limit"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    decode_record(&bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(value: Option<Vec<u8>>) -> CatalogRecord {
        CatalogRecord { table: "groups".into(), key: b"g1".to_vec(), value, written: 1_700_000_000 }
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_refused() {
        for r in [record(Some(b"QV value".to_vec())), record(None)] {
            let b = encode_record(&r);
            assert_eq!(decode_record(&b).unwrap(), r);
            for i in 0..b.len() {
                for bit in 0..8 {
                    let mut c = b.clone();
                    c[i] ^= 1 << bit;
                    assert!(decode_record(&c).is_err(), "bit {bit} of byte {i}");
                }
                assert!(decode_record(&b[..i]).is_err(), "truncated to {i}");
            }
        }
    }

    #[test]
    fn golden_record_decodes() {
        // tests/fixtures/catalog_record_v1.rec: a `meta` row `setting/system_name` = "golden".
        let b = include_bytes!("../../tests/fixtures/catalog_record_v1.rec");
        let r = decode_record(b).unwrap();
        assert_eq!(
            (r.table.as_str(), r.key.as_slice(), r.written),
            ("meta", &b"setting/system_name"[..], 1_765_000_000)
        );
        let name: String = super::super::decode_value(4, r.value.as_deref().unwrap()).unwrap();
        assert_eq!(name, "golden");
        assert_eq!(encode_record(&r), b.to_vec(), "the encoder writes the same bytes");
    }

    proptest! {
        #[test]
        fn records_round_trip(table in "[a-z_]{1,32}", key in proptest::collection::vec(any::<u8>(), 0..300),
                              value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
                              written in any::<u64>()) {
            let r = CatalogRecord { table, key, value, written };
            prop_assert_eq!(decode_record(&encode_record(&r)).unwrap(), r);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_record(&b);
        }

        #[test]
        fn a_header_with_any_lengths_is_checked(tlen in any::<u16>(), klen in any::<u16>(), vlen in any::<u32>(),
                                                tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut b = RECORD_MAGIC.to_vec();
            b.extend_from_slice(&RECORD_VERSION.to_le_bytes());
            b.extend_from_slice(&0u16.to_le_bytes());
            b.extend_from_slice(&tlen.to_le_bytes());
            b.extend_from_slice(&klen.to_le_bytes());
            b.extend_from_slice(&vlen.to_le_bytes());
            b.extend_from_slice(&0u64.to_le_bytes());
            b.extend_from_slice(&tail);
            let crc = crc32(&[&b]);
            b.extend_from_slice(&crc.to_le_bytes());
            if let Ok(r) = decode_record(&b) {
                prop_assert_eq!(encode_record(&r), b);
            }
        }
    }
}
