//! The OST server and client library end to end over loopback: every write mode read back
//! bit-exact (offsets and seeks), list, delete, the authentication refusals, concurrent writers,
//! a session killed mid-image, and a relay offering cheap key derivation costs.

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use qorestor_core::listener::Server;
use qorestor_core::users::Role;
use qorestor_core::{CleanerOptions, ContainerKind, Engine, NoProgress, Passphrase, StatsScope, DEFAULT_GROUP};
use qorestor_ost::codec::{self, Message};
use qorestor_ost::{ClientMode, ConnectOptions, Error, FailCode, ImageSpec, OstClient, READ_LEN};

const PASSWORD: &[u8] = b"correct horse battery";

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Engine,
    server: Server,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::create(dir.path()).unwrap();
        engine.add_container("lsu1", DEFAULT_GROUP, ContainerKind::Ost).unwrap();
        engine.add_user("backup", Role::Ost, &Passphrase::new(PASSWORD.to_vec()).unwrap()).unwrap();
        engine.add_user("watcher", Role::Monitor, &Passphrase::new(PASSWORD.to_vec()).unwrap()).unwrap();
        let server = qorestor_ost::listen(engine.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
        Fixture { _dir: dir, engine, server }
    }

    fn addr(&self) -> String {
        self.server.local_addr().to_string()
    }

    fn client(&self) -> OstClient {
        OstClient::connect(&self.addr(), "backup", PASSWORD).unwrap()
    }

    /// Waits until the server has no session left (bounded: a hang fails the test).
    fn wait_for_no_sessions(&self) {
        let start = Instant::now();
        while !self.server.sessions().is_empty() {
            assert!(start.elapsed() < Duration::from_secs(30), "sessions left: {:?}", self.server.sessions());
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.server.stop();
        self.server.join();
    }
}

/// Compressible, mostly unique bytes (`seed` picks them).
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b"ABCDEFGHIJKLMNOP"[(x % 16) as usize]
        })
        .collect()
}

fn write_image(client: &mut OstClient, name: &str, bytes: &[u8], mode: ClientMode) -> bool {
    let spec = ImageSpec { date: 1_760_000_000, copy: 1, properties: format!("mode={mode:?}") };
    let mut w = client.create("lsu1", name, &spec, mode).unwrap();
    let optimized = w.is_optimized();
    // Odd-sized writes cross every batch and frame boundary.
    for piece in bytes.chunks(333_333) {
        w.write_all(piece).unwrap();
    }
    assert_eq!(w.close().unwrap(), bytes.len() as u64);
    optimized
}

fn read_image(client: &mut OstClient, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    client.open("lsu1", name).unwrap().read_to_end(&mut out).unwrap();
    out
}

#[test]
fn every_mode_reads_back_bit_exact_at_any_offset() {
    let f = Fixture::new();
    let mut client = f.client();
    let first = data(9 << 20, 1);
    let mut second = first.clone();
    second[5_000_000..5_100_000].copy_from_slice(&data(100_000, 2));
    assert!(!write_image(&mut client, "pass", &first, ClientMode::Passthrough));
    assert!(write_image(&mut client, "auto", &first, ClientMode::Auto));
    let before = client.bytes_transferred();
    assert!(write_image(&mut client, "dedupe", &second, ClientMode::Dedupe));
    // The second generation differs in 100 kB: far less than its 9 MiB travels.
    let sent = client.bytes_transferred() - before;
    assert!(sent < 1 << 20, "{sent} bytes crossed for a 9 MiB image that is mostly stored");
    for (name, want) in [("pass", &first), ("auto", &first), ("dedupe", &second)] {
        assert!(read_image(&mut client, name) == *want, "{name} differs");
    }
    // Reads at offsets and seeks, across the reader's request boundaries.
    let mut r = client.open("lsu1", "dedupe").unwrap();
    assert_eq!(r.info().logical_bytes, second.len() as u64);
    let edge = READ_LEN as u64;
    for &at in &[0u64, 1, edge - 1, edge, 3 * edge + 7, 4_194_303, 4_194_304, 5_000_000, 9_000_000, (9 << 20) - 10] {
        r.seek(SeekFrom::Start(at)).unwrap();
        let mut got = vec![0u8; 100_000];
        let n = r.read(&mut got).unwrap();
        assert!(n > 0);
        assert_eq!(got[..n], second[at as usize..at as usize + n], "at {at}");
    }
    r.seek(SeekFrom::End(-5)).unwrap();
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, second[second.len() - 5..]);
    r.close().unwrap();
    // List (with the metadata) and delete.
    let images = client.images("lsu1").unwrap();
    let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["auto", "dedupe", "pass"]);
    assert!(images.iter().all(|i| i.date == 1_760_000_000 && i.copy == 1 && i.logical_bytes == 9 << 20));
    assert_eq!(client.image("lsu1", "pass").unwrap().properties, "mode=Passthrough");
    client.delete("lsu1", "pass").unwrap();
    let e = client.image("lsu1", "pass").unwrap_err();
    assert_eq!(e.fail_code(), Some(FailCode::NotFound), "{e}");
    assert_eq!(client.images("lsu1").unwrap().len(), 2);
    // An image name is never replaced.
    let e = client.create("lsu1", "auto", &ImageSpec::default(), ClientMode::Auto).err().unwrap();
    assert_eq!(e.fail_code(), Some(FailCode::Exists), "{e}");
    let lsus = client.lsus().unwrap();
    assert_eq!(lsus.len(), 1);
    assert_eq!(lsus[0].name, "lsu1");
    assert!(lsus[0].optimized);
    assert_eq!(lsus[0].logical_bytes, 2 * (9 << 20));
}

#[test]
fn an_image_being_read_is_busy_for_delete() {
    let f = Fixture::new();
    let mut a = f.client();
    let mut b = f.client();
    write_image(&mut a, "img", &data(100_000, 3), ClientMode::Auto);
    let r = a.open("lsu1", "img").unwrap();
    let e = b.delete("lsu1", "img").unwrap_err();
    assert_eq!(e.fail_code(), Some(FailCode::Busy), "{e}");
    r.close().unwrap();
    b.delete("lsu1", "img").unwrap();
}

#[test]
fn wrong_password_monitor_unknown_user_and_other_versions_are_refused() {
    let f = Fixture::new();
    let refused = |user: &str, password: &[u8]| match OstClient::connect(&f.addr(), user, password) {
        Err(e) => e,
        Ok(_) => panic!("{user} logged in"),
    };
    let wrong = refused("backup", b"wrong");
    assert_eq!(wrong.fail_code(), Some(FailCode::AuthenticationFailed), "{wrong}");
    let unknown = refused("nobody", PASSWORD);
    assert_eq!(unknown.fail_code(), Some(FailCode::AuthenticationFailed), "{unknown}");
    // An unknown name and a wrong password read the same (no probing of names).
    assert_eq!(wrong.to_string().replace("\"backup\"", "X"), unknown.to_string().replace("\"nobody\"", "X"));
    let monitor = refused("watcher", PASSWORD);
    assert_eq!(monitor.fail_code(), Some(FailCode::NotPermitted), "{monitor}");
    assert!(monitor.to_string().contains("role monitor"), "{monitor}");
    let mut opts = ConnectOptions::new(&f.addr(), "backup", PASSWORD);
    opts.versions = vec![2, 3];
    let e = OstClient::connect_with(&opts).err().unwrap();
    assert_eq!(e.fail_code(), Some(FailCode::UnsupportedVersion), "{e}");
    assert!(e.to_string().contains("wire version 1"), "{e}");
}

#[test]
fn eight_concurrent_writers_to_one_storage_unit() {
    let f = Fixture::new();
    let common = data(3 << 20, 10);
    std::thread::scope(|s| {
        for i in 0..8u64 {
            let (f, common) = (&f, &common);
            s.spawn(move || {
                let mut client = f.client();
                let mut bytes = common.clone();
                bytes.extend_from_slice(&data(1 << 20, 100 + i));
                let mode = if i % 2 == 0 { ClientMode::Dedupe } else { ClientMode::Passthrough };
                write_image(&mut client, &format!("w{i}"), &bytes, mode);
                assert!(read_image(&mut client, &format!("w{i}")) == bytes);
            });
        }
    });
    assert_eq!(f.client().images("lsu1").unwrap().len(), 8);
}

/// Writes the images every store holds.
fn write_kept_images(f: &Fixture) {
    let mut client = f.client();
    write_image(&mut client, "kept1", &data(6 << 20, 20), ClientMode::Dedupe);
    write_image(&mut client, "kept2", &data(6 << 20, 21), ClientMode::Passthrough);
}

#[test]
fn a_session_killed_mid_image_leaves_no_image_and_the_cleaner_reclaims_it() {
    let twin = Fixture::new();
    write_kept_images(&twin);
    let f = Fixture::new();
    write_kept_images(&f);
    for mode in [ClientMode::Dedupe, ClientMode::Passthrough] {
        let mut client = f.client();
        let mut w = client.create("lsu1", &format!("killed-{mode:?}"), &ImageSpec::default(), mode).unwrap();
        w.write_all(&data(10 << 20, 30 + mode as u64)).unwrap();
        // The connection goes without a Close or an Abort, as when the media server dies.
        std::mem::forget(w);
        drop(client);
    }
    f.wait_for_no_sessions();
    let names: Vec<String> = f.client().images("lsu1").unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["kept1", "kept2"]);
    f.wait_for_no_sessions();
    let stored = |x: &Fixture| x.engine.stats(&StatsScope::System).unwrap().stored_bytes as f64;
    // The killed images' chunks reached the packs (so the cleaner has something to reclaim).
    assert!(stored(&f) > stored(&twin) + 4e6, "{} against {}", stored(&f), stored(&twin));
    let opts = CleanerOptions { dry_run: false, compact_below: 1.0 };
    for x in [&f, &twin] {
        x.engine.run_cleaner(&opts, &NoProgress).unwrap();
    }
    let (ours, theirs) = (stored(&f), stored(&twin));
    assert!((ours - theirs).abs() <= theirs * 0.01, "pack bytes {ours} against the twin's {theirs}");
    let mut client = f.client();
    assert!(read_image(&mut client, "kept1") == data(6 << 20, 20));
}

#[test]
fn a_relay_offering_cheap_argon2id_costs_is_refused_by_the_client() {
    let relay = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = relay.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        let (mut s, _) = relay.accept().unwrap();
        let mut head = [0u8; 4];
        s.read_exact(&mut head).unwrap();
        let mut frame = head.to_vec();
        frame.resize(codec::frame_len(head).unwrap(), 0);
        s.read_exact(&mut frame[4..]).unwrap();
        assert!(matches!(codec::decode(&frame).unwrap(), Message::Hello { .. }));
        let cheap = Message::Challenge {
            version: codec::VERSION,
            caps: codec::caps::ALL,
            nonce: [1; 32],
            salt: [2; 16],
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        };
        s.write_all(&codec::encode(&cheap)).unwrap();
        // The client must hang up without sending a proof.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        rest
    });
    let e = OstClient::connect(&addr.to_string(), "backup", PASSWORD).err().unwrap();
    assert!(matches!(e, Error::Untrusted { .. }), "{e}");
    assert!(e.to_string().contains("Argon2id memory"), "{e}");
    assert!(fake.join().unwrap().is_empty(), "the client sent a proof to the relay");
}

#[test]
fn the_server_lists_live_sessions_with_user_host_mode_and_image() {
    let f = Fixture::new();
    let mut opts = ConnectOptions::new(&f.addr(), "backup", PASSWORD);
    opts.host = "media1".into();
    let mut client = OstClient::connect_with(&opts).unwrap();
    let mut w = client.create("lsu1", "live", &ImageSpec::default(), ClientMode::Passthrough).unwrap();
    w.write_all(&data(2 << 20, 40)).unwrap();
    // The Write frames' answers are read after the server has processed them.
    let start = Instant::now();
    loop {
        let sessions = f.server.sessions();
        let s = sessions.iter().find(|s| s.authenticated).expect("a session");
        if s.state.contains("image=lsu1/live") {
            assert_eq!(s.user.as_deref(), Some("backup"));
            assert!(s.state.contains("host=media1") && s.state.contains("mode=passthrough"), "{}", s.state);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{sessions:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    w.close().unwrap();
}

#[test]
fn an_encrypted_storage_unit_takes_auto_as_passthrough_and_refuses_dedupe() {
    use qorestor_core::{EncryptionMode, EncryptionOptions, GroupOptions};
    let f = Fixture::new();
    let enc = EncryptionOptions::new(EncryptionMode::Internal, 30, Passphrase::new(b"vault pass".to_vec()).unwrap());
    f.engine.add_encrypted_storage_group("vault", GroupOptions::default(), enc).unwrap();
    f.engine.add_container("sealed", "vault", ContainerKind::Ost).unwrap();
    let mut client = f.client();
    let lsus = client.lsus().unwrap();
    assert!(!lsus.iter().find(|l| l.name == "sealed").unwrap().optimized);
    let e = client.create("sealed", "x", &ImageSpec::default(), ClientMode::Dedupe).err().unwrap();
    assert_eq!(e.fail_code(), Some(FailCode::OptimizedUnavailable), "{e}");
    assert!(e.to_string().contains("encrypted"), "{e}");
    let bytes = data(3 << 20, 50);
    let mut w = client.create("sealed", "auto", &ImageSpec::default(), ClientMode::Auto).unwrap();
    assert!(!w.is_optimized());
    w.write_all(&bytes).unwrap();
    w.close().unwrap();
    let mut back = Vec::new();
    client.open("sealed", "auto").unwrap().read_to_end(&mut back).unwrap();
    assert!(back == bytes);
}
