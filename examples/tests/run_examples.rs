//! Builds and runs the example programs.

#[test]
fn embed_engine_runs_and_saves_space() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_embed_engine")).arg(dir.path().join("data")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("read back tuesday.tar: bit-exact"), "{text}");
    assert!(text.contains("0 new chunks"), "the second write deduplicates fully: {text}");
    let dedup: f64 = text.split("dedup ").nth(1).unwrap().split('x').next().unwrap().parse().unwrap();
    assert!(dedup >= 1.99, "{text}");
}

#[test]
fn embed_engine_without_a_directory_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_embed_engine")).env("TMPDIR", tmp.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("read back tuesday.tar: bit-exact"));
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.is_empty(), "left behind in $TMPDIR: {left:?}");
}
