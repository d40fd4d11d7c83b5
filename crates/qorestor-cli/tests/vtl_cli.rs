//! End-to-end tests of `qorestor vtl ...` (the real binary, one process per command, so that
//! state crossing process restarts is what a later `serve` would find).

use std::process::{Command, Output, Stdio};

use serde_json::Value;

struct Env {
    _tmp: tempfile::TempDir,
    data: std::path::PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let env = Env { _tmp: tmp, data };
        env.json(&["init"]);
        env
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_qorestor"))
            .env_remove("QORESTOR_DATA")
            .arg("--data")
            .arg(&self.data)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: not one JSON document: {e}"))
    }

    fn fail(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("qorestor: ") && err.trim_end().lines().count() == 1, "{err}");
        assert!(out.stdout.is_empty());
        err
    }
}

#[test]
fn vtl_commands_end_to_end() {
    let env = Env::new();
    let lib = env.json(&[
        "vtl",
        "add",
        "lib1",
        "--storage-group",
        "DefaultGroup",
        "--slots",
        "6",
        "--drives",
        "2",
        "--ie-slots",
        "2",
        "--tapes",
        "3",
        "--tape-size",
        "10GB",
    ]);
    assert_eq!(lib["name"], "lib1");
    assert_eq!(lib["storage_group"], "DefaultGroup");
    assert_eq!(lib["library"]["vendor"], "STK");
    assert_eq!(lib["drives"].as_array().unwrap().len(), 2);
    assert_eq!(lib["drives"][0]["element_address"], 500);
    assert_eq!(lib["drives"][0]["barcode"], Value::Null);
    assert_eq!(lib["slots"].as_array().unwrap().len(), 6);
    assert_eq!(lib["ie_slots"].as_array().unwrap().len(), 2);
    let carts = lib["cartridges"].as_array().unwrap();
    assert_eq!(carts.len(), 3);
    assert_eq!(carts[0]["barcode"], "QS0001L5");
    assert_eq!(carts[0]["location"]["kind"], "slot");
    assert_eq!(carts[0]["location"]["element_address"], 1000);
    assert_eq!(carts[0]["capacity_bytes"], 10_000_000_000u64);
    // The container is a vtl container.
    assert_eq!(env.json(&["container", "show", "lib1"])["type"], "vtl");

    let added = env.json(&["vtl", "carts", "add", "lib1", "--count", "2", "--tape-size", "2TB"]);
    assert_eq!(added["added"][0]["barcode"], "QS0004L6");
    assert_eq!(added["added"][1]["location"]["element_address"], 1004);

    let loaded = env.json(&["vtl", "load", "lib1", "--barcode", "QS0002L5", "--drive", "1"]);
    assert_eq!(loaded["library"], "lib1");
    assert_eq!(loaded["location"]["kind"], "drive");
    assert_eq!(loaded["location"]["element_address"], 501);
    // A later process (as `serve` would be) finds the drive loaded.
    let show = env.json(&["vtl", "show", "lib1"]);
    assert_eq!(show["drives"][1]["barcode"], "QS0002L5");

    let rw = env.json(&["vtl", "set-rw", "lib1", "--barcode", "QS0001L5", "off"]);
    assert_eq!(rw["write_protected"], true);
    let rw = env.json(&["vtl", "set-rw", "lib1", "--barcode", "QS0001L5", "on"]);
    assert_eq!(rw["write_protected"], false);

    let ex = env.json(&["vtl", "export", "lib1", "--barcode", "QS0003L5"]);
    assert_eq!(ex["location"]["kind"], "vault");
    assert_eq!(ex["location"]["element_address"], Value::Null);
    let im = env.json(&["vtl", "import", "lib1", "--barcode", "QS0003L5"]);
    assert_eq!(im["location"]["kind"], "ie");
    assert_eq!(im["location"]["element_address"], 10);

    let un = env.json(&["vtl", "unload", "lib1", "--drive", "1"]);
    assert_eq!(un["barcode"], "QS0002L5");
    assert_eq!(un["location"]["element_address"], 1001);

    // Human output mentions the cartridges.
    let out = env.run(&["vtl", "show", "lib1"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("QS0004L6"));
    // Sections are parted by one blank line; none at the end.
    assert!(!text.contains("\n\n\n") && !text.ends_with("\n\n"), "{text}");
    assert_eq!(text.matches("\n\n").count(), 2, "{text}");

    // Failures: one line on stderr, exit 1 for failed operations, 2 for bad usage.
    assert!(env.fail(&["vtl", "load", "lib1", "--barcode", "NOPE", "--drive", "0"], 1).contains("NOPE"));
    env.fail(&["vtl", "unload", "lib1", "--drive", "0"], 1);
    env.fail(&["vtl", "show", "nolib"], 1);
    env.fail(&["vtl", "carts", "add", "lib1", "--count", "1", "--tape-size", "1GB"], 2);
    env.fail(&["vtl", "set-rw", "lib1", "--barcode", "QS0001L5", "maybe"], 2);
    env.fail(&["vtl", "add", "lib2", "--slots", "2", "--tapes", "3"], 2);
}
