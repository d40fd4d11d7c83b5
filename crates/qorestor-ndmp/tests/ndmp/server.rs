//! Connection, authentication and error codes.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use qorestor_ndmp::client::Client;
use qorestor_ndmp::config::md5_digest;
use qorestor_ndmp::message::{code, NdmpError};
use qorestor_ndmp::xdr::{Decoder, Encoder};

use crate::fixture::{Fixture, PASSWORD, TAPE, USER};

const READ: u32 = 0;
const RDWR: u32 = 1;

fn e(x: NdmpError) -> u32 {
    x as u32
}

#[test]
fn nothing_is_accepted_before_authentication() {
    let f = Fixture::new();
    let mut c = Client::connect(f.addr).unwrap();
    c.call_ok(code::CONNECT_OPEN, Encoder::new().u32(4).as_bytes()).unwrap();
    assert_eq!(c.tape_open(TAPE, READ).unwrap().error(), e(NdmpError::NotAuthorized));
    assert_eq!(c.call(code::CONFIG_GET_TAPE_INFO, &[]).unwrap().error(), e(NdmpError::NotAuthorized));
    assert_eq!(c.call(code::MOVER_GET_STATE, &[]).unwrap().error(), e(NdmpError::NotAuthorized));
    let wrong = c.call(code::CONNECT_CLIENT_AUTH, Encoder::new().u32(1).string(USER).string("nope").as_bytes());
    assert_eq!(wrong.unwrap().error(), e(NdmpError::NotAuthorized));
    assert_eq!(c.tape_open(TAPE, READ).unwrap().error(), e(NdmpError::NotAuthorized));
}

#[test]
fn without_a_configured_user_every_authentication_is_refused() {
    let f = Fixture::new();
    *f.credentials.lock() = None;
    let mut c = Client::connect(f.addr).unwrap();
    assert_eq!(c.login(USER, PASSWORD).unwrap().error(), e(NdmpError::NotAuthorized));
}

#[test]
fn md5_authentication_uses_the_challenge() {
    let f = Fixture::new();
    let mut c = Client::connect(f.addr).unwrap();
    c.call_ok(code::CONNECT_OPEN, Encoder::new().u32(4).as_bytes()).unwrap();
    let attr = c.call_ok(code::CONFIG_GET_AUTH_ATTR, Encoder::new().u32(2).as_bytes()).unwrap();
    let d = &mut Decoder::new(&attr.body);
    d.u32("error").unwrap();
    assert_eq!(d.u32("auth_type").unwrap(), 2);
    let challenge: [u8; 64] = d.fixed("challenge").unwrap();
    let bad = md5_digest(&challenge, "wrong");
    let r = c.call(code::CONNECT_CLIENT_AUTH, Encoder::new().u32(2).string(USER).fixed(&bad).as_bytes()).unwrap();
    assert_eq!(r.error(), e(NdmpError::NotAuthorized));
    let good = md5_digest(&challenge, PASSWORD);
    c.call_ok(code::CONNECT_CLIENT_AUTH, Encoder::new().u32(2).string(USER).fixed(&good).as_bytes()).unwrap();
    c.call_ok(code::CONFIG_GET_TAPE_INFO, &[]).unwrap();
}

#[test]
fn config_lists_the_devices() {
    let f = Fixture::new();
    let mut c = f.client();
    let tapes = c.call_ok(code::CONFIG_GET_TAPE_INFO, &[]).unwrap();
    let d = &mut Decoder::new(&tapes.body);
    d.u32("error").unwrap();
    assert_eq!(d.u32("count").unwrap(), 2);
    d.string("model", 100).unwrap();
    d.u32("caps").unwrap();
    assert_eq!(d.string("device", 100).unwrap(), "lib/tape0");
    let scsi = c.call_ok(code::CONFIG_GET_SCSI_INFO, &[]).unwrap();
    assert!(String::from_utf8_lossy(&scsi.body).contains("lib/changer"));
    for empty in [code::CONFIG_GET_BUTYPE_INFO, code::CONFIG_GET_FS_INFO, code::CONFIG_GET_EXT_LIST] {
        assert_eq!(c.call_ok(empty, &[]).unwrap().body, [0, 0, 0, 0, 0, 0, 0, 0]);
    }
    // Unknown interfaces (the DATA service) are NOT_SUPPORTED in the header.
    assert_eq!(c.call(0x400, &[]).unwrap().header_error, e(NdmpError::NotSupported));
}

#[test]
fn tape_open_errors() {
    let f = Fixture::new();
    let mut c = f.client();
    assert_eq!(c.call(code::TAPE_CLOSE, &[]).unwrap().error(), e(NdmpError::DevNotOpen));
    assert_eq!(c.tape_open("bogus", READ).unwrap().error(), e(NdmpError::NoDevice));
    assert_eq!(c.tape_open("lib/changer", READ).unwrap().error(), e(NdmpError::NoDevice));
    assert_eq!(c.tape_open(TAPE, 123).unwrap().error(), e(NdmpError::IllegalArgs));
    assert_eq!(c.tape_open("lib/tape1", READ).unwrap().error(), e(NdmpError::NoTapeLoaded));
    assert_eq!(c.tape_open(TAPE, READ).unwrap().error(), 0);
    assert_eq!(c.tape_open(TAPE, READ).unwrap().error(), e(NdmpError::DeviceOpened));
    let w = c.call(code::TAPE_WRITE, Encoder::new().opaque(&[1; 512]).as_bytes()).unwrap();
    assert_eq!(w.error(), e(NdmpError::Permission));
    assert_eq!(c.mtio(5, 1).unwrap().error(), e(NdmpError::Permission));
    // Another session: the drive is busy until this one closes it.
    let mut other = f.client();
    assert_eq!(other.tape_open(TAPE, READ).unwrap().error(), e(NdmpError::DeviceBusy));
    c.call_ok(code::TAPE_CLOSE, &[]).unwrap();
    assert_eq!(other.tape_open(TAPE, READ).unwrap().error(), 0);
    // A session that ends frees its drive before its connection closes.
    other.hang_up().unwrap();
    let mut third = f.client();
    assert_eq!(third.tape_open(TAPE, READ).unwrap().error(), 0, "the drive stayed busy after its session ended");
}

#[test]
fn write_protected_cartridge_refuses_a_read_write_open() {
    let f = Fixture::new();
    f.libraries.get("lib").unwrap().set_write_protect("QS0001L5", true).unwrap();
    let mut c = f.client();
    assert_eq!(c.tape_open(TAPE, RDWR).unwrap().error(), e(NdmpError::WriteProtect));
    assert_eq!(c.tape_open(TAPE, READ).unwrap().error(), 0);
}

#[test]
fn malformed_messages() {
    let f = Fixture::new();
    let mut c = f.client();
    // A truncated body: XDR_DECODE_ERR in the header, and the session goes on.
    let a = c.call(code::TAPE_OPEN, &[0, 0, 0, 9, b'x']).unwrap();
    assert_eq!(a.header_error, e(NdmpError::XdrDecode));
    c.call_ok(code::MOVER_GET_STATE, &[]).unwrap();
    // A fragment over the limit: the connection is closed; the server keeps serving.
    c.send_raw(&[0xFF, 0xFF, 0xFF, 0xFF]).unwrap();
    assert!(c.call(code::MOVER_GET_STATE, &[]).is_err());
    f.client().call_ok(code::MOVER_GET_STATE, &[]).unwrap();
}

#[test]
fn robot_moves_media_through_execute_cdb() {
    let f = Fixture::new();
    let mut c = f.client();
    let exec = |c: &mut Client, cdb: &[u8], datain: u32| {
        c.call_ok(
            code::SCSI_EXECUTE_CDB,
            Encoder::new().u32(1).u32(10_000).u32(datain).opaque(cdb).opaque(&[]).as_bytes(),
        )
        .unwrap()
    };
    assert_eq!(
        c.call(code::SCSI_EXECUTE_CDB, Encoder::new().u32(1).u32(0).u32(0).opaque(&[0; 6]).opaque(&[]).as_bytes())
            .unwrap()
            .error(),
        e(NdmpError::DevNotOpen)
    );
    c.call_ok(code::SCSI_OPEN, Encoder::new().string("lib/changer").as_bytes()).unwrap();
    // INQUIRY: a medium changer.
    let inq = exec(&mut c, &[0x12, 0, 0, 0, 96, 0], 96);
    let d = &mut Decoder::new(&inq.body);
    d.u32("error").unwrap();
    assert_eq!(d.u32("status").unwrap(), 0);
    d.u32("dataout_len").unwrap();
    assert_eq!(d.opaque("datain", 96).unwrap()[0] & 0x1F, 0x08);
    // MOVE MEDIUM slot 1001 → drive 501, then back.
    let mv = |src: u16, dst: u16| {
        let (s, d) = (src.to_be_bytes(), dst.to_be_bytes());
        [0xA5, 0, 0, 0, s[0], s[1], d[0], d[1], 0, 0, 0, 0]
    };
    let r = exec(&mut c, &mv(1001, 501), 0);
    assert_eq!(Decoder::new(&r.body[4..]).u32("status").unwrap(), 0);
    assert_eq!(c.tape_open("lib/tape1", READ).unwrap().error(), 0);
    c.call_ok(code::TAPE_CLOSE, &[]).unwrap();
    let r = exec(&mut c, &mv(501, 1001), 0);
    assert_eq!(Decoder::new(&r.body[4..]).u32("status").unwrap(), 0);
    c.call_ok(code::SCSI_CLOSE, &[]).unwrap();
}

#[test]
fn authenticated_sessions_are_bounded() {
    let f = Fixture::new();
    let held: Vec<Client> = (0..qorestor_ndmp::server::MAX_SESSIONS).map(|_| f.client()).collect();
    // One more authenticates correctly but finds no session slot: NOT_AUTHORIZED, then closed.
    let mut extra = Client::connect(f.addr).unwrap();
    assert_eq!(extra.login(USER, PASSWORD).unwrap().error(), e(NdmpError::NotAuthorized));
    assert!(extra.call(code::CONFIG_GET_SERVER_INFO, &[]).is_err(), "the refused connection stayed open");
    // A session's place is given back before its connection closes: once one has gone, a
    // new session is served at once.
    let mut held = held.into_iter();
    held.next().unwrap().hang_up().unwrap();
    let mut c = Client::connect(f.addr).unwrap();
    assert_eq!(c.login(USER, PASSWORD).unwrap().error(), 0, "no session after another ended");
    drop(held);
}

/// A TCP connection to `to` from the local address `from` (any address of 127.0.0.0/8).
pub fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    use rustix::net::{bind, connect, socket, AddressFamily, SocketType};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&fd, &SocketAddr::new(from, 0)).unwrap();
    connect(&fd, &to).unwrap();
    TcpStream::from(fd)
}

const HOSTILE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

#[test]
fn unauthenticated_connections_are_bounded_per_address() {
    let f = Fixture::new();
    let per_peer = qorestor_core::listener::PRE_AUTH_PER_PEER;
    // 127.0.0.2 fills its share of unauthenticated connections; its next one is refused.
    let held: Vec<TcpStream> = (0..per_peer)
        .map(|_| {
            let mut s = connect_from(HOSTILE, f.addr);
            assert_eq!(greeting(&mut s), 0, "CONNECTED");
            s
        })
        .collect();
    let refused = Client::on(connect_from(HOSTILE, f.addr)).err().expect("a connection over the share was served");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "{refused}");
    assert!(refused.to_string().contains("127.0.0.2"), "{refused}");
    // Another address is served, and its authenticated session leaves the pool.
    let mut c = Client::connect(f.addr).unwrap();
    assert_eq!(c.login(USER, PASSWORD).unwrap().error(), 0);
    let sessions = f.server.sessions();
    assert_eq!(sessions.len(), per_peer + 1, "{sessions:?}");
    let authenticated: Vec<_> = sessions.iter().filter(|s| s.authenticated).collect();
    assert_eq!(authenticated.len(), 1);
    assert_eq!((authenticated[0].user.as_deref(), authenticated[0].state.as_str()), (Some(USER), "authenticated"));
    // A slot is released with its connection: the server closes its side (and so the client
    // reads the end) only after releasing it.
    for mut s in held {
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let _ = s.read_to_end(&mut Vec::new());
    }
    Client::on(connect_from(HOSTILE, f.addr)).expect("127.0.0.2 stayed refused after its connections closed");
    c.call_ok(code::CONFIG_GET_SERVER_INFO, &[]).unwrap();
}

/// Reads the first record on `s` (the server's greeting) and returns its reason.
fn greeting(s: &mut TcpStream) -> u32 {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some((record, _)) = qorestor_ndmp::record::decode_record(&got, 1024).unwrap() {
            return Decoder::new(&record[24..]).u32("reason").unwrap();
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before a greeting");
        got.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn a_drip_of_empty_fragments_closes_the_connection_at_the_budget() {
    let f = Fixture::new();
    let mut s = connect_from(HOSTILE, f.addr);
    let empty = [0u8; 4096];
    let mut sent = 0usize;
    while sent < 32 << 20 {
        match s.write(&empty) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert!(sent < 32 << 20, "the server took 32 MiB of empty fragments");
    // Another client is served meanwhile.
    f.client().call_ok(code::CONFIG_GET_SERVER_INFO, &[]).unwrap();
}

#[test]
fn the_server_stops_through_its_handle_with_sessions_open() {
    let f = Fixture::new();
    let mut authenticated = f.client();
    let silent = Client::connect(f.addr).unwrap();
    let sessions = f.server.sessions();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!(sessions[0].user.as_deref(), Some(USER));
    assert_eq!(sessions[1].state, "unauthenticated");
    f.server.stop();
    f.server.join();
    assert!(f.server.sessions().is_empty());
    assert!(authenticated.call(code::CONFIG_GET_SERVER_INFO, &[]).is_err(), "a session outlived the stop");
    drop(silent);
    assert!(TcpStream::connect(f.addr).is_err(), "the port still accepts");
}
