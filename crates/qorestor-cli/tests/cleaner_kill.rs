//! Killed cleaner runs do not pile up copies: `cleaner run --compact-below 1.0` (which copies
//! every pack) is SIGKILLed at a random point of its run, 30 times in a row, on 8 streams of
//! 40 MB of random bytes. Straight after the last kill, pack bytes and the data directory's
//! size are within 10% of where they started (a run commits and deletes about one pack's worth
//! at a time, and deletes what a killed run left before it copies anything); one complete run
//! then brings them to the minimum.
//!
//! Kill points are events, not times: the run is killed once its K-th new pack file appears
//! (K random), after a random number of further polls.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

mod common;
use common::{qorestor, random};

const STREAMS: u64 = 8;
const STREAM_LEN: usize = 40_000_000;
const KILLS: u32 = 30;

/// Distinct seeds (the generator ORs its seed with 1, so neighbours would collide).
fn seed(i: u64) -> u64 {
    0x5EED_0000 + 2 * i
}

fn run_ok(data: &Path, args: &[&str]) -> String {
    let out = qorestor(data).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn packs_dir(data: &Path) -> std::path::PathBuf {
    data.join("groups").join("00000001").join("packs")
}

fn pack_ids(data: &Path) -> Vec<u32> {
    let mut ids: Vec<u32> = std::fs::read_dir(packs_dir(data))
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name();
            u32::from_str_radix(name.to_str()?.strip_suffix(".pack")?, 16).ok()
        })
        .collect();
    ids.sort_unstable();
    ids
}

fn pack_bytes(data: &Path) -> u64 {
    std::fs::read_dir(packs_dir(data)).unwrap().filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum()
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        total += if m.is_dir() { dir_bytes(&e.path()) } else { m.len() };
    }
    total
}

fn put(data: &Path, name: &str, bytes: &[u8]) {
    let mut child =
        qorestor(data).args(["put", name, "-"]).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    assert!(child.wait().unwrap().success(), "put {name}");
}

#[test]
fn killed_cleaner_runs_leave_at_most_a_pack_of_copies_and_one_run_reclaims_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    run_ok(&data, &["init"]);
    run_ok(&data, &["container", "add", "c", "--storage-group", "DefaultGroup", "--type", "object"]);
    for i in 0..STREAMS {
        put(&data, &format!("c/s{i}"), &random(STREAM_LEN, seed(i)));
    }
    let (packs0, dir0) = (pack_bytes(&data), dir_bytes(&data));
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut killed_mid_run = 0;
    for round in 0..KILLS {
        let before = pack_ids(&data).last().copied().unwrap_or(0);
        let new_packs = 1 + next() % 10;
        let extra_polls = next() % 40;
        let mut child = qorestor(&data)
            .args(["cleaner", "run", "--compact-below", "1.0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait for the event: the run has created `new_packs` pack files (or ended).
        let mut polls_after = None;
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            let created = pack_ids(&data).iter().filter(|&&id| id > before).count() as u64;
            if created >= new_packs && polls_after.is_none() {
                polls_after = Some(0);
            }
            if let Some(n) = polls_after.as_mut() {
                if *n >= extra_polls {
                    break;
                }
                *n += 1;
            }
            std::thread::yield_now();
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed_mid_run += 1;
        }
        child.wait().unwrap();
        let (packs, dir) = (pack_bytes(&data), dir_bytes(&data));
        eprintln!("kill {round}: pack bytes {packs} (start {packs0}), data dir {dir} (start {dir0})");
    }
    let (packs, dir) = (pack_bytes(&data), dir_bytes(&data));
    assert!(killed_mid_run >= KILLS / 2, "only {killed_mid_run} of {KILLS} runs were killed before they ended");
    // A run holds at most one batch of copies (about one 32 MiB pack's worth) that no recipe
    // names yet: 10% of this store, or a hair more when the kill lands at the very end of a
    // full pack's copy (33.5 MB over 320 MB).
    let bound = |start: u64| (start + start / 10).max(start + (32 << 20) + (1 << 20));
    assert!(packs <= bound(packs0), "pack bytes {packs} after the last kill, {packs0} at the start");
    assert!(dir <= bound(dir0), "data directory {dir} bytes after the last kill, {dir0} at the start");
    eprintln!(
        "after the last kill: pack bytes {:+.1}%, data directory {:+.1}%",
        (packs as f64 / packs0 as f64 - 1.0) * 100.0,
        (dir as f64 / dir0 as f64 - 1.0) * 100.0
    );
    // `cleaner status` says what the interrupted run left behind.
    let status: serde_json::Value = serde_json::from_str(&run_ok(&data, &["--json", "cleaner", "status"])).unwrap();
    if status["state"] == "interrupted" {
        assert!(status["left_behind"]["packs"].is_u64(), "{status}");
    }
    // One complete run reclaims everything: the minimum is what a full compaction leaves.
    run_ok(&data, &["cleaner", "run", "--compact-below", "1.0"]);
    let after_one = pack_bytes(&data);
    run_ok(&data, &["cleaner", "run", "--compact-below", "1.0"]);
    let minimum = pack_bytes(&data);
    assert!(after_one <= minimum + minimum / 100, "one run left {after_one} pack bytes, the minimum is {minimum}");
    assert!(minimum <= packs0, "{minimum} > {packs0}");
    let out = qorestor(&data).arg("verify").output().unwrap();
    assert!(out.status.success(), "verify: {}", String::from_utf8_lossy(&out.stdout));
    for i in [0, STREAMS - 1] {
        let out = qorestor(&data).args(["get", &format!("c/s{i}"), "-"]).output().unwrap();
        assert!(out.stdout == random(STREAM_LEN, seed(i)), "s{i} differs");
    }
}
