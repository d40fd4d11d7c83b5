//! SPC commands every logical unit answers: INQUIRY (standard data, VPD 00h/80h/83h), REPORT
//! LUNS, REPORT SUPPORTED OPERATION CODES, LOG SENSE (supported pages, TapeAlert), the mode
//! parameter header, and the per-unit state behind REQUEST SENSE, unit attentions,
//! RESERVE/RELEASE and PREVENT ALLOW MEDIUM REMOVAL.

use crate::cdb::{supported_opcodes, DeviceKind};
use crate::sense::{Outcome, Sense};

/// What INQUIRY reports about a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Changer or drive.
    pub kind: DeviceKind,
    /// Vendor (8 characters, space padded on the wire).
    pub vendor: String,
    /// Product (16 characters).
    pub product: String,
    /// Product revision (4 characters).
    pub revision: String,
    /// Unit serial number.
    pub serial: String,
}

/// Per-unit SPC state.
#[derive(Debug, Clone, Default)]
pub(crate) struct UnitState {
    /// Pending unit attention (reported once, by the next command other than INQUIRY, REPORT
    /// LUNS and REQUEST SENSE, or by REQUEST SENSE).
    pub attention: Option<Sense>,
    /// PREVENT ALLOW MEDIUM REMOVAL state.
    pub prevent: bool,
    /// RESERVE(6) held.
    pub reserved: bool,
}

/// `text` space padded (or cut) to `n` bytes.
pub(crate) fn padded(text: &str, n: usize) -> Vec<u8> {
    let mut v: Vec<u8> = text.bytes().take(n).collect();
    v.resize(n, b' ');
    v
}

/// Cuts `data` to the allocation length.
pub(crate) fn cut(mut data: Vec<u8>, alloc: u32) -> Vec<u8> {
    data.truncate(alloc as usize);
    data
}

fn device_type(kind: DeviceKind) -> u8 {
    match kind {
        DeviceKind::Drive => 0x01,
        DeviceKind::Changer => 0x08,
    }
}

/// INQUIRY data of a unit.
pub(crate) fn inquiry(id: &Identity, evpd: bool, page: u8, alloc: u32) -> Outcome {
    let dt = device_type(id.kind);
    let data = if !evpd {
        let mut d = vec![0u8; 96];
        d[0] = dt;
        d[1] = 0x80; // RMB: removable medium
        d[2] = 0x06; // SPC-4
        d[3] = 0x12; // HISUP, response data format 2
        d[4] = (d.len() - 5) as u8;
        d[7] = 0x02; // CMDQUE
        d[8..16].copy_from_slice(&padded(&id.vendor, 8));
        d[16..32].copy_from_slice(&padded(&id.product, 16));
        d[32..36].copy_from_slice(&padded(&id.revision, 4));
        d[36..46].copy_from_slice(&padded(&id.serial, 10));
        // Version descriptors: SAM-5, SPC-4, then SSC-3 or SMC-3.
        let versions: [u16; 3] = [0x00A0, 0x0460, if id.kind == DeviceKind::Drive { 0x0300 } else { 0x0480 }];
        for (i, v) in versions.iter().enumerate() {
            d[58 + 2 * i..60 + 2 * i].copy_from_slice(&v.to_be_bytes());
        }
        d
    } else {
        let body: Vec<u8> = match page {
            0x00 => vec![0x00, 0x80, 0x83],
            0x80 => id.serial.as_bytes().to_vec(),
            0x83 => {
                let mut b = Vec::new();
                // T10 vendor ID based designator: vendor (8) + product (16) + serial.
                let mut t10 = padded(&id.vendor, 8);
                t10.extend_from_slice(&padded(&id.product, 16));
                t10.extend_from_slice(id.serial.as_bytes());
                b.extend_from_slice(&[0x02, 0x01, 0x00, t10.len() as u8]);
                b.extend_from_slice(&t10);
                // NAA 6 (IEEE registered extended) designator derived from the serial number.
                let h = fnv(id.serial.as_bytes(), id.kind as u64);
                let mut naa = [0u8; 16];
                naa[0] = 0x60;
                naa[1..8].copy_from_slice(&h.to_be_bytes()[1..]);
                naa[8..16].copy_from_slice(&fnv(id.serial.as_bytes(), 7 + id.kind as u64).to_be_bytes());
                // Printable ASCII after the NAA nibble: initiator tools (libiscsi's iscsi-inq)
                // print designators as text.
                for b in &mut naa[1..] {
                    *b = 0x21 + *b % 94;
                }
                b.extend_from_slice(&[0x01, 0x03, 0x00, 16]);
                b.extend_from_slice(&naa);
                b
            }
            _ => return Err((Sense::invalid_cdb_field(2, None), Vec::new())),
        };
        let mut d = vec![dt, page];
        d.extend_from_slice(&(body.len() as u16).to_be_bytes());
        d.extend_from_slice(&body);
        d
    };
    Ok(cut(data, alloc))
}

/// FNV-1a of `b` with a seed (stable identifiers from serial numbers).
fn fnv(b: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// REPORT LUNS data for LUNs `0..count`.
pub(crate) fn report_luns(count: u64, alloc: u32) -> Outcome {
    let mut d = Vec::with_capacity(8 + 8 * count as usize);
    d.extend_from_slice(&((8 * count) as u32).to_be_bytes());
    d.extend_from_slice(&[0; 4]);
    for lun in 0..count {
        let mut e = [0u8; 8];
        if lun < 256 {
            e[1] = lun as u8;
        } else {
            e[0] = 0x40 | ((lun >> 8) as u8 & 0x3F);
            e[1] = lun as u8;
        }
        d.extend_from_slice(&e);
    }
    Ok(cut(d, alloc))
}

/// REPORT SUPPORTED OPERATION CODES data.
pub(crate) fn report_opcodes(kind: DeviceKind, options: u8, opcode: u8, sa: u16, alloc: u32) -> Outcome {
    let ops = supported_opcodes(kind);
    let data = match options {
        0 => {
            let mut d = vec![0u8; 4];
            for &(op, s, len) in ops {
                d.extend_from_slice(&[op, 0]);
                d.extend_from_slice(&s.unwrap_or(0).to_be_bytes());
                d.extend_from_slice(&[0, u8::from(s.is_some())]);
                d.extend_from_slice(&len.to_be_bytes());
            }
            let n = (d.len() - 4) as u32;
            d[0..4].copy_from_slice(&n.to_be_bytes());
            d
        }
        1..=3 => {
            let found = ops.iter().find(|&&(op, s, _)| {
                op == opcode
                    && match (options, s) {
                        (1, None) => true,
                        (2, Some(s)) => s == sa,
                        (3, None) => true,
                        (3, Some(s)) => s == sa,
                        _ => false,
                    }
            });
            // A command with service actions asked for without one (or the reverse).
            let mismatch = ops.iter().any(|&(op, s, _)| op == opcode && (options == 1) == s.is_some());
            if found.is_none() && mismatch && options != 3 {
                return Err((Sense::invalid_cdb_field(2, Some(2)), Vec::new()));
            }
            match found {
                Some(&(op, _, len)) => {
                    let mut d = vec![0, 0x03, 0, 0];
                    d[2..4].copy_from_slice(&len.to_be_bytes());
                    let mut usage = vec![0xFFu8; len as usize];
                    usage[0] = op;
                    usage[len as usize - 1] = 0x07;
                    d.extend_from_slice(&usage);
                    d
                }
                None => vec![0, 0x01, 0, 0],
            }
        }
        _ => return Err((Sense::invalid_cdb_field(2, Some(2)), Vec::new())),
    };
    Ok(cut(data, alloc))
}

/// LOG SENSE: the supported pages page (00h) and TapeAlert (2Eh, no flags set).
pub(crate) fn log_sense(pc: u8, page: u8, subpage: u8, alloc: u32) -> Outcome {
    if subpage != 0 {
        return Err((Sense::invalid_cdb_field(3, None), Vec::new()));
    }
    let _ = pc; // Current, cumulative and default values are the same here.
    let body: Vec<u8> = match page {
        0x00 => vec![0x00, 0x2E],
        0x2E => {
            let mut b = Vec::with_capacity(64 * 5);
            for flag in 1u16..=64 {
                b.extend_from_slice(&flag.to_be_bytes());
                b.extend_from_slice(&[0x03, 0x01, 0x00]);
            }
            b
        }
        _ => return Err((Sense::invalid_cdb_field(2, Some(5)), Vec::new())),
    };
    let mut d = vec![page, 0];
    d.extend_from_slice(&(body.len() as u16).to_be_bytes());
    d.extend_from_slice(&body);
    Ok(cut(d, alloc))
}

/// A MODE SENSE(6)/(10) response around a device-specific parameter byte, an optional block
/// descriptor and the pages.
pub(crate) fn mode_data(ten: bool, device_specific: u8, block: Option<[u8; 8]>, pages: &[u8], alloc: u32) -> Vec<u8> {
    let bd = block.map_or(Vec::new(), |b| b.to_vec());
    let mut d = Vec::new();
    if ten {
        let len = (6 + bd.len() + pages.len()) as u16;
        d.extend_from_slice(&len.to_be_bytes());
        d.extend_from_slice(&[0, device_specific, 0, 0]);
        d.extend_from_slice(&(bd.len() as u16).to_be_bytes());
    } else {
        let len = (3 + bd.len() + pages.len()).min(255) as u8;
        d.extend_from_slice(&[len, 0, device_specific, bd.len() as u8]);
    }
    d.extend_from_slice(&bd);
    d.extend_from_slice(pages);
    cut(d, alloc)
}

/// Checks MODE SENSE's page control and subpage and picks the pages asked for from
/// `(code, current, changeable)` pages.
pub(crate) fn select_pages(pc: u8, page: u8, subpage: u8, pages: &[(u8, Vec<u8>, Vec<u8>)]) -> Result<Vec<u8>, Sense> {
    if pc == 3 {
        // Saved values are not supported.
        return Err(Sense::new(crate::sense::ILLEGAL_REQUEST, 0x39, 0x00));
    }
    if subpage != 0 && !(page == 0x3F && subpage == 0xFF) {
        return Err(Sense::invalid_cdb_field(3, None));
    }
    let mut out = Vec::new();
    for (code, current, changeable) in pages {
        if page == 0x3F || page == *code {
            out.extend_from_slice(if pc == 1 { changeable } else { current });
        }
    }
    // Page 0 is the vendor-specific page without a page format: header and block descriptor.
    if out.is_empty() && page != 0x3F && page != 0x00 {
        return Err(Sense::invalid_cdb_field(2, Some(5)));
    }
    Ok(out)
}
