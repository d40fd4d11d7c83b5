//! `qorestor serve` as a supervisor and one serving process: a serving process killed is
//! restarted on the same port and the restart is an event `alerts list` shows; SIGTERM stops
//! both with exit 0; a supervisor killed takes its serving process along (the port and the
//! data directory are free again); a serving process that cannot start again makes the
//! supervisor give up as its help says; a library added or deleted through the daemon is
//! served, or no longer served, by the same serving process.

mod common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{iscsi_ls_lib1 as iscsi_ls, qorestor, Server};
use serde_json::Value;

/// A data directory with one tape library, so the iSCSI target has a target to list.
fn library_dir(tmp: &Path) -> std::path::PathBuf {
    let data = tmp.join("data");
    common::init(&data);
    common::run_ok(&data, &["vtl", "add", "lib1", "--storage-group", "DefaultGroup"], None);
    data
}

/// `alerts list --events --json`, newest first.
fn events(data: &Path) -> Vec<Value> {
    let out = common::run_ok(data, &["alerts", "list", "--events", "--json"], None);
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

/// `kill -s SIGNAL -- TARGET` (a pid, or a process group as `-PGID`).
fn kill(signal: &str, target: &str) {
    let sent = Command::new("kill").args(["-s", signal, "--", target]).status().unwrap();
    assert!(sent.success(), "kill -s {signal} {target}");
}

#[test]
fn a_killed_serving_process_is_restarted_on_the_same_port_and_the_restart_is_an_event() {
    let tmp = tempfile::tempdir().unwrap();
    let data = library_dir(tmp.path());
    let server = Server::start(&data, &["--iscsi-listen", "127.0.0.1:0"]);
    let portal = server.listening["iscsi"].clone();
    iscsi_ls(&portal);
    let first = server.serving_pid();
    let started = Instant::now();
    kill("KILL", &first.to_string());
    let lines = server.wait_for_stderr("restarted as pid");
    let restart = lines.last().unwrap();
    assert!(restart.contains(&format!("(pid {first}) was killed by signal 9 (SIGKILL)")), "{restart}");
    // The new serving process serves on the same port; a client connecting meanwhile waits in
    // the listen queue.
    iscsi_ls(&portal);
    let back = started.elapsed();
    println!("serving again {} ms after the SIGKILL", back.as_millis());
    assert!(back.as_secs() < 5, "serving again took {back:?}");
    let second = server.serving_pid();
    assert_ne!(first, second);
    let events = events(&data);
    let newest = &events[0];
    assert_eq!(newest["severity"], "warning", "{events:?}");
    assert_eq!(newest["source"], "serve");
    assert!(newest["message"].as_str().unwrap().contains("restarted"), "{newest}");
    assert!(newest["time"].as_str().unwrap().ends_with('Z'), "{newest}");
    assert!(events[1]["message"].as_str().unwrap().starts_with("serve started"), "{events:?}");

    let status = server.stop_with("TERM");
    assert!(status.success(), "SIGTERM: exit {status}");
    let events = self::events(&data);
    assert_eq!(events[0]["message"], "serve stopped on SIGTERM", "{events:?}");
    common::run_ok(&data, &["verify"], None);
}

#[test]
fn sigterm_to_the_process_group_stops_both_processes_with_exit_0() {
    let tmp = tempfile::tempdir().unwrap();
    let data = library_dir(tmp.path());
    // Its own process group, as a shell job or a service manager's unit would be.
    let mut child = qorestor(&data)
        .args(["serve", "--ndmp-listen", "127.0.0.1:0"])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.starts_with("listening ndmp "), "{line}");
    kill("TERM", &format!("-{}", child.id()));
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status}");
    common::run_ok(&data, &["verify"], None);
}

#[test]
fn a_killed_supervisor_takes_its_serving_process_along() {
    let tmp = tempfile::tempdir().unwrap();
    let data = library_dir(tmp.path());
    let server = Server::start(&data, &["--iscsi-listen", "127.0.0.1:0"]);
    let portal = server.listening["iscsi"].clone();
    let serving = server.serving_pid();
    kill("KILL", &server.pid().to_string());
    // The serving process is told (SIGTERM) and stops cleanly; once it has ended, nothing
    // holds the daemon's stderr.
    let rest = server.wait_for_stderr_end();
    assert!(rest.iter().any(|l| l.contains("SIGTERM: stopping the listeners")), "{rest:?}");
    // Gone, or a zombie its new parent has not reaped yet (it holds nothing).
    let stat = std::fs::read_to_string(format!("/proc/{serving}/stat")).unwrap_or_default();
    let state = stat.rsplit(')').next().unwrap_or("").split_whitespace().next();
    assert!(stat.is_empty() || state == Some("Z"), "serving process {serving} is left: {stat}");
    // No process holds the port or the directory.
    TcpListener::bind(&portal).expect("the iSCSI port is free again");
    let out = qorestor(&data).args(["--lock-wait", "0", "vtl", "show", "lib1"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_serving_process_that_cannot_start_again_makes_serve_give_up_after_5_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = library_dir(tmp.path());
    let server = Server::start(&data, &["--iscsi-listen", "127.0.0.1:0"]);
    // Every later serving process fails to open the directory.
    let marker = std::fs::read(data.join("QORESTOR")).unwrap();
    std::fs::write(data.join("QORESTOR"), "not a qorestor marker\n").unwrap();
    kill("KILL", &server.serving_pid().to_string());
    let lines = server.wait_for_stderr("giving up");
    let restarts = lines.iter().filter(|l| l.contains("restarted as pid")).count();
    assert_eq!(restarts, 5, "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("unsupported content")), "the serving process says why: {lines:?}");
    let status = server.stop_with("TERM");
    assert_eq!(status.code(), Some(1), "serve gives up with exit 1");
    std::fs::write(data.join("QORESTOR"), marker).unwrap();
    let events = events(&data);
    assert_eq!(events[0]["severity"], "error", "{events:?}");
    assert!(events[0]["message"].as_str().unwrap().contains("giving up after 5 restarts within 60 s"), "{events:?}");
}

#[test]
fn a_listener_that_cannot_bind_is_an_error_event_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let data = library_dir(tmp.path());
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = qorestor(&data).args(["serve", "--iscsi-listen", &addr]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "no listening line: {}", String::from_utf8_lossy(&out.stdout));
    let events = events(&data);
    assert_eq!(events[0]["severity"], "error", "{events:?}");
    let message = events[0]["message"].as_str().unwrap();
    assert!(message.contains(&format!("cannot listen for iscsi on {addr}")), "{message}");
}

/// The target names `iscsi-ls -s` lists (its `Target:NAME Portal:ADDR` lines), or `None` when
/// the client is not installed.
fn targets(portal: &str) -> Option<Vec<String>> {
    let text = common::iscsi_ls(portal)?;
    let names = text.lines().filter_map(|l| l.trim().strip_prefix("Target:"));
    Some(names.filter_map(|t| t.split_whitespace().next()).map(str::to_string).collect())
}

#[test]
fn a_library_added_through_the_daemon_is_served_without_a_restart_and_a_deleted_one_no_longer() {
    let tmp = tempfile::tempdir().unwrap();
    let data = library_dir(tmp.path());
    let server = Server::start(&data, &["--iscsi-listen", "127.0.0.1:0"]);
    let portal = server.listening["iscsi"].clone();
    let serving = server.serving_pid();
    let served = |name: &str, listed: &[String]| listed.iter().any(|t| t.ends_with(&format!(":{name}")));
    if let Some(listed) = targets(&portal) {
        assert!(served("lib1", &listed) && !served("lib2", &listed), "{listed:?}");
    }
    // The real CLI commands, handed to the daemon (the serving process holds the directory).
    let out = common::run_ok(&data, &["--json", "vtl", "add", "lib2", "--storage-group", "DefaultGroup"], None);
    let added: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(added["name"], "lib2", "{added}");
    let holder = std::fs::read_to_string(data.join("lock")).unwrap();
    assert!(holder.contains(&format!("qorestor serve (pid {})", server.pid())), "{holder}");
    if let Some(listed) = targets(&portal) {
        assert!(served("lib1", &listed) && served("lib2", &listed), "lib2 is served at once: {listed:?}");
    }
    assert_eq!(server.serving_pid(), serving, "no restart for an added library");

    common::run_ok(&data, &["vtl", "delete", "lib2", "--force"], None);
    if let Some(listed) = targets(&portal) {
        assert!(served("lib1", &listed) && !served("lib2", &listed), "lib2 is no longer served: {listed:?}");
    }
    assert_eq!(server.serving_pid(), serving, "no restart for a deleted library");
    let lines = server.stderr_lines();
    assert!(!lines.iter().any(|l| l.contains("restarted as pid")), "{lines:?}");
    server.stop();
}
