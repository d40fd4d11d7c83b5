//! NDMP end to end: `qorestor ndmp show|update`, `serve --ndmp-listen` driven by the crate's
//! minimal DMA (dedup across two cartridges shown by `stats`), and the real DMA and
//! conformance tool (Amanda's ndmjob, through `../shared/harness/ndmp_probe.sh`).

mod common;

use std::io::Write;
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

/// The repository's shared directory (`../shared` next to the repository root).
fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

#[test]
fn ndmjob_conformance_and_backup_through_ndmp_probe() {
    let ndmjob = Path::new("/usr/lib/amanda/ndmjob");
    let probe = shared_dir().join("harness/ndmp_probe.sh");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if !ndmjob.exists() || !probe.exists() {
        let why = format!("needs {} (amanda-common) and {}", ndmjob.display(), probe.display());
        assert!(!ci, "CI=true: {why}");
        eprintln!("SKIP ndmjob probe: {why}");
        return;
    }
    let (tmp, data) = setup(1);
    // The robot gets the second drive and the first full storage slot.
    let show = run(&data, &["ndmp", "show"]);
    let tapes: Vec<_> = show["devices"].as_array().unwrap().iter().filter(|d| d["kind"] == "tape").cloned().collect();
    let slot = show["slots"].as_array().unwrap().iter().find(|s| !s["barcode"].is_null()).unwrap()["element_address"]
        .to_string();
    // Port 10000, NDMP's own: tshark's NDMP dissector does not decode other ports (the
    // probe's `-d tcp.port==PORT,ndmp` leaves them as raw data), so the wire check needs it.
    let server = Server::start(&data, &["--ndmp-listen", "127.0.0.1:10000"]);
    let (host, port) = server.listening["ndmp"].rsplit_once(':').unwrap();
    let out = Command::new("bash")
        .arg(&probe)
        .args([host, port, "ndmp", "secret", tapes[0]["name"].as_str().unwrap()])
        .env("NDMP_PROBE_WORK", tmp.path().join("probe"))
        .env("NDMP_PROBE_TIMEOUT", "120")
        .env("NDMP_PROBE_ROBOT", "lib/changer")
        .env("NDMP_PROBE_ROBOT_SLOT", &slot)
        .env("NDMP_PROBE_ROBOT_DRIVE", tapes[1]["element_address"].to_string())
        .env("NDMP_PROBE_ROBOT_TAPE", tapes[1]["name"].as_str().unwrap())
        // Debian's ndmjob compares the bytes it read back in T-BWR through a signed `char`
        // against values 0..255, so bytes >= 0x80 never match whatever the server returns
        // (its log shows "0: 0xfc => 0xfffffffc"); test-tape stops there. The later phases'
        // checks are covered by qorestor-ndmp's tests/ndmp/tape.rs.
        .env("NDMP_PROBE_XFAIL", "test-tape-v3:T-BWR test-tape-v4:T-BWR")
        .env("NDMP_VERSIONS", "3 4")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    server.stop();
    assert!(out.status.success(), "ndmp_probe.sh failed");
    let mut expected = Vec::new();
    for v in ["v3", "v4"] {
        for t in [
            "query",
            "auth-md5",
            "auth-reject",
            "test-mover:M-IDLE",
            "test-mover:M-LISTEN",
            "test-mover:M-LISTEN/bogus-args",
            "test-mover:M-LISTEN/not-open",
            "test-mover:M-LISTEN/tape-ro",
            "test-mover:M-LISTEN/tape-rw",
            "e2e-backup:b20",
            "e2e-restore:b20",
            "e2e-backup:b128",
            "e2e-restore:b128",
            "robot-query",
            "e2e-backup-robot",
            "e2e-restore-robot",
            "test-tape:T-OC",
            "test-tape:T-BGS",
            "test-tape:T-BW",
            "test-tape:T-BR",
        ] {
            // The probe's names: query-v4, test-mover-v4:M-IDLE, e2e-backup-v4-b20,
            // e2e-backup-robot-v4.
            expected.push(match t.split_once(':') {
                Some((op, phase)) if op.starts_with("e2e") => format!("{op}-{v}-{phase}"),
                Some((op, phase)) => format!("{op}-{v}:{phase}"),
                None => format!("{t}-{v}"),
            });
        }
    }
    let capture = Command::new("tshark").arg("--version").output().is_ok_and(|o| o.status.success())
        && std::fs::read_to_string("/proc/self/status").unwrap_or_default().lines().any(|l| l.starts_with("Uid:\t0\t"));
    if capture {
        expected.push("tshark-decode".into());
    } else {
        assert!(!ci, "CI=true: the tshark wire check needs tshark and root");
    }
    for name in &expected {
        assert!(text.lines().any(|l| l.starts_with(&format!("PASS  {name}"))), "{name} did not pass");
    }
}
