//! The one module that maps memory (and so the one module allowed `unsafe`).
//!
//! Soundness argument for [`MappedFile::map`]: a mapped file must not be truncated or modified
//! behind the mapping's back. The only mapped file is the fingerprint index, which lives inside
//! a data directory that one process at a time holds under an exclusive lock (see
//! `engine::DirLock`); within that process only the index owns the file and only through this
//! mapping, and it never shrinks the file while mapped (growing replaces the file and the map).
#![allow(unsafe_code)]

use std::fs::File;

/// A read-write shared mapping of a whole file.
pub(crate) struct MappedFile {
    map: memmap2::MmapMut,
}

impl MappedFile {
    /// Maps `file` (opened read-write) in full.
    pub(crate) fn map(file: &File) -> std::io::Result<Self> {
        // SAFETY: see the module documentation: the file is exclusively ours (directory lock),
        // is modified only through this mapping, and is not truncated while mapped.
        let map = unsafe { memmap2::MmapMut::map_mut(file)? };
        Ok(MappedFile { map })
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The mapped bytes, writable.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }

    /// Writes dirty pages back and waits for them (msync).
    pub(crate) fn flush(&self) -> std::io::Result<()> {
        self.map.flush()
    }
}
