//! `qorestor container add|list|show|delete`.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use qorestor_core::{ContainerInfo, ContainerKind, DEFAULT_GROUP};
use serde::Serialize;

use crate::context::Ctx;
use crate::output::{self, Align, Table};
use crate::values::parse_object_name;

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
            let engine = ctx.open("qorestor container add")?;
            let info = engine.add_container(&args.name, &args.storage_group, args.kind.into())?;
            ctx.emit(&info, || format!("created container {}\n{}", info.name, details(&info)))
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
            let streams = engine.container(&name)?.streams;
            engine.delete_container(&name, force)?;
            let report = Deleted { container: &name, deleted: true, streams_deleted: streams };
            ctx.emit(&report, || match streams {
                0 => format!("deleted container {name}"),
                n => format!("deleted container {name} and its {n} streams"),
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
        ("Created", format!("{} UTC", output::time(c.created))),
    ])
}

/// The human rendering of a container list.
fn table(list: &[ContainerInfo]) -> String {
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
