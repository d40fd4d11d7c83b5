//! `qorestor`: the command-line tool of the qorestor deduplicating backup storage server.
//!
//! The contract for command names, flags, JSON fields and exit codes is `CLI.md` (shared with
//! scripts and other teams). This binary is a thin layer over [`qorestor_core`]:
//! - `main.rs`: the clap definitions of the global flags and the command list, and dispatch;
//! - [`context`]: the data directory and output mode every command gets, usage errors;
//! - [`values`]: value parsers (SIZE, `CONTAINER/STREAM`);
//! - [`output`]: human (tables, sizes, ratios) and JSON rendering;
//! - [`progress`]: an indicatif implementation of [`qorestor_core::Progress`];
//! - one module per command group: [`init`], [`group`], [`container`], [`stream`], [`stats`],
//!   [`cleaner`], [`verify`], [`recycle`], [`mod@bench`], [`vtl`], [`replication`], [`system`],
//!   [`iscsi`], [`ndmp`], [`user`], [`ost`], [`serve`].
//!
//! Exit codes: 0 on success, 1 when an operation failed, 2 for bad usage, 3 when `verify`
//! found damage it did not heal.

mod alerts;
mod bench;
mod cleaner;
mod cmdio;
mod container;
mod context;
mod control_server;
mod control_socket;
mod forward;
mod group;
mod handoff;
mod init;
mod iscsi;
mod listen;
#[cfg(test)]
mod live_tests;
mod ndmp;
mod ost;
mod output;
mod progress;
mod recycle;
mod replication;
mod scheduler;
mod secret;
mod serve;
mod serve_warnings;
mod stats;
mod stream;
mod supervisor;
mod system;
mod user;
mod values;
mod verify;
mod vtl;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::context::{Ctx, DamageFound, UsageError};

/// The data directory used when neither `--data` nor `QORESTOR_DATA` is given.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/qorestor";

/// Exit code of a failed operation.
const EXIT_FAILED: u8 = 1;
/// Exit code of bad usage (clap's own code for parse errors).
const EXIT_USAGE: u8 = 2;
/// Exit code of `verify` when damage remains.
const EXIT_DAMAGE: u8 = 3;

/// Text after the top-level help.
const AFTER_HELP: &str = "\
Examples:
  qorestor init
  qorestor container add nightly --type object
  set -o pipefail; tar cf - /home | qorestor put nightly/home-monday.tar
  qorestor get nightly/home-monday.tar restored.tar
  qorestor --json stats --container nightly

Exit codes: 0 success, 1 the operation failed (a refusal due to state: exists, missing, in use,
wrong secret, refused overwrite), 2 bad usage (a value refused for its form or range, whoever
refuses it), 3 verify found damage.
With --json every command prints exactly one JSON document on stdout (lists are JSON arrays).";

/// Command-line arguments of `qorestor`.
#[derive(Debug, Parser)]
#[command(
    name = "qorestor",
    version,
    about = "qorestor: deduplicating backup storage",
    long_about = "qorestor: deduplicating backup storage.\n\n\
        A data directory holds storage groups (dedup domains with a compression and chunking \
        policy), containers (typed namespaces in a storage group) and streams (named byte \
        streams in a container, addressed CONTAINER/STREAM). Only `qorestor init` creates a data \
        directory (and `serve` the default one): other commands refuse a missing or \
        never-initialised one. A command that finds the directory in use by another command \
        waits for it (--lock-wait); on a directory `qorestor serve` serves, commands run inside \
        the daemon (see `qorestor serve --help`).",
    after_help = AFTER_HELP,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// The data directory.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "QORESTOR_DATA",
        default_value = DEFAULT_DATA_DIR
    )]
    pub data: PathBuf,

    /// Print results as one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    /// Read the passphrase of encrypted storage groups from the first line of PATH (default:
    /// the QORESTOR_PASSPHRASE environment variable).
    #[arg(long, global = true, value_name = "PATH")]
    pub passphrase_file: Option<PathBuf>,

    /// How long to wait for a data directory another command holds (e.g. 90s, 10m, 1h; 0
    /// fails at once). On a directory `qorestor serve` holds, the command is handed to the
    /// daemon instead: this bounds the wait for the daemon to take it (at least 1 s).
    #[arg(long, global = true, value_name = "DURATION", default_value = "10m", value_parser = values::parse_duration)]
    pub lock_wait: std::time::Duration,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands. Each variant's arguments live in the module that runs it.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Initialise the data directory (idempotent; creates parent directories).
    #[command(long_about = init::LONG_ABOUT)]
    Init,
    /// Manage storage groups (dedup domains).
    #[command(subcommand, name = "storage-group")]
    StorageGroup(group::GroupCommand),
    /// Manage containers.
    #[command(subcommand)]
    Container(container::ContainerCommand),
    /// Store a stream from a file or stdin.
    #[command(long_about = stream::PUT_ABOUT)]
    Put(stream::PutArgs),
    /// Read a stream back to a file or stdout.
    #[command(long_about = stream::GET_ABOUT)]
    Get(stream::GetArgs),
    /// List the streams of a container.
    #[command(long_about = stream::LS_ABOUT)]
    Ls(stream::LsArgs),
    /// Delete a stream.
    #[command(long_about = stream::RM_ABOUT)]
    Rm(stream::RmArgs),
    /// Show space statistics (system-wide, or of a storage group or container).
    #[command(long_about = stats::LONG_ABOUT)]
    Stats(stats::StatsArgs),
    /// List and restore deleted streams kept in a recycle bin.
    #[command(subcommand, name = "recycle-bin")]
    RecycleBin(recycle::RecycleCommand),
    /// Reclaim the space of deleted streams (run now, status, schedules).
    #[command(subcommand, long_about = cleaner::LONG_ABOUT)]
    Cleaner(cleaner::CleanerCommand),
    /// Check packs, recipes, catalog and index; --repair heals.
    #[command(long_about = verify::LONG_ABOUT)]
    Verify(verify::VerifyArgs),
    /// Benchmark ingest and restore on the benchmark dataset (bench/gen_dataset.py).
    #[command(long_about = bench::LONG_ABOUT)]
    Bench(bench::BenchArgs),
    /// Manage virtual tape libraries.
    #[command(subcommand)]
    Vtl(vtl::VtlCommand),
    /// Replicate containers to a second data directory or another qorestor.
    #[command(subcommand)]
    Replication(replication::ReplicationCommand),
    /// System-wide settings (the system name, the space reserve).
    #[command(subcommand)]
    System(system::SystemCommand),
    /// NDMP: the user and password, and the device names a DMA uses.
    #[command(subcommand)]
    Ndmp(ndmp::NdmpCommand),
    /// The iSCSI target: names, LUNs and CHAP credentials.
    #[command(subcommand)]
    Iscsi(iscsi::IscsiCommand),
    /// Users of the OST (and later REST) planes: add, list, delete, set-password.
    #[command(subcommand)]
    User(user::UserCommand),
    /// OST: put, get, ls and rm images on an OST server (a network client), and show the
    /// storage units of the data directory.
    #[command(subcommand)]
    Ost(ost::OstCommand),
    /// The daemon's events (starts, stops, restarts), newest first.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// Run the daemon: the frontends whose --*-listen flag is given.
    #[command(long_about = serve::LONG_ABOUT)]
    Serve(serve::ServeArgs),
}

/// Runs one parsed command with `ctx`.
fn run(ctx: &Ctx, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init => init::run(ctx),
        Command::StorageGroup(cmd) => group::run(ctx, cmd),
        Command::Container(cmd) => container::run(ctx, cmd),
        Command::Put(args) => stream::put(ctx, args),
        Command::Get(args) => stream::get(ctx, args),
        Command::Ls(args) => stream::ls(ctx, args),
        Command::Rm(args) => stream::rm(ctx, args),
        Command::Stats(args) => stats::run(ctx, args),
        Command::Cleaner(cmd) => cleaner::run(ctx, cmd),
        Command::RecycleBin(cmd) => recycle::run(ctx, cmd),
        Command::Verify(args) => verify::run(ctx, args),
        Command::Bench(args) => bench::run(ctx, &args),
        Command::Vtl(cmd) => vtl::run(ctx, cmd),
        Command::Replication(cmd) => replication::run(ctx, cmd),
        Command::System(cmd) => system::run(ctx, cmd),
        Command::Ndmp(cmd) => ndmp::run(ctx, cmd),
        Command::Iscsi(cmd) => iscsi::run(ctx, cmd),
        Command::User(cmd) => user::run(ctx, cmd),
        Command::Ost(cmd) => ost::run(ctx, cmd),
        Command::Alerts(cmd) => alerts::run(ctx, cmd),
        Command::Serve(args) => serve::run(ctx, args),
    }
}

/// Turns a clap error into one line: its message and details, without the usage block. A value
/// refused by one of our parsers is named by the parser's own message, so clap's copy of it is
/// left out (a 10,000-byte name is printed once, shortened); other long values are shortened.
fn one_line(err: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let value = match err.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => Some(v.as_str()),
        _ => None,
    };
    let source = std::error::Error::source(err).map(ToString::to_string);
    if let (ErrorKind::ValueValidation, Some(v), Some(msg), Some(ContextValue::String(arg))) =
        (err.kind(), value, &source, err.get(ContextKind::InvalidArg))
    {
        if msg.contains(&format!("{:?}", qorestor_core::shortened(v))) {
            return format!("invalid value for {arg}: {msg} (see --help)");
        }
    }
    let mut text = err.to_string();
    if let Some(v) = value.filter(|v| v.len() > 80) {
        text = text.replace(v, &output::name(&qorestor_core::shortened(v)));
    }
    let mut parts = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("Usage:") || line.starts_with("For more information") {
            continue;
        }
        parts.push(line.strip_prefix("error: ").unwrap_or(line));
    }
    format!("{} (see --help)", parts.join(" "))
}

/// The error and its causes on one line, skipping a cause whose text the line already holds
/// (the engine's I/O errors name their cause in their own message).
fn error_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

/// Whether the engine or the library refused a value for its form or range (exit code 2, as
/// for clap's own refusals; a refusal due to state is exit code 1).
fn refused_value(e: &anyhow::Error) -> bool {
    e.downcast_ref::<qorestor_core::Error>().is_some_and(|e| e.kind() == qorestor_core::ErrorKind::InvalidInput)
        || e.downcast_ref::<qorestor_vtl::Error>().is_some_and(|e| e.kind() == qorestor_vtl::ErrorKind::InvalidInput)
}

/// Whether an error comes from writing to a pipe whose reader has gone.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() || e.exit_code() != i32::from(EXIT_USAGE) => e.exit(),
        Err(e) => {
            use clap::error::ErrorKind;
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                e.exit();
            }
            eprintln!("qorestor: {}", one_line(&e));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut unreachable = None;
    if forward::forwardable(&cli.command) {
        match control_socket::connect(&cli.data) {
            Ok(Some(conn)) => return ExitCode::from(forward::run(conn, &cli)),
            Ok(None) => unreachable = Some(forward::unreachable_note(&cli.data, "nothing listens there")),
            Err(e) => unreachable = Some(forward::unreachable_note(&cli.data, &e.to_string())),
        }
    }
    let mut ctx = Ctx::new(cli.data, cli.json, cli.passphrase_file, cli.lock_wait);
    ctx.daemon_unreachable = unreachable;
    ExitCode::from(execute(&ctx, cli.command))
}

/// Runs one parsed command with `ctx` (its streams, files and engine) and returns its exit code;
/// a failure is reported on `ctx`'s stderr.
pub fn execute(ctx: &Ctx, command: Command) -> u8 {
    match run(ctx, command) {
        Ok(()) => 0,
        // The reader of our output went away (`qorestor get c/s | head`): stop quietly, as
        // ripgrep and cat do.
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            ctx.io.eprintln(&format!("qorestor: {}", error_line(&e)));
            if e.downcast_ref::<UsageError>().is_some() || refused_value(&e) {
                EXIT_USAGE
            } else if e.downcast_ref::<DamageFound>().is_some() {
                EXIT_DAMAGE
            } else {
                EXIT_FAILED
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        let a = Cli::try_parse_from(["qorestor", "--json", "--data", "/d", "stats"]).unwrap();
        let b = Cli::try_parse_from(["qorestor", "stats", "--json", "--data", "/d"]).unwrap();
        assert!(a.json && b.json);
        assert_eq!(a.data, b.data);
    }

    #[test]
    fn usage_errors_render_as_one_line() {
        let e = Cli::try_parse_from(["qorestor", "container", "add", "c", "--type", "tape"]).unwrap_err();
        let line = one_line(&e);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("tape"), "{line}");
    }
}
