//! Live reconfiguration: a server on the live registry of a data directory
//! ([`qorestor_iscsi::config::serve`]) serves a library added, CHAP set or cleared, and a
//! library deleted, from the next discovery or login, without a restart; checked with the real
//! `iscsi-ls` (libiscsi) and, for the deleted library's open session, a raw initiator. Where
//! `iscsi-ls` is missing these tests are skipped with the reason printed, except under
//! `CI=true`, where a missing client fails them.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::Arc;

use qorestor_core::{Engine, DEFAULT_GROUP};
use qorestor_iscsi::chap::{ChapConfig, Credential};
use qorestor_iscsi::login::status;
use qorestor_iscsi::pdu::Pdu;
use qorestor_iscsi::{config, Server};
use qorestor_vtl::{Libraries, LibraryConfig};

use crate::server::log_in;

const IQN_ONE: &str = "iqn.2024-01.org.qorestor:live:one";
const IQN_TWO: &str = "iqn.2024-01.org.qorestor:live:two";
const INITIATOR: &str = "iqn.2024-01.test.live:host";

/// A data directory with library `one`, its live registry, and a server on port 0.
struct Live {
    _dir: tempfile::TempDir,
    engine: Engine,
    libraries: Arc<Libraries>,
    server: Server,
}

fn small() -> LibraryConfig {
    LibraryConfig { slots: 4, drives: 2, ie_slots: 1, tapes: 2, tape_size: 10_000_000_000 }
}

impl Live {
    fn start() -> Live {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open_or_create(dir.path()).unwrap();
        engine.set_system_name("live").unwrap();
        let libraries = Arc::new(Libraries::open_all(&engine).unwrap());
        libraries.create("one", DEFAULT_GROUP, &small()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = config::serve(listener, &engine, &libraries).unwrap();
        Live { _dir: dir, engine, libraries, server }
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.server.stop();
        self.server.join();
    }
}

/// Whether `iscsi-ls` is installed; when it is not, fails under CI and otherwise says why the
/// test is skipped.
fn iscsi_ls_present() -> bool {
    let found = Command::new("sh").args(["-c", "command -v iscsi-ls"]).stdout(Stdio::null()).status();
    if found.is_ok_and(|s| s.success()) {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: iscsi-ls (libiscsi-bin) is missing");
    eprintln!("skipped: iscsi-ls is missing (scripts/test-all.sh installs libiscsi-bin)");
    false
}

/// `iscsi-ls [-s] URL`'s stdout and stderr.
fn iscsi_ls(luns: bool, url: &str) -> String {
    let mut args = vec!["-i", INITIATOR];
    if luns {
        args.push("-s");
    }
    args.push(url);
    let out = Command::new("iscsi-ls").args(&args).stdin(Stdio::null()).output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_library_added_while_serving_is_listed_by_iscsi_ls() {
    if !iscsi_ls_present() {
        return;
    }
    let live = Live::start();
    let url = format!("iscsi://{}", live.addr());
    let before = iscsi_ls(true, &url);
    assert!(before.contains(&format!("Target:{IQN_ONE}")) && !before.contains(IQN_TWO), "{before}");

    live.libraries.create("two", DEFAULT_GROUP, &LibraryConfig { drives: 3, ..small() }).unwrap();
    let after = iscsi_ls(true, &url);
    assert!(after.contains(&format!("Target:{IQN_ONE}")), "{after}");
    assert!(after.contains(&format!("Target:{IQN_TWO}")), "{after}");
    // The new target's LUNs: the changer and its three drives.
    let two = &after[after.find(&format!("Target:{IQN_TWO}")).unwrap()..];
    let two = two.split("Target:").nth(1).unwrap();
    assert!(two.contains("Lun:0") && two.contains("Lun:3") && !two.contains("Lun:4"), "{after}");
}

#[test]
fn chap_set_while_serving_is_required_from_the_next_login_and_clearing_it_opens_logins() {
    if !iscsi_ls_present() {
        return;
    }
    let live = Live::start();
    let open = format!("iscsi://{}", live.addr());
    let with = format!("iscsi://backup01%initiator-secret@{}", live.addr());
    assert!(iscsi_ls(true, &open).contains("Lun:0"), "open before CHAP is set");
    // A session logged in before CHAP is set stays.
    let (mut before, st) = log_in(live.addr(), INITIATOR, IQN_ONE);
    assert_eq!(st, (0, 0));

    let chap = ChapConfig {
        initiator: Credential { user: "backup01".into(), secret: "initiator-secret".into() },
        mutual: None,
        discovery_auth: false,
    };
    config::save_chap(&live.engine, &chap).unwrap();
    let refused = iscsi_ls(true, &open);
    assert!(refused.contains(&format!("Target:{IQN_ONE}")), "discovery stays open: {refused}");
    assert!(!refused.contains("Lun:"), "a normal session needs CHAP now: {refused}");
    let (_, st) = log_in(live.addr(), "iqn.2024-01.test.live:raw", IQN_ONE);
    assert_eq!(st, status::AUTH_FAILURE);
    let authenticated = iscsi_ls(true, &with);
    assert!(authenticated.contains("Lun:0"), "{authenticated}");
    before.send(&crate::ping(5, 1));
    assert!(matches!(before.recv(), Pdu::NopIn { itt: 5, .. }), "the session from before CHAP stays");

    assert!(config::clear_chap(&live.engine).unwrap());
    let reopened = iscsi_ls(true, &open);
    assert!(reopened.contains("Lun:0"), "open again: {reopened}");
}

#[test]
fn deleting_a_library_ends_its_sessions_and_discovery_no_longer_lists_it() {
    if !iscsi_ls_present() {
        return;
    }
    let live = Live::start();
    live.libraries.create("two", DEFAULT_GROUP, &small()).unwrap();
    let (mut one, st) = log_in(live.addr(), INITIATOR, IQN_ONE);
    assert_eq!(st, (0, 0));
    let (mut two, st) = log_in(live.addr(), INITIATOR, IQN_TWO);
    assert_eq!(st, (0, 0));
    one.send(&crate::ping(1, 1));
    assert!(matches!(one.recv(), Pdu::NopIn { itt: 1, .. }));

    live.libraries.delete("one", true).unwrap();
    // The initiator sees its connection closed, without a Logout or any other PDU.
    let mut rest = Vec::new();
    assert_eq!(one.s.read_to_end(&mut rest).unwrap_or(0), 0, "the session on the deleted library was ended");
    let listed = iscsi_ls(false, &format!("iscsi://{}", live.addr()));
    assert!(!listed.contains(IQN_ONE) && listed.contains(&format!("Target:{IQN_TWO}")), "{listed}");
    // Logging in to it again: target not found.
    let (_, st) = log_in(live.addr(), INITIATOR, IQN_ONE);
    assert_eq!(st, status::NOT_FOUND);
    // The other library's session goes on.
    two.send(&crate::ping(2, 1));
    assert!(matches!(two.recv(), Pdu::NopIn { itt: 2, .. }));
}
