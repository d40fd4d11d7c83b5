//! SSC: tape drive commands.

use super::cdbs::*;
use super::{bytes, Lib};

const CAP: u64 = 100_000_000_000;

fn pos(l: &Lib) -> u32 {
    let d = l.ok(1, &read_position(0), &[]);
    u32::from_be_bytes([d[4], d[5], d[6], d[7]])
}

/// Writes blocks (variable) of the given lengths; 0 is a filemark.
fn lay(l: &Lib, objects: &[u32]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (i, &n) in objects.iter().enumerate() {
        if n == 0 {
            l.ok(1, &write_filemarks(1, false), &[]);
        } else {
            let b = bytes(i as u64 + 1, n as usize);
            l.ok(1, &write6(false, n), &b);
            out.push(b);
        }
    }
    out
}

#[test]
fn empty_drive_is_not_ready_and_load_unload_work() {
    let l = Lib::small(CAP);
    l.settle(1);
    l.check(1, &tur(), &[], (2, 0x3A, 0));
    l.check(1, &read6(false, false, 10), &[], (2, 0x3A, 0));
    l.check(1, &load_unload(true), &[], (2, 0x3A, 0));
    let l = l.loaded("QS0001L5");
    l.ok(1, &tur(), &[]);
    l.ok(1, &load_unload(false), &[]);
    l.check(1, &tur(), &[], (2, 0x3A, 0));
    l.ok(1, &load_unload(true), &[]);
    l.ok(1, &tur(), &[]);
}

#[test]
fn variable_blocks_filemarks_and_blank_check() {
    let l = Lib::small(CAP).loaded("QS0001L5");
    let data = lay(&l, &[1000, 2000, 0, 500]);
    assert_eq!(pos(&l), 4);
    l.ok(1, &rewind(), &[]);
    assert_eq!(l.ok(1, &read6(false, false, 1000), &[]), data[0]);
    // Short block (asked 3000, block 2000): ILI, residue +1000, the 2000 bytes.
    let r = l.check(1, &read6(false, false, 3000), &[], (0, 0, 0));
    assert_eq!(r.sense_flags(), (false, false, true));
    assert_eq!(r.sense_info(), Some(1000));
    assert_eq!(r.data_in, data[1]);
    // Filemark: FILEMARK bit, residue = the whole request, position after it.
    let r = l.check(1, &read6(false, false, 100), &[], (0, 0, 1));
    assert_eq!(r.sense_flags(), (true, false, false));
    assert_eq!(r.sense_info(), Some(100));
    assert_eq!(pos(&l), 3);
    // Long block (asked 100 of 500): ILI, negative residue, 100 bytes.
    let r = l.check(1, &read6(false, false, 100), &[], (0, 0, 0));
    assert_eq!(r.sense_info(), Some(-400));
    assert_eq!(r.data_in, &data[2][..100]);
    // End of data: BLANK CHECK 8/00/05.
    let r = l.check(1, &read6(false, false, 100), &[], (8, 0, 5));
    assert_eq!(r.sense_info(), Some(100));
    assert_eq!(pos(&l), 4);
}

#[test]
fn sili_suppresses_short_block_ili_only() {
    let l = Lib::small(CAP).loaded("QS0001L5");
    let data = lay(&l, &[300, 300]);
    l.ok(1, &rewind(), &[]);
    assert_eq!(l.ok(1, &read6(false, true, 1000), &[]), data[0]);
    let r = l.check(1, &read6(false, true, 200), &[], (0, 0, 0));
    assert!(r.sense_flags().2);
    assert_eq!(r.sense_info(), Some(-100));
    // Zero-length reads and writes do nothing.
    l.ok(1, &read6(false, false, 0), &[]);
    l.ok(1, &write6(false, 0), &[]);
    // A data-out of the wrong length is refused.
    l.check(1, &write6(false, 10), &[0; 9], (5, 0x1A, 0));
}

#[test]
fn fixed_block_mode() {
    let l = Lib::small(CAP).loaded("QS0001L5");
    // Fixed mode needs a block length.
    l.check(1, &write6(true, 1), &[0; 512], (5, 0x24, 0));
    // MODE SELECT(6) with a block descriptor: block length 512.
    let list = [0, 0, 0x10, 8, 0, 0, 0, 0, 0, 0, 0x02, 0x00];
    l.ok(1, &mode_select6(12), &list);
    let ms = l.ok(1, &mode_sense6(false, 0, 0x10, 255), &[]);
    assert_eq!(&ms[4 + 5..4 + 8], &[0, 2, 0]);
    // Page 0 (no page format): just the header and the block descriptor.
    let ms = l.ok(1, &mode_sense6(false, 0, 0x00, 12), &[]);
    assert_eq!((ms.len(), ms[0], ms[3]), (12, 11, 8));
    assert_eq!(&ms[4 + 5..4 + 8], &[0, 2, 0]);
    let d = bytes(7, 512 * 3);
    l.ok(1, &write6(true, 3), &d);
    l.ok(1, &write_filemarks(1, false), &[]);
    l.ok(1, &write6(false, 100), &bytes(8, 100));
    l.ok(1, &rewind(), &[]);
    assert_eq!(l.ok(1, &read6(true, false, 2), &[]), &d[..1024]);
    // Asking 3 with 1 left before the filemark: 1 block, FILEMARK, residue 2.
    let r = l.check(1, &read6(true, false, 3), &[], (0, 0, 1));
    assert_eq!(r.sense_info(), Some(2));
    assert_eq!(r.data_in, &d[1024..]);
    // A 100-byte block in 512-byte mode: ILI, residue 1, no data.
    let r = l.check(1, &read6(true, false, 1), &[], (0, 0, 0));
    assert!(r.sense_flags().2);
    assert_eq!(r.sense_info(), Some(1));
    let r = l.check(1, &read6(true, false, 4), &[], (8, 0, 5));
    assert_eq!(r.sense_info(), Some(4));
    // FIXED and SILI together are refused.
    l.check(1, &read6(true, true, 1), &[], (5, 0x24, 0));
}

#[test]
fn space_forms_and_residues() {
    let l = Lib::small(CAP).loaded("QS0001L5");
    // Objects: b b b FM b b FM FM b
    lay(&l, &[10, 10, 10, 0, 10, 10, 0, 0, 10]);
    l.ok(1, &rewind(), &[]);
    l.ok(1, &space6(0, 2), &[]);
    assert_eq!(pos(&l), 2);
    // 3 blocks forward, 1 before the filemark: stop after it, residue 2.
    let r = l.check(1, &space6(0, 3), &[], (0, 0, 1));
    assert_eq!((r.sense_flags().0, r.sense_info()), (true, Some(2)));
    assert_eq!(pos(&l), 4);
    // Backward over blocks into a filemark: BOP side of it, negative residue.
    l.ok(1, &space6(0, 2), &[]);
    let r = l.check(1, &space6(0, -3), &[], (0, 0, 1));
    assert_eq!(r.sense_info(), Some(-1));
    assert_eq!(pos(&l), 3);
    // Filemarks forward.
    l.ok(1, &rewind(), &[]);
    l.ok(1, &space6(1, 2), &[]);
    assert_eq!(pos(&l), 7);
    l.ok(1, &space16(1, 1), &[]);
    assert_eq!(pos(&l), 8);
    // Past the last filemark: BLANK CHECK at end of data, residue.
    let r = l.check(1, &space6(1, 3), &[], (8, 0, 5));
    assert_eq!(r.sense_info(), Some(3));
    assert_eq!(pos(&l), 9);
    // Filemarks backward: BOP side of the filemark.
    l.ok(1, &space6(1, -2), &[]);
    assert_eq!(pos(&l), 6);
    // Into beginning of partition: 0/00/04 with EOM.
    let r = l.check(1, &space6(1, -5), &[], (0, 0, 4));
    assert_eq!((r.sense_flags().1, r.sense_info()), (true, Some(-4)));
    assert_eq!(pos(&l), 0);
    let r = l.check(1, &space16(0, -1), &[], (0, 0, 4));
    assert_eq!(r.sense_info(), Some(-1));
    // Blocks forward to end of data.
    l.ok(1, &space6(1, 3), &[]);
    let r = l.check(1, &space6(0, 5), &[], (8, 0, 5));
    assert_eq!(r.sense_info(), Some(4));
    // End of data, and count 0 does nothing.
    l.ok(1, &rewind(), &[]);
    l.ok(1, &space6(3, 0), &[]);
    assert_eq!(pos(&l), 9);
    l.ok(1, &space6(0, 0), &[]);
    assert_eq!(pos(&l), 9);
    l.check(1, &space6(2, 1), &[], (5, 0x24, 0));
}

#[test]
fn locate_and_read_position() {
    let l = Lib::small(CAP).loaded("QS0001L5");
    let data = lay(&l, &[10, 20, 0, 30, 0, 40]);
    l.ok(1, &locate10(3), &[]);
    assert_eq!(l.ok(1, &read6(false, false, 30), &[]), data[2]);
    l.ok(1, &locate16(0, 1), &[]);
    assert_eq!(l.ok(1, &read6(false, false, 20), &[]), data[1]);
    // Logical file 2 starts after the second filemark.
    l.ok(1, &locate16(1, 2), &[]);
    assert_eq!(pos(&l), 5);
    l.ok(1, &locate16(3, 0), &[]);
    assert_eq!(pos(&l), 6);
    l.ok(1, &locate16(1, 0), &[]);
    assert_eq!(pos(&l), 0);
    // Beyond end of data: BLANK CHECK, at end of data.
    l.check(1, &locate10(7), &[], (8, 0, 5));
    assert_eq!(pos(&l), 6);
    l.check(1, &locate16(1, 3), &[], (8, 0, 5));
    // Short form: BOP flag at 0; long form: object and file numbers.
    l.ok(1, &rewind(), &[]);
    let s = l.ok(1, &read_position(0), &[]);
    assert_eq!(s.len(), 20);
    assert_eq!(s[0] & 0x80, 0x80);
    l.ok(1, &locate10(4), &[]);
    let lf = l.ok(1, &read_position(6), &[]);
    assert_eq!(lf.len(), 32);
    assert_eq!(lf[0] & 0x80, 0);
    assert_eq!(u64::from_be_bytes(lf[8..16].try_into().unwrap()), 4);
    assert_eq!(u64::from_be_bytes(lf[16..24].try_into().unwrap()), 1);
    l.ok(1, &locate10(5), &[]);
    let lf = l.ok(1, &read_position(6), &[]);
    assert_eq!(u64::from_be_bytes(lf[16..24].try_into().unwrap()), 2);
    // Extended form: first and last logical object locations.
    let x = l.ok(1, &read_position(8), &[]);
    assert_eq!(x.len(), 32);
    assert_eq!(u64::from_be_bytes(x[16..24].try_into().unwrap()), 5);
    l.check(1, &read_position(2), &[], (5, 0x24, 0));
}

#[test]
fn overwrite_in_the_middle_discards_what_follows() {
    let l = Lib::small(CAP).loaded("QS0001L5");
    let data = lay(&l, &[1000, 2000, 0, 3000]);
    l.ok(1, &rewind(), &[]);
    l.ok(1, &space6(0, 1), &[]);
    let x = bytes(99, 700);
    l.ok(1, &write6(false, 700), &x);
    l.ok(1, &rewind(), &[]);
    assert_eq!(l.ok(1, &read6(false, false, 1000), &[]), data[0]);
    assert_eq!(l.ok(1, &read6(false, false, 700), &[]), x);
    l.check(1, &read6(false, false, 10), &[], (8, 0, 5));
    // A filemark in the middle truncates too.
    l.ok(1, &locate10(1), &[]);
    l.ok(1, &write_filemarks(1, false), &[]);
    l.ok(1, &space6(3, 0), &[]);
    assert_eq!(pos(&l), 2);
    // ERASE from the start empties the tape.
    l.ok(1, &rewind(), &[]);
    l.ok(1, &erase(), &[]);
    l.check(1, &read6(false, false, 10), &[], (8, 0, 5));
    let info = l.vtl().info().unwrap();
    assert_eq!(info.cartridges.iter().find(|c| c.barcode == "QS0001L5").unwrap().used_bytes, 0);
}

#[test]
fn write_protect_and_worm() {
    let l = Lib::small(CAP).loaded("QS0001L5");
    lay(&l, &[100, 0]);
    l.vtl().set_write_protect("QS0001L5", true).unwrap();
    l.check(1, &write6(false, 4), b"data", (7, 0x27, 0));
    l.check(1, &write_filemarks(1, false), &[], (7, 0x27, 0));
    l.check(1, &erase(), &[], (7, 0x27, 0));
    // MODE SENSE reports WP in the device-specific parameter.
    assert_eq!(l.ok(1, &mode_sense6(true, 0, 0x10, 255), &[])[2] & 0x80, 0x80);
    l.vtl().set_write_protect("QS0001L5", false).unwrap();
    assert_eq!(l.ok(1, &mode_sense6(true, 0, 0x10, 255), &[])[2] & 0x80, 0);
    l.vtl().set_worm("QS0001L5", true).unwrap();
    // Appending at end of data is fine; overwriting is refused.
    l.ok(1, &write6(false, 4), b"more");
    l.ok(1, &rewind(), &[]);
    l.check(1, &write6(false, 4), b"over", (7, 0x30, 0x0C));
    l.check(1, &erase(), &[], (7, 0x30, 0x0C));
    l.check(1, &write_filemarks(1, false), &[], (7, 0x30, 0x0C));
}

#[test]
fn early_warning_and_end_of_medium() {
    // 1 MiB tape: early warning 10,485 bytes before the end.
    let l = Lib::small(1 << 20).loaded("QS0001L5");
    let block = bytes(1, 100_000);
    for _ in 0..10 {
        l.ok(1, &write6(false, 100_000), &block);
    }
    // 1,040,000 bytes: inside the early-warning zone; the write is done, EOM reported.
    let r = l.check(1, &write6(false, 40_000), &block[..40_000], (0, 0, 2));
    assert!(r.sense_flags().1);
    // Past the end: VOLUME OVERFLOW, nothing written, residue = the request.
    let r = l.check(1, &write6(false, 10_000), &block[..10_000], (0x0D, 0, 2));
    assert_eq!(r.sense_info(), Some(10_000));
    l.check(1, &write_filemarks(1, false), &[], (0, 0, 2));
    let d = l.ok(1, &read_position(0), &[]);
    assert_eq!(u32::from_be_bytes([d[4], d[5], d[6], d[7]]), 12);
}

#[test]
fn read_block_limits_and_density_support() {
    let l = Lib::small(CAP);
    l.settle(1);
    let d = l.ok(1, &read_block_limits(), &[]);
    assert_eq!(d.len(), 6);
    assert_eq!(u32::from_be_bytes([0, d[1], d[2], d[3]]), qorestor_vtl::MAX_BLOCK_LEN);
    assert_eq!(u16::from_be_bytes([d[4], d[5]]), 1);
    // All densities the drive knows: LTO-5 to 9, 52-byte descriptors.
    let d = l.ok(1, &report_density(false, 1024), &[]);
    assert_eq!(u16::from_be_bytes([d[0], d[1]]) as usize, d.len() - 2);
    assert_eq!(d.len(), 4 + 5 * 52);
    assert_eq!(d[4], 0x58);
    // MEDIA: the mounted cartridge's density only, or not ready.
    l.check(1, &report_density(true, 1024), &[], (2, 0x3A, 0));
    let l = l.loaded("QS0001L5");
    let d = l.ok(1, &report_density(true, 1024), &[]);
    assert_eq!(d.len(), 4 + 52);
    assert_eq!(&d[4..6], &[0x58, 0x58]);
    assert_eq!(l.ok(1, &report_density(false, 10), &[]).len(), 10);
}

#[test]
fn mode_pages_of_a_drive() {
    let l = Lib::small(CAP).loaded("QS0001L5");
    // MODE SENSE(6), all pages, with block descriptor.
    let d = l.ok(1, &mode_sense6(false, 0, 0x3F, 255), &[]);
    assert_eq!(d[0] as usize, d.len() - 1);
    assert_eq!(d[2] & 0x10, 0x10, "buffered mode");
    assert_eq!(d[3], 8);
    assert_eq!(d[4], 0x58, "density of the mounted LTO-5 cartridge");
    let mut at = 12;
    let mut codes = Vec::new();
    while at < d.len() {
        codes.push(d[at] & 0x3F);
        at += 2 + d[at + 1] as usize;
    }
    assert_eq!(codes, vec![0x01, 0x02, 0x0F, 0x10, 0x1C]);
    // MODE SENSE(10), compression page, no block descriptor.
    let d = l.ok(1, &mode_sense10(true, 0, 0x0F, 512), &[]);
    assert_eq!(u16::from_be_bytes([d[0], d[1]]) as usize, d.len() - 2);
    assert_eq!(u16::from_be_bytes([d[6], d[7]]), 0);
    assert_eq!(&d[8..10], &[0x0F, 14]);
    assert_eq!(d[10] & 0x80, 0x80, "DCE");
    // Changeable values: the DCE bit.
    let d = l.ok(1, &mode_sense6(true, 1, 0x0F, 255), &[]);
    assert_eq!(d[4 + 2], 0x80);
    // Saved values are not supported; unknown pages are refused; allocation length cuts.
    l.check(1, &mode_sense6(false, 3, 0x10, 255), &[], (5, 0x39, 0));
    l.check(1, &mode_sense6(false, 0, 0x25, 255), &[], (5, 0x24, 0));
    assert_eq!(l.ok(1, &mode_sense6(false, 0, 0x3F, 4), &[]).len(), 4);
    // MODE SELECT(10) switching compression off through the compression page.
    let mut list = vec![0u8; 8];
    list.extend_from_slice(&[0x0F, 14, 0x00, 0x80, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
    l.ok(1, &mode_select10(list.len() as u16), &list);
    assert_eq!(l.ok(1, &mode_sense6(true, 0, 0x0F, 255), &[])[4 + 2] & 0x80, 0);
    // An unknown page, a bad length, a too large block length.
    let mut bad = vec![0u8; 4];
    bad.extend_from_slice(&[0x25, 2, 0, 0]);
    l.check(1, &mode_select6(bad.len() as u8), &bad, (5, 0x26, 0));
    l.check(1, &mode_select6(8), &bad[..7], (5, 0x1A, 0));
    let big = [0, 0, 0, 8, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF];
    l.check(1, &mode_select6(12), &big, (5, 0x26, 0));
}

/// Parses READ ATTRIBUTE values into (id, read only, format, value).
fn attributes(d: &[u8]) -> Vec<(u16, bool, u8, Vec<u8>)> {
    assert_eq!(u32::from_be_bytes(d[0..4].try_into().unwrap()) as usize, d.len() - 4);
    let mut out = Vec::new();
    let mut at = 4;
    while at < d.len() {
        let len = u16::from_be_bytes([d[at + 3], d[at + 4]]) as usize;
        out.push((
            u16::from_be_bytes([d[at], d[at + 1]]),
            d[at + 2] & 0x80 != 0,
            d[at + 2] & 3,
            d[at + 5..at + 5 + len].to_vec(),
        ));
        at += 5 + len;
    }
    out
}

fn attribute_list(entries: &[(u16, u8, &[u8])]) -> Vec<u8> {
    let mut l = vec![0u8; 4];
    for (id, format, value) in entries {
        l.extend_from_slice(&id.to_be_bytes());
        l.push(*format);
        l.extend_from_slice(&(value.len() as u16).to_be_bytes());
        l.extend_from_slice(value);
    }
    let n = (l.len() - 4) as u32;
    l[0..4].copy_from_slice(&n.to_be_bytes());
    l
}

#[test]
fn medium_auxiliary_memory() {
    let mut l = Lib::small(CAP).loaded("QS0001L5");
    l.ok(1, &write6(false, 1 << 20), &bytes(1, 1 << 20));
    let a = attributes(&l.ok(1, &read_attribute(0, 0, 4096), &[]));
    let get = |a: &[(u16, bool, u8, Vec<u8>)], id: u16| a.iter().find(|x| x.0 == id).cloned();
    let max = get(&a, 0x0001).unwrap();
    assert_eq!((max.1, max.2), (true, 0));
    assert_eq!(u64::from_be_bytes(max.3.try_into().unwrap()), CAP >> 20);
    let rem = get(&a, 0x0000).unwrap();
    assert_eq!(u64::from_be_bytes(rem.3.try_into().unwrap()), (CAP - (1 << 20)) >> 20);
    assert!(get(&a, 0x0401).unwrap().3.starts_with(b"QS0001L5 "));
    assert_eq!(get(&a, 0x0405).unwrap().3, vec![0x58]);
    assert!(get(&a, 0x0800).is_none());
    // The host writes its attributes; they read back and survive a restart.
    let list = attribute_list(&[(0x0800, 1, b"BACKUPCO"), (0x0803, 2, b"weekly full")]);
    l.ok(1, &write_attribute(list.len() as u32), &list);
    l.crash_and_reopen();
    l.settle(1);
    let a = attributes(&l.ok(1, &read_attribute(0, 0x0800, 4096), &[]));
    assert_eq!(a[0], (0x0800, false, 1, b"BACKUPCO".to_vec()));
    assert_eq!(a[1], (0x0803, false, 2, b"weekly full".to_vec()));
    assert!(a.iter().all(|x| x.0 >= 0x0800));
    // The tape itself is durable too (WRITE ATTRIBUTE is a durable point).
    assert_eq!(l.ok(1, &read6(false, false, 1 << 20), &[]), bytes(1, 1 << 20));
    // Read-only or unknown attributes and wrong lengths are refused.
    let ro = attribute_list(&[(0x0001, 0, &[0; 8])]);
    l.check(1, &write_attribute(ro.len() as u32), &ro, (5, 0x26, 0));
    let short = attribute_list(&[(0x0801, 1, b"x")]);
    l.check(1, &write_attribute(short.len() as u32), &short, (5, 0x26, 0));
    // Lists: attribute list, supported attributes, partitions.
    let list = l.ok(1, &read_attribute(1, 0, 4096), &[]);
    assert!(list[4..].chunks(2).any(|c| c == [0x08, 0x03]));
    let sup = l.ok(1, &read_attribute(5, 0, 4096), &[]);
    assert!(sup[4..].chunks(2).any(|c| c == [0x08, 0x08]));
    assert_eq!(l.ok(1, &read_attribute(3, 0, 4096), &[]), vec![0, 2, 0, 1]);
    l.check(1, &read_attribute(4, 0, 4096), &[], (5, 0x24, 0));
    // Write protection covers attributes.
    l.vtl().set_write_protect("QS0001L5", true).unwrap();
    let list = attribute_list(&[(0x0800, 1, b"OTHERCO ")]);
    l.check(1, &write_attribute(list.len() as u32), &list, (7, 0x27, 0));
}
