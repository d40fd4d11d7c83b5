//! The fingerprint index: fingerprint → pack id, memory-mapped, with an in-RAM filter.
//!
//! The table is a file of 32-byte slots (24 fingerprint bytes, pack id, CRC-32 of the two)
//! addressed by open addressing with linear probing on the fingerprint's first 8 bytes
//! (fingerprints are uniform, so no tree is needed). It is memory-mapped: only the pages that
//! lookups touch are resident, so RAM does not have to hold every fingerprint. A Bloom filter
//! (8 bits per slot, 4 probes) in RAM answers "surely new" for most new chunks without touching
//! the table. The table grows by doubling at 3/4 load.
//!
//! The index is a hint, never the truth: a hit names a pack whose footer is then consulted, so
//! a stale or torn slot costs a footer read, never wrong data. It can always be rebuilt from pack
//! footers. Its header keeps a watermark: every pack with a smaller id was fully indexed and
//! flushed at the last checkpoint; on open, packs from the watermark on are indexed again
//! (inserts are idempotent).
//!
//! Memory per unique chunk: 1.33 bytes of filter in RAM, and 42.7 bytes of table (32-byte slot
//! at 3/4 load) on disk, resident only as far as lookups touch it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::format::*;
use crate::mmap::MappedFile;

const MIN_SLOTS: u64 = 1 << 14;
/// A sanity limit on the table a header may claim (2^32 slots: a 128 GiB file, over 3 billion
/// unique chunks), so a damaged header over a sparse file cannot make the engine allocate and
/// scan without bound.
const MAX_SLOTS: u64 = 1 << 32;
const BLOOM_PROBES: u64 = 4;

/// The in-RAM Bloom filter in front of the table.
struct Bloom {
    bits: Vec<u64>,
    mask: u64,
}

impl Bloom {
    fn new(slots: u64) -> Self {
        let nbits = (slots * 8).next_power_of_two();
        Bloom { bits: vec![0; (nbits / 64) as usize], mask: nbits - 1 }
    }

    fn positions(prefix: &[u8]) -> impl Iterator<Item = u64> {
        let h1 = le_u64(prefix, 8);
        let h2 = le_u64(prefix, 16) | 1;
        (0..BLOOM_PROBES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)))
    }

    fn insert(&mut self, prefix: &[u8]) {
        for p in Self::positions(prefix) {
            let bit = p & self.mask;
            self.bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    fn may_contain(&self, prefix: &[u8]) -> bool {
        Self::positions(prefix).all(|p| {
            let bit = p & self.mask;
            self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        })
    }
}

/// A decoded index header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexHeader {
    /// Number of slots (a power of two).
    pub slots: u64,
    /// Valid entries at the last checkpoint.
    pub count: u64,
    /// Every pack with a smaller id was fully indexed at the last checkpoint.
    pub watermark: u32,
}

/// Encodes an index header into its page.
pub fn encode_index_header(h: &IndexHeader) -> [u8; 40] {
    let mut b = [0u8; 40];
    b[0..8].copy_from_slice(&INDEX_MAGIC);
    b[8..10].copy_from_slice(&INDEX_VERSION.to_le_bytes());
    b[12..20].copy_from_slice(&h.slots.to_le_bytes());
    b[20..28].copy_from_slice(&h.count.to_le_bytes());
    b[28..32].copy_from_slice(&h.watermark.to_le_bytes());
    let crc = crc32(&[&b[..32]]);
    b[32..36].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes an index header, checking magic, version, checksum and that the slot count is a
/// power of two that fits `file_len`.
pub fn decode_index_header(b: &[u8], file_len: u64) -> Result<IndexHeader, crate::DecodeError> {
    let what = "index header";
    if b.len() < 40 {
        return Err(crate::DecodeError::new(what, "too short"));
    }
    if b[0..8] != INDEX_MAGIC {
        return Err(crate::DecodeError::new(what, "bad magic"));
    }
    if le_u16(b, 8) != INDEX_VERSION {
        return Err(crate::DecodeError::new(what, format!("unsupported version {}", le_u16(b, 8))));
    }
    if crc32(&[&b[..32]]) != le_u32(b, 32) {
        return Err(crate::DecodeError::new(what, "checksum mismatch"));
    }
    if b[10..12] != [0; 2] || b[36..40] != [0; 4] {
        return Err(crate::DecodeError::new(what, "reserved bytes are not zero"));
    }
    let h = IndexHeader { slots: le_u64(b, 12), count: le_u64(b, 20), watermark: le_u32(b, 28) };
    let expected = h.slots.checked_mul(INDEX_SLOT_LEN as u64).and_then(|n| n.checked_add(INDEX_HEADER_LEN as u64));
    if !h.slots.is_power_of_two() || !(MIN_SLOTS..=MAX_SLOTS).contains(&h.slots) || expected != Some(file_len) {
        return Err(crate::DecodeError::new(what, format!("{} slots do not fit a {file_len}-byte file", h.slots)));
    }
    Ok(h)
}

fn slot_crc(slot: &[u8]) -> u32 {
    crc32(&[&slot[..INDEX_FP_PREFIX + 4]])
}

/// The fingerprint index of one storage group.
pub struct FingerprintIndex {
    path: PathBuf,
    map: MappedFile,
    slots: u64,
    count: u64,
    watermark: u32,
    bloom: Bloom,
}

fn create_table(path: &Path, slots: u64) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| Error::io("create", path, e))?;
    // Allocated for real, not sparse: the table is written through a memory map, where a
    // block the filesystem cannot provide is SIGBUS instead of an error.
    if let Err(e) = crate::fsutil::allocate(&file, path, INDEX_HEADER_LEN as u64 + slots * INDEX_SLOT_LEN as u64) {
        // A full disk: give back what was allocated (a table is created empty, never in place).
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(file)
}

impl FingerprintIndex {
    /// Opens the index at `path`, creating an empty one if it is missing or unreadable (it is
    /// rebuilt from packs: the returned watermark is then 0).
    pub fn open(path: &Path) -> Result<Self> {
        let existing = OpenOptions::new().read(true).write(true).open(path);
        if let Ok(file) = existing {
            let len = file.metadata().map_err(|e| Error::io("stat", path, e))?.len();
            // An index of an earlier version may be sparse: allocate it before mapping it.
            crate::fsutil::allocate(&file, path, len)?;
            let map = MappedFile::map(&file).map_err(|e| Error::io("mmap", path, e))?;
            if let Ok(h) = decode_index_header(map.bytes(), len) {
                let mut idx = FingerprintIndex {
                    path: path.to_path_buf(),
                    map,
                    slots: h.slots,
                    count: 0,
                    watermark: h.watermark,
                    bloom: Bloom::new(h.slots),
                };
                idx.rebuild_filter();
                return Ok(idx);
            }
        }
        Self::create(path, MIN_SLOTS)
    }

    fn create(path: &Path, slots: u64) -> Result<Self> {
        let file = create_table(path, slots)?;
        let map = MappedFile::map(&file).map_err(|e| Error::io("mmap", path, e))?;
        let mut idx =
            FingerprintIndex { path: path.to_path_buf(), map, slots, count: 0, watermark: 0, bloom: Bloom::new(slots) };
        idx.write_header();
        Ok(idx)
    }

    fn rebuild_filter(&mut self) {
        let mut count = 0;
        let mut bloom = Bloom::new(self.slots);
        for i in 0..self.slots {
            let s = self.slot(i);
            if s.iter().any(|&b| b != 0) && slot_crc(s) == le_u32(s, INDEX_FP_PREFIX + 4) {
                bloom.insert(&s[..INDEX_FP_PREFIX]);
                count += 1;
            }
        }
        self.bloom = bloom;
        self.count = count;
    }

    fn slot(&self, i: u64) -> &[u8] {
        let at = INDEX_HEADER_LEN + i as usize * INDEX_SLOT_LEN;
        &self.map.bytes()[at..at + INDEX_SLOT_LEN]
    }

    fn write_header(&mut self) {
        let h = encode_index_header(&IndexHeader { slots: self.slots, count: self.count, watermark: self.watermark });
        self.map.bytes_mut()[..h.len()].copy_from_slice(&h);
    }

    /// Entries in the table.
    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether the table is empty.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Slots in the table.
    #[cfg(test)]
    pub fn capacity(&self) -> u64 {
        self.slots
    }

    /// Every pack with a smaller id was indexed at the last checkpoint.
    pub fn watermark(&self) -> u32 {
        self.watermark
    }

    /// Pack ids that may hold `fp` (usually none or one), oldest entry first.
    pub fn lookup(&self, fp: &Fingerprint, out: &mut Vec<u32>) {
        out.clear();
        let prefix = &fp.as_bytes()[..INDEX_FP_PREFIX];
        if !self.bloom.may_contain(prefix) {
            return;
        }
        let mask = self.slots - 1;
        let mut i = fp.prefix_u64() & mask;
        for _ in 0..self.slots {
            let s = self.slot(i);
            let pack = le_u32(s, INDEX_FP_PREFIX);
            if pack == 0 && s.iter().all(|&b| b == 0) {
                return;
            }
            if &s[..INDEX_FP_PREFIX] == prefix && slot_crc(s) == le_u32(s, INDEX_FP_PREFIX + 4) {
                out.push(pack);
            }
            i = (i + 1) & mask;
        }
    }

    /// Bytes the table would allocate while `more` entries are inserted: a table of twice the
    /// size when they take it past its load limit (see [`FingerprintIndex::insert`]), else 0.
    pub fn growth_bytes(&self, more: u64) -> u64 {
        if (self.count + more) * 4 > self.slots * 3 {
            INDEX_HEADER_LEN as u64 + self.slots * 2 * INDEX_SLOT_LEN as u64
        } else {
            0
        }
    }

    /// Records that `pack` holds `fp`; a duplicate (same fingerprint, same pack) is ignored.
    pub fn insert(&mut self, fp: &Fingerprint, pack: u32) -> Result<()> {
        if (self.count + 1) * 4 > self.slots * 3 {
            self.grow()?;
        }
        let prefix = &fp.as_bytes()[..INDEX_FP_PREFIX];
        if !self.insert_slot(prefix, pack) {
            // Only invalid (torn) slots can fill a table past its load limit: growing keeps
            // the valid ones and frees the rest.
            self.grow()?;
            self.insert_slot(prefix, pack);
        }
        Ok(())
    }

    /// Removes, in place, every entry whose pack satisfies `gone` (packs the cleaner deleted),
    /// and every slot whose checksum fails, by backward-shift deletion; the filter is rebuilt.
    /// No second table is built, so memory stays at one table. An interrupted removal leaves
    /// at worst an entry twice (an entry is copied before its old slot is reused): lookups stay
    /// correct.
    pub fn remove_packs(&mut self, gone: impl Fn(u32) -> bool) {
        let mask = self.slots - 1;
        let Some(empty) = (0..self.slots).find(|&i| self.slot(i).iter().all(|&b| b == 0)) else {
            return;
        };
        // Scan once around the table from just after an empty slot, so that no cluster is cut.
        let mut i = (empty + 1) & mask;
        let mut steps = 0;
        while steps < self.slots {
            let s = self.slot(i);
            let used = s.iter().any(|&b| b != 0);
            let valid = used && slot_crc(s) == le_u32(s, INDEX_FP_PREFIX + 4);
            if used && (!valid || gone(le_u32(s, INDEX_FP_PREFIX))) {
                if valid {
                    self.count = self.count.saturating_sub(1);
                }
                self.delete_at(i);
                // Slot i may now hold an entry shifted back from later in the cluster.
                continue;
            }
            i = (i + 1) & mask;
            steps += 1;
        }
        self.rebuild_filter();
    }

    /// Backward-shift deletion of slot `hole` (linear probing).
    fn delete_at(&mut self, mut hole: u64) {
        let mask = self.slots - 1;
        let mut j = (hole + 1) & mask;
        loop {
            let s = self.slot(j);
            if s.iter().all(|&b| b == 0) {
                break;
            }
            let home = le_u64(s, 0) & mask;
            // The entry at j may fill the hole unless its home lies cyclically in (hole, j].
            let stays = if hole <= j { hole < home && home <= j } else { hole < home || home <= j };
            if !stays {
                let mut moved = [0u8; INDEX_SLOT_LEN];
                moved.copy_from_slice(s);
                let at = INDEX_HEADER_LEN + hole as usize * INDEX_SLOT_LEN;
                self.map.bytes_mut()[at..at + INDEX_SLOT_LEN].copy_from_slice(&moved);
                hole = j;
            }
            j = (j + 1) & mask;
        }
        let at = INDEX_HEADER_LEN + hole as usize * INDEX_SLOT_LEN;
        self.map.bytes_mut()[at..at + INDEX_SLOT_LEN].fill(0);
    }

    /// Records that `fp`, indexed in pack `from`, now lives in pack `to`: its slot is rewritten
    /// in place (the table does not grow); if there is no such slot, `(fp, to)` is inserted.
    pub fn repoint(&mut self, fp: &Fingerprint, from: u32, to: u32) -> Result<()> {
        let prefix = &fp.as_bytes()[..INDEX_FP_PREFIX];
        let mask = self.slots - 1;
        let mut i = le_u64(prefix, 0) & mask;
        for _ in 0..self.slots {
            let s = self.slot(i);
            if s.iter().all(|&b| b == 0) {
                break;
            }
            let valid = slot_crc(s) == le_u32(s, INDEX_FP_PREFIX + 4);
            if valid && &s[..INDEX_FP_PREFIX] == prefix && le_u32(s, INDEX_FP_PREFIX) == from {
                let at = INDEX_HEADER_LEN + i as usize * INDEX_SLOT_LEN;
                let slot = &mut self.map.bytes_mut()[at..at + INDEX_SLOT_LEN];
                slot[INDEX_FP_PREFIX..INDEX_FP_PREFIX + 4].copy_from_slice(&to.to_le_bytes());
                let crc = slot_crc(slot);
                slot[INDEX_FP_PREFIX + 4..].copy_from_slice(&crc.to_le_bytes());
                return Ok(());
            }
            i = (i + 1) & mask;
        }
        self.insert(fp, to)
    }

    /// Returns false when no free slot was found.
    fn insert_slot(&mut self, prefix: &[u8], pack: u32) -> bool {
        let mask = self.slots - 1;
        let mut i = le_u64(prefix, 0) & mask;
        let mut found = false;
        for _ in 0..self.slots {
            let s = self.slot(i);
            if s.iter().all(|&b| b == 0) {
                found = true;
                break;
            }
            if &s[..INDEX_FP_PREFIX] == prefix && le_u32(s, INDEX_FP_PREFIX) == pack {
                return true;
            }
            i = (i + 1) & mask;
        }
        if !found {
            return false;
        }
        let at = INDEX_HEADER_LEN + i as usize * INDEX_SLOT_LEN;
        let slot = &mut self.map.bytes_mut()[at..at + INDEX_SLOT_LEN];
        slot[..INDEX_FP_PREFIX].copy_from_slice(prefix);
        slot[INDEX_FP_PREFIX..INDEX_FP_PREFIX + 4].copy_from_slice(&pack.to_le_bytes());
        let crc = slot_crc(slot);
        slot[INDEX_FP_PREFIX + 4..].copy_from_slice(&crc.to_le_bytes());
        self.bloom.insert(prefix);
        self.count += 1;
        true
    }

    fn grow(&mut self) -> Result<()> {
        let tmp = self.path.with_extension("idx.grow");
        let mut bigger = Self::create(&tmp, self.slots * 2)?;
        bigger.watermark = self.watermark;
        for i in 0..self.slots {
            let s = self.slot(i);
            if s.iter().any(|&b| b != 0) && slot_crc(s) == le_u32(s, INDEX_FP_PREFIX + 4) {
                let mut prefix = [0u8; INDEX_FP_PREFIX];
                prefix.copy_from_slice(&s[..INDEX_FP_PREFIX]);
                bigger.insert_slot(&prefix, le_u32(s, INDEX_FP_PREFIX));
            }
        }
        bigger.write_header();
        bigger.map.flush().map_err(|e| Error::io("msync", &tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io("rename", &tmp, e))?;
        bigger.path = self.path.clone();
        *self = bigger;
        Ok(())
    }

    /// Drops every entry whose pack fails `keep` (packs the cleaner deleted), rebuilding the
    /// table and its filter at the same size; the new table replaces the old one atomically.
    pub fn retain_packs(&mut self, keep: impl Fn(u32) -> bool) -> Result<()> {
        let tmp = self.path.with_extension("idx.new");
        let mut fresh = Self::create(&tmp, self.slots)?;
        fresh.watermark = self.watermark;
        for i in 0..self.slots {
            let s = self.slot(i);
            let pack = le_u32(s, INDEX_FP_PREFIX);
            if s.iter().any(|&b| b != 0) && slot_crc(s) == le_u32(s, INDEX_FP_PREFIX + 4) && keep(pack) {
                let mut prefix = [0u8; INDEX_FP_PREFIX];
                prefix.copy_from_slice(&s[..INDEX_FP_PREFIX]);
                fresh.insert_slot(&prefix, pack);
            }
        }
        fresh.write_header();
        fresh.map.flush().map_err(|e| Error::io("msync", &tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io("rename", &tmp, e))?;
        fresh.path = self.path.clone();
        *self = fresh;
        Ok(())
    }

    /// Flushes the table and records that every pack below `watermark` is fully indexed.
    pub fn checkpoint(&mut self, watermark: u32) -> Result<()> {
        self.map.flush().map_err(|e| Error::io("msync", &self.path, e))?;
        self.watermark = watermark;
        self.write_header();
        self.map.flush().map_err(|e| Error::io("msync", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(i: u64) -> Fingerprint {
        Fingerprint::of(&i.to_le_bytes())
    }

    #[test]
    fn insert_lookup_grow_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fp.idx");
        let mut idx = FingerprintIndex::open(&path).unwrap();
        let n = 40_000u64;
        for i in 0..n {
            idx.insert(&fp(i), (i % 7 + 1) as u32).unwrap();
        }
        idx.insert(&fp(3), 4).unwrap(); // duplicate: ignored
        assert_eq!(idx.len(), n);
        assert!(idx.capacity() >= n * 4 / 3);
        let mut out = Vec::new();
        for i in 0..n {
            idx.lookup(&fp(i), &mut out);
            assert_eq!(out, vec![(i % 7 + 1) as u32]);
        }
        idx.lookup(&fp(n + 1), &mut out);
        assert!(out.is_empty());
        idx.checkpoint(9).unwrap();
        drop(idx);
        let idx = FingerprintIndex::open(&path).unwrap();
        assert_eq!(idx.len(), n);
        assert_eq!(idx.watermark(), 9);
        idx.lookup(&fp(77), &mut out);
        assert_eq!(out, vec![1]); // 77 % 7 + 1
    }

    #[test]
    fn retain_packs_drops_only_the_named_packs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fp.idx");
        let mut idx = FingerprintIndex::open(&path).unwrap();
        for i in 0..5_000u64 {
            idx.insert(&fp(i), (i % 3 + 1) as u32).unwrap();
        }
        idx.retain_packs(|p| p != 2).unwrap();
        assert_eq!(idx.len(), 5_000 - (0..5_000u64).filter(|i| i % 3 == 1).count() as u64);
        let mut out = Vec::new();
        for i in 0..5_000u64 {
            idx.lookup(&fp(i), &mut out);
            let expected = if i % 3 == 1 { vec![] } else { vec![(i % 3 + 1) as u32] };
            assert_eq!(out, expected, "fingerprint {i}");
        }
        idx.checkpoint(4).unwrap();
        drop(idx);
        assert_eq!(FingerprintIndex::open(&path).unwrap().len(), 5_000 - 1_667);
    }

    #[test]
    fn remove_packs_in_place_keeps_every_other_entry_reachable() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = FingerprintIndex::open(&dir.path().join("fp.idx")).unwrap();
        // A nearly full table (long clusters, some wrapping around the end).
        let n = idx.capacity() * 3 / 4 - 1;
        for i in 0..n {
            idx.insert(&fp(i), (i % 5 + 1) as u32).unwrap();
        }
        let cap = idx.capacity();
        idx.remove_packs(|p| p == 2 || p == 4);
        assert_eq!(idx.capacity(), cap);
        let mut out = Vec::new();
        let mut kept = 0;
        for i in 0..n {
            idx.lookup(&fp(i), &mut out);
            let pack = (i % 5 + 1) as u32;
            if pack == 2 || pack == 4 {
                assert!(out.is_empty(), "{i} still found");
            } else {
                assert_eq!(out, vec![pack], "{i} lost");
                kept += 1;
            }
        }
        assert_eq!(idx.len(), kept);
    }

    #[test]
    fn repoint_rewrites_the_slot_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = FingerprintIndex::open(&dir.path().join("fp.idx")).unwrap();
        for i in 0..3_000u64 {
            idx.insert(&fp(i), 1).unwrap();
        }
        let (len, cap) = (idx.len(), idx.capacity());
        let mut out = Vec::new();
        for i in 0..3_000u64 {
            idx.repoint(&fp(i), 1, 9).unwrap();
        }
        assert_eq!((idx.len(), idx.capacity()), (len, cap), "no slot added");
        for i in 0..3_000u64 {
            idx.lookup(&fp(i), &mut out);
            assert_eq!(out, vec![9]);
        }
        // Not indexed under the old pack: inserted instead.
        idx.repoint(&fp(5_000), 1, 9).unwrap();
        idx.lookup(&fp(5_000), &mut out);
        assert_eq!(out, vec![9]);
        assert_eq!(idx.len(), len + 1);
    }

    #[test]
    fn corrupt_header_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fp.idx");
        let mut idx = FingerprintIndex::open(&path).unwrap();
        idx.insert(&fp(1), 1).unwrap();
        idx.checkpoint(2).unwrap();
        drop(idx);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[3] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let idx = FingerprintIndex::open(&path).unwrap();
        assert_eq!(idx.watermark(), 0);
        assert!(idx.is_empty());
    }
}
