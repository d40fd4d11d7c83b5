//! `qorestor ndmp`: the NDMP user and the device names a DMA uses (`show`), and the
//! credentials (`update`).

use anyhow::Result;
use clap::Subcommand;
use qorestor_ndmp::devices::{self, Device};
use qorestor_ndmp::{config, Credentials};
use serde::Serialize;

use crate::context::Ctx;
use crate::output;
use crate::vtl::Place;

/// `ndmp` subcommands.
#[derive(Debug, Subcommand)]
pub enum NdmpCommand {
    /// Show the NDMP user, the device names (tape drives and changers) and the storage slots.
    /// JSON: {"user", "devices": [{"name", "kind", "library", "element_address"}], "slots":
    /// [{"library", "element_address", "barcode"}]}
    Show,
    /// Set the NDMP user and password (the password is read from stdin, one line). Until a
    /// user is set, the NDMP service refuses every authentication.
    Update {
        /// The user name.
        #[arg(long)]
        user: String,
        /// Read the password from stdin (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Serialize)]
struct Slot {
    library: String,
    element_address: u16,
    barcode: Option<String>,
}

#[derive(Serialize)]
struct NdmpReport {
    user: Option<String>,
    devices: Vec<Device>,
    slots: Vec<Slot>,
}

/// Runs an `ndmp` subcommand.
pub fn run(ctx: &Ctx, cmd: NdmpCommand) -> Result<()> {
    let place = Place::open(ctx, "qorestor ndmp")?;
    let engine = place.engine();
    if let NdmpCommand::Update { user, .. } = cmd {
        let password = crate::secret::read_stdin_text(&ctx.io, "NDMP password")?;
        config::save(engine, &Credentials { user, password })?;
    }
    let libraries = place.libraries()?;
    let mut slots = Vec::new();
    for l in libraries.list().iter() {
        let info = l.info()?;
        slots.extend(info.slots.into_iter().map(|s| Slot {
            library: info.name.clone(),
            element_address: s.element_address,
            barcode: s.barcode,
        }));
    }
    let report = NdmpReport { user: config::load(engine)?.map(|c| c.user), devices: devices::all(&libraries)?, slots };
    ctx.emit(&report, || {
        let mut t = output::Table::new(&[
            ("DEVICE", output::Align::Left),
            ("KIND", output::Align::Left),
            ("LIBRARY", output::Align::Left),
            ("ELEMENT", output::Align::Right),
        ]);
        for d in &report.devices {
            let kind = if d.kind == devices::Kind::Tape { "tape" } else { "changer" };
            let addr = d.element_address.map(|a| a.to_string()).unwrap_or_default();
            t.row(vec![d.name.clone(), kind.into(), d.library.clone(), addr]);
        }
        format!("user: {}\n{}", report.user.as_deref().unwrap_or("(none: authentication refused)"), t.render())
    })
}
