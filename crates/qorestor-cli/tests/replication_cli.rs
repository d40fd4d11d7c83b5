//! `qorestor replication ...` through the binary: the status contract (`state`, `bytes_sent`,
//! `logical_bytes`), a read-only replica, and refused flag combinations.

mod common;

use std::process::{Output, Stdio};

use common::qorestor;
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
