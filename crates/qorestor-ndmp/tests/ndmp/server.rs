//! Connection, authentication and error codes.

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
fn sessions_are_bounded() {
    use std::io::Read;
    let f = Fixture::new();
    let held: Vec<Client> =
        (0..qorestor_ndmp::server::MAX_SESSIONS).map(|_| Client::connect(f.addr).unwrap()).collect();
    let mut s = std::net::TcpStream::connect(f.addr).unwrap();
    // Only bounds a hang: the server answers and closes at once.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    let (record, _) = qorestor_ndmp::record::decode_record(&got, 1024).unwrap().unwrap();
    let d = &mut Decoder::new(&record[24..]);
    assert_eq!(d.u32("reason").unwrap(), 2, "REFUSED");
    // A session's place is given back before its connection closes: once one has gone, a
    // new session is served at once.
    let mut held = held.into_iter();
    held.next().unwrap().hang_up().unwrap();
    let mut c = Client::connect(f.addr).unwrap();
    assert_eq!(c.login(USER, PASSWORD).unwrap().error(), 0, "no session after another ended");
    drop(held);
}
