//! `scripts/quickstart.sh` with `CARGO_TARGET_DIR` pointing elsewhere: it builds the binary
//! there (through another path to this build's target directory, so nothing is compiled twice),
//! runs the tour from it and leaves nothing behind.
//!
//! Alone in its test binary: the script's `cargo build` may re-link the `qorestor` binary the
//! other tests run.

mod common;

use std::path::Path;

#[test]
fn quickstart_script_runs_from_another_target_dir_and_leaves_nothing_behind() {
    let exe = Path::new(env!("CARGO_BIN_EXE_qorestor"));
    let profile_dir = exe.parent().unwrap();
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev",
        other => other,
    };
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tmp.path().join("elsewhere-target");
    std::os::unix::fs::symlink(profile_dir.parent().unwrap(), &elsewhere).unwrap();
    let scratch = tmp.path().join("tmp");
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir(&scratch).unwrap();
    std::fs::create_dir(&cwd).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/quickstart.sh");

    let args = [script.as_os_str(), "--profile".as_ref(), profile.as_ref()];
    let stdout = common::run_script(&args, &cwd, |bash| {
        // The variables cargo sets for a test describe this crate; cargo would take them for a
        // changed environment (ring's build script asks to be rerun when CARGO_PKG_NAME
        // changes) and rebuild. A user's shell has none of them.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let prefixes = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_"];
            if prefixes.iter().any(|p| name.starts_with(p)) || name == "CARGO_TARGET_TMPDIR" || name == "OUT_DIR" {
                bash.env_remove(&*name);
            }
        }
        bash.env("CARGO_TARGET_DIR", &elsewhere).env("TMPDIR", &scratch);
    });
    let binary = format!("binary: {}/", elsewhere.display());
    assert!(stdout.starts_with(&binary), "not run from CARGO_TARGET_DIR ({binary}):\n{stdout}");
    for said in [
        "0 new, 0 B added to storage",
        "tuesday.tar read back bit-exact",
        "Dedup ratio:       2.0x",
        "vault-c/monday.tar (encrypted at rest) read back bit-exact",
        "without the passphrase it cannot be read",
    ] {
        assert!(stdout.contains(said), "{said:?} missing:\n{stdout}");
    }
    let left = |dir: &Path| std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect::<Vec<_>>();
    assert!(left(&scratch).is_empty(), "left behind in TMPDIR: {:?}", left(&scratch));
    assert!(left(&cwd).is_empty(), "left behind in the working directory: {:?}", left(&cwd));
}
