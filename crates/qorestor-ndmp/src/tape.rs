//! The NDMP tape service on a VTL drive. Every operation is an SSC command through
//! [`Vtl::execute`] (the same code path as the iSCSI target), and the sense data is mapped to
//! NDMP's errors and residual counts. Version 3 keeps the SCSI positions (a read or FSR that
//! meets a filemark ends after it, a BSR before it; end of data reads as EOF_ERR). Version 4's
//! rules:
//! - a TAPE_READ or FSR that meets a filemark stops on the BOT side of it (EOF_ERR for a
//!   read); a BSR that meets a filemark stops on its EOT side, so a file's records are
//!   spaced over without leaving the file;
//! - a read at end of data is EOM_ERR; spacing into BOT or end of data is not an error, it
//!   leaves a residual count.
//!
//! TAPE_GET_STATE reports the block number as unknown after the tape moved back over a
//! filemark (BSF; a BSR, a version 4 read or FSR that steps back over one), as real drives and
//! Linux st do: a drive does not know how many blocks the file it moved into holds. It is known
//! again at BOT and after moving forward over a filemark (block 0 of the next file).

use std::cell::Cell;
use std::sync::Arc;

use qorestor_vtl::sense::{BLANK_CHECK, DATA_PROTECT, NOT_READY, NO_SENSE, UNIT_ATTENTION, VOLUME_OVERFLOW};
use qorestor_vtl::{ScsiResponse, Vtl, GOOD};

use crate::message::NdmpError;
use crate::reply::TapeStateReply;

/// NDMP_MTIO operations.
pub mod mtio {
    #![allow(missing_docs)]
    pub const FSF: u32 = 0;
    pub const BSF: u32 = 1;
    pub const FSR: u32 = 2;
    pub const BSR: u32 = 3;
    pub const REW: u32 = 4;
    pub const EOF: u32 = 5;
    pub const OFF: u32 = 6;
    pub const TUR: u32 = 7;
}

/// Largest SPACE(6) count.
const MAX_SPACE: u32 = 0x7F_FFFF;
/// TAPE_GET_STATE flag: write protected.
const STATE_WR_PROT: u32 = 0x10;
/// SCSI READ(6): the data path, which crosses filemarks only forward.
const READ_6: u8 = 0x08;
/// SCSI WRITE(6): the data path, which crosses no filemark.
const WRITE_6: u8 = 0x0A;

/// A drive opened by a session.
pub struct Tape {
    vtl: Arc<Vtl>,
    drive: u16,
    writable: bool,
    v4: bool,
    /// Whether the block number within the current file is known (see the module's doc).
    blockno_known: Cell<bool>,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written.
    Done,
    /// Written, and the tape is past its early-warning point.
    EarlyWarning,
}

fn space_cdb(code: u8, count: i32) -> [u8; 6] {
    let c = count.to_be_bytes();
    [0x11, code, c[1], c[2], c[3], 0]
}

fn residual(r: &ScsiResponse) -> u32 {
    r.sense_info().map_or(0, |i| i.unsigned_abs())
}

impl Tape {
    /// Opens drive `drive` of `vtl` for protocol `version`: clears pending unit attentions,
    /// refuses an empty drive (NO_TAPE_LOADED) and a read-write open of a write-protected
    /// cartridge (WRITE_PROTECT).
    pub fn open(vtl: Arc<Vtl>, drive: u16, writable: bool, version: u16) -> Result<Tape, NdmpError> {
        let tape = Tape { vtl, drive, writable, v4: version >= 4, blockno_known: Cell::new(true) };
        let mut ready = false;
        for _ in 0..4 {
            let r = tape.exec(&[0; 6], &[]);
            if r.status == GOOD {
                ready = true;
                break;
            }
            match r.sense_code().0 {
                UNIT_ATTENTION => continue,
                NOT_READY => return Err(NdmpError::NoTapeLoaded),
                _ => return Err(NdmpError::Io),
            }
        }
        if !ready {
            return Err(NdmpError::Io);
        }
        let pos = tape.vtl.drive_position(drive).map_err(|_| NdmpError::Io)?.ok_or(NdmpError::NoTapeLoaded)?;
        if writable && pos.write_protected {
            return Err(NdmpError::WriteProtect);
        }
        Ok(tape)
    }

    /// Whether the tape was opened read-write.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The drive's LUN.
    fn lun(&self) -> u64 {
        self.drive as u64 + 1
    }

    /// The drive's (file, block) position, if a cartridge is loaded.
    fn file_position(&self) -> Option<(u64, u64)> {
        self.vtl.drive_position(self.drive).ok().flatten().map(|p| (p.file, p.block))
    }

    /// Runs a CDB on the drive (TAPE_EXECUTE_CDB and every operation here), and keeps track
    /// of whether the block number is known from how the file number moved.
    pub fn exec(&self, cdb: &[u8], data_out: &[u8]) -> ScsiResponse {
        let opcode = cdb.first().copied();
        if matches!(opcode, Some(READ_6 | WRITE_6)) {
            let r = self.vtl.execute(self.lun(), cdb, data_out);
            if opcode == Some(READ_6) && r.status != GOOD && r.sense_flags().0 {
                // Read forward over a filemark: block 0 of the next file.
                self.blockno_known.set(true);
            }
            return r;
        }
        let before = self.file_position();
        let r = self.vtl.execute(self.lun(), cdb, data_out);
        match (before, self.file_position()) {
            (_, None | Some((0, 0))) => self.blockno_known.set(true),
            (Some((from, _)), Some((to, _))) if to < from => self.blockno_known.set(false),
            (Some((from, _)), Some((to, _))) if to > from => self.blockno_known.set(true),
            _ => {}
        }
        r
    }

    /// TAPE_WRITE / the mover: one variable-length block.
    pub fn write(&self, data: &[u8]) -> Result<WriteOutcome, NdmpError> {
        if !self.writable {
            return Err(NdmpError::Permission);
        }
        if data.is_empty() {
            return Ok(WriteOutcome::Done);
        }
        let n = (data.len() as u32).to_be_bytes();
        let r = self.exec(&[0x0A, 0, n[1], n[2], n[3], 0], data);
        if r.status == GOOD {
            return Ok(WriteOutcome::Done);
        }
        let (_, eom, _) = r.sense_flags();
        match r.sense_code().0 {
            NO_SENSE if eom => Ok(WriteOutcome::EarlyWarning),
            VOLUME_OVERFLOW => Err(NdmpError::Eom),
            DATA_PROTECT => Err(NdmpError::Permission),
            _ => Err(NdmpError::Io),
        }
    }

    /// TAPE_READ / the mover: the next block, cut to `count` bytes.
    pub fn read(&self, count: u32) -> Result<Vec<u8>, NdmpError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let n = count.to_be_bytes();
        let r = self.exec(&[0x08, 0x02, n[1], n[2], n[3], 0], &[]);
        if r.status == GOOD {
            return Ok(r.data_in);
        }
        let (filemark, eom, ili) = r.sense_flags();
        let key = r.sense_code().0;
        if filemark {
            if self.v4 {
                // Stay on the BOT side of the filemark, as NDMP v4 wants.
                self.exec(&space_cdb(1, -1), &[]);
            }
            return Err(NdmpError::Eof);
        }
        match key {
            BLANK_CHECK if !self.v4 => Err(NdmpError::Eof),
            BLANK_CHECK => Err(NdmpError::Eom),
            NO_SENSE if ili => Ok(r.data_in),
            NO_SENSE if eom => Err(NdmpError::Eom),
            VOLUME_OVERFLOW => Err(NdmpError::Eom),
            _ => Err(NdmpError::Io),
        }
    }

    fn space(&self, code: u8, count: u32, forward: bool) -> (ScsiResponse, u32) {
        let n = count.min(MAX_SPACE);
        let extra = count - n;
        let signed = if forward { n as i32 } else { -(n as i32) };
        let r = self.exec(&space_cdb(code, signed), &[]);
        let resid = if r.status == GOOD { 0 } else { residual(&r) };
        (r, resid + extra)
    }

    /// TAPE_MTIO: returns the residual count.
    pub fn mtio(&self, op: u32, count: u32) -> Result<u32, NdmpError> {
        let status = |r: ScsiResponse| match r.status {
            GOOD => Ok(0),
            _ if r.sense_code().0 == DATA_PROTECT => Err(NdmpError::Permission),
            _ => Err(NdmpError::Io),
        };
        match op {
            mtio::REW => status(self.exec(&[0x01, 0, 0, 0, 0, 0], &[])),
            mtio::OFF => status(self.exec(&[0x1B, 0, 0, 0, 0, 0], &[])),
            mtio::TUR => status(self.exec(&[0; 6], &[])),
            mtio::EOF => {
                if !self.writable {
                    return Err(NdmpError::Permission);
                }
                let c = count.min(0xFF_FFFF).to_be_bytes();
                status(self.exec(&[0x10, 0, c[1], c[2], c[3], 0], &[]))
            }
            mtio::FSF | mtio::BSF => {
                let (r, resid) = self.space(1, count, op == mtio::FSF);
                self.space_result(&r, resid)
            }
            mtio::FSR | mtio::BSR => {
                let forward = op == mtio::FSR;
                let (r, resid) = self.space(0, count, forward);
                if self.v4 && r.status != GOOD && r.sense_flags().0 {
                    // Stepped over a filemark: step back so the position stays in this file.
                    self.exec(&space_cdb(1, if forward { -1 } else { 1 }), &[]);
                    return Ok(resid);
                }
                self.space_result(&r, resid)
            }
            _ => Err(NdmpError::IllegalArgs),
        }
    }

    fn space_result(&self, r: &ScsiResponse, resid: u32) -> Result<u32, NdmpError> {
        if r.status == GOOD {
            return Ok(resid);
        }
        match r.sense_code().0 {
            // Filemark, BOT, end of data: the residual says how far it got.
            NO_SENSE | BLANK_CHECK => Ok(resid),
            _ => Err(NdmpError::Io),
        }
    }

    /// TAPE_GET_STATE.
    pub fn state(&self) -> Result<TapeStateReply, NdmpError> {
        let p = self.vtl.drive_position(self.drive).map_err(|_| NdmpError::Io)?.ok_or(NdmpError::NoTapeLoaded)?;
        Ok(TapeStateReply {
            flags: if p.write_protected { STATE_WR_PROT } else { 0 },
            file_num: p.file.min(u32::MAX as u64) as u32,
            block_size: 0,
            blockno: self.blockno_known.get().then(|| p.block.min(u64::from(u32::MAX - 1)) as u32),
            total_space: p.capacity,
            space_remain: p.capacity.saturating_sub(p.used),
        })
    }

    /// Makes everything written durable (WRITE FILEMARKS 0): the session calls it when the
    /// tape is closed or the connection ends, so the tape reads back to its last record.
    pub fn flush(&self) {
        if self.writable {
            self.exec(&[0x10, 0, 0, 0, 0, 0], &[]);
        }
    }
}

impl Drop for Tape {
    fn drop(&mut self) {
        self.flush();
    }
}
