//! A library in a temporary data directory and a server on 127.0.0.1:0.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use qorestor_core::{Engine, DEFAULT_GROUP};
use qorestor_ndmp::client::Client;
use qorestor_ndmp::{server, Credentials, Shared};
use qorestor_vtl::{Libraries, LibraryConfig, Vtl};

/// The user and password of the fixture.
pub const USER: &str = "ndmp";
/// The password.
pub const PASSWORD: &str = "s3cret";
/// Drive 0 of library `lib`, loaded with a cartridge.
pub const TAPE: &str = "lib/tape0";

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub addr: SocketAddr,
    /// The server's handle (dropping it stops the server).
    pub server: qorestor_core::listener::Server,
    pub libraries: Arc<Libraries>,
    pub credentials: Arc<Mutex<Option<Credentials>>>,
}

impl Fixture {
    /// A library with 2 drives, 4 cartridges of `tape_size` bytes, the first loaded in drive 0.
    pub fn with_tape_size(tape_size: u64) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open_or_create(dir.path()).unwrap();
        let config = LibraryConfig { slots: 6, drives: 2, ie_slots: 0, tapes: 4, tape_size };
        let vtl = Vtl::create(&engine, "lib", DEFAULT_GROUP, &config).unwrap();
        vtl.load("QS0001L5", 0).unwrap();
        drop(vtl);
        let libraries = Arc::new(Libraries::open_all(&engine).unwrap());
        let credentials = Arc::new(Mutex::new(Some(Credentials { user: USER.into(), password: PASSWORD.into() })));
        let creds = credentials.clone();
        let shared = Shared {
            libraries: libraries.clone(),
            system_name: "test".into(),
            credentials: Box::new(move || creds.lock().clone()),
            opened: Default::default(),
        };
        let server = server::start("127.0.0.1:0".parse().unwrap(), Arc::new(shared)).unwrap();
        Fixture { _dir: dir, addr: server.local_addr(), server, libraries, credentials }
    }

    pub fn new() -> Fixture {
        Fixture::with_tape_size(1 << 30)
    }

    /// A logged-in client.
    pub fn client(&self) -> Client {
        let mut c = Client::connect(self.addr).unwrap();
        assert_eq!(c.login(USER, PASSWORD).unwrap().error(), 0);
        c
    }
}

/// Deterministic test data.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
