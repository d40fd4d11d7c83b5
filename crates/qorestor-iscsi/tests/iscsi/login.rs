//! Login: discovery, normal sessions, CHAP one-way and mutual, failures, negotiation.

use qorestor_iscsi::chap::{self, ChapConfig, Credential};
use qorestor_iscsi::pdu::{stage, Pdu, RESERVED_TAG};
use qorestor_iscsi::text::{self, Pairs};

use crate::{login, login_reply, portal, Pair, ENTROPY, TARGET};

fn chap_config(mutual: bool, discovery_auth: bool) -> ChapConfig {
    ChapConfig {
        initiator: Credential { user: "alice".into(), secret: "initiator-secret".into() },
        mutual: mutual.then(|| Credential { user: "tgt".into(), secret: "target-secret".into() }),
        discovery_auth,
    }
}

fn discovery_login(pair: &mut Pair) -> Vec<Pdu> {
    pair.send(&login(
        stage::SECURITY,
        stage::FULL_FEATURE,
        true,
        &[("InitiatorName", "iqn.test:i"), ("SessionType", "Discovery"), ("AuthMethod", "None")],
    ))
}

#[test]
fn discovery_session_lists_every_target_without_authentication() {
    let (p, _) = portal(Some(chap_config(false, false)));
    let mut pair = Pair::new(p);
    let r = discovery_login(&mut pair);
    let (keys, st, transit, _) = login_reply(&r[0]);
    assert_eq!((st, transit), ((0, 0), true));
    assert_eq!(keys.get("AuthMethod"), Some("None"));
    // Declared on the way to full feature phase, and a discovery session keeps the login's
    // 8 KiB (it stays within the pre-authentication budget); no TargetPortalGroupTag.
    assert_eq!(keys.get("MaxRecvDataSegmentLength"), Some("8192"));
    assert_eq!(keys.get("TargetPortalGroupTag"), None);
    let text = Pdu::Text {
        immediate: true,
        final_: true,
        cont: false,
        lun: 0,
        itt: 9,
        ttt: RESERVED_TAG,
        cmd_sn: 1,
        exp_stat_sn: 1,
        data: b"SendTargets=All\0".to_vec(),
    };
    let r = pair.send(&text);
    let Pdu::TextResponse { final_: true, itt: 9, data, .. } = &r[0] else { panic!("{r:?}") };
    let keys = text::parse(data).unwrap();
    assert_eq!(keys.get("TargetName"), Some(TARGET));
    assert_eq!(keys.get("TargetAddress"), Some("127.0.0.1:3260,1"));
    // SCSI commands have no place in a discovery session.
    let c = crate::command(&mut pair, 2, &[0; 6], false, false, 0, Vec::new());
    let r = pair.send(&c);
    assert!(matches!(r[0], Pdu::Reject { reason: 0x05, .. }), "{r:?}");
}

#[test]
fn normal_login_negotiates_and_reports_the_portal_group() {
    let (p, _) = portal(None);
    let mut pair = Pair::new(p);
    let r = pair.send(&login(
        stage::SECURITY,
        stage::OPERATIONAL,
        true,
        &[("InitiatorName", "iqn.test:i"), ("TargetName", TARGET), ("AuthMethod", "CHAP,None")],
    ));
    let (keys, st, transit, tsih) = login_reply(&r[0]);
    assert_eq!((st, transit, tsih), ((0, 0), true, 0));
    assert_eq!(keys.get("AuthMethod"), Some("None"));
    assert_eq!(keys.get("TargetPortalGroupTag"), Some("1"));
    assert_eq!(keys.get("TargetAlias"), Some("lib1"));
    let r = pair.send(&login(
        stage::OPERATIONAL,
        stage::FULL_FEATURE,
        true,
        &[
            ("HeaderDigest", "CRC32C,None"),
            ("DataDigest", "CRC32C"),
            ("MaxRecvDataSegmentLength", "65536"),
            ("MaxBurstLength", "1048576"),
            ("FirstBurstLength", "131072"),
            ("ImmediateData", "Yes"),
            ("InitialR2T", "No"),
            ("MaxOutstandingR2T", "4"),
            ("ErrorRecoveryLevel", "1"),
            ("MaxConnections", "4"),
            ("DefaultTime2Retain", "20"),
            ("X-org.example.Custom", "1"),
        ],
    ));
    let (keys, st, transit, tsih) = login_reply(&r[0]);
    assert_eq!((st, transit), ((0, 0), true));
    assert_ne!(tsih, 0);
    for (k, v) in [
        ("HeaderDigest", "CRC32C"),
        ("DataDigest", "CRC32C"),
        ("MaxRecvDataSegmentLength", "262144"),
        ("MaxBurstLength", "1048576"),
        ("FirstBurstLength", "131072"),
        ("InitialR2T", "No"),
        ("MaxOutstandingR2T", "1"),
        ("ErrorRecoveryLevel", "0"),
        ("MaxConnections", "1"),
        ("DefaultTime2Retain", "0"),
        ("X-org.example.Custom", "NotUnderstood"),
    ] {
        assert_eq!(keys.get(k), Some(v), "{k}");
    }
    // Digests apply from the next PDU on (Pair checks them through the codec).
    let f = pair.framing();
    assert!(f.digests.header && f.digests.data);
    let est = pair.conn.session().unwrap().established();
    assert_eq!((est.params.max_send_data_segment, est.initiator.as_str()), (65536, "iqn.test:i"));
    let r = pair.send(&crate::ping(5, 1));
    assert!(matches!(&r[0], Pdu::NopIn { itt: 5, data, .. } if data == b"ping"));
}

fn chap_login(pair: &mut Pair, secret: &str, mutual: Option<(u8, Vec<u8>)>) -> Vec<Pdu> {
    let r = pair.send(&login(
        stage::SECURITY,
        stage::OPERATIONAL,
        true,
        &[("InitiatorName", "iqn.test:i"), ("TargetName", TARGET), ("AuthMethod", "CHAP,None")],
    ));
    let (keys, st, transit, _) = login_reply(&r[0]);
    assert_eq!((keys.get("AuthMethod"), st, transit), (Some("CHAP"), (0, 0), false));
    let r = pair.send(&login(stage::SECURITY, stage::OPERATIONAL, false, &[("CHAP_A", "7,5")]));
    let (keys, _, transit, _) = login_reply(&r[0]);
    assert!(!transit);
    assert_eq!(keys.get("CHAP_A"), Some("5"));
    let id: u8 = keys.get("CHAP_I").unwrap().parse().unwrap();
    let challenge = text::binary(keys.get("CHAP_C").unwrap(), 1024).unwrap();
    assert_eq!((id, &challenge[..]), (ENTROPY[0], &ENTROPY[1..]));
    let answer = text::hex(&chap::response(id, secret.as_bytes(), &challenge));
    let mut k = vec![("CHAP_N", "alice".to_string()), ("CHAP_R", answer)];
    if let Some((i, c)) = mutual {
        k.push(("CHAP_I", i.to_string()));
        k.push(("CHAP_C", text::hex(&c)));
    }
    let keys: Vec<(&str, &str)> = k.iter().map(|(a, b)| (*a, b.as_str())).collect();
    pair.send(&login(stage::SECURITY, stage::OPERATIONAL, true, &keys))
}

#[test]
fn chap_one_way_accepts_the_right_secret_and_refuses_a_wrong_one() {
    let (p, _) = portal(Some(chap_config(false, false)));
    let mut pair = Pair::new(p.clone());
    let r = chap_login(&mut pair, "initiator-secret", None);
    let (keys, st, transit, _) = login_reply(&r[0]);
    assert_eq!((st, transit, keys.is_empty()), ((0, 0), true, true));
    let r = pair.send(&login(stage::OPERATIONAL, stage::FULL_FEATURE, true, &[]));
    assert_eq!(login_reply(&r[0]).1, (0, 0));
    assert!(!pair.closed);

    let mut bad = Pair::new(p.clone());
    let r = chap_login(&mut bad, "wrong-secret", None);
    assert_eq!(login_reply(&r[0]).1, (2, 1));
    assert!(bad.closed);

    // Skipping security, or offering only None, fails when CHAP is required.
    let mut skip = Pair::new(p.clone());
    let r = skip.send(&login(
        stage::OPERATIONAL,
        stage::FULL_FEATURE,
        true,
        &[("InitiatorName", "iqn.test:i"), ("TargetName", TARGET)],
    ));
    assert_eq!(login_reply(&r[0]).1, (2, 1));
    let mut none = Pair::new(p);
    let r = none.send(&login(
        stage::SECURITY,
        stage::OPERATIONAL,
        true,
        &[("InitiatorName", "iqn.test:i"), ("TargetName", TARGET), ("AuthMethod", "None")],
    ));
    assert_eq!(login_reply(&r[0]).1, (2, 1));
}

#[test]
fn mutual_chap_answers_the_initiators_challenge() {
    let (p, _) = portal(Some(chap_config(true, false)));
    let mut pair = Pair::new(p.clone());
    let challenge = vec![9u8; 16];
    let r = chap_login(&mut pair, "initiator-secret", Some((33, challenge.clone())));
    let (keys, st, transit, _) = login_reply(&r[0]);
    assert_eq!((st, transit), ((0, 0), true));
    assert_eq!(keys.get("CHAP_N"), Some("tgt"));
    assert_eq!(keys.get("CHAP_R"), Some(text::hex(&chap::response(33, b"target-secret", &challenge)).as_str()));
    // A challenge reflected back to the target is refused.
    let mut refl = Pair::new(p);
    let r = chap_login(&mut refl, "initiator-secret", Some((7, ENTROPY[1..].to_vec())));
    assert_eq!(login_reply(&r[0]).1, (2, 1));
    // Without mutual credentials configured, a mutual request fails.
    let (p, _) = portal(Some(chap_config(false, false)));
    let mut no = Pair::new(p);
    let r = chap_login(&mut no, "initiator-secret", Some((1, vec![1; 16])));
    assert_eq!(login_reply(&r[0]).1, (2, 1));
}

#[test]
fn discovery_auth_requires_chap_for_discovery() {
    let (p, _) = portal(Some(chap_config(false, true)));
    let mut pair = Pair::new(p);
    let r = discovery_login(&mut pair);
    assert_eq!(login_reply(&r[0]).1, (2, 1));
}

#[test]
fn login_failures_name_the_status() {
    let (p, _) = portal(None);
    type Keys<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Keys, (u8, u8)); 3] = [
        (&[("TargetName", TARGET)], (2, 7)),
        (&[("InitiatorName", "iqn.test:i")], (2, 7)),
        (&[("InitiatorName", "iqn.test:i"), ("TargetName", "iqn.nope:x")], (2, 3)),
    ];
    for (keys, want) in cases {
        let mut pair = Pair::new(p.clone());
        let r = pair.send(&login(stage::SECURITY, stage::OPERATIONAL, true, keys));
        assert_eq!(login_reply(&r[0]).1, want, "{keys:?}");
        assert!(pair.closed);
    }
    // A PDU that is not a login, before login ends, fails it.
    let mut pair = Pair::new(p.clone());
    let r = pair.send(&crate::ping(1, 1));
    assert_eq!(login_reply(&r[0]).1, (2, 0));
    // Login text split over PDUs with the C bit is put together.
    let mut pair = Pair::new(p.clone());
    let whole = text::format(&Pairs(vec![
        ("InitiatorName".into(), "iqn.test:i".into()),
        ("TargetName".into(), TARGET.into()),
        ("AuthMethod".into(), "None".into()),
    ]));
    let (a, b) = whole.split_at(10);
    let mut first = login(stage::SECURITY, stage::OPERATIONAL, false, &[]);
    if let Pdu::Login { head, data, .. } = &mut first {
        head.cont = true;
        *data = a.to_vec();
    }
    let r = pair.send(&first);
    assert_eq!(login_reply(&r[0]), (Pairs::default(), (0, 0), false, 0));
    let mut second = login(stage::SECURITY, stage::OPERATIONAL, true, &[]);
    if let Pdu::Login { data, .. } = &mut second {
        *data = b.to_vec();
    }
    let r = pair.send(&second);
    assert_eq!(login_reply(&r[0]).0.get("AuthMethod"), Some("None"));
    // The login timeout drops a connection that never finishes.
    let mut slow = Pair::new(p);
    slow.wait(std::time::Duration::from_secs(6));
    assert!(slow.closed);
}
