//! `qorestor init`.

use anyhow::Result;
use qorestor_core::{Engine, ErrorKind};
use serde::Serialize;

use crate::context::Ctx;

/// Long help of `init`.
pub const LONG_ABOUT: &str = "\
Initialise the data directory: create it (and its parents) with the default storage group.

Idempotent: on a directory that is already initialised it only checks that it can be opened.
Only init creates a data directory: other commands refuse a missing or never-initialised one
(so a typo in --data or an unmounted mount point is reported, not filled).

JSON: {\"data_dir\": DIR, \"created\": true|false}

Example:
  qorestor --data /srv/qorestor init";

/// The result of `init`.
#[derive(Debug, Serialize)]
struct InitReport {
    data_dir: String,
    created: bool,
}

/// Runs `init`.
pub fn run(ctx: &Ctx) -> Result<()> {
    const HOLDER: &str = "qorestor init";
    let created = match ctx.live {
        // Inside the daemon: the directory is initialised and open.
        Some(_) => false,
        None => created(ctx, HOLDER)?,
    };
    let report = InitReport { data_dir: ctx.data().display().to_string(), created };
    ctx.emit(&report, || {
        if created {
            format!("initialised data directory {}", report.data_dir)
        } else {
            format!("data directory {} is already initialised", report.data_dir)
        }
    })
}

/// Creates the data directory; false if it was initialised already.
fn created(ctx: &Ctx, holder: &str) -> Result<bool> {
    Ok(match ctx.hold(|| Engine::create_as(ctx.data(), holder)) {
        Ok(_) => true,
        Err(e) if e.downcast_ref::<qorestor_core::Error>().is_some_and(|e| e.kind() == ErrorKind::AlreadyExists) => {
            ctx.hold(|| Engine::open_as(ctx.data(), holder))?;
            false
        }
        Err(e) => return Err(e),
    })
}
