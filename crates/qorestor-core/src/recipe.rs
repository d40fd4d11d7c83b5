//! Recipes: the list of chunks that rebuilds a stream.
//!
//! A recipe file holds a header (group, stream id, creation time, container and stream names,
//! so that the catalog can be rebuilt from recipes), one 48-byte entry per chunk (fingerprint,
//! raw length and the location where the chunk was stored: pack, record offset, payload length)
//! and a trailer with the entry count, the logical length and a CRC-32 over the whole file.
//! Locations are hints: if the cleaner moved a chunk, the reader finds it again through the
//! fingerprint index. Recipes are written to a temporary file (`.<id>.rcp.tmp`) while the
//! stream is written, then synced and renamed into place when the stream finishes. A writer
//! that is killed leaves its temporary file; opening the data directory removes those that no
//! writer of this process owns ([`is_leftover`]).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::crypto::SEAL_OVERHEAD;
use crate::error::{DecodeError, Error, Result};
use crate::fileio::FileWriter;
use crate::fingerprint::Fingerprint;
use crate::format::*;
use crate::pack::ChunkLoc;

/// The temporary recipe files of the writers alive in this process.
static LIVE_TMP: parking_lot::Mutex<BTreeSet<PathBuf>> = parking_lot::Mutex::new(BTreeSet::new());

/// Whether `path` (in a recipe directory) is a temporary recipe that no writer of this process
/// owns: left by a writer that is gone. (The data directory's lock keeps other processes out.)
pub(crate) fn is_leftover(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let id = name.strip_prefix('.').and_then(|n| n.strip_suffix(".rcp.tmp"));
    id.is_some_and(|h| h.len() == 16 && u64::from_str_radix(h, 16).is_ok()) && !LIVE_TMP.lock().contains(path)
}

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
    /// An OST image's metadata (format version 2's header extension), if the stream is one.
    pub image: Option<ImageMeta>,
}

/// What an OST image carries besides its bytes: written in its recipe's header extension, so a
/// catalog rebuilt from recipes has it too.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImageMeta {
    /// The image's date as the backup application set it, seconds since the Unix epoch.
    pub date: u64,
    /// Copy number (1 for the primary copy).
    pub copy: u32,
    /// Free-form properties (UTF-8, at most [`MAX_IMAGE_PROPERTIES`] bytes).
    pub properties: String,
}

/// Longest properties text of an image, in bytes.
pub const MAX_IMAGE_PROPERTIES: usize = 4096;
/// Extension record kind of [`ImageMeta`].
const EXT_IMAGE: u8 = 1;
/// Fixed bytes of an image record (kind 1, length 2, date 8, copy 4).
const EXT_IMAGE_FIXED: usize = 1 + 2 + 8 + 4;

fn encode_extension(h: &RecipeHeader) -> Vec<u8> {
    let mut b = Vec::new();
    if let Some(m) = &h.image {
        b.push(EXT_IMAGE);
        b.extend_from_slice(&((8 + 4 + m.properties.len()) as u16).to_le_bytes());
        b.extend_from_slice(&m.date.to_le_bytes());
        b.extend_from_slice(&m.copy.to_le_bytes());
        b.extend_from_slice(m.properties.as_bytes());
    }
    b
}

/// Decodes a header extension: records of `kind: u8, len: u16 LE, value`; every kind known.
fn decode_extension(mut b: &[u8]) -> Result<Option<ImageMeta>, DecodeError> {
    let what = "recipe header extension";
    let mut image = None;
    while !b.is_empty() {
        if b.len() < 3 {
            return Err(DecodeError::new(what, "truncated record"));
        }
        let (kind, len) = (b[0], le_u16(b, 1) as usize);
        if b.len() < 3 + len {
            return Err(DecodeError::new(what, format!("record of {len} bytes is truncated")));
        }
        let value = &b[3..3 + len];
        match kind {
            EXT_IMAGE if image.is_none() => {
                if len < EXT_IMAGE_FIXED - 3 || len - (EXT_IMAGE_FIXED - 3) > MAX_IMAGE_PROPERTIES {
                    return Err(DecodeError::new(what, format!("image record of {len} bytes")));
                }
                image = Some(ImageMeta {
                    date: le_u64(value, 0),
                    copy: le_u32(value, 8),
                    properties: utf8(what, &value[12..])?,
                });
            }
            EXT_IMAGE => return Err(DecodeError::new(what, "two image records")),
            k => return Err(DecodeError::new(what, format!("unknown record kind {k}"))),
        }
        b = &b[3 + len..];
    }
    Ok(image)
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
    let ext = encode_extension(h);
    let mut b = vec![0u8; RECIPE_HEADER_LEN];
    b[0..8].copy_from_slice(&RECIPE_MAGIC);
    // Version 1 when there is no extension: such recipes stay readable by older releases.
    let version = if ext.is_empty() { 1 } else { RECIPE_VERSION };
    b[8..10].copy_from_slice(&version.to_le_bytes());
    b[10..12].copy_from_slice(&(ext.len() as u16).to_le_bytes());
    b[12..16].copy_from_slice(&h.group_id.to_le_bytes());
    b[16..24].copy_from_slice(&h.stream_id.to_le_bytes());
    b[24..32].copy_from_slice(&h.created.to_le_bytes());
    b[32..34].copy_from_slice(&(h.container.len() as u16).to_le_bytes());
    b[34..36].copy_from_slice(&(h.stream.len() as u16).to_le_bytes());
    b.extend_from_slice(h.container.as_bytes());
    b.extend_from_slice(h.stream.as_bytes());
    b.extend_from_slice(&ext);
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
    let mut entries = Vec::with_capacity(b.len().saturating_sub(RECIPE_HEADER_LEN) / RECIPE_ENTRY_LEN);
    let (header, logical_len) =
        decode_streaming(&mut &b[..], b.len() as u64, |e| entries.push(*e)).map_err(StreamError::into_decode)?;
    Ok(Recipe { header, entries, logical_len })
}

/// Why a streamed recipe could not be read.
enum StreamError {
    /// The bytes are not a valid recipe.
    Decode(DecodeError),
    /// Reading failed.
    Io(std::io::Error),
}

impl StreamError {
    /// For in-memory input, where reads fail only by running out of bytes.
    fn into_decode(self) -> DecodeError {
        match self {
            StreamError::Decode(d) => d,
            StreamError::Io(e) => DecodeError::new("recipe", format!("truncated: {e}")),
        }
    }
}

impl From<DecodeError> for StreamError {
    fn from(d: DecodeError) -> Self {
        StreamError::Decode(d)
    }
}

/// Entries decoded per read while streaming (about 64 KiB).
const STREAM_BATCH: usize = 1365;

/// The recipe decoder, over `len` bytes from `r`: every entry goes to `visit` as soon as it is
/// read (before the trailer's checksum is known: a caller must drop what it did if this
/// returns an error). Memory does not depend on the recipe's length. Returns the header and
/// the logical length.
fn decode_streaming(
    r: &mut dyn std::io::Read,
    len: u64,
    mut visit: impl FnMut(&RecipeEntry),
) -> Result<(RecipeHeader, u64), StreamError> {
    let what = "recipe";
    let (header, b) = decode_header(r, len)?;
    let header_end = b.len();
    let entry_bytes = len - (header_end + RECIPE_TRAILER_LEN) as u64;

    if !entry_bytes.is_multiple_of(RECIPE_ENTRY_LEN as u64) {
        return Err(
            DecodeError::new(what, format!("{entry_bytes} entry bytes is not a whole number of entries")).into()
        );
    }
    let count = entry_bytes / RECIPE_ENTRY_LEN as u64;
    let mut h = crc32fast::Hasher::new();
    h.update(&b);
    let mut sum = 0u64;
    let mut left = count;
    let mut buf = vec![0u8; (count.min(STREAM_BATCH as u64) as usize).max(1) * RECIPE_ENTRY_LEN];
    while left > 0 {
        let n = left.min(STREAM_BATCH as u64) as usize;
        let chunk = &mut buf[..n * RECIPE_ENTRY_LEN];
        r.read_exact(chunk).map_err(StreamError::Io)?;
        h.update(chunk);
        for e in chunk.chunks_exact(RECIPE_ENTRY_LEN) {
            let raw_len = le_u32(e, 32);
            let stored_len = le_u32(e, 44);
            if raw_len == 0 || raw_len > MAX_CHUNK_LEN || stored_len as u64 > raw_len as u64 + SEAL_OVERHEAD as u64 {
                return Err(DecodeError::new(what, format!("entry lengths {raw_len}/{stored_len} out of range")).into());
            }
            let mut fp = [0u8; 32];
            fp.copy_from_slice(&e[0..32]);
            sum += raw_len as u64;
            visit(&RecipeEntry {
                fp: Fingerprint(fp),
                raw_len,
                loc: ChunkLoc { pack: le_u32(e, 36), offset: le_u32(e, 40), stored_len },
            });
        }
        left -= n as u64;
    }
    let mut t = [0u8; RECIPE_TRAILER_LEN];
    r.read_exact(&mut t).map_err(StreamError::Io)?;
    if t[24..32] != RECIPE_TRAILER_MAGIC || t[20..24] != [0; 4] {
        return Err(DecodeError::new(what, "bad trailer magic (incomplete recipe)").into());
    }
    if le_u64(&t, 0) != count {
        let claimed = le_u64(&t, 0);
        return Err(DecodeError::new(what, format!("{entry_bytes} entry bytes do not hold {claimed} entries")).into());
    }
    h.update(&t[..16]);
    if h.finalize() != le_u32(&t, 16) {
        return Err(DecodeError::new(what, "checksum mismatch").into());
    }
    let logical = le_u64(&t, 8);
    if sum != logical {
        return Err(DecodeError::new(what, format!("entries add up to {sum} bytes, trailer says {logical}")).into());
    }
    Ok((header, logical))
}

/// Reads and checks a recipe's header (fixed part, names, extension; its CRC) from the first
/// bytes of a recipe of `len` bytes. Returns it and its bytes.
fn decode_header(r: &mut dyn std::io::Read, len: u64) -> Result<(RecipeHeader, Vec<u8>), StreamError> {
    let what = "recipe";
    if len < (RECIPE_HEADER_LEN + RECIPE_TRAILER_LEN) as u64 {
        return Err(DecodeError::new(what, format!("{len} bytes is too short")).into());
    }
    let mut b = vec![0u8; RECIPE_HEADER_LEN];
    r.read_exact(&mut b).map_err(StreamError::Io)?;
    if b[0..8] != RECIPE_MAGIC {
        return Err(DecodeError::new(what, "bad magic").into());
    }
    let version = le_u16(&b, 8);
    if version != 1 && version != RECIPE_VERSION {
        return Err(DecodeError::new(what, format!("unsupported version {version}")).into());
    }
    let clen = le_u16(&b, 32) as usize;
    let slen = le_u16(&b, 34) as usize;
    let xlen = le_u16(&b, 10) as usize;
    if clen > MAX_OBJECT_NAME_LEN || slen > MAX_STREAM_NAME_LEN || xlen > MAX_RECIPE_EXTENSION_LEN {
        return Err(
            DecodeError::new(what, format!("name/extension lengths {clen}/{slen}/{xlen} exceed the limits")).into()
        );
    }
    // Version 1 has no extension (the field is reserved and zero); version 2 always has one.
    if (version == 1) != (xlen == 0) {
        return Err(DecodeError::new(what, format!("version {version} with an extension of {xlen} bytes")).into());
    }
    let names_end = RECIPE_HEADER_LEN + clen + slen;
    let header_end = names_end + xlen;
    if len < (header_end + RECIPE_TRAILER_LEN) as u64 {
        return Err(DecodeError::new(what, "truncated in the names").into());
    }
    b.resize(header_end, 0);
    r.read_exact(&mut b[RECIPE_HEADER_LEN..]).map_err(StreamError::Io)?;
    if crc32(&[&b[..36], &b[RECIPE_HEADER_LEN..header_end]]) != le_u32(&b, 36) {
        return Err(DecodeError::new(what, "header checksum mismatch").into());
    }
    let header = RecipeHeader {
        group_id: le_u32(&b, 12),
        stream_id: le_u64(&b, 16),
        created: le_u64(&b, 24),
        container: utf8(what, &b[RECIPE_HEADER_LEN..RECIPE_HEADER_LEN + clen])?,
        stream: utf8(what, &b[RECIPE_HEADER_LEN + clen..names_end])?,
        image: decode_extension(&b[names_end..header_end])?,
    };
    Ok((header, b))
}

/// Reads a recipe file's header only (checked by its own CRC; the entries are not read).
pub fn read_recipe_header(path: &Path) -> Result<RecipeHeader> {
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let len = file.metadata().map_err(|e| Error::io("stat", path, e))?.len();
    let mut r = std::io::BufReader::with_capacity(4096, file);
    match decode_header(&mut r, len) {
        Ok((header, _)) => Ok(header),
        Err(StreamError::Decode(d)) => Err(d.at(path)),
        Err(StreamError::Io(e)) => Err(Error::io("read", path, e)),
    }
}
/// Reads and decodes a recipe file.
pub fn read_recipe(path: &Path) -> Result<Recipe> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    decode_recipe(&bytes).map_err(|e| e.at(path))
}

/// Streams a recipe file's entries to `visit` in order, checking the whole file as
/// [`decode_recipe`] does, in memory independent of its length. Entries are visited before
/// the final checksum is known: on an error, whatever `visit` did must be discarded.
pub fn visit_recipe(path: &Path, visit: impl FnMut(&RecipeEntry)) -> Result<RecipeHeader> {
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let len = file.metadata().map_err(|e| Error::io("stat", path, e))?.len();
    let mut r = std::io::BufReader::with_capacity(64 << 10, file);
    match decode_streaming(&mut r, len, visit) {
        Ok((header, _)) => Ok(header),
        Err(StreamError::Decode(d)) => Err(d.at(path)),
        Err(StreamError::Io(e)) => Err(Error::io("read", path, e)),
    }
}

/// Path of stream `id`'s recipe in a group's recipe directory.
pub fn recipe_path(dir: &Path, stream_id: u64) -> PathBuf {
    dir.join(format!("{stream_id:016x}.rcp"))
}

/// Streams a recipe to a temporary file while its stream is written.
pub struct RecipeWriter {
    tmp: PathBuf,
    dest: PathBuf,
    out: Option<BufWriter<FileWriter<File>>>,
    crc: crc32fast::Hasher,
    count: u64,
    logical: u64,
}

impl RecipeWriter {
    /// Starts the recipe of `header.stream_id` in `dir`.
    pub fn create(dir: &Path, header: &RecipeHeader) -> Result<Self> {
        let dest = recipe_path(dir, header.stream_id);
        let tmp = dir.join(format!(".{:016x}.rcp.tmp", header.stream_id));
        LIVE_TMP.lock().insert(tmp.clone());
        let w = Self::create_at(tmp.clone(), dest, header);
        if w.is_err() {
            LIVE_TMP.lock().remove(&tmp);
        }
        w
    }

    fn create_at(tmp: PathBuf, dest: PathBuf, header: &RecipeHeader) -> Result<Self> {
        let file = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        let mut w = RecipeWriter {
            tmp,
            dest,
            out: Some(BufWriter::with_capacity(1 << 20, FileWriter(file))),
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

    /// Writes the trailer, syncs the file, renames it into place and syncs the directory.
    pub fn finish(mut self) -> Result<PathBuf> {
        let (tmp, dest) = self.seal()?;
        std::fs::rename(&tmp, &dest).map_err(|e| Error::io("rename", &tmp, e))?;
        crate::fsutil::sync_dir(dest.parent().expect("recipe in a directory"))?;
        Ok(dest)
    }

    /// Starts a complete replacement of recipe `header.stream_id` in `dir`, written to
    /// `<id>.rcp.rewrite` (the cleaner and repair move chunks).
    pub(crate) fn create_replacement(dir: &Path, header: &RecipeHeader) -> Result<Self> {
        let dest = recipe_path(dir, header.stream_id);
        Self::create_at(dest.with_extension("rcp.rewrite"), dest, header)
    }

    /// Writes the trailer and syncs the temporary file; returns it and the final path, for
    /// the caller to rename.
    pub(crate) fn seal(&mut self) -> Result<(PathBuf, PathBuf)> {
        let t = trailer(self.count, self.logical, self.crc.clone().finalize());
        let mut out = self.out.take().expect("open until finish");
        out.write_all(&t).map_err(|e| Error::io("write", &self.tmp, e))?;
        let file = out.into_inner().map_err(|e| Error::io("write", &self.tmp, e.into_error()))?.0;
        crate::fileio::sync_all(&file).map_err(|e| Error::io("fsync", &self.tmp, e))?;
        Ok((self.tmp.clone(), self.dest.clone()))
    }
}

impl Drop for RecipeWriter {
    /// Removes the temporary file unless it was sealed; the writer gives up its ownership of
    /// it either way (after [`RecipeWriter::finish`]'s rename, which this follows).
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        LIVE_TMP.lock().remove(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_temporary_recipes_no_live_writer_owns_are_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let mut header = sample().header;
        header.stream_id = 0xabc;
        let tmp = dir.path().join(".0000000000000abc.rcp.tmp");
        let w = RecipeWriter::create(dir.path(), &header).unwrap();
        assert!(tmp.exists() && !is_leftover(&tmp), "a live writer's file");
        // A writer that is gone without cleaning up (killed): its file is a leftover.
        std::mem::forget(w);
        LIVE_TMP.lock().remove(&tmp);
        assert!(is_leftover(&tmp));
        // A finished writer leaves a recipe, which is never one.
        header.stream_id = 0xabd;
        let done = RecipeWriter::create(dir.path(), &header).unwrap().finish().unwrap();
        assert!(!is_leftover(&done) && !is_leftover(&dir.path().join("0000000000000abc.rcp.deleted")));
    }

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
                image: None,
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
