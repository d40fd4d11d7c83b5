//! `qorestor replication add|start|stop|status|resync|delete`.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use qorestor_core::ReplicationInfo;

use crate::context::{Ctx, UsageError};
use crate::output;
use crate::progress;
use crate::values::parse_size;

/// `replication` subcommands.
#[derive(Debug, Subcommand)]
#[command(
    about = "Replicate containers to a second data directory",
    long_about = "Replicate a container to another data directory (a second disk or a mounted second \
        site). A pass sends the streams the replica lacks; for each batch of chunks it asks the \
        target which fingerprints it is missing and sends only those records, as stored \
        (compressed, and sealed if the storage group is encrypted: the group's wrapped keys travel \
        with it, so the replica opens with the same passphrase). Streams deleted at the source are \
        deleted from the replica. The replica container has the same storage group and container \
        names (created if missing) and is read-only. An interrupted pass is resumed by the next \
        one without sending again what arrived.\n\n\
        HOST:PORT targets (another qorestor listening for replication) are not built yet.",
    after_help = "Examples:\n  qorestor replication add nightly --target /mnt/site-b/qorestor --limit 50MB/s\n  \
        qorestor replication start nightly\n  qorestor --json replication status nightly"
)]
pub enum ReplicationCommand {
    /// Set up a container's replication.
    #[command(long_about = "Set up a container's replication to the data directory PATH (created \
                      if missing; not this one). --limit paces passes to RATE (SIZE/s, e.g. \
                      50MB/s). --encryption (TLS on the wire) is for HOST:PORT targets and is \
                      refused for a PATH.\n\nJSON: the replication status object.")]
    Add(AddArgs),
    /// Run one pass now (blocks, with a progress bar; resumes an interrupted pass).
    #[command(long_about = "Run one replication pass now: it blocks, shows a progress bar on a \
                      terminal, and exits non-zero if the pass fails (the next start resumes it). \
                      Starting a stopped replication allows it again.\n\n\
                      JSON: the replication status object after the pass.")]
    Start {
        /// The source container.
        container: String,
    },
    /// Mark a replication stopped (status shows it) until the next start or resync.
    Stop {
        /// The source container.
        container: String,
    },
    /// Show a replication's state and its last pass.
    #[command(long_about = "Show a replication: state (idle, interrupted, failed or stopped), target, \
                      rate limit, and the last pass: bytes_sent (everything that crossed to the \
                      target: fingerprints asked, answers, chunk records, recipe entries), \
                      logical_bytes (of the streams it brought up to date), streams and chunks \
                      sent.\n\nJSON: {container, target, state, limit_bytes_per_s, \
                      streams_replicated, bytes_sent, logical_bytes, last}")]
    Status {
        /// The source container.
        container: String,
    },
    /// Compare every stream again and send what the replica lacks (one pass).
    Resync {
        /// The source container.
        container: String,
    },
    /// Remove a container's replication (the replica stays as it is).
    Delete {
        /// The source container.
        container: String,
    },
}

/// Encryption on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WireEncryption {
    /// Plain TCP.
    None,
    /// TLS with AES-128.
    Aes128,
    /// TLS with AES-256.
    Aes256,
}

/// Arguments of `replication add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The source container.
    pub container: String,
    /// The target: a data directory (PATH) or HOST:PORT.
    #[arg(long, value_name = "PATH|HOST:PORT")]
    pub target: String,
    /// Encryption on the wire (HOST:PORT targets only).
    #[arg(long, value_enum)]
    pub encryption: Option<WireEncryption>,
    /// Rate limit, SIZE/s (e.g. 50MB/s).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub limit: Option<u64>,
}

/// Parses RATE: a SIZE followed by `/s`.
fn parse_rate(s: &str) -> Result<u64, String> {
    let size = s.strip_suffix("/s").ok_or_else(|| format!("{s:?} is not a rate (expected SIZE/s, e.g. 50MB/s)"))?;
    match parse_size(size)? {
        0 => Err(format!("{s:?}: a rate must be above zero")),
        n => Ok(n),
    }
}

/// Runs a `replication` subcommand.
pub fn run(ctx: &Ctx, cmd: ReplicationCommand) -> Result<()> {
    let engine = ctx.open("qorestor replication")?;
    let info = match cmd {
        ReplicationCommand::Add(args) => {
            if args.encryption.is_some() && !qorestor_core::replication::is_host_port(&args.target) {
                return Err(UsageError(format!(
                    "--encryption is for HOST:PORT targets; {} is a directory (its data stays encrypted at rest if its storage group is)",
                    args.target
                ))
                .into());
            }
            engine.add_replication(&args.container, &args.target, args.limit)?
        }
        ReplicationCommand::Start { container } => pass(ctx, &engine, &container, false)?,
        ReplicationCommand::Resync { container } => pass(ctx, &engine, &container, true)?,
        ReplicationCommand::Stop { container } => engine.set_replication_stopped(&container, true)?,
        ReplicationCommand::Status { container } => engine.replication(&container)?,
        ReplicationCommand::Delete { container } => {
            engine.delete_replication(&container)?;
            let done = serde_json::json!({"container": container, "deleted": true});
            return ctx.emit(&done, || format!("deleted the replication of {container}"));
        }
    };
    ctx.emit(&info, || details(&info))
}

/// Runs one pass with a progress bar on a terminal.
fn pass(ctx: &Ctx, engine: &qorestor_core::Engine, container: &str, resync: bool) -> Result<ReplicationInfo> {
    let bar = progress::transfer(progress::enabled(ctx.json), None, None);
    Ok(engine.run_replication(container, resync, &*bar)?)
}

/// The human rendering of a replication.
fn details(r: &ReplicationInfo) -> String {
    let mut rows = vec![
        ("Container", r.container.clone()),
        ("Target", r.target.clone()),
        ("State", r.state.clone()),
        ("Rate limit", r.limit_bytes_per_s.map_or("none".into(), |l| format!("{}/s", output::bytes(l)))),
        ("Streams replicated", r.streams_replicated.to_string()),
    ];
    if let Some(l) = &r.last {
        rows.push(("Last pass", format!("{} UTC", output::time(l.started))));
        rows.push(("Bytes sent", output::bytes(l.bytes_sent)));
        rows.push(("Logical bytes", output::bytes(l.logical_bytes)));
        rows.push((
            "Streams",
            format!("{} sent, {} deleted, {} up to date", l.streams_sent, l.streams_deleted, l.streams_up_to_date),
        ));
        rows.push(("Chunks", format!("{} sent, {} already there", l.chunks_sent, l.chunks_present)));
        if let Some(e) = &l.error {
            rows.push(("Error", e.clone()));
        }
    }
    output::fields(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_sizes_per_second() {
        assert_eq!(parse_rate("50MB/s"), Ok(50_000_000));
        assert_eq!(parse_rate("1MiB/s"), Ok(1 << 20));
        assert!(parse_rate("50MB").is_err());
        assert!(parse_rate("0/s").is_err());
    }
}
