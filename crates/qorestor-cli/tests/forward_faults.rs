//! Commands through the daemon when things go wrong: a command that panics inside the daemon
//! ends with exit 1 while the daemon (its serving process, an iSCSI session held open across
//! the panic) goes on; a `put`
//! whose client is killed mid-stream is cancelled and publishes nothing; a `cleaner run` or a
//! `verify` whose client is killed stops at its next cancel point; a daemon that dies
//! mid-command makes its client exit 1 saying so.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use common::{iscsi_ls_lib1 as iscsi_ls, qorestor, random, Server};
use qorestor_iscsi::frame::{decode, encode, Digests};
use qorestor_iscsi::pdu::{stage, LoginHead, Pdu, RESERVED_TAG};
use qorestor_iscsi::text::{self, Pairs};
use serde_json::Value;

/// A raw iSCSI initiator on one TCP connection (the crate's own PDU codec), logged in to one
/// target without authentication or digests: it holds its session open as long as it lives.
struct Initiator {
    stream: TcpStream,
    buf: Vec<u8>,
    cmd_sn: u32,
    itt: u32,
}

impl Initiator {
    /// Connects to `portal` and logs in to `target` straight to full feature phase.
    fn log_in(portal: &str, target: &str) -> Initiator {
        let stream = TcpStream::connect(portal).unwrap();
        // Bounds a hang only: every read waits for the target's answer.
        stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        let mut i = Initiator { stream, buf: Vec::new(), cmd_sn: 1, itt: 1 };
        let mut keys = Pairs::default();
        for (k, v) in [("InitiatorName", "iqn.2024-01.test.cli:faults"), ("TargetName", target), ("AuthMethod", "None")]
        {
            keys.push(k, v);
        }
        let head = LoginHead {
            transit: true,
            cont: false,
            csg: stage::SECURITY,
            nsg: stage::FULL_FEATURE,
            version_max: 0,
            version: 0,
            isid: [0x80, 0, 0, 0, 0, 7],
            tsih: 0,
        };
        i.send(&Pdu::Login { head, itt: 0, cid: 0, cmd_sn: 1, exp_stat_sn: 0, data: text::format(&keys) });
        match i.recv() {
            Pdu::LoginResponse { status_class: 0, status_detail: 0, head, .. } => {
                assert!(head.transit && head.nsg == stage::FULL_FEATURE && head.tsih != 0, "{head:?}");
            }
            other => panic!("login to {target} refused: {other:?}"),
        }
        i
    }

    fn send(&mut self, pdu: &Pdu) {
        let mut wire = Vec::new();
        encode(&pdu.to_frame(), Digests::default(), &mut wire);
        self.stream.write_all(&wire).unwrap();
    }

    /// The next PDU; the target's keep-alive pings are answered on the way.
    fn recv(&mut self) -> Pdu {
        loop {
            if let Some((frame, used)) = decode(&self.buf, Digests::default(), 1 << 24).unwrap() {
                self.buf.drain(..used);
                match Pdu::from_frame(frame).unwrap() {
                    Pdu::NopIn { ttt, lun, .. } if ttt != RESERVED_TAG => {
                        let (cmd_sn, exp_stat_sn, data) = (self.cmd_sn, 0, Vec::new());
                        self.send(&Pdu::NopOut {
                            immediate: true,
                            lun,
                            itt: RESERVED_TAG,
                            ttt,
                            cmd_sn,
                            exp_stat_sn,
                            data,
                        });
                    }
                    pdu => return pdu,
                }
                continue;
            }
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk).expect("the target answers");
            assert!(n > 0, "the target closed the session");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// INQUIRY of LUN 0 (the changer) on the open session: its vendor and product.
    fn inquiry(&mut self) -> String {
        let (itt, cmd_sn) = (self.itt, self.cmd_sn);
        self.itt += 1;
        self.cmd_sn += 1;
        self.send(&Pdu::ScsiCommand {
            immediate: false,
            final_: true,
            read: true,
            write: false,
            attr: 1,
            lun: 0,
            itt,
            expected_len: 36,
            cmd_sn,
            exp_stat_sn: 0,
            cdb: vec![0x12, 0, 0, 0, 36, 0],
            data: Vec::new(),
        });
        let mut data = Vec::new();
        loop {
            match self.recv() {
                Pdu::DataIn { itt: got, data: part, status, .. } if got == itt => {
                    data.extend_from_slice(&part);
                    if let Some(status) = status {
                        assert_eq!(status, 0, "INQUIRY status");
                        break;
                    }
                }
                Pdu::ScsiResponse { itt: got, status, .. } if got == itt => {
                    assert_eq!(status, 0, "INQUIRY status");
                    break;
                }
                other => panic!("unexpected answer to INQUIRY: {other:?}"),
            }
        }
        assert!(data.len() >= 32, "short INQUIRY data: {data:?}");
        String::from_utf8_lossy(&data[8..32]).into_owned()
    }
}

/// A data directory with container `c`, served (a listener, so the start can be waited for).
fn served_dir(tmp: &Path) -> (std::path::PathBuf, Server) {
    served_dir_with_env(tmp, &[])
}

/// [`served_dir`] with serve started with `env` besides.
fn served_dir_with_env(tmp: &Path, env: &[(&str, &str)]) -> (std::path::PathBuf, Server) {
    let data = tmp.join("data");
    common::init(&data);
    common::run_ok(&data, &["container", "add", "c", "--type", "object"], None);
    let server = Server::start_with_env(&data, &["--iscsi-listen", "127.0.0.1:0"], env);
    (data, server)
}

/// Runs `ARGS` through a daemon started with `QORESTOR_HOLD_POINT=POINT`: once the command
/// holds there, its client is SIGKILLed; returns what the daemon wrote to the client's stderr
/// (it holds it until the command has ended, so this returns once the command ended).
fn killed_at_hold_point(data: &Path, server: &Server, args: &[&str], point: &str) -> String {
    let mut client =
        qorestor(data).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = client.stderr.take().unwrap();
    server.wait_for_stderr(&format!("holding at {point}"));
    client.kill().unwrap();
    client.wait().unwrap();
    let mut said = String::new();
    stderr.read_to_string(&mut said).unwrap();
    said
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
    // An iSCSI session of library lib1, open before the panic and used on both sides of it.
    let system = common::run_ok(&data, &["--json", "system", "show"], None);
    let system: Value = serde_json::from_slice(&system.stdout).unwrap();
    let target = qorestor_iscsi::target_name(system["name"].as_str().unwrap(), "lib1");
    let mut session = Initiator::log_in(&portal, &target);
    let changer = session.inquiry();
    assert!(changer.starts_with("STK"), "{changer:?}");
    let out = qorestor(&data).args(["ls", "boom"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("internal error: the command panicked in the daemon"), "{err}");
    // The session stays up: the same connection answers the next command.
    assert_eq!(session.inquiry(), changer);
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

#[test]
fn a_cleaner_run_whose_client_is_killed_stops_at_its_next_cancel_point() {
    let tmp = tempfile::tempdir().unwrap();
    let point = "cleaner condemned packs";
    let (data, server) = served_dir_with_env(tmp.path(), &[("QORESTOR_HOLD_POINT", point)]);
    let kept = random(2 << 20, 11);
    common::run_ok(&data, &["put", "c/kept", "-"], Some(&kept));
    // Compaction of every pack: the run holds once it has condemned them, and its client is
    // killed there.
    let said = killed_at_hold_point(&data, &server, &["cleaner", "run", "--compact-below", "1.0"], point);
    // The run stopped at its next cancel point: every condemned pack left for a later run.
    let status = common::run_ok(&data, &["--json", "cleaner", "status"], None);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let report = &status["last_report"];
    assert_eq!(status["state"], "idle", "{status}");
    assert_eq!(report["stopped_early"], true, "{status} (the client was told: {said:?})");
    assert!(report["packs_deferred"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(report["packs_compacted"], 0, "{status}");
    // The daemon goes on: the store verifies clean, the data reads back, and a following run
    // (not held) compacts the packs the stopped one left.
    common::run_ok(&data, &["verify"], None);
    assert_eq!(common::run_ok(&data, &["get", "c/kept"], None).stdout, kept);
    let out = common::run_ok(&data, &["--json", "cleaner", "run", "--compact-below", "1.0"], None);
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["stopped_early"], false, "{again}");
    assert!(again["packs_compacted"].as_u64().unwrap() >= 1, "{again}");
    assert_eq!(common::run_ok(&data, &["get", "c/kept"], None).stdout, kept);
    server.stop();
}

#[test]
fn a_verify_whose_client_is_killed_stops_at_its_next_cancel_point() {
    let tmp = tempfile::tempdir().unwrap();
    let point = "verify pack";
    let (data, server) = served_dir_with_env(tmp.path(), &[("QORESTOR_HOLD_POINT", point)]);
    let kept = random(2 << 20, 13);
    common::run_ok(&data, &["put", "c/kept", "-"], Some(&kept));
    let said = killed_at_hold_point(&data, &server, &["verify"], point);
    // It stopped at the next pack (the daemon's message to the gone client says so) ...
    assert!(said.contains("verify stopped before it was done: asked to stop"), "{said}");
    // ... and a following verify is not blocked by it and finds the store clean.
    let out = common::run_ok(&data, &["--json", "verify"], None);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["packs_checked"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(common::run_ok(&data, &["get", "c/kept"], None).stdout, kept);
    server.stop();
}
