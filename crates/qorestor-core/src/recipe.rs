//! Recipes: the list of chunks that rebuilds a stream.
//!
//! A recipe file holds a header (group, stream id, creation time, container and stream names,
//! so that the catalog can be rebuilt from recipes), one 48-byte entry per chunk (fingerprint,
//! raw length and the location where the chunk was stored: pack, record offset, payload length)
//! and a trailer with the entry count, the logical length and a CRC-32 over the whole file.
//! Locations are hints: if the cleaner moved a chunk, the reader finds it again through the
//! fingerprint index. Recipes are written to a temporary file while the stream is written, then
//! synced and renamed into place when the stream finishes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{DecodeError, Error, Result};
use crate::faults::FaultyWriter;
use crate::fingerprint::Fingerprint;
use crate::format::*;
use crate::pack::ChunkLoc;

/// One chunk of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipeEntry {
    /// Fingerprint of the chunk.
    pub fp: Fingerprint,
    /// Raw length.
    pub raw_len: u32,
    /// Where the chunk was stored when the recipe was written.
    pub loc: ChunkLoc,
}

/// The identity of a recipe: what it rebuilds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeHeader {
    /// Storage group id.
    pub group_id: u32,
    /// Stream id (also the file name).
    pub stream_id: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Container name.
    pub container: String,
    /// Stream name.
    pub stream: String,
}

/// A decoded recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// What it rebuilds.
    pub header: RecipeHeader,
    /// The chunks, in stream order.
    pub entries: Vec<RecipeEntry>,
    /// Sum of the entries' raw lengths.
    pub logical_len: u64,
}

fn encode_header(h: &RecipeHeader) -> Vec<u8> {
    let mut b = vec![0u8; RECIPE_HEADER_LEN];
    b[0..8].copy_from_slice(&RECIPE_MAGIC);
    b[8..10].copy_from_slice(&RECIPE_VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&h.group_id.to_le_bytes());
    b[16..24].copy_from_slice(&h.stream_id.to_le_bytes());
    b[24..32].copy_from_slice(&h.created.to_le_bytes());
    b[32..34].copy_from_slice(&(h.container.len() as u16).to_le_bytes());
    b[34..36].copy_from_slice(&(h.stream.len() as u16).to_le_bytes());
    b.extend_from_slice(h.container.as_bytes());
    b.extend_from_slice(h.stream.as_bytes());
    let crc = crc32(&[&b[..36], &b[RECIPE_HEADER_LEN..]]);
    b[36..40].copy_from_slice(&crc.to_le_bytes());
    b
}

fn encode_entry(e: &RecipeEntry) -> [u8; RECIPE_ENTRY_LEN] {
    let mut b = [0u8; RECIPE_ENTRY_LEN];
    b[0..32].copy_from_slice(e.fp.as_bytes());
    b[32..36].copy_from_slice(&e.raw_len.to_le_bytes());
    b[36..40].copy_from_slice(&e.loc.pack.to_le_bytes());
    b[40..44].copy_from_slice(&e.loc.offset.to_le_bytes());
    b[44..48].copy_from_slice(&e.loc.stored_len.to_le_bytes());
    b
}

/// Encodes a whole recipe (the writer streams the same bytes).
pub fn encode_recipe(r: &Recipe) -> Vec<u8> {
    let mut out = encode_header(&r.header);
    for e in &r.entries {
        out.extend_from_slice(&encode_entry(e));
    }
    let t = trailer(r.entries.len() as u64, r.logical_len, crc32(&[&out]));
    out.extend_from_slice(&t);
    out
}

fn trailer(count: u64, logical: u64, crc_before: u32) -> [u8; RECIPE_TRAILER_LEN] {
    let mut t = [0u8; RECIPE_TRAILER_LEN];
    t[0..8].copy_from_slice(&count.to_le_bytes());
    t[8..16].copy_from_slice(&logical.to_le_bytes());
    // The CRC covers every byte before the trailer, then the trailer's first 16 bytes.
    let mut h = crc32fast::Hasher::new_with_initial(crc_before);
    h.update(&t[..16]);
    t[16..20].copy_from_slice(&h.finalize().to_le_bytes());
    t[24..32].copy_from_slice(&RECIPE_TRAILER_MAGIC);
    t
}

fn utf8(what: &'static str, b: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError::new(what, "name is not UTF-8"))
}

/// Decodes a recipe file, checking magic, version, lengths, the CRC and that the entries add
/// up to the logical length.
pub fn decode_recipe(b: &[u8]) -> Result<Recipe, DecodeError> {
    let what = "recipe";
    if b.len() < RECIPE_HEADER_LEN + RECIPE_TRAILER_LEN {
        return Err(DecodeError::new(what, format!("{} bytes is too short", b.len())));
    }
    if b[0..8] != RECIPE_MAGIC {
        return Err(DecodeError::new(what, "bad magic"));
    }
    if le_u16(b, 8) != RECIPE_VERSION {
        return Err(DecodeError::new(what, format!("unsupported version {}", le_u16(b, 8))));
    }
    let clen = le_u16(b, 32) as usize;
    let slen = le_u16(b, 34) as usize;
    if clen > MAX_OBJECT_NAME_LEN || slen > MAX_STREAM_NAME_LEN {
        return Err(DecodeError::new(what, format!("name lengths {clen}/{slen} exceed the limits")));
    }
    let names_end = RECIPE_HEADER_LEN + clen + slen;
    if b.len() < names_end + RECIPE_TRAILER_LEN {
        return Err(DecodeError::new(what, "truncated in the names"));
    }
    if crc32(&[&b[..36], &b[RECIPE_HEADER_LEN..names_end]]) != le_u32(b, 36) {
        return Err(DecodeError::new(what, "header checksum mismatch"));
    }
    if b[10..12] != [0; 2] {
        return Err(DecodeError::new(what, "reserved header bytes are not zero"));
    }
    let (body, t) = b.split_at(b.len() - RECIPE_TRAILER_LEN);
    if t[24..32] != RECIPE_TRAILER_MAGIC || t[20..24] != [0; 4] {
        return Err(DecodeError::new(what, "bad trailer magic (incomplete recipe)"));
    }
    let count = le_u64(t, 0);
    let logical = le_u64(t, 8);
    let entry_bytes = body.len() - names_end;
    if !entry_bytes.is_multiple_of(RECIPE_ENTRY_LEN) || (entry_bytes / RECIPE_ENTRY_LEN) as u64 != count {
        return Err(DecodeError::new(what, format!("{entry_bytes} entry bytes do not hold {count} entries")));
    }
    let mut h = crc32fast::Hasher::new();
    h.update(body);
    h.update(&t[..16]);
    if h.finalize() != le_u32(t, 16) {
        return Err(DecodeError::new(what, "checksum mismatch"));
    }
    let header = RecipeHeader {
        group_id: le_u32(b, 12),
        stream_id: le_u64(b, 16),
        created: le_u64(b, 24),
        container: utf8(what, &b[RECIPE_HEADER_LEN..RECIPE_HEADER_LEN + clen])?,
        stream: utf8(what, &b[RECIPE_HEADER_LEN + clen..names_end])?,
    };
    let mut entries = Vec::with_capacity(count as usize);
    let mut sum = 0u64;
    for e in body[names_end..].chunks_exact(RECIPE_ENTRY_LEN) {
        let raw_len = le_u32(e, 32);
        let stored_len = le_u32(e, 44);
        if raw_len == 0 || raw_len > MAX_CHUNK_LEN || stored_len > raw_len {
            return Err(DecodeError::new(what, format!("entry lengths {raw_len}/{stored_len} out of range")));
        }
        let mut fp = [0u8; 32];
        fp.copy_from_slice(&e[0..32]);
        sum += raw_len as u64;
        entries.push(RecipeEntry {
            fp: Fingerprint(fp),
            raw_len,
            loc: ChunkLoc { pack: le_u32(e, 36), offset: le_u32(e, 40), stored_len },
        });
    }
    if sum != logical {
        return Err(DecodeError::new(what, format!("entries add up to {sum} bytes, trailer says {logical}")));
    }
    Ok(Recipe { header, entries, logical_len: logical })
}

/// Reads and decodes a recipe file.
pub fn read_recipe(path: &Path) -> Result<Recipe> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    decode_recipe(&bytes).map_err(|e| e.at(path))
}

/// Path of stream `id`'s recipe in a group's recipe directory.
pub fn recipe_path(dir: &Path, stream_id: u64) -> PathBuf {
    dir.join(format!("{stream_id:016x}.rcp"))
}

/// Streams a recipe to a temporary file while its stream is written.
pub struct RecipeWriter {
    tmp: PathBuf,
    dest: PathBuf,
    out: Option<BufWriter<FaultyWriter<File>>>,
    crc: crc32fast::Hasher,
    count: u64,
    logical: u64,
}

impl RecipeWriter {
    /// Starts the recipe of `header.stream_id` in `dir`.
    pub fn create(dir: &Path, header: &RecipeHeader) -> Result<Self> {
        let dest = recipe_path(dir, header.stream_id);
        let tmp = dir.join(format!(".{:016x}.rcp.tmp", header.stream_id));
        let file = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        let mut w = RecipeWriter {
            tmp,
            dest,
            out: Some(BufWriter::with_capacity(1 << 20, FaultyWriter(file))),
            crc: crc32fast::Hasher::new(),
            count: 0,
            logical: 0,
        };
        let h = encode_header(header);
        w.put(&h)?;
        Ok(w)
    }

    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.crc.update(b);
        let out = self.out.as_mut().expect("open until finish");
        out.write_all(b).map_err(|e| Error::io("write", &self.tmp, e))
    }

    /// Appends one entry.
    pub fn push(&mut self, e: &RecipeEntry) -> Result<()> {
        self.count += 1;
        self.logical += e.raw_len as u64;
        self.put(&encode_entry(e))
    }

    /// Logical bytes recorded so far.
    pub fn logical_len(&self) -> u64 {
        self.logical
    }

    /// Chunks recorded so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether no entry was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Writes the trailer, syncs the file, renames it into place and syncs the directory.
    pub fn finish(mut self) -> Result<PathBuf> {
        let t = trailer(self.count, self.logical, self.crc.clone().finalize());
        let mut out = self.out.take().expect("open until finish");
        out.write_all(&t).map_err(|e| Error::io("write", &self.tmp, e))?;
        let file = out.into_inner().map_err(|e| Error::io("write", &self.tmp, e.into_error()))?.0;
        crate::faults::sync_all(&file).map_err(|e| Error::io("fsync", &self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io("rename", &self.tmp, e))?;
        crate::fsutil::sync_dir(self.dest.parent().expect("recipe in a directory"))?;
        Ok(self.dest.clone())
    }
}

impl Drop for RecipeWriter {
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Recipe {
        let entries: Vec<RecipeEntry> = (0..5u32)
            .map(|i| RecipeEntry {
                fp: Fingerprint::of(&i.to_le_bytes()),
                raw_len: 1000 + i,
                loc: ChunkLoc { pack: 1, offset: 32 + i * 100, stored_len: 50 },
            })
            .collect();
        Recipe {
            header: RecipeHeader {
                group_id: 1,
                stream_id: 7,
                created: 1_700_000_000,
                container: "c1".into(),
                stream: "a/b.tar".into(),
            },
            logical_len: entries.iter().map(|e| e.raw_len as u64).sum(),
            entries,
        }
    }

    #[test]
    fn writer_matches_encoder_and_decodes() {
        let dir = tempfile::tempdir().unwrap();
        let r = sample();
        let mut w = RecipeWriter::create(dir.path(), &r.header).unwrap();
        for e in &r.entries {
            w.push(e).unwrap();
        }
        let path = w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes, encode_recipe(&r));
        assert_eq!(decode_recipe(&bytes).unwrap(), r);
    }

    #[test]
    fn every_flipped_byte_and_truncation_is_rejected() {
        let bytes = encode_recipe(&sample());
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(decode_recipe(&b).is_err(), "flip at {i}");
        }
        for n in 0..bytes.len() {
            assert!(decode_recipe(&bytes[..n]).is_err(), "truncated to {n}");
        }
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let r = sample();
        let mut w = RecipeWriter::create(dir.path(), &r.header).unwrap();
        w.push(&r.entries[0]).unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
