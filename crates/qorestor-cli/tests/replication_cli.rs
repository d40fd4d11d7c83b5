//! `qorestor replication ...` through the binary: the status contract (`state`, `bytes_sent`,
//! `logical_bytes`), a read-only replica, refused flag combinations, and a pass over TLS to
//! another system's `serve --replication-listen`.

mod common;

use std::process::{Output, Stdio};

use common::{qorestor, random, Server};
use serde_json::Value;

fn run(data: &std::path::Path, args: &[&str]) -> Output {
    qorestor(data).args(args).stdin(Stdio::null()).output().unwrap()
}

fn json(data: &std::path::Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = run(data, &all);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn replication_commands_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    common::init(&src);
    let file = tmp.path().join("f.bin");
    let bytes: Vec<u8> = (0..2_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    json(&src, &["container", "add", "nightly", "--storage-group", "DefaultGroup", "--type", "object"]);
    json(&src, &["put", "nightly/mon", file.to_str().unwrap()]);
    json(&src, &["put", "nightly/tue", file.to_str().unwrap()]);

    let t = dst.to_str().unwrap();
    let bad = run(&src, &["replication", "add", "nightly", "--target", t, "--encryption", "aes256"]);
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
    let bad = run(&src, &["replication", "add", "nightly", "--target", t, "--limit", "50MB"]);
    assert_eq!(bad.status.code(), Some(2));
    let added = json(&src, &["replication", "add", "nightly", "--target", t, "--limit", "500MB/s"]);
    assert_eq!((added["state"].as_str(), added["limit_bytes_per_s"].as_u64()), (Some("idle"), Some(500_000_000)));

    let done = json(&src, &["replication", "start", "nightly"]);
    assert_eq!(done["state"], "idle");
    assert_eq!(done["logical_bytes"].as_u64(), Some(2 * bytes.len() as u64));
    let sent = done["bytes_sent"].as_u64().unwrap();
    // Two equal streams: one stored copy crosses (compressed as stored), plus the exchange.
    let stored = json(&src, &["stats"])["stored_bytes"].as_u64().unwrap();
    assert!(sent > stored / 2 && sent < stored + 100_000, "sent {sent} bytes for {stored} stored");
    let status = json(&src, &["replication", "status", "nightly"]);
    assert_eq!((status["bytes_sent"].as_u64(), status["streams_replicated"].as_u64()), (Some(sent), Some(2)));

    // The replica reads back and refuses writes.
    let out = run(&dst, &["get", "nightly/tue", "-"]);
    assert!(out.status.success() && out.stdout == bytes);
    let refused = run(&dst, &["put", "nightly/x", file.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("read-only replica"));

    assert_eq!(json(&src, &["replication", "stop", "nightly"])["state"], "stopped");
    let resync = json(&src, &["replication", "resync", "nightly"]);
    assert_eq!((resync["state"].as_str(), resync["last"]["chunks_sent"].as_u64()), (Some("idle"), Some(0)));
    assert_eq!(json(&src, &["replication", "delete", "nightly"])["deleted"], true);
    assert_eq!(run(&src, &["replication", "status", "nightly"]).status.code(), Some(1));
}

/// Bytes of the pack files under a data directory.
fn pack_bytes(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                pack_bytes(&p)
            } else if p.extension().is_some_and(|x| x == "pack") {
                e.metadata().map_or(0, |m| m.len())
            } else {
                0
            }
        })
        .sum()
}

/// A pass killed with SIGKILL mid-way is resumed by the next `start`: the replica reads back
/// bit-exact and verifies. A throttled pass stays within its limit (averaged over the run).
#[test]
fn a_killed_pass_resumes_and_a_throttled_pass_keeps_its_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    common::init(&src);
    let file = tmp.path().join("random.bin");
    // Incompressible: every byte of the 12 MB crosses.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let bytes: Vec<u8> = (0..12_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    std::fs::write(&file, &bytes).unwrap();
    json(&src, &["container", "add", "c", "--storage-group", "DefaultGroup", "--type", "object"]);
    json(&src, &["put", "c/big", file.to_str().unwrap()]);
    let t = dst.to_str().unwrap();
    json(&src, &["replication", "add", "c", "--target", t, "--limit", "4MB/s"]);

    // Killed once some 2 MB reached the target, part way through a ~3 s pass.
    let mut child = qorestor(&src).args(["replication", "start", "c"]).stdin(Stdio::null()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while pack_bytes(&dst) < 2_000_000 {
        assert!(std::time::Instant::now() < deadline, "nothing reached the target");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(json(&src, &["replication", "status", "c"])["state"], "interrupted");

    let started = std::time::Instant::now();
    let done = json(&src, &["replication", "start", "c"]);
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(done["state"], "idle");
    let sent = done["bytes_sent"].as_u64().unwrap() as f64;
    // The resumed pass sent only what had not arrived, within 10% of 4 MB/s.
    assert!(sent < bytes.len() as f64 * 0.95, "the resumed pass sent {sent} bytes again");
    assert!(sent / wall <= 4e6 * 1.10, "{sent} bytes in {wall:.2} s is over the limit");
    let out = run(&dst, &["get", "c/big", "-"]);
    assert!(out.status.success() && out.stdout == bytes, "the replica differs");
    let verify = run(&dst, &["verify"]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));

    // A whole throttled pass (resync: the recipe again, no chunk) and a fresh one elsewhere.
    let dst2 = tmp.path().join("dst2");
    json(&src, &["replication", "delete", "c"]);
    json(&src, &["replication", "add", "c", "--target", dst2.to_str().unwrap(), "--limit", "6MB/s"]);
    let started = std::time::Instant::now();
    let full = json(&src, &["replication", "start", "c"]);
    let wall = started.elapsed().as_secs_f64();
    let sent = full["bytes_sent"].as_u64().unwrap() as f64;
    assert!(sent >= bytes.len() as f64, "{sent}");
    assert!(sent / wall <= 6e6 * 1.10, "{sent} bytes in {wall:.2} s is over the 6 MB/s limit");
}

/// Runs `qorestor ARGS` with `input` on stdin.
fn run_with_stdin(data: &std::path::Path, args: &[&str], input: &[u8]) -> Output {
    let mut child =
        qorestor(data).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // A command refused as bad usage may exit before reading: a closed pipe is fine then.
    let _ = std::io::Write::write_all(&mut child.stdin.take().unwrap(), input);
    child.wait_with_output().unwrap()
}

#[test]
fn a_pass_over_tls_to_another_systems_listener() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    common::init(&src);
    common::init(&dst);
    let file = tmp.path().join("f.bin");
    let bytes = random(3 << 20, 5);
    std::fs::write(&file, &bytes).unwrap();
    json(&src, &["container", "add", "nightly", "--type", "object"]);
    json(&src, &["put", "nightly/mon", file.to_str().unwrap()]);
    let set = run_with_stdin(&dst, &["--json", "replication", "set-password", "--password-stdin"], b"pw-for-dr\n");
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));

    let server = Server::start(&dst, &["--replication-listen", "127.0.0.1:0"]);
    let target = server.listening["replication"].clone();
    // Refused before anything is stored: no password, a password for a directory.
    let none = run(&src, &["replication", "add", "nightly", "--target", &target]);
    assert_eq!(none.status.code(), Some(2), "{}", String::from_utf8_lossy(&none.stderr));
    assert!(String::from_utf8_lossy(&none.stderr).contains("replication password"));
    let dir = tmp.path().join("elsewhere");
    let args = ["replication", "add", "nightly", "--target", dir.to_str().unwrap(), "--password-stdin"];
    assert_eq!(run_with_stdin(&src, &args, b"x\n").status.code(), Some(2));
    let args =
        ["--json", "replication", "add", "nightly", "--target", &target, "--encryption", "aes256", "--password-stdin"];
    // A wrong password is refused at add by the live target, and nothing is stored.
    let wrong = run_with_stdin(&src, &args, b"not-the-pw\n");
    assert_eq!(wrong.status.code(), Some(1), "{}", String::from_utf8_lossy(&wrong.stderr));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong replication password"));
    assert_eq!(run(&src, &["replication", "status", "nightly"]).status.code(), Some(1));
    let added = run_with_stdin(&src, &args, b"pw-for-dr\n");
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let added: Value = serde_json::from_slice(&added.stdout).unwrap();
    assert_eq!(added["encryption"], "aes256");
    let done = json(&src, &["replication", "start", "nightly"]);
    assert_eq!((done["state"].as_str(), done["logical_bytes"].as_u64()), (Some("idle"), Some(bytes.len() as u64)));
    let sent = done["bytes_sent"].as_u64().unwrap();
    assert!(sent > bytes.len() as u64 && sent < bytes.len() as u64 + 200_000, "{sent}");
    server.stop();
    let out = run(&dst, &["get", "nightly/mon", "-"]);
    assert!(out.status.success() && out.stdout == bytes);

    // A second pass with the daemon down fails, naming the target, and says so in the status.
    let failed = run(&src, &["replication", "start", "nightly"]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stderr).contains(&target));
    assert_eq!(json(&src, &["replication", "status", "nightly"])["state"], "failed");

    // With the target down the password cannot be checked: added, saying so.
    json(&src, &["container", "add", "weekly", "--type", "object"]);
    let args = ["replication", "add", "weekly", "--target", &target, "--password-stdin"];
    let unchecked = run_with_stdin(&src, &args, b"pw-for-dr\n");
    assert!(unchecked.status.success(), "{}", String::from_utf8_lossy(&unchecked.stderr));
    let err = String::from_utf8_lossy(&unchecked.stderr);
    assert!(err.contains(&format!("the password could not be checked with {target}")), "{err}");
}
