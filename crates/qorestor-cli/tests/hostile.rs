//! `qorestor serve` under hostile clients before authentication, all at once on its three
//! listeners (iSCSI, NDMP, replication): 300 silent connections per listener from 127.0.0.2,
//! NDMP clients drip-feeding empty record fragments (up to 32 MiB each), replication clients
//! announcing 40 MiB frames and sending 39 MiB, and random bytes, each of these from addresses
//! of their own in 127.0.0.0/8. Meanwhile real clients from 127.0.0.1 do their work: libiscsi's
//! `iscsi-ls -s` lists the LUNs, an NDMP DMA is greeted CONNECTED and authenticates, and a
//! `replication start` pass succeeds. The daemon's peak RSS is printed and must stay under
//! 256 MiB; every hostile connection is closed once past its budget.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{random, Server};
use qorestor_ndmp::client::Client;
use serde_json::Value;

/// Silent connections per listener.
const SILENT: usize = 300;
/// NDMP clients drip-feeding empty fragments, and how much each tries to send.
const DRIP_CLIENTS: u8 = 15;
const DRIP_BYTES: usize = 32 << 20;
/// Replication clients announcing a 40 MiB frame, and how much of it each sends.
const FRAME_CLIENTS: u8 = 15;
const FRAME_ANNOUNCED: u32 = 40 << 20;
const FRAME_SENT: usize = 39 << 20;
/// Random-byte clients per listener, and how much each sends.
const RANDOM_CLIENTS: u8 = 5;
const RANDOM_BYTES: usize = 1 << 20;
/// The daemon's peak RSS must stay under this.
const RSS_LIMIT: u64 = 256 << 20;
/// Bounds a hang of any socket operation of the test.
const PATIENCE: Duration = Duration::from_secs(60);

const SYSTEM: &str = "hostile";
const IQN: &str = "iqn.2024-01.org.qorestor:hostile:lib1";

fn run(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    common::run_ok(data, args, stdin.map(str::as_bytes))
}

fn json(data: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_slice(&run(data, &all, None).stdout).unwrap()
}

/// A TCP connection to `to` from the local address `from`.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    use rustix::net::{bind, connect, socket, AddressFamily, SocketType};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&fd, &SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
    connect(&fd, &to).unwrap_or_else(|e| panic!("connect from {from} to {to}: {e}"));
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_write_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Writes `block` until `total` bytes are sent or the peer closes; the bytes sent.
fn send_until_closed(s: &mut TcpStream, block: &[u8], total: usize) -> usize {
    let mut sent = 0;
    while sent < total {
        match s.write(&block[..block.len().min(total - sent)]) {
            Ok(0) | Err(_) => break,
            Ok(n) => sent += n,
        }
    }
    sent
}

/// Reads the NDMP greeting (NOTIFY_CONNECTION_STATUS) and returns its reason (0 CONNECTED,
/// 2 REFUSED).
fn greeting(s: &mut TcpStream) -> u32 {
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some((record, _)) = qorestor_ndmp::record::decode_record(&got, 4096).unwrap() {
            return u32::from_be_bytes(record[24..28].try_into().unwrap());
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before the greeting");
        got.extend_from_slice(&chunk[..n]);
    }
}

/// The daemon's peak resident set (VmHWM), bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/PID/status");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

/// Enough file descriptors for the silent connections of both ends (the daemon inherits it).
fn raise_nofile(needed: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|c| c < needed) {
        limit.current = Some(limit.maximum.map_or(needed, |m| m.min(needed)));
        setrlimit(Resource::Nofile, limit).unwrap();
    }
}

/// Two data directories: `dst` serves (library lib1, NDMP user, replication password), `src`
/// replicates container `nightly` to it.
fn setup(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let (src, dst) = (tmp.join("src"), tmp.join("dst"));
    common::init(&src);
    common::init(&dst);
    run(&dst, &["system", "set-name", SYSTEM], None);
    run(
        &dst,
        &["vtl", "add", "lib1", "--storage-group", "DefaultGroup", "--slots", "6", "--drives", "2", "--tapes", "3"],
        None,
    );
    run(&dst, &["ndmp", "update", "--user", "ndmp", "--password-stdin"], Some("secret\n"));
    run(&dst, &["replication", "set-password", "--password-stdin"], Some("pw-for-dr\n"));
    let bytes = random(2 << 20, 9);
    let file = tmp.join("f.bin");
    std::fs::write(&file, &bytes).unwrap();
    json(&src, &["container", "add", "nightly", "--type", "object"]);
    json(&src, &["put", "nightly/mon", file.to_str().unwrap()]);
    (src, dst, bytes)
}

#[test]
fn every_listener_holds_against_hostile_clients_while_real_clients_work() {
    raise_nofile(8 * SILENT as u64 + 1024);
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst, bytes) = setup(tmp.path());
    let server = Server::start(
        &dst,
        &["--iscsi-listen", "127.0.0.1:0", "--ndmp-listen", "127.0.0.1:0", "--replication-listen", "127.0.0.1:0"],
    );
    let addr = |f: &str| -> SocketAddr { server.listening[f].parse().unwrap() };
    let (iscsi, ndmp, replication) = (addr("iscsi"), addr("ndmp"), addr("replication"));
    let silent_from = Ipv4Addr::new(127, 0, 0, 2);
    let target = replication.to_string();
    let added =
        run(&src, &["replication", "add", "nightly", "--target", &target, "--password-stdin"], Some("pw-for-dr\n"));
    drop(added);
    let started = Instant::now();

    // 300 silent connections per listener from 127.0.0.2, held open throughout.
    let mut silent = Vec::new();
    let mut ndmp_connected = Vec::new();
    for to in [iscsi, replication] {
        silent.extend((0..SILENT).map(|_| connect_from(silent_from, to)));
    }
    for _ in 0..SILENT {
        let mut s = connect_from(silent_from, ndmp);
        if greeting(&mut s) == 0 {
            ndmp_connected.push(s);
        } else {
            silent.push(s);
        }
    }
    println!("{} of {SILENT} silent NDMP connections from {silent_from} were greeted CONNECTED", ndmp_connected.len());
    assert!(!ndmp_connected.is_empty() && ndmp_connected.len() < SILENT, "the per-address cap did not hold");

    // The active hostile clients, started together with the real clients.
    let start =
        Arc::new(Barrier::new(DRIP_CLIENTS as usize + FRAME_CLIENTS as usize + 3 * RANDOM_CLIENTS as usize + 1));
    let mut hostile = Vec::new();
    for i in 0..DRIP_CLIENTS {
        let start = start.clone();
        hostile.push(thread::spawn(move || {
            let mut s = connect_from(Ipv4Addr::new(127, 0, 1, i + 1), ndmp);
            assert_eq!(greeting(&mut s), 0, "a drip client from its own address is admitted");
            start.wait();
            let sent = send_until_closed(&mut s, &[0u8; 64 << 10], DRIP_BYTES);
            assert!(sent < DRIP_BYTES, "an NDMP drip client sent all {sent} bytes of empty fragments");
            ("ndmp drip", sent)
        }));
    }
    for i in 0..FRAME_CLIENTS {
        let start = start.clone();
        hostile.push(thread::spawn(move || {
            let mut s = connect_from(Ipv4Addr::new(127, 0, 2, i + 1), replication);
            start.wait();
            s.write_all(&FRAME_ANNOUNCED.to_be_bytes()).unwrap();
            let sent = send_until_closed(&mut s, &random(64 << 10, i as u64), FRAME_SENT);
            assert!(sent < FRAME_SENT, "a replication client sent all {sent} bytes of its 40 MiB frame");
            ("replication 40 MiB frame", sent)
        }));
    }
    for (n, to) in [iscsi, ndmp, replication].into_iter().enumerate() {
        for i in 0..RANDOM_CLIENTS {
            let start = start.clone();
            hostile.push(thread::spawn(move || {
                let mut s = connect_from(Ipv4Addr::new(127, 0, 3 + n as u8, i + 1), to);
                start.wait();
                let noise = random(RANDOM_BYTES, 100 + 10 * n as u64 + i as u64);
                let sent = send_until_closed(&mut s, &noise, RANDOM_BYTES);
                // Whatever the answer, the connection ends (no read hangs past PATIENCE).
                let _ = s.read_to_end(&mut Vec::new());
                ("random bytes", sent)
            }));
        }
    }
    start.wait();

    // Meanwhile, the real clients from 127.0.0.1.
    let mut dma = Client::connect(ndmp).expect("an NDMP DMA from 127.0.0.1 is greeted CONNECTED");
    assert_eq!(dma.login("ndmp", "secret").unwrap().error(), 0, "the DMA authenticates");
    let pass = json(&src, &["replication", "start", "nightly"]);
    assert_eq!((pass["state"].as_str(), pass["logical_bytes"].as_u64()), (Some("idle"), Some(bytes.len() as u64)));
    if common::installed("iscsi-ls") {
        let out = Command::new("iscsi-ls").args(["-s", &format!("iscsi://{iscsi}")]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "iscsi-ls: {text} {}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains(IQN), "iscsi-ls lists the target: {text}");
        // The changer (LUN 0) and the two drives.
        assert!(text.contains("Lun:0") && text.contains("Lun:2"), "iscsi-ls lists the LUNs: {text}");
        println!("iscsi-ls -s from 127.0.0.1 listed {} LUNs", text.matches("Lun:").count());
    }
    for h in hostile {
        let (what, sent) = h.join().unwrap();
        assert!(sent > 0, "{what}: nothing could be sent");
    }
    let peak = peak_rss(server.pid());
    println!(
        "daemon peak RSS {:.1} MiB with {SILENT} silent connections per listener, {DRIP_CLIENTS} NDMP drip clients, \
         {FRAME_CLIENTS} 40 MiB replication frames, {} random-byte clients ({:.1} s)",
        peak as f64 / (1 << 20) as f64,
        3 * RANDOM_CLIENTS,
        started.elapsed().as_secs_f64()
    );
    assert!(peak < RSS_LIMIT, "the daemon's peak RSS was {peak} bytes");

    // The admitted silent connections are closed at the authentication deadline, and logged
    // as timeouts naming the peer.
    for mut s in ndmp_connected {
        let _ = s.read_to_end(&mut Vec::new());
    }
    let from_silent_ndmp = |l: &String| l.starts_with("ndmp: connection from 127.0.0.2:");
    let logged = (0..3 * SILENT).any(|_| server.wait_for_stderr("timed out").last().is_some_and(from_silent_ndmp));
    assert!(logged, "no NDMP timeout naming 127.0.0.2 was logged");
    // The DMA's session outlived them.
    dma.call_ok(qorestor_ndmp::message::code::CONFIG_GET_SERVER_INFO, &[]).unwrap();
    drop(silent);
    server.stop();
}
