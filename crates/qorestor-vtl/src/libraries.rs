//! The live registry of a data directory's libraries: what a server (`qorestor serve`) hands
//! to its frontends (the iSCSI target, the NDMP server) and to the `vtl` commands it runs, and
//! what it ticks and flushes. There is exactly one open [`Vtl`] per library in a server: two
//! copies would each keep their own drive and slot state and corrupt the tapes.
//!
//! Reads are cheap: [`Libraries::list`] hands out the current list (an `Arc` cloned under a
//! read lock); changes ([`Libraries::create`], [`Libraries::open`], [`Libraries::reload`],
//! [`Libraries::delete`]) are serialised and publish a new list. A library leaves the registry
//! only retired ([`Vtl::retire`]): the commands running on it have finished and every later
//! one is refused, so a session still holding its `Arc<Vtl>` cannot touch its tapes. Then the
//! [`Watcher`]s (the frontends) are told, and end their sessions on it.

use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};
use qorestor_core::{ContainerKind, Engine};

use crate::error::{Error, Result};
use crate::library::{LibraryConfig, Vtl};

/// A frontend told when a library leaves the registry, so that it ends its sessions on it.
pub trait Watcher: Send + Sync {
    /// `library` has been retired and is no longer listed: end the sessions that use it.
    fn retired(&self, library: &Arc<Vtl>);
}

/// The open library of every `vtl` container, by container name. Shared with `Arc`.
pub struct Libraries {
    engine: Engine,
    /// The current list, in name order; replaced (never changed in place) by a change.
    current: RwLock<Arc<[Arc<Vtl>]>>,
    /// Held by a change from start to end, so that changes do not interleave.
    changing: Mutex<()>,
    watchers: Mutex<Vec<Weak<dyn Watcher>>>,
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
        Ok(Libraries {
            engine: engine.clone(),
            current: RwLock::new(libraries.into()),
            changing: Mutex::new(()),
            watchers: Mutex::new(Vec::new()),
        })
    }

    /// The libraries now, by name (a snapshot: later changes do not alter it).
    pub fn list(&self) -> Arc<[Arc<Vtl>]> {
        self.current.read().clone()
    }

    /// The library of container `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Vtl>> {
        self.current.read().iter().find(|l| l.name() == name).cloned()
    }

    /// How many libraries there are.
    pub fn len(&self) -> usize {
        self.current.read().len()
    }

    /// Whether there is no library.
    pub fn is_empty(&self) -> bool {
        self.current.read().is_empty()
    }

    /// Tells `watcher` of every library that leaves the registry from now on (as long as it
    /// lives: the registry keeps only a weak reference).
    pub fn watch(&self, watcher: Weak<dyn Watcher>) {
        let mut watchers = self.watchers.lock();
        watchers.retain(|w| w.strong_count() > 0);
        watchers.push(watcher);
    }

    /// Creates a `vtl` container with its library ([`Vtl::create`]) and serves it.
    pub fn create(&self, name: &str, group: &str, config: &LibraryConfig) -> Result<Arc<Vtl>> {
        let _changing = self.changing.lock();
        let vtl = Arc::new(Vtl::create(&self.engine, name, group, config)?);
        self.publish(|list| list.push(vtl.clone()));
        Ok(vtl)
    }

    /// The library `name`: the one served; else, for a `vtl` container not served yet (one
    /// made by `container add --type vtl` since), its library opened ([`Vtl::open`]) and served
    /// from now on; else the error [`Vtl::open`] gives (no such container, not a `vtl` one).
    pub fn open(&self, name: &str) -> Result<Arc<Vtl>> {
        if let Some(vtl) = self.get(name) {
            return Ok(vtl);
        }
        let _changing = self.changing.lock();
        if let Some(vtl) = self.get(name) {
            return Ok(vtl);
        }
        let vtl = Arc::new(Vtl::open(&self.engine, name)?);
        self.publish(|list| list.push(vtl.clone()));
        Ok(vtl)
    }

    /// Replaces the library `name` by a fresh copy opened from what is stored (after a change
    /// made without it): the served copy is retired with its buffered writes made durable, its
    /// sessions are ended, and the new copy is served. A drive whose writes could not be made
    /// durable is reported (after the new copy is served: the old one is retired all the same);
    /// if the new copy cannot be opened the library is no longer served and that error is
    /// returned.
    pub fn reload(&self, name: &str) -> Result<Arc<Vtl>> {
        let _changing = self.changing.lock();
        let old = self.get(name).ok_or_else(|| Error::not_found("library", name))?;
        let retired = match old.retire(true, |_| Ok(())) {
            // Refused before anything changed: it stays in service.
            Err(e) if !old.is_retired() => return Err(e),
            other => other,
        };
        let fresh = Vtl::open(&self.engine, name).map(Arc::new);
        self.publish(|list| {
            list.retain(|l| !Arc::ptr_eq(l, &old));
            if let Ok(v) = &fresh {
                list.push(v.clone());
            }
        });
        self.tell_retired(&old);
        let fresh = fresh?;
        retired.map(|()| fresh)
    }

    /// Deletes library `name` with its cartridges and their data ([`Vtl::delete`]); a served
    /// library is retired first (refused, naming the cartridges, while one holds data, unless
    /// `force`: checked with the library held, so no write can slip in between) and its
    /// sessions are ended before the data is deleted.
    pub fn delete(&self, name: &str, force: bool) -> Result<()> {
        let _changing = self.changing.lock();
        let Some(vtl) = self.get(name) else {
            return Vtl::delete(&self.engine, name, force);
        };
        // The container is checked to be the library's before anything is stopped.
        let segments = self.engine.owned_streams(name, ContainerKind::Vtl)?;
        vtl.retire(false, |info| if force { Ok(()) } else { Vtl::refuse_with_data(info) })?;
        self.publish(|list| list.retain(|l| !Arc::ptr_eq(l, &vtl)));
        self.tell_retired(&vtl);
        if let Err(e) = segments.delete_container(true) {
            // Still stored: serve it again rather than leave it unserved until a restart.
            if let Ok(again) = Vtl::open(&self.engine, name) {
                self.publish(|list| list.push(Arc::new(again)));
            }
            return Err(e.into());
        }
        Ok(())
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
        for l in self.list().iter() {
            if let Err(e) = f(l) {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// Publishes the list `change` makes of the current one, in name order.
    fn publish(&self, change: impl FnOnce(&mut Vec<Arc<Vtl>>)) {
        let mut list = self.list().to_vec();
        change(&mut list);
        list.sort_by(|a, b| a.name().cmp(b.name()));
        *self.current.write() = list.into();
    }

    /// Tells every live watcher that `vtl` left the registry.
    fn tell_retired(&self, vtl: &Arc<Vtl>) {
        let watchers: Vec<_> = self.watchers.lock().iter().filter_map(Weak::upgrade).collect();
        for w in watchers {
            w.retired(vtl);
        }
    }
}
