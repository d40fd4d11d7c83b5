//! Container replication to another data directory: only missing chunks travel, the replica is
//! bit-exact and read-only, deletions follow, an interrupted pass resumes without sending again
//! what arrived, an encrypted group's replica opens with the same passphrase, and an OST
//! image's metadata reaches the replica's recipe.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;

use common::data;
use parking_lot::Mutex;
use qorestor_core::replication::WireEncryption;
use qorestor_core::test_support::faults::{self, Fault, FaultOp};
use qorestor_core::test_support::recipe::read_recipe;
use qorestor_core::{
    ChunkParams, Compression, ContainerKind, EncryptionMode, EncryptionOptions, Engine, ErrorKind, Fingerprint,
    GroupOptions, ImageMeta, NoProgress, Passphrase,
};

/// Fault injection is process-wide: the tests of this file run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const SMALL: ChunkParams = ChunkParams { min: 256, avg: 1024, max: 4096 };

fn put(e: &Engine, c: &str, name: &str, bytes: &[u8]) {
    let mut w = e.create_stream(c, name).unwrap();
    w.write_all(bytes).unwrap();
    w.finish().unwrap();
}

fn get(e: &Engine, c: &str, name: &str) -> qorestor_core::Result<Vec<u8>> {
    let mut out = Vec::new();
    e.open_stream(c, name)?.read_to_end(&mut out).unwrap();
    Ok(out)
}

fn names(e: &Engine, c: &str) -> Vec<String> {
    e.streams(c).unwrap().into_iter().map(|s| s.name).collect()
}

fn fingerprints(dir: &Path) -> HashSet<Fingerprint> {
    let mut out = HashSet::new();
    for g in std::fs::read_dir(dir.join("groups")).unwrap().flatten() {
        for f in std::fs::read_dir(g.path().join("recipes")).unwrap().flatten() {
            if f.path().extension().is_some_and(|x| x == "rcp") {
                out.extend(read_recipe(&f.path()).unwrap().entries.iter().map(|e| e.fp));
            }
        }
    }
    out
}

#[test]
fn only_missing_chunks_travel_and_the_replica_follows_the_source() {
    let _serial = SERIAL.lock();
    let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let target = dst_dir.path().join("replica");
    let src = Engine::create(src_dir.path()).unwrap();
    src.add_storage_group("sg", GroupOptions { compression: Compression::Fast, chunking: ChunkParams::default() })
        .unwrap();
    src.add_container("nightly", "sg", ContainerKind::Object).unwrap();
    let mon = data(1, 6 << 20);
    let mut tue = mon.clone();
    tue[1 << 20..(1 << 20) + 300_000].copy_from_slice(&data(2, 300_000));
    put(&src, "nightly", "mon", &mon);
    put(&src, "nightly", "tue", &tue);

    let info = src.add_replication("nightly", target.to_str().unwrap(), None).unwrap();
    assert_eq!(info.state, "idle");
    assert_eq!(
        src.add_replication("nightly", target.to_str().unwrap(), None).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    let first = src.run_replication("nightly", false, &NoProgress).unwrap();
    let run = first.last.clone().unwrap();
    assert_eq!((run.streams_sent, first.logical_bytes), (2, (mon.len() + tue.len()) as u64));
    // tue shares all but ~300 KB with mon: what crossed is about one copy of the data.
    assert!(first.bytes_sent < (mon.len() + 600_000) as u64, "{first:?}");
    assert!(run.chunks_present > 0, "{run:?}");

    // A new generation: only its new chunks travel.
    let mut wed = tue.clone();
    wed[4 << 20..(4 << 20) + 200_000].copy_from_slice(&data(3, 200_000));
    put(&src, "nightly", "wed", &wed);
    src.delete_stream("nightly", "mon").unwrap();
    let second = src.run_replication("nightly", false, &NoProgress).unwrap();
    let run = second.last.clone().unwrap();
    assert_eq!((run.streams_sent, run.streams_deleted, run.streams_up_to_date), (1, 1, 1), "{run:?}");
    // About 3% of it is new: at most 8% of its logical bytes may cross.
    assert!(
        second.bytes_sent * 100 <= second.logical_bytes * 8,
        "a 6 MiB generation with 200 KB new sent {} bytes",
        second.bytes_sent
    );
    drop(src);

    let dst = Engine::open(&target).unwrap();
    assert_eq!(names(&dst, "nightly"), vec!["tue", "wed"]);
    assert!(get(&dst, "nightly", "tue").unwrap() == tue);
    assert!(get(&dst, "nightly", "wed").unwrap() == wed);
    // The replica is read-only.
    for err in [dst.create_stream("nightly", "x").err().unwrap(), dst.delete_stream("nightly", "tue").err().unwrap()] {
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert!(err.to_string().contains("read-only replica"), "{err}");
    }
}

#[test]
fn an_interrupted_pass_resumes_without_sending_again_what_arrived() {
    let _serial = SERIAL.lock();
    let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let target = dst_dir.path().join("replica");
    let src = Engine::create(src_dir.path()).unwrap();
    src.add_storage_group("sg", GroupOptions { compression: Compression::Fast, chunking: SMALL }).unwrap();
    src.add_container("c", "sg", ContainerKind::Object).unwrap();
    src.add_replication("c", target.to_str().unwrap(), None).unwrap();
    put(&src, "c", "seed", &data(6, 100_000));
    src.run_replication("c", false, &NoProgress).unwrap();
    let bytes = data(7, 8 << 20);
    put(&src, "c", "big", &bytes);
    // The pass's third fsync (the first two make its `running` state's redundant record
    // durable; the third makes the target's packs durable before the stream is published)
    // fails: the pass stops after sending every chunk.
    faults::inject(FaultOp::Fsync, 3, Fault::Errno(5));
    let err = src.run_replication("c", false, &NoProgress).unwrap_err();
    assert!(faults::clear(), "the fault fired");
    let failed = src.replication("c").unwrap();
    assert_eq!(failed.state, "failed", "{err}");
    let sent_before = failed.last.unwrap().chunks_sent;
    assert!(sent_before > 4000, "{sent_before}");
    // The next pass finds the chunks that arrived and sends (almost) none again.
    let resumed = src.run_replication("c", false, &NoProgress).unwrap();
    let run = resumed.last.unwrap();
    assert_eq!((resumed.state.as_str(), run.streams_sent, run.streams_up_to_date), ("idle", 1, 1));
    assert!(run.chunks_sent * 20 < sent_before, "resent {} of {sent_before} chunks", run.chunks_sent);
    // A resync compares everything again and sends no chunk at all.
    let resync = src.run_replication("c", true, &NoProgress).unwrap().last.unwrap();
    assert_eq!((resync.streams_sent, resync.chunks_sent), (2, 0), "{resync:?}");
    drop(src);
    let dst = Engine::open(&target).unwrap();
    assert!(get(&dst, "c", "big").unwrap() == bytes);
}

#[test]
fn an_encrypted_group_replicates_with_its_keys_and_opens_with_the_same_passphrase() {
    let _serial = SERIAL.lock();
    let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let target = dst_dir.path().join("replica");
    let pass = || Passphrase::new(b"two sites, one secret".to_vec()).unwrap();
    let bytes = data(9, 3 << 20);
    {
        let src = Engine::create(src_dir.path()).unwrap();
        let enc = EncryptionOptions::new(EncryptionMode::Internal, 30, pass());
        src.add_encrypted_storage_group("vault", GroupOptions::default(), enc).unwrap();
        src.add_container("v", "vault", ContainerKind::Object).unwrap();
        put(&src, "v", "s", &bytes);
        src.add_replication("v", target.to_str().unwrap(), None).unwrap();
        src.run_replication("v", false, &NoProgress).unwrap();
        // A rotated key reaches the replica with the next pass.
        src.rotate_storage_group_key("vault").unwrap();
        put(&src, "v", "t", &data(10, 1 << 20));
        src.run_replication("v", false, &NoProgress).unwrap();
    }
    assert_eq!(fingerprints(src_dir.path()), fingerprints(&target), "the replica's fingerprints match");
    let dst = Engine::open(&target).unwrap();
    assert_eq!(get(&dst, "v", "s").unwrap_err().kind(), ErrorKind::Passphrase);
    dst.set_passphrase(pass()).unwrap();
    assert!(get(&dst, "v", "s").unwrap() == bytes);
    assert!(get(&dst, "v", "t").unwrap() == data(10, 1 << 20));
    assert_eq!(dst.storage_group("vault").unwrap().data_keys, Some(2));
}

#[test]
fn bad_targets_are_refused_by_name() {
    let _serial = SERIAL.lock();
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::create(dir.path()).unwrap();
    e.add_container("c", qorestor_core::DEFAULT_GROUP, ContainerKind::Object).unwrap();
    let host = e.add_replication("c", "backup-site:9443", None).unwrap_err();
    assert!(
        host.to_string().contains("backup-site:9443") && host.to_string().contains("replication password"),
        "{host}"
    );
    let own = e.add_replication("c", dir.path().to_str().unwrap(), None).unwrap_err();
    assert!(own.to_string().contains("this data directory"), "{own}");
    assert_eq!(e.replication("c").unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(e.run_replication("nope", false, &NoProgress).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn a_pass_over_tcp_reaches_a_listener_that_admits_only_its_password() {
    let _serial = SERIAL.lock();
    let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = Engine::create(src_dir.path()).unwrap();
    src.add_container("nightly", qorestor_core::DEFAULT_GROUP, ContainerKind::Object).unwrap();
    let mon = data(1, 4 << 20);
    let mut tue = mon.clone();
    tue[1 << 20..(1 << 20) + 200_000].copy_from_slice(&data(2, 200_000));
    put(&src, "nightly", "mon", &mon);
    put(&src, "nightly", "tue", &tue);
    let dst = Engine::create(dst_dir.path()).unwrap();
    let listener = qorestor_core::replication::listen(dst.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let target = listener.local_addr().to_string();
    let password = || Passphrase::new(b"s3cret replication".to_vec()).unwrap();

    // No password set on the target: refused, saying so.
    src.add_remote_replication("nightly", &target, None, WireEncryption::None, &password()).unwrap();
    let e = src.run_replication("nightly", false, &NoProgress).unwrap_err();
    assert!(e.to_string().contains("no replication password is set"), "{e}");
    assert_eq!(e.kind(), ErrorKind::Remote, "{e}");
    assert!(matches!(&e, qorestor_core::Error::Remote { target: t, .. } if *t == target), "{e:?}");
    dst.set_replication_password(&password()).unwrap();
    assert!(dst.replication_password_set().unwrap());

    let first = src.run_replication("nightly", false, &NoProgress).unwrap();
    assert_eq!(first.state, "idle");
    let run = first.last.clone().unwrap();
    assert_eq!((run.streams_sent, run.error.as_deref()), (2, None));
    assert_eq!(run.logical_bytes, (mon.len() + tue.len()) as u64);
    // What crossed the wire: about the new chunks of mon, the changed part of tue, and framing.
    let stored = src.stats(&qorestor_core::StatsScope::System).unwrap().stored_bytes;
    assert!(run.bytes_sent > stored / 2 && run.bytes_sent < stored + (1 << 20), "{} vs {stored}", run.bytes_sent);
    assert!(get(&dst, "nightly", "mon").unwrap() == mon && get(&dst, "nightly", "tue").unwrap() == tue);
    assert!(dst.create_stream("nightly", "x").is_err(), "a replica is read-only");

    // A later pass sends only what changed: a new stream that shares everything but 100 KB,
    // and a deletion.
    let mut wed = tue.clone();
    wed[3 << 20..(3 << 20) + 100_000].copy_from_slice(&data(3, 100_000));
    put(&src, "nightly", "wed", &wed);
    src.delete_stream("nightly", "mon").unwrap();
    let second = src.run_replication("nightly", false, &NoProgress).unwrap().last.unwrap();
    assert_eq!((second.streams_sent, second.streams_deleted, second.streams_up_to_date), (1, 1, 1));
    assert!(second.bytes_sent < run.bytes_sent / 5, "{} then {}", run.bytes_sent, second.bytes_sent);
    assert!(get(&dst, "nightly", "wed").unwrap() == wed);
    assert_eq!(names(&dst, "nightly").len(), 2);

    // The wrong password is refused, and nothing changes.
    src.delete_replication("nightly").unwrap();
    let guess = Passphrase::new(b"guess".to_vec()).unwrap();
    src.add_remote_replication("nightly", &target, None, WireEncryption::None, &guess).unwrap();
    let e = src.run_replication("nightly", false, &NoProgress).unwrap_err();
    assert!(e.to_string().contains("wrong replication password"), "{e}");
    assert_eq!(e.kind(), ErrorKind::Remote, "{e}");
    assert_eq!(names(&dst, "nightly").len(), 2);
    // Nobody listening: the error names the target.
    drop(dst);
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    src.delete_replication("nightly").unwrap();
    src.add_remote_replication("nightly", &nobody, None, WireEncryption::None, &password()).unwrap();
    let e = src.run_replication("nightly", false, &NoProgress).unwrap_err();
    assert!(e.to_string().contains(&nobody), "{e}");
    assert_eq!(e.kind(), ErrorKind::Remote, "{e}");
}

#[test]
fn a_target_breaking_the_protocol_is_a_protocol_error_naming_it() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = Engine::create(src_dir.path()).unwrap();
    src.add_container("nightly", qorestor_core::DEFAULT_GROUP, ContainerKind::Object).unwrap();
    put(&src, "nightly", "mon", &data(1, 100_000));
    // A "target" that answers the source's Hello with a frame of the wrong checksum.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut head = [0u8; 4];
        conn.read_exact(&mut head).unwrap();
        // The rest of the Hello frame: its body and the 4-byte checksum.
        let mut rest = vec![0u8; u32::from_be_bytes(head) as usize + 4];
        conn.read_exact(&mut rest).unwrap();
        conn.write_all(&[0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]).unwrap();
        // Until the source hangs up.
        let _ = conn.read_to_end(&mut Vec::new());
    });
    let password = Passphrase::new(b"s3cret replication".to_vec()).unwrap();
    src.add_remote_replication("nightly", &target, None, WireEncryption::None, &password).unwrap();
    let e = src.run_replication("nightly", false, &NoProgress).unwrap_err();
    server.join().unwrap();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert!(e.to_string().contains(&target), "{e}");
}

/// Forwards one connection from a local port to `to`, keeping what the source sent.
fn tapped_proxy(to: std::net::SocketAddr) -> (String, std::sync::Arc<Mutex<Vec<u8>>>) {
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    std::thread::spawn(move || {
        let (client, _) = listener.accept().unwrap();
        let server = TcpStream::connect(to).unwrap();
        let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut s2, &mut c2);
            let _ = c2.shutdown(std::net::Shutdown::Write);
        });
        let (mut from, mut to) = (client, server);
        let mut buf = [0u8; 1 << 16];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    kept.lock().extend_from_slice(&buf[..n]);
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
    (addr, seen)
}

#[test]
fn with_tls_the_data_is_not_readable_on_the_wire_and_arrives_the_same() {
    let _serial = SERIAL.lock();
    let marker = b"PLAINTEXT-MARKER-of-a-customer-file ";
    let bytes: Vec<u8> = marker.iter().copied().cycle().take(2 << 20).collect();
    let mut seen_plain = None;
    for enc in [WireEncryption::None, WireEncryption::Aes128, WireEncryption::Aes256] {
        let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let src = Engine::create(src_dir.path()).unwrap();
        // Stored raw, so the records carry the bytes as they are.
        src.add_storage_group("raw", GroupOptions { compression: Compression::None, chunking: ChunkParams::default() })
            .unwrap();
        src.add_container("c", "raw", ContainerKind::Object).unwrap();
        // Different content per stream so that chunks do not all dedup to one.
        let mut data = bytes.clone();
        data.extend_from_slice(&common::data(7, 1 << 20));
        put(&src, "c", "s", &data);
        let dst = Engine::create(dst_dir.path()).unwrap();
        let password = Passphrase::new(b"pw".to_vec()).unwrap();
        dst.set_replication_password(&password).unwrap();
        let listener = qorestor_core::replication::listen(dst.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
        let (proxy, seen) = tapped_proxy(listener.local_addr());
        let info = src.add_remote_replication("c", &proxy, None, enc, &password).unwrap();
        assert_eq!(info.encryption, enc);
        let done = src.run_replication("c", false, &NoProgress).unwrap();
        assert_eq!(done.last.unwrap().error, None);
        assert!(get(&dst, "c", "s").unwrap() == data, "{enc:?}");
        let wire = seen.lock().clone();
        let visible = wire.windows(marker.len()).any(|w| w == marker);
        assert!(wire.len() > data.len() / 2, "{enc:?}: only {} bytes crossed", wire.len());
        if enc == WireEncryption::None {
            seen_plain = Some(visible);
        } else {
            assert!(!visible, "{enc:?}: the data is readable on the wire");
        }
    }
    assert_eq!(seen_plain, Some(true), "without TLS the marker should be visible (the check works)");
}

#[test]
fn a_group_of_large_chunks_replicates_over_tcp_in_frames_the_target_accepts() {
    let _serial = SERIAL.lock();
    let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = Engine::create(src_dir.path()).unwrap();
    // Chunks of 1-4 MiB stored raw: a batch of them holds far more than one frame may carry.
    let large = ChunkParams { min: 1 << 20, avg: 2 << 20, max: 4 << 20 };
    src.add_storage_group("images", GroupOptions { compression: Compression::None, chunking: large }).unwrap();
    src.add_container("vm", "images", ContainerKind::Object).unwrap();
    let image = data(11, 72 << 20);
    put(&src, "vm", "disk0", &image);
    let dst = Engine::create(dst_dir.path()).unwrap();
    let password = Passphrase::new(b"pw".to_vec()).unwrap();
    dst.set_replication_password(&password).unwrap();
    let listener = qorestor_core::replication::listen(dst.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr();
    src.add_remote_replication("vm", &addr.to_string(), None, WireEncryption::None, &password).unwrap();
    let run = src.run_replication("vm", false, &NoProgress).unwrap().last.unwrap();
    assert_eq!((run.streams_sent, run.error.as_deref()), (1, None));
    assert!(get(&dst, "vm", "disk0").unwrap() == image);
}

#[test]
fn a_store_that_fails_on_the_target_fails_the_pass_and_publishes_nothing() {
    let _serial = SERIAL.lock();
    let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = Engine::create(src_dir.path()).unwrap();
    src.add_storage_group("sg", GroupOptions { compression: Compression::Fast, chunking: SMALL }).unwrap();
    src.add_container("c", "sg", ContainerKind::Object).unwrap();
    put(&src, "c", "big", &data(8, 4 << 20));
    let dst = Engine::create(dst_dir.path()).unwrap();
    let password = Passphrase::new(b"pw".to_vec()).unwrap();
    dst.set_replication_password(&password).unwrap();
    let listener = qorestor_core::replication::listen(dst.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr();
    src.add_remote_replication("c", &addr.to_string(), None, WireEncryption::None, &password).unwrap();
    // Stores are not waited for one by one: a pack write failing on the target mid-pass must
    // still fail the pass, with the target's reason, before the stream is published there.
    // (The pass's first writes are redundant catalog records of its state; the fifth is a
    // pack write on the target.)
    faults::inject(FaultOp::Write, 5, Fault::Errno(28));
    let err = src.run_replication("c", false, &NoProgress).unwrap_err();
    assert!(faults::clear(), "the fault fired");
    let text = err.to_string();
    assert!(text.contains(&addr.to_string()) && text.contains("No space left"), "{text}");
    let status = src.replication("c").unwrap();
    assert_eq!(status.state, "failed");
    assert!(status.last.unwrap().chunks_sent > 0);
    assert!(names(&dst, "c").is_empty(), "a stream was published after a failed store");
}

/// Reads until the peer closes the connection; the bytes read.
fn read_until_closed(s: &mut std::net::TcpStream) -> usize {
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got.len()
}

#[test]
fn the_listener_stops_through_its_handle_with_sessions_open() {
    use qorestor_core::test_support::wire::{self, Message};
    let dst_dir = tempfile::tempdir().unwrap();
    let dst = Engine::create(dst_dir.path()).unwrap();
    dst.set_replication_password(&Passphrase::new(b"pw".to_vec()).unwrap()).unwrap();
    let listener = qorestor_core::replication::listen(dst.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr();
    let mut silent = std::net::TcpStream::connect(addr).unwrap();
    let mut talking = std::net::TcpStream::connect(addr).unwrap();
    talking.write_all(&wire::encode(&Message::Hello { version: wire::VERSION, nonce: [7; 32] })).unwrap();
    // The challenge comes once the second connection is admitted, and so the first before it.
    let mut head = [0u8; 4];
    talking.read_exact(&mut head).unwrap();
    let mut frame = head.to_vec();
    frame.resize(wire::frame_len(head).unwrap(), 0);
    talking.read_exact(&mut frame[4..]).unwrap();
    assert!(matches!(wire::decode(&frame).unwrap(), Message::Challenge { .. }));
    let sessions = listener.sessions();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    // The silent connection's thread may not have set "handshake" yet: until it runs, its
    // session reads "connected" (both are before authentication).
    assert!(sessions.iter().all(|s| s.peer.ip() == addr.ip()
        && !s.authenticated
        && matches!(s.state.as_str(), "connected" | "handshake")));
    assert!(sessions.iter().any(|s| s.state == "handshake"), "{sessions:?}");

    listener.stop();
    listener.join();
    assert_eq!(read_until_closed(&mut silent), 0);
    assert_eq!(read_until_closed(&mut talking), 0);
    assert!(listener.sessions().is_empty());
    assert!(std::net::TcpStream::connect(addr).is_err(), "the port still accepts");
}

#[test]
fn before_authentication_a_frame_over_the_budget_closes_the_connection_at_its_header() {
    use qorestor_core::replication::PRE_AUTH_MAX_FRAME;
    use qorestor_core::test_support::wire;
    let dst_dir = tempfile::tempdir().unwrap();
    let dst = Engine::create(dst_dir.path()).unwrap();
    let listener = qorestor_core::replication::listen(dst.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut s = std::net::TcpStream::connect(listener.local_addr()).unwrap();
    // A header announcing 40 MiB (the protocol's largest frame), then data: the listener closes
    // the connection after the header instead of taking the frame in.
    s.write_all(&(wire::MAX_FRAME as u32).to_be_bytes()).unwrap();
    let mut sent = 0usize;
    let block = vec![0u8; 64 << 10];
    while sent < 39 << 20 {
        match s.write(&block) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert!(sent < 39 << 20, "the listener took {sent} bytes of a frame over {PRE_AUTH_MAX_FRAME} bytes");
    drop(s);
    // It keeps serving.
    let mut ok = std::net::TcpStream::connect(listener.local_addr()).unwrap();
    ok.write_all(&wire::encode(&wire::Message::Hello { version: wire::VERSION, nonce: [1; 32] })).unwrap();
    assert!(read_until_closed(&mut ok) > 0, "no answer to a Hello");
}

#[test]
fn an_ost_image_reaches_the_replica_with_its_date_copy_and_properties() {
    let _serial = SERIAL.lock();
    let (src_dir, dst_dir, far_dir) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = Engine::create(src_dir.path()).unwrap();
    src.add_container("lsu", qorestor_core::DEFAULT_GROUP, ContainerKind::Ost).unwrap();
    let owned = src.owned_streams("lsu", ContainerKind::Ost).unwrap();
    let meta = ImageMeta { date: 1_700_000_123, copy: 2, properties: "policy=nightly\nclient=db01".into() };
    let bytes = data(7, 300_000);
    let mut w = owned.create_image("img", &meta).unwrap();
    w.write_all(&bytes).unwrap();
    w.finish().unwrap();
    // A stream that is not an image stays one without metadata.
    let mut w = owned.create_stream("plain").unwrap();
    w.write_all(&bytes[..1000]).unwrap();
    w.finish().unwrap();

    // To a directory, and over TCP to a listener.
    let target = dst_dir.path().join("replica");
    src.add_replication("lsu", target.to_str().unwrap(), None).unwrap();
    assert_eq!(src.run_replication("lsu", false, &NoProgress).unwrap().last.unwrap().streams_sent, 2);
    let far = Engine::create(far_dir.path()).unwrap();
    let password = || Passphrase::new(b"s3cret replication".to_vec()).unwrap();
    far.set_replication_password(&password()).unwrap();
    let listener = qorestor_core::replication::listen(far.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    src.delete_replication("lsu").unwrap();
    let addr = listener.local_addr().to_string();
    src.add_remote_replication("lsu", &addr, None, WireEncryption::None, &password()).unwrap();
    assert_eq!(src.run_replication("lsu", false, &NoProgress).unwrap().last.unwrap().streams_sent, 2);
    drop(src);

    for replica in [Engine::open(&target).unwrap(), far] {
        let owned = replica.owned_streams("lsu", ContainerKind::Ost).unwrap();
        assert_eq!(owned.image_meta("img").unwrap(), Some(meta.clone()));
        assert_eq!(owned.image_meta("plain").unwrap(), None);
        assert!(get(&replica, "lsu", "img").unwrap() == bytes);
    }
}
