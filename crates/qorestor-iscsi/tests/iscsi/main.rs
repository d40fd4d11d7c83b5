//! Tests of qorestor-iscsi: the codec (round trips, limits, digests, arbitrary bytes), and the
//! login and full feature state machines driven by an in-process initiator, without sockets;
//! the server over sockets; live reconfiguration with the real `iscsi-ls`.

mod codec;
mod live;
mod login;
mod server;
mod session;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qorestor_iscsi::chap::ChapConfig;
use qorestor_iscsi::connection::{Connection, Framing, Output};
use qorestor_iscsi::frame::{decode, encode};
use qorestor_iscsi::pdu::{stage, LoginHead, Pdu, RESERVED_TAG};
use qorestor_iscsi::portal::{LogicalUnits, Portal, Target, Timeouts};
use qorestor_iscsi::session::Action;
use qorestor_iscsi::text::{self, Pairs};
use qorestor_vtl::{ScsiResponse, Sense};

/// The target name of the test portal.
pub const TARGET: &str = "iqn.2024-01.org.qorestor:test:lib1";

/// Fake units (2 LUNs): WRITE(6) records its data; READ(6) returns as many bytes as its
/// transfer length says (0xAB each); REQUEST SENSE (03) answers CHECK CONDITION 5/20/00.
#[derive(Default)]
pub struct Units {
    /// Data of each WRITE(6), in order.
    pub written: Mutex<Vec<Vec<u8>>>,
}

impl LogicalUnits for Units {
    fn lun_count(&self) -> u64 {
        2
    }

    fn execute(&self, _lun: u64, cdb: &[u8], data_out: &[u8]) -> ScsiResponse {
        let len = u32::from_be_bytes([0, cdb[2], cdb[3], cdb[4]]) as usize;
        match cdb[0] {
            0x0A => {
                self.written.lock().unwrap().push(data_out.to_vec());
                ScsiResponse::good(Vec::new())
            }
            0x08 => ScsiResponse::good(vec![0xAB; len]),
            0x03 => ScsiResponse::check(Sense::new(5, 0x20, 0), Vec::new()),
            _ => ScsiResponse::good(Vec::new()),
        }
    }
}

/// A portal with one target over [`Units`], short keep-alive timers, and `chap`.
pub fn portal(chap: Option<ChapConfig>) -> (Arc<Portal>, Arc<Units>) {
    let units = Arc::new(Units::default());
    let target = Target { name: TARGET.into(), alias: "lib1".into(), units: units.clone() };
    let mut p = Portal::new(vec![target], chap);
    p.timeouts = Timeouts {
        login: Duration::from_secs(5),
        nop_interval: Duration::from_secs(10),
        nop_timeout: Duration::from_secs(5),
    };
    (Arc::new(p), units)
}

/// An initiator and a target connection, stepped without sockets. Every PDU goes through the
/// codec both ways with the framing in force.
pub struct Pair {
    /// The target side.
    pub conn: Connection,
    /// The test clock.
    pub now: Instant,
    framing: Framing,
    /// Whether the target closed the connection.
    pub closed: bool,
    /// Next CmdSN the initiator uses.
    pub cmd_sn: u32,
}

/// Fixed CHAP identifier and challenge for tests.
pub const ENTROPY: [u8; 17] = [7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

impl Pair {
    /// A fresh connection to `portal`.
    pub fn new(portal: Arc<Portal>) -> Pair {
        let now = Instant::now();
        let conn = Connection::new(portal, "127.0.0.1:3260".into(), ENTROPY, now);
        Pair { conn, now, framing: Connection::initial_framing(), closed: false, cmd_sn: 1 }
    }

    /// Sends one PDU; returns the target's PDUs.
    pub fn send(&mut self, pdu: &Pdu) -> Vec<Pdu> {
        let mut wire = Vec::new();
        encode(&pdu.to_frame(), self.framing.digests, &mut wire);
        let (frame, used) = decode(&wire, self.framing.digests, 1 << 24).unwrap().unwrap();
        assert_eq!(used, wire.len());
        let out = self.conn.receive(frame, self.now);
        self.collect(out)
    }

    /// Advances the clock by `d` and runs the timers.
    pub fn wait(&mut self, d: Duration) -> Vec<Pdu> {
        self.now += d;
        let out = self.conn.tick(self.now);
        self.collect(out)
    }

    fn collect(&mut self, out: Vec<Output>) -> Vec<Pdu> {
        let mut pdus = Vec::new();
        for o in out {
            match o {
                Output::Act(Action::Send(p)) => {
                    // Through the codec, as the initiator would read it.
                    let mut wire = Vec::new();
                    encode(&p.to_frame(), self.framing.digests, &mut wire);
                    let (f, _) = decode(&wire, self.framing.digests, 1 << 24).unwrap().unwrap();
                    pdus.push(Pdu::from_frame(f).unwrap());
                }
                Output::Act(Action::Close) => self.closed = true,
                Output::Reframe(f) => self.framing = f,
            }
        }
        pdus
    }

    /// The framing in force.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Next CmdSN, advanced.
    pub fn next_cmd_sn(&mut self) -> u32 {
        let s = self.cmd_sn;
        self.cmd_sn += 1;
        s
    }
}

/// A Login Request with `keys`.
pub fn login(csg: u8, nsg: u8, transit: bool, keys: &[(&str, &str)]) -> Pdu {
    let mut p = Pairs::default();
    for (k, v) in keys {
        p.push(k, *v);
    }
    Pdu::Login {
        head: LoginHead {
            transit,
            cont: false,
            csg,
            nsg,
            version_max: 0,
            version: 0,
            isid: [0x80, 0, 0, 0, 0, 1],
            tsih: 0,
        },
        itt: 1,
        cid: 0,
        cmd_sn: 1,
        exp_stat_sn: 0,
        data: text::format(&p),
    }
}

/// The keys and status of a Login Response.
pub fn login_reply(p: &Pdu) -> (Pairs, (u8, u8), bool, u16) {
    match p {
        Pdu::LoginResponse { data, status_class, status_detail, head, .. } => {
            (text::parse(data).unwrap(), (*status_class, *status_detail), head.transit, head.tsih)
        }
        other => panic!("not a login response: {other:?}"),
    }
}

/// Logs in to the test target without authentication, offering `keys` in the operational
/// stage.
pub fn login_open(pair: &mut Pair, keys: &[(&str, &str)]) {
    let r = pair.send(&login(
        stage::SECURITY,
        stage::OPERATIONAL,
        true,
        &[("InitiatorName", "iqn.test:i"), ("TargetName", TARGET), ("AuthMethod", "None")],
    ));
    assert_eq!(login_reply(&r[0]).1, (0, 0));
    let r = pair.send(&login(stage::OPERATIONAL, stage::FULL_FEATURE, true, keys));
    let (_, st, transit, tsih) = login_reply(&r[0]);
    assert_eq!((st, transit), ((0, 0), true));
    assert_ne!(tsih, 0);
    assert!(pair.conn.session().is_some());
}

/// A SCSI Command PDU.
pub fn command(pair: &mut Pair, itt: u32, cdb: &[u8], read: bool, write: bool, expected: u32, data: Vec<u8>) -> Pdu {
    Pdu::ScsiCommand {
        immediate: false,
        final_: true,
        read,
        write,
        attr: 1,
        lun: 0x0001_0000_0000_0000,
        itt,
        expected_len: expected,
        cmd_sn: pair.next_cmd_sn(),
        exp_stat_sn: 0,
        cdb: cdb.to_vec(),
        data,
    }
}

/// A NOP-Out ping with ITT `itt` and CmdSN `cmd_sn` (not immediate).
pub fn ping(itt: u32, cmd_sn: u32) -> Pdu {
    Pdu::NopOut { immediate: false, lun: 0, itt, ttt: RESERVED_TAG, cmd_sn, exp_stat_sn: 0, data: b"ping".to_vec() }
}
