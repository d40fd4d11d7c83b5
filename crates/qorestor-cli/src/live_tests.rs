//! Commands run inside the daemon (`Ctx::live` set) act on the registry the frontends serve:
//! the command lines are parsed as the binary parses them and run with a context whose `live`
//! holds the engine (which holds the data directory: a command that opened the directory
//! itself would fail) and the registry an iSCSI target serves on port 0.

use std::net::TcpListener;
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use qorestor_core::Engine;
use qorestor_vtl::{Libraries, CHECK_CONDITION};

use crate::context::Ctx;
use crate::serve::Services;
use crate::{container, iscsi, vtl, Cli, Command};

/// A daemon's engine and registry over a fresh directory, an iSCSI target serving them, and a
/// context for commands run inside it.
struct Daemon {
    _dir: tempfile::TempDir,
    services: Services,
    server: qorestor_iscsi::Server,
    ctx: Ctx,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open_or_create(dir.path()).unwrap();
        engine.set_system_name("daemon").unwrap();
        let libraries = Arc::new(Libraries::open_all(&engine).unwrap());
        let services = Services { engine, libraries };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = qorestor_iscsi::config::serve(listener, &services.engine, &services.libraries).unwrap();
        let mut ctx = Ctx::new(dir.path().to_path_buf(), true, None, Duration::ZERO);
        ctx.live = Some(services.clone());
        Daemon { _dir: dir, services, server, ctx }
    }

    /// Runs `qorestor ARGS` inside the daemon.
    fn run(&self, args: &[&str]) -> anyhow::Result<()> {
        let cli = Cli::try_parse_from(std::iter::once("qorestor").chain(args.iter().copied())).unwrap();
        match cli.command {
            Command::Vtl(cmd) => vtl::run(&self.ctx, cmd),
            Command::Container(cmd) => container::run(&self.ctx, cmd),
            Command::Iscsi(cmd) => iscsi::run(&self.ctx, cmd),
            other => panic!("not a command of these tests: {other:?}"),
        }
    }

    fn ok(&self, args: &[&str]) {
        if let Err(e) = self.run(args) {
            panic!("{args:?}: {e:#}");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.server.stop();
        self.server.join();
    }
}

/// `iscsi-ls -s iscsi://ADDR`'s output; `None` (the test is skipped) when it is missing, which
/// fails under `CI=true`.
fn iscsi_ls(addr: std::net::SocketAddr) -> Option<String> {
    let found = Process::new("sh").args(["-c", "command -v iscsi-ls"]).stdout(Stdio::null()).status();
    if !found.is_ok_and(|s| s.success()) {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: iscsi-ls (libiscsi-bin) is missing");
        eprintln!("skipped the iscsi-ls checks: iscsi-ls is missing");
        return None;
    }
    let url = format!("iscsi://{addr}");
    let out = Process::new("iscsi-ls").args(["-i", "iqn.2024-01.test.cli:live", "-s", &url]).output().unwrap();
    Some(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

const IQN: &str = "iqn.2024-01.org.qorestor:daemon:lib1";

#[test]
fn vtl_commands_inside_the_daemon_act_on_the_served_libraries() {
    let d = Daemon::start();
    let libraries = d.services.libraries.clone();
    d.ok(&["vtl", "add", "lib1", "--slots", "4", "--drives", "2", "--tapes", "2", "--tape-size", "10GB"]);
    let served = libraries.get("lib1").expect("vtl add serves the library");
    if let Some(listed) = iscsi_ls(d.server.local_addr()) {
        assert!(listed.contains(&format!("Target:{IQN}")) && listed.contains("Lun:2"), "{listed}");
    }

    // A load through the daemon moves the cartridge in the served copy: its drive reports
    // the medium change to the initiator (a second copy would not tell it).
    d.ok(&["vtl", "load", "lib1", "--barcode", "QS0001L5", "--drive", "0"]);
    assert!(Arc::ptr_eq(&served, &libraries.get("lib1").unwrap()), "still the one copy");
    assert_eq!(served.info().unwrap().drives[0].barcode.as_deref(), Some("QS0001L5"));
    let attention =
        (0..4).map(|_| served.execute(1, &[0; 6], &[]).sense_code()).find(|&(key, asc, _)| key == 6 && asc == 0x28);
    assert_eq!(
        attention,
        Some((6, 0x28, 0)),
        "the served drive reports NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED"
    );
    d.ok(&["vtl", "set-rw", "lib1", "--barcode", "QS0001L5", "off"]);
    assert!(served.drive_position(0).unwrap().unwrap().write_protected);
    d.ok(&["vtl", "unload", "lib1", "--drive", "0"]);
    d.ok(&["vtl", "export", "lib1", "--barcode", "QS0002L5"]);
    d.ok(&["vtl", "import", "lib1", "--barcode", "QS0002L5"]);
    d.ok(&["vtl", "carts", "add", "lib1", "--count", "1", "--tape-size", "10GB"]);
    assert_eq!(served.info().unwrap().cartridges.len(), 3);
    d.ok(&["vtl", "show", "lib1"]);
    d.ok(&["vtl", "list"]);
    d.ok(&["iscsi", "show"]);

    // A name whose iSCSI name is taken is refused, naming both.
    let e = d.run(&["vtl", "add", "LIB1"]).unwrap_err().to_string();
    assert!(e.contains("\"LIB1\"") && e.contains("\"lib1\"") && e.contains(IQN), "{e}");
    assert!(libraries.get("LIB1").is_none());

    // container add --type vtl serves the new library; vtl delete retires it.
    d.ok(&["container", "add", "lib2", "--type", "vtl"]);
    let second = libraries.get("lib2").expect("container add --type vtl serves the library");
    d.ok(&["vtl", "delete", "lib2"]);
    assert!(libraries.get("lib2").is_none() && second.is_retired());
    assert_eq!(second.execute(0, &[0; 6], &[]).status, CHECK_CONDITION);
    d.ok(&["vtl", "delete", "lib1", "--force"]);
    assert!(libraries.is_empty() && served.is_retired());
    if let Some(listed) = iscsi_ls(d.server.local_addr()) {
        assert!(!listed.contains(IQN), "{listed}");
    }
}
