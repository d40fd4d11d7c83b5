//! Every library of a data directory, open at once: what a server (`qorestor serve`) hands to
//! its frontends (the iSCSI target, the NDMP server), and what it ticks and flushes.

use std::sync::Arc;

use qorestor_core::{ContainerKind, Engine};

use crate::error::Result;
use crate::library::Vtl;

/// The open libraries of every `vtl` container, by container name. Shared with `Arc`.
pub struct Libraries {
    libraries: Vec<Arc<Vtl>>,
}

impl Libraries {
    /// Opens the library of every `vtl` container of the engine.
    pub fn open_all(engine: &Engine) -> Result<Libraries> {
        let mut libraries = Vec::new();
        for c in engine.containers(None)? {
            if c.kind == ContainerKind::Vtl {
                libraries.push(Arc::new(Vtl::open(engine, &c.name)?));
            }
        }
        libraries.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(Libraries { libraries })
    }

    /// The libraries, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Vtl>> {
        self.libraries.iter()
    }

    /// The library of container `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Vtl>> {
        self.libraries.iter().find(|l| l.name() == name)
    }

    /// How many libraries there are.
    pub fn len(&self) -> usize {
        self.libraries.len()
    }

    /// Whether there is no library.
    pub fn is_empty(&self) -> bool {
        self.libraries.is_empty()
    }

    /// [`Vtl::tick`] on every library; the first error, after ticking them all.
    pub fn tick(&self) -> Result<()> {
        self.each(Vtl::tick)
    }

    /// [`Vtl::flush_all`] on every library; the first error, after flushing them all.
    pub fn flush_all(&self) -> Result<()> {
        self.each(Vtl::flush_all)
    }

    fn each(&self, f: impl Fn(&Vtl) -> Result<()>) -> Result<()> {
        let mut first = Ok(());
        for l in &self.libraries {
            if let Err(e) = f(l) {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}
