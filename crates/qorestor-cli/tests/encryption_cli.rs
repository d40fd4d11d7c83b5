//! `storage-group add --encryption`, the passphrase sources (stdin, QORESTOR_PASSPHRASE,
//! --passphrase-file) and their errors, and `storage-group rotate-key`, through the binary.

mod common;

use std::io::Write;
use std::process::{Output, Stdio};

use common::qorestor;

fn run(data: &std::path::Path, args: &[&str], env_pass: Option<&str>, stdin: &[u8]) -> Output {
    let mut c = qorestor(data);
    c.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(p) = env_pass {
        c.env("QORESTOR_PASSPHRASE", p);
    }
    let mut child = c.spawn().unwrap();
    // A command refused as bad usage exits before reading its standard input: a closed pipe
    // is then expected, not a failure.
    match child.stdin.take().unwrap().write_all(stdin) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("writing the child's stdin: {e}"),
        _ => {}
    }
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

#[test]
fn encrypted_group_end_to_end_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::init(&data);
    let file = tmp.path().join("backup.bin");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let pass_file = tmp.path().join("pass.txt");
    std::fs::write(&pass_file, "s3cret phrase\r\n").unwrap();

    // Flags that make no sense together are usage errors.
    let out = run(&data, &["storage-group", "add", "g", "--passphrase-stdin"], None, b"x\n");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&data, &["storage-group", "add", "g", "--encryption", "static", "--key-rotation", "7"], None, b"");
    assert_eq!(out.status.code(), Some(2));
    let out = run(&data, &["storage-group", "add", "g", "--encryption", "static"], None, b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("QORESTOR_PASSPHRASE"));

    let g = ok(&run(
        &data,
        &[
            "--json",
            "storage-group",
            "add",
            "vault",
            "--encryption",
            "internal",
            "--key-rotation",
            "7d",
            "--passphrase-stdin",
        ],
        None,
        b"s3cret phrase\n",
    ));
    assert_eq!(g["encryption"], "internal");
    assert_eq!(g["key_rotation_days"], 7);
    assert_eq!(g["data_keys"], 1);
    ok(&run(&data, &["container", "add", "v", "--storage-group", "vault", "--type", "object"], None, b""));
    let f = file.to_str().unwrap();
    ok(&run(&data, &["put", "v/s", f], Some("s3cret phrase"), b""));

    // Without the passphrase, or with a wrong one: a clear error naming the group.
    let out = run(&data, &["get", "v/s", "-"], None, b"");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"vault\"") && err.contains("QORESTOR_PASSPHRASE"), "{err}");
    let out = run(&data, &["get", "v/s", "-"], Some("guess"), b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    // Other commands and groups are not affected.
    ok(&run(&data, &["ls", "v"], None, b""));
    ok(&run(&data, &["stats"], Some("guess"), b""));

    // --passphrase-file (its \r\n is not part of the passphrase) reads it back bit-exact.
    let out = run(&data, &["--passphrase-file", pass_file.to_str().unwrap(), "get", "v/s", "-"], None, b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == bytes);

    let g = ok(&run(&data, &["--json", "storage-group", "rotate-key", "vault"], Some("s3cret phrase"), b""));
    assert_eq!(g["data_keys"], 2);
    ok(&run(&data, &["put", "v/t", f], Some("s3cret phrase"), b""));
    for s in ["v/s", "v/t"] {
        let out = run(&data, &["get", s, "-"], Some("s3cret phrase"), b"");
        assert!(out.status.success() && out.stdout == bytes, "{s}");
    }
    let out = run(&data, &["verify"], Some("s3cret phrase"), b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
