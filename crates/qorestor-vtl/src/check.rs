//! What the engine cannot see: a library's tape maps checked against the segment streams they
//! name (for `qorestor verify`), and deleting a library with its cartridges.

use std::collections::HashMap;

use qorestor_core::{ContainerKind, Engine};

use crate::drive::{load_map, segment_name};
use crate::error::{Error, Result};
use crate::library::{library_record, LibraryInfo, Vtl};

/// The segments that a library's cartridge maps name but that are missing or shorter than the
/// map says, as `LIBRARY/BARCODE/NNNNNNNNNN` (the segment stream's address), for every `vtl`
/// container. A cartridge whose map cannot be read is reported as `LIBRARY/BARCODE`.
pub fn damaged_segments(engine: &Engine) -> Result<Vec<String>> {
    let mut damaged = Vec::new();
    for c in engine.containers(None)?.into_iter().filter(|c| c.kind == ContainerKind::Vtl) {
        let Some(rec) = library_record(engine, &c.name)? else { continue };
        let streams: HashMap<String, u64> =
            engine.streams(&c.name)?.into_iter().map(|s| (s.name, s.logical_bytes)).collect();
        for cart in &rec.cartridges {
            let Ok(map) = load_map(engine, &c.name, &cart.barcode) else {
                damaged.push(format!("{}/{}", c.name, cart.barcode));
                continue;
            };
            for seg in map.segments {
                let name = segment_name(&cart.barcode, seg.id);
                if streams.get(&name).is_none_or(|&len| len < seg.len) {
                    damaged.push(format!("{}/{name}", c.name));
                }
            }
        }
    }
    Ok(damaged)
}

impl Vtl {
    /// Deletes library `name`: its `vtl` container, its cartridges and their data. Refused
    /// (naming the cartridges) when a cartridge holds data, unless `force`. For a library no
    /// server has open; a server deletes through its registry ([`crate::Libraries::delete`]).
    pub fn delete(engine: &Engine, name: &str, force: bool) -> Result<()> {
        let segments = engine.owned_streams(name, ContainerKind::Vtl)?;
        if !force {
            Vtl::refuse_with_data(&Vtl::open(engine, name)?.info()?)?;
        }
        Ok(segments.delete_container(true)?)
    }

    /// The refusal of a deletion without `--force`, naming the cartridges that hold data.
    pub(crate) fn refuse_with_data(info: &LibraryInfo) -> Result<()> {
        let used: Vec<&str> = info.cartridges.iter().filter(|c| c.used_bytes > 0).map(|c| c.barcode.as_str()).collect();
        if used.is_empty() {
            return Ok(());
        }
        Err(Error::Conflict(format!(
            "library {:?} has cartridges that hold data ({}); add --force to delete them with the library",
            info.name,
            used.join(", ")
        )))
    }
}
