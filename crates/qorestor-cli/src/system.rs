//! `qorestor system`: system-wide settings (the system name used in iSCSI target names).

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;

use crate::context::Ctx;

/// `system` subcommands.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show the system name. JSON: {"name": NAME}
    Show,
    /// Set the system name (used in iSCSI target names; default: the host name).
    #[command(name = "set-name")]
    SetName {
        /// 1 to 63 letters, digits, '-' and '.', starting with a letter or digit.
        name: String,
    },
}

#[derive(Serialize)]
struct SystemReport {
    name: String,
}

/// Runs a `system` subcommand.
pub fn run(ctx: &Ctx, cmd: SystemCommand) -> Result<()> {
    let engine = ctx.open("qorestor system")?;
    if let SystemCommand::SetName { name } = &cmd {
        engine.set_system_name(name)?;
    }
    let report = SystemReport { name: engine.system_name()? };
    ctx.emit(&report, || format!("system name: {}", report.name))
}
