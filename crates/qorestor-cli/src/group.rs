//! `qorestor storage-group add|update|list|show|delete`.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use qorestor_core::{ChunkParams, Compression, EncryptionMode, EncryptionOptions, GroupInfo, GroupOptions, Passphrase};
use serde::Serialize;

use crate::context::{Ctx, UsageError};
use crate::output::{self, Align, Table};
use crate::values::{parse_days, parse_object_name, parse_quota, parse_size_u32, Quota};

/// `storage-group` subcommands.
#[derive(Debug, Subcommand)]
#[command(
    about = "Manage storage groups (dedup domains)",
    long_about = "Manage storage groups.\n\n\
        A storage group is a dedup domain: streams of all its containers share chunks. It has a \
        compression policy (can be changed with update) and chunk size parameters (fixed when it \
        is created). Every data directory starts with the group DefaultGroup.",
    after_help = "Examples:\n  \
        qorestor storage-group add archive --compression best\n  \
        qorestor storage-group update archive --compression fast\n  \
        qorestor storage-group list\n  \
        qorestor --json storage-group show archive\n  \
        qorestor storage-group delete archive"
)]
pub enum GroupCommand {
    /// Create a storage group.
    #[command(long_about = ADD_ABOUT)]
    Add(AddArgs),
    /// Change a storage group's compression policy.
    #[command(long_about = "Change a storage group's compression policy. Chunks stored from then \
                      on use it; stored chunks keep their own encoding (nothing is rewritten). \
                      Chunk sizes cannot be changed.\n\n\
                      JSON: the updated storage group object.\n\n\
                      Example:\n  qorestor storage-group update archive --compression best")]
    Update(UpdateArgs),
    /// List storage groups.
    #[command(long_about = "List storage groups.\n\nJSON: an array of storage group objects \
                      (name, id, compression, chunk_min, chunk_avg, chunk_max, containers, \
                      created), by name.")]
    List,
    /// Show one storage group.
    #[command(long_about = "Show one storage group.\n\nJSON: the storage group object (name, id, \
                      compression, chunk_min, chunk_avg, chunk_max, containers, created).\n\n\
                      Example:\n  qorestor storage-group show DefaultGroup")]
    Show {
        /// The storage group's name.
        name: String,
    },
    /// Start sealing new chunks of an encrypted group with a new data key.
    #[command(
        name = "rotate-key",
        long_about = "Add a new data key to an encrypted storage group now; chunks stored from then \
                      on are sealed with it, older chunks keep their key (all keys stay, wrapped \
                      by the passphrase). Groups in internal mode also rotate by themselves every \
                      --key-rotation interval. Needs the passphrase (QORESTOR_PASSPHRASE or \
                      --passphrase-file).\n\n\
                      JSON: the storage group object.\n\n\
                      Example:\n  QORESTOR_PASSPHRASE=... qorestor storage-group rotate-key vault"
    )]
    RotateKey {
        /// The storage group's name.
        name: String,
    },
    /// Delete an empty storage group and its data.
    #[command(long_about = "Delete a storage group and its data. It must hold no containers.\n\n\
                      JSON: {\"storage_group\": NAME, \"deleted\": true}\n\n\
                      Example:\n  qorestor storage-group delete archive")]
    Delete {
        /// The storage group's name.
        name: String,
    },
}

/// Long help of `storage-group add`.
const ADD_ABOUT: &str = "\
Create a storage group.

Compression: none, fast (zstd level 1, the default; chunks that look incompressible are stored
raw without trying) or best (zstd level 12: smaller, slower to write, as fast to read); it can
be changed later with update. Chunk sizes (SIZE: an integer with an optional unit KB/MB/GB/TB
or KiB/MiB/GiB/TiB) default to 4KiB / 16KiB / 64KiB; the average must be a power of two and
64 <= min < avg < max <= 4MiB. They cannot be changed later.

Encryption (--encryption static|internal) seals every chunk with AES-256-GCM under data keys
wrapped by a passphrase (Argon2id); fingerprints and chunk boundaries are keyed per group. The
passphrase comes from --passphrase-stdin (one line), else QORESTOR_PASSPHRASE or
--passphrase-file; every later command that reads or writes the group needs it. static keeps
one data key; internal adds a new one every --key-rotation DAYS (default 30) and keeps the old
ones to read old chunks. Encryption cannot be turned off once on, and a lost passphrase means
the group's data is lost.

JSON: the new storage group object.

Examples:
  qorestor storage-group add archive --compression best
  qorestor storage-group add vm-images --chunk-min 8KiB --chunk-avg 32KiB --chunk-max 128KiB
  qorestor storage-group add vault --encryption internal --key-rotation 7d --passphrase-stdin < pass.txt";

/// Compression policy on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    /// Store chunks raw.
    None,
    /// zstd at a fast level.
    Fast,
    /// zstd at a high level.
    Best,
}

impl From<CompressionArg> for Compression {
    fn from(c: CompressionArg) -> Self {
        match c {
            CompressionArg::None => Compression::None,
            CompressionArg::Fast => Compression::Fast,
            CompressionArg::Best => Compression::Best,
        }
    }
}

/// Arguments of `storage-group add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The new group's name: 1 to 64 of A-Z a-z 0-9 . _ -
    #[arg(value_parser = parse_object_name)]
    pub name: String,
    /// Compression policy.
    #[arg(long, value_enum, default_value = "fast")]
    pub compression: CompressionArg,
    /// Minimum chunk size [default: 4KiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size_u32)]
    pub chunk_min: Option<u32>,
    /// Average chunk size, a power of two [default: 16KiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size_u32)]
    pub chunk_avg: Option<u32>,
    /// Maximum chunk size [default: 64KiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size_u32)]
    pub chunk_max: Option<u32>,
    /// Quota on the group's stored (pack) bytes; writes that would pass it fail.
    #[arg(long, value_name = "SIZE", value_parser = parse_quota, allow_hyphen_values = true)]
    pub quota: Option<Quota>,
    /// Encrypt the group's chunks at rest (cannot be turned off later).
    #[arg(long, value_enum)]
    pub encryption: Option<EncryptionArg>,
    /// Days between data key rotations in internal mode [default: 30].
    #[arg(long, value_name = "DAYS", value_parser = parse_days)]
    pub key_rotation: Option<u64>,
    /// Read the encryption passphrase from stdin (one line).
    #[arg(long)]
    pub passphrase_stdin: bool,
}

/// Encryption mode on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EncryptionArg {
    /// One data key for the group's life.
    Static,
    /// A new data key every --key-rotation interval.
    Internal,
}

/// Default days between key rotations in internal mode.
const DEFAULT_KEY_ROTATION_DAYS: u64 = 30;

impl From<EncryptionArg> for EncryptionMode {
    fn from(e: EncryptionArg) -> Self {
        match e {
            EncryptionArg::Static => EncryptionMode::Static,
            EncryptionArg::Internal => EncryptionMode::Internal,
        }
    }
}

impl AddArgs {
    /// The encryption asked for, with its passphrase; flag combinations that make no sense are
    /// usage errors.
    fn encryption(&self, ctx: &Ctx) -> Result<Option<EncryptionOptions>> {
        let Some(mode) = self.encryption else {
            if self.passphrase_stdin || self.key_rotation.is_some() {
                return Err(UsageError("--passphrase-stdin and --key-rotation go with --encryption".into()).into());
            }
            return Ok(None);
        };
        let mode = EncryptionMode::from(mode);
        if mode == EncryptionMode::Static && self.key_rotation.is_some() {
            return Err(UsageError("--key-rotation goes with --encryption internal".into()).into());
        }
        let days = self.key_rotation.unwrap_or(DEFAULT_KEY_ROTATION_DAYS);
        let days = u32::try_from(days).map_err(|_| UsageError(format!("--key-rotation {days}: too many days")))?;
        let pass = if self.passphrase_stdin {
            crate::secret::read_stdin_line(&ctx.io, "passphrase")?
        } else {
            ctx.passphrase()?.ok_or_else(|| {
                UsageError(
                    "--encryption needs a passphrase: --passphrase-stdin, QORESTOR_PASSPHRASE or --passphrase-file"
                        .into(),
                )
            })?
        };
        Ok(Some(EncryptionOptions::new(mode, days, Passphrase::new(pass)?)))
    }

    /// The group options asked for; invalid chunk sizes are a usage error.
    fn options(&self) -> Result<GroupOptions> {
        let d = ChunkParams::default();
        let chunking = ChunkParams {
            min: self.chunk_min.unwrap_or(d.min),
            avg: self.chunk_avg.unwrap_or(d.avg),
            max: self.chunk_max.unwrap_or(d.max),
        };
        chunking.validate().map_err(|e| UsageError(e.to_string()))?;
        Ok(GroupOptions { compression: self.compression.into(), chunking })
    }
}

/// Arguments of `storage-group update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The storage group's name.
    pub name: String,
    /// New compression policy.
    #[arg(long, value_enum)]
    pub compression: Option<CompressionArg>,
    /// New quota on the group's stored (pack) bytes, or none to remove it.
    #[arg(long, value_name = "SIZE|none", value_parser = parse_quota, allow_hyphen_values = true)]
    pub quota: Option<Quota>,
}

/// The JSON result of a deletion.
#[derive(Debug, Serialize)]
struct Deleted<'a> {
    storage_group: &'a str,
    deleted: bool,
}

/// Runs a `storage-group` subcommand.
pub fn run(ctx: &Ctx, cmd: GroupCommand) -> Result<()> {
    match cmd {
        GroupCommand::Add(args) => {
            let opts = args.options()?;
            let encryption = args.encryption(ctx)?;
            let engine = ctx.open("qorestor storage-group add")?;
            let mut info = match encryption {
                Some(enc) => engine.add_encrypted_storage_group(&args.name, opts, enc)?,
                None => engine.add_storage_group(&args.name, opts)?,
            };
            if let Some(quota) = args.quota {
                info = engine.set_storage_group_quota(&args.name, quota.0)?;
            }
            ctx.emit(&info, || format!("created storage group {}\n{}", info.name, details(&info)))
        }
        GroupCommand::Update(args) => {
            if args.compression.is_none() && args.quota.is_none() {
                return Err(UsageError(
                    "storage-group update: nothing to change (give --compression or --quota)".into(),
                )
                .into());
            }
            let engine = ctx.open("qorestor storage-group update")?;
            let mut info = engine.update_storage_group(&args.name, args.compression.map(Into::into))?;
            if let Some(quota) = args.quota {
                info = engine.set_storage_group_quota(&args.name, quota.0)?;
            }
            ctx.emit(&info, || format!("updated storage group {}\n{}", info.name, details(&info)))
        }
        GroupCommand::List => {
            let engine = ctx.open("qorestor storage-group list")?;
            let groups = engine.storage_groups()?;
            ctx.emit(&groups, || table(&groups))
        }
        GroupCommand::Show { name } => {
            let engine = ctx.open("qorestor storage-group show")?;
            let info = engine.storage_group(&name)?;
            ctx.emit(&info, || details(&info))
        }
        GroupCommand::RotateKey { name } => {
            let engine = ctx.open("qorestor storage-group rotate-key")?;
            let id = engine.rotate_storage_group_key(&name)?;
            let info = engine.storage_group(&name)?;
            ctx.emit(&info, || format!("storage group {name} seals new chunks with data key {id}\n{}", details(&info)))
        }
        GroupCommand::Delete { name } => {
            let engine = ctx.open("qorestor storage-group delete")?;
            engine.delete_storage_group(&name)?;
            let report = Deleted { storage_group: &name, deleted: true };
            ctx.emit(&report, || format!("deleted storage group {name}"))
        }
    }
}

/// The human rendering of one storage group.
fn details(g: &GroupInfo) -> String {
    output::fields(&[
        ("Name", g.name.clone()),
        ("Id", g.id.to_string()),
        ("Compression", g.compression.as_str().to_string()),
        (
            "Chunk sizes",
            format!(
                "min {} / avg {} / max {}",
                output::setting_bytes(g.chunk_min.into()),
                output::setting_bytes(g.chunk_avg.into()),
                output::setting_bytes(g.chunk_max.into())
            ),
        ),
        ("Containers", g.containers.to_string()),
        ("Quota", g.quota_bytes.map_or("none".into(), output::setting_bytes)),
        ("Encryption", encryption(g)),
        ("Created", format!("{} UTC", output::time(g.created))),
    ])
}

/// The encryption line of a storage group.
fn encryption(g: &GroupInfo) -> String {
    let keys = g.data_keys.unwrap_or(0);
    let keys = format!("{keys} data key{}", if keys == 1 { "" } else { "s" });
    match (g.encryption, g.key_rotation_days) {
        (None, _) => "off".into(),
        (Some(EncryptionMode::Internal), Some(days)) => format!("internal (new key every {days} days; {keys})"),
        (Some(mode), _) => format!("{} ({keys})", mode.as_str()),
    }
}

/// The human rendering of a storage group list.
fn table(groups: &[GroupInfo]) -> String {
    let mut t = Table::new(&[
        ("NAME", Align::Left),
        ("COMPRESSION", Align::Left),
        ("CHUNK MIN/AVG/MAX", Align::Left),
        ("CONTAINERS", Align::Right),
        ("CREATED (UTC)", Align::Left),
    ]);
    for g in groups {
        t.row(vec![
            g.name.clone(),
            g.compression.as_str().to_string(),
            format!(
                "{}/{}/{}",
                output::setting_bytes(g.chunk_min.into()),
                output::setting_bytes(g.chunk_avg.into()),
                output::setting_bytes(g.chunk_max.into())
            ),
            g.containers.to_string(),
            output::time(g.created),
        ]);
    }
    t.render()
}
