//! The iSCSI target end to end: `qorestor iscsi ...` commands, and `serve --iscsi-listen`
//! driven by real initiators through the repository's `harness/`: libiscsi's tools and raw
//! SMC/SSC CDBs sent through libiscsi (`vtl_probe.py`, open and with CHAP), and the Linux
//! kernel's tape stack in a QEMU guest (`qemu_tape_client.sh`). Every server binds port 0.
//! Where a client is missing these tests are skipped with the reason printed, except under
//! `CI=true`, where a missing client fails them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use common::{qorestor, Server};
use serde_json::Value;

/// One real-client run at a time: the QEMU guest alone keeps a core busy.
static HARNESS: Mutex<()> = Mutex::new(());

const SYSTEM: &str = "itest";
const IQN: &str = "iqn.2024-01.org.qorestor:itest:lib1";

/// The repository's `harness/` directory.
fn harness() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../harness")
}

/// Whether the clients `tools` exist; when one is missing, fails under CI and otherwise says
/// why the test is skipped.
fn clients_present(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            let p = Path::new(t);
            if p.is_absolute() {
                !p.exists()
            } else {
                !Command::new("sh")
                    .args(["-c", &format!("command -v {t}")])
                    .stdout(Stdio::null())
                    .status()
                    .unwrap()
                    .success()
            }
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("missing {missing:?} (scripts/test-all.sh installs them as root)");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: real-client test cannot run: {why}");
    eprintln!("skipped: {why}");
    false
}

fn ok(data: &Path, args: &[&str]) -> Output {
    let out = qorestor(data).args(args).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn json(data: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_slice(&ok(data, &all).stdout).unwrap()
}

/// A data directory with library `lib1` (2 drives, 3 cartridges) on system `itest`.
fn library() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::init(&data);
    ok(&data, &["system", "set-name", SYSTEM]);
    ok(
        &data,
        &["vtl", "add", "lib1", "--storage-group", "DefaultGroup", "--slots", "6", "--drives", "2", "--tapes", "3"],
    );
    (tmp, data)
}

fn set_password(data: &Path, args: &[&str], secret: &str) -> Output {
    let mut child = qorestor(data)
        .args(["iscsi", "set-password"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    // A usage error exits before reading stdin: a broken pipe here is expected then.
    let _ = child.stdin.take().unwrap().write_all(format!("{secret}\n").as_bytes());
    child.wait_with_output().unwrap()
}

/// Runs a harness script (`.py` with python3, `.sh` with bash); returns its output and the
/// counts of its last line, "N passed, M failed, K skipped".
fn run_script(script: &str, args: &[&str]) -> (String, (u32, u32, u32)) {
    let interpreter = if script.ends_with(".py") { "python3" } else { "bash" };
    let out = Command::new(interpreter).arg(harness().join(script)).args(args).stdin(Stdio::null()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let last = text.lines().rev().find(|l| l.contains(" passed, ")).unwrap_or_default().to_string();
    let n: Vec<u32> = last.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
    let counts = match n[..] {
        [p, f, s] => (p, f, s),
        _ => panic!("{script}: no closing count line:\n{text}"),
    };
    (text, counts)
}

fn libiscsi_tools(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn iscsi_show_and_chap_commands() {
    let (_tmp, data) = library();
    let show = json(&data, &["iscsi", "show"]);
    assert_eq!(show["system_name"], SYSTEM);
    assert_eq!(show["chap"], Value::Null);
    let t = &show["targets"][0];
    assert_eq!(t["name"], IQN);
    assert_eq!(t["alias"], "lib1");
    let luns = t["luns"].as_array().unwrap();
    assert_eq!(luns.len(), 3);
    assert_eq!((luns[0]["lun"].as_u64(), luns[0]["kind"].as_str()), (Some(0), Some("changer")));
    assert_eq!((luns[1]["lun"].as_u64(), luns[1]["element_address"].as_u64()), (Some(1), Some(500)));
    assert_eq!((luns[2]["kind"].as_str(), luns[2]["drive"].as_u64()), (Some("tape"), Some(1)));

    let out = set_password(&data, &["--user", "backup01", "--password-stdin", "--discovery-auth"], "initiator-secret");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let chap = &json(&data, &["iscsi", "show"])["chap"];
    assert_eq!((chap["user"].as_str(), chap["discovery_auth"].as_bool()), (Some("backup01"), Some(true)));
    assert_eq!(chap["mutual_user"], Value::Null);
    // The secret is never shown.
    let text = String::from_utf8(ok(&data, &["iscsi", "show"]).stdout).unwrap();
    assert!(text.contains("backup01") && !text.contains("initiator-secret"), "{text}");

    // Mutual CHAP needs both flags, and a secret different from the initiator's.
    let file = data.parent().unwrap().join("mutual");
    std::fs::write(&file, "initiator-secret\r\n").unwrap();
    let f = file.to_str().unwrap();
    let same = set_password(
        &data,
        &["--user", "u", "--password-stdin", "--mutual-user", "t", "--mutual-password-file", f],
        "initiator-secret",
    );
    assert_eq!(same.status.code(), Some(2), "{}", String::from_utf8_lossy(&same.stderr));
    let half = set_password(&data, &["--user", "u", "--password-stdin", "--mutual-user", "t"], "s");
    assert_eq!(half.status.code(), Some(2));
    let empty = set_password(&data, &["--user", "u", "--password-stdin"], "");
    assert_eq!(empty.status.code(), Some(2));
    std::fs::write(&file, "target-secret\n").unwrap();
    let out = set_password(
        &data,
        &["--user", "u", "--password-stdin", "--mutual-user", "t", "--mutual-password-file", f],
        "initiator-s1",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json(&data, &["iscsi", "show"])["chap"]["mutual_user"], "t");

    assert_eq!(json(&data, &["iscsi", "clear-password"])["cleared"], true);
    assert_eq!(json(&data, &["iscsi", "show"])["chap"], Value::Null);
    assert_eq!(json(&data, &["iscsi", "clear-password"])["cleared"], false);
}

#[test]
fn vtl_probe_passes_strict_open_and_with_chap() {
    if !clients_present(&["iscsi-ls", "iscsi-inq", "cc", "pkg-config", "python3", "/usr/include/iscsi/iscsi.h"]) {
        return;
    }
    let _one = HARNESS.lock().unwrap_or_else(|e| e.into_inner());
    let (_tmp, data) = library();

    // Open target: every check, none skipped.
    let server = Server::start(&data, &["--iscsi-listen", "127.0.0.1:0"]);
    let addr = server.listening["iscsi"].clone();
    let (text, (passed, failed, skipped)) = run_script("vtl_probe.py", &[&addr, IQN]);
    println!("{text}");
    assert_eq!((failed, skipped), (0, 0), "vtl_probe.py (open):\n{text}");
    assert!(passed >= 46, "{text}");
    server.stop();

    // CHAP with mutual credentials.
    let file = data.parent().unwrap().join("mutual");
    std::fs::write(&file, "target-secret-2\n").unwrap();
    let f = file.to_str().unwrap();
    let out = set_password(
        &data,
        &["--user", "backup01", "--password-stdin", "--mutual-user", "tgt01", "--mutual-password-file", f],
        "initiator-secret",
    );
    assert!(out.status.success());
    let server = Server::start(&data, &["--iscsi-listen", "127.0.0.1:0"]);
    let addr = server.listening["iscsi"].clone();
    let portal = format!("backup01%initiator-secret@{addr}");
    let (text, (passed, failed, skipped)) = run_script("vtl_probe.py", &[&portal, IQN]);
    println!("{text}");
    assert_eq!((failed, skipped), (0, 0), "vtl_probe.py (CHAP):\n{text}");
    assert!(passed >= 46, "{text}");

    // Discovery stays open; a normal session with a wrong secret (or none) sees no LUN.
    let i = ["-i", "iqn.2024-01.test.harness:itest"];
    let open = libiscsi_tools("iscsi-ls", &[i[0], i[1], &format!("iscsi://{addr}")]);
    assert!(open.contains(&format!("Target:{IQN}")), "{open}");
    for url in [format!("iscsi://backup01%wrong-secret@{addr}"), format!("iscsi://{addr}")] {
        let out = libiscsi_tools("iscsi-ls", &[i[0], i[1], "-s", &url]);
        assert!(!out.contains("Lun:"), "{url}: {out}");
    }
    // Mutual CHAP: the initiator checks the target's answer.
    let lun0 = format!("iscsi://{portal}/{IQN}/0");
    let good = libiscsi_tools(
        "iscsi-inq",
        &[i[0], i[1], &format!("{lun0}?target_user=tgt01&target_password=target-secret-2")],
    );
    assert!(good.contains("MEDIA_CHANGER"), "{good}");
    let bad = libiscsi_tools("iscsi-inq", &[i[0], i[1], &format!("{lun0}?target_user=tgt01&target_password=not-it")]);
    assert!(!bad.contains("MEDIA_CHANGER"), "{bad}");
    // Header digests (CRC32C) with a real initiator.
    let digest = libiscsi_tools("iscsi-inq", &[i[0], i[1], &format!("{lun0}?header_digest=crc32c")]);
    assert!(digest.contains("MEDIA_CHANGER"), "{digest}");
    server.stop();

    // --discovery-auth closes discovery to initiators without the secret.
    let out = set_password(&data, &["--user", "backup01", "--password-stdin", "--discovery-auth"], "initiator-secret");
    assert!(out.status.success());
    let server = Server::start(&data, &["--iscsi-listen", "127.0.0.1:0"]);
    let addr = server.listening["iscsi"].clone();
    let closed = libiscsi_tools("iscsi-ls", &[i[0], i[1], &format!("iscsi://{addr}")]);
    assert!(!closed.contains("Target:"), "{closed}");
    let with = libiscsi_tools("iscsi-ls", &[i[0], i[1], &format!("iscsi://backup01%initiator-secret@{addr}")]);
    assert!(with.contains(&format!("Target:{IQN}")), "{with}");
    server.stop();
}

#[test]
fn linux_tape_stack_in_qemu_passes() {
    let tools = [
        "qemu-system-x86_64",
        "cpio",
        "mtx",
        "mt-st",
        "tapeinfo",
        "sg_inq",
        "/bin/busybox",
        "/usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so",
    ];
    if !clients_present(&tools) {
        return;
    }
    let _one = HARNESS.lock().unwrap_or_else(|e| e.into_inner());
    let (_tmp, data) = library();
    let server = Server::start(&data, &["--iscsi-listen", "127.0.0.1:0"]);
    let addr = server.listening["iscsi"].clone();
    // LUN 1 is drive 0, the drive with the lowest element address.
    let (text, (passed, failed, skipped)) = run_script("qemu_tape_client.sh", &[&addr, IQN, "0", "1"]);
    println!("{text}");
    assert_eq!((failed, skipped), (0, 0), "qemu_tape_client.sh:\n{text}");
    assert!(passed >= 16, "{text}");
    server.stop();
    // The data the guest wrote is on the cartridge after the daemon stopped.
    let show = json(&data, &["vtl", "show", "lib1"]);
    let used = show["cartridges"].as_array().unwrap().iter().map(|c| c["used_bytes"].as_u64().unwrap()).max().unwrap();
    assert!(used >= 8 * 65536 + 3 * 32768, "{show}");
}

#[test]
fn chap_secrets_take_12_to_255_characters_with_a_warning_above_16() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::init(&data);
    let args = ["--user", "backup01", "--password-stdin"];
    let short = set_password(&data, &args, "elevenchars");
    assert_eq!(short.status.code(), Some(2));
    let err = String::from_utf8_lossy(&short.stderr);
    assert!(err.contains("11 characters") && err.contains("12 to 255") && !err.contains("elevenchars"), "{err}");
    assert_eq!(json(&data, &["iscsi", "show"])["chap"], Value::Null);

    for (secret, warned) in [("twelve-chars", false), ("sixteen-chars-ok", false), ("seventeen-chars-x", true)] {
        let out = set_password(&data, &args, secret);
        assert!(out.status.success(), "{secret}: {}", String::from_utf8_lossy(&out.stderr));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.contains("Microsoft's iSCSI initiator refuses secrets longer than 16"),
            warned,
            "{secret}: {err}"
        );
    }
    assert!(set_password(&data, &args, &"x".repeat(255)).status.success());
    assert_eq!(set_password(&data, &args, &"x".repeat(256)).status.code(), Some(2));
}
