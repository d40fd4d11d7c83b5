//! A catalog that cannot take the store down: every file under `DATA/catalog/` is damaged in
//! turn (bytes flipped at three offsets; separately, truncated to half) in a store holding a
//! non-default storage group, a container with a quota and the recycle bin, an encrypted group,
//! a tape library with a written and a loaded cartridge and a replication link, and
//! `verify --repair` must bring everything back.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{init, qorestor, random};
use qorestor_core::Engine;
use qorestor_vtl::{Vtl, GOOD};
use serde_json::Value;

const PASSPHRASE: &str = "correct horse battery staple";

fn run(data: &Path, args: &[&str]) -> Output {
    qorestor(data).env("QORESTOR_PASSPHRASE", PASSPHRASE).args(args).stdin(Stdio::null()).output().unwrap()
}

fn ok(data: &Path, args: &[&str]) -> Vec<u8> {
    let out = run(data, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn json(data: &Path, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_slice(&ok(data, &a)).unwrap()
}

/// Deterministic bytes.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    random(len, seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Runs a command with the passphrase in the environment and `input` on stdin; asserts it
/// succeeded.
fn ok_with_input(data: &Path, args: &[&str], input: &[u8]) {
    let out = qorestor(data)
        .env("QORESTOR_PASSPHRASE", PASSPHRASE)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(input)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn put(data: &Path, addr: &str, content: &[u8]) {
    ok_with_input(data, &["put", addr, "-"], content);
}

fn be24(n: u32) -> [u8; 3] {
    [(n >> 16) as u8, (n >> 8) as u8, n as u8]
}

/// Sends a command to LUN `lun` until it is not a unit attention; asserts it succeeds.
fn scsi(vtl: &Vtl, lun: u64, cdb: &[u8], data: &[u8]) -> Vec<u8> {
    for _ in 0..4 {
        let r = vtl.execute(lun, cdb, data);
        if r.status == GOOD {
            return r.data_in;
        }
        assert_eq!(r.sense_code().0, 6, "{cdb:02x?}: sense {:x?}", r.sense_code());
    }
    panic!("LUN {lun} keeps reporting unit attentions");
}

/// The tape blocks written through the VTL API.
fn tape_blocks() -> Vec<Vec<u8>> {
    (0..3).map(|i| bytes(100 + i, 30_000)).collect()
}

/// Writes [`tape_blocks`] and a filemark on `barcode` through the library API (drive 0), then
/// unloads it.
fn write_tape(data: &Path, barcode: &str) {
    let engine = Engine::open(data).unwrap();
    let vtl = Vtl::open(&engine, "lib").unwrap();
    vtl.load(barcode, 0).unwrap();
    for b in tape_blocks() {
        let l = be24(b.len() as u32);
        scsi(&vtl, 1, &[0x0A, 0, l[0], l[1], l[2], 0], &b);
    }
    scsi(&vtl, 1, &[0x10, 0, 0, 0, 1, 0], &[]);
    vtl.unload(0).unwrap();
    vtl.flush_all().unwrap();
}

/// Reads `barcode` back through the library API (drive 1) and compares it with what was written.
fn read_tape(data: &Path, barcode: &str) {
    let engine = Engine::open(data).unwrap();
    let vtl = Vtl::open(&engine, "lib").unwrap();
    vtl.load(barcode, 1).unwrap();
    for b in tape_blocks() {
        let l = be24(b.len() as u32);
        assert_eq!(scsi(&vtl, 2, &[0x08, 0, l[0], l[1], l[2], 0], &[]), b, "tape {barcode} reads back");
    }
    vtl.unload(1).unwrap();
    vtl.flush_all().unwrap();
}

/// The streams: (address, content).
fn streams() -> Vec<(String, Vec<u8>)> {
    vec![
        ("plain/a.bin".into(), bytes(1, 300_000)),
        ("plain/b.bin".into(), bytes(2, 50_000)),
        ("quoted/x.tar".into(), bytes(3, 200_000)),
        ("secret/s.bin".into(), bytes(4, 100_000)),
        ("plain/last.bin".into(), bytes(5, 70_000)),
    ]
}

/// Builds the store in `data`, with a replica in `replica`. Returns the barcodes (written,
/// loaded).
fn build(data: &Path, replica: &Path) -> (String, String) {
    init(data);
    init(replica);
    ok(data, &["storage-group", "add", "best", "--compression", "best", "--quota", "1GiB"]);
    ok(data, &["container", "add", "plain", "--storage-group", "DefaultGroup", "--type", "object"]);
    ok(
        data,
        &[
            "container",
            "add",
            "quoted",
            "--storage-group",
            "best",
            "--type",
            "object",
            "--quota",
            "500MB",
            "--recycle-bin",
            "on",
            "--retention",
            "7",
        ],
    );
    let args = ["storage-group", "add", "enc", "--encryption", "static", "--passphrase-stdin"];
    ok_with_input(data, &args, format!("{PASSPHRASE}\n").as_bytes());
    ok(data, &["container", "add", "secret", "--storage-group", "enc", "--type", "object"]);
    ok(data, &["system", "set-name", "repair-test"]);
    ok(data, &["system", "set-reserve", "20MiB"]);
    ok(data, &["cleaner", "schedule", "add", "--day", "sun", "--start", "01:00", "--stop", "05:00"]);
    for (addr, content) in streams().iter().take(4) {
        put(data, addr, content);
    }
    // A version in the recycle bin, and a deleted stream.
    put(data, "quoted/old.tar", &bytes(6, 40_000));
    ok(data, &["rm", "quoted/old.tar"]);
    ok(
        data,
        &["vtl", "add", "lib", "--storage-group", "DefaultGroup", "--slots", "4", "--drives", "2", "--tapes", "3"],
    );
    let lib = json(data, &["vtl", "show", "lib"]);
    let barcodes: Vec<String> =
        lib["cartridges"].as_array().unwrap().iter().map(|c| c["barcode"].as_str().unwrap().to_string()).collect();
    write_tape(data, &barcodes[0]);
    ok(data, &["vtl", "load", "lib", "--barcode", &barcodes[1], "--drive", "0"]);
    let target = replica.to_str().unwrap();
    ok(data, &["replication", "add", "plain", "--target", target]);
    ok(data, &["replication", "start", "plain"]);
    (barcodes[0].clone(), barcodes[1].clone())
}

/// What must come back: settings and listings as JSON.
fn snapshot(data: &Path) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for args in [
        &["storage-group", "show", "best"][..],
        &["storage-group", "show", "enc"],
        &["storage-group", "list"],
        &["container", "show", "quoted"],
        &["container", "show", "plain"],
        &["container", "list"],
        &["ls", "plain"],
        &["ls", "quoted"],
        &["ls", "secret"],
        &["recycle-bin", "ls", "quoted"],
        &["vtl", "show", "lib"],
        &["system", "show"],
        &["cleaner", "schedule", "list"],
    ] {
        let mut v = json(data, args);
        strip_times(&mut v);
        out.push((args.join(" "), v));
    }
    let mut status = json(data, &["replication", "status", "plain"]);
    strip_times(&mut status);
    out.push(("replication status plain".into(), status));
    out
}

/// Removes every field whose name says it is a time (they may differ after a repair), and the
/// filesystem's free bytes.
fn strip_times(v: &mut Value) {
    match v {
        Value::Object(m) => {
            // Free space moves with whatever else uses the filesystem.
            m.retain(|k, _| {
                !(k.contains("time")
                    || k.ends_with("_at")
                    || k.contains("seconds")
                    || k == "last_pass"
                    || k == "free_bytes")
            });
            m.values_mut().for_each(strip_times);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(st.success());
}

fn catalog_files(data: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(data.join("catalog")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// One damage: flip three bytes, or truncate to half.
#[derive(Debug, Clone, Copy)]
enum Damage {
    Flip,
    Truncate,
}

fn damage(file: &Path, how: Damage) {
    let mut b = std::fs::read(file).unwrap();
    match how {
        Damage::Flip => {
            // The header (redb's commit slots), the middle and the last page.
            let n = b.len();
            for at in [64, n / 2, n - 100] {
                for x in &mut b[at..at + 8] {
                    *x ^= 0x5a;
                }
            }
            std::fs::write(file, &b).unwrap();
        }
        Damage::Truncate => {
            let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
            f.set_len(b.len() as u64 / 2).unwrap();
            b.clear();
        }
    }
}

fn check_everything(data: &Path, before: &[(String, Value)], written: &str) {
    for (addr, content) in streams().iter().take(4) {
        let out = ok(data, &["get", addr, "-"]);
        assert!(out == *content, "{addr} comes back bit-exact");
    }
    let after = snapshot(data);
    for ((what, a), (_, b)) in before.iter().zip(&after) {
        assert_eq!(a, b, "{what} is as before");
    }
    read_tape(data, written);
}

#[test]
fn every_catalog_file_damaged_in_turn_is_rebuilt_by_verify_repair() {
    // Each case starts from a copy of the pristine store at the same paths (the replica names
    // its source by path).
    let root = tempfile::tempdir().unwrap();
    let (data, replica) = (root.path().join("data"), root.path().join("replica"));
    let (written, _loaded) = build(&data, &replica);
    let before = snapshot(&data);
    let pristine = root.path().join("pristine");
    std::fs::create_dir(&pristine).unwrap();
    copy_dir(&data, &pristine.join("data"));
    copy_dir(&replica, &pristine.join("replica"));
    let files = catalog_files(&data);
    assert!(!files.is_empty());
    let mut rebuilt = 0;
    for file in &files {
        for how in [Damage::Flip, Damage::Truncate] {
            for dir in [&data, &replica] {
                std::fs::remove_dir_all(dir).unwrap();
                copy_dir(&pristine.join(dir.file_name().unwrap()), dir);
            }
            damage(&data.join("catalog").join(file.file_name().unwrap()), how);
            let out = run(&data, &["--json", "verify", "--repair"]);
            let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            assert!(
                out.status.success(),
                "{file:?} {how:?}: verify --repair exit {:?}: {}\n{report:#}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            );
            let restored = report["catalog_restored"].as_array().map_or(0, Vec::len);
            eprintln!("{file:?} {how:?}: {} problems, {restored} rows restored", report["problems"]);
            if restored > 0 {
                rebuilt += 1;
            }
            assert!(report["catalog_not_restored"].as_array().is_some_and(|a| a.is_empty()), "{report:#}");
            check_everything(&data, &before, &written);
            // The replication link: a pass now sends only what is new.
            let new = &streams()[4];
            put(&data, &new.0, &new.1);
            ok(&data, &["replication", "start", "plain"]);
            let status = json(&data, &["replication", "status", "plain"]);
            assert_eq!(status["logical_bytes"], new.1.len() as u64, "{status:#}");
            assert_eq!(ok(&replica, &["get", "plain/last.bin", "-"]), new.1);
            ok(&data, &["verify"]);
        }
    }
    // Truncation always makes the catalog unopenable: at least one rebuild per file.
    assert!(rebuilt >= files.len(), "{rebuilt} repairs restored rows");
}

#[test]
fn a_catalog_that_lost_its_last_commits_gets_them_back_from_the_records() {
    // The catalog as it was before the last changes (a fallback to an older commit): the
    // records, written at each change, hold the newer state, which wins.
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    init(&data);
    ok(&data, &["container", "add", "c", "--storage-group", "DefaultGroup", "--type", "object"]);
    put(&data, "c/first", &bytes(1, 10_000));
    let old = std::fs::read(data.join("catalog/catalog.redb")).unwrap();
    ok(&data, &["container", "update", "c", "--quota", "1GB"]);
    ok(&data, &["container", "add", "d", "--storage-group", "DefaultGroup", "--type", "object"]);
    put(&data, "c/second", &bytes(2, 20_000));
    ok(&data, &["system", "set-name", "newer"]);
    let system = |data: &Path| {
        let mut v = json(data, &["system", "show"]);
        strip_times(&mut v);
        v
    };
    let before = (json(&data, &["container", "list"]), json(&data, &["ls", "c"]), system(&data));
    std::fs::write(data.join("catalog/catalog.redb"), old).unwrap();
    let out = run(&data, &["verify"]);
    assert_eq!(out.status.code(), Some(3), "verify finds the catalog behind its records");
    let report = json(&data, &["verify", "--repair"]);
    assert!(!report["catalog_restored"].as_array().unwrap().is_empty(), "{report:#}");
    let after = (json(&data, &["container", "list"]), json(&data, &["ls", "c"]), system(&data));
    assert_eq!(before, after);
    assert_eq!(ok(&data, &["get", "c/second", "-"]), bytes(2, 20_000));
    ok(&data, &["verify"]);
}

fn files_under(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p, ext));
        } else if p.extension().and_then(|e| e.to_str()) == Some(ext) {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_corrupt_recipe_and_a_deleted_pack_are_named_and_counted() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    init(&data);
    ok(&data, &["container", "add", "c", "--storage-group", "DefaultGroup", "--type", "object"]);
    ok(&data, &["storage-group", "add", "g2"]);
    ok(&data, &["container", "add", "p", "--storage-group", "g2", "--type", "object"]);
    put(&data, "c/fine", &bytes(1, 100_000));
    put(&data, "c/broken", &bytes(2, 100_000));
    put(&data, "p/packless", &bytes(3, 100_000));
    // A corrupt recipe: stats still reports, naming the stream it left out.
    let recipes = files_under(&data.join("groups"), "rcp");
    let broken = recipes.iter().find(|p| std::fs::read(p).unwrap().windows(6).any(|w| w == b"broken")).unwrap();
    let mut b = std::fs::read(broken).unwrap();
    let n = b.len();
    b[n / 2] ^= 0xff;
    std::fs::write(broken, &b).unwrap();
    let out = run(&data, &["stats"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("c/broken"), "{}", String::from_utf8_lossy(&out.stderr));
    let stats = json(&data, &["stats"]);
    assert_eq!(stats["unreadable_streams"], 1, "{stats:#}");
    assert!(stats["skipped_streams"][0].as_str().unwrap().starts_with("c/broken: "), "{stats:#}");
    assert_eq!(stats["streams"], 2, "the other streams are counted: {stats:#}");
    // A deleted pack: verify names and counts it; no report has more live than stored bytes.
    let g2_packs = files_under(&data.join("groups"), "pack")
        .into_iter()
        .filter(|p| {
            files_under(p.parent().unwrap().parent().unwrap(), "rcp")
                .iter()
                .any(|r| std::fs::read(r).unwrap().windows(8).any(|w| w == b"packless"))
        })
        .collect::<Vec<_>>();
    assert!(!g2_packs.is_empty());
    for p in &g2_packs {
        std::fs::remove_file(p).unwrap();
    }
    let out = run(&data, &["--json", "verify"]);
    assert_eq!(out.status.code(), Some(3));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let damaged: Vec<&str> = report["damaged_packs"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(damaged.len(), g2_packs.len(), "{report:#}");
    assert!(damaged.iter().all(|d| d.starts_with("g2 pack ") && d.contains("missing")), "{damaged:?}");
    assert!(report["damaged_streams"].as_array().unwrap().iter().any(|s| s == "p/packless"), "{report:#}");
    let text = String::from_utf8_lossy(&run(&data, &["verify"]).stderr).into_owned();
    assert!(text.contains(&format!("{} packs", g2_packs.len())), "{text}");
    for scope in [&["stats"][..], &["stats", "--storage-group", "g2"], &["stats", "--container", "p"]] {
        let s = json(&data, scope);
        assert!(s["live_stored_bytes"].as_u64() <= s["stored_bytes"].as_u64(), "{scope:?}: {s:#}");
    }
}
