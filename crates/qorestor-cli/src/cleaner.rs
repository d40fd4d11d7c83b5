//! `qorestor cleaner run|status|schedule`.

use anyhow::Result;
use clap::{Args, Subcommand};
use qorestor_core::{CleanerOptions, CleanerReport, CleanerSchedule, CleanerStatus};

use crate::context::Ctx;
use crate::output::{self, Align, Table};

/// Long help of `cleaner`.
pub const LONG_ABOUT: &str = "\
Reclaim the space of deleted and replaced streams.

The cleaner marks every chunk that a live stream references, deletes pack files with no live
chunk, and compacts packs whose live bytes are under the threshold (their live chunks are
copied forward, then the pack is deleted). It is safe while backups are written: chunks of
streams still being written are never reclaimed. An interrupted run is simply run again.

Examples:
  qorestor cleaner run --dry-run
  qorestor cleaner run
  qorestor --json cleaner status
  qorestor cleaner schedule add --day saturday --start 22:00 --stop 06:00";

/// `cleaner` subcommands.
#[derive(Debug, Subcommand)]
pub enum CleanerCommand {
    /// Run the cleaner now, in this process.
    Run(RunArgs),
    /// Show whether the cleaner is running or was interrupted, and what the last run did.
    Status,
    /// Manage the weekly windows in which `qorestor serve` runs the cleaner (local time; one
    /// run per opening, asked to stop when the window closes).
    #[command(subcommand)]
    Schedule(ScheduleCommand),
}

/// Arguments of `cleaner run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Only report what a run would reclaim; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Compact packs whose live bytes are under this fraction of the pack (0 to 1; 0 deletes
    /// only packs with no live chunk).
    #[arg(long, value_name = "FRACTION", default_value_t = qorestor_core::cleaner::DEFAULT_COMPACT_BELOW)]
    pub compact_below: f64,
}

/// `cleaner schedule` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Add a window: the daemon starts the cleaner at START on DAY and stops it at STOP.
    Add(ScheduleAddArgs),
    /// List the windows.
    List,
    /// Delete a window by its number (as `schedule list` shows it).
    Delete(ScheduleDeleteArgs),
}

/// Arguments of `cleaner schedule add`.
#[derive(Debug, Args)]
pub struct ScheduleAddArgs {
    /// monday..sunday (or mon..sun), or daily.
    #[arg(long)]
    pub day: String,
    /// Start time, HH:MM (24-hour, local time).
    #[arg(long, value_name = "HH:MM")]
    pub start: String,
    /// Stop time, HH:MM; earlier than the start means the next day.
    #[arg(long, value_name = "HH:MM")]
    pub stop: String,
}

/// Arguments of `cleaner schedule delete`.
#[derive(Debug, Args)]
pub struct ScheduleDeleteArgs {
    /// The window's number.
    pub id: u32,
}

/// Runs a `cleaner` subcommand.
pub fn run(ctx: &Ctx, cmd: CleanerCommand) -> Result<()> {
    let engine = ctx.open("qorestor cleaner")?;
    match cmd {
        CleanerCommand::Run(args) => {
            let opts = CleanerOptions { dry_run: args.dry_run, compact_below: args.compact_below };
            let progress = crate::progress::transfer(ctx, crate::progress::enabled(ctx), Some(0), None);
            // Inside the daemon, a client that ends stops the run at its next pack.
            let report = engine.run_cleaner_until(&opts, ctx.io.cancel_flag(), progress.as_ref())?;
            ctx.emit(&report, || render_report(&report))
        }
        CleanerCommand::Status => {
            let status = engine.cleaner_status()?;
            ctx.emit(&status, || render_status(&status))
        }
        CleanerCommand::Schedule(ScheduleCommand::Add(a)) => {
            let s = engine.add_cleaner_schedule(&a.day, &a.start, &a.stop)?;
            ctx.emit(&s, || format!("added cleaner schedule {}: {} {} to {}\n", s.id, s.day, s.start, s.stop))
        }
        CleanerCommand::Schedule(ScheduleCommand::List) => {
            let all = engine.cleaner_schedules()?;
            ctx.emit(&all, || render_schedules(&all))
        }
        CleanerCommand::Schedule(ScheduleCommand::Delete(a)) => {
            let s = engine.delete_cleaner_schedule(a.id)?;
            ctx.emit(&s, || format!("deleted cleaner schedule {}: {} {} to {}\n", s.id, s.day, s.start, s.stop))
        }
    }
}

fn render_report(r: &CleanerReport) -> String {
    let verb = if r.dry_run { "would reclaim" } else { "reclaimed" };
    let reclaimed = if r.bytes_reclaimed >= 0 { output::bytes(r.bytes_reclaimed as u64) } else { "0 B".to_string() };
    output::fields(&[
        ("Cleaner", if r.dry_run { "dry run (nothing changed)".into() } else { "run complete".into() }),
        ("Space", format!("{verb} {reclaimed}")),
        ("Stored", format!("{} -> {}", output::bytes(r.stored_bytes_before), output::bytes(r.stored_bytes_after))),
        ("Live stored", output::bytes(r.live_stored_bytes)),
        ("Packs", format!("{} before, {} deleted, {} compacted", r.packs_before, r.packs_deleted, r.packs_compacted)),
        ("Copied", format!("{} chunks, {}", r.chunks_copied, output::bytes(r.bytes_copied))),
        (
            "Kept",
            format!(
                "{} pinned by running writers, {} damaged, {} left for the next run",
                r.packs_pinned, r.packs_damaged, r.packs_deferred
            ),
        ),
        ("Time", format!("{:.1} s{}", r.seconds, if r.stopped_early { " (asked to stop early)" } else { "" })),
    ])
}

fn render_status(s: &CleanerStatus) -> String {
    let when = |t: Option<u64>| t.map_or("never".to_string(), output::time);
    let mut items = vec![
        ("State", s.state.clone()),
        ("Last started", when(s.last_started)),
        ("Last finished", when(s.last_finished)),
    ];
    if let Some(e) = &s.last_error {
        items.push(("Last error", e.clone()));
    }
    if let Some(r) = &s.last_report {
        items.push(("Last reclaimed", output::bytes(r.bytes_reclaimed.max(0) as u64)));
    }
    output::fields(&items)
}

fn render_schedules(all: &[CleanerSchedule]) -> String {
    if all.is_empty() {
        return "no cleaner schedules\n".into();
    }
    let mut t =
        Table::new(&[("ID", Align::Right), ("DAY", Align::Left), ("START", Align::Left), ("STOP", Align::Left)]);
    for s in all {
        t.row(vec![s.id.to_string(), s.day.clone(), s.start.clone(), s.stop.clone()]);
    }
    t.render()
}
