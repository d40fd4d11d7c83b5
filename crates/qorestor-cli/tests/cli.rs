//! End-to-end tests of the `qorestor` binary: each test runs the real executable as a process
//! against its own temporary data directory.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::random;
use serde_json::Value;

/// A temporary data directory (not yet initialised) and a scratch directory.
struct Env {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    scratch: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("nested").join("data");
        let scratch = tmp.path().join("scratch");
        fs::create_dir(&scratch).unwrap();
        Env { _tmp: tmp, data, scratch }
    }

    /// A data directory made with `qorestor init`.
    fn initialised() -> Env {
        let env = Env::new();
        env.ok(&["init"]);
        env
    }

    /// `qorestor --data DIR` with a clean environment.
    fn cmd(&self) -> Command {
        let mut c = bare();
        c.arg("--data").arg(&self.data);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        run(self.cmd().args(args))
    }

    /// Starts `put CONTAINER/STREAM -` reading a pipe; returns it and the pipe.
    fn put_from_pipe(&self, stream: &str) -> (std::process::Child, std::process::ChildStdin) {
        let mut child = self
            .cmd()
            .args(["put", stream, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        (child, stdin)
    }

    /// Runs and requires success; returns stdout.
    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert_success(&out, &args);
        out.stdout
    }

    /// Runs with `--json` after the command and parses stdout as exactly one JSON document.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        parse_json(&self.ok(&all))
    }

    /// Runs, requires exit code `code`, returns stderr (checked to be one `qorestor:` line).
    fn fail(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("qorestor: "), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
        err
    }

    fn file(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }
}

fn bare() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_qorestor"));
    c.env_remove("QORESTOR_DATA");
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn assert_success(out: &Output, what: &dyn std::fmt::Debug) {
    assert!(out.status.success(), "{what:?} failed ({:?}): {}", out.status, String::from_utf8_lossy(&out.stderr));
}

fn parse_json(bytes: &[u8]) -> Value {
    // from_slice rejects anything but whitespace after the one document.
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", String::from_utf8_lossy(bytes)))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A few MB: pseudo-random data, then one block repeated, then a text-like tail.
fn sample() -> Vec<u8> {
    let mut data = random(3 << 20, 7);
    let block = random(256 << 10, 11);
    for _ in 0..4 {
        data.extend_from_slice(&block);
    }
    for i in 0..20_000 {
        data.extend_from_slice(format!("line {i} of a log file\n").as_bytes());
    }
    data
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|v| v[key].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn init_is_idempotent_and_creates_parents() {
    let env = Env::new();
    let first = env.json(&["init"]);
    assert_eq!(first["created"], true);
    assert_eq!(first["data_dir"], s(&env.data));
    let second = env.json(&["init"]);
    assert_eq!(second["created"], false);
    let human = String::from_utf8(env.ok(&["init"])).unwrap();
    assert!(human.contains(s(&env.data)), "{human}");
}

#[test]
fn only_init_creates_a_data_directory() {
    let env = Env::new();
    // A directory that does not exist (a typo in --data) stays so.
    let err = env.fail(&["stats"], 1);
    assert!(err.contains(s(&env.data)) && err.contains("does not exist"), "{err}");
    for way in ["--data", "QORESTOR_DATA", "qorestor init"] {
        assert!(err.contains(way), "{way} missing: {err}");
    }
    env.fail(&["container", "add", "c", "--type", "object"], 1);
    assert!(!env.data.exists(), "a failed command created the directory");
    // An existing empty directory (an unmounted mount point) is not initialised either.
    fs::create_dir_all(&env.data).unwrap();
    let err = env.fail(&["stats"], 1);
    assert!(err.contains(s(&env.data)) && err.contains("never initialised"), "{err}");
    assert!(err.contains("qorestor init"), "{err}");
    assert_eq!(fs::read_dir(&env.data).unwrap().count(), 0, "a failed command wrote into the directory");
    // init does.
    assert_eq!(env.json(&["init"])["created"], true);
    let groups = env.json(&["storage-group", "list"]);
    assert_eq!(names(&groups, "name"), ["DefaultGroup"]);
    assert_eq!(env.json(&["init"])["created"], false);
}

#[test]
fn storage_groups() {
    let env = Env::initialised();
    let g = env.json(&[
        "storage-group",
        "add",
        "raw",
        "--compression",
        "none",
        "--chunk-min",
        "2KiB",
        "--chunk-avg",
        "8KiB",
        "--chunk-max",
        "32KiB",
    ]);
    assert_eq!(g["name"], "raw");
    assert_eq!(g["compression"], "none");
    assert_eq!(g["chunk_avg"], 8192);
    let shown = env.json(&["storage-group", "show", "raw"]);
    assert_eq!(shown["compression"], "none");
    assert_eq!(shown["chunk_min"], 2048);
    assert_eq!(shown["chunk_max"], 32768);
    let list = env.json(&["storage-group", "list"]);
    assert_eq!(names(&list, "name"), ["DefaultGroup", "raw"]);
    let human = String::from_utf8(env.ok(&["storage-group", "list"])).unwrap();
    assert!(human.starts_with("NAME"), "{human}");
    assert!(human.contains("raw") && human.contains("none"), "{human}");

    let err = env.fail(&["storage-group", "add", "raw"], 1);
    assert!(err.contains("\"raw\" already exists"), "{err}");
    // Chunk sizes are checked before anything is created; a bad SIZE is bad usage.
    let err = env.fail(&["storage-group", "add", "odd", "--chunk-avg", "3000"], 2);
    assert!(err.contains("3000"), "{err}");
    let err = env.fail(&["storage-group", "add", "odd", "--chunk-avg", "16 parsecs"], 2);
    assert!(err.contains("16 parsecs"), "{err}");
    let err = env.fail(&["storage-group", "add", "bad/name"], 2);
    assert!(err.contains("bad/name"), "{err}");
    env.fail(&["storage-group", "add", "x", "--compression", "max"], 2);

    let updated = env.json(&["storage-group", "update", "raw", "--compression", "best"]);
    assert_eq!(updated["compression"], "best");
    assert_eq!(env.json(&["storage-group", "show", "raw"])["compression"], "best");
    assert_eq!(updated["chunk_avg"], 8192, "chunk sizes are unchanged");
    let err = env.fail(&["storage-group", "update", "raw"], 2);
    assert!(err.contains("--compression"), "{err}");
    let err = env.fail(&["storage-group", "update", "nope", "--compression", "fast"], 1);
    assert!(err.contains("\"nope\" does not exist"), "{err}");

    env.json(&["container", "add", "inraw", "--storage-group", "raw", "--type", "nas"]);
    let err = env.fail(&["storage-group", "delete", "raw"], 1);
    assert!(err.contains("raw") && err.contains("inraw"), "{err}");
    env.json(&["container", "delete", "inraw"]);
    let d = env.json(&["storage-group", "delete", "raw"]);
    assert_eq!(d["deleted"], true);
    let err = env.fail(&["storage-group", "show", "raw"], 1);
    assert!(err.contains("\"raw\" does not exist"), "{err}");
}

#[test]
fn containers() {
    let env = Env::initialised();
    env.json(&["storage-group", "add", "sg2"]);
    let c = env.json(&["container", "add", "nightly", "--type", "object"]);
    assert_eq!(c["name"], "nightly");
    assert_eq!(c["type"], "object");
    assert_eq!(c["storage_group"], "DefaultGroup");
    env.json(&["container", "add", "vault", "--storage-group", "sg2", "--type", "rda"]);

    assert_eq!(names(&env.json(&["container", "list"]), "name"), ["nightly", "vault"]);
    assert_eq!(names(&env.json(&["container", "list", "--storage-group", "sg2"]), "name"), ["vault"]);
    let shown = env.json(&["container", "show", "vault"]);
    assert_eq!(shown["type"], "rda");
    assert_eq!(shown["storage_group"], "sg2");
    assert_eq!(shown["streams"], 0);

    let err = env.fail(&["container", "add", "nightly", "--type", "nas"], 1);
    assert!(err.contains("nightly"), "{err}");
    let err = env.fail(&["container", "add", "x", "--storage-group", "nosuch", "--type", "nas"], 1);
    assert!(err.contains("nosuch"), "{err}");

    // A container with a stream is refused without --force.
    let input = env.file("small");
    fs::write(&input, b"some bytes").unwrap();
    env.ok(&["put", "vault/a", s(&input)]);
    let err = env.fail(&["container", "delete", "vault"], 1);
    assert!(err.contains("vault holds 1 stream:") && err.contains("--force"), "{err}");
    assert_eq!(env.json(&["container", "show", "vault"])["streams"], 1);
    let d = env.json(&["container", "delete", "vault", "--force"]);
    assert_eq!(d["container"], "vault");
    assert_eq!(d["streams_deleted"], 1);
    assert_eq!(names(&env.json(&["container", "list"]), "name"), ["nightly"]);
    let err = env.fail(&["container", "show", "vault"], 1);
    assert!(err.contains("vault"), "{err}");
}

#[test]
fn put_get_ls_stats_rm() {
    let env = Env::initialised();
    env.ok(&["container", "add", "c", "--type", "object"]);
    let data = sample();
    let input = env.file("input.bin");
    fs::write(&input, &data).unwrap();

    // From a file, and from stdin under a name containing slashes.
    let first = env.json(&["put", "c/first", s(&input)]);
    assert_eq!(first["container"], "c");
    assert_eq!(first["name"], "first");
    assert_eq!(first["logical_bytes"], data.len() as u64);
    assert!(first["seconds"].is_number() && first["mb_per_s"].is_number());
    let mut child = env
        .cmd()
        .args(["--json", "put", "c/dir/second.bin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_success(&out, &"put from stdin");
    let second = parse_json(&out.stdout);
    assert_eq!(second["name"], "dir/second.bin");
    assert_eq!(second["new_chunks"], 0);

    let stats = env.json(&["stats"]);
    for key in [
        "logical_bytes",
        "stored_bytes",
        "live_stored_bytes",
        "unique_chunks",
        "dedup_ratio",
        "compression_ratio",
        "savings_percent",
    ] {
        assert!(stats[key].is_number(), "{key} missing: {stats}");
    }
    assert_eq!(stats["logical_bytes"], 2 * data.len() as u64);
    assert!(stats["dedup_ratio"].as_f64().unwrap() >= 1.9, "{stats}");
    let sp = stats["savings_percent"].as_f64().unwrap();
    assert!((45.0..=100.0).contains(&sp), "{stats}");
    assert_eq!(stats["reclaimable_bytes"], 0, "{stats}");
    let cs = env.json(&["stats", "--container", "c"]);
    assert!(cs["dedup_ratio"].as_f64().unwrap() >= 1.9, "{cs}");
    // A container has no storage groups or packs of its own.
    assert!(cs.get("storage_groups").is_none() && cs.get("packs").is_none(), "{cs}");
    assert_eq!(cs["reclaimable_bytes"], 0, "{cs}");
    let gs = env.json(&["stats", "--storage-group", "DefaultGroup"]);
    assert_eq!(gs["logical_bytes"], 2 * data.len() as u64);
    let human = String::from_utf8(env.ok(&["stats"])).unwrap();
    assert!(human.contains("Dedup ratio") && human.contains('x'), "{human}");
    env.fail(&["stats", "--container", "nosuch"], 1);
    env.fail(&["stats", "--container", "c", "--storage-group", "DefaultGroup"], 2);

    // ls
    let ls = env.json(&["ls", "c"]);
    assert_eq!(names(&ls, "name"), ["dir/second.bin", "first"]);
    assert_eq!(ls[0]["logical_bytes"], data.len() as u64);
    let human = String::from_utf8(env.ok(&["ls", "c"])).unwrap();
    assert!(human.contains("dir/second.bin"), "{human}");

    // get to a new file, over an existing file, and to stdout: bit-exact.
    let back = env.file("back.bin");
    let g = env.json(&["get", "c/dir/second.bin", s(&back)]);
    assert_eq!(g["bytes"], data.len() as u64);
    assert_eq!(g["container"], "c");
    assert_eq!(g["name"], "dir/second.bin");
    assert!(fs::read(&back).unwrap() == data);
    fs::write(&back, b"old and short").unwrap();
    env.ok(&["get", "c/first", s(&back)]);
    assert!(fs::read(&back).unwrap() == data);
    let stdout = env.ok(&["get", "c/first"]);
    assert!(stdout == data);
    let stdout = env.ok(&["get", "c/first", "-"]);
    assert!(stdout == data);
    // With --json and the data on stdout, the report goes to stderr.
    let out = env.run(&["get", "c/first", "--json"]);
    assert_success(&out, &"get --json to stdout");
    assert!(out.stdout == data);
    assert_eq!(parse_json(&out.stderr)["bytes"], data.len() as u64);
    // No temporary files are left behind.
    let mut left: Vec<_> =
        fs::read_dir(&env.scratch).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, ["back.bin", "input.bin"]);

    // rm, then the stream is gone.
    let rm = env.json(&["rm", "c/dir/second.bin"]);
    assert_eq!(rm["deleted"], true);
    let err = env.fail(&["get", "c/dir/second.bin", s(&env.file("gone"))], 1);
    assert!(err.contains("c/dir/second.bin"), "{err}");
    assert!(!env.file("gone").exists());
    let err = env.fail(&["rm", "c/dir/second.bin"], 1);
    assert!(err.contains("c/dir/second.bin"), "{err}");
    assert_eq!(names(&env.json(&["ls", "c"]), "name"), ["first"]);
    let stats = env.json(&["stats"]);
    assert_eq!(stats["logical_bytes"], data.len() as u64);
}

#[test]
fn put_errors() {
    let env = Env::initialised();
    env.ok(&["container", "add", "c", "--type", "object"]);
    let missing = env.file("missing");
    let err = env.fail(&["put", "c/s", s(&missing)], 1);
    assert!(err.contains(s(&missing)), "{err}");
    let input = env.file("in");
    fs::write(&input, b"x").unwrap();
    let err = env.fail(&["put", "nosuch/s", s(&input)], 1);
    assert!(err.contains("nosuch"), "{err}");
    let err = env.fail(&["ls", "nosuch"], 1);
    assert!(err.contains("nosuch"), "{err}");
}

#[test]
fn empty_stream_round_trips() {
    let env = Env::initialised();
    env.ok(&["container", "add", "c", "--type", "object"]);
    let empty = env.file("empty");
    fs::write(&empty, b"").unwrap();
    assert_eq!(env.json(&["put", "c/empty", s(&empty)])["logical_bytes"], 0);
    assert!(env.ok(&["get", "c/empty"]).is_empty());
}

#[test]
fn a_reader_that_stops_early_ends_get_quietly() {
    // `qorestor get c/s | head -c 10`: the pipe closes while get still writes.
    let env = Env::initialised();
    env.ok(&["container", "add", "c", "--type", "object"]);
    let src = env.file("big");
    fs::write(&src, random(20 << 20, 5)).unwrap();
    env.ok(&["put", "c/big", s(&src)]);
    let mut child = env.cmd().args(["get", "c/big"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = [0u8; 10];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bad_usage_exits_2() {
    let env = Env::new();
    let err = env.fail(&["container", "add", "c", "--type", "tape"], 2);
    assert!(err.contains("tape"), "{err}");
    env.fail(&["container", "add", "c"], 2);
    env.fail(&["container", "add", "--type", "nas"], 2);
    env.fail(&["put"], 2);
    env.fail(&["no-such-command"], 2);
    for addr in ["nocontainer", "/stream", "container/"] {
        let err = env.fail(&["put", addr, "-"], 2);
        assert!(err.contains(addr), "{err}");
        let err = env.fail(&["get", addr], 2);
        assert!(err.contains(addr), "{err}");
        env.fail(&["rm", addr], 2);
    }
    // Nothing was initialised by a command that never ran.
    assert!(!env.data.exists());
}

#[test]
fn json_flag_before_or_after_the_command() {
    let env = Env::initialised();
    let before =
        run(bare().arg("--json").arg("--data").arg(&env.data).args(["container", "add", "c", "--type", "ost"]));
    assert_success(&before, &"--json before");
    assert_eq!(parse_json(&before.stdout)["type"], "ost");
    let after = run(bare().args(["container", "show", "c", "--json", "--data"]).arg(&env.data));
    assert_success(&after, &"--json after");
    assert_eq!(parse_json(&after.stdout)["name"], "c");
    let mid = run(bare().args(["container", "--json", "list", "--data"]).arg(&env.data));
    assert_success(&mid, &"--json in between");
    assert_eq!(names(&parse_json(&mid.stdout), "name"), ["c"]);
}

#[test]
fn data_directory_from_the_environment() {
    let env = Env::new();
    assert_success(&run(bare().env("QORESTOR_DATA", &env.data).arg("init")), &"init with QORESTOR_DATA");
    let out = run(bare().env("QORESTOR_DATA", &env.data).args(["--json", "container", "add", "c", "--type", "nas"]));
    assert_success(&out, &"with QORESTOR_DATA");
    let shown = env.json(&["container", "show", "c"]);
    assert_eq!(shown["type"], "nas");
    // --data wins over the environment.
    let other = env.scratch.join("other");
    assert_success(&run(bare().arg("--data").arg(&other).arg("init")), &"init of another directory");
    let out =
        run(bare().env("QORESTOR_DATA", &env.data).arg("--data").arg(&other).args(["--json", "container", "list"]));
    assert_success(&out, &"--data over QORESTOR_DATA");
    assert_eq!(parse_json(&out.stdout), Value::Array(vec![]));
}

#[test]
fn help_names_the_default_directory_and_covers_every_command() {
    let out = run(bare().arg("--help"));
    assert_success(&out, &"--help");
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("/var/lib/qorestor"), "{help}");
    assert!(help.contains("QORESTOR_DATA"), "{help}");
    for cmd in [
        &["init"][..],
        &["storage-group"],
        &["storage-group", "add"],
        &["storage-group", "update"],
        &["storage-group", "list"],
        &["storage-group", "show"],
        &["storage-group", "delete"],
        &["container"],
        &["container", "add"],
        &["container", "list"],
        &["container", "show"],
        &["container", "delete"],
        &["put"],
        &["get"],
        &["ls"],
        &["rm"],
        &["stats"],
    ] {
        let out = run(bare().args(cmd).arg("--help"));
        assert_success(&out, &cmd);
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("Usage: qorestor"), "{cmd:?}: {help}");
    }
}

#[test]
fn a_second_process_finds_the_directory_in_use() {
    let env = Env::initialised();
    env.ok(&["container", "add", "c", "--type", "object"]);
    let (child, mut stdin) = env.put_from_pipe("c/s");
    stdin.write_all(&[7u8; 1000]).unwrap();
    // The lock file names its holder once the put has opened the directory.
    let holder = format!("qorestor put (pid {})", child.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fs::read_to_string(env.data.join("lock")).is_ok_and(|t| t.contains(&holder)) {
        assert!(Instant::now() < deadline, "put never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let err = env.fail(&["--lock-wait", "0", "ls", "c"], 1);
    let want = format!("data directory {} is in use by {holder}", env.data.display());
    assert!(err.contains(&want), "{err}");
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_success(&out, &"the put holding the lock");
    let ls = env.json(&["ls", "c"]);
    assert_eq!(ls[0]["name"], "s");
    assert_eq!(ls[0]["logical_bytes"], 1000);
}

/// The temporary recipes (`.<id>.rcp.tmp`) in a data directory.
fn temporary_recipes(data: &Path) -> Vec<PathBuf> {
    let groups = fs::read_dir(data.join("groups")).unwrap();
    let files = groups.flat_map(|g| fs::read_dir(g.unwrap().path().join("recipes")).unwrap());
    files.map(|f| f.unwrap().path()).filter(|p| p.to_string_lossy().ends_with(".rcp.tmp")).collect()
}

#[test]
fn a_put_killed_mid_stream_leaves_no_temporary_recipe_after_the_next_command() {
    let env = Env::initialised();
    env.ok(&["container", "add", "c", "--type", "object"]);
    let (mut child, mut stdin) = env.put_from_pipe("c/s");
    stdin.write_all(&random(4 << 20, 16)).unwrap();
    // The stream's temporary recipe appears once the put has started writing the stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    while temporary_recipes(&env.data).is_empty() {
        assert!(Instant::now() < deadline, "the put never started its recipe");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL, mid-stream: stdin is still open
    child.wait().unwrap();
    drop(stdin);
    assert_eq!(temporary_recipes(&env.data).len(), 1, "the killed put left its temporary recipe");
    // Any command opens the data directory, which removes it.
    let ls = env.json(&["ls", "c"]);
    assert_eq!(ls.as_array().map(Vec::len), Some(0), "the killed put published nothing: {ls}");
    assert_eq!(temporary_recipes(&env.data), Vec::<PathBuf>::new());
}

#[test]
fn cleaner_run_status_and_schedules() {
    let env = Env::initialised();
    env.ok(&["container", "add", "c", "--type", "object"]);
    let a = env.file("a.bin");
    let b = env.file("b.bin");
    fs::write(&a, random(3 << 20, 1)).unwrap();
    fs::write(&b, random(3 << 20, 2)).unwrap();
    env.ok(&["put", "c/a", s(&a)]);
    env.ok(&["put", "c/b", s(&b)]);
    let status = env.json(&["cleaner", "status"]);
    assert_eq!(status["state"], "idle");
    assert!(status["last_report"].is_null());
    env.ok(&["rm", "c/a"]);
    let before = env.json(&["stats"]);
    // What the cleaner would give back is shown before it runs, and nothing after.
    let reclaimable = before["reclaimable_bytes"].as_u64().unwrap();
    assert!(reclaimable > 0, "{before}");
    assert!(reclaimable < before["stored_bytes"].as_u64().unwrap() - before["live_stored_bytes"].as_u64().unwrap());
    let human = String::from_utf8(env.ok(&["stats"])).unwrap();
    assert!(human.lines().any(|l| l.starts_with("Reclaimable") && l.ends_with("(run the cleaner)")), "{human}");
    let dry = env.json(&["cleaner", "run", "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert!(dry["bytes_reclaimed"].as_i64().unwrap() > 0, "{dry}");
    assert_eq!(env.json(&["stats"])["stored_bytes"], before["stored_bytes"]);
    let run = env.json(&["cleaner", "run"]);
    assert!(run["bytes_reclaimed"].as_i64().unwrap() > 0, "{run}");
    let after = env.json(&["stats"]);
    assert!(after["stored_bytes"].as_u64() < before["stored_bytes"].as_u64(), "{before} vs {after}");
    assert_eq!(after["live_stored_bytes"], before["live_stored_bytes"]);
    // The cleaner gave back what stats called reclaimable (plus the header and trailer, 56
    // bytes, of each pack it deleted whole), and nothing is left to reclaim.
    let freed = before["stored_bytes"].as_u64().unwrap() - after["stored_bytes"].as_u64().unwrap();
    let packs_deleted = before["packs"].as_u64().unwrap() - after["packs"].as_u64().unwrap();
    assert!(freed >= reclaimable && freed - reclaimable <= 56 * packs_deleted, "{before} vs {after}");
    assert_eq!(after["reclaimable_bytes"], 0, "{after}");
    let got = env.file("b.out");
    env.ok(&["get", "c/b", s(&got)]);
    assert!(fs::read(&got).unwrap() == random(3 << 20, 2));
    let status = env.json(&["cleaner", "status"]);
    assert_eq!(status["state"], "idle");
    assert_eq!(status["last_report"]["bytes_reclaimed"], run["bytes_reclaimed"]);
    let human = String::from_utf8(env.ok(&["cleaner", "run"])).unwrap();
    assert!(human.contains("run complete"), "{human}");

    let added = env.json(&["cleaner", "schedule", "add", "--day", "sat", "--start", "22:00", "--stop", "06:00"]);
    assert_eq!(added["day"], "saturday");
    let list = env.json(&["cleaner", "schedule", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    // Values refused for their form or range exit 2, whoever refuses them.
    let err = env.fail(&["cleaner", "schedule", "add", "--day", "someday", "--start", "22:00", "--stop", "06:00"], 2);
    assert!(err.contains("someday"), "{err}");
    let err = env.fail(&["cleaner", "schedule", "add", "--day", "mon", "--start", "25:00", "--stop", "06:00"], 2);
    assert!(err.contains("25:00"), "{err}");
    env.ok(&["cleaner", "schedule", "delete", &added["id"].to_string()]);
    assert_eq!(env.json(&["cleaner", "schedule", "list"]).as_array().unwrap().len(), 0);
    let err = env.fail(&["cleaner", "run", "--compact-below", "2"], 2);
    assert!(err.contains('2'), "{err}");
}

/// Every `*.pack` file under `dir`.
fn pack_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "pack") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn verify_names_damage_exits_3_and_repair_heals_from_a_new_copy() {
    let env = Env::initialised();
    env.ok(&["container", "add", "c", "--type", "object"]);
    let a = env.file("a.bin");
    fs::write(&a, random(1 << 20, 7)).unwrap();
    env.ok(&["put", "c/a", s(&a)]);
    let clean = env.run(&["verify"]);
    assert_eq!(clean.status.code(), Some(0), "{}", String::from_utf8_lossy(&clean.stderr));
    assert!(clean.stdout.is_empty());
    // Flip a bit inside the first record's payload (pack header 32 bytes + record header 48).
    let packs = pack_files(&env.data);
    assert_eq!(packs.len(), 1);
    let mut bytes = fs::read(&packs[0]).unwrap();
    bytes[32 + 48 + 100] ^= 0x04;
    fs::write(&packs[0], &bytes).unwrap();
    let out = env.run(&["verify", "--scope", "data"]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "c/a\n");
    let out = env.run(&["--json", "verify"]);
    assert_eq!(out.status.code(), Some(3));
    let report = parse_json(&out.stdout);
    assert_eq!(report["damaged_streams"], serde_json::json!(["c/a"]));
    let out = env.run(&["verify", "--repair"]);
    assert_eq!(out.status.code(), Some(3), "no other copy: still damaged");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "c/a\n");
    // The same backup again stores a fresh copy of the quarantined chunk; repair heals c/a.
    env.ok(&["put", "c/a-again", s(&a)]);
    let out = env.run(&["verify", "--repair"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.run(&["verify"]).status.code(), Some(0));
    let got = env.file("a.out");
    env.ok(&["get", "c/a", s(&got)]);
    assert!(fs::read(&got).unwrap() == random(1 << 20, 7));
}

#[test]
fn quotas_and_the_recycle_bin() {
    let env = Env::initialised();
    let c = env.json(&["container", "add", "q", "--type", "object", "--quota", "3MB"]);
    assert_eq!(c["quota_bytes"], 3_000_000);
    let a = env.file("a.bin");
    fs::write(&a, random(2_000_000, 1)).unwrap();
    env.ok(&["put", "q/a", s(&a)]);
    let err = env.fail(&["put", "q/b", s(&a)], 1);
    assert!(err.contains("quota") && err.contains("\"q\""), "{err}");
    assert_eq!(env.json(&["ls", "q"]).as_array().unwrap().len(), 1, "nothing of the failed put is visible");
    env.ok(&["container", "update", "q", "--quota", "none"]);
    env.ok(&["put", "q/b", s(&a)]);
    // A size given in binary units is shown back in them (not 10.74 GB), a decimal one in decimal.
    let shown = String::from_utf8(env.ok(&["container", "update", "q", "--quota", "10GiB"])).unwrap();
    assert!(shown.contains("Quota:         10 GiB\n"), "{shown}");
    let shown = String::from_utf8(env.ok(&["container", "show", "q"])).unwrap();
    assert!(shown.contains("10 GiB\n"), "{shown}");
    env.ok(&["container", "update", "q", "--quota", "none"]);

    let g = env.json(&["storage-group", "add", "small", "--quota", "1MiB"]);
    assert_eq!(g["quota_bytes"], 1 << 20);
    env.ok(&["container", "add", "sq", "--storage-group", "small", "--type", "object"]);
    let err = env.fail(&["put", "sq/a", s(&a)], 1);
    assert!(err.contains("quota") && err.contains("\"small\""), "{err}");
    let shown = String::from_utf8(env.ok(&["storage-group", "show", "small"])).unwrap();
    assert!(shown.contains("Quota:       1 MiB\n"), "{shown}");
    let shown = String::from_utf8(env.ok(&["storage-group", "update", "small", "--quota", "1.5TB"])).unwrap();
    assert!(shown.contains("Quota:       1.5 TB\n"), "{shown}");
    assert_eq!(env.json(&["storage-group", "update", "small", "--quota", "none"])["quota_bytes"], Value::Null);

    let upd = env.json(&["container", "update", "q", "--recycle-bin", "on", "--retention", "14d"]);
    assert_eq!((upd["recycle_bin"].clone(), upd["retention_days"].clone()), (Value::Bool(true), Value::from(14)));
    env.ok(&["rm", "q/a"]);
    assert_eq!(env.json(&["ls", "q"]).as_array().unwrap().len(), 1);
    let bin = env.json(&["recycle-bin", "ls", "q"]);
    assert_eq!(bin[0]["name"], "a");
    assert_eq!(bin[0]["expires"].as_u64().unwrap() - bin[0]["deleted"].as_u64().unwrap(), 14 * 86_400);
    env.ok(&["recycle-bin", "restore", "q/a"]);
    let got = env.file("a.out");
    env.ok(&["get", "q/a", s(&got)]);
    assert!(fs::read(&got).unwrap() == random(2_000_000, 1));
    let err = env.fail(&["recycle-bin", "restore", "q/a"], 1);
    assert!(err.contains("\"a\""), "{err}");
    env.fail(&["container", "update", "q", "--recycle-bin", "off", "--retention", "3"], 2);
    env.fail(&["container", "update", "q", "--recycle-bin", "on", "--retention", "0"], 2);
    env.fail(&["container", "update", "q"], 2);
    env.fail(&["container", "add", "x", "--type", "object", "--quota", "lots"], 2);
}
