//! SMC: the medium changer.

use super::cdbs::*;
use super::Lib;

const CAP: u64 = 100_000_000_000;

/// Parses READ ELEMENT STATUS data into (type, address, full, barcode, source) per element.
fn elements(d: &[u8]) -> Vec<(u8, u16, bool, String, Option<u16>)> {
    let total = u32::from_be_bytes([0, d[5], d[6], d[7]]) as usize;
    assert_eq!(total, d.len() - 8, "byte count of report available");
    let mut out = Vec::new();
    let mut at = 8;
    while at < d.len() {
        let t = d[at];
        let voltag = d[at + 1] & 0x80 != 0;
        let dl = u16::from_be_bytes([d[at + 2], d[at + 3]]) as usize;
        let bytes = u32::from_be_bytes([0, d[at + 5], d[at + 6], d[at + 7]]) as usize;
        assert_eq!(bytes % dl, 0);
        for e in d[at + 8..at + 8 + bytes].chunks(dl) {
            let addr = u16::from_be_bytes([e[0], e[1]]);
            let tag = if voltag {
                String::from_utf8_lossy(&e[12..44]).trim_end_matches([' ', '\0']).to_string()
            } else {
                String::new()
            };
            let src = (e[9] & 0x80 != 0).then(|| u16::from_be_bytes([e[10], e[11]]));
            out.push((t, addr, e[2] & 1 != 0, tag, src));
        }
        at += 8 + bytes;
    }
    out
}

#[test]
fn read_element_status_all_types_with_barcodes() {
    let l = Lib::small(CAP);
    l.settle(0);
    let d = l.ok(0, &read_element_status(true, 0, 0, 0xFFFF, false, 65535), &[]);
    assert_eq!(u16::from_be_bytes([d[2], d[3]]), 1 + 2 + 2 + 4);
    let e = elements(&d);
    let order: Vec<(u8, u16)> = e.iter().map(|x| (x.0, x.1)).collect();
    assert_eq!(order, vec![(1, 1), (3, 10), (3, 11), (4, 500), (4, 501), (2, 1000), (2, 1001), (2, 1002), (2, 1003)]);
    let full: Vec<&str> = e.iter().filter(|x| x.2).map(|x| x.3.as_str()).collect();
    assert_eq!(full, vec!["QS0001L5", "QS0002L5", "QS0003L5"]);
    // One type, from an address, a count.
    let d = l.ok(0, &read_element_status(false, 2, 1001, 2, false, 65535), &[]);
    let e = elements(&d);
    assert_eq!(e.iter().map(|x| x.1).collect::<Vec<_>>(), vec![1001, 1002]);
    assert_eq!(u16::from_be_bytes([d[0], d[1]]), 1001);
    // The allocation length cuts the data but not the byte count in the header.
    let full = l.ok(0, &read_element_status(true, 0, 0, 0xFFFF, false, 65535), &[]);
    let cut = l.ok(0, &read_element_status(true, 0, 0, 0xFFFF, false, 40), &[]);
    assert_eq!(cut, &full[..40]);
    // Nothing of that type at or above the start: INVALID ELEMENT ADDRESS.
    l.check(0, &read_element_status(false, 4, 502, 1, false, 1024), &[], (5, 0x21, 1));
    l.check(0, &read_element_status(false, 0, 5000, 1, false, 1024), &[], (5, 0x21, 1));
}

#[test]
fn dvcid_reports_drive_serials() {
    let l = Lib::small(CAP);
    l.settle(0);
    let d = l.ok(0, &read_element_status(true, 4, 0, 10, true, 65535), &[]);
    let dl = u16::from_be_bytes([d[10], d[11]]) as usize;
    assert_eq!(dl, 12 + 36 + 4 + 34);
    let serial = l.vtl().info().unwrap().drives[1].serial.clone();
    let second = &d[16 + dl..16 + 2 * dl];
    assert_eq!(&second[48..52], &[0x02, 0x01, 0x00, 34]);
    assert!(second[52..].starts_with(b"IBM     ULT3580-TD5     "));
    assert_eq!(String::from_utf8_lossy(&second[76..86]).trim_end(), serial);
}

#[test]
fn move_medium_and_its_errors() {
    let l = Lib::small(CAP);
    l.settle(0);
    l.settle(1);
    // Slot 1000 -> drive 500 (transport 0 = default); the drive sees a medium change.
    l.ok(0, &move_medium(0, 1000, 500), &[]);
    l.check(1, &tur(), &[], (6, 0x28, 0));
    l.ok(1, &tur(), &[]);
    let e = elements(&l.ok(0, &read_element_status(true, 4, 500, 1, false, 1024), &[]));
    assert_eq!((e[0].2, e[0].3.as_str(), e[0].4), (true, "QS0001L5", Some(1000)));
    // Errors: empty source, full destination, bad addresses, bad transport.
    l.check(0, &move_medium(0, 1003, 1002), &[], (5, 0x3B, 0x0E));
    l.check(0, &move_medium(0, 1001, 1002), &[], (5, 0x3B, 0x0D));
    l.check(0, &move_medium(0, 999, 1003), &[], (5, 0x21, 1));
    l.check(0, &move_medium(0, 1001, 2000), &[], (5, 0x21, 1));
    l.check(0, &move_medium(7, 1001, 1003), &[], (5, 0x21, 1));
    // Drive -> import/export slot with the real transport address, then back to a slot.
    l.ok(0, &move_medium(1, 500, 10), &[]);
    l.check(1, &tur(), &[], (2, 0x3A, 0));
    l.ok(0, &move_medium(0, 10, 1003), &[]);
    // Same source and destination: nothing to do.
    l.ok(0, &move_medium(0, 1003, 1003), &[]);
    let info = l.vtl().info().unwrap();
    let c = info.cartridges.iter().find(|c| c.barcode == "QS0001L5").unwrap();
    assert_eq!((c.location.kind, c.location.element_address), ("slot", Some(1003)));
}

#[test]
fn initialize_and_position_to_element() {
    let l = Lib::small(CAP);
    l.settle(0);
    l.ok(0, &init_element_status(), &[]);
    l.ok(0, &init_element_status_range(true, 1000, 4), &[]);
    l.ok(0, &init_element_status_range(false, 0, 0), &[]);
    l.check(0, &init_element_status_range(true, 3000, 1), &[], (5, 0x21, 1));
    l.ok(0, &position_to_element(0, 500), &[]);
    l.ok(0, &position_to_element(1, 1003), &[]);
    l.check(0, &position_to_element(0, 4000), &[], (5, 0x21, 1));
    l.check(0, &position_to_element(2, 1000), &[], (5, 0x21, 1));
}

#[test]
fn changer_mode_pages() {
    let l = Lib::small(CAP);
    l.settle(0);
    let d = l.ok(0, &mode_sense6(true, 0, 0x1D, 255), &[]);
    assert_eq!(d[3], 0, "no block descriptor");
    let p = &d[4..];
    assert_eq!(&p[..2], &[0x1D, 0x12]);
    let words: Vec<u16> = p[2..18].chunks(2).map(|w| u16::from_be_bytes([w[0], w[1]])).collect();
    assert_eq!(words, vec![1, 1, 1000, 4, 10, 2, 500, 2]);
    let d = l.ok(0, &mode_sense10(true, 0, 0x1E, 255), &[]);
    assert_eq!(&d[8..], &[0x1E, 0x02, 0, 0]);
    let d = l.ok(0, &mode_sense6(true, 0, 0x1F, 255), &[]);
    assert_eq!(&d[4..8], &[0x1F, 0x12, 0x0E, 0]);
    assert_eq!(&d[8..12], &[0x0E; 4]);
    let all = l.ok(0, &mode_sense6(true, 0, 0x3F, 255), &[]);
    assert_eq!(all.len(), 4 + 20 + 4 + 20);
    l.check(0, &mode_sense6(true, 0, 0x10, 255), &[], (5, 0x24, 0));
    // MODE SELECT with the changer's own page is accepted, a block descriptor is not.
    let mut list = vec![0u8; 4];
    list.extend_from_slice(&all[4..24]);
    l.ok(0, &mode_select6(list.len() as u8), &list);
    let bd = [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 2, 0];
    l.check(0, &mode_select6(12), &bd, (5, 0x26, 0));
}

#[test]
fn operator_access_to_the_mail_slot_is_a_changer_attention() {
    let l = Lib::small(CAP);
    l.settle(0);
    l.vtl().export("QS0003L5").unwrap();
    l.check(0, &tur(), &[], (6, 0x28, 1));
    assert_eq!(l.vtl().import("QS0003L5").unwrap(), 10);
    l.check(0, &tur(), &[], (6, 0x28, 1));
    let e = elements(&l.ok(0, &read_element_status(true, 3, 0, 4, false, 1024), &[]));
    assert_eq!((e[0].2, e[0].3.as_str()), (true, "QS0003L5"));
    // The import/export flags: ACCESS, INENAB, EXENAB, IMPEXP (placed by the operator).
    let d = l.ok(0, &read_element_status(false, 3, 10, 1, false, 1024), &[]);
    assert_eq!(d[16 + 2], 0x01 | 0x02 | 0x08 | 0x30);
}
