//! `qorestor alerts`: the daemon's lifecycle events (the event log `DIR/events` that `serve`
//! writes: starts, stops, restarts of the serving process, listeners that cannot bind).
//! Reading it takes no hold of the data directory, so it works while `serve` runs.

use anyhow::Result;
use clap::{Args, Subcommand};
use qorestor_core::events::{read_events, Event};
use serde::Serialize;

use crate::context::Ctx;
use crate::output::{self, Align, Table};

/// Long help of `alerts list`.
pub const LIST_ABOUT: &str = "\
List the newest events of the daemon, newest first: `qorestor serve` starting and stopping, \
its serving process dying and being restarted (the message says \"restarted\" and how the \
process ended), giving up after too many restarts, a listener that cannot bind.

Works while serve runs (it reads the event log DIR/events without holding the directory). \
Times are UTC.

JSON: an array of {\"time\" (RFC 3339, UTC), \"unix_ms\", \"kind\": \"event\", \"severity\": \
\"info\"|\"warning\"|\"error\", \"source\", \"message\"}.";

/// `alerts` subcommands.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List the daemon's events, newest first.
    #[command(long_about = LIST_ABOUT)]
    List(ListArgs),
}

/// Arguments of `alerts list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only events (lifecycle records), not alerts; today every entry is an event.
    #[arg(long)]
    pub events: bool,
    /// Show at most N entries (1 to 100000).
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub count: u32,
}

/// One entry as `--json` prints it.
#[derive(Serialize)]
struct Entry {
    time: String,
    unix_ms: u64,
    kind: &'static str,
    severity: &'static str,
    source: String,
    message: String,
}

impl Entry {
    fn of(event: Event) -> Entry {
        let time = jiff::Timestamp::from_millisecond(event.time_ms as i64)
            .map_or_else(|_| event.time_ms.to_string(), |t| format!("{t:.3}"));
        Entry {
            time,
            unix_ms: event.time_ms,
            kind: "event",
            severity: event.severity.name(),
            source: event.source,
            message: event.message,
        }
    }
}

/// Runs an `alerts` subcommand.
pub fn run(ctx: &Ctx, cmd: AlertsCommand) -> Result<()> {
    let AlertsCommand::List(args) = cmd;
    ctx.check_initialised()?;
    let log = read_events(ctx.data_dir())?;
    let entries: Vec<Entry> = log.events.into_iter().rev().take(args.count as usize).map(Entry::of).collect();
    ctx.emit(&entries, || {
        if entries.is_empty() {
            return "no events".to_string();
        }
        let mut table = Table::new(&[
            ("TIME (UTC)", Align::Left),
            ("SEVERITY", Align::Left),
            ("SOURCE", Align::Left),
            ("MESSAGE", Align::Left),
        ]);
        for e in &entries {
            table.row(vec![
                output::time(e.unix_ms / 1000),
                e.severity.to_string(),
                output::name(&e.source).into_owned(),
                output::name(&e.message).into_owned(),
            ]);
        }
        table.render().trim_end().to_string()
    })
}
