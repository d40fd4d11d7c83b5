//! `qorestor verify`.

use anyhow::Result;
use clap::{Args, ValueEnum};
use qorestor_core::{VerifyOptions, VerifyReport, VerifyScope};
use serde::Serialize;

use crate::context::{Ctx, DamageFound};
use crate::output;

/// Long help of `verify`.
pub const LONG_ABOUT: &str = "\
Check the store and, with --repair, heal it.

--scope data re-reads every chunk record of every pack (checksum, decompression, BLAKE3 of the
content against its fingerprint) and names every stream that references damaged or missing
data. --scope metadata checks the catalog, recipes and fingerprint index without reading chunk
data. --scope all (the default) does both.

--repair heals a damaged chunk from any other intact copy of it (recipes are rewritten to the
copy), quarantines what it cannot heal (never used for dedup again: the next backup of the same
data stores a fresh copy, and a later repair heals from it), rebuilds the fingerprint index from
the packs, rebuilds damaged pack footers and corrects catalog entries from recipes. It never
deletes a chunk. While qorestor serve runs, verify --repair runs inside it and pauses writes for
its duration: every writer (put, tape drives, OST and replication ingest) waits at its next
batch of chunks until the repair is done (an initiator sees a slow WRITE, not an error).

Every catalog row (storage groups with their encryption key wraps, containers, system settings,
cleaner schedules, replication links, tape libraries and cartridge maps, streams and recycle-bin
versions) also has a redundant, checksummed record under DATA/records/. verify compares the two;
--repair makes them agree (the record wins where it is readable: it holds every acknowledged
change) and rebuilds a catalog that cannot be opened at all from the records and the recipes,
keeping the damaged file as DATA/catalog/catalog.redb.damaged-TIME. It lists what it restored
(JSON: catalog_restored) and what it could not (catalog_not_restored; exit 3 unless empty).

Every tape library's cartridge maps are also checked against the segment streams they name: a
missing segment, or one shorter than its map says, is damage, printed as the segment's address
LIBRARY/BARCODE/NNNNNNNNNN (JSON: damaged_tape_segments; --repair cannot heal it).

Output: each damaged stream as CONTAINER/STREAM on its own line on stdout (with --repair: the
streams still losing data), a summary on stderr. Exit codes: 0 nothing damaged (or everything
healed), 3 damage found and not all of it healed, 1 verify itself failed.

Examples:
  qorestor verify
  qorestor verify --scope data --repair
  qorestor --json verify --scope metadata";

/// What to check.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Scope {
    /// Chunk records in packs.
    Data,
    /// Catalog, recipes and index.
    Metadata,
    /// Both.
    All,
}

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// What to check.
    #[arg(long, value_enum, default_value = "all")]
    pub scope: Scope,
    /// Heal what can be healed, quarantine the rest, rebuild the index.
    #[arg(long)]
    pub repair: bool,
}

/// The JSON result of `verify`: the engine's report and the tape maps' damage.
#[derive(Serialize)]
struct FullReport<'a> {
    #[serde(flatten)]
    report: &'a VerifyReport,
    damaged_tape_segments: &'a [String],
}

/// Runs `verify`.
pub fn run(ctx: &Ctx, args: VerifyArgs) -> Result<()> {
    let scope = match args.scope {
        Scope::Data => VerifyScope::Data,
        Scope::Metadata => VerifyScope::Metadata,
        Scope::All => VerifyScope::All,
    };
    let engine =
        if args.repair { ctx.open_for_repair("qorestor verify --repair")? } else { ctx.open("qorestor verify")? };
    let progress = crate::progress::transfer(ctx, crate::progress::enabled(ctx), Some(0), None);
    let report = engine.verify(&VerifyOptions { scope, repair: args.repair }, progress.as_ref())?;
    // The engine cannot see tape maps: every library's maps are checked against their segments.
    let damaged_tape_segments = qorestor_vtl::damaged_segments(&engine)?;
    let damaged = if report.repair { &report.lost_streams } else { &report.damaged_streams };
    let lines: String =
        damaged.iter().chain(&damaged_tape_segments).map(|s| format!("{}\n", output::name(s))).collect();
    let full = FullReport { report: &report, damaged_tape_segments: &damaged_tape_segments };
    ctx.emit(&full, || lines.clone())?;
    if !ctx.json {
        ctx.io.eprint(&summary(&report));
        for s in &damaged_tape_segments {
            ctx.io.eprintln(&format!("damaged tape segment (missing or shorter than its tape map): {s}"));
        }
    }
    if report.damage_remains() || !damaged_tape_segments.is_empty() {
        return Err(DamageFound(format!(
            "verify found damage: {} damaged streams, {} damaged packs, {} damaged tape segments, {} other problems",
            damaged.len(),
            report.damaged_packs.len(),
            damaged_tape_segments.len(),
            report.problems.len() - if report.repair { report.fixed.len() } else { 0 }
        ))
        .into());
    }
    Ok(())
}

fn summary(r: &VerifyReport) -> String {
    let mut items = vec![
        ("Checked", format!("{} packs, {} chunks, {} recipes", r.packs_checked, r.chunks_checked, r.recipes_checked)),
        ("Read", format!("{} in {:.1} s", output::bytes(r.bytes_checked), r.seconds)),
        (
            "Damaged",
            format!(
                "{} chunks, {} streams, {} packs",
                r.damaged_chunks,
                r.damaged_streams.len(),
                r.damaged_packs.len()
            ),
        ),
    ];
    if r.repair {
        items.push(("Healed", format!("{} chunks, {} streams", r.healed_chunks, r.healed_streams.len())));
        items.push((
            "Quarantined",
            format!("{} chunks; {} streams lose data", r.quarantined_chunks, r.lost_streams.len()),
        ));
    }
    let mut out = output::fields(&items);
    for p in &r.damaged_packs {
        out.push_str(&format!("damaged pack: {p}\n"));
    }
    for p in &r.problems {
        out.push_str(&format!("problem: {p}\n"));
    }
    for f in &r.fixed {
        out.push_str(&format!("fixed: {f}\n"));
    }
    for f in &r.catalog_restored {
        out.push_str(&format!("restored to the catalog: {f}\n"));
    }
    for f in &r.catalog_not_restored {
        out.push_str(&format!("could not restore: {f}\n"));
    }
    out
}
