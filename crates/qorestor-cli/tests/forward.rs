//! Every command through the daemon: with `qorestor serve` running, commands on its directory
//! are handed to it over `DATA/control` and give the same output and exit codes as on a
//! directory nobody serves (a twin that went through the same commands), after masking
//! durations, rates and timestamps. Usage errors and `--help` stay in the client.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{qorestor, random, Server};
use serde_json::Value;

/// One side of the comparison: a data directory and the directory its commands run in.
struct Side {
    data: PathBuf,
    cwd: PathBuf,
}

impl Side {
    fn new(tmp: &Path, name: &str, input: &[u8]) -> Side {
        let data = tmp.join(format!("data-{name}"));
        let cwd = tmp.join(format!("work-{name}"));
        std::fs::create_dir_all(&cwd).unwrap();
        std::fs::write(cwd.join("in.bin"), input).unwrap();
        common::init(&data);
        Side { data, cwd }
    }

    /// Runs `qorestor --data DATA ARGS` in the side's working directory (relative FILE
    /// arguments are relative to it, not to the daemon's), feeding `stdin`.
    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        common::run(qorestor(&self.data).args(args).current_dir(&self.cwd), stdin)
    }
}

/// Starts `serve` on `data` with no frontend and waits until it holds the directory and its
/// control socket exists (there is no `listening` line to wait for).
fn serve(data: &Path) -> Server {
    let server = Server::start(data, &[]);
    let holder = format!("qorestor serve (pid {})", server.pid());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !(std::fs::read_to_string(data.join("lock")).unwrap_or_default().contains(&holder)
        && data.join("control").exists())
    {
        assert!(std::time::Instant::now() < deadline, "serve never took the directory");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server
}

/// `text` with every data directory path and free-space figure, duration, rate and time replaced by a placeholder.
fn mask_text(text: &str, data: &Path) -> String {
    let text = text.replace(&data.display().to_string(), "<DATA>");
    // Free space moves with the file system (other processes write to it).
    if text.trim_start().starts_with("Free:") {
        return "Free: <FREE>".into();
    }
    let mut out = String::new();
    let words: Vec<&str> = text.split(' ').collect();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        // "in 0.05 s (121 B/s)"
        if w == "in" && words.get(i + 2).is_some_and(|s| s.starts_with('s')) && is_number(words[i + 1]) {
            out.push_str("in <T> s");
            i += 3;
            if words.get(i).is_some_and(|w| w.starts_with('(')) && words.get(i + 1).is_some_and(|w| w.contains("/s")) {
                out.push_str(" (<RATE>)");
                out.push_str(words[i + 1].split_once(')').map_or("", |(_, rest)| rest));
                i += 2;
            }
            out.push(' ');
            continue;
        }
        // Any other duration: "Time: 0.1 s".
        let seconds = |next: &str| next.trim_end_matches([',', ';', ')', '.']) == "s";
        if is_number(w) && w.contains('.') && words.get(i + 1).is_some_and(|n| seconds(n)) {
            out.push_str("<T> ");
            i += 1;
            continue;
        }
        out.push_str(&mask_serial(&mask_times(w)));
        out.push(' ');
        i += 1;
    }
    out.pop();
    out
}

/// A generated changer or drive serial (`QS` or `QD` and 8 hex digits, in a word that may
/// close with `)`) is masked.
fn mask_serial(w: &str) -> String {
    let core = w.trim_end_matches(')');
    let generated = core.len() == 10
        && (core.starts_with("QS") || core.starts_with("QD"))
        && core[2..].chars().all(|c| c.is_ascii_hexdigit());
    if generated {
        format!("<SERIAL>{}", &w[core.len()..])
    } else {
        w.to_string()
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// Replaces `YYYY-MM-DD` and `HH:MM:SS` inside a word.
fn mask_times(w: &str) -> String {
    let shape = |s: &str, pattern: &str| {
        s.len() >= pattern.len()
            && s.chars().zip(pattern.chars()).all(|(c, p)| if p == 'd' { c.is_ascii_digit() } else { c == p })
    };
    let mut out = String::new();
    let mut rest = w;
    while !rest.is_empty() {
        if shape(rest, "dddd-dd-dd") {
            out.push_str("<DATE>");
            rest = &rest[10..];
        } else if shape(rest, "dd:dd:dd") {
            out.push_str("<TIME>");
            rest = &rest[8..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Keys whose values are durations, rates, times or free space (which moves with the file
/// system): masked in JSON documents.
const MASKED_KEYS: [&str; 8] =
    ["seconds", "mb_per_s", "created", "time", "free_bytes", "started", "finished", "serial"];

fn mask_json(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if MASKED_KEYS.iter().any(|m| k.contains(m)) {
                    *v = Value::Null;
                } else {
                    mask_json(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_json),
        _ => {}
    }
}

/// Output masked: JSON documents (whole stdout, or one per stderr line) with their masked keys,
/// text with its times and rates.
fn mask(bytes: &[u8], data: &Path) -> String {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(mut v) = serde_json::from_str::<Value>(&text) {
        mask_json(&mut v);
        return format!("json: {v}");
    }
    text.lines()
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(mut v) if v.is_object() => {
                mask_json(&mut v);
                format!("json: {v}")
            }
            _ => mask_text(line, data),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the same command on both sides and requires the same exit code and masked output;
/// returns the served side's output.
fn same(served: &Side, idle: &Side, args: &[&str], stdin: Option<&[u8]>, code: i32) -> Output {
    let a = served.run(args, stdin);
    let b = idle.run(args, stdin);
    assert_eq!(a.status.code(), Some(code), "{args:?} through the daemon: {}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(b.status.code(), Some(code), "{args:?} on its own: {}", String::from_utf8_lossy(&b.stderr));
    assert_eq!(mask(&a.stdout, &served.data), mask(&b.stdout, &idle.data), "{args:?}: stdout");
    assert_eq!(mask(&a.stderr, &served.data), mask(&b.stderr, &idle.data), "{args:?}: stderr");
    a
}

#[test]
fn commands_through_the_daemon_match_a_twin_directory_nobody_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let input = random(3 << 20, 7);
    let piped = random(2 << 20, 8);
    let served = Side::new(tmp.path(), "served", &input);
    let idle = Side::new(tmp.path(), "idle", &input);
    let server = serve(&served.data);

    same(&served, &idle, &["container", "add", "nightly", "--type", "object"], None, 0);
    // A FILE argument relative to the client's working directory, and stdin.
    same(&served, &idle, &["put", "nightly/a", "in.bin"], None, 0);
    same(&served, &idle, &["--json", "put", "nightly/b", "-"], Some(&piped), 0);
    // A failing command (exit 1) and a usage error (exit 2).
    same(&served, &idle, &["put", "nightly/a", "in.bin"], None, 1);
    same(&served, &idle, &["put", "nightly/c", "no-such-file"], None, 1);
    same(&served, &idle, &["container", "add", "x", "--type", "tape"], None, 2);
    same(&served, &idle, &["ls", "--help"], None, 0);
    // get to a relative FILE (created in the client's directory) and to stdout.
    same(&served, &idle, &["get", "nightly/a", "restored.bin"], None, 0);
    assert_eq!(std::fs::read(served.cwd.join("restored.bin")).unwrap(), input);
    let out = same(&served, &idle, &["--json", "get", "nightly/b"], None, 0);
    assert_eq!(out.stdout, piped);
    same(&served, &idle, &["get", "nightly/none"], None, 1);
    for args in [&["ls"][..], &["ls", "nightly"], &["--json", "ls", "nightly"], &["stats"], &["stats", "--json"]] {
        same(&served, &idle, args, None, 0);
    }
    same(&served, &idle, &["vtl", "add", "lib1", "--storage-group", "DefaultGroup"], None, 0);
    same(&served, &idle, &["vtl", "load", "lib1", "--barcode", "QS0002L5", "--drive", "1"], None, 0);
    same(&served, &idle, &["--json", "vtl", "show", "lib1"], None, 0);
    same(&served, &idle, &["rm", "nightly/b"], None, 0);
    same(&served, &idle, &["verify"], None, 0);
    same(&served, &idle, &["--json", "verify"], None, 0);
    same(&served, &idle, &["cleaner", "run"], None, 0);
    same(&served, &idle, &["--json", "cleaner", "run"], None, 0);
    same(&served, &idle, &["--json", "stats"], None, 0);
    same(&served, &idle, &["init"], None, 0);

    // Through the daemon indeed: its serving process holds the directory all along.
    let holder = std::fs::read_to_string(served.data.join("lock")).unwrap();
    assert!(holder.contains(&format!("qorestor serve (pid {})", server.pid())), "{holder}");
    server.stop();
    // The same directory, idle now, gives the same answers on its own.
    let after = served.run(&["--json", "ls", "nightly"], None);
    let twin = idle.run(&["--json", "ls", "nightly"], None);
    assert_eq!(mask(&after.stdout, &served.data), mask(&twin.stdout, &idle.data));
}

#[test]
fn a_relative_replication_target_is_the_clients_not_the_daemons() {
    // `replication add --target DIR` names no file the client opens: the daemon resolves a
    // relative DIR against the client's working directory (never its own), and stores it
    // absolute, as a command run on its own does, so later passes reach the same directory.
    let tmp = tempfile::tempdir().unwrap();
    let served = Side::new(tmp.path(), "served", b"x");
    let idle = Side::new(tmp.path(), "idle", b"x");
    let server = serve(&served.data);
    for side in [&served, &idle] {
        let out = side.run(&["container", "add", "c", "--type", "object"], None);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = side.run(&["put", "c/s", "in.bin"], None);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = side.run(&["replication", "add", "c", "--target", "replica"], None);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = side.run(&["--json", "replication", "status", "c"], None);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(shown["target"].as_str(), side.cwd.join("replica").to_str(), "{shown}");
        let out = side.run(&["replication", "start", "c"], None);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let holder = std::fs::read_to_string(served.data.join("lock")).unwrap();
    assert!(holder.contains(&format!("qorestor serve (pid {})", server.pid())), "{holder}");
    server.stop();
    let out = common::run(qorestor(&served.cwd.join("replica")).args(["get", "c/s"]).current_dir(&served.cwd), None);
    assert_eq!(out.stdout, b"x", "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_data_directory_path_longer_than_a_socket_address_works() {
    let tmp = tempfile::tempdir().unwrap();
    let mut data = tmp.path().to_path_buf();
    for i in 0..6 {
        data.push(format!("a-rather-long-directory-name-number-{i}"));
    }
    assert!(data.join("control").as_os_str().len() > 108);
    common::init(&data);
    let server = serve(&data);
    common::run_ok(&data, &["container", "add", "c", "--type", "object"], None);
    common::run_ok(&data, &["put", "c/s", "-"], Some(b"long path"));
    let out = common::run_ok(&data, &["get", "c/s"], None);
    assert_eq!(out.stdout, b"long path");
    let holder = std::fs::read_to_string(data.join("lock")).unwrap();
    assert!(holder.contains(&format!("qorestor serve (pid {})", server.pid())), "{holder}");
    server.stop();
}

#[test]
fn the_control_socket_is_private_and_a_missing_one_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::init(&data);
    let server = serve(&data);
    let meta = std::fs::metadata(data.join("control")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // The daemon cannot be reached (its socket is gone): the command says so.
    std::fs::remove_file(data.join("control")).unwrap();
    let out = qorestor(&data).args(["ls"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let holder = format!("qorestor serve (pid {})", server.pid());
    assert!(err.contains(&format!("is in use by {holder}; its daemon cannot be reached on")), "{err}");
    server.stop();
}

#[test]
fn encrypted_groups_use_the_daemons_passphrase_and_a_clients_must_match_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::init(&data);
    let add = ["storage-group", "add", "vault", "--encryption", "static", "--passphrase-stdin"];
    common::run_ok(&data, &add, Some(b"right phrase\n"));
    common::run_ok(&data, &["container", "add", "v", "--storage-group", "vault", "--type", "object"], None);
    let server =
        Server::start_with_env(&data, &["--iscsi-listen", "127.0.0.1:0"], &[("QORESTOR_PASSPHRASE", "right phrase")]);
    // No passphrase: the daemon's unlocks the group.
    common::run_ok(&data, &["put", "v/s", "-"], Some(b"secret data"));
    // The same passphrase, from the environment or a file: accepted.
    let out = common::run(qorestor(&data).args(["get", "v/s"]).env("QORESTOR_PASSPHRASE", "right phrase"), None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"secret data");
    std::fs::write(tmp.path().join("pass"), "right phrase\n").unwrap();
    let file = tmp.path().join("pass");
    let out = common::run(qorestor(&data).arg("--passphrase-file").arg(&file).args(["ls", "v"]), None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Another one: refused, naming the group.
    let out = common::run(qorestor(&data).args(["get", "v/s"]).env("QORESTOR_PASSPHRASE", "guess"), None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"vault\"") && err.contains("passphrase qorestor serve was started with"), "{err}");
    assert!(out.stdout.is_empty());
    server.stop();
}

#[test]
fn the_daemon_takes_commands_only_from_its_own_user_or_root() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !rustix::process::getuid().is_root() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: this test needs root");
        eprintln!("skipped: needs root to run a client as another user");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::init(&data);
    let server = serve(&data);
    // Open the way to the socket for another user (mode 0600 would stop it at connect).
    for (path, mode) in [(tmp.path(), 0o755), (data.as_path(), 0o755), (&data.join("control"), 0o666)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let out = qorestor(&data).arg("ls").uid(65534).gid(65534).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused: the daemon (uid 0) takes commands only from uid 0 or root, not from uid 65534"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    server.stop();
}
