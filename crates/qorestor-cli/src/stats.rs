//! `qorestor stats`.

use anyhow::Result;
use clap::Args;
use qorestor_core::{Stats, StatsScope};

use crate::context::Ctx;
use crate::output;

/// Long help of `stats`.
pub const LONG_ABOUT: &str = "\
Show space statistics: system-wide, or of one storage group (--storage-group) or one container
(--container).

logical: bytes of live streams; stored: bytes of pack files on disk, dead chunks not yet
reclaimed included (for a container: its live stored bytes); live stored: pack bytes of the
chunks live streams reference; dedup ratio = logical / unique chunk bytes; compression ratio =
unique chunk bytes / live stored; savings = 100 x (1 - live stored / logical); reclaimable:
what a full cleaner run (compaction) gives back, stored - live stored less the packs' own
headers and indexes.

JSON: one flat object with scope, name, logical_bytes, stored_bytes, live_stored_bytes,
reclaimable_bytes, unique_chunks, unique_bytes, dedup_ratio, compression_ratio,
reduction_ratio, savings_percent, streams, containers, unreadable_streams and
skipped_streams, (not for a container) storage_groups and packs, and (system-wide only)
free_bytes (available space on the data directory's filesystem) and reserve_bytes (the space
reserve new data leaves free; see system set-reserve).

A live stream whose recipe cannot be read is left out of the figures and named on stderr (JSON:
unreadable_streams, the count, and skipped_streams, one \"CONTAINER/STREAM: why\" each);
stats still exits 0. qorestor verify says more, and verify --repair heals what it can.

Examples:
  qorestor stats
  qorestor --json stats --container nightly";

/// Arguments of `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Report on one container.
    #[arg(long, value_name = "C", conflicts_with = "storage_group")]
    pub container: Option<String>,
    /// Report on one storage group.
    #[arg(long, value_name = "SG")]
    pub storage_group: Option<String>,
}

/// Runs `stats`.
pub fn run(ctx: &Ctx, args: StatsArgs) -> Result<()> {
    let scope = match (args.container, args.storage_group) {
        (Some(c), _) => StatsScope::Container(c),
        (None, Some(g)) => StatsScope::StorageGroup(g),
        (None, None) => StatsScope::System,
    };
    let engine = ctx.open("qorestor stats")?;
    let stats = engine.stats(&scope)?;
    ctx.emit(&report(&stats)?, || render(&stats))?;
    for s in &stats.skipped_streams {
        ctx.io
            .eprintln(&format!("warning: left out of the statistics, its recipe cannot be read: {}", output::name(s)));
    }
    Ok(())
}

/// The JSON of `stats`: the engine's statistics; a container's without `storage_groups` and
/// `packs` (a container has neither of its own).
fn report(s: &Stats) -> Result<serde_json::Value> {
    let mut report = serde_json::to_value(s)?;
    if let Some(fields) = report.as_object_mut().filter(|_| s.scope == "container") {
        fields.remove("storage_groups");
        fields.remove("packs");
    }
    Ok(report)
}

/// The human rendering of statistics.
fn render(s: &Stats) -> String {
    let scope = match s.scope.as_str() {
        "storage_group" => format!("storage group {}", s.name),
        "container" => format!("container {}", s.name),
        other => other.to_string(),
    };
    let mut items = vec![
        ("Scope", scope),
        ("Logical", output::bytes(s.logical_bytes)),
        ("Stored", output::bytes(s.stored_bytes)),
        ("Live stored", output::bytes(s.live_stored_bytes)),
        ("Reclaimable", reclaimable_text(s.reclaimable_bytes)),
        ("Unique chunks", format!("{} ({})", s.unique_chunks, output::bytes(s.unique_bytes))),
        ("Dedup ratio", output::ratio(s.dedup_ratio)),
        ("Compression ratio", output::ratio(s.compression_ratio)),
        ("Reduction ratio", output::ratio(s.reduction_ratio)),
        ("Savings", format!("{:.1}%", s.savings_percent)),
        ("Streams", s.streams.to_string()),
    ];
    if s.scope != "container" {
        items.push(("Containers", s.containers.to_string()));
        items.push(("Storage groups", s.storage_groups.to_string()));
        items.push(("Packs", s.packs.to_string()));
    }
    if let (Some(free), Some(reserve)) = (s.free_bytes, s.reserve_bytes) {
        items.push(("Free", output::bytes(free)));
        items.push(("Space reserve", output::setting_bytes(reserve)));
    }
    output::fields(&items)
}

/// The `Reclaimable` line: the size, and what to do when there is something to reclaim.
fn reclaimable_text(bytes: u64) -> String {
    if bytes == 0 {
        output::bytes(0)
    } else {
        format!("{} (run the cleaner)", output::bytes(bytes))
    }
}
