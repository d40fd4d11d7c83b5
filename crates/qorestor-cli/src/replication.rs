//! `qorestor replication add|start|stop|status|resync|delete`.

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use qorestor_core::{Passphrase, ReplicationInfo};

use crate::context::{Ctx, UsageError};
use crate::output;
use crate::progress;
use crate::secret;
use crate::values::parse_size;

/// `replication` subcommands.
#[derive(Debug, Subcommand)]
#[command(
    about = "Replicate containers to a second data directory or another qorestor",
    long_about = "Replicate a container to another data directory (a second disk or a mounted second \
        site) or to another qorestor over TCP (HOST:PORT, where that system runs `qorestor serve \
        --replication-listen` and has a replication password set). A pass sends the streams the replica lacks; for each batch of chunks it asks the \
        target which fingerprints it is missing and sends only those records, as stored \
        (compressed, and sealed if the storage group is encrypted: the group's wrapped keys travel \
        with it, so the replica opens with the same passphrase). Streams deleted at the source are \
        deleted from the replica. The replica container has the same storage group and container \
        names (created if missing) and is read-only. An interrupted pass is resumed by the next \
        one without sending again what arrived.\n\n\
        Over TCP the source proves it knows the target's replication password (set on the target \
        with `replication set-password`; given to `replication add` with --password-stdin, \
        --password-file or QORESTOR_REPLICATION_PASSWORD) and the target proves it too. With \
        --encryption aes128|aes256 the connection is TLS 1.3 and both proofs are bound to the TLS \
        session (the target's certificate is self-signed; the password is what authenticates it). \
        Without it, data of unencrypted storage groups crosses in the clear (sealed groups stay \
        sealed).",
    after_help = "Examples:\n  qorestor replication add nightly --target /mnt/site-b/qorestor --limit 50MB/s\n  \
        qorestor replication set-password --password-stdin < pw.txt      (on the target)\n  \
        qorestor replication add nightly --target dr-site:9100 --encryption aes256 --password-file pw.txt\n  \
        qorestor replication start nightly\n  qorestor --json replication status nightly"
)]
pub enum ReplicationCommand {
    /// Set up a container's replication.
    #[command(long_about = "Set up a container's replication to the data directory PATH (created \
                      if missing; not this one) or to HOST:PORT. --limit paces passes to RATE \
                      (SIZE/s, e.g. 50MB/s). A HOST:PORT target (another qorestor running serve \
                      --replication-listen) needs its replication password, kept in this \
                      system's catalog for later passes. --encryption (TLS 1.3 on the wire, \
                      AES-128-GCM or AES-256-GCM; default none) is for HOST:PORT targets and is \
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
    /// Set the password replication sources must give to send to this system (over TCP).
    #[command(long_about = "Set the password that replication sources must know to send to \
                      this system through `qorestor serve --replication-listen`. Only a key \
                      derived from it (Argon2id) is stored. Without one, the listener refuses \
                      every source.\n\nJSON: {\"password_set\": true}")]
    SetPassword(PasswordArgs),
}

/// Where a replication password comes from.
#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// Read the password from the first line of stdin.
    #[arg(long, conflicts_with = "password_file")]
    pub password_stdin: bool,
    /// Read the password from the first line of FILE.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<std::path::PathBuf>,
}

/// The environment variable that may hold the target's replication password.
pub const PASSWORD_ENV: &str = "QORESTOR_REPLICATION_PASSWORD";

impl PasswordArgs {
    /// The password: from stdin or the file if asked, else from [`PASSWORD_ENV`], else none.
    fn read(&self, ctx: &Ctx) -> Result<Option<Passphrase>> {
        let bytes = if self.password_stdin {
            Some(secret::read_stdin_line(&ctx.io, "replication password")?)
        } else if let Some(f) = &self.password_file {
            Some(secret::read_file_line(&ctx.io, f, "replication password")?)
        } else {
            ctx.io.var_os(PASSWORD_ENV).map(|v| v.as_encoded_bytes().to_vec())
        };
        bytes.map(|b| Ok(Passphrase::new(b)?)).transpose()
    }
}

/// Encryption on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WireEncryption {
    /// Plain TCP.
    None,
    /// TLS 1.3 with AES-128-GCM.
    Aes128,
    /// TLS 1.3 with AES-256-GCM.
    Aes256,
}

impl From<WireEncryption> for qorestor_core::replication::WireEncryption {
    fn from(e: WireEncryption) -> Self {
        match e {
            WireEncryption::None => Self::None,
            WireEncryption::Aes128 => Self::Aes128,
            WireEncryption::Aes256 => Self::Aes256,
        }
    }
}

/// Arguments of `replication add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The source container.
    pub container: String,
    /// The target: a data directory (PATH; a relative one is stored as an absolute path) or
    /// HOST:PORT.
    #[arg(long, value_name = "PATH|HOST:PORT")]
    pub target: String,
    /// Encryption on the wire (HOST:PORT targets only).
    #[arg(long, value_enum)]
    pub encryption: Option<WireEncryption>,
    /// Rate limit, SIZE/s (e.g. 50MB/s).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub limit: Option<u64>,
    /// The target's replication password (HOST:PORT targets).
    #[command(flatten)]
    pub password: PasswordArgs,
}

/// A directory target as an absolute path: a relative one is taken from the command's working
/// directory (the client's, for a command run inside the daemon), so later passes (`replication
/// start` from anywhere, serve's scheduler) reach the same directory.
fn directory_target(ctx: &Ctx, target: &str) -> Result<String> {
    let path = std::path::Path::new(target);
    if path.is_absolute() || target.is_empty() {
        return Ok(target.to_string());
    }
    let cwd = ctx.io.current_dir().context("cannot resolve the relative replication target")?;
    let absolute = cwd.join(path);
    absolute
        .to_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("the replication target {} is not UTF-8", absolute.display()))
}

/// Parses RATE: a SIZE followed by `/s`.
fn parse_rate(s: &str) -> Result<u64, String> {
    let size = s.strip_suffix("/s").ok_or_else(|| format!("{s:?} is not a rate (expected SIZE/s, e.g. 50MB/s)"))?;
    match parse_size(size)? {
        0 => Err(format!("{s:?}: a rate must be above zero")),
        n => Ok(n),
    }
}

/// Checks the password with a HOST:PORT target that answers (a wrong one fails the command);
/// says on stderr when the target could not be reached to check it.
fn check_target(
    ctx: &Ctx,
    target: &str,
    encryption: qorestor_core::replication::WireEncryption,
    password: &Passphrase,
) -> Result<()> {
    if let Some(why) = qorestor_core::replication::check_target(target, encryption, password)? {
        ctx.io.eprintln(&format!(
            "qorestor: warning: the password could not be checked with {target} ({why}); \
             it is checked when a replication pass starts"
        ));
    }
    Ok(())
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
            if !qorestor_core::replication::is_host_port(&args.target) {
                if args.password.password_stdin || args.password.password_file.is_some() {
                    return Err(UsageError(format!(
                        "a replication password is for HOST:PORT targets; {} is a directory",
                        args.target
                    ))
                    .into());
                }
                let target = directory_target(ctx, &args.target)?;
                engine.add_replication(&args.container, &target, args.limit)?
            } else {
                let Some(password) = args.password.read(ctx)? else {
                    return Err(UsageError(format!(
                        "{} is a HOST:PORT target: give its replication password (--password-stdin, --password-file or {PASSWORD_ENV})",
                        args.target
                    ))
                    .into());
                };
                let encryption = args.encryption.unwrap_or(WireEncryption::None).into();
                engine.container(&args.container)?;
                check_target(ctx, &args.target, encryption, &password)?;
                engine.add_remote_replication(&args.container, &args.target, args.limit, encryption, &password)?
            }
        }
        ReplicationCommand::SetPassword(args) => {
            let Some(password) = args.read(ctx)? else {
                return Err(UsageError(format!(
                    "give the password with --password-stdin, --password-file or {PASSWORD_ENV}"
                ))
                .into());
            };
            engine.set_replication_password(&password)?;
            let done = serde_json::json!({"password_set": true});
            return ctx.emit(&done, || "replication password set\n".to_string());
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
    let bar = progress::transfer(ctx, progress::enabled(ctx), None, None);
    Ok(engine.run_replication(container, resync, &*bar)?)
}

/// The human rendering of a replication.
fn details(r: &ReplicationInfo) -> String {
    let mut rows = vec![
        ("Container", r.container.clone()),
        ("Target", r.target.clone()),
        ("State", r.state.clone()),
        ("Rate limit", r.limit_bytes_per_s.map_or("none".into(), |l| format!("{}/s", output::setting_bytes(l)))),
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
