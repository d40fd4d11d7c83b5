//! `qorestor serve` as a daemon: it owns the data directory while it runs, stops cleanly on
//! SIGTERM and SIGINT, keeps what libraries hold across the restart, and runs the cleaner in
//! its scheduled windows.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{qorestor, random, Server};

#[test]
fn serve_owns_the_directory_and_stops_cleanly_on_term_and_int() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::init(&data);
    let ok = qorestor(&data).args(["vtl", "add", "lib1", "--storage-group", "DefaultGroup"]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    for signal in ["TERM", "INT"] {
        let server = Server::start(&data, &[]);
        // The daemon holds the lock: another command is handed to it, a second serve fails at
        // once, naming it. (With no frontend there is no `listening` line to wait for: wait
        // until the lock file names it.)
        let holder = format!("qorestor serve (pid {})", server.pid());
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(data.join("lock")).unwrap_or_default().contains(&holder) {
            assert!(Instant::now() < deadline, "serve never took the directory");
            std::thread::sleep(Duration::from_millis(20));
        }
        let other = qorestor(&data).args(["ls", "lib1"]).stdin(Stdio::null()).output().unwrap();
        assert!(other.status.success(), "ls through the daemon: {}", String::from_utf8_lossy(&other.stderr));
        let second = qorestor(&data).arg("serve").stdin(Stdio::null()).output().unwrap();
        assert_eq!(second.status.code(), Some(1));
        let err = String::from_utf8_lossy(&second.stderr).to_string();
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
    common::init(&data);
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
    assert_eq!(bad.status.code(), Some(2), "a value refused for its form");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("'bad name'")
            || String::from_utf8_lossy(&bad.stderr).contains("bad name")
    );
}

#[test]
fn serve_runs_the_cleaner_once_in_an_open_window() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::init(&data);
    let run = |args: &[&str], stdin: Option<&[u8]>| common::run_ok(&data, args, stdin).stdout;
    run(&["container", "add", "nightly", "--type", "object"], None);
    let (gone, kept) = (random(3 << 20, 1), random(3 << 20, 2));
    run(&["put", "nightly/mon", "-"], Some(&gone));
    run(&["put", "nightly/tue", "-"], Some(&kept));
    run(&["rm", "nightly/mon"], None);
    // A daily window around now, in the local time serve will use (same environment).
    let now = jiff::Zoned::now();
    let minute = now.hour() as i32 * 60 + now.minute() as i32;
    let hhmm = |m: i32| format!("{:02}:{:02}", m.rem_euclid(1440) / 60, m.rem_euclid(1440) % 60);
    run(
        &["cleaner", "schedule", "add", "--day", "daily", "--start", &hhmm(minute - 2), "--stop", &hhmm(minute + 30)],
        None,
    );

    let server = Server::start(&data, &[]);
    let lines = server.wait_for_stderr("cleaner: scheduled run finished");
    assert!(lines.iter().any(|l| l.contains("scheduled run started (schedule 1: daily")), "{lines:?}");
    server.stop();
    let status: serde_json::Value = serde_json::from_slice(&run(&["cleaner", "status", "--json"], None)).unwrap();
    let report = &status["last_report"];
    assert!(report["bytes_reclaimed"].as_i64().unwrap() > 0, "{status}");
    assert_eq!(report["stopped_early"], false, "{status}");
    assert!(run(&["get", "nightly/tue", "-"], None) == kept);

    // Restarted inside the same window: the scheduler's first look finds it already had its run.
    let server = Server::start(&data, &[]);
    let lines = server.wait_for_stderr("cleaner: the window is open (schedule 1: daily");
    assert!(lines.iter().any(|l| l.contains("but a run already started in it")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("scheduled run")), "{lines:?}");
    server.stop();
    let again: serde_json::Value = serde_json::from_slice(&run(&["cleaner", "status", "--json"], None)).unwrap();
    assert_eq!(again["last_started"], status["last_started"]);
}

/// Runs `qorestor ARGS` with `stdin`, requiring success.
fn ok_with_stdin(data: &std::path::Path, args: &[&str], stdin: &str) {
    let mut child =
        qorestor(data).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn serve_warns_when_it_serves_nobody_or_anybody() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::init(&data);
    let warnings =
        |lines: Vec<String>| -> Vec<String> { lines.into_iter().filter(|l| l.contains("warning:")).collect() };

    // No listener: a warning, and nothing on stdout (Server::start checks stdout holds only
    // `listening` lines).
    let server = Server::start(&data, &[]);
    server.wait_for_stderr("no listener asked for");
    server.stop();

    // iSCSI beyond loopback without CHAP and without a vtl container; NDMP without a user.
    let server = Server::start(&data, &["--iscsi-listen", "0.0.0.0:0", "--ndmp-listen", "127.0.0.1:0"]);
    let seen = warnings(server.stop_and_read_stderr());
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert!(seen[0].contains("serves no target: there is no vtl container"), "{seen:#?}");
    assert!(seen[1].contains("beyond loopback, with CHAP off") && seen[1].contains("iscsi set-password"), "{seen:#?}");
    assert!(seen[2].contains("NDMP on 127.0.0.1:") && seen[2].contains("has no user"), "{seen:#?}");
    // What each asks for takes effect while serve runs.
    assert!(seen.iter().all(|w| w.contains("no restart needed") && !w.contains("stop serve")), "{seen:#?}");

    // On loopback CHAP is not needed; with a library, CHAP and an NDMP user nothing is said.
    let server = Server::start(&data, &["--iscsi-listen", "127.0.0.1:0"]);
    let seen = warnings(server.stop_and_read_stderr());
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert!(seen[0].contains("serves no target"), "{seen:#?}");
    ok_with_stdin(&data, &["vtl", "add", "lib1", "--storage-group", "DefaultGroup"], "");
    ok_with_stdin(&data, &["iscsi", "set-password", "--user", "backup01", "--password-stdin"], "initiator-secret\n");
    ok_with_stdin(&data, &["ndmp", "update", "--user", "dma", "--password-stdin"], "ndmp-secret\n");
    let server = Server::start(&data, &["--iscsi-listen", "0.0.0.0:0", "--ndmp-listen", "127.0.0.1:0"]);
    let seen = warnings(server.stop_and_read_stderr());
    assert!(seen.is_empty(), "{seen:#?}");
}

#[test]
fn listen_addresses_accept_host_names() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::init(&data);
    let server = Server::start(
        &data,
        &["--iscsi-listen", "localhost:0", "--ndmp-listen", "localhost:0", "--replication-listen", "localhost:0"],
    );
    for frontend in ["iscsi", "ndmp", "replication"] {
        let addr: std::net::SocketAddr = server.listening[frontend].parse().unwrap();
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{frontend} on {addr}");
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{frontend} on {addr}: {e}"));
    }
    server.stop();
    // A value that is no address names itself, as a usage error.
    let bad = qorestor(&data).args(["serve", "--ndmp-listen", "localhost"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--ndmp-listen") && err.contains("\"localhost\""), "{err}");
}
