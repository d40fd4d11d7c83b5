//! The space reserve from the command line: `system set-reserve`, `system show`, `stats`, and a
//! `put` refused at the reserve (exit 1, naming available space and reserve) while `get`, `rm`,
//! `cleaner run` and `verify` keep working. A reserve larger than the free space makes the
//! ordinary filesystem of the test "full" (the full-disk tests on a small tmpfs are in
//! qorestor-core's `tests/full_disk.rs`).

mod common;

use std::process::Output;

use common::{qorestor, random, run_ok};
use serde_json::Value;

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn new_data_is_refused_at_the_reserve_and_everything_else_works() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::init(&data);
    let run = |args: &[&str]| run_ok(&data, args, None);
    // The default: 1% of the filesystem, at least 8 MiB and at most 1 GiB.
    let show = json(&run(&["system", "show", "--json"]));
    let fs_bytes = show["filesystem_bytes"].as_u64().unwrap();
    let default = (fs_bytes / 100).clamp(8 << 20, 1 << 30);
    assert_eq!(show["reserve_bytes"], default, "{show}");
    assert_eq!(show["reserve_is_default"], true, "{show}");
    let stats = json(&run(&["stats", "--json"]));
    assert_eq!(stats["reserve_bytes"], default, "{stats}");
    assert!(stats["free_bytes"].as_u64().unwrap() > 0, "{stats}");
    let human = String::from_utf8(run(&["stats"]).stdout).unwrap();
    assert!(human.contains("Free:") && human.contains("Space reserve:"), "{human}");

    run(&["container", "add", "c", "--type", "object"]);
    let kept = random(3 << 20, 1);
    run_ok(&data, &["put", "c/kept", "-"], Some(&kept));
    let gone = random(1 << 20, 2);
    run_ok(&data, &["put", "c/gone", "-"], Some(&gone));

    // A reserve larger than the free space: the store is "full" for new data.
    let free = stats["free_bytes"].as_u64().unwrap();
    let huge = (free + (1 << 40)).to_string();
    let set = json(&run(&["system", "set-reserve", &huge, "--json"]));
    assert_eq!(set["reserve_bytes"].as_u64(), Some(free + (1 << 40)), "{set}");
    assert_eq!(set["reserve_is_default"], false, "{set}");
    let input = tmp.path().join("input");
    std::fs::write(&input, random(1 << 20, 3)).unwrap();
    let refused = qorestor(&data).args(["put", "c/new"]).arg(&input).output().unwrap();
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("new data refused") && err.contains("available"), "{err}");
    assert!(err.contains(&format!("space reserve of {huge} bytes")), "{err}");
    assert!(err.contains("system set-reserve"), "{err}");
    // Reads, deletions, the cleaner and verify use the reserve.
    assert_eq!(run(&["get", "c/kept", "-"]).stdout, kept);
    let ls = json(&run(&["ls", "c", "--json"]));
    assert_eq!(ls.as_array().unwrap().len(), 2, "the refused stream is not listed: {ls}");
    run(&["rm", "c/gone"]);
    run(&["cleaner", "run"]);
    run(&["verify"]);

    // Set as given: 0 is no reserve; `default` goes back to the default.
    let zero = json(&run(&["system", "set-reserve", "0", "--json"]));
    assert_eq!(zero["reserve_bytes"], 0, "{zero}");
    run_ok(&data, &["put", "c/new", "-"], Some(&random(1 << 20, 3)));
    let back = json(&run(&["system", "set-reserve", "default", "--json"]));
    assert_eq!((back["reserve_bytes"].as_u64(), &back["reserve_is_default"]), (Some(default), &Value::Bool(true)));
    let small = json(&run(&["system", "set-reserve", "1MiB", "--json"]));
    assert_eq!(small["reserve_bytes"], 1 << 20, "the default's clamps do not apply to a value set: {small}");
    let bad = qorestor(&data).args(["system", "set-reserve", "lots"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "a value refused for its form");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("lots"));
}
