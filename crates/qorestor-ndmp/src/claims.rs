//! Which session has which device open. A device name is open in at most one session at a
//! time (another gets DEVICE_BUSY_ERR). When the live registry takes a library out of service
//! ([`qorestor_vtl::Libraries::delete`] or [`qorestor_vtl::Libraries::reload`], which tell their
//! [`Watcher`]s), every session with one of its devices open (tape or changer) is ended
//! ([`Conn::end`]) and all that session's devices are released at once: sessions on other
//! libraries, and sessions that only listed devices, carry on.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use qorestor_vtl::{Vtl, Watcher};

use crate::message::NdmpError;
use crate::session::{Conn, Shared};

/// The devices open in a server's sessions, by name.
#[derive(Default)]
pub struct OpenDevices {
    claims: Mutex<HashMap<String, Claim>>,
}

/// An open device: its library and the session that has it open.
struct Claim {
    library: Arc<Vtl>,
    session: Arc<Conn>,
}

impl OpenDevices {
    /// Opens device `name` of `library` for `session`: NO_DEVICE_ERR when the library was taken
    /// out of service since it was looked up, DEVICE_BUSY_ERR when a session has it open.
    pub(crate) fn claim(&self, name: &str, library: &Arc<Vtl>, session: &Arc<Conn>) -> Result<(), NdmpError> {
        let mut claims = self.claims.lock();
        // Checked under the lock that `end_sessions_on` takes once the library is retired:
        // either this sees it retired, or the library's sessions are ended with this one.
        if library.is_retired() {
            return Err(NdmpError::NoDevice);
        }
        match claims.entry(name.to_string()) {
            Entry::Occupied(_) => Err(NdmpError::DeviceBusy),
            Entry::Vacant(v) => {
                v.insert(Claim { library: library.clone(), session: session.clone() });
                Ok(())
            }
        }
    }

    /// Closes device `name` of `session` (nothing if it was released already, when its
    /// session was ended: the name may be another session's by now).
    pub(crate) fn release(&self, name: &str, session: &Arc<Conn>) {
        let mut claims = self.claims.lock();
        if claims.get(name).is_some_and(|c| Arc::ptr_eq(&c.session, session)) {
            claims.remove(name);
        }
    }

    /// Whether some session has device `name` open.
    pub fn is_open(&self, name: &str) -> bool {
        self.claims.lock().contains_key(name)
    }

    /// Ends every session that has a device of `library` open and releases all their devices.
    pub fn end_sessions_on(&self, library: &Arc<Vtl>) {
        let mut claims = self.claims.lock();
        let mut ended: Vec<Arc<Conn>> = Vec::new();
        for c in claims.values() {
            if Arc::ptr_eq(&c.library, library) && !ended.iter().any(|s| Arc::ptr_eq(s, &c.session)) {
                ended.push(c.session.clone());
            }
        }
        claims.retain(|_, c| !ended.iter().any(|s| Arc::ptr_eq(s, &c.session)));
        drop(claims);
        let why = format!("library {} was taken out of service (deleted or reloaded): session ended", library.name());
        for session in ended {
            session.end(&why);
        }
    }
}

impl Watcher for Shared {
    fn retired(&self, library: &Arc<Vtl>) {
        self.opened.end_sessions_on(library);
    }
}

#[cfg(test)]
mod tests {
    use qorestor_core::{Engine, DEFAULT_GROUP};
    use qorestor_vtl::{Libraries, LibraryConfig};

    use super::*;
    use crate::reply::Post;
    use crate::session::Outbox;

    /// A session without a connection: counts the times it was told to stop reading.
    #[derive(Default)]
    struct Ends(Mutex<u32>);

    impl Outbox for Ends {
        fn post(&self, _: Post) {}

        fn end(&self) {
            *self.0.lock() += 1;
        }
    }

    #[test]
    fn a_library_retired_after_its_lookup_is_no_device_and_its_sessions_are_ended_once() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open_or_create(dir.path()).unwrap();
        let libraries = Libraries::open_all(&engine).unwrap();
        let config = LibraryConfig { slots: 2, drives: 2, ie_slots: 0, tapes: 0, tape_size: 1 << 20 };
        let lib = libraries.create("lib", DEFAULT_GROUP, &config).unwrap();
        let other = libraries.create("other", DEFAULT_GROUP, &config).unwrap();
        let opened = OpenDevices::default();
        let ends = Arc::new(Ends::default());
        let session = Arc::new(Conn::new(ends.clone()));
        let bystander = Arc::new(Conn::new(Arc::new(Ends::default())));
        for name in ["lib/tape0", "lib/changer", "other/tape0"] {
            let library = if name.starts_with("lib/") { &lib } else { &other };
            opened.claim(name, library, &session).unwrap();
        }
        opened.claim("other/tape1", &other, &bystander).unwrap();
        assert_eq!(opened.claim("lib/tape0", &lib, &bystander), Err(NdmpError::DeviceBusy));

        // As the registry does: retired, then the watchers told.
        libraries.delete("lib", true).unwrap();
        // A session that looked the library up before it was retired finds no device.
        assert_eq!(opened.claim("lib/tape1", &lib, &bystander), Err(NdmpError::NoDevice));
        opened.end_sessions_on(&lib);
        assert_eq!(*ends.0.lock(), 1, "one end for a session with two of its devices open");
        assert!(session.ended().as_deref().is_some_and(|why| why.contains("library lib ")));
        for name in ["lib/tape0", "lib/changer", "other/tape0"] {
            assert!(!opened.is_open(name), "{name} is still open");
        }
        assert!(opened.is_open("other/tape1"), "another session's device was released");
        // The ended session's own closes afterwards release nothing of another session's.
        opened.claim("other/tape0", &other, &bystander).unwrap();
        opened.release("other/tape0", &session);
        assert!(opened.is_open("other/tape0"));
    }
}
