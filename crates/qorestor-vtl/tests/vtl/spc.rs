//! SPC: commands every logical unit answers.

use super::cdbs::*;
use super::Lib;

const CAP: u64 = 100_000_000_000;

#[test]
fn power_on_unit_attention_comes_first_except_for_inquiry() {
    let l = Lib::small(CAP);
    // INQUIRY and REPORT LUNS pass a pending unit attention.
    l.ok(0, &inquiry(false, 0, 96), &[]);
    l.ok(1, &report_luns(64), &[]);
    l.check(0, &tur(), &[], (6, 0x29, 0));
    l.ok(0, &tur(), &[]);
    // REQUEST SENSE reports (and clears) it, with GOOD status.
    let s = l.ok(1, &request_sense(18), &[]);
    assert_eq!((s[0], s[2] & 0x0F, s[12], s[13]), (0x70, 6, 0x29, 0));
    // Then an empty drive's REQUEST SENSE says medium not present.
    let s = l.ok(1, &request_sense(18), &[]);
    assert_eq!((s[2] & 0x0F, s[12], s[13]), (2, 0x3A, 0));
    assert_eq!(l.ok(1, &request_sense(8), &[]).len(), 8);
    // The other drive still has its own attention, reported even before a bad CDB's error.
    l.check(2, &[0xFF, 0, 0, 0, 0, 0], &[], (6, 0x29, 0));
    l.check(2, &[0xFF, 0, 0, 0, 0, 0], &[], (5, 0x20, 0));
    // A bad INQUIRY does not consume the changer's attention.
    l.vtl().export("QS0003L5").unwrap();
    l.check(0, &inquiry(false, 1, 96), &[], (5, 0x24, 0));
    l.check(0, &tur(), &[], (6, 0x28, 1));
}

#[test]
fn inquiry_standard_and_vpd_pages() {
    let l = Lib::small(CAP);
    let c = l.ok(0, &inquiry(false, 0, 255), &[]);
    assert_eq!(c.len(), 96);
    assert_eq!((c[0], c[1], c[4] as usize), (0x08, 0x80, c.len() - 5));
    assert_eq!(&c[8..16], b"STK     ");
    assert_eq!(&c[16..32], b"L700            ");
    let d = l.ok(1, &inquiry(false, 0, 255), &[]);
    assert_eq!((d[0], d[1]), (0x01, 0x80));
    assert_eq!(&d[8..16], b"IBM     ");
    assert_eq!(&d[16..32], b"ULT3580-TD5     ");
    assert_eq!(l.ok(1, &inquiry(false, 0, 36), &[]).len(), 36);
    // VPD 00: the supported pages.
    assert_eq!(l.ok(1, &inquiry(true, 0x00, 255), &[]), vec![0x01, 0x00, 0, 3, 0x00, 0x80, 0x83]);
    // VPD 80: the drive's serial number, as `info` reports it.
    let serial = l.vtl().info().unwrap().drives[0].serial.clone();
    let p = l.ok(1, &inquiry(true, 0x80, 255), &[]);
    assert_eq!(&p[4..], serial.as_bytes());
    assert_eq!(p[3] as usize, serial.len());
    // VPD 83: a T10 vendor ID designator (vendor, product, serial) and an NAA one.
    let p = l.ok(1, &inquiry(true, 0x83, 255), &[]);
    assert_eq!(u16::from_be_bytes([p[2], p[3]]) as usize, p.len() - 4);
    assert_eq!(&p[4..8], &[0x02, 0x01, 0x00, (24 + serial.len()) as u8]);
    assert!(p[8..].starts_with(b"IBM     ULT3580-TD5     "));
    let naa = 8 + 24 + serial.len();
    assert_eq!(&p[naa..naa + 4], &[0x01, 0x03, 0x00, 16]);
    assert_eq!(p[naa + 4] >> 4, 6);
    assert!(p[naa + 5..naa + 20].iter().all(|b| b.is_ascii_graphic()), "NAA printable as text");
    // The changer's serial differs from the drives'.
    let cs = l.ok(0, &inquiry(true, 0x80, 255), &[]);
    assert_eq!(&cs[4..], l.vtl().info().unwrap().library.serial.as_bytes());
    // An unknown page, a page without EVPD: INVALID FIELD IN CDB with the field pointer.
    let r = l.check(1, &inquiry(true, 0xB0, 255), &[], (5, 0x24, 0));
    assert_eq!(&r.sense[15..18], &[0xC0, 0, 2]);
    l.check(1, &inquiry(false, 0x80, 255), &[], (5, 0x24, 0));
}

#[test]
fn unknown_luns() {
    let l = Lib::small(CAP);
    let d = l.ok(7, &inquiry(false, 0, 255), &[]);
    assert_eq!(d[0], 0x7F);
    l.check(7, &tur(), &[], (5, 0x25, 0));
    // REPORT LUNS from anywhere: changer and two drives.
    let d = l.ok(7, &report_luns(1024), &[]);
    assert_eq!(u32::from_be_bytes(d[0..4].try_into().unwrap()), 24);
    assert_eq!(d.len(), 32);
    for (i, e) in d[8..].chunks(8).enumerate() {
        assert_eq!(e, &[0, i as u8, 0, 0, 0, 0, 0, 0]);
    }
    assert_eq!(l.ok(0, &report_luns(16), &[]).len(), 16);
}

#[test]
fn unknown_opcodes_and_bad_fields() {
    let l = Lib::small(CAP);
    l.settle(0);
    l.settle(1);
    let r = l.check(0, &[0xFF, 0, 0, 0, 0, 0], &[], (5, 0x20, 0));
    assert_eq!(r.data_in, Vec::<u8>::new());
    // A drive command on the changer.
    l.check(0, &write6(false, 1), &[0], (5, 0x20, 0));
    // MODE SELECT without PF.
    l.check(1, &[0x15, 0, 0, 0, 0, 0], &[], (5, 0x24, 0));
    // A truncated CDB.
    l.check(1, &[0x08, 0, 0], &[], (5, 0x24, 0));
}

#[test]
fn report_supported_operation_codes() {
    let l = Lib::small(CAP);
    l.settle(0);
    l.settle(1);
    let d = l.ok(1, &rsoc(0, 0, 0, 4096), &[]);
    let n = u32::from_be_bytes(d[0..4].try_into().unwrap()) as usize;
    assert_eq!(n, d.len() - 4);
    let ops: Vec<u8> = d[4..].chunks(8).map(|e| e[0]).collect();
    for op in [0x00, 0x08, 0x0A, 0x10, 0x11, 0x12, 0x34, 0x91, 0x92, 0xA3] {
        assert!(ops.contains(&op), "{op:#x}");
    }
    assert!(!ops.contains(&0xB8));
    // One command: READ(6) supported on a drive (support 3, CDB usage map of 6 bytes).
    let d = l.ok(1, &rsoc(1, 0x08, 0, 64), &[]);
    assert_eq!(&d[..4], &[0, 3, 0, 6]);
    assert_eq!(d[4], 0x08);
    // Not on the changer (support 1).
    assert_eq!(&l.ok(0, &rsoc(1, 0x08, 0, 64), &[])[..2], &[0, 1]);
    assert_eq!(&l.ok(0, &rsoc(1, 0xB8, 0, 64), &[])[..2], &[0, 3]);
    // READ POSITION has service actions: ask with one.
    assert_eq!(&l.ok(1, &rsoc(2, 0x34, 6, 64), &[])[..2], &[0, 3]);
    l.check(1, &rsoc(1, 0x34, 0, 64), &[], (5, 0x24, 0));
}

#[test]
fn log_sense_pages() {
    let l = Lib::small(CAP);
    l.settle(0);
    l.settle(1);
    for lun in [0, 1] {
        assert_eq!(l.ok(lun, &log_sense(0x00, 255), &[]), vec![0x00, 0, 0, 2, 0x00, 0x2E]);
        let t = l.ok(lun, &log_sense(0x2E, 1024), &[]);
        assert_eq!(t[0], 0x2E);
        assert_eq!(u16::from_be_bytes([t[2], t[3]]), 320);
        assert_eq!(&t[4..9], &[0, 1, 3, 1, 0]);
        assert_eq!(&t[t.len() - 5..], &[0, 64, 3, 1, 0]);
        l.check(lun, &log_sense(0x33, 255), &[], (5, 0x24, 0));
    }
}

#[test]
fn reserve_release_and_prevent_allow() {
    let l = Lib::small(CAP).loaded("QS0001L5");
    for lun in [0, 1] {
        l.ok(lun, &reserve6(), &[]);
        l.ok(lun, &release6(), &[]);
    }
    // PREVENT on the drive: the robot may not take the cartridge out.
    l.ok(1, &prevent(true), &[]);
    l.check(0, &move_medium(0, 500, 1003), &[], (5, 0x53, 0x02));
    l.ok(1, &prevent(false), &[]);
    l.ok(0, &move_medium(0, 500, 1003), &[]);
    // PREVENT on the changer: the operator may not open the mail slot.
    l.ok(0, &prevent(true), &[]);
    assert_eq!(l.vtl().export("QS0002L5").unwrap_err().kind(), qorestor_vtl::ErrorKind::Conflict);
    l.ok(0, &prevent(false), &[]);
    l.vtl().export("QS0002L5").unwrap();
}
