//! Safe defaults of the `qorestor` binary: no silent overwrite, no unreadable input taken for
//! empty, commands that wait for each other instead of failing.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{qorestor, random};
use serde_json::Value;

/// An initialised data directory with one object container `c`, and a scratch directory.
struct Env {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    scratch: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let scratch = tmp.path().join("scratch");
        fs::create_dir(&scratch).unwrap();
        common::init(&data);
        let env = Env { _tmp: tmp, data, scratch };
        env.ok(&["container", "add", "c", "--type", "object"]);
        env
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = qorestor(&self.data);
        c.args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_slice(&self.ok(&all)).unwrap()
    }

    /// Checks the exit code and that stderr is one `qorestor:` line; returns it.
    fn check_failed(out: &Output, code: i32, what: &dyn std::fmt::Debug) -> String {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "{what:?}: {err}");
        assert!(err.starts_with("qorestor: ") && err.trim_end().lines().count() == 1, "{what:?}: {err}");
        assert!(out.stdout.is_empty(), "{what:?} printed to stdout");
        err
    }

    fn fail(&self, args: &[&str], code: i32) -> String {
        Self::check_failed(&self.run(args), code, &args)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.scratch.join(name);
        fs::write(&p, bytes).unwrap();
        p
    }

    /// `put c/NAME -` with its stdin left open (the caller writes and closes it).
    fn put_from_pipe(&self, args: &[&str]) -> Child {
        self.cmd(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }

    fn get(&self, addr: &str) -> Vec<u8> {
        self.ok(&["get", addr])
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Bounds a wait for a child that must exit by itself (a hang fails the test).
fn wait_bounded(child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "{what} did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_existing_stream_is_refused_before_any_input_is_read() {
    let env = Env::new();
    let good = random(300_000, 1);
    env.ok(&["put", "c/etc.tar", s(&env.file("good", &good))]);
    // stdin stays open and unwritten: a put that read it would never end.
    let mut child = env.put_from_pipe(&["put", "c/etc.tar", "-"]);
    wait_bounded(&mut child, "put over an existing stream");
    let out = child.wait_with_output().unwrap();
    let err = Env::check_failed(&out, 1, &"put over an existing stream");
    assert!(err.contains("c/etc.tar") && err.contains("--replace"), "{err}");
    // Same from a file, even an empty one.
    let err = env.fail(&["put", "c/etc.tar", "/dev/null"], 1);
    assert!(err.contains("c/etc.tar"), "{err}");
    assert!(env.get("c/etc.tar") == good, "the old stream changed");

    // --replace replaces; on a new name it just creates.
    let newer = random(200_000, 2);
    let r = env.json(&["put", "c/etc.tar", s(&env.file("newer", &newer)), "--replace"]);
    assert_eq!(r["logical_bytes"], newer.len() as u64);
    assert!(env.get("c/etc.tar") == newer);
    env.ok(&["put", "--replace", "c/fresh", s(&env.file("fresh", b"fresh"))]);
    assert_eq!(env.get("c/fresh"), b"fresh");
}

#[test]
fn replace_refuses_empty_input_unless_allowed() {
    let env = Env::new();
    let good = random(100_000, 3);
    env.ok(&["put", "c/s", s(&env.file("good", &good))]);
    // A failed producer: `false | qorestor put --replace c/s`.
    let mut child = env.put_from_pipe(&["put", "--replace", "c/s"]);
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let err = Env::check_failed(&out, 1, &"put --replace of empty input");
    assert!(err.contains("c/s") && err.contains("empty") && err.contains("--allow-empty"), "{err}");
    let err = env.fail(&["put", "--replace", "c/s", "/dev/null"], 1);
    assert!(err.contains("empty"), "{err}");
    assert!(env.get("c/s") == good, "the old stream changed");
    // Allowed on purpose.
    env.ok(&["put", "--replace", "--allow-empty", "c/s", "/dev/null"]);
    assert!(env.get("c/s").is_empty());
    // Without --replace an empty new stream is fine; --allow-empty alone is bad usage.
    assert_eq!(env.json(&["put", "c/empty", "/dev/null"])["logical_bytes"], 0);
    env.fail(&["put", "--allow-empty", "c/other", "/dev/null"], 2);
}

#[test]
fn an_unreadable_stdin_is_an_error_not_an_empty_stream() {
    let env = Env::new();
    // Closed, and open for writing only (reads fail with EBADF).
    for redirect in ["<&-", "0>/dev/null"] {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("exec \"$0\" --data '{}' put c/unreadable - {redirect}", s(&env.data)))
            .arg(env!("CARGO_BIN_EXE_qorestor"))
            .env_remove("QORESTOR_DATA")
            .output()
            .unwrap();
        let err = Env::check_failed(&out, 1, &redirect);
        assert!(err.contains("standard input") || err.contains("read input"), "{redirect}: {err}");
    }
    assert_eq!(env.json(&["ls", "c"]), Value::Array(vec![]), "a stream was stored");
    // An empty stdin that is open for reading is just empty.
    let out = env.cmd(&["put", "c/empty", "-"]).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Waits until the put `child` holds the lock (its lock file names it); returns the holder.
fn wait_for_holder(env: &Env, child: &Child) -> String {
    let holder = format!("qorestor put (pid {})", child.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fs::read_to_string(env.data.join("lock")).is_ok_and(|t| t.contains(&holder)) {
        assert!(Instant::now() < deadline, "put never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    holder
}

#[test]
fn a_second_put_waits_for_the_first_and_both_succeed() {
    let env = Env::new();
    let first_data = random(500_000, 4);
    let second_data = random(400_000, 5);
    let mut first = env.put_from_pipe(&["put", "c/first", "-"]);
    let mut first_in = first.stdin.take().unwrap();
    first_in.write_all(&first_data[..1000]).unwrap();
    let holder = wait_for_holder(&env, &first);

    let second_file = env.file("second", &second_data);
    let mut second = env
        .cmd(&["put", "c/second", s(&second_file)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The second says whom it waits for, once.
    let mut stderr = BufReader::new(second.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains(&holder) && line.contains("waiting"), "{line}");
    assert!(second.try_wait().unwrap().is_none(), "the second put did not wait");

    first_in.write_all(&first_data[1000..]).unwrap();
    drop(first_in);
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "first: {}", String::from_utf8_lossy(&out.stderr));
    wait_bounded(&mut second, "the waiting put");
    assert!(second.wait().unwrap().success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(rest.is_empty(), "said more than once: {rest}");
    assert!(env.get("c/first") == first_data);
    assert!(env.get("c/second") == second_data);
}

#[test]
fn lock_wait_0_fails_at_once_naming_the_holder() {
    let env = Env::new();
    let mut first = env.put_from_pipe(&["put", "c/first", "-"]);
    let first_in = first.stdin.take().unwrap();
    let holder = wait_for_holder(&env, &first);
    let started = Instant::now();
    let err = env.fail(&["--lock-wait", "0", "ls", "c"], 1);
    // The default wait is ten minutes: anything near that means it waited.
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert!(err.contains(&format!("is in use by {holder}")), "{err}");
    // A short wait gives up naming the holder and how long it waited.
    let out = env.run(&["ls", "c", "--lock-wait", "1s"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].contains("waiting") && lines[0].contains(&holder), "{err}");
    assert!(lines[1].contains(&holder) && lines[1].contains("gave up") && lines[1].contains("1s"), "{err}");
    env.fail(&["ls", "c", "--lock-wait", "soon"], 2);
    drop(first_in);
    assert!(first.wait().unwrap().success());
}

#[test]
fn the_recycle_bin_keeps_every_version_replaced_or_deleted() {
    let env = Env::new();
    env.ok(&["container", "update", "c", "--recycle-bin", "on", "--retention", "7"]);
    let (v1, v2, v3) = (random(120_000, 6), random(90_000, 7), random(60_000, 8));
    env.ok(&["put", "c/x", s(&env.file("v1", &v1))]);
    env.ok(&["put", "--replace", "c/x", s(&env.file("v2", &v2))]);
    env.ok(&["rm", "c/x"]);
    let bin = env.json(&["recycle-bin", "ls", "c"]);
    let list = bin.as_array().unwrap();
    assert_eq!(list.len(), 2, "{bin}");
    for (entry, data) in list.iter().zip([&v1, &v2]) {
        for key in ["id", "container", "name", "logical_bytes", "deleted", "expires"] {
            assert!(!entry[key].is_null(), "{key} missing: {entry}");
        }
        assert_eq!(entry["container"], "c");
        assert_eq!(entry["name"], "x");
        assert_eq!(entry["logical_bytes"], data.len() as u64);
    }
    let (id1, id2) = (list[0]["id"].as_u64().unwrap(), list[1]["id"].as_u64().unwrap());
    assert_ne!(id1, id2);
    let human = String::from_utf8(env.ok(&["recycle-bin", "ls", "c"])).unwrap();
    assert!(human.contains(&id1.to_string()) && human.contains(&id2.to_string()), "{human}");

    // Either version comes back bit-exact by id; a live name blocks a restore.
    env.ok(&["recycle-bin", "restore", "c/x", "--id", &id1.to_string()]);
    assert!(env.get("c/x") == v1);
    let err = env.fail(&["recycle-bin", "restore", "c/x", "--id", &id2.to_string()], 1);
    assert!(err.contains("\"x\""), "{err}");
    env.ok(&["put", "--replace", "c/x", s(&env.file("v3", &v3))]);
    env.ok(&["rm", "c/x"]);
    // Ids stay as they were; v1 is back in the bin under its id, beside v2 and v3.
    let bin = env.json(&["recycle-bin", "ls", "c"]);
    let ids: Vec<u64> = bin.as_array().unwrap().iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), 3, "{bin}");
    assert!(ids.contains(&id1) && ids.contains(&id2), "{bin}");
    env.ok(&["recycle-bin", "restore", "c/x", "--id", &id2.to_string()]);
    assert!(env.get("c/x") == v2);
    env.ok(&["rm", "c/x"]);
    // Without --id: the most recently binned version (v2 again).
    env.ok(&["recycle-bin", "restore", "c/x"]);
    assert!(env.get("c/x") == v2);
    let err = env.fail(&["recycle-bin", "restore", "c/x", "--id", "999999"], 1);
    assert!(err.contains("999999"), "{err}");
}

#[test]
fn names_with_control_characters_or_dots_are_refused_with_exit_2() {
    let env = Env::new();
    let input = env.file("in", b"data");
    for name in ["c/a\u{1b}[2Jb", "c/bell\u{7}", "c/tab\there", "c/new\nline"] {
        let err = env.fail(&["put", name, s(&input)], 2);
        assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "printed raw: {err:?}");
        assert!(err.contains("control character"), "{err}");
    }
    assert_eq!(env.json(&["ls", "c"]), Value::Array(vec![]), "nothing was stored");
    for name in [".", "..", "a\tb"] {
        env.fail(&["container", "add", name, "--type", "object"], 2);
        env.fail(&["storage-group", "add", name], 2);
    }
    // A long name is printed once, shortened.
    let long = format!("c/{}", "x".repeat(10_000));
    let err = env.fail(&["put", &long, s(&input)], 2);
    assert!(err.len() < 400, "{} bytes: {err}", err.len());
    let err = env.fail(&["container", "add", &"y".repeat(10_000), "--type", "object"], 2);
    assert!(err.len() < 400, "{} bytes: {err}", err.len());
}

#[test]
fn ls_without_a_container_lists_the_containers() {
    let env = Env::new();
    env.ok(&["container", "add", "d", "--type", "nas"]);
    let list = env.json(&["ls"]);
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["c", "d"]);
    let human = String::from_utf8(env.ok(&["ls"])).unwrap();
    assert!(human.contains("nas") && human.contains('d'), "{human}");
}

#[test]
fn values_refused_for_their_form_or_range_exit_2_state_refusals_exit_1() {
    let env = Env::new();
    for (args, names) in [
        (&["vtl", "add", "l1", "--drives", "0"][..], "0"),
        (&["vtl", "add", "l1", "--slots", "0"], "slot"),
        (&["vtl", "add", "l1", "--tapes", "100000"], "100000"),
        (&["vtl", "add", "l1", "--slots", "4", "--tapes", "5"], "5"),
        (&["container", "add", "q", "--type", "object", "--quota", "-1"], "-1"),
        (&["container", "add", "q", "--type", "object", "--quota", "1.5XB"], "XB"),
        (&["storage-group", "add", "g", "--quota", "-1"], "-1"),
    ] {
        let err = env.fail(args, 2);
        assert!(err.contains(names), "{args:?}: {err}");
        assert!(!err.contains("-- -1"), "{args:?}: {err}");
    }
    assert_eq!(env.json(&["container", "list"]).as_array().unwrap().len(), 1, "nothing was created");
    // Sizes: dd's K/M/G/T are powers of 2; decimals are rounded down to a byte.
    assert_eq!(env.json(&["container", "add", "q1", "--type", "object", "--quota", "1.5K"])["quota_bytes"], 1536);
    assert_eq!(env.json(&["container", "add", "q2", "--type", "object", "--quota", "2M"])["quota_bytes"], 2 << 20);
    assert_eq!(
        env.json(&["container", "add", "q3", "--type", "object", "--quota", "1.5TB"])["quota_bytes"],
        1_500_000_000_000u64
    );
    // State: exists, missing.
    env.fail(&["container", "add", "q1", "--type", "object"], 1);
    env.fail(&["ls", "nosuch"], 1);
}
