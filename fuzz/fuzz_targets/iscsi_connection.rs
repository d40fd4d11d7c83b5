//! A whole iSCSI connection (login, then the full feature phase) fed arbitrary PDUs: the bytes
//! are cut into frames with the framing in force and handed to `Connection::receive`, with the
//! timers run in between. Whatever arrives, the target answers with PDUs that encode, a Reject
//! or a closed connection, never a panic.
//!
//! Input: one mode byte (bit 0: log in first with a valid login, so the input reaches the full
//! feature phase; bit 1: CHAP required), then PDUs.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use qorestor_iscsi::chap::{ChapConfig, Credential};
use qorestor_iscsi::connection::{Connection, Output};
use qorestor_iscsi::frame::{decode, encode, Frame};
use qorestor_iscsi::pdu::{stage, LoginHead, Pdu};
use qorestor_iscsi::portal::{LogicalUnits, Portal, Target};
use qorestor_iscsi::session::Action;
use qorestor_iscsi::text::{self, Pairs};
use qorestor_vtl::{ScsiResponse, Sense};

/// Units answering with as much data as the CDB's bytes 2..5 say (at most 64 KiB).
struct Units;

impl LogicalUnits for Units {
    fn lun_count(&self) -> u64 {
        3
    }

    fn execute(&self, lun: u64, cdb: &[u8], _data_out: &[u8]) -> ScsiResponse {
        let len = cdb.get(2..5).map_or(0, |b| u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize).min(65536);
        if lun >= 3 || cdb.first() == Some(&0x03) {
            ScsiResponse::check(Sense::new(5, 0x25, 0), vec![0; len / 2])
        } else {
            ScsiResponse::good(vec![0x5A; len])
        }
    }
}

const TARGET: &str = "iqn.2024-01.org.qorestor:fuzz:lib";

fn login() -> Frame {
    let mut p = Pairs::default();
    for (k, v) in
        [("InitiatorName", "iqn.fuzz:i"), ("TargetName", TARGET), ("AuthMethod", "None"), ("InitialR2T", "No")]
    {
        p.push(k, v);
    }
    let head = LoginHead {
        transit: true,
        cont: false,
        csg: stage::SECURITY,
        nsg: stage::FULL_FEATURE,
        version_max: 0,
        version: 0,
        isid: [0x80, 0, 0, 0, 0, 1],
        tsih: 0,
    };
    Pdu::Login { head, itt: 0, cid: 0, cmd_sn: 0, exp_stat_sn: 0, data: text::format(&p) }.to_frame()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let chap = (mode & 2 != 0).then(|| ChapConfig {
        initiator: Credential { user: "u".into(), secret: "secret-one".into() },
        mutual: None,
        discovery_auth: false,
    });
    let target = Target { name: TARGET.into(), alias: "lib".into(), units: Arc::new(Units) };
    let portal = Arc::new(Portal::new(vec![target], chap));
    let mut now = Instant::now();
    let mut conn = Connection::new(portal, "127.0.0.1:3260".into(), [3; 17], now);
    let mut framing = Connection::initial_framing();
    let handle = |out: Vec<Output>, framing: &mut qorestor_iscsi::connection::Framing| -> bool {
        let mut open = true;
        for o in out {
            match o {
                Output::Act(Action::Send(p)) => {
                    let mut wire = Vec::new();
                    encode(&p.to_frame(), framing.digests, &mut wire);
                    assert!(decode(&wire, framing.digests, 1 << 24).unwrap().is_some());
                }
                Output::Act(Action::Close) => open = false,
                Output::Reframe(f) => *framing = f,
            }
        }
        open
    };
    if mode & 1 != 0 {
        let out = conn.receive(login(), now);
        if !handle(out, &mut framing) {
            return;
        }
    }
    loop {
        let out = match decode(rest, framing.digests, framing.max_recv) {
            Ok(Some((frame, used))) => {
                rest = &rest[used..];
                conn.receive(frame, now)
            }
            Ok(None) => return,
            Err(e) => conn.framing_error(&e),
        };
        if !handle(out, &mut framing) {
            return;
        }
        now += Duration::from_secs(7);
        let out = conn.tick(now);
        if !handle(out, &mut framing) {
            return;
        }
    }
});
