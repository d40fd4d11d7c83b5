//! The cartridge map: what is on a tape, without its data.
//!
//! A tape is a sequence of logical objects, blocks (each with its length) and filemarks,
//! followed by end of data. The map stores it run-length encoded ([`Run`]: `count` blocks of
//! `size` bytes, or `count` filemarks when `size` is 0) and the engine streams ("segments")
//! whose concatenation is the tape's data, in order (filemarks hold no data). A new segment
//! starts at every durable point, so the data between two filemarks is one or more streams.
//! [`TapeMap`] adds cumulative indexes so that a position (logical object number) maps to a
//! byte offset, a filemark count or a segment in O(log runs), without reading the tape.
//!
//! [`CartMap`] is the persisted form (a container metadata record per cartridge, written at
//! durable points); [`CartMap::validate`] checks a decoded record before it is trusted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `count` blocks of `size` bytes, or `count` filemarks when `size` is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Block length in bytes; 0 for filemarks.
    pub size: u32,
    /// Number of objects.
    pub count: u64,
}

/// An engine stream holding a stretch of the tape's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Segment id (names the stream `BARCODE/ID`).
    pub id: u64,
    /// Bytes.
    pub len: u64,
}

/// The persisted cartridge map.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CartMap {
    /// The logical objects, run-length encoded.
    pub runs: Vec<Run>,
    /// The data streams, in tape order.
    pub segments: Vec<Segment>,
    /// The next unused segment id.
    pub next_segment: u64,
    /// Host-written medium auxiliary memory attributes (WRITE ATTRIBUTE): identifier to value,
    /// hexadecimal (see [`crate::mam`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<u16, String>,
}

/// Limits on decoded maps (far above any real tape; they bound arithmetic, not memory).
const MAX_OBJECTS: u64 = 1 << 48;
const MAX_BYTES: u64 = 1 << 56;

impl CartMap {
    /// Checks a decoded map: non-empty runs, block lengths within the block limit, segment ids
    /// unique and below `next_segment`, and segment lengths adding up to the blocks' bytes.
    pub fn validate(&self) -> Result<(), String> {
        let mut objects = 0u64;
        let mut bytes = 0u64;
        for (i, r) in self.runs.iter().enumerate() {
            if r.count == 0 {
                return Err(format!("run {i} is empty"));
            }
            if r.size > crate::MAX_BLOCK_LEN {
                return Err(format!("run {i} has blocks of {} bytes (limit {})", r.size, crate::MAX_BLOCK_LEN));
            }
            objects = objects.checked_add(r.count).filter(|&o| o <= MAX_OBJECTS).ok_or("too many objects")?;
            bytes = (r.size as u64)
                .checked_mul(r.count)
                .and_then(|b| b.checked_add(bytes))
                .filter(|&b| b <= MAX_BYTES)
                .ok_or("too many bytes")?;
        }
        let mut seg_bytes = 0u64;
        let mut ids: Vec<u64> = Vec::with_capacity(self.segments.len());
        for s in &self.segments {
            if s.id >= self.next_segment {
                return Err(format!("segment id {} is not below next_segment {}", s.id, self.next_segment));
            }
            if s.len == 0 {
                return Err(format!("segment {} is empty", s.id));
            }
            seg_bytes = seg_bytes.checked_add(s.len).ok_or("segment lengths overflow")?;
            ids.push(s.id);
        }
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err("segment ids repeat".into());
        }
        if seg_bytes != bytes {
            return Err(format!("segments hold {seg_bytes} bytes, blocks {bytes}"));
        }
        for (&id, hex) in &self.attributes {
            let value = crate::mam::from_hex(hex).ok_or_else(|| format!("attribute {id:#06x} is not hexadecimal"))?;
            crate::mam::check_host_attribute(id, &value)
                .ok_or_else(|| format!("attribute {id:#06x} is not writable or too long"))?;
        }
        Ok(())
    }
}

/// What is at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// A block of `len` bytes starting at byte `offset` of the tape's data.
    Block {
        /// Length.
        len: u32,
        /// Offset in the tape's data.
        offset: u64,
    },
    /// A filemark.
    Filemark,
}

/// A cartridge map with cumulative indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapeMap {
    runs: Vec<Run>,
    /// Per run: objects, bytes and filemarks up to its end.
    obj_end: Vec<u64>,
    byte_end: Vec<u64>,
    fm_end: Vec<u64>,
    /// Durable segments and their cumulative ends.
    segments: Vec<Segment>,
    seg_end: Vec<u64>,
    next_segment: u64,
    /// Host-written attributes, as persisted.
    pub attributes: BTreeMap<u16, String>,
}

impl TapeMap {
    /// Builds the indexes of a (validated) map.
    pub fn from_map(m: &CartMap) -> TapeMap {
        let mut t = TapeMap { next_segment: m.next_segment, attributes: m.attributes.clone(), ..TapeMap::default() };
        for r in &m.runs {
            t.push_run(*r);
        }
        for s in &m.segments {
            t.push_segment(*s);
        }
        t
    }

    /// The persisted form.
    pub fn to_map(&self) -> CartMap {
        CartMap {
            runs: self.runs.clone(),
            segments: self.segments.clone(),
            next_segment: self.next_segment,
            attributes: self.attributes.clone(),
        }
    }

    fn push_run(&mut self, r: Run) {
        let (o, b, f) = (self.objects(), self.data_bytes(), self.filemarks());
        self.runs.push(r);
        self.obj_end.push(o + r.count);
        self.byte_end.push(b + r.size as u64 * r.count);
        self.fm_end.push(f + if r.size == 0 { r.count } else { 0 });
    }

    fn push_segment(&mut self, s: Segment) {
        let end = self.seg_end.last().copied().unwrap_or(0) + s.len;
        self.segments.push(s);
        self.seg_end.push(end);
    }

    /// Number of logical objects (the position of end of data).
    pub fn objects(&self) -> u64 {
        self.obj_end.last().copied().unwrap_or(0)
    }

    /// Bytes of all blocks.
    pub fn data_bytes(&self) -> u64 {
        self.byte_end.last().copied().unwrap_or(0)
    }

    /// Number of filemarks.
    pub fn filemarks(&self) -> u64 {
        self.fm_end.last().copied().unwrap_or(0)
    }

    /// Bytes held by durable segments.
    pub fn segment_bytes(&self) -> u64 {
        self.seg_end.last().copied().unwrap_or(0)
    }

    /// The durable segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// A fresh segment id.
    pub fn new_segment_id(&mut self) -> u64 {
        self.next_segment += 1;
        self.next_segment - 1
    }

    /// Appends a durable segment.
    pub fn add_segment(&mut self, s: Segment) {
        self.push_segment(s);
    }

    /// Appends `count` blocks of `size` bytes (`size` > 0) or, with `size` 0, filemarks.
    pub fn append(&mut self, size: u32, count: u64) {
        if count == 0 {
            return;
        }
        match self.runs.last_mut() {
            Some(last) if last.size == size => {
                last.count += count;
                *self.obj_end.last_mut().expect("one per run") += count;
                *self.byte_end.last_mut().expect("one per run") += size as u64 * count;
                if size == 0 {
                    *self.fm_end.last_mut().expect("one per run") += count;
                }
            }
            _ => self.push_run(Run { size, count }),
        }
    }

    /// Index of the run holding object `p` (`p < objects()`).
    fn run_of(&self, p: u64) -> usize {
        self.obj_end.partition_point(|&e| e <= p)
    }

    fn run_start(&self, i: usize) -> (u64, u64, u64) {
        if i == 0 {
            (0, 0, 0)
        } else {
            (self.obj_end[i - 1], self.byte_end[i - 1], self.fm_end[i - 1])
        }
    }

    /// The object at position `p`, or `None` at end of data.
    pub fn object_at(&self, p: u64) -> Option<Object> {
        if p >= self.objects() {
            return None;
        }
        let i = self.run_of(p);
        let r = self.runs[i];
        if r.size == 0 {
            return Some(Object::Filemark);
        }
        let (o, b, _) = self.run_start(i);
        Some(Object::Block { len: r.size, offset: b + (p - o) * r.size as u64 })
    }

    /// Filemarks before position `p` (the logical file number at `p`).
    pub fn filemarks_before(&self, p: u64) -> u64 {
        if p >= self.objects() {
            return self.filemarks();
        }
        let i = self.run_of(p);
        let (o, _, f) = self.run_start(i);
        f + if self.runs[i].size == 0 { p - o } else { 0 }
    }

    /// Data bytes before position `p`.
    pub fn bytes_before(&self, p: u64) -> u64 {
        if p >= self.objects() {
            return self.data_bytes();
        }
        let i = self.run_of(p);
        let (o, b, _) = self.run_start(i);
        b + (p - o) * self.runs[i].size as u64
    }

    /// Position of filemark number `k` (0-based; `k < filemarks()`).
    pub fn filemark_position(&self, k: u64) -> u64 {
        let i = self.fm_end.partition_point(|&e| e <= k);
        let (o, _, f) = self.run_start(i);
        o + (k - f)
    }

    /// Discards everything from position `p` on. Returns the number of data bytes kept.
    pub fn truncate_objects(&mut self, p: u64) -> u64 {
        if p >= self.objects() {
            return self.data_bytes();
        }
        let i = self.run_of(p);
        let (o, _, _) = self.run_start(i);
        let keep = p - o;
        let n = if keep == 0 { i } else { i + 1 };
        self.runs.truncate(n);
        self.obj_end.truncate(n);
        self.byte_end.truncate(n);
        self.fm_end.truncate(n);
        if keep > 0 {
            self.runs[i].count = keep;
            let size = self.runs[i].size;
            let (o, b, f) = self.run_start(i);
            self.obj_end[i] = o + keep;
            self.byte_end[i] = b + keep * size as u64;
            self.fm_end[i] = f + if size == 0 { keep } else { 0 };
        }
        self.data_bytes()
    }

    /// Cuts the segments at data byte `at`: segments wholly before it stay; returns the
    /// segment that `at` falls inside (with the bytes of it to keep) and the removed segments
    /// (that one included).
    pub fn truncate_segments(&mut self, at: u64) -> (Option<(Segment, u64)>, Vec<Segment>) {
        let keep = self.seg_end.partition_point(|&e| e <= at);
        let start = if keep == 0 { 0 } else { self.seg_end[keep - 1] };
        let removed: Vec<Segment> = self.segments.drain(keep..).collect();
        self.seg_end.truncate(keep);
        let partial = removed.first().filter(|_| at > start).map(|s| (*s, at - start));
        (partial, removed)
    }

    /// The segment holding data byte `off` and the offset inside it.
    pub fn segment_at(&self, off: u64) -> Option<(usize, u64)> {
        let i = self.seg_end.partition_point(|&e| e <= off);
        (i < self.segments.len()).then(|| (i, off - if i == 0 { 0 } else { self.seg_end[i - 1] }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn positions_and_truncation() {
        let mut t = TapeMap::default();
        t.append(10, 3); // objects 0..3, bytes 0..30
        t.append(0, 1); // filemark at 3
        t.append(10, 1); // object 4, bytes 30..40
        t.append(20, 2); // objects 5, 6 bytes 40..80
        t.append(0, 2); // filemarks at 7, 8
        assert_eq!(t.objects(), 9);
        assert_eq!(t.data_bytes(), 80);
        assert_eq!(t.filemarks(), 3);
        assert_eq!(t.object_at(3), Some(Object::Filemark));
        assert_eq!(t.object_at(4), Some(Object::Block { len: 10, offset: 30 }));
        assert_eq!(t.object_at(6), Some(Object::Block { len: 20, offset: 60 }));
        assert_eq!(t.object_at(9), None);
        assert_eq!(t.filemarks_before(8), 2);
        assert_eq!(t.filemarks_before(4), 1);
        assert_eq!(t.filemark_position(0), 3);
        assert_eq!(t.filemark_position(2), 8);
        assert_eq!(t.bytes_before(6), 60);
        assert_eq!(t.truncate_objects(6), 60);
        assert_eq!(t.objects(), 6);
        assert_eq!(t.filemarks(), 1);
        t.append(20, 1);
        assert_eq!(t.to_map().runs.last(), Some(&Run { size: 20, count: 2 }));
    }

    #[test]
    fn segments_cut() {
        let mut t = TapeMap::default();
        for (id, len) in [(0, 100), (1, 50), (2, 10)] {
            t.add_segment(Segment { id, len });
        }
        assert_eq!(t.segment_at(120), Some((1, 20)));
        assert_eq!(t.segment_at(160), None);
        let (partial, removed) = t.truncate_segments(120);
        assert_eq!(partial, Some((Segment { id: 1, len: 50 }, 20)));
        assert_eq!(removed.len(), 2);
        assert_eq!(t.segment_bytes(), 100);
        let (partial, removed) = t.truncate_segments(100);
        assert_eq!((partial, removed.len()), (None, 0));
    }

    #[test]
    fn validate_refuses_inconsistent_maps() {
        let good = CartMap {
            runs: vec![Run { size: 10, count: 2 }, Run { size: 0, count: 1 }],
            segments: vec![Segment { id: 0, len: 20 }],
            next_segment: 1,
            attributes: BTreeMap::new(),
        };
        assert!(good.validate().is_ok());
        let mut bad = good.clone();
        bad.segments[0].len = 19;
        assert!(bad.validate().is_err());
        let mut bad = good.clone();
        bad.next_segment = 0;
        assert!(bad.validate().is_err());
        let mut bad = good.clone();
        bad.runs[0].count = 0;
        assert!(bad.validate().is_err());
        let mut bad = good;
        bad.runs.push(Run { size: 1, count: u64::MAX });
        assert!(bad.validate().is_err());
    }

    proptest! {
        #[test]
        fn indexes_match_a_flat_list(ops in proptest::collection::vec((0u32..4, 1u64..4), 0..40), cut in 0u64..100) {
            let mut t = TapeMap::default();
            let mut flat: Vec<u32> = Vec::new();
            for (size, count) in ops {
                t.append(size, count);
                flat.extend(std::iter::repeat_n(size, count as usize));
            }
            let check = |t: &TapeMap, flat: &[u32]| {
                let mut off = 0u64;
                let mut fms = 0u64;
                for (p, &s) in flat.iter().enumerate() {
                    let p = p as u64;
                    prop_assert_eq!(t.bytes_before(p), off);
                    prop_assert_eq!(t.filemarks_before(p), fms);
                    if s == 0 {
                        prop_assert_eq!(t.object_at(p), Some(Object::Filemark));
                        prop_assert_eq!(t.filemark_position(fms), p);
                        fms += 1;
                    } else {
                        prop_assert_eq!(t.object_at(p), Some(Object::Block { len: s, offset: off }));
                        off += s as u64;
                    }
                }
                prop_assert_eq!(t.objects(), flat.len() as u64);
                prop_assert_eq!(t.data_bytes(), off);
                prop_assert_eq!(TapeMap::from_map(&t.to_map()), t.clone());
                Ok(())
            };
            check(&t, &flat)?;
            let cut = cut.min(flat.len() as u64);
            t.truncate_objects(cut);
            flat.truncate(cut as usize);
            check(&t, &flat)?;
        }
    }
}
