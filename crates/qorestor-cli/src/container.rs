//! `qorestor container add|list|show|delete`.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use qorestor_core::{ContainerInfo, ContainerKind, ContainerUpdate, DEFAULT_GROUP};
use serde::Serialize;

use crate::context::{Ctx, UsageError};
use crate::output::{self, Align, Table};
use crate::values::{parse_days, parse_object_name, parse_quota, OnOff, Quota};
use crate::vtl::Place;

/// `container` subcommands.
#[derive(Debug, Subcommand)]
#[command(
    about = "Manage containers",
    long_about = "Manage containers.\n\n\
        A container is a typed namespace of streams in a storage group (its dedup domain). \
        Container names are unique system-wide.",
    after_help = "Examples:\n  \
        qorestor container add nightly --type object\n  \
        qorestor container add tapes --storage-group archive --type vtl\n  \
        qorestor container list --storage-group archive\n  \
        qorestor container delete nightly --force"
)]
pub enum ContainerCommand {
    /// Create a container.
    #[command(long_about = ADD_ABOUT)]
    Add(AddArgs),
    /// Change a container's quota or recycle bin.
    #[command(long_about = UPDATE_ABOUT)]
    Update(UpdateArgs),
    /// List containers.
    #[command(long_about = "List containers (of one storage group with --storage-group).\n\n\
                      JSON: an array of container objects (name, type, storage_group, streams, \
                      logical_bytes, created), by name.")]
    List {
        /// Only the containers of this storage group.
        #[arg(long, value_name = "SG")]
        storage_group: Option<String>,
    },
    /// Show one container.
    #[command(long_about = "Show one container.\n\nJSON: the container object (name, type, \
                      storage_group, streams, logical_bytes, created).\n\n\
                      Example:\n  qorestor container show nightly")]
    Show {
        /// The container's name.
        name: String,
    },
    /// Delete a container.
    #[command(long_about = "Delete a container. A container that holds streams is refused unless \
                      --force is given (its streams are then deleted; their space returns when \
                      the cleaner runs).\n\n\
                      JSON: {\"container\": NAME, \"deleted\": true, \"streams_deleted\": N}\n\n\
                      Example:\n  qorestor container delete nightly --force")]
    Delete {
        /// The container's name.
        name: String,
        /// Delete the container's streams too.
        #[arg(long)]
        force: bool,
    },
}

/// Long help of `container add`.
const ADD_ABOUT: &str = "\
Create a container in a storage group (DefaultGroup unless --storage-group is given).

Types: object (streams written with put or an object API), nas, ost, vtl, rda.

JSON: the new container object (name, type, storage_group, streams, logical_bytes, created).

Examples:
  qorestor container add nightly --type object
  qorestor container add tapes --storage-group archive --type vtl";

/// Long help of `container update`.
const UPDATE_ABOUT: &str = "\
Change a container's quota or recycle bin.

--quota SIZE caps the logical bytes of the container's live streams: a write that would pass it
fails (naming the container) and leaves nothing visible; --quota none removes it.
--recycle-bin on keeps deleted streams for --retention DAYS (default 7) before the cleaner may
reclaim them; list them with `qorestor recycle-bin ls C`, bring one back with `qorestor
recycle-bin restore C/STREAM`. --recycle-bin off: deletions are final again (streams already
in the bin stay until they expire).

JSON: the updated container object.

Examples:
  qorestor container update nightly --quota 500GiB
  qorestor container update nightly --recycle-bin on --retention 14d";

/// Container type on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// Objects written through the API or the CLI.
    Object,
    /// Files of a NAS share.
    Nas,
    /// An OST logical storage unit.
    Ost,
    /// A virtual tape library.
    Vtl,
    /// Rapid data access (RDA) images.
    Rda,
}

impl From<KindArg> for ContainerKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Object => ContainerKind::Object,
            KindArg::Nas => ContainerKind::Nas,
            KindArg::Ost => ContainerKind::Ost,
            KindArg::Vtl => ContainerKind::Vtl,
            KindArg::Rda => ContainerKind::Rda,
        }
    }
}

/// Arguments of `container add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The new container's name: 1 to 64 of A-Z a-z 0-9 . _ -
    #[arg(value_parser = parse_object_name)]
    pub name: String,
    /// Its storage group.
    #[arg(long, value_name = "SG", default_value = DEFAULT_GROUP)]
    pub storage_group: String,
    /// Its type.
    #[arg(long = "type", value_name = "TYPE", value_enum)]
    pub kind: KindArg,
    /// Settings (quota, recycle bin).
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// Quota and recycle bin options of `container add` and `container update`.
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// Quota on the logical bytes of the container's live streams (none removes it).
    #[arg(long, value_name = "SIZE|none", value_parser = parse_quota, allow_hyphen_values = true)]
    pub quota: Option<Quota>,
    /// Keep deleted streams in a recycle bin (on) or delete them at once (off, the default).
    #[arg(long, value_enum, value_name = "on|off")]
    pub recycle_bin: Option<OnOff>,
    /// How long the recycle bin keeps a deleted stream [default: 7d].
    #[arg(long, value_name = "DAYS", value_parser = parse_days, requires = "recycle_bin")]
    pub retention: Option<u64>,
}

impl SettingsArgs {
    fn update(&self) -> Result<Option<ContainerUpdate>> {
        let recycle = match (self.recycle_bin, self.retention) {
            (Some(OnOff::On), days) => Some(Some(days.unwrap_or(7))),
            (Some(OnOff::Off), None) => Some(None),
            (Some(OnOff::Off), Some(_)) => {
                return Err(UsageError("--retention goes with --recycle-bin on, not off".into()).into())
            }
            (None, _) => None,
        };
        if self.quota.is_none() && recycle.is_none() {
            return Ok(None);
        }
        Ok(Some(ContainerUpdate { quota: self.quota.map(|q| q.0), recycle_retention_days: recycle }))
    }
}

/// Arguments of `container update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The container's name.
    pub name: String,
    /// What to change.
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// The JSON result of a deletion.
#[derive(Debug, Serialize)]
struct Deleted<'a> {
    container: &'a str,
    deleted: bool,
    streams_deleted: u64,
}

/// Runs a `container` subcommand.
pub fn run(ctx: &Ctx, cmd: ContainerCommand) -> Result<()> {
    match cmd {
        ContainerCommand::Add(args) => {
            let update = args.settings.update()?;
            let place = Place::open(ctx, "qorestor container add")?;
            let engine = place.engine();
            if args.kind == KindArg::Vtl {
                crate::vtl::check_iscsi_name(engine, &args.name)?;
            }
            let mut info = engine.add_container(&args.name, &args.storage_group, args.kind.into())?;
            if let Some(u) = update {
                info = engine.update_container(&args.name, &u)?;
            }
            if let (Place::Live(s), KindArg::Vtl) = (&place, args.kind) {
                // Served from now on, with the default geometry (as `vtl show` would give it).
                s.libraries.open(&args.name)?;
            }
            ctx.emit(&info, || format!("created container {}\n{}", info.name, details(&info)))
        }
        ContainerCommand::Update(args) => {
            let Some(update) = args.settings.update()? else {
                return Err(
                    UsageError("container update: nothing to change (give --quota or --recycle-bin)".into()).into()
                );
            };
            let engine = ctx.open("qorestor container update")?;
            let info = engine.update_container(&args.name, &update)?;
            ctx.emit(&info, || format!("updated container {}\n{}", info.name, details(&info)))
        }
        ContainerCommand::List { storage_group } => {
            let engine = ctx.open("qorestor container list")?;
            let list = engine.containers(storage_group.as_deref())?;
            ctx.emit(&list, || table(&list))
        }
        ContainerCommand::Show { name } => {
            let engine = ctx.open("qorestor container show")?;
            let info = engine.container(&name)?;
            ctx.emit(&info, || details(&info))
        }
        ContainerCommand::Delete { name, force } => {
            let engine = ctx.open("qorestor container delete")?;
            let info = engine.container(&name)?;
            let streams = info.streams;
            // (A library's container is refused by the engine, naming `vtl delete`.)
            if streams > 0 && !force && info.kind != ContainerKind::Vtl {
                anyhow::bail!(
                    "container {name} holds {}: delete them first, or give --force to delete them with it",
                    output::count(streams, "stream")
                );
            }
            engine.delete_container(&name, force)?;
            let report = Deleted { container: &name, deleted: true, streams_deleted: streams };
            ctx.emit(&report, || match streams {
                0 => format!("deleted container {name}"),
                n => format!("deleted container {name} and its {}", output::count(n, "stream")),
            })
        }
    }
}

/// The human rendering of one container.
fn details(c: &ContainerInfo) -> String {
    output::fields(&[
        ("Name", c.name.clone()),
        ("Type", c.kind.as_str().to_string()),
        ("Storage group", c.storage_group.clone()),
        ("Streams", c.streams.to_string()),
        ("Logical size", output::bytes(c.logical_bytes)),
        ("Quota", c.quota_bytes.map_or("none".into(), output::setting_bytes)),
        (
            "Recycle bin",
            match c.retention_days {
                Some(d) => format!("on, {d} days ({} streams in it)", c.recycled_streams),
                None if c.recycled_streams > 0 => format!("off ({} streams still in it)", c.recycled_streams),
                None => "off".into(),
            },
        ),
        ("Created", format!("{} UTC", output::time(c.created))),
    ])
}

/// The human rendering of a container list.
pub(crate) fn table(list: &[ContainerInfo]) -> String {
    let mut t = Table::new(&[
        ("NAME", Align::Left),
        ("TYPE", Align::Left),
        ("STORAGE GROUP", Align::Left),
        ("STREAMS", Align::Right),
        ("LOGICAL", Align::Right),
        ("CREATED (UTC)", Align::Left),
    ]);
    for c in list {
        t.row(vec![
            c.name.clone(),
            c.kind.as_str().to_string(),
            c.storage_group.clone(),
            c.streams.to_string(),
            output::bytes(c.logical_bytes),
            output::time(c.created),
        ]);
    }
    t.render()
}
