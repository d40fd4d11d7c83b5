//! The codec: frame and PDU round trips, partial input, limits, digests, arbitrary bytes.

use proptest::prelude::*;
use qorestor_iscsi::frame::{decode, encode, Digests, Frame, BHS_LEN};
use qorestor_iscsi::pdu::{LoginHead, Pdu, Residual, Sn};
use qorestor_iscsi::text;
use qorestor_iscsi::CodecError;

fn digests() -> impl Strategy<Value = Digests> {
    (any::<bool>(), any::<bool>()).prop_map(|(header, data)| Digests { header, data })
}

fn sn() -> impl Strategy<Value = Sn> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(a, b, c)| Sn { stat_sn: a, exp_cmd_sn: b, max_cmd_sn: c })
}

fn residual() -> impl Strategy<Value = Residual> {
    prop_oneof![
        Just(Residual::None),
        any::<u32>().prop_map(Residual::Overflow),
        any::<u32>().prop_map(Residual::Underflow)
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Every PDU kind with arbitrary field values (as the wire can carry them).
fn pdu() -> impl Strategy<Value = Pdu> {
    prop_oneof![
        (any::<bool>(), any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>(), bytes(300)).prop_map(
            |(immediate, lun, itt, ttt, cmd_sn, data)| Pdu::NopOut {
                immediate,
                lun,
                itt,
                ttt,
                cmd_sn,
                exp_stat_sn: cmd_sn ^ 1,
                data
            }
        ),
        (any::<[bool; 4]>(), 0u8..8, any::<u64>(), any::<u32>(), any::<u32>(), bytes(260 - 16), bytes(600)).prop_map(
            |(f, attr, lun, itt, len, extra, data)| {
                let mut cdb = vec![0x0A; 16];
                cdb.extend_from_slice(&extra);
                Pdu::ScsiCommand {
                    immediate: f[0],
                    final_: f[1],
                    read: f[2],
                    write: f[3],
                    attr,
                    lun,
                    itt,
                    expected_len: len,
                    cmd_sn: itt ^ 5,
                    exp_stat_sn: 9,
                    cdb,
                    data,
                }
            }
        ),
        (0u8..128, any::<u64>(), any::<[u32; 5]>()).prop_map(|(function, lun, n)| Pdu::TaskMgmt {
            immediate: true,
            function,
            lun,
            itt: n[0],
            ref_itt: n[1],
            cmd_sn: n[2],
            exp_stat_sn: n[3],
            ref_cmd_sn: n[4],
            exp_data_sn: 3,
        }),
        (any::<[bool; 2]>(), 0u8..4, 0u8..4, any::<[u8; 6]>(), any::<u16>(), any::<u32>(), bytes(500)).prop_map(
            |(b, csg, nsg, isid, tsih, itt, data)| Pdu::Login {
                head: LoginHead { transit: b[0], cont: b[1], csg, nsg, version_max: 0, version: 0, isid, tsih },
                itt,
                cid: 1,
                cmd_sn: itt ^ 3,
                exp_stat_sn: 4,
                data,
            }
        ),
        (any::<[bool; 3]>(), any::<u64>(), any::<[u32; 2]>(), bytes(400)).prop_map(|(b, lun, n, data)| Pdu::Text {
            immediate: b[0],
            final_: b[1],
            cont: b[2],
            lun,
            itt: n[0],
            ttt: n[1],
            cmd_sn: 5,
            exp_stat_sn: 6,
            data
        }),
        (any::<bool>(), any::<u64>(), any::<[u32; 4]>(), bytes(900)).prop_map(|(final_, lun, n, data)| Pdu::DataOut {
            final_,
            lun,
            itt: n[0],
            ttt: n[1],
            exp_stat_sn: 7,
            data_sn: n[2],
            offset: n[3],
            data
        }),
        (0u8..128, any::<u32>(), any::<u16>()).prop_map(|(reason, itt, cid)| Pdu::Logout {
            immediate: true,
            reason,
            itt,
            cid,
            cmd_sn: 1,
            exp_stat_sn: 2
        }),
        (any::<u64>(), any::<[u32; 2]>(), sn(), bytes(100)).prop_map(|(lun, n, sn, data)| Pdu::NopIn {
            lun,
            itt: n[0],
            ttt: n[1],
            sn,
            data
        }),
        (any::<u8>(), any::<u8>(), any::<u32>(), sn(), residual(), bytes(96)).prop_map(
            |(response, status, itt, sn, residual, sense)| Pdu::ScsiResponse {
                response,
                status,
                itt,
                sn,
                exp_data_sn: 2,
                residual,
                sense
            }
        ),
        (any::<u8>(), any::<u32>(), sn()).prop_map(|(response, itt, sn)| Pdu::TaskMgmtResponse { response, itt, sn }),
        (any::<[bool; 2]>(), 0u8..4, 0u8..4, any::<[u8; 6]>(), any::<u16>(), sn(), any::<[u8; 2]>(), bytes(300))
            .prop_map(|(b, csg, nsg, isid, tsih, sn, st, data)| Pdu::LoginResponse {
                head: LoginHead { transit: b[0], cont: b[1], csg, nsg, version_max: 0, version: 1, isid, tsih },
                itt: 3,
                sn,
                status_class: st[0],
                status_detail: st[1],
                data
            }),
        (any::<[bool; 2]>(), any::<u64>(), sn(), bytes(300)).prop_map(|(b, lun, sn, data)| Pdu::TextResponse {
            final_: b[0],
            cont: b[1],
            lun,
            itt: 1,
            ttt: 2,
            sn,
            data
        }),
        (
            any::<bool>(),
            proptest::option::of(any::<u8>()),
            residual(),
            any::<u64>(),
            sn(),
            any::<[u32; 3]>(),
            bytes(900)
        )
            .prop_map(|(final_, status, residual, lun, sn, n, data)| Pdu::DataIn {
                final_: final_ || status.is_some(),
                status,
                residual: if status.is_some() { residual } else { Residual::None },
                lun,
                itt: n[0],
                ttt: n[1],
                sn,
                data_sn: n[2],
                offset: n[0] ^ n[2],
                data
            }),
        (any::<u8>(), any::<u32>(), sn(), any::<[u16; 2]>()).prop_map(|(response, itt, sn, t)| Pdu::LogoutResponse {
            response,
            itt,
            sn,
            time2wait: t[0],
            time2retain: t[1]
        }),
        (any::<u64>(), sn(), any::<[u32; 5]>()).prop_map(|(lun, sn, n)| Pdu::R2t {
            lun,
            itt: n[0],
            ttt: n[1],
            sn,
            r2t_sn: n[2],
            offset: n[3],
            length: n[4]
        }),
        (any::<u8>(), sn(), any::<u32>(), any::<[u8; 32]>()).prop_map(|(reason, sn, data_sn, h)| {
            let mut header = [0u8; BHS_LEN];
            header[..32].copy_from_slice(&h);
            Pdu::Reject { reason, sn, data_sn, header }
        }),
    ]
}

proptest! {
    #[test]
    fn frames_round_trip(bhs in any::<[u8; 32]>(), words in 0usize..16, data in bytes(3000), d in digests()) {
        let mut full = [0u8; BHS_LEN];
        full[..32].copy_from_slice(&bhs);
        full[4..8].fill(0);
        let frame = Frame { bhs: full, ahs: vec![0x5A; words * 4], data };
        let mut wire = Vec::new();
        encode(&frame, d, &mut wire);
        prop_assert_eq!(wire.len() % 4, 0);
        let (back, used) = decode(&wire, d, 1 << 24).unwrap().unwrap();
        prop_assert_eq!(used, wire.len());
        let mut want = frame.clone();
        want.bhs[4] = words as u8;
        want.bhs[5..8].copy_from_slice(&(frame.data.len() as u32).to_be_bytes()[1..]);
        prop_assert_eq!(back, want);
        // Any prefix is "not yet"; a bit flipped under a digest is caught.
        for cut in [0, 1, BHS_LEN - 1, wire.len() - 1] {
            prop_assert_eq!(decode(&wire[..cut.min(wire.len() - 1)], d, 1 << 24).unwrap(), None);
        }
        if d.header {
            let mut bad = wire.clone();
            bad[20] ^= 1;
            let caught = matches!(decode(&bad, d, 1 << 24), Err(CodecError::HeaderDigest { .. }));
            prop_assert!(caught);
        }
    }

    #[test]
    fn pdus_round_trip(p in pdu(), d in digests()) {
        let mut wire = Vec::new();
        encode(&p.to_frame(), d, &mut wire);
        let (f, used) = decode(&wire, d, 1 << 24).unwrap().unwrap();
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(Pdu::from_frame(f).unwrap(), p.clone());
        prop_assert_eq!(p.clone().into_frame(), p.to_frame());
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in bytes(600), d in digests(), limit in 0u32..1024) {
        if let Ok(Some((f, used))) = decode(&b, d, limit) {
            prop_assert!(used <= b.len() && f.data.len() <= limit as usize);
            let _ = Pdu::from_frame(f);
        }
        let _ = text::parse(&b);
    }

    #[test]
    fn text_round_trips(pairs in proptest::collection::vec(("[A-Za-z][A-Za-z0-9_.]{0,20}", "[ -~]{0,40}"), 0..10)) {
        let mut p = text::Pairs::default();
        for (k, v) in &pairs {
            p.push(k, v.clone());
        }
        prop_assert_eq!(text::parse(&text::format(&p)).unwrap(), p);
    }
}

#[test]
fn data_segment_beyond_the_limit_is_refused_before_reading_it() {
    let mut bhs = [0u8; BHS_LEN];
    bhs[5..8].copy_from_slice(&[0x00, 0x20, 0x01]); // 8193 bytes announced, none sent
    assert_eq!(decode(&bhs, Digests::default(), 8192), Err(CodecError::DataTooLong { len: 8193, limit: 8192 }));
}

#[test]
fn data_digest_mismatch_is_caught_and_absent_without_data() {
    let d = Digests { header: false, data: true };
    let f = Frame { bhs: [0; BHS_LEN], ahs: Vec::new(), data: b"abcde".to_vec() };
    let mut wire = Vec::new();
    encode(&f, d, &mut wire);
    assert_eq!(wire.len(), 48 + 8 + 4);
    let last = wire.len() - 1;
    wire[last] ^= 0xFF;
    assert!(matches!(decode(&wire, d, 8192), Err(CodecError::DataDigest { .. })));
    let mut empty = Vec::new();
    encode(&Frame { data: Vec::new(), ..f }, d, &mut empty);
    assert_eq!(empty.len(), 48);
}

#[test]
fn malformed_pdus_are_errors_not_panics() {
    // An unknown opcode, a bad extended-CDB AHS, a Reject without the rejected header.
    let mut unknown = [0u8; BHS_LEN];
    unknown[0] = 0x1C;
    assert_eq!(
        Pdu::from_frame(Frame { bhs: unknown, ahs: vec![], data: vec![] }),
        Err(CodecError::UnknownOpcode(0x1C))
    );
    let mut cmd = [0u8; BHS_LEN];
    cmd[0] = 0x01;
    let ahs = vec![0x01, 0x00, 0x01, 0x00];
    assert!(Pdu::from_frame(Frame { bhs: cmd, ahs, data: vec![] }).is_err());
    let mut rej = [0u8; BHS_LEN];
    rej[0] = 0x3F;
    assert!(Pdu::from_frame(Frame { bhs: rej, ahs: vec![], data: vec![1, 2, 3] }).is_err());
}
