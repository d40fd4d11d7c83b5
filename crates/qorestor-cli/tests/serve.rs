//! `qorestor serve` as a daemon: it owns the data directory while it runs, stops cleanly on
//! SIGTERM and SIGINT, and keeps what libraries hold across the restart.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{qorestor, Server};

#[test]
fn serve_owns_the_directory_and_stops_cleanly_on_term_and_int() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ok = qorestor(&data).args(["vtl", "add", "lib1", "--storage-group", "DefaultGroup"]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    for signal in ["TERM", "INT"] {
        let server = Server::start(&data, &[]);
        // The daemon holds the lock: another command fails at once, naming it. (With no
        // frontend there is no `listening` line to wait for: wait until the lock file names it.)
        let holder = format!("qorestor serve (pid {})", server.pid());
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(data.join("lock")).unwrap_or_default().contains(&holder) {
            assert!(Instant::now() < deadline, "serve never took the directory");
            std::thread::sleep(Duration::from_millis(20));
        }
        let other = qorestor(&data).args(["ls", "lib1"]).stdin(Stdio::null()).output().unwrap();
        assert_eq!(other.status.code(), Some(1));
        let err = String::from_utf8_lossy(&other.stderr).to_string();
        assert!(err.contains(&format!("data directory {} is in use by {holder}", data.display())), "{err}");
        let status = server.stop_with(signal);
        assert!(status.success(), "SIG{signal}: exit {status}");
    }
    // Released: commands work again.
    let ok = qorestor(&data).args(["vtl", "show", "lib1", "--json"]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

#[test]
fn system_name_defaults_to_the_host_name_and_can_be_set() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let show = |args: &[&str]| {
        let out = qorestor(&data).args(args).arg("--json").output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["name"].as_str().unwrap().to_string()
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    assert_eq!(show(&["system", "show"]), host);
    assert_eq!(show(&["system", "set-name", "backup-01.example"]), "backup-01.example");
    assert_eq!(show(&["system", "show"]), "backup-01.example");
    let bad = qorestor(&data).args(["system", "set-name", "bad name"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("'bad name'")
            || String::from_utf8_lossy(&bad.stderr).contains("bad name")
    );
}
