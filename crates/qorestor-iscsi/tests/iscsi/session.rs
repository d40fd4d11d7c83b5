//! Full feature phase: writes with immediate, unsolicited and solicited data; reads split into
//! Data-In with the status in the last; residuals; sense; CmdSN ordering; NOP; TMF; Logout;
//! Reject.

use std::time::Duration;

use qorestor_iscsi::pdu::{Pdu, Residual, RESERVED_TAG};

use crate::{command, login_open, ping, portal, Pair};

fn write6(len: u32) -> Vec<u8> {
    vec![0x0A, 0, (len >> 16) as u8, (len >> 8) as u8, len as u8, 0]
}

fn read6(len: u32) -> Vec<u8> {
    vec![0x08, 0, (len >> 16) as u8, (len >> 8) as u8, len as u8, 0]
}

fn open(keys: &[(&str, &str)]) -> (Pair, std::sync::Arc<crate::Units>) {
    let (p, units) = portal(None);
    let mut pair = Pair::new(p);
    login_open(&mut pair, keys);
    (pair, units)
}

fn data_out(itt: u32, ttt: u32, offset: u32, data: Vec<u8>, final_: bool) -> Pdu {
    Pdu::DataOut { final_, lun: 0x0001_0000_0000_0000, itt, ttt, exp_stat_sn: 0, data_sn: 0, offset, data }
}

fn good_response(r: &Pdu, itt_want: u32) {
    assert!(
        matches!(r, Pdu::ScsiResponse { status: 0, itt, residual: Residual::None, .. } if *itt == itt_want),
        "{r:?}"
    );
}

#[test]
fn write_with_immediate_data_only() {
    let (mut pair, units) = open(&[("ImmediateData", "Yes")]);
    let data: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
    let c = command(&mut pair, 1, &write6(4096), false, true, 4096, data.clone());
    let r = pair.send(&c);
    assert_eq!(r.len(), 1);
    good_response(&r[0], 1);
    assert_eq!(units.written.lock().unwrap()[0], data);
}

#[test]
fn write_with_solicited_bursts() {
    // InitialR2T=Yes, no immediate data: everything comes through R2Ts of MaxBurstLength.
    let (mut pair, units) = open(&[("ImmediateData", "No"), ("MaxBurstLength", "4096"), ("FirstBurstLength", "4096")]);
    let c = command(&mut pair, 7, &write6(10_000), false, true, 10_000, Vec::new());
    let mut r = pair.send(&c);
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let mut bursts = Vec::new();
    while let Some(Pdu::R2t { itt: 7, ttt, offset, length, r2t_sn, .. }) = r.first().cloned() {
        bursts.push((offset, length, r2t_sn));
        let chunk = data[offset as usize..(offset + length) as usize].to_vec();
        // Each burst in two Data-Out PDUs.
        let half = length / 2;
        assert!(pair.send(&data_out(7, ttt, offset, chunk[..half as usize].to_vec(), false)).is_empty());
        r = pair.send(&data_out(7, ttt, offset + half, chunk[half as usize..].to_vec(), true));
    }
    assert_eq!(bursts, vec![(0, 4096, 0), (4096, 4096, 1), (8192, 1808, 2)]);
    good_response(&r[0], 7);
    if let Pdu::ScsiResponse { exp_data_sn, .. } = r[0] {
        assert_eq!(exp_data_sn, 3, "R2Ts sent");
    }
    assert_eq!(units.written.lock().unwrap()[0], data);
}

#[test]
fn write_with_immediate_unsolicited_and_solicited_data() {
    let (mut pair, units) = open(&[
        ("InitialR2T", "No"),
        ("ImmediateData", "Yes"),
        ("FirstBurstLength", "8192"),
        ("MaxBurstLength", "8192"),
    ]);
    let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let mut c = command(&mut pair, 3, &write6(20_000), false, true, 20_000, data[..1000].to_vec());
    if let Pdu::ScsiCommand { final_, .. } = &mut c {
        *final_ = false;
    }
    assert!(pair.send(&c).is_empty());
    // Unsolicited Data-Out up to FirstBurstLength, then the target asks for the rest.
    let r = pair.send(&data_out(3, RESERVED_TAG, 1000, data[1000..8192].to_vec(), true));
    let Some(Pdu::R2t { ttt, offset: 8192, length: 8192, .. }) = r.first().cloned() else { panic!("{r:?}") };
    let r = pair.send(&data_out(3, ttt, 8192, data[8192..16384].to_vec(), true));
    let Some(Pdu::R2t { ttt, offset: 16384, length: 3616, .. }) = r.first().cloned() else { panic!("{r:?}") };
    let r = pair.send(&data_out(3, ttt, 16384, data[16384..].to_vec(), true));
    good_response(&r[0], 3);
    assert_eq!(units.written.lock().unwrap()[0], data);
}

#[test]
fn misplaced_data_out_is_rejected_and_unknown_tasks_ignored() {
    let (mut pair, _) = open(&[("ImmediateData", "No")]);
    let c = command(&mut pair, 4, &write6(1000), false, true, 1000, Vec::new());
    let r = pair.send(&c);
    let Some(Pdu::R2t { ttt, .. }) = r.first().cloned() else { panic!("{r:?}") };
    let r = pair.send(&data_out(4, ttt, 500, vec![0; 10], true));
    assert!(matches!(r[0], Pdu::Reject { reason: 0x09, .. }), "{r:?}");
    let r = pair.send(&data_out(4, ttt, 0, vec![0; 2000], true));
    assert!(matches!(r[0], Pdu::Reject { reason: 0x09, .. }), "{r:?}");
    assert!(pair.send(&data_out(99, 1, 0, vec![0; 10], true)).is_empty());
    // Immediate data when ImmediateData=No is a protocol error.
    let c = command(&mut pair, 5, &write6(10), false, true, 10, vec![1; 10]);
    assert!(matches!(pair.send(&c)[0], Pdu::Reject { reason: 0x04, .. }));
}

#[test]
fn reads_split_by_the_initiators_segment_limit_with_status_in_the_last() {
    let (mut pair, _) = open(&[("MaxRecvDataSegmentLength", "4096"), ("MaxBurstLength", "8192")]);
    let c = command(&mut pair, 11, &read6(10_000), true, false, 10_000, Vec::new());
    let r = pair.send(&c);
    assert_eq!(r.len(), 3);
    let mut got = Vec::new();
    for (i, p) in r.iter().enumerate() {
        let Pdu::DataIn { final_, status, data_sn, offset, data, residual, .. } = p else { panic!("{p:?}") };
        assert_eq!((*data_sn as usize, *offset as usize), (i, got.len()));
        // F ends each MaxBurstLength sequence and the last PDU; S only on the last.
        assert_eq!(*final_, i >= 1, "PDU {i}");
        assert_eq!(status.is_some(), i == 2);
        assert_eq!(*residual, Residual::None);
        got.extend_from_slice(data);
    }
    assert_eq!(got, vec![0xAB; 10_000]);
}

#[test]
fn residual_overflow_and_underflow() {
    let (mut pair, _) = open(&[]);
    // The command has 100 bytes for a 60-byte buffer: 60 sent, overflow 40.
    let c = command(&mut pair, 1, &read6(100), true, false, 60, Vec::new());
    let r = pair.send(&c);
    let Pdu::DataIn { status: Some(0), residual: Residual::Overflow(40), data, .. } = &r[0] else { panic!("{r:?}") };
    assert_eq!(data.len(), 60);
    // 30 bytes for a 100-byte buffer: underflow 70.
    let c = command(&mut pair, 2, &read6(30), true, false, 100, Vec::new());
    let r = pair.send(&c);
    assert!(matches!(&r[0], Pdu::DataIn { status: Some(0), residual: Residual::Underflow(70), .. }), "{r:?}");
    // No data at all: a SCSI Response with the whole length as underflow.
    let c = command(&mut pair, 3, &read6(0), true, false, 100, Vec::new());
    let r = pair.send(&c);
    assert!(matches!(&r[0], Pdu::ScsiResponse { status: 0, residual: Residual::Underflow(100), .. }), "{r:?}");
}

#[test]
fn check_condition_carries_sense_in_the_response() {
    let (mut pair, _) = open(&[]);
    let c = command(&mut pair, 1, &[0x03, 0, 0, 0, 18, 0], true, false, 18, Vec::new());
    let r = pair.send(&c);
    assert_eq!(r.len(), 1);
    let Pdu::ScsiResponse { status: 2, sense, residual: Residual::Underflow(18), .. } = &r[0] else { panic!("{r:?}") };
    assert_eq!((sense[0] & 0x7F, sense[2] & 0x0F, sense[12]), (0x70, 5, 0x20));
}

#[test]
fn commands_run_in_cmdsn_order_within_the_window() {
    let (mut pair, _) = open(&[]);
    let sn = pair.cmd_sn;
    // CmdSN+1 arrives first: kept until CmdSN comes.
    assert!(pair.send(&ping(21, sn + 1)).is_empty());
    let r = pair.send(&ping(20, sn));
    let itts: Vec<u32> = r.iter().map(|p| if let Pdu::NopIn { itt, .. } = p { *itt } else { 0 }).collect();
    assert_eq!(itts, vec![20, 21]);
    let Pdu::NopIn { sn: s, .. } = &r[1] else { unreachable!() };
    assert_eq!((s.exp_cmd_sn, s.max_cmd_sn), (sn + 2, sn + 2 + 31));
    // Outside the window (or already done): ignored.
    assert!(pair.send(&ping(22, sn + 500)).is_empty());
    assert!(pair.send(&ping(23, sn)).is_empty());
    // A ping's echo is cut to the initiator's MaxRecvDataSegmentLength (8192 by default).
    let mut big = ping(26, sn + 2);
    if let Pdu::NopOut { data, .. } = &mut big {
        *data = vec![1; 20_000];
    }
    let r = pair.send(&big);
    assert!(matches!(&r[0], Pdu::NopIn { itt: 26, data, .. } if data.len() == 8192), "{r:?}");
    let sn = sn + 1;
    // StatSN increases by one per status.
    let a = pair.send(&ping(24, sn + 2));
    let b = pair.send(&ping(25, sn + 3));
    let stat = |p: &Pdu| if let Pdu::NopIn { sn, .. } = p { sn.stat_sn } else { 0 };
    assert_eq!(stat(&b[0]), stat(&a[0]) + 1);
}

#[test]
fn keep_alive_pings_an_idle_initiator_and_drops_a_dead_one() {
    let (mut pair, _) = open(&[]);
    assert!(pair.wait(Duration::from_secs(5)).is_empty());
    let r = pair.wait(Duration::from_secs(6));
    let Some(Pdu::NopIn { itt: RESERVED_TAG, ttt, .. }) = r.first().cloned() else { panic!("{r:?}") };
    // The answer clears the ping; the next one comes after another idle interval.
    let answer = Pdu::NopOut {
        immediate: true,
        lun: 0,
        itt: RESERVED_TAG,
        ttt,
        cmd_sn: pair.cmd_sn,
        exp_stat_sn: 0,
        data: vec![],
    };
    assert!(pair.send(&answer).is_empty());
    assert!(pair.wait(Duration::from_secs(6)).is_empty());
    assert!(!pair.closed);
    let r = pair.wait(Duration::from_secs(5));
    assert!(matches!(r[0], Pdu::NopIn { itt: RESERVED_TAG, .. }));
    pair.wait(Duration::from_secs(6));
    assert!(pair.closed, "unanswered ping drops the connection");
}

#[test]
fn task_management_aborts_waiting_writes() {
    let (mut pair, units) = open(&[("ImmediateData", "No")]);
    let c = command(&mut pair, 40, &write6(100), false, true, 100, Vec::new());
    let r = pair.send(&c);
    let Some(Pdu::R2t { ttt, .. }) = r.first().cloned() else { panic!("{r:?}") };
    let tmf = |function: u8, ref_itt: u32, ref_cmd_sn: u32, cmd_sn: u32| Pdu::TaskMgmt {
        immediate: true,
        function,
        lun: 0x0001_0000_0000_0000,
        itt: 50,
        ref_itt,
        cmd_sn,
        exp_stat_sn: 0,
        ref_cmd_sn,
        exp_data_sn: 0,
    };
    let sn = pair.cmd_sn;
    let r = pair.send(&tmf(1, 40, sn - 1, sn));
    assert!(matches!(r[0], Pdu::TaskMgmtResponse { response: 0, itt: 50, .. }), "{r:?}");
    // Its data is dropped; the command never ran.
    assert!(pair.send(&data_out(40, ttt, 0, vec![1; 100], true)).is_empty());
    assert!(units.written.lock().unwrap().is_empty());
    // A task that is gone: "task does not exist"; the resets complete.
    assert!(matches!(pair.send(&tmf(1, 41, sn.wrapping_sub(10), sn))[0], Pdu::TaskMgmtResponse { response: 1, .. }));
    for f in [2, 5, 6] {
        assert!(matches!(pair.send(&tmf(f, 0, 0, sn))[0], Pdu::TaskMgmtResponse { response: 0, .. }), "{f}");
    }
    assert!(matches!(pair.send(&tmf(8, 0, 0, sn))[0], Pdu::TaskMgmtResponse { response: 4, .. }));
    assert!(matches!(pair.send(&tmf(7, 0, 0, sn))[0], Pdu::TaskMgmtResponse { response: 5, .. }));
    // An unknown LUN.
    let mut bad = tmf(5, 0, 0, sn);
    if let Pdu::TaskMgmt { lun, .. } = &mut bad {
        *lun = 0x0009_0000_0000_0000;
    }
    assert!(matches!(pair.send(&bad)[0], Pdu::TaskMgmtResponse { response: 2, .. }));
}

#[test]
fn snack_and_malformed_pdus_get_rejects_and_logout_closes() {
    let (mut pair, _) = open(&[]);
    let mut h = [0u8; 48];
    h[0] = 0x10;
    let r = pair.send(&Pdu::Snack { itt: 1, header: h });
    assert!(matches!(r[0], Pdu::Reject { reason: 0x03, .. }));
    // An unknown opcode, fed as a raw frame.
    let mut bhs = [0u8; 48];
    bhs[0] = 0x1D;
    let out = pair.conn.receive(qorestor_iscsi::frame::Frame { bhs, ahs: vec![], data: vec![] }, pair.now);
    assert!(
        matches!(&out[0], qorestor_iscsi::connection::Output::Act(qorestor_iscsi::session::Action::Send(Pdu::Reject { reason: 0x05, header, .. })) if header[0] == 0x1D)
    );
    let sn = pair.next_cmd_sn();
    let r = pair.send(&Pdu::Logout { immediate: false, reason: 0, itt: 77, cid: 0, cmd_sn: sn, exp_stat_sn: 0 });
    assert!(matches!(r[0], Pdu::LogoutResponse { response: 0, itt: 77, .. }));
    assert!(pair.closed);
}
