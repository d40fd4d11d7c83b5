//! The target's persisted configuration and how a server's [`Portal`] is made from a data
//! directory: CHAP credentials in the engine setting [`chap::SETTING_KEY`], and one target per
//! virtual tape library named by [`target_name`] from the system name.

use std::sync::Arc;

use qorestor_core::Engine;
use qorestor_vtl::Libraries;

use crate::chap::{self, ChapConfig};
use crate::error::Result;
use crate::portal::{target_name, Portal, Target};

/// The stored CHAP configuration, if any.
pub fn load_chap(engine: &Engine) -> Result<Option<ChapConfig>> {
    Ok(engine.setting::<ChapConfig>(chap::SETTING_KEY)?)
}

/// Validates and stores the CHAP configuration (durably).
pub fn save_chap(engine: &Engine, config: &ChapConfig) -> Result<()> {
    config.validate()?;
    Ok(engine.put_setting(chap::SETTING_KEY, config)?)
}

/// Removes the CHAP configuration: every session is open again. Returns whether one was set.
pub fn clear_chap(engine: &Engine) -> Result<bool> {
    Ok(engine.remove_setting(chap::SETTING_KEY)?)
}

/// One target per library, in library name order. Two containers whose names differ only in
/// case or in `_` versus `-` map to the same iSCSI name: only the first is served, and the
/// names of those left out are returned.
pub fn targets(system: &str, libraries: &Libraries) -> (Vec<Target>, Vec<String>) {
    let mut targets: Vec<Target> = Vec::new();
    let mut clashing = Vec::new();
    for lib in libraries.iter() {
        let name = target_name(system, lib.name());
        if targets.iter().any(|t| t.name == name) {
            clashing.push(lib.name().to_string());
            continue;
        }
        targets.push(Target { name, alias: lib.name().to_string(), units: lib.clone() });
    }
    (targets, clashing)
}

/// The portal a server runs: every library of `libraries`, the stored CHAP configuration.
/// Libraries whose iSCSI name clashes with an earlier one are reported on stderr.
pub fn portal(engine: &Engine, libraries: &Arc<Libraries>) -> Result<Portal> {
    let (targets, clashing) = targets(&engine.system_name()?, libraries);
    for c in clashing {
        eprintln!("iscsi: library {c} is not served: its iSCSI name is already used by another library");
    }
    Ok(Portal::new(targets, load_chap(engine)?))
}
