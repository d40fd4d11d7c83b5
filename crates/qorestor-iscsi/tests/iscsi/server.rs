//! The TCP server: several sessions at once over real sockets, digests on the wire, and a
//! connection dropped on a framing error.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use qorestor_iscsi::frame::{decode, encode, Digests};
use qorestor_iscsi::pdu::{stage, Pdu, Residual};
use qorestor_iscsi::Server;

use crate::{login, login_reply, portal, TARGET};

/// An initiator over a real socket, sending and reading PDUs.
pub struct Client {
    /// The connection.
    pub s: TcpStream,
    buf: Vec<u8>,
    digests: Digests,
}

impl Client {
    /// Sends one PDU.
    pub fn send(&mut self, p: &Pdu) {
        let mut wire = Vec::new();
        encode(&p.to_frame(), self.digests, &mut wire);
        self.s.write_all(&wire).unwrap();
    }

    /// Reads one PDU (panics when the connection closes first).
    pub fn recv(&mut self) -> Pdu {
        loop {
            if let Some((f, used)) = decode(&self.buf, self.digests, 1 << 24).unwrap() {
                self.buf.drain(..used);
                return Pdu::from_frame(f).unwrap();
            }
            let mut chunk = [0u8; 65536];
            let n = self.s.read(&mut chunk).unwrap();
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A normal session of `initiator` (ISID 0) logged in to [`TARGET`] without digests.
fn logged_in(addr: std::net::SocketAddr, initiator: &str) -> Client {
    let (c, status) = log_in(addr, initiator, TARGET);
    assert_eq!(status, (0, 0));
    c
}

/// A connection that logged in as `initiator` (ISID 0) to `target` without authentication
/// or digests, and the status of the Login Response.
pub fn log_in(addr: std::net::SocketAddr, initiator: &str, target: &str) -> (Client, (u8, u8)) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut c = Client { s, buf: Vec::new(), digests: Digests::default() };
    c.send(&login(
        stage::SECURITY,
        stage::FULL_FEATURE,
        true,
        &[("InitiatorName", initiator), ("TargetName", target), ("AuthMethod", "None")],
    ));
    let status = login_reply(&c.recv()).1;
    (c, status)
}

#[test]
fn several_sessions_at_once_with_digests() {
    let (p, units) = portal(None);
    let server = Server::start("127.0.0.1:0".parse().unwrap(), p).unwrap();
    let addr = server.local_addr();
    let sessions: Vec<_> = (0..4u8)
        .map(|i| {
            thread::spawn(move || {
                let s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut c = Client { s, buf: Vec::new(), digests: Digests::default() };
                let mut first = login(
                    stage::SECURITY,
                    stage::FULL_FEATURE,
                    true,
                    &[
                        ("InitiatorName", "iqn.test:i"),
                        ("TargetName", TARGET),
                        ("AuthMethod", "None"),
                        ("HeaderDigest", "CRC32C"),
                        ("DataDigest", "CRC32C"),
                    ],
                );
                if let Pdu::Login { head, .. } = &mut first {
                    head.isid[5] = i;
                }
                c.send(&first);
                let (keys, st, transit, tsih) = login_reply(&c.recv());
                assert_eq!((st, transit, keys.get("HeaderDigest")), ((0, 0), true, Some("CRC32C")));
                c.digests = Digests { header: true, data: true };
                // A write with immediate data, then a 300 KiB read split into Data-In PDUs.
                let data = vec![i; 1000];
                c.send(&Pdu::ScsiCommand {
                    immediate: false,
                    final_: true,
                    read: false,
                    write: true,
                    attr: 1,
                    lun: 0x0001_0000_0000_0000,
                    itt: 1,
                    expected_len: 1000,
                    cmd_sn: 1,
                    exp_stat_sn: 0,
                    cdb: vec![0x0A, 0, 0, 0x03, 0xE8, 0],
                    data,
                });
                assert!(matches!(c.recv(), Pdu::ScsiResponse { status: 0, itt: 1, .. }));
                let len = 300 * 1024;
                c.send(&Pdu::ScsiCommand {
                    immediate: false,
                    final_: true,
                    read: true,
                    write: false,
                    attr: 1,
                    lun: 0x0001_0000_0000_0000,
                    itt: 2,
                    expected_len: len,
                    cmd_sn: 2,
                    exp_stat_sn: 0,
                    cdb: vec![0x08, 0, (len >> 16) as u8, (len >> 8) as u8, len as u8, 0],
                    data: Vec::new(),
                });
                let mut got = 0;
                loop {
                    match c.recv() {
                        Pdu::DataIn { data, status, residual, .. } => {
                            assert!(data.len() <= 8192, "initiator's default MaxRecvDataSegmentLength");
                            got += data.len();
                            if status.is_some() {
                                assert_eq!(residual, Residual::None);
                                break;
                            }
                        }
                        other => panic!("{other:?}"),
                    }
                }
                assert_eq!(got, len as usize);
                tsih
            })
        })
        .collect();
    let mut tsihs: Vec<u16> = sessions.into_iter().map(|t| t.join().unwrap()).collect();
    tsihs.sort();
    tsihs.dedup();
    assert_eq!(tsihs.len(), 4, "each session its own TSIH");
    let mut written = units.written.lock().unwrap().clone();
    written.sort();
    assert_eq!(written, (0..4u8).map(|i| vec![i; 1000]).collect::<Vec<_>>());
}

#[test]
fn a_data_segment_beyond_the_login_limit_drops_the_connection() {
    let (p, _) = portal(None);
    let server = Server::start("127.0.0.1:0".parse().unwrap(), p).unwrap();
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut bhs = [0u8; 48];
    bhs[0] = 0x43;
    bhs[5..8].copy_from_slice(&[0x01, 0x00, 0x00]); // 64 KiB announced during login
    s.write_all(&bhs).unwrap();
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0, "closed without an answer");
}

#[test]
fn a_login_with_the_same_isid_reinstates_the_session() {
    let (p, _) = portal(None);
    let server = Server::start("127.0.0.1:0".parse().unwrap(), p).unwrap();
    let mut old = logged_in(server.local_addr(), "iqn.test:i");
    let mut new = logged_in(server.local_addr(), "iqn.test:i");
    // The old connection is shut down; the new session works.
    let mut rest = Vec::new();
    assert_eq!(old.s.read_to_end(&mut rest).unwrap_or(0), 0);
    new.send(&crate::ping(3, 1));
    assert!(matches!(new.recv(), Pdu::NopIn { itt: 3, .. }));
}

#[test]
fn the_target_stops_through_its_handle_with_sessions_open() {
    let (p, _) = portal(None);
    let server = Server::start("127.0.0.1:0".parse().unwrap(), p).unwrap();
    let addr = server.local_addr();
    // Accepted first, so admitted before the session below logs in.
    let mut silent = TcpStream::connect(addr).unwrap();
    let mut c = logged_in(addr, "iqn.test:stop");
    let sessions = server.sessions();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    // The silent connection's thread may not have begun its login phase yet ("connected").
    assert!(matches!(sessions[0].state.as_str(), "connected" | "login"), "{sessions:?}");
    assert!(!sessions[0].authenticated, "{sessions:?}");
    assert_eq!(sessions[1].user.as_deref(), Some("iqn.test:stop"));
    assert_eq!((sessions[1].state.as_str(), sessions[1].authenticated), ("full feature", true));

    server.stop();
    server.join();
    assert!(server.sessions().is_empty());
    let mut rest = Vec::new();
    assert_eq!(c.s.read_to_end(&mut rest).unwrap_or(0), 0, "the session outlived the stop");
    silent.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    assert_eq!(silent.read_to_end(&mut rest).unwrap_or(0), 0);
    assert!(TcpStream::connect(addr).is_err(), "the port still accepts");
}
