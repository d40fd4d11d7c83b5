//! Commands through the daemon when things go wrong: a command that panics inside the daemon
//! ends with exit 1 while the daemon (its serving process, its iSCSI target) goes on; a `put`
//! whose client is killed mid-stream is cancelled and publishes nothing; a daemon that dies
//! mid-command makes its client exit 1 saying so.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use common::{iscsi_ls_lib1 as iscsi_ls, qorestor, random, Server};
use serde_json::Value;

/// A data directory with container `c`, served (a listener, so the start can be waited for).
fn served_dir(tmp: &Path) -> (std::path::PathBuf, Server) {
    let data = tmp.join("data");
    common::init(&data);
    common::run_ok(&data, &["container", "add", "c", "--type", "object"], None);
    let server = Server::start(&data, &["--iscsi-listen", "127.0.0.1:0"]);
    (data, server)
}

/// Starts `put c/NAME -` through the daemon and feeds it 4 MiB from a pipe this test keeps
/// open: once they went into a 64 KiB pipe the daemon is reading the stream.
fn streaming_put(data: &Path, name: &str) -> (Child, ChildStdin) {
    let mut client = qorestor(data)
        .args(["put", &format!("c/{name}"), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut producer = client.stdin.take().unwrap();
    producer.write_all(&random(4 << 20, 3)).unwrap();
    (client, producer)
}

/// `qorestor --json ls C` through the daemon: the stream names.
fn names(data: &Path, container: &str) -> Vec<String> {
    let out = common::run_ok(data, &["--json", "ls", container], None);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_command_that_panics_in_the_daemon_exits_1_and_the_daemon_serves_on() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::init(&data);
    common::run_ok(&data, &["vtl", "add", "lib1", "--storage-group", "DefaultGroup"], None);
    // Test builds panic at this point: a command whose last argument is "boom".
    let server = Server::start_with_env(
        &data,
        &["--iscsi-listen", "127.0.0.1:0"],
        &[("QORESTOR_PANIC_POINT", "command argument boom")],
    );
    let portal = server.listening["iscsi"].clone();
    iscsi_ls(&portal);
    let serving = server.serving_pid();
    let out = qorestor(&data).args(["ls", "boom"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("internal error: the command panicked in the daemon"), "{err}");
    // The same serving process serves the target and takes commands.
    iscsi_ls(&portal);
    assert_eq!(server.serving_pid(), serving, "the serving process was not restarted");
    common::run_ok(&data, &["vtl", "show", "lib1"], None);
    server.stop();
}

#[test]
fn a_put_whose_client_is_killed_mid_stream_publishes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, server) = served_dir(tmp.path());
    let (mut client, producer) = streaming_put(&data, "killed");
    let mut stderr = client.stderr.take().unwrap();
    client.kill().unwrap();
    client.wait().unwrap();
    // The daemon holds the client's stderr until the command ends: read to its end.
    let mut said = String::new();
    stderr.read_to_string(&mut said).unwrap();
    assert!(said.contains("the client went away"), "{said}");
    assert!(names(&data, "c").is_empty(), "nothing published");
    // The daemon serves on: the stream can be stored, and the producer's pipe is still open.
    common::run_ok(&data, &["put", "c/kept", "-"], Some(b"after"));
    assert_eq!(names(&data, "c"), ["kept"]);
    drop(producer);
    server.stop();
}

#[test]
fn a_daemon_that_dies_mid_command_makes_its_client_exit_1_saying_so() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, server) = served_dir(tmp.path());
    let (client, producer) = streaming_put(&data, "s");
    let serving = server.serving_pid();
    let killed = Command::new("kill").args(["-s", "KILL", &serving.to_string()]).status().unwrap();
    assert!(killed.success());
    let out = client.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ended during the command"), "{err}");
    drop(producer);
    // The supervisor restarts the serving process; the stream was never published.
    server.wait_for_stderr("restarted as pid");
    assert!(names(&data, "c").is_empty());
    server.stop();
}

#[test]
fn verify_repair_through_the_daemon_runs_beside_a_put_in_progress() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, server) = served_dir(tmp.path());
    common::run_ok(&data, &["put", "c/before", "-"], Some(&random(1 << 20, 5)));
    // A put mid-stream (its producer keeps the pipe open): the repair closes the write gate,
    // waits for no writer between batches, and ends; the put then goes on and completes.
    let (client, mut producer) = streaming_put(&data, "during");
    let repair = common::run_ok(&data, &["--json", "verify", "--repair"], None);
    let report: Value = serde_json::from_slice(&repair.stdout).unwrap();
    assert_eq!(report["repair"], true);
    producer.write_all(b"the end").unwrap();
    drop(producer);
    let out = client.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut want = random(4 << 20, 3);
    want.extend_from_slice(b"the end");
    assert_eq!(common::run_ok(&data, &["get", "c/during"], None).stdout, want);
    assert_eq!(names(&data, "c"), ["before", "during"]);
    common::run_ok(&data, &["verify"], None);
    server.stop();
}

#[test]
fn a_stopping_daemon_lets_a_running_command_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, server) = served_dir(tmp.path());
    let (client, mut producer) = streaming_put(&data, "last");
    let stop = Command::new("kill").args(["-s", "TERM", &server.pid().to_string()]).status().unwrap();
    assert!(stop.success());
    // The serving process has begun stopping (listeners first), and waits for the put.
    server.wait_for_stderr("stopping the listeners");
    producer.write_all(b"tail").unwrap();
    drop(producer);
    let out = client.wait_with_output().unwrap();
    let rest = server.wait_for_stderr_end();
    assert!(out.status.success(), "{} (serve then said: {rest:?})", String::from_utf8_lossy(&out.stderr));
    // serve has stopped: the directory is idle and holds the stream.
    assert_eq!(names(&data, "c"), ["last"]);
    let mut want = random(4 << 20, 3);
    want.extend_from_slice(b"tail");
    assert_eq!(common::run_ok(&data, &["get", "c/last"], None).stdout, want);
}
