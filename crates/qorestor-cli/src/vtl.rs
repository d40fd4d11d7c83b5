//! `qorestor vtl add|list|show|delete|carts add|import|export|set-rw|load|unload`: the operator's view of a
//! virtual tape library (the library itself lives in [`qorestor_vtl`]). Run inside the daemon
//! (`Ctx::live`), every command acts on the libraries the frontends serve, through the live
//! registry ([`qorestor_vtl::Libraries`]): a library added is served at once, one deleted has
//! its sessions ended first.

use std::sync::Arc;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use qorestor_core::{ContainerKind, Engine, DEFAULT_GROUP};
use qorestor_vtl::library::CartridgeInfo;
use qorestor_vtl::model::{MAX_CAPACITY, MIN_OPERATOR_CAPACITY};
use qorestor_vtl::{Libraries, LibraryConfig, LibraryInfo, Vtl};
use serde::Serialize;

use crate::context::Ctx;
use crate::output::{self, Align, Table};
use crate::serve::Services;
use crate::values::{parse_object_name, parse_size};

/// `vtl` subcommands.
#[derive(Debug, Subcommand)]
#[command(
    about = "Manage virtual tape libraries",
    long_about = "Manage virtual tape libraries.\n\n\
        A vtl container is a tape library (a StorageTek L700 changer with IBM ULT3580 drives) \
        whose cartridges are stored deduplicated. These commands act as an operator at the \
        library's panel; backup applications drive the library over iSCSI or NDMP. Drive N is \
        the drive with the N-th lowest element address (drive 0 is LUN 1; LUN 0 is the changer).",
    after_help = "Examples:\n  \
        qorestor vtl add lib1 --storage-group DefaultGroup --slots 40 --drives 2 --tapes 10 --tape-size 100GB\n  \
        qorestor vtl list\n  \
        qorestor --json vtl show lib1\n  \
        qorestor vtl carts add lib1 --count 5\n  \
        qorestor vtl load lib1 --barcode QS0001L5 --drive 0\n  \
        qorestor vtl unload lib1 --drive 0\n  \
        qorestor vtl set-rw lib1 --barcode QS0002L5 off\n  \
        qorestor vtl export lib1 --barcode QS0003L5\n  \
        qorestor vtl import lib1 --barcode QS0003L5"
)]
pub enum VtlCommand {
    /// Create a vtl container with its library.
    #[command(long_about = ADD_ABOUT)]
    Add(AddArgs),
    /// List the libraries.
    #[command(long_about = "List the libraries (vtl containers).\n\nJSON: an array of library \
                      objects, as vtl show prints them, by name.")]
    List,
    /// Show a library: drives, slots, cartridges.
    #[command(long_about = SHOW_ABOUT)]
    Show {
        /// The library (vtl container).
        name: String,
    },
    /// Delete a library with its cartridges and their data.
    #[command(long_about = "Delete a library: its vtl container, its cartridges and the data on \
                      them (space returns when the cleaner runs). Refused, naming them, when a \
                      cartridge holds data, unless --force.\n\nJSON: {\"name\", \"deleted\": true}\n\n\
                      Example:\n  qorestor vtl delete lib1 --force")]
    Delete {
        /// The library (vtl container).
        name: String,
        /// Delete it even though cartridges hold data.
        #[arg(long)]
        force: bool,
    },
    /// Manage cartridges.
    #[command(subcommand)]
    Carts(CartsCommand),
    /// Put an exported cartridge into a free import/export slot.
    #[command(long_about = "Put an exported cartridge into the lowest free import/export (mail) \
                      slot, as an operator would; the backup application then moves it into the \
                      library.\n\nJSON: the cartridge object (as in vtl show) with \"library\".")]
    Import(BarcodeArgs),
    /// Take a cartridge out of the library (into the vault).
    #[command(long_about = "Take a cartridge out of the library, from a storage or import/export \
                      slot, into the vault (outside the library; vtl import brings it back). A \
                      cartridge in a drive must be unloaded first.\n\nJSON: the cartridge \
                      object (location kind \"vault\") with \"library\".")]
    Export(BarcodeArgs),
    /// Allow (on) or refuse (off) writing to a cartridge.
    #[command(
        name = "set-rw",
        long_about = "Allow (on) or refuse (off, write protected) writing \
                      to a cartridge.\n\nJSON: the cartridge object with \"library\".\n\n\
                      Example:\n  qorestor vtl set-rw lib1 --barcode QS0002L5 off"
    )]
    SetRw(SetRwArgs),
    /// Load a cartridge into a drive.
    #[command(long_about = "Load a cartridge from a slot into a drive, as an operator at the \
                      library's panel would. A loaded drive stays loaded across restarts.\n\n\
                      JSON: the cartridge object with \"library\".")]
    Load(LoadArgs),
    /// Unload a drive (the cartridge returns to the slot it came from).
    #[command(long_about = "Unload a drive: its buffered writes are made durable and the \
                      cartridge returns to the slot it came from (or the lowest free slot).\n\n\
                      JSON: the cartridge object with \"library\".")]
    Unload(UnloadArgs),
}

/// `vtl carts` subcommands.
#[derive(Debug, Subcommand)]
pub enum CartsCommand {
    /// Add cartridges in the lowest free storage slots.
    #[command(long_about = "Add cartridges in the lowest free storage slots; barcodes are \
                      generated (QS0001L5...; the suffix is the LTO generation that holds the \
                      tape size).\n\nJSON: {\"library\": NAME, \"added\": [cartridge objects]}")]
    Add(CartsAddArgs),
}

const ADD_ABOUT: &str = "\
Create a container of type vtl with its tape library: a changer, storage slots, drives and \
import/export slots; --tapes cartridges are created in the lowest storage slots, drives start \
empty. Tape sizes: 10GB to 18TB (LTO-9). A name is refused when another library's gives the \
same iSCSI target name (names that differ only in case or in _ versus -).

JSON: the library object, as vtl show prints it.

Example:
  qorestor vtl add lib1 --storage-group DefaultGroup --slots 40 --drives 2 --tapes 10 --tape-size 100GB";

const SHOW_ABOUT: &str = "\
Show a library.

JSON: {\"name\", \"storage_group\", \"library\": {\"vendor\", \"product\", \"serial\"}, \
\"drives\": [{\"index\", \"element_address\", \"lun\", \"serial\", \"barcode\" | null}], \
\"slots\": [{\"element_address\", \"barcode\" | null}], \"ie_slots\": [...], \"cartridges\": \
[{\"barcode\", \"location\": {\"kind\": \"slot\"|\"drive\"|\"ie\"|\"vault\", \"element_address\"}, \
\"capacity_bytes\", \"used_bytes\", \"write_protected\", \"worm\"}]}";

fn parse_tape_size(s: &str) -> Result<u64, String> {
    let n = parse_size(s)?;
    if !(MIN_OPERATOR_CAPACITY..=MAX_CAPACITY).contains(&n) {
        return Err(format!("tape size {s:?} is out of range (10GB to 18TB)"));
    }
    Ok(n)
}

/// Arguments of `vtl add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The new library's (container's) name: 1 to 64 of A-Z a-z 0-9 . _ -
    #[arg(value_parser = parse_object_name)]
    pub name: String,
    /// Its storage group.
    #[arg(long, value_name = "SG", default_value = DEFAULT_GROUP)]
    pub storage_group: String,
    /// Storage slots (1 to 10000).
    #[arg(long, value_name = "N", default_value_t = LibraryConfig::default().slots)]
    pub slots: u16,
    /// Tape drives (1 to 64).
    #[arg(long, value_name = "M", default_value_t = LibraryConfig::default().drives)]
    pub drives: u16,
    /// Import/export slots (0 to 240).
    #[arg(long, value_name = "K", default_value_t = LibraryConfig::default().ie_slots)]
    pub ie_slots: u16,
    /// Cartridges to create.
    #[arg(long, value_name = "T", default_value_t = LibraryConfig::default().tapes)]
    pub tapes: u16,
    /// Capacity of each cartridge.
    #[arg(long, value_name = "SIZE", default_value = "100GB", value_parser = parse_tape_size)]
    pub tape_size: u64,
}

/// Arguments of `vtl carts add`.
#[derive(Debug, Args)]
pub struct CartsAddArgs {
    /// The library.
    pub name: String,
    /// How many cartridges.
    #[arg(long, value_name = "K")]
    pub count: u16,
    /// Capacity of each cartridge.
    #[arg(long, value_name = "SIZE", default_value = "100GB", value_parser = parse_tape_size)]
    pub tape_size: u64,
}

/// A library and a barcode.
#[derive(Debug, Args)]
pub struct BarcodeArgs {
    /// The library.
    pub name: String,
    /// The cartridge's barcode.
    #[arg(long, value_name = "BC")]
    pub barcode: String,
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// Writable.
    On,
    /// Write protected.
    Off,
}

/// Arguments of `vtl set-rw`.
#[derive(Debug, Args)]
pub struct SetRwArgs {
    /// The library.
    pub name: String,
    /// The cartridge's barcode.
    #[arg(long, value_name = "BC")]
    pub barcode: String,
    /// on: writable; off: write protected.
    #[arg(value_enum)]
    pub mode: OnOff,
}

/// Arguments of `vtl load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The library.
    pub name: String,
    /// The cartridge's barcode.
    #[arg(long, value_name = "BC")]
    pub barcode: String,
    /// Drive index (0 = lowest element address).
    #[arg(long, value_name = "N")]
    pub drive: u16,
}

/// Arguments of `vtl unload`.
#[derive(Debug, Args)]
pub struct UnloadArgs {
    /// The library.
    pub name: String,
    /// Drive index (0 = lowest element address).
    #[arg(long, value_name = "N")]
    pub drive: u16,
}

/// A cartridge with its library, as the single-cartridge commands print it.
#[derive(Debug, Serialize)]
struct CartReport {
    library: String,
    #[serde(flatten)]
    cartridge: CartridgeInfo,
}

/// The result of `carts add`.
#[derive(Debug, Serialize)]
struct Added {
    library: String,
    added: Vec<CartridgeInfo>,
}

fn cartridge(vtl: &Vtl, barcode: &str) -> Result<CartReport> {
    let info = vtl.info()?;
    let c = info
        .cartridges
        .into_iter()
        .find(|c| c.barcode == barcode)
        .ok_or_else(|| anyhow::anyhow!("cartridge {barcode:?} does not exist"))?;
    Ok(CartReport { library: vtl.name().to_string(), cartridge: c })
}

fn where_is(c: &CartridgeInfo) -> String {
    match c.location.element_address {
        Some(a) => format!("{} {a}", c.location.kind),
        None => c.location.kind.to_string(),
    }
}

/// Where a command finds the libraries (`vtl`, `iscsi`, `ndmp`): inside the daemon, its live
/// registry (the one copy of each library the frontends serve: a second copy would keep its
/// own drive and slot state and corrupt the tapes); on its own, the data directory it opens.
pub(crate) enum Place {
    /// The daemon's engine and registry.
    Live(Services),
    /// The engine this command opened.
    Own(Engine),
}

impl Place {
    /// The daemon's registry, or the data directory opened as `holder`.
    pub(crate) fn open(ctx: &Ctx, holder: &str) -> Result<Place> {
        Ok(match &ctx.live {
            Some(s) => {
                // A passphrase the client gives is checked as for every command.
                ctx.open(holder)?;
                Place::Live(s.clone())
            }
            None => Place::Own(ctx.open(holder)?),
        })
    }

    /// The engine.
    pub(crate) fn engine(&self) -> &Engine {
        match self {
            Place::Live(s) => &s.engine,
            Place::Own(e) => e,
        }
    }

    /// The library `name`: the served one (served from now on if it was not yet), or one
    /// opened for this command.
    fn library(&self, name: &str) -> Result<Arc<Vtl>> {
        Ok(match self {
            Place::Live(s) => s.libraries.open(name)?,
            Place::Own(e) => Arc::new(Vtl::open(e, name)?),
        })
    }

    /// Every library: the registry, or each opened for this command.
    pub(crate) fn libraries(&self) -> Result<Arc<Libraries>> {
        Ok(match self {
            Place::Live(s) => s.libraries.clone(),
            Place::Own(e) => Arc::new(Libraries::open_all(e)?),
        })
    }
}

/// Refuses a new library (`vtl add`, `container add --type vtl`) whose iSCSI target name an
/// existing library has: it would not be served, or (first by name) take over the served
/// target of the other, whose initiators would then write to the wrong library.
pub(crate) fn check_iscsi_name(engine: &Engine, name: &str) -> Result<()> {
    let containers = engine.containers(None)?;
    let libraries = containers.iter().filter(|c| c.kind == ContainerKind::Vtl).map(|c| c.name.as_str());
    let system = engine.system_name()?;
    if let Some(other) = qorestor_iscsi::config::name_taken(&system, name, libraries) {
        anyhow::bail!(
            "library name {name:?} gives the iSCSI target name {}, which library {other:?} already has \
             (names that differ only in case or in _ versus - give the same one): choose another name",
            qorestor_iscsi::target_name(&system, name)
        );
    }
    Ok(())
}

/// Runs a `vtl` subcommand.
pub fn run(ctx: &Ctx, cmd: VtlCommand) -> Result<()> {
    let place = Place::open(ctx, "qorestor vtl")?;
    match cmd {
        VtlCommand::Add(a) => {
            let config = LibraryConfig {
                slots: a.slots,
                drives: a.drives,
                ie_slots: a.ie_slots,
                tapes: a.tapes,
                tape_size: a.tape_size,
            };
            check_iscsi_name(place.engine(), &a.name)?;
            let vtl = match &place {
                Place::Live(s) => s.libraries.create(&a.name, &a.storage_group, &config)?,
                Place::Own(e) => Arc::new(Vtl::create(e, &a.name, &a.storage_group, &config)?),
            };
            let info = vtl.info()?;
            ctx.emit(&info, || format!("created library {}\n{}", info.name, show(&info)))
        }
        VtlCommand::List => {
            let mut libraries = Vec::new();
            for c in place.engine().containers(None)?.into_iter().filter(|c| c.kind == ContainerKind::Vtl) {
                libraries.push(place.library(&c.name)?.info()?);
            }
            ctx.emit(&libraries, || list(&libraries))
        }
        VtlCommand::Show { name } => {
            let info = place.library(&name)?.info()?;
            ctx.emit(&info, || show(&info))
        }
        VtlCommand::Delete { name, force } => {
            match &place {
                Place::Live(s) => s.libraries.delete(&name, force)?,
                Place::Own(e) => Vtl::delete(e, &name, force)?,
            }
            let report = serde_json::json!({ "name": name, "deleted": true });
            ctx.emit(&report, || format!("deleted library {name}; its space returns when the cleaner runs"))
        }
        VtlCommand::Carts(CartsCommand::Add(a)) => {
            let vtl = place.library(&a.name)?;
            let barcodes = vtl.add_cartridges(a.count, a.tape_size)?;
            let info = vtl.info()?;
            let added: Vec<CartridgeInfo> =
                info.cartridges.into_iter().filter(|c| barcodes.contains(&c.barcode)).collect();
            let report = Added { library: a.name.clone(), added };
            ctx.emit(&report, || format!("added {} cartridges to {}: {}", barcodes.len(), a.name, barcodes.join(" ")))
        }
        VtlCommand::Import(a) => {
            let vtl = place.library(&a.name)?;
            vtl.import(&a.barcode)?;
            let r = cartridge(&vtl, &a.barcode)?;
            ctx.emit(&r, || format!("imported {} into {}", a.barcode, where_is(&r.cartridge)))
        }
        VtlCommand::Export(a) => {
            let vtl = place.library(&a.name)?;
            vtl.export(&a.barcode)?;
            let r = cartridge(&vtl, &a.barcode)?;
            ctx.emit(&r, || format!("exported {} to the vault", a.barcode))
        }
        VtlCommand::SetRw(a) => {
            let vtl = place.library(&a.name)?;
            vtl.set_write_protect(&a.barcode, a.mode == OnOff::Off)?;
            let r = cartridge(&vtl, &a.barcode)?;
            ctx.emit(&r, || match a.mode {
                OnOff::On => format!("{} is writable", a.barcode),
                OnOff::Off => format!("{} is write protected", a.barcode),
            })
        }
        VtlCommand::Load(a) => {
            let vtl = place.library(&a.name)?;
            vtl.load(&a.barcode, a.drive)?;
            let r = cartridge(&vtl, &a.barcode)?;
            ctx.emit(&r, || format!("loaded {} into drive {} ({})", a.barcode, a.drive, where_is(&r.cartridge)))
        }
        VtlCommand::Unload(a) => {
            let vtl = place.library(&a.name)?;
            let barcode = vtl.unload(a.drive)?;
            let r = cartridge(&vtl, &barcode)?;
            ctx.emit(&r, || format!("unloaded {barcode} from drive {} to {}", a.drive, where_is(&r.cartridge)))
        }
    }
}

/// The human rendering of the library list.
fn list(libraries: &[LibraryInfo]) -> String {
    if libraries.is_empty() {
        return "no libraries (create one with qorestor vtl add)".into();
    }
    let mut t = Table::new(&[
        ("NAME", Align::Left),
        ("STORAGE GROUP", Align::Left),
        ("DRIVES", Align::Right),
        ("SLOTS", Align::Right),
        ("CARTRIDGES", Align::Right),
        ("USED", Align::Right),
    ]);
    for l in libraries {
        t.row(vec![
            l.name.clone(),
            l.storage_group.clone(),
            l.drives.len().to_string(),
            l.slots.len().to_string(),
            l.cartridges.len().to_string(),
            output::bytes(l.cartridges.iter().map(|c| c.used_bytes).sum()),
        ]);
    }
    t.render()
}

/// The human rendering of a library.
fn show(info: &LibraryInfo) -> String {
    let mut out = output::fields(&[
        ("Name", info.name.clone()),
        ("Storage group", info.storage_group.clone()),
        ("Changer", format!("{} {} (serial {})", info.library.vendor, info.library.product, info.library.serial)),
        ("Slots", format!("{} storage, {} import/export", info.slots.len(), info.ie_slots.len())),
    ]);
    // One blank line between the sections (each ends with its own newline).
    out.push('\n');
    let mut d = Table::new(&[
        ("DRIVE", Align::Right),
        ("ADDRESS", Align::Right),
        ("LUN", Align::Right),
        ("SERIAL", Align::Left),
        ("CARTRIDGE", Align::Left),
    ]);
    for x in &info.drives {
        d.row(vec![
            x.index.to_string(),
            x.element_address.to_string(),
            x.lun.to_string(),
            x.serial.clone(),
            x.barcode.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    out.push_str(&d.render());
    out.push('\n');
    let mut c = Table::new(&[
        ("BARCODE", Align::Left),
        ("LOCATION", Align::Left),
        ("CAPACITY", Align::Right),
        ("USED", Align::Right),
        ("FLAGS", Align::Left),
    ]);
    for x in &info.cartridges {
        let mut flags = Vec::new();
        if x.write_protected {
            flags.push("write-protected");
        }
        if x.worm {
            flags.push("worm");
        }
        c.row(vec![
            x.barcode.clone(),
            where_is(x),
            output::setting_bytes(x.capacity_bytes),
            output::bytes(x.used_bytes),
            flags.join(","),
        ]);
    }
    out.push_str(&c.render());
    out
}
