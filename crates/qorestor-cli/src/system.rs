//! `qorestor system`: system-wide settings (the system name used in iSCSI target names, the
//! space reserve).

use anyhow::Result;
use clap::Subcommand;
use qorestor_core::SpaceInfo;
use serde::Serialize;

use crate::context::Ctx;
use crate::output;
use crate::values::{parse_reserve, Reserve};

/// Long help of `system set-reserve`.
pub const SET_RESERVE_ABOUT: &str = "\
Set the space reserve: space on the data directory's filesystem kept free for reads, restores,
rm, the cleaner, verify and the store's own metadata. New data (put, tape writes, replication
into this system) is refused, exit 1, once the filesystem's available space would fall below it.

SIZE is taken as given (0: no reserve; the filesystem itself then says when it is full), or
`default`: 1% of the filesystem, at least 8 MiB and at most 1 GiB.

Examples:
  qorestor system set-reserve 2GiB
  qorestor system set-reserve default";

/// `system` subcommands.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show the system name, free space and space reserve. JSON: {"name", "free_bytes",
    /// "filesystem_bytes", "reserve_bytes", "reserve_is_default"}
    Show,
    /// Set the system name (used in iSCSI target names; default: the host name).
    #[command(name = "set-name")]
    SetName {
        /// 1 to 63 letters, digits, '-' and '.', starting with a letter or digit.
        name: String,
    },
    /// Set the space reserve new data leaves free (default: 1% of the filesystem, 8 MiB to 1 GiB).
    #[command(name = "set-reserve", long_about = SET_RESERVE_ABOUT)]
    SetReserve {
        /// A SIZE (64MiB, 2GB, 0), or `default`.
        #[arg(value_parser = parse_reserve)]
        size: Reserve,
    },
}

#[derive(Serialize)]
struct SystemReport {
    name: String,
    #[serde(flatten)]
    space: SpaceInfo,
}

/// Runs a `system` subcommand.
pub fn run(ctx: &Ctx, cmd: SystemCommand) -> Result<()> {
    let engine = ctx.open("qorestor system")?;
    match &cmd {
        SystemCommand::SetName { name } => engine.set_system_name(name)?,
        SystemCommand::SetReserve { size } => engine.set_space_reserve(size.0)?,
        SystemCommand::Show => {}
    }
    let report = SystemReport { name: engine.system_name()?, space: engine.space()? };
    ctx.emit(&report, || render(&report))
}

/// The human rendering of `system show`.
fn render(r: &SystemReport) -> String {
    let s = &r.space;
    let reserve = if s.reserve_is_default {
        format!("{} (default: 1% of the filesystem, 8 MiB to 1 GiB)", output::setting_bytes(s.reserve_bytes))
    } else {
        format!("{} (set)", output::setting_bytes(s.reserve_bytes))
    };
    output::fields(&[
        ("System name", r.name.clone()),
        ("Free", format!("{} of {}", output::bytes(s.free_bytes), output::bytes(s.filesystem_bytes))),
        ("Space reserve", reserve),
    ])
}
