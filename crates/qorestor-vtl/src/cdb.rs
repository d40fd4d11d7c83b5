//! Pure decoding of CDBs and parameter lists into typed commands.
//!
//! [`parse_cdb`] decodes a CDB for a device kind (changer or tape drive: opcode 2Bh is
//! POSITION TO ELEMENT on a changer and LOCATE(10) on a drive) and checks every field the
//! emulation does not support; a bad CDB is an ILLEGAL REQUEST [`Sense`] with the field
//! pointer, never a panic. [`parse_mode_select`] decodes a MODE SELECT parameter list. Both
//! are fuzzed (`fuzz/fuzz_targets/vtl_cdb.rs`).

use crate::sense::Sense;

/// The kind of a logical unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// The medium changer (SMC).
    Changer,
    /// A tape drive (SSC).
    Drive,
}

/// Where LOCATE goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocateTo {
    /// A logical object identifier (block or filemark number).
    Object(u64),
    /// The first object of a logical file (after that many filemarks).
    File(u64),
    /// End of data.
    EndOfData,
}

/// READ POSITION's data format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionForm {
    /// Short form, 20 bytes (service actions 00h and 01h).
    Short,
    /// Long form, 32 bytes (service action 06h).
    Long,
    /// Extended form, 32 bytes (service action 08h).
    Extended,
}

/// SPACE's object type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceCode {
    /// Logical blocks.
    Blocks,
    /// Filemarks.
    Filemarks,
    /// End of data.
    EndOfData,
}

/// A decoded command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // Field names follow the standards' field names.
pub enum Command {
    /// TEST UNIT READY.
    TestUnitReady,
    /// REQUEST SENSE.
    RequestSense { alloc: u32 },
    /// INQUIRY (standard data, or the VPD page `page` when `evpd`).
    Inquiry { evpd: bool, page: u8, alloc: u32 },
    /// REPORT LUNS.
    ReportLuns { alloc: u32 },
    /// REPORT SUPPORTED OPERATION CODES.
    ReportOpcodes { options: u8, opcode: u8, service_action: u16, alloc: u32 },
    /// MODE SENSE(6) or (10).
    ModeSense { ten: bool, dbd: bool, pc: u8, page: u8, subpage: u8, alloc: u32 },
    /// MODE SELECT(6) or (10) with a parameter list of `len` bytes.
    ModeSelect { ten: bool, len: u32 },
    /// LOG SENSE.
    LogSense { pc: u8, page: u8, subpage: u8, alloc: u32 },
    /// RESERVE(6).
    Reserve,
    /// RELEASE(6).
    Release,
    /// PREVENT ALLOW MEDIUM REMOVAL (`prevent` non-zero prevents).
    PreventAllow { prevent: bool },
    /// REWIND.
    Rewind,
    /// READ BLOCK LIMITS.
    ReadBlockLimits,
    /// READ(6): `len` bytes (variable) or blocks (fixed).
    Read { fixed: bool, sili: bool, len: u32 },
    /// WRITE(6): `len` bytes (variable) or blocks (fixed).
    Write { fixed: bool, len: u32 },
    /// WRITE FILEMARKS(6); count 0 flushes.
    WriteFilemarks { immed: bool, count: u32 },
    /// SPACE(6) or SPACE(16).
    Space { code: SpaceCode, count: i64 },
    /// LOCATE(10) or LOCATE(16).
    Locate { to: LocateTo },
    /// READ POSITION.
    ReadPosition { form: PositionForm, alloc: u32 },
    /// LOAD UNLOAD.
    LoadUnload { load: bool },
    /// ERASE.
    Erase,
    /// REPORT DENSITY SUPPORT.
    ReportDensity { media: bool, alloc: u32 },
    /// READ ATTRIBUTE (service action, first attribute identifier).
    ReadAttribute { service_action: u8, first: u16, alloc: u32 },
    /// WRITE ATTRIBUTE with a parameter list of `len` bytes.
    WriteAttribute { len: u32 },
    /// READ ELEMENT STATUS.
    ReadElementStatus { voltag: bool, element_type: u8, start: u16, count: u16, dvcid: bool, alloc: u32 },
    /// MOVE MEDIUM.
    MoveMedium { transport: u16, source: u16, dest: u16 },
    /// INITIALIZE ELEMENT STATUS.
    InitElementStatus,
    /// INITIALIZE ELEMENT STATUS WITH RANGE.
    InitElementStatusRange { range: bool, start: u16, count: u16 },
    /// POSITION TO ELEMENT.
    PositionToElement { transport: u16, dest: u16 },
}

/// The operation codes and CDB lengths each device kind supports (REPORT SUPPORTED OPERATION
/// CODES reports these): (opcode, service action, CDB length).
pub fn supported_opcodes(kind: DeviceKind) -> &'static [(u8, Option<u16>, u16)] {
    const COMMON: [(u8, Option<u16>, u16); 13] = [
        (0x00, None, 6),
        (0x03, None, 6),
        (0x12, None, 6),
        (0x15, None, 6),
        (0x16, None, 6),
        (0x17, None, 6),
        (0x1A, None, 6),
        (0x1E, None, 6),
        (0x4D, None, 10),
        (0x55, None, 10),
        (0x5A, None, 10),
        (0xA0, None, 12),
        (0xA3, Some(0x0C), 12),
    ];
    const DRIVE: [(u8, Option<u16>, u16); 13 + 18] = {
        let mut all = [(0u8, None, 0u16); 31];
        let mut i = 0;
        while i < 13 {
            all[i] = COMMON[i];
            i += 1;
        }
        let extra: [(u8, Option<u16>, u16); 18] = [
            (0x01, None, 6),
            (0x05, None, 6),
            (0x08, None, 6),
            (0x0A, None, 6),
            (0x10, None, 6),
            (0x11, None, 6),
            (0x19, None, 6),
            (0x1B, None, 6),
            (0x2B, None, 10),
            (0x34, Some(0x00), 10),
            (0x34, Some(0x01), 10),
            (0x34, Some(0x06), 10),
            (0x34, Some(0x08), 10),
            (0x44, None, 10),
            (0x8C, None, 16),
            (0x8D, None, 16),
            (0x91, None, 16),
            (0x92, None, 16),
        ];
        let mut j = 0;
        while j < 18 {
            all[13 + j] = extra[j];
            j += 1;
        }
        all
    };
    const CHANGER: [(u8, Option<u16>, u16); 13 + 5] = {
        let mut all = [(0u8, None, 0u16); 18];
        let mut i = 0;
        while i < 13 {
            all[i] = COMMON[i];
            i += 1;
        }
        all[13] = (0x07, None, 6);
        all[14] = (0x2B, None, 10);
        all[15] = (0x37, None, 10);
        all[16] = (0xA5, None, 12);
        all[17] = (0xB8, None, 12);
        all
    };
    match kind {
        DeviceKind::Drive => &DRIVE,
        DeviceKind::Changer => &CHANGER,
    }
}

fn cdb_len(opcode: u8) -> usize {
    match opcode >> 5 {
        0 => 6,
        1 | 2 => 10,
        4 => 16,
        5 => 12,
        _ => 6,
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be24(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([0, b[at], b[at + 1], b[at + 2]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

/// Fails with INVALID FIELD IN CDB at `byte` when any bit of `mask` is set in it.
fn reserved(cdb: &[u8], byte: usize, mask: u8) -> Result<(), Sense> {
    match cdb[byte] & mask {
        0 => Ok(()),
        bad => Err(Sense::invalid_cdb_field(byte as u16, Some(7 - bad.leading_zeros() as u8))),
    }
}

/// Decodes a CDB for a device of `kind`.
pub fn parse_cdb(kind: DeviceKind, cdb: &[u8]) -> Result<Command, Sense> {
    let Some(&op) = cdb.first() else {
        return Err(Sense::invalid_opcode());
    };
    let known = supported_opcodes(kind).iter().any(|&(o, _, _)| o == op);
    if !known {
        return Err(Sense::invalid_opcode());
    }
    if cdb.len() < cdb_len(op) {
        return Err(Sense::invalid_cdb_field(cdb.len() as u16, None));
    }
    let drive = kind == DeviceKind::Drive;
    Ok(match op {
        0x00 => Command::TestUnitReady,
        0x03 => {
            // DESC (descriptor format) is not supported.
            reserved(cdb, 1, 0x01)?;
            Command::RequestSense { alloc: cdb[4] as u32 }
        }
        0x12 => {
            // CMDDT (obsolete) is refused; a page code without EVPD too.
            reserved(cdb, 1, 0x02)?;
            let evpd = cdb[1] & 1 != 0;
            if !evpd && cdb[2] != 0 {
                return Err(Sense::invalid_cdb_field(2, None));
            }
            Command::Inquiry { evpd, page: cdb[2], alloc: be16(cdb, 3) as u32 }
        }
        0xA0 => {
            if cdb[2] > 2 {
                return Err(Sense::invalid_cdb_field(2, None));
            }
            Command::ReportLuns { alloc: be32(cdb, 6) }
        }
        0xA3 => {
            if cdb[1] & 0x1F != 0x0C {
                return Err(Sense::invalid_cdb_field(1, Some(4)));
            }
            let options = cdb[2] & 0x07;
            if options > 3 {
                return Err(Sense::invalid_cdb_field(2, Some(2)));
            }
            Command::ReportOpcodes { options, opcode: cdb[3], service_action: be16(cdb, 4), alloc: be32(cdb, 6) }
        }
        0x1A | 0x5A => {
            let ten = op == 0x5A;
            let alloc = if ten { be16(cdb, 7) as u32 } else { cdb[4] as u32 };
            Command::ModeSense {
                ten,
                dbd: cdb[1] & 0x08 != 0,
                pc: cdb[2] >> 6,
                page: cdb[2] & 0x3F,
                subpage: cdb[3],
                alloc,
            }
        }
        0x15 | 0x55 => {
            let ten = op == 0x55;
            // PF must be set (the pages are the standard ones).
            if cdb[1] & 0x10 == 0 {
                return Err(Sense::invalid_cdb_field(1, Some(4)));
            }
            let len = if ten { be16(cdb, 7) as u32 } else { cdb[4] as u32 };
            Command::ModeSelect { ten, len }
        }
        0x4D => {
            // PPC and SP are not supported.
            reserved(cdb, 1, 0x03)?;
            Command::LogSense { pc: cdb[2] >> 6, page: cdb[2] & 0x3F, subpage: cdb[3], alloc: be16(cdb, 7) as u32 }
        }
        0x16 => {
            // Third-party and extent reservations are not supported.
            reserved(cdb, 1, 0x1F)?;
            Command::Reserve
        }
        0x17 => {
            reserved(cdb, 1, 0x1F)?;
            Command::Release
        }
        0x1E => Command::PreventAllow { prevent: cdb[4] & 0x03 != 0 },
        // Drive commands.
        0x01 => Command::Rewind,
        0x05 => Command::ReadBlockLimits,
        0x08 => {
            let fixed = cdb[1] & 0x01 != 0;
            let sili = cdb[1] & 0x02 != 0;
            if fixed && sili {
                return Err(Sense::invalid_cdb_field(1, Some(1)));
            }
            reserved(cdb, 1, 0xFC)?;
            Command::Read { fixed, sili, len: be24(cdb, 2) }
        }
        0x0A => {
            reserved(cdb, 1, 0xFE)?;
            Command::Write { fixed: cdb[1] & 0x01 != 0, len: be24(cdb, 2) }
        }
        0x10 => {
            // WSMK (setmarks) is not supported.
            reserved(cdb, 1, 0xFE)?;
            Command::WriteFilemarks { immed: cdb[1] & 0x01 != 0, count: be24(cdb, 2) }
        }
        0x11 | 0x91 => {
            let code = match cdb[1] & 0x0F {
                0 => SpaceCode::Blocks,
                1 => SpaceCode::Filemarks,
                3 => SpaceCode::EndOfData,
                _ => return Err(Sense::invalid_cdb_field(1, Some(3))),
            };
            let count = if op == 0x11 {
                // 24-bit two's complement.
                ((be24(cdb, 2) << 8) as i32 >> 8) as i64
            } else {
                if cdb[3] != 0 {
                    return Err(Sense::invalid_cdb_field(3, None));
                }
                if be16(cdb, 12) != 0 {
                    return Err(Sense::invalid_cdb_field(12, None));
                }
                be64(cdb, 4) as i64
            };
            Command::Space { code, count }
        }
        0x2B if drive => {
            // BT (vendor block addresses) is the same as logical here; CP with a non-zero
            // partition is refused (one partition).
            if cdb[1] & 0x02 != 0 && cdb[8] != 0 {
                return Err(Sense::invalid_cdb_field(8, None));
            }
            Command::Locate { to: LocateTo::Object(be32(cdb, 3) as u64) }
        }
        0x92 => {
            if cdb[1] & 0x02 != 0 && cdb[3] != 0 {
                return Err(Sense::invalid_cdb_field(3, None));
            }
            let id = be64(cdb, 4);
            let to = match (cdb[1] >> 3) & 0x07 {
                0 => LocateTo::Object(id),
                1 => LocateTo::File(id),
                3 => LocateTo::EndOfData,
                _ => return Err(Sense::invalid_cdb_field(1, Some(5))),
            };
            Command::Locate { to }
        }
        0x34 => {
            let (form, alloc) = match cdb[1] & 0x1F {
                0 | 1 => (PositionForm::Short, 20),
                6 => (PositionForm::Long, 32),
                8 => (PositionForm::Extended, be16(cdb, 7) as u32),
                _ => return Err(Sense::invalid_cdb_field(1, Some(4))),
            };
            Command::ReadPosition { form, alloc }
        }
        0x1B => {
            // EOT (retension to end) and HOLD are not supported.
            reserved(cdb, 4, 0x0C)?;
            Command::LoadUnload { load: cdb[4] & 0x01 != 0 }
        }
        0x19 => Command::Erase,
        0x44 => {
            // MEDIUM TYPE descriptors are not supported.
            reserved(cdb, 1, 0x02)?;
            Command::ReportDensity { media: cdb[1] & 0x01 != 0, alloc: be16(cdb, 7) as u32 }
        }
        0x8C | 0x8D => {
            // One logical volume, one partition.
            if cdb[5] != 0 {
                return Err(Sense::invalid_cdb_field(5, None));
            }
            if cdb[7] != 0 {
                return Err(Sense::invalid_cdb_field(7, None));
            }
            let len = be32(cdb, 10);
            if op == 0x8C {
                Command::ReadAttribute { service_action: cdb[1] & 0x1F, first: be16(cdb, 8), alloc: len }
            } else {
                Command::WriteAttribute { len }
            }
        }
        // Changer commands.
        0xB8 => Command::ReadElementStatus {
            voltag: cdb[1] & 0x10 != 0,
            element_type: {
                let t = cdb[1] & 0x0F;
                if t > 4 {
                    return Err(Sense::invalid_cdb_field(1, Some(3)));
                }
                t
            },
            start: be16(cdb, 2),
            count: be16(cdb, 4),
            dvcid: cdb[6] & 0x01 != 0,
            alloc: be24(cdb, 7),
        },
        0xA5 => {
            if cdb[10] & 0x01 != 0 {
                return Err(Sense::invalid_cdb_field(10, Some(0)));
            }
            Command::MoveMedium { transport: be16(cdb, 2), source: be16(cdb, 4), dest: be16(cdb, 6) }
        }
        0x07 => Command::InitElementStatus,
        0x37 => Command::InitElementStatusRange { range: cdb[1] & 0x01 != 0, start: be16(cdb, 2), count: be16(cdb, 6) },
        0x2B => {
            if cdb[8] & 0x01 != 0 {
                return Err(Sense::invalid_cdb_field(8, Some(0)));
            }
            Command::PositionToElement { transport: be16(cdb, 2), dest: be16(cdb, 4) }
        }
        _ => return Err(Sense::invalid_opcode()),
    })
}

/// One mode page of a MODE SELECT parameter list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModePage {
    /// Page code.
    pub code: u8,
    /// Subpage code (0 for page_0 format).
    pub subpage: u8,
    /// The page's bytes after its header.
    pub body: Vec<u8>,
}

/// A decoded MODE SELECT parameter list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModeSelectList {
    /// Block length from the block descriptor, if one was given.
    pub block_len: Option<u32>,
    /// Density code from the block descriptor, if one was given.
    pub density: Option<u8>,
    /// The mode pages.
    pub pages: Vec<ModePage>,
}

/// Decodes a MODE SELECT(6) (`ten` false) or (10) parameter list: header, at most one short
/// block descriptor, mode pages. Errors are INVALID FIELD IN PARAMETER LIST (5/26/00) with the
/// offending byte, or PARAMETER LIST LENGTH ERROR (5/1A/00).
pub fn parse_mode_select(ten: bool, list: &[u8]) -> Result<ModeSelectList, Sense> {
    let length_error = Sense::new(crate::sense::ILLEGAL_REQUEST, 0x1A, 0x00);
    let mut out = ModeSelectList::default();
    if list.is_empty() {
        return Ok(out);
    }
    let header = if ten { 8 } else { 4 };
    if list.len() < header {
        return Err(length_error);
    }
    let bd_len = if ten { be16(list, 6) as usize } else { list[3] as usize };
    if ten && list[4] & 0x01 != 0 {
        // LONGLBA block descriptors are for disks.
        return Err(Sense::invalid_param_field(4));
    }
    if bd_len != 0 && bd_len != 8 {
        return Err(Sense::invalid_param_field(if ten { 6 } else { 3 }));
    }
    if list.len() < header + bd_len {
        return Err(length_error);
    }
    if bd_len == 8 {
        let bd = &list[header..header + 8];
        out.density = Some(bd[0]);
        out.block_len = Some(be24(bd, 5));
    }
    let mut at = header + bd_len;
    while at < list.len() {
        let code = list[at] & 0x3F;
        let spf = list[at] & 0x40 != 0;
        let (subpage, hdr, len) = if spf {
            if at + 4 > list.len() {
                return Err(length_error);
            }
            (list[at + 1], 4, be16(list, at + 2) as usize)
        } else {
            if at + 2 > list.len() {
                return Err(length_error);
            }
            (0, 2, list[at + 1] as usize)
        };
        if at + hdr + len > list.len() {
            return Err(length_error);
        }
        out.pages.push(ModePage { code, subpage, body: list[at + hdr..at + hdr + len].to_vec() });
        at += hdr + len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_opcode_parses_with_a_zero_cdb_or_names_a_field() {
        for kind in [DeviceKind::Drive, DeviceKind::Changer] {
            for &(op, sa, len) in supported_opcodes(kind) {
                let mut cdb = vec![0u8; len as usize];
                cdb[0] = op;
                if let Some(sa) = sa {
                    cdb[1] = sa as u8;
                }
                match parse_cdb(kind, &cdb) {
                    Ok(_) => {}
                    // MODE SELECT needs PF.
                    Err(s) => assert!(op == 0x15 || op == 0x55, "{op:#04x}: {s:?}"),
                }
                // Short CDBs are refused, never read past.
                assert!(parse_cdb(kind, &cdb[..len as usize - 1]).is_err());
            }
        }
    }

    #[test]
    fn unknown_opcodes_and_wrong_device_are_invalid_opcode() {
        assert_eq!(parse_cdb(DeviceKind::Changer, &[0x0A, 0, 0, 0, 1, 0]), Err(Sense::invalid_opcode()));
        assert_eq!(parse_cdb(DeviceKind::Drive, &[0xB8; 12]), Err(Sense::invalid_opcode()));
        assert_eq!(parse_cdb(DeviceKind::Drive, &[]), Err(Sense::invalid_opcode()));
    }

    #[test]
    fn space_counts_are_sign_extended() {
        let c = parse_cdb(DeviceKind::Drive, &[0x11, 0x00, 0xFF, 0xFF, 0xFE, 0]).unwrap();
        assert_eq!(c, Command::Space { code: SpaceCode::Blocks, count: -2 });
        let mut c16 = [0u8; 16];
        c16[0] = 0x91;
        c16[1] = 1;
        c16[4..12].copy_from_slice(&(-5i64).to_be_bytes());
        assert_eq!(
            parse_cdb(DeviceKind::Drive, &c16).unwrap(),
            Command::Space { code: SpaceCode::Filemarks, count: -5 }
        );
        assert_eq!(parse_cdb(DeviceKind::Drive, &[0x11, 0x02, 0, 0, 1, 0]), Err(Sense::invalid_cdb_field(1, Some(3))));
    }

    #[test]
    fn mode_select_lists() {
        // MODE SELECT(6): header, block descriptor with block length 512, compression page.
        let mut l = vec![0, 0, 0x10, 8, 0x58, 0, 0, 0, 0, 0, 0x02, 0x00];
        l.extend_from_slice(&[0x0F, 0x0E, 0x80, 0x80, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
        let p = parse_mode_select(false, &l).unwrap();
        assert_eq!(p.block_len, Some(512));
        assert_eq!(p.density, Some(0x58));
        assert_eq!(p.pages.len(), 1);
        assert_eq!(p.pages[0].code, 0x0F);
        assert_eq!(p.pages[0].body.len(), 14);
        assert!(parse_mode_select(false, &l[..l.len() - 1]).is_err());
        assert_eq!(parse_mode_select(false, &[0, 0, 0, 5]).unwrap_err().asc, 0x26);
        assert_eq!(parse_mode_select(true, &[0, 0, 0]).unwrap_err().asc, 0x1A);
        assert_eq!(parse_mode_select(true, &[]).unwrap(), ModeSelectList::default());
    }
}
