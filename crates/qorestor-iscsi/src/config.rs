//! The target's persisted configuration and how a server's [`Portal`] is made from a data
//! directory: CHAP credentials in the engine setting [`chap::SETTING_KEY`], and one target per
//! virtual tape library named by [`target_name`] from the system name. A server's portal is
//! [`Live`]: both are read at each discovery and login, from the stored setting and the live
//! registry of libraries, so `iscsi set-password`, `vtl add` and `vtl delete` take effect
//! without a restart.

use std::net::TcpListener;
use std::sync::Arc;

use qorestor_core::Engine;
use qorestor_vtl::Libraries;

use crate::chap::{self, ChapConfig};
use crate::error::Result;
use crate::portal::{target_name, Configuration, Portal, Target};
use crate::server::Server;

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
    for lib in libraries.list().iter() {
        let name = target_name(system, lib.name());
        if targets.iter().any(|t| t.name == name) {
            clashing.push(lib.name().to_string());
            continue;
        }
        targets.push(Target { name, alias: lib.name().to_string(), units: lib.clone() });
    }
    (targets, clashing)
}

/// The library among `libraries` that already has the iSCSI name a new library `name` would
/// get on system `system`, if any (a library of that very name is not counted: the name itself
/// is taken). A new library must not take it: by the rule of [`targets`] the first by name is
/// served, so a new one could take over a served target's name.
pub fn name_taken<'a>(system: &str, name: &str, libraries: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted = target_name(system, name);
    libraries.into_iter().find(|l| *l != name && target_name(system, l) == wanted)
}

/// What a server's portal serves: the libraries of the registry and the stored CHAP
/// configuration as they are at each discovery and login.
pub struct Live {
    engine: Engine,
    libraries: Arc<Libraries>,
}

impl Configuration for Live {
    fn targets(&self) -> Result<Vec<Target>> {
        Ok(targets(&self.engine.system_name()?, &self.libraries).0)
    }

    fn chap(&self) -> Result<Option<ChapConfig>> {
        load_chap(&self.engine)
    }
}

/// The portal a server runs: the libraries of the live registry `libraries` and the stored
/// CHAP configuration, both read at each discovery and login. Libraries whose iSCSI name
/// clashes with an earlier one are reported on stderr.
pub fn portal(engine: &Engine, libraries: &Arc<Libraries>) -> Result<Portal> {
    let (_, clashing) = targets(&engine.system_name()?, libraries);
    for c in clashing {
        eprintln!("iscsi: library {c} is not served: its iSCSI name is already used by another library");
    }
    Ok(Portal::with_config(Box::new(Live { engine: engine.clone(), libraries: libraries.clone() })))
}

/// Serves the [`portal`] of `engine` and the live registry `libraries` on `listener`; the
/// sessions on a library the registry takes out of service are ended ([`Server::watch`]).
pub fn serve(listener: TcpListener, engine: &Engine, libraries: &Arc<Libraries>) -> Result<Server> {
    let server = Server::serve(listener, Arc::new(portal(engine, libraries)?))?;
    server.watch(libraries);
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_differing_in_case_or_underscore_is_taken() {
        let existing = ["Lib_1", "other"];
        assert_eq!(name_taken("sys", "lib-1", existing), Some("Lib_1"));
        assert_eq!(name_taken("sys", "LIB_1", existing), Some("Lib_1"));
        assert_eq!(name_taken("sys", "lib-2", existing), None);
        assert_eq!(name_taken("sys", "other", existing), None, "the same name is refused elsewhere");
    }
}
