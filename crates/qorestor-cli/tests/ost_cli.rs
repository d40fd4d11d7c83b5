//! `qorestor serve --ost-listen` with the `user` and `ost` commands, as processes: users added
//! with their roles, images written in every mode with `ost put` and read back bit-exact with
//! `ost get`, listed with `ost ls --json`, deleted with `ost rm`, refusals with clear errors,
//! an `ost put` killed mid-image leaving no image, and `ost show` on the data directory once
//! serve has stopped; images not closed when the serving process is killed are gone after its
//! restart and the cleaner reclaims their chunks; `user list` with the iSCSI CHAP and NDMP users
//! marked as protocol secrets.

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

/// A data directory in `tmp` with the OST storage unit lsu1 and the user backup (role ost,
/// password s3cret-pass).
fn ost_store(tmp: &Path) -> std::path::PathBuf {
    let data = tmp.join("data");
    common::init(&data);
    run_ok(&data, &["container", "add", "lsu1", "--storage-group", "DefaultGroup", "--type", "ost"], None);
    run_ok(&data, &["user", "add", "backup", "--role", "ost", "--password-stdin"], Some(b"s3cret-pass\n"));
    data
}

/// Starts `ost put` of image `image` (as backup) from its stdin and writes `bytes` to it; the
/// image stays open until the stdin returned is closed.
fn put_unfinished(
    data: &Path,
    addr: &str,
    pw: &str,
    image: &str,
    mode: &str,
    bytes: &[u8],
) -> (std::process::Child, std::process::ChildStdin) {
    let mut put = qorestor(data)
        .args(["ost", "put", "--server", addr, "--user", "backup", "--password-file", pw])
        .args(["--lsu", "lsu1", "--image", image, "--mode", mode, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = put.stdin.take().unwrap();
    stdin.write_all(bytes).unwrap();
    (put, stdin)
}

#[test]
fn ost_put_get_ls_rm_through_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let data = ost_store(tmp.path());
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
    let (mut put, stdin) = put_unfinished(&data, &addr, &pw, "killed", "auto", &random(8 << 20, 8));
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

#[test]
fn user_list_shows_the_chap_and_ndmp_users_as_protocol_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::init(&data);
    let listed = |json: bool| {
        let args: &[&str] = if json { &["--json", "user", "list"] } else { &["user", "list"] };
        run_ok(&data, args, None).stdout
    };
    // Before any is set, only the users.
    run_ok(&data, &["user", "add", "backup", "--role", "ost", "--password-stdin"], Some(b"s3cret-pass\n"));
    let users: serde_json::Value = serde_json::from_slice(&listed(true)).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");
    assert_eq!((&users[0]["name"], &users[0]["kind"]), (&"backup".into(), &"user".into()));
    assert!(users[0]["created"].is_u64(), "{users}");

    let mutual = tmp.path().join("mutual");
    std::fs::write(&mutual, "target-secret-2\n").unwrap();
    let chap = [
        "iscsi",
        "set-password",
        "--user",
        "initiator01",
        "--password-stdin",
        "--mutual-user",
        "target01",
        "--mutual-password-file",
        mutual.to_str().unwrap(),
    ];
    run_ok(&data, &chap, Some(b"initiator-secret\n"));
    run_ok(&data, &["ndmp", "update", "--user", "dma", "--password-stdin"], Some(b"ndmp-secret-1\n"));

    let users: serde_json::Value = serde_json::from_slice(&listed(true)).unwrap();
    let lines: Vec<(String, String, String, bool)> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let s = |k: &str| u[k].as_str().unwrap().to_string();
            (s("name"), s("role"), s("kind"), u.get("created").is_some())
        })
        .collect();
    let line = |n: &str, r: &str, k: &str, created| (n.to_string(), r.to_string(), k.to_string(), created);
    assert_eq!(
        lines,
        [
            line("backup", "ost", "user", true),
            line("initiator01", "iscsi-chap", "protocol-secret", false),
            line("target01", "iscsi-chap-mutual", "protocol-secret", false),
            line("dma", "ndmp", "protocol-secret", false),
        ]
    );
    // The table marks them too, and neither form shows a secret.
    let table = String::from_utf8(listed(false)).unwrap();
    for (name, role) in [("initiator01", "iscsi-chap"), ("target01", "iscsi-chap-mutual"), ("dma", "ndmp")] {
        let row =
            table.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_else(|| panic!("{table}"));
        assert_eq!(row.split_whitespace().collect::<Vec<_>>(), [name, role, "protocol-secret"], "{table}");
    }
    let json = String::from_utf8(listed(true)).unwrap();
    for secret in ["initiator-secret", "target-secret-2", "ndmp-secret-1", "s3cret-pass"] {
        assert!(!table.contains(secret) && !json.contains(secret), "{secret} shown");
    }
}

/// The storage unit lsu1's physical (pack) bytes, through the OST server at `addr`.
fn physical_bytes(data: &Path, addr: &str, pw: &str) -> u64 {
    let out = ost(data, addr, "backup", pw, &["ls", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lsus: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    lsus[0]["physical_bytes"].as_u64().unwrap()
}

#[test]
fn images_not_closed_when_the_server_is_killed_are_gone_after_its_restart_and_the_cleaner_reclaims_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = ost_store(tmp.path());
    let pw = password_file(tmp.path(), "s3cret-pass");
    let server = Server::start(&data, &["--ost-listen", "127.0.0.1:0"]);
    let addr = server.listening["ost"].clone();
    let kept = tmp.path().join("kept");
    std::fs::write(&kept, random(3 << 20, 40)).unwrap();
    let out = ost(&data, &addr, "backup", &pw, &["put", "--lsu", "lsu1", "--image", "kept", kept.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = physical_bytes(&data, &addr, &pw);

    // Two images written, one per mode, neither closed when the serving process is killed.
    let mut puts = Vec::new();
    for (i, mode) in ["passthrough", "dedupe"].into_iter().enumerate() {
        let bytes = random(8 << 20, 50 + 2 * i as u64); // distinct seeds (random ORs 1 in)
        puts.push(put_unfinished(&data, &addr, &pw, &format!("open-{mode}"), mode, &bytes));
    }
    // Their chunks reach the packs (so there is something to reclaim); bounded wait for a hang.
    let waiting = std::time::Instant::now();
    loop {
        let now = physical_bytes(&data, &addr, &pw);
        if now >= before + (4 << 20) {
            break;
        }
        assert!(
            waiting.elapsed().as_secs() < 60,
            "the open images' bytes never reached the packs: {now}, {before} before"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let killed = server.serving_pid();
    let kill = std::process::Command::new("kill").args(["-KILL", &killed.to_string()]).status().unwrap();
    assert!(kill.success());
    let lines = server.wait_for_stderr("restarted as pid");
    assert!(lines.last().unwrap().contains(&format!("(pid {killed})")), "{lines:?}");

    let out = ost(&data, &addr, "backup", &pw, &["ls", "--lsu", "lsu1", "--json"]);
    let images: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = images.as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["kept"], "{images}");
    for (mut put, stdin) in puts {
        drop(stdin);
        put.kill().unwrap();
        put.wait().unwrap();
    }
    server.stop();
    run_ok(&data, &["cleaner", "run", "--compact-below", "1.0"], None);
    let stats = run_ok(&data, &["--json", "stats", "--storage-group", "DefaultGroup"], None);
    let after = serde_json::from_slice::<serde_json::Value>(&stats.stdout).unwrap()["stored_bytes"].as_u64().unwrap();
    assert!(
        after.abs_diff(before) as f64 <= before as f64 * 0.01,
        "pack bytes {after}, before the open images {before}"
    );
    let got = run_ok(&data, &["--json", "ost", "show"], None);
    let lsus: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(lsus[0]["images"].as_array().unwrap().len(), 1, "{lsus}");
}
