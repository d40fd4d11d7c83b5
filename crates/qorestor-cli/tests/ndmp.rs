//! NDMP end to end: `qorestor ndmp show|update`, `serve --ndmp-listen` driven by the crate's
//! minimal DMA (dedup across two cartridges shown by `stats`), and the real DMA and
//! conformance tool: Amanda's ndmjob, built with its test-tape fixes by
//! `harness/build_ndmjob.sh` and driven by `harness/ndmp_probe.py`, with tshark's NDMP
//! dissector checking every frame on the wire.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{qorestor, Server};
use qorestor_ndmp::client::Client;
use qorestor_ndmp::message::code;
use qorestor_ndmp::tape::mtio;

fn run(data: &Path, args: &[&str]) -> serde_json::Value {
    let out = qorestor(data).args(args).arg("--json").output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn set_user(data: &Path, user: &str, password: &str) {
    let mut child = qorestor(data)
        .args(["ndmp", "update", "--user", user, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
}

/// A data directory with library `lib` (2 drives, 6 cartridges of 10 GB), cartridges
/// loaded into the first `loaded` drives, and the NDMP user `ndmp`/`secret`.
fn setup(loaded: u16) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::init(&data);
    run(
        &data,
        &[
            "vtl",
            "add",
            "lib",
            "--storage-group",
            "DefaultGroup",
            "--drives",
            "2",
            "--slots",
            "8",
            "--tapes",
            "6",
            "--tape-size",
            "10GB",
        ],
    );
    for d in 0..loaded {
        let bc = format!("QS000{}L5", d + 1);
        run(&data, &["vtl", "load", "lib", "--barcode", &bc, "--drive", &d.to_string()]);
    }
    set_user(&data, "ndmp", "secret");
    (tmp, data)
}

#[test]
fn show_lists_devices_and_slots_and_update_sets_the_user() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::init(&data);
    run(
        &data,
        &["vtl", "add", "lib", "--storage-group", "DefaultGroup", "--drives", "2", "--slots", "4", "--tapes", "2"],
    );
    let v = run(&data, &["ndmp", "show"]);
    assert!(v["user"].is_null());
    let devices = v["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 3);
    assert_eq!(devices[0]["name"], "lib/changer");
    assert_eq!(devices[0]["kind"], "changer");
    assert_eq!(devices[1]["name"], "lib/tape0");
    assert_eq!(devices[1]["kind"], "tape");
    assert_eq!(devices[1]["library"], "lib");
    assert_eq!(devices[1]["element_address"], 500);
    assert_eq!(devices[2]["element_address"], 501);
    let slots = v["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 4);
    assert_eq!(slots[0]["library"], "lib");
    assert_eq!(slots[0]["element_address"], 1000);
    assert_eq!(slots[0]["barcode"], "QS0001L5");
    assert!(slots[3]["barcode"].is_null());
    set_user(&data, "backup", "pw");
    assert_eq!(run(&data, &["ndmp", "show"])["user"], "backup");
    // The password comes from stdin only, and may not be empty (bad usage, like an empty CHAP secret).
    let no_stdin = qorestor(&data).args(["ndmp", "update", "--user", "x"]).output().unwrap();
    assert_eq!(no_stdin.status.code(), Some(2));
    let empty = qorestor(&data)
        .args(["ndmp", "update", "--user", "x", "--password-stdin"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(empty.status.code(), Some(2));
    assert_eq!(run(&data, &["ndmp", "show"])["user"], "backup");
}

/// A tar-like stream: generated text and binary files, 12 MiB.
fn image() -> Vec<u8> {
    let mut out = Vec::new();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for file in 0..48 {
        out.extend_from_slice(format!("header of file {file:04}").as_bytes());
        out.resize(out.len().next_multiple_of(512), 0);
        for _ in 0..(256 << 10) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push(if file % 3 == 0 { b'a' + (x % 26) as u8 } else { x as u8 });
        }
    }
    out
}

#[test]
fn the_same_backup_on_two_cartridges_is_stored_once() {
    let (_tmp, data) = setup(2);
    let server = Server::start(&data, &["--ndmp-listen", "127.0.0.1:0"]);
    let image = image();
    for tape in ["lib/tape0", "lib/tape1"] {
        let mut c = Client::connect(server.listening["ndmp"].as_str()).unwrap();
        assert_eq!(c.login("ndmp", "secret").unwrap().error(), 0);
        assert_eq!(c.tape_open(tape, 1).unwrap().error(), 0);
        c.mtio(mtio::REW, 1).unwrap();
        c.backup(&image, 65536).unwrap();
        c.call_ok(code::TAPE_CLOSE, &[]).unwrap();
    }
    server.stop();
    let stats = run(&data, &["stats"]);
    let logical = stats["logical_bytes"].as_u64().unwrap();
    let stored = stats["stored_bytes"].as_u64().unwrap();
    let one = image.len() as u64;
    eprintln!("two NDMP backups of {one} bytes: logical {logical}, stored {stored}");
    assert!(logical >= 2 * one, "logical {logical}");
    assert!(stored < one * 12 / 10, "stored {stored} bytes for two copies of {one}");
}

/// The repository's `harness/` directory.
fn harness() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../harness")
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The fixed ndmjob, built (or found in its cache) by `harness/build_ndmjob.sh`; `None` with
/// the reason printed when it cannot be had outside CI. Under `CI=true` that is a failure.
fn fixed_ndmjob() -> Option<PathBuf> {
    let out = Command::new("bash").arg(harness().join("build_ndmjob.sh")).stdin(Stdio::null()).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let path = String::from_utf8_lossy(&out.stdout).lines().last().map(PathBuf::from);
    match path {
        Some(p) if out.status.success() && p.is_file() => Some(p),
        _ => {
            assert!(!ci(), "CI=true: harness/build_ndmjob.sh could not provide ndmjob:\n{log}");
            eprintln!(
                "SKIP ndmjob conformance: harness/build_ndmjob.sh failed (run as root, or scripts/test-all.sh):\n{log}"
            );
            None
        }
    }
}

/// Whether this process can capture on the loopback with tshark (root and tshark present).
fn can_capture() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    root && Command::new("tshark").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// NDMP's registered port. tshark's NDMP dissector decodes only this port (`-d
/// tcp.port==N,ndmp` leaves other ports undecoded), so the wire check needs the server on
/// it; every other test in this crate binds port 0.
const NDMP_PORT: u16 = 10000;

/// The listen address for the conformance run, and whether tshark checks its frames:
/// 127.0.0.1:10000 with the capture when the port is free and capturing is possible. Under
/// `CI=true` both are required; elsewhere the run falls back to port 0 without the capture
/// and says why.
fn conformance_listen_address() -> (String, bool) {
    let port_free = TcpListener::bind(("127.0.0.1", NDMP_PORT)).is_ok();
    let capture = can_capture();
    if ci() {
        assert!(
            port_free,
            "CI=true: port {NDMP_PORT} on 127.0.0.1 is taken by another process, and the tshark NDMP check \
             needs it (tshark decodes NDMP only on {NDMP_PORT}); stop that process (ss -ltnp sport = :{NDMP_PORT})"
        );
        assert!(capture, "CI=true: the tshark NDMP wire check needs root and tshark (Debian package tshark)");
    }
    if port_free && capture {
        (format!("127.0.0.1:{NDMP_PORT}"), true)
    } else {
        eprintln!(
            "NOTE: no tshark wire check: {}",
            if port_free { "needs root and tshark" } else { "port 10000 is taken" }
        );
        ("127.0.0.1:0".into(), false)
    }
}

/// Every check the probe makes, by the names it prints: for v3 and v4 query, both
/// authentications, each test-mover phase, tar backups and restores at two record sizes and
/// through the robot, and each test-tape phase T-OC .. T-MTIO.
fn expected_checks() -> Vec<String> {
    let mover =
        ["M-IDLE", "M-LISTEN", "M-LISTEN/bogus-args", "M-LISTEN/not-open", "M-LISTEN/tape-ro", "M-LISTEN/tape-rw"];
    let tape = ["T-OC", "T-BGS", "T-BW", "T-BR", "T-BWR", "T-WRITE", "T-READ", "T-MTIO"];
    let mut names = Vec::new();
    for v in ["v3", "v4"] {
        names.extend(["query", "auth-md5", "auth-reject", "robot-query"].map(|t| format!("{t}-{v}")));
        names.extend(mover.iter().chain(&["FINAL"]).map(|p| format!("test-mover-{v}:{p}")));
        for e in ["b20", "b128"] {
            names.extend(["backup", "restore"].map(|op| format!("e2e-{op}-{v}-{e}")));
        }
        names.extend(["backup", "restore"].map(|op| format!("e2e-{op}-robot-{v}")));
        names.extend(tape.iter().chain(&["FINAL"]).map(|p| format!("test-tape-{v}:{p}")));
    }
    names
}

#[test]
fn ndmjob_conformance_backup_robot_and_wire_check() {
    let Some(ndmjob) = fixed_ndmjob() else { return };
    let (tmp, data) = setup(1);
    // The robot gets the second drive and the first full storage slot.
    let show = run(&data, &["ndmp", "show"]);
    let tapes: Vec<_> = show["devices"].as_array().unwrap().iter().filter(|d| d["kind"] == "tape").cloned().collect();
    let slot = show["slots"].as_array().unwrap().iter().find(|s| !s["barcode"].is_null()).unwrap()["element_address"]
        .to_string();
    let (listen, capture) = conformance_listen_address();
    let server = Server::start(&data, &["--ndmp-listen", &listen]);
    let port = server.listening["ndmp"].rsplit_once(':').unwrap().1.to_string();
    let out = Command::new("python3")
        .arg(harness().join("ndmp_probe.py"))
        .args(["--port", &port, "--user", "ndmp", "--password", "secret"])
        .args(["--tape", tapes[0]["name"].as_str().unwrap(), "--versions", "3", "4"])
        .args(["--robot", "lib/changer", "--robot-slot", &slot])
        .args(["--robot-drive", &tapes[1]["element_address"].to_string()])
        .args(["--robot-tape", tapes[1]["name"].as_str().unwrap()])
        .args(["--capture", if capture { "yes" } else { "no" }])
        .arg("--ndmjob")
        .arg(&ndmjob)
        .arg("--work")
        .arg(tmp.path().join("probe"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    server.stop();
    // A probe line is "KIND  NAME" or "KIND  NAME -- why"; the tshark line adds counts.
    let result = |kind: &str, name: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix(kind))
            .map(str::trim_start)
            .any(|rest| rest == name || rest.strip_prefix(name).is_some_and(|after| after.starts_with(' ')))
    };
    let not_passed: Vec<String> = expected_checks().into_iter().filter(|n| !result("PASS", n)).collect();
    assert!(not_passed.is_empty(), "checks that did not pass: {not_passed:?}");
    if capture {
        assert!(result("PASS", "tshark-decode"), "the tshark wire check did not pass");
    }
    let last = text.lines().last().unwrap_or_default();
    assert!(last.ends_with(" 0 failed, 0 skipped") && out.status.success(), "probe: {last}");
}
