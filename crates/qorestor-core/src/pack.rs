//! Packs: append-only files of compressed chunk records with a fingerprint footer.
//!
//! Layout (byte tables in `docs/FORMAT.md`): a 32-byte header, chunk records (48-byte header
//! with fingerprint, lengths, codec and a CRC-32 over header and payload, then the payload),
//! and, once sealed, a footer of 48-byte entries (fingerprint → offset, lengths, codec) and a
//! 24-byte trailer. A pack without a valid trailer was being written when the process stopped:
//! [`recover`] keeps its valid records, truncates the torn tail and seals it.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::compress::Codec;
use crate::crypto::{chunk_aad, GroupCrypto};
use crate::error::{DecodeError, Error, Result};
use crate::fingerprint::Fingerprint;
use crate::format::*;
use crate::pack_flusher::PackFlusher;

/// Where a chunk record lives: pack id and the offset of its record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLoc {
    /// Pack id within the storage group.
    pub pack: u32,
    /// Offset of the record header in the pack file.
    pub offset: u32,
    /// Payload length (the record is `RECORD_HEADER_LEN + stored_len` bytes).
    pub stored_len: u32,
}

impl ChunkLoc {
    /// Total bytes of the record on disk.
    pub fn record_len(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + self.stored_len as u64
    }
}

/// A decoded chunk record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Payload encoding.
    pub codec: Codec,
    /// Raw (uncompressed) chunk length.
    pub raw_len: u32,
    /// Payload length.
    pub stored_len: u32,
    /// Fingerprint of the raw chunk.
    pub fp: Fingerprint,
    /// CRC-32 over header bytes 0..44 and the payload.
    pub crc: u32,
}

/// One pack footer entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FooterEntry {
    /// Fingerprint of the chunk.
    pub fp: Fingerprint,
    /// Offset of its record header.
    pub offset: u32,
    /// Payload length.
    pub stored_len: u32,
    /// Raw length.
    pub raw_len: u32,
    /// Payload encoding.
    pub codec: Codec,
}

/// Encodes a pack file header.
pub fn encode_pack_header(group_id: u32, pack_id: u32) -> [u8; PACK_HEADER_LEN] {
    let mut h = [0u8; PACK_HEADER_LEN];
    h[0..8].copy_from_slice(&PACK_MAGIC);
    h[8..10].copy_from_slice(&PACK_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&group_id.to_le_bytes());
    h[16..20].copy_from_slice(&pack_id.to_le_bytes());
    let crc = crc32(&[&h[..28]]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decodes a pack file header into (group id, pack id).
pub fn decode_pack_header(b: &[u8]) -> Result<(u32, u32), DecodeError> {
    let what = "pack header";
    if b.len() < PACK_HEADER_LEN {
        return Err(DecodeError::new(what, format!("{} bytes, need {PACK_HEADER_LEN}", b.len())));
    }
    if b[0..8] != PACK_MAGIC {
        return Err(DecodeError::new(what, "bad magic"));
    }
    if le_u16(b, 8) != PACK_VERSION {
        return Err(DecodeError::new(what, format!("unsupported version {}", le_u16(b, 8))));
    }
    if crc32(&[&b[..28]]) != le_u32(b, 28) {
        return Err(DecodeError::new(what, "checksum mismatch"));
    }
    if b[10..12] != [0; 2] || b[20..28] != [0; 8] {
        return Err(DecodeError::new(what, "reserved bytes are not zero"));
    }
    Ok((le_u32(b, 12), le_u32(b, 16)))
}

/// Encodes a chunk record header; `payload` is needed for the checksum.
pub fn encode_record_header(fp: &Fingerprint, raw_len: u32, codec: Codec, payload: &[u8]) -> [u8; RECORD_HEADER_LEN] {
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[0..2].copy_from_slice(&RECORD_MAGIC);
    h[2] = RECORD_VERSION;
    h[3] = codec as u8;
    h[4..8].copy_from_slice(&raw_len.to_le_bytes());
    h[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[12..44].copy_from_slice(fp.as_bytes());
    let crc = crc32(&[&h[..44], payload]);
    h[44..48].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decodes and bounds-checks a chunk record header (the payload CRC is checked separately by
/// [`check_record_payload`]).
pub fn decode_record_header(b: &[u8]) -> Result<RecordHeader, DecodeError> {
    let what = "chunk record";
    if b.len() < RECORD_HEADER_LEN {
        return Err(DecodeError::new(what, format!("{} header bytes, need {RECORD_HEADER_LEN}", b.len())));
    }
    if b[0..2] != RECORD_MAGIC {
        return Err(DecodeError::new(what, "bad magic"));
    }
    if b[2] != RECORD_VERSION {
        return Err(DecodeError::new(what, format!("unsupported version {}", b[2])));
    }
    let codec = Codec::from_u8(b[3]).ok_or_else(|| DecodeError::new(what, format!("unknown codec {}", b[3])))?;
    let raw_len = le_u32(b, 4);
    let stored_len = le_u32(b, 8);
    check_lengths(what, codec, raw_len, stored_len)?;
    let mut fp = [0u8; 32];
    fp.copy_from_slice(&b[12..44]);
    Ok(RecordHeader { codec, raw_len, stored_len, fp: Fingerprint(fp), crc: le_u32(b, 44) })
}

fn check_lengths(what: &'static str, codec: Codec, raw_len: u32, stored_len: u32) -> Result<(), DecodeError> {
    if raw_len == 0 || raw_len > MAX_CHUNK_LEN {
        return Err(DecodeError::new(what, format!("raw length {raw_len} outside 1..={MAX_CHUNK_LEN}")));
    }
    let overhead = crate::crypto::SEAL_OVERHEAD as u64;
    let (stored, raw) = (stored_len as u64, raw_len as u64);
    let ok = match codec {
        Codec::Raw => stored == raw,
        Codec::Zstd => stored > 0 && stored < raw,
        Codec::SealedRaw => stored == raw + overhead,
        Codec::SealedZstd => stored > overhead && stored < raw + overhead,
    };
    if !ok {
        return Err(DecodeError::new(
            what,
            format!("stored length {stored_len} impossible for raw length {raw_len} ({codec:?})"),
        ));
    }
    Ok(())
}

/// Checks the record CRC over the header bytes and the payload.
pub fn check_record_payload(header_bytes: &[u8], header: &RecordHeader, payload: &[u8]) -> Result<(), DecodeError> {
    if header_bytes.len() < RECORD_HEADER_LEN {
        return Err(DecodeError::new(
            "chunk record",
            format!("{} header bytes, need {RECORD_HEADER_LEN}", header_bytes.len()),
        ));
    }
    if payload.len() != header.stored_len as usize {
        return Err(DecodeError::new(
            "chunk record",
            format!("payload is {} bytes, header says {}", payload.len(), header.stored_len),
        ));
    }
    if crc32(&[&header_bytes[..44], payload]) != header.crc {
        return Err(DecodeError::new("chunk record", "checksum mismatch"));
    }
    Ok(())
}

/// Decodes one whole record (header and payload) into `out` (exactly the raw length), checking
/// the CRC, the codec, the seal of an encrypted group's payload, and that the raw bytes hash
/// (as the group hashes them) to `expected`.
pub fn decode_chunk(
    record: &[u8],
    expected: &Fingerprint,
    crypto: &GroupCrypto,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let h = decode_record_header(record)?;
    if h.fp != *expected {
        return Err(DecodeError::new("chunk record", format!("holds {:?}, expected {:?}", h.fp, expected)));
    }
    let payload = record.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + h.stored_len as usize).ok_or_else(|| {
        DecodeError::new("chunk record", format!("truncated: {} bytes for payload {}", record.len(), h.stored_len))
    })?;
    check_record_payload(record, &h, payload)?;
    let start = out.len();
    let opened;
    let payload = if h.codec.is_sealed() {
        let keys = crypto
            .keys()
            .ok_or_else(|| DecodeError::new("chunk record", "sealed payload in a group that is not encrypted"))?;
        if h.codec == Codec::SealedRaw {
            keys.open(&chunk_aad(expected, h.raw_len, h.codec), payload, out)?;
            &[][..]
        } else {
            let mut plain = Vec::with_capacity(payload.len());
            keys.open(&chunk_aad(expected, h.raw_len, h.codec), payload, &mut plain)?;
            opened = plain;
            &opened[..]
        }
    } else {
        payload
    };
    match h.codec {
        Codec::Raw => out.extend_from_slice(payload),
        Codec::SealedRaw => {}
        Codec::Zstd | Codec::SealedZstd => {
            if !crate::compress::decompress_append(payload, h.raw_len as usize, out) {
                return Err(DecodeError::new("chunk record", "zstd payload does not decode to the raw length"));
            }
        }
    }
    if crypto.fingerprint(&out[start..]) != *expected {
        out.truncate(start);
        return Err(DecodeError::new("chunk record", format!("content does not hash to {expected:?}")));
    }
    Ok(())
}

fn encode_footer_entry(e: &FooterEntry, out: &mut Vec<u8>) {
    out.extend_from_slice(e.fp.as_bytes());
    out.extend_from_slice(&e.offset.to_le_bytes());
    out.extend_from_slice(&e.stored_len.to_le_bytes());
    out.extend_from_slice(&e.raw_len.to_le_bytes());
    out.push(e.codec as u8);
    out.extend_from_slice(&[0, 0, 0]);
}

/// Encodes the footer and trailer for `entries`, the footer starting at `footer_offset`.
pub fn encode_footer(entries: &[FooterEntry], footer_offset: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * FOOTER_ENTRY_LEN + TRAILER_LEN);
    for e in entries {
        encode_footer_entry(e, &mut out);
    }
    let mut t = [0u8; TRAILER_LEN];
    t[0..8].copy_from_slice(&footer_offset.to_le_bytes());
    t[8..12].copy_from_slice(&(entries.len() as u32).to_le_bytes());
    let crc = crc32(&[&out, &t[..12]]);
    t[12..16].copy_from_slice(&crc.to_le_bytes());
    t[16..24].copy_from_slice(&TRAILER_MAGIC);
    out.extend_from_slice(&t);
    out
}

/// Decodes a pack trailer (the last 24 bytes of a sealed pack of `file_len` bytes) into
/// (footer offset, entry count), checking that they fit the file.
pub fn decode_trailer(t: &[u8], file_len: u64) -> Result<(u64, u32), DecodeError> {
    let what = "pack trailer";
    if t.len() != TRAILER_LEN {
        return Err(DecodeError::new(what, format!("{} bytes, need {TRAILER_LEN}", t.len())));
    }
    if t[16..24] != TRAILER_MAGIC {
        return Err(DecodeError::new(what, "bad magic (pack not sealed)"));
    }
    let offset = le_u64(t, 0);
    let count = le_u32(t, 8);
    let expected_end = (count as u64)
        .checked_mul(FOOTER_ENTRY_LEN as u64)
        .and_then(|n| n.checked_add(offset))
        .and_then(|n| n.checked_add(TRAILER_LEN as u64));
    if offset < PACK_HEADER_LEN as u64 || expected_end != Some(file_len) {
        return Err(DecodeError::new(
            what,
            format!("footer at {offset} with {count} entries does not fit a {file_len}-byte pack"),
        ));
    }
    Ok((offset, count))
}

/// Decodes footer entries plus trailer (`bytes` = everything from the footer offset to the end
/// of the file), checking the CRC and that every entry lies before the footer.
pub fn decode_footer(bytes: &[u8], footer_offset: u64) -> Result<Vec<FooterEntry>, DecodeError> {
    let what = "pack footer";
    if bytes.len() < TRAILER_LEN {
        return Err(DecodeError::new(what, "shorter than a trailer"));
    }
    let (body, t) = bytes.split_at(bytes.len() - TRAILER_LEN);
    let file_len = footer_offset
        .checked_add(bytes.len() as u64)
        .ok_or_else(|| DecodeError::new(what, format!("footer offset {footer_offset} is impossible")))?;
    let (offset, count) = decode_trailer(t, file_len)?;
    if offset != footer_offset || body.len() != count as usize * FOOTER_ENTRY_LEN {
        return Err(DecodeError::new(what, "trailer does not match footer size"));
    }
    if crc32(&[body, &t[..12]]) != le_u32(t, 12) {
        return Err(DecodeError::new(what, "checksum mismatch"));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for e in body.chunks_exact(FOOTER_ENTRY_LEN) {
        let codec = Codec::from_u8(e[44]).ok_or_else(|| DecodeError::new(what, format!("unknown codec {}", e[44])))?;
        if e[45..48] != [0; 3] {
            return Err(DecodeError::new(what, "entry padding is not zero"));
        }
        let mut fp = [0u8; 32];
        fp.copy_from_slice(&e[0..32]);
        let entry = FooterEntry {
            fp: Fingerprint(fp),
            offset: le_u32(e, 32),
            stored_len: le_u32(e, 36),
            raw_len: le_u32(e, 40),
            codec,
        };
        check_lengths(what, codec, entry.raw_len, entry.stored_len)?;
        let end = entry.offset as u64 + RECORD_HEADER_LEN as u64 + entry.stored_len as u64;
        if (entry.offset as usize) < PACK_HEADER_LEN || end > footer_offset {
            return Err(DecodeError::new(what, format!("entry at offset {} runs past the footer", entry.offset)));
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Path of pack `id` in a group's pack directory.
pub fn pack_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:08x}.pack"))
}

/// Parses a pack file name back into its id.
pub fn parse_pack_name(name: &str) -> Option<u32> {
    let hex = name.strip_suffix(".pack")?;
    if hex.len() != 8 {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// Reads and decodes the footer of a sealed pack.
pub fn read_footer(file: &File, path: &Path) -> Result<Vec<FooterEntry>> {
    let len = file.metadata().map_err(|e| Error::io("stat", path, e))?.len();
    if len < (PACK_HEADER_LEN + TRAILER_LEN) as u64 {
        return Err(Error::corrupt("pack", path, format!("{len} bytes is too short for a sealed pack")));
    }
    let mut t = [0u8; TRAILER_LEN];
    file.read_exact_at(&mut t, len - TRAILER_LEN as u64).map_err(|e| Error::io("read", path, e))?;
    let (offset, _) = decode_trailer(&t, len).map_err(|e| e.at(path))?;
    let mut bytes = vec![0u8; (len - offset) as usize];
    file.read_exact_at(&mut bytes, offset).map_err(|e| Error::io("read", path, e))?;
    decode_footer(&bytes, offset).map_err(|e| e.at(path))
}

/// Scans the records of a pack from the header on, stopping at the first record that is torn
/// or invalid. Returns the valid records and the offset where they end.
///
/// A pack whose header is missing or invalid is reported as a corrupt-data error.
pub fn scan_records(path: &Path) -> Result<(Vec<FooterEntry>, u64)> {
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut head = [0u8; PACK_HEADER_LEN];
    r.read_exact(&mut head).map_err(|_| Error::corrupt("pack header", path, "file shorter than a pack header"))?;
    decode_pack_header(&head).map_err(|e| e.at(path))?;
    let mut entries = Vec::new();
    let mut pos = PACK_HEADER_LEN as u64;
    let mut hb = [0u8; RECORD_HEADER_LEN];
    let mut payload = Vec::new();
    loop {
        if r.read_exact(&mut hb).is_err() {
            break;
        }
        let Ok(h) = decode_record_header(&hb) else {
            break;
        };
        payload.resize(h.stored_len as usize, 0);
        if r.read_exact(&mut payload).is_err() || check_record_payload(&hb, &h, &payload).is_err() {
            break;
        }
        if pos + RECORD_HEADER_LEN as u64 + h.stored_len as u64 > MAX_PACK_LEN {
            break;
        }
        entries.push(FooterEntry {
            fp: h.fp,
            offset: pos as u32,
            stored_len: h.stored_len,
            raw_len: h.raw_len,
            codec: h.codec,
        });
        pos += RECORD_HEADER_LEN as u64 + h.stored_len as u64;
    }
    Ok((entries, pos))
}

/// Whether a pack file ends in a valid trailer (reads only the last 24 bytes).
pub fn is_sealed(path: &Path) -> Result<bool> {
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let len = file.metadata().map_err(|e| Error::io("stat", path, e))?.len();
    if len < (PACK_HEADER_LEN + TRAILER_LEN) as u64 {
        return Ok(false);
    }
    let mut t = [0u8; TRAILER_LEN];
    file.read_exact_at(&mut t, len - TRAILER_LEN as u64).map_err(|e| Error::io("read", path, e))?;
    Ok(decode_trailer(&t, len).is_ok())
}

/// What `recover` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackState {
    /// The pack was sealed and its footer valid.
    Sealed,
    /// The pack was unsealed (a crash during appends): its torn tail was truncated and it was
    /// sealed.
    Repaired,
    /// Like [`PackState::Repaired`], but the disk was full: the torn tail was truncated and
    /// synced, and the footer is left for the next open with space (the pack stays unsealed).
    Unsealed,
    /// The pack is damaged (bad header, or a sealed pack whose footer does not decode). It was
    /// left as it is; the records readable from its start are returned. Verify and repair deal
    /// with it.
    Damaged(String),
}

/// Opens a pack written since the index's last checkpoint and returns its records. An unsealed
/// pack (torn tail after a crash) is repaired first: valid records are kept, the rest
/// truncated, and a footer written and synced. A sealed pack is checked record by record
/// against its footer (a crash can persist a footer whose records never reached the disk) and
/// synced: if every record the footer lists is intact it is [`PackState::Sealed`], otherwise
/// only the intact records are returned, with [`PackState::Damaged`]. A pack that ends in a
/// trailer but whose footer or header is damaged is never modified: only its readable records
/// are returned, with [`PackState::Damaged`].
pub fn recover(path: &Path) -> Result<(Vec<FooterEntry>, PackState)> {
    let file = OpenOptions::new().read(true).write(true).open(path).map_err(|e| Error::io("open", path, e))?;
    let footer_error = match read_footer(&file, path) {
        Ok(footer) => return check_sealed(&file, path, footer),
        Err(e @ Error::Io { .. }) => return Err(e),
        Err(e) => e.to_string(),
    };
    let len = file.metadata().map_err(|e| Error::io("stat", path, e))?.len();
    let mut tail = [0u8; 8];
    let ends_in_trailer = len >= 8 && file.read_exact_at(&mut tail, len - 8).is_ok() && tail == TRAILER_MAGIC;
    let (entries, end) = match scan_records(path) {
        Ok(x) => x,
        Err(e @ Error::Corrupt { .. }) => return Ok((Vec::new(), PackState::Damaged(e.to_string()))),
        Err(e) => return Err(e),
    };
    if ends_in_trailer {
        return Ok((entries, PackState::Damaged(footer_error)));
    }
    file.set_len(end).map_err(|e| Error::io("truncate", path, e))?;
    let footer = encode_footer(&entries, end);
    match crate::fileio::write_all_at(&file, &footer, end).map_err(|e| Error::io("write", path, e)) {
        Ok(()) => {}
        Err(Error::OutOfSpace { .. }) => {
            // The records are whole: a full disk must not stop the group from opening (reads
            // need it). Cut the partial footer off again; the next open seals the pack.
            file.set_len(end).map_err(|e| Error::io("truncate", path, e))?;
            crate::fileio::sync_all(&file).map_err(|e| Error::io("fsync", path, e))?;
            return Ok((entries, PackState::Unsealed));
        }
        Err(e) => return Err(e),
    }
    crate::fileio::sync_all(&file).map_err(|e| Error::io("fsync", path, e))?;
    Ok((entries, PackState::Repaired))
}

/// The records of a sealed pack whose footer decodes, checked by a scan; the pack is synced.
fn check_sealed(file: &File, path: &Path, footer: Vec<FooterEntry>) -> Result<(Vec<FooterEntry>, PackState)> {
    let scanned = match scan_records(path) {
        Ok((entries, _)) => entries,
        Err(e @ Error::Corrupt { .. }) => return Ok((Vec::new(), PackState::Damaged(e.to_string()))),
        Err(e) => return Err(e),
    };
    crate::fileio::sync_all(file).map_err(|e| Error::io("fsync", path, e))?;
    if scanned == footer {
        return Ok((footer, PackState::Sealed));
    }
    let intact: Vec<FooterEntry> = footer
        .iter()
        .filter(|e| scanned.binary_search_by_key(&e.offset, |s| s.offset).is_ok_and(|i| scanned[i] == **e))
        .copied()
        .collect();
    let why =
        format!("{} of the {} records its footer lists are unreadable", footer.len() - intact.len(), footer.len());
    Ok((intact, PackState::Damaged(why)))
}

/// Rewrites the footer and trailer of a sealed pack whose footer is damaged but whose records
/// are all intact: the records scanned from the header must end exactly where a footer of that
/// many entries would start. Returns false (and changes nothing) otherwise.
pub fn rebuild_footer(path: &Path) -> Result<bool> {
    let (entries, end) = scan_records(path)?;
    let len = std::fs::metadata(path).map_err(|e| Error::io("stat", path, e))?.len();
    let expected = end + (entries.len() * FOOTER_ENTRY_LEN + TRAILER_LEN) as u64;
    if expected != len {
        return Ok(false);
    }
    let file = OpenOptions::new().write(true).open(path).map_err(|e| Error::io("open", path, e))?;
    crate::fileio::write_all_at(&file, &encode_footer(&entries, end), end).map_err(|e| Error::io("write", path, e))?;
    crate::fileio::sync_all(&file).map_err(|e| Error::io("fsync", path, e))?;
    Ok(true)
}

/// The pack currently being appended to in a storage group.
pub struct PackWriter {
    id: u32,
    path: PathBuf,
    file: Arc<File>,
    pending: Vec<u8>,
    flusher: PackFlusher,
    len: u64,
    entries: Vec<FooterEntry>,
}

const FLUSH_AT: usize = 1 << 20;
/// Capacity of a record buffer: a full one plus the record that crosses `FLUSH_AT`.
const FLUSH_BUFFER: usize = FLUSH_AT + (64 << 10);

impl PackWriter {
    /// Creates pack `id` in `dir` and writes its header.
    pub fn create(dir: &Path, group_id: u32, id: u32) -> Result<Self> {
        let path = pack_path(dir, id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        let mut pending = Vec::with_capacity(FLUSH_BUFFER);
        pending.extend_from_slice(&encode_pack_header(group_id, id));
        let file = Arc::new(file);
        let flusher = PackFlusher::start(file.clone()).map_err(|e| Error::io("start writing", &path, e))?;
        let len = PACK_HEADER_LEN as u64;
        Ok(PackWriter { id, path, file, pending, flusher, len, entries: Vec::new() })
    }

    /// The pack id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Bytes written so far, including buffered ones.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The records appended so far.
    pub fn entries(&self) -> &[FooterEntry] {
        &self.entries
    }

    /// The file handle (for syncing outside the group lock).
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// An upper bound of the bytes this pack still takes from the filesystem beyond what it has
    /// taken so far: records buffered or being written behind, and the footer and trailer
    /// that sealing adds.
    pub fn space_still_needed(&self) -> u64 {
        let unwritten = self.pending.len() + if self.flusher.busy() { FLUSH_BUFFER } else { 0 };
        (unwritten + self.entries.len() * FOOTER_ENTRY_LEN + TRAILER_LEN) as u64
    }

    /// Whether a record of `payload_len` bytes still fits under the u32 offset limit.
    pub fn fits(&self, payload_len: usize) -> bool {
        self.len
            + (RECORD_HEADER_LEN + payload_len) as u64
            + (self.entries.len() as u64 + 1) * FOOTER_ENTRY_LEN as u64
            + (TRAILER_LEN as u64)
            < MAX_PACK_LEN
    }

    /// Appends one record; the bytes may stay buffered until [`PackWriter::flush`].
    pub fn append(&mut self, fp: &Fingerprint, raw_len: u32, codec: Codec, payload: &[u8]) -> Result<ChunkLoc> {
        let offset = self.len as u32;
        let header = encode_record_header(fp, raw_len, codec, payload);
        self.pending.extend_from_slice(&header);
        self.pending.extend_from_slice(payload);
        self.len += (RECORD_HEADER_LEN + payload.len()) as u64;
        let stored_len = payload.len() as u32;
        self.entries.push(FooterEntry { fp: *fp, offset, stored_len, raw_len, codec });
        if self.pending.len() >= FLUSH_AT {
            self.write_behind()?;
        }
        Ok(ChunkLoc { pack: self.id, offset, stored_len })
    }

    /// Hands the full buffer to the flusher and continues in the other one.
    fn write_behind(&mut self) -> Result<()> {
        let at = self.len - self.pending.len() as u64;
        let full = std::mem::take(&mut self.pending);
        self.pending = self.flusher.write_behind(full, at).map_err(|e| Error::io("write", &self.path, e))?;
        self.pending.reserve(FLUSH_BUFFER);
        Ok(())
    }

    /// Writes buffered bytes to the file (not synced): when this returns, every record appended
    /// so far is in the file.
    pub fn flush(&mut self) -> Result<()> {
        self.flusher.wait().map_err(|e| Error::io("write", &self.path, e))?;
        if !self.pending.is_empty() {
            let at = self.len - self.pending.len() as u64;
            crate::fileio::write_all_at(&self.file, &self.pending, at)
                .map_err(|e| Error::io("write", &self.path, e))?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Writes the footer and trailer. The caller syncs the returned file.
    pub fn seal(mut self) -> Result<(Arc<File>, PathBuf, Vec<FooterEntry>)> {
        self.flush()?;
        let footer = encode_footer(&self.entries, self.len);
        crate::fileio::write_all_at(&self.file, &footer, self.len).map_err(|e| Error::io("write", &self.path, e))?;
        Ok((self.file, self.path, self.entries))
    }
}
