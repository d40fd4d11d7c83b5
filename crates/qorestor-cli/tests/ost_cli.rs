//! `qorestor serve --ost-listen` with the `user` and `ost` commands, as processes: users added
//! with their roles, images written in every mode with `ost put` and read back bit-exact with
//! `ost get`, listed with `ost ls --json`, deleted with `ost rm`, refusals with clear errors,
//! an `ost put` killed mid-image leaving no image, and `ost show` on the data directory once
//! serve has stopped.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use common::{qorestor, random, run_ok, Server};

fn password_file(dir: &Path, password: &str) -> String {
    let p = dir.join(format!("pw-{}", password.len()));
    std::fs::write(&p, format!("{password}\n")).unwrap();
    p.display().to_string()
}

fn ost(data: &Path, server: &str, user: &str, pw: &str, args: &[&str]) -> std::process::Output {
    let mut full = vec!["ost", args[0], "--server", server, "--user", user, "--password-file", pw];
    full.extend_from_slice(&args[1..]);
    qorestor(data).args(&full).stdin(Stdio::null()).output().unwrap()
}

#[test]
fn ost_put_get_ls_rm_through_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::init(&data);
    run_ok(&data, &["container", "add", "lsu1", "--storage-group", "DefaultGroup", "--type", "ost"], None);
    run_ok(&data, &["user", "add", "backup", "--role", "ost", "--password-stdin"], Some(b"s3cret-pass\n"));
    run_ok(&data, &["user", "add", "watcher", "--role", "monitor", "--password-stdin"], Some(b"s3cret-pass\n"));
    let list = run_ok(&data, &["--json", "user", "list"], None);
    let users: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(users[0]["name"], "backup");
    assert_eq!(users[0]["role"], "ost");
    assert_eq!(users[1]["role"], "monitor");
    // Put refuses an OST storage unit's streams: they belong to the OST server.
    let put = qorestor(&data).args(["put", "lsu1/x", "-"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(put.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&put.stderr).contains("OST storage unit"));

    let server = Server::start(&data, &["--ost-listen", "127.0.0.1:0"]);
    let addr = server.listening["ost"].clone();
    let pw = password_file(tmp.path(), "s3cret-pass");
    let input = tmp.path().join("input");
    let bytes = random(5 << 20, 7);
    std::fs::write(&input, &bytes).unwrap();
    let input = input.display().to_string();
    for mode in ["auto", "passthrough", "dedupe"] {
        let out = ost(
            &data,
            &addr,
            "backup",
            &pw,
            &["put", "--lsu", "lsu1", "--image", mode, "--mode", mode, "--json", &input],
        );
        assert!(out.status.success(), "{mode}: {}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["logical_bytes"], 5 << 20);
        let sent = report["bytes_sent"].as_u64().unwrap();
        if mode == "passthrough" || mode == "auto" {
            assert!(sent > 5 << 20, "{mode}: {sent} bytes sent");
        } else {
            // The same bytes again, optimized: only fingerprints and recipe entries travel.
            assert!(sent < 200_000, "{mode}: {sent} bytes sent");
        }
        let restored = tmp.path().join(format!("restored-{mode}"));
        let out = ost(
            &data,
            &addr,
            "backup",
            &pw,
            &["get", "--lsu", "lsu1", "--image", mode, &restored.display().to_string()],
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(std::fs::read(&restored).unwrap() == bytes, "{mode} differs");
    }
    let out = ost(&data, &addr, "backup", &pw, &["ls", "--lsu", "lsu1", "--json"]);
    let images: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = images.as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["auto", "dedupe", "passthrough"]);
    assert!(images
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["logical_bytes"] == 5 << 20 && i["copy"] == 1 && i["date"].as_u64().unwrap() > 1_700_000_000));
    let out = ost(&data, &addr, "backup", &pw, &["rm", "--lsu", "lsu1", "--image", "auto"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Refusals, each exit 1 with a clear message.
    let wrong = password_file(tmp.path(), "wrong-password-x");
    for (user, pw, says) in [
        ("backup", wrong.as_str(), "authentication failed"),
        ("nobody", pw.as_str(), "authentication failed"),
        ("watcher", pw.as_str(), "role monitor"),
    ] {
        let out = ost(&data, &addr, user, pw, &["ls", "--lsu", "lsu1"]);
        assert_eq!(out.status.code(), Some(1), "{user}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{user}: {err}");
    }
    // An `ost put` killed mid-image leaves no image.
    let mut put = qorestor(&data)
        .args(["ost", "put", "--server", &addr, "--user", "backup", "--password-file", &pw])
        .args(["--lsu", "lsu1", "--image", "killed", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = put.stdin.take().unwrap();
    stdin.write_all(&random(8 << 20, 8)).unwrap();
    put.kill().unwrap();
    put.wait().unwrap();
    drop(stdin);
    let out = ost(&data, &addr, "backup", &pw, &["ls", "--lsu", "lsu1", "--json"]);
    let images: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(images.as_array().unwrap().iter().all(|i| i["name"] != "killed"), "{images}");
    server.stop();
    let show = run_ok(&data, &["--json", "ost", "show"], None);
    let lsus: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(lsus[0]["name"], "lsu1");
    assert_eq!(lsus[0]["images"].as_array().unwrap().len(), 2);
}
