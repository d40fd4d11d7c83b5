//! Space statistics, after QoreStor's `stats --system`, `--storage_group` and `--container`.
//!
//! Definitions (the same for every scope):
//! - `logical_bytes`: bytes of the live streams in the scope;
//! - `unique_chunks` / `unique_bytes`: distinct chunks those streams reference, and their raw
//!   bytes (dedup is per storage group, so a chunk stored in two groups counts twice);
//! - `live_stored_bytes`: pack bytes (record headers included) of those chunks;
//! - `stored_bytes`: bytes of pack files on disk, dead chunks not yet reclaimed included; for a
//!   container, whose chunks may be shared with others, it equals `live_stored_bytes`;
//! - `reclaimable_bytes`: what a full compaction gives back: `stored_bytes` less
//!   `live_stored_bytes` and the bookkeeping of the packs holding them (pack headers and
//!   trailers, one footer entry per live chunk); 0 for a container;
//! - `dedup_ratio` = logical / unique bytes; `compression_ratio` = unique bytes / live stored
//!   bytes; `reduction_ratio` = logical / live stored bytes (both together);
//!   `savings_percent` = 100 × (1 − live stored / logical);
//! - system scope only: `free_bytes` (available space on the data directory's filesystem) and
//!   `reserve_bytes` (the space reserve, see [`crate::space`]).
//!
//! Chunks whose pack file is gone count in no stored figure, and `live_stored_bytes` never
//! exceeds `stored_bytes`. A live stream whose recipe cannot be read is left out and named
//! (`unreadable_streams`, `skipped_streams`) rather than failing the report.
//!
//! They are computed by a mark pass over the scope's recipes (memory: one fingerprint per
//! distinct chunk), so they are always exact.

use std::collections::HashSet;

use serde::Serialize;

use crate::fingerprint::Fingerprint;
use crate::format::{FOOTER_ENTRY_LEN, PACK_HEADER_LEN, RECORD_HEADER_LEN, TRAILER_LEN};

/// Which part of the system to report on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsScope {
    /// Every storage group.
    System,
    /// One storage group, by name.
    StorageGroup(String),
    /// One container, by name.
    Container(String),
}

/// Space statistics of a scope (see the module documentation for definitions).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// "system", "storage_group" or "container".
    pub scope: String,
    /// The group or container name (empty for the system).
    pub name: String,
    /// Bytes of live streams.
    pub logical_bytes: u64,
    /// Bytes of pack files (container scope: its live stored bytes).
    pub stored_bytes: u64,
    /// Pack bytes of chunks that live streams reference.
    pub live_stored_bytes: u64,
    /// Stored bytes a full compaction gives back (dead chunks and their footer entries).
    pub reclaimable_bytes: u64,
    /// Distinct chunks referenced.
    pub unique_chunks: u64,
    /// Raw bytes of the distinct chunks.
    pub unique_bytes: u64,
    /// Logical bytes / unique bytes.
    pub dedup_ratio: f64,
    /// Unique bytes / live stored bytes.
    pub compression_ratio: f64,
    /// Logical bytes / live stored bytes.
    pub reduction_ratio: f64,
    /// 100 × (1 − live stored / logical).
    pub savings_percent: f64,
    /// Live streams.
    pub streams: u64,
    /// Containers in scope.
    pub containers: u64,
    /// Storage groups in scope.
    pub storage_groups: u64,
    /// Pack files in scope (0 for a container).
    pub packs: u64,
    /// System scope: bytes available on the data directory's filesystem (statvfs
    /// `f_bavail × f_frsize`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
    /// System scope: the space reserve in force (see [`crate::space`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserve_bytes: Option<u64>,
    /// Live streams whose recipe could not be read (left out of every figure above).
    pub unreadable_streams: u64,
    /// Those streams, as `CONTAINER/STREAM: why`.
    pub skipped_streams: Vec<String>,
}

/// Accumulates a mark pass over one dedup domain (storage group).
pub(crate) struct Marker {
    seen: HashSet<Fingerprint>,
    /// The group's pack files: a chunk whose pack is gone stores nothing.
    packs: HashSet<u32>,
}

impl Marker {
    /// A mark pass over a group whose pack files are `packs`.
    pub(crate) fn new(packs: HashSet<u32>) -> Self {
        Marker { seen: HashSet::new(), packs }
    }

    pub(crate) fn mark(&mut self, stats: &mut Stats, recipe: &crate::recipe::Recipe) {
        stats.streams += 1;
        stats.logical_bytes += recipe.logical_len;
        for e in &recipe.entries {
            if self.seen.insert(e.fp) {
                stats.unique_chunks += 1;
                stats.unique_bytes += e.raw_len as u64;
                if self.packs.contains(&e.loc.pack) {
                    stats.live_stored_bytes += e.loc.stored_len as u64 + RECORD_HEADER_LEN as u64;
                }
            }
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        if a == 0 {
            1.0
        } else {
            0.0
        }
    } else {
        ((a as f64 / b as f64) * 100.0).round() / 100.0
    }
}

impl Stats {
    /// Fills the derived ratios and the reclaimable bytes from the counts.
    pub(crate) fn derive(&mut self) {
        // Live chunks are counted only in packs that exist, but a truncated pack can still
        // name more than it holds: what is stored bounds what is live.
        self.live_stored_bytes = self.live_stored_bytes.min(self.stored_bytes);
        let bookkeeping =
            self.packs * (PACK_HEADER_LEN + TRAILER_LEN) as u64 + self.unique_chunks * FOOTER_ENTRY_LEN as u64;
        self.reclaimable_bytes = self.stored_bytes.saturating_sub(self.live_stored_bytes + bookkeeping);
        self.dedup_ratio = ratio(self.logical_bytes, self.unique_bytes);
        self.compression_ratio = ratio(self.unique_bytes, self.live_stored_bytes);
        self.reduction_ratio = ratio(self.logical_bytes, self.live_stored_bytes);
        self.savings_percent = if self.logical_bytes == 0 {
            0.0
        } else {
            let s = 100.0 * (1.0 - self.live_stored_bytes as f64 / self.logical_bytes as f64);
            (s.max(0.0) * 100.0).round() / 100.0
        };
    }
}
