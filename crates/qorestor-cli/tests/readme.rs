//! The README's quick start, run as written: the first ```` ```sh ```` block under
//! `## Quick start`, under `bash -e -o pipefail` in an empty directory with the built binary on
//! PATH, so the README cannot rot.

mod common;

use std::path::Path;

/// The first fenced `sh` block under the heading `## Quick start` (before the next `## `).
fn quick_start_block(readme: &str) -> String {
    let section = readme.split_once("\n## Quick start\n").expect("README has no '## Quick start' heading").1;
    let section = section.split("\n## ").next().unwrap();
    let block = section.split_once("\n```sh\n").expect("no ```sh block under '## Quick start'").1;
    let (block, _) = block.split_once("\n```\n").expect("the ```sh block under '## Quick start' is not closed");
    format!("{block}\n")
}

#[test]
fn the_readme_quick_start_runs_as_written() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let block = quick_start_block(&readme);
    assert!(block.contains("export QORESTOR_DATA=$PWD/qs-demo"), "{block}");
    assert!(!block.lines().any(|l| l.trim_start().starts_with("$ ")), "a prompt in the quick start:\n{block}");

    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("quick-start.sh");
    std::fs::write(&script, &block).unwrap();
    let cwd = tmp.path().join("empty");
    std::fs::create_dir(&cwd).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_qorestor")).parent().unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin_dir.to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let args = ["-e".as_ref(), "-o".as_ref(), "pipefail".as_ref(), script.as_os_str()];
    let stdout = common::run_script(&args, &cwd, |bash| {
        bash.env("PATH", path);
    });

    // What it promises: the store in ./qs-demo, Tuesday's backup deduplicated against Monday's,
    // Monday's read back bit-exact.
    let data = cwd.join("qs-demo");
    let streams = common::run_ok(&data, &["--json", "ls", "nightly"], None);
    let streams: serde_json::Value = serde_json::from_slice(&streams.stdout).unwrap();
    let streams = streams.as_array().unwrap();
    assert_eq!(streams.len(), 2, "{streams:?}");
    let tuesday = streams.iter().find(|s| s["name"] == "tuesday.tar").unwrap();
    let (chunks, new) = (tuesday["chunks"].as_u64().unwrap(), tuesday["new_chunks"].as_u64().unwrap());
    assert!(chunks > 2 && new * 10 <= chunks, "Tuesday stored {new} new chunks of {chunks}");
    let stats = common::run_ok(&data, &["--json", "stats", "--container", "nightly"], None);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert!(stats["dedup_ratio"].as_f64().unwrap() >= 1.8, "{stats}");
    assert!(stdout.contains("monday.tar read back bit-exact"), "{stdout}");
}

#[test]
fn the_quick_start_block_is_found_where_the_readme_puts_it() {
    let readme = "# t\n\n```sh\nnot this\n```\n\n## Quick start\n\ntext\n\n```text\nnor this\n```\n\n```sh\na\nb\n```\n\n```sh\nc\n```\n";
    assert_eq!(quick_start_block(readme), "a\nb\n");
}
