//! Typed PDUs (RFC 7143 §11): every initiator and target PDU this target exchanges, decoded
//! from and encoded to a [`Frame`]. Pure: [`Pdu::from_frame`] checks the fields a frame carries
//! and never panics; [`Pdu::to_frame`] is its inverse. Opcodes are named constants in [`op`].

use crate::error::CodecError;
use crate::frame::{Frame, BHS_LEN};

/// Opcodes (byte 0, low 6 bits).
pub mod op {
    /// NOP-Out.
    pub const NOP_OUT: u8 = 0x00;
    /// SCSI Command.
    pub const SCSI_COMMAND: u8 = 0x01;
    /// SCSI Task Management Function Request.
    pub const TASK_MGMT: u8 = 0x02;
    /// Login Request.
    pub const LOGIN: u8 = 0x03;
    /// Text Request.
    pub const TEXT: u8 = 0x04;
    /// SCSI Data-Out.
    pub const DATA_OUT: u8 = 0x05;
    /// Logout Request.
    pub const LOGOUT: u8 = 0x06;
    /// SNACK Request.
    pub const SNACK: u8 = 0x10;
    /// NOP-In.
    pub const NOP_IN: u8 = 0x20;
    /// SCSI Response.
    pub const SCSI_RESPONSE: u8 = 0x21;
    /// Task Management Function Response.
    pub const TASK_MGMT_RESPONSE: u8 = 0x22;
    /// Login Response.
    pub const LOGIN_RESPONSE: u8 = 0x23;
    /// Text Response.
    pub const TEXT_RESPONSE: u8 = 0x24;
    /// SCSI Data-In.
    pub const DATA_IN: u8 = 0x25;
    /// Logout Response.
    pub const LOGOUT_RESPONSE: u8 = 0x26;
    /// Ready To Transfer.
    pub const R2T: u8 = 0x31;
    /// Reject.
    pub const REJECT: u8 = 0x3f;
}

/// The Initiator/Target Task Tag value meaning "none".
pub const RESERVED_TAG: u32 = 0xffff_ffff;
/// Immediate delivery bit of byte 0.
const IMMEDIATE: u8 = 0x40;
/// Final bit of byte 1.
const FINAL: u8 = 0x80;
/// Continue bit of byte 1 (Login and Text).
const CONTINUE: u8 = 0x40;

/// Sequence numbers a target PDU carries (StatSN, ExpCmdSN, MaxCmdSN).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sn {
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
}

/// Residual flags and count of a SCSI Response or a final Data-In.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Residual {
    /// The whole expected length was transferred.
    #[default]
    None,
    /// The command wanted to move more than the expected length (this many bytes more).
    Overflow(u32),
    /// Less than the expected length was moved (this many bytes less).
    Underflow(u32),
}

impl Residual {
    fn flags(self) -> u8 {
        match self {
            Residual::None => 0,
            Residual::Overflow(_) => 0x04,
            Residual::Underflow(_) => 0x02,
        }
    }

    fn count(self) -> u32 {
        match self {
            Residual::None => 0,
            Residual::Overflow(n) | Residual::Underflow(n) => n,
        }
    }

    fn from_bits(flags: u8, count: u32) -> Residual {
        match (flags & 0x04 != 0, flags & 0x02 != 0) {
            (true, _) => Residual::Overflow(count),
            (false, true) => Residual::Underflow(count),
            _ => Residual::None,
        }
    }
}

/// Login stages (CSG/NSG).
pub mod stage {
    /// Security negotiation.
    pub const SECURITY: u8 = 0;
    /// Login operational negotiation.
    pub const OPERATIONAL: u8 = 1;
    /// Full feature phase.
    pub const FULL_FEATURE: u8 = 3;
}

/// The fields Login Requests and Login Responses share: byte 1 (transit, continue, current
/// and next stage), the versions, ISID and TSIH. `version` is Version-min in a request and
/// Version-active in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // the RFC 7143 fields of the same names
pub struct LoginHead {
    pub transit: bool,
    pub cont: bool,
    pub csg: u8,
    pub nsg: u8,
    pub version_max: u8,
    pub version: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
}

impl LoginHead {
    fn decode(b: &[u8; BHS_LEN]) -> LoginHead {
        LoginHead {
            transit: b[1] & FINAL != 0,
            cont: b[1] & CONTINUE != 0,
            csg: (b[1] >> 2) & 3,
            nsg: b[1] & 3,
            version_max: b[2],
            version: b[3],
            isid: b[8..14].try_into().expect("6 bytes"),
            tsih: get16(b, 14),
        }
    }

    fn encode(&self, b: &mut [u8; BHS_LEN]) {
        b[1] = if self.transit { FINAL } else { 0 }
            | if self.cont { CONTINUE } else { 0 }
            | ((self.csg & 3) << 2)
            | (self.nsg & 3);
        b[2] = self.version_max;
        b[3] = self.version;
        b[8..14].copy_from_slice(&self.isid);
        put16(b, 14, self.tsih);
    }
}

/// A PDU, from the initiator (requests) or the target (responses).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are the RFC 7143 fields of the same names
pub enum Pdu {
    /// NOP-Out: a ping, or the answer to a NOP-In ping.
    NopOut { immediate: bool, lun: u64, itt: u32, ttt: u32, cmd_sn: u32, exp_stat_sn: u32, data: Vec<u8> },
    /// SCSI Command, with immediate data if any.
    ScsiCommand {
        immediate: bool,
        /// F: no unsolicited Data-Out follows.
        final_: bool,
        read: bool,
        write: bool,
        attr: u8,
        lun: u64,
        itt: u32,
        expected_len: u32,
        cmd_sn: u32,
        exp_stat_sn: u32,
        /// The CDB: 16 bytes of the BHS plus an extended CDB AHS if any.
        cdb: Vec<u8>,
        data: Vec<u8>,
    },
    /// Task Management Function Request.
    TaskMgmt {
        immediate: bool,
        function: u8,
        lun: u64,
        itt: u32,
        ref_itt: u32,
        cmd_sn: u32,
        exp_stat_sn: u32,
        ref_cmd_sn: u32,
        exp_data_sn: u32,
    },
    /// Login Request.
    Login { head: LoginHead, itt: u32, cid: u16, cmd_sn: u32, exp_stat_sn: u32, data: Vec<u8> },
    /// Text Request.
    Text {
        immediate: bool,
        final_: bool,
        cont: bool,
        lun: u64,
        itt: u32,
        ttt: u32,
        cmd_sn: u32,
        exp_stat_sn: u32,
        data: Vec<u8>,
    },
    /// SCSI Data-Out.
    DataOut { final_: bool, lun: u64, itt: u32, ttt: u32, exp_stat_sn: u32, data_sn: u32, offset: u32, data: Vec<u8> },
    /// Logout Request.
    Logout { immediate: bool, reason: u8, itt: u32, cid: u16, cmd_sn: u32, exp_stat_sn: u32 },
    /// SNACK Request (not supported at ErrorRecoveryLevel 0: answered with a Reject).
    Snack { itt: u32, header: [u8; BHS_LEN] },
    /// NOP-In: answer to a ping (`ttt` reserved) or a ping of the target (`itt` reserved).
    NopIn { lun: u64, itt: u32, ttt: u32, sn: Sn, data: Vec<u8> },
    /// SCSI Response; `data` is the sense data (without its 2-byte length prefix).
    ScsiResponse { response: u8, status: u8, itt: u32, sn: Sn, exp_data_sn: u32, residual: Residual, sense: Vec<u8> },
    /// Task Management Function Response.
    TaskMgmtResponse { response: u8, itt: u32, sn: Sn },
    /// Login Response.
    LoginResponse { head: LoginHead, itt: u32, sn: Sn, status_class: u8, status_detail: u8, data: Vec<u8> },
    /// Text Response.
    TextResponse { final_: bool, cont: bool, lun: u64, itt: u32, ttt: u32, sn: Sn, data: Vec<u8> },
    /// SCSI Data-In; `status` is set on the last one when it carries the status (S bit).
    DataIn {
        final_: bool,
        status: Option<u8>,
        residual: Residual,
        lun: u64,
        itt: u32,
        ttt: u32,
        sn: Sn,
        data_sn: u32,
        offset: u32,
        data: Vec<u8>,
    },
    /// Logout Response.
    LogoutResponse { response: u8, itt: u32, sn: Sn, time2wait: u16, time2retain: u16 },
    /// Ready To Transfer.
    R2t { lun: u64, itt: u32, ttt: u32, sn: Sn, r2t_sn: u32, offset: u32, length: u32 },
    /// Reject; `header` is the rejected PDU's BHS.
    Reject { reason: u8, sn: Sn, data_sn: u32, header: [u8; BHS_LEN] },
}

fn get32(b: &[u8; BHS_LEN], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn get16(b: &[u8; BHS_LEN], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn get64(b: &[u8; BHS_LEN], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn put32(b: &mut [u8; BHS_LEN], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn put16(b: &mut [u8; BHS_LEN], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn put64(b: &mut [u8; BHS_LEN], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

fn put_sn(b: &mut [u8; BHS_LEN], sn: Sn) {
    put32(b, 24, sn.stat_sn);
    put32(b, 28, sn.exp_cmd_sn);
    put32(b, 32, sn.max_cmd_sn);
}

fn get_sn(b: &[u8; BHS_LEN]) -> Sn {
    Sn { stat_sn: get32(b, 24), exp_cmd_sn: get32(b, 28), max_cmd_sn: get32(b, 32) }
}

/// Additional Header Segment type of an extended CDB.
const AHS_EXTENDED_CDB: u8 = 1;
/// Longest CDB accepted (16 in the BHS plus an extended CDB AHS).
pub const MAX_CDB_LEN: usize = 260;

/// The CDB of a SCSI Command: the BHS's 16 bytes, extended by an Extended CDB AHS if present.
fn cdb_from(bhs: &[u8; BHS_LEN], ahs: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut cdb = bhs[32..48].to_vec();
    let mut rest = ahs;
    while !rest.is_empty() {
        // AHSLength counts the bytes after AHSLength and AHSType; each AHS is padded to 4.
        let len = match rest {
            [a, b, _, _, ..] => u16::from_be_bytes([*a, *b]) as usize,
            _ => return Err(CodecError::InvalidField { field: "AHS length", value: rest.len() as u64 }),
        };
        let whole = (3 + len).div_ceil(4) * 4;
        if len == 0 || whole > rest.len() {
            return Err(CodecError::InvalidField { field: "AHSLength", value: len as u64 });
        }
        if rest[2] == AHS_EXTENDED_CDB {
            // The first specific byte is reserved; the CDB bytes beyond 16 follow.
            cdb.extend_from_slice(&rest[4..3 + len]);
            if cdb.len() > MAX_CDB_LEN {
                return Err(CodecError::InvalidField { field: "CDB length", value: cdb.len() as u64 });
            }
        }
        rest = &rest[whole..];
    }
    Ok(cdb)
}

fn cdb_into(cdb: &[u8], bhs: &mut [u8; BHS_LEN]) -> Vec<u8> {
    let head = cdb.len().min(16);
    bhs[32..32 + head].copy_from_slice(&cdb[..head]);
    if cdb.len() <= 16 {
        return Vec::new();
    }
    let extra = &cdb[16..];
    let mut ahs = Vec::with_capacity(extra.len() + 8);
    ahs.extend_from_slice(&((extra.len() + 1) as u16).to_be_bytes());
    ahs.push(AHS_EXTENDED_CDB);
    ahs.push(0);
    ahs.extend_from_slice(extra);
    ahs.resize(ahs.len().div_ceil(4) * 4, 0);
    ahs
}

impl Pdu {
    /// Decodes a frame received from an initiator. Target PDUs are decoded too (tests and
    /// tools play the initiator with them).
    pub fn from_frame(f: Frame) -> Result<Pdu, CodecError> {
        let b = &f.bhs;
        let opcode = b[0] & 0x3f;
        let immediate = b[0] & IMMEDIATE != 0;
        let final_ = b[1] & FINAL != 0;
        let lun = get64(b, 8);
        let itt = get32(b, 16);
        let pdu = match opcode {
            op::NOP_OUT => Pdu::NopOut {
                immediate,
                lun,
                itt,
                ttt: get32(b, 20),
                cmd_sn: get32(b, 24),
                exp_stat_sn: get32(b, 28),
                data: f.data,
            },
            op::SCSI_COMMAND => Pdu::ScsiCommand {
                immediate,
                final_,
                read: b[1] & 0x40 != 0,
                write: b[1] & 0x20 != 0,
                attr: b[1] & 0x07,
                lun,
                itt,
                expected_len: get32(b, 20),
                cmd_sn: get32(b, 24),
                exp_stat_sn: get32(b, 28),
                cdb: cdb_from(b, &f.ahs)?,
                data: f.data,
            },
            op::TASK_MGMT => Pdu::TaskMgmt {
                immediate,
                function: b[1] & 0x7f,
                lun,
                itt,
                ref_itt: get32(b, 20),
                cmd_sn: get32(b, 24),
                exp_stat_sn: get32(b, 28),
                ref_cmd_sn: get32(b, 32),
                exp_data_sn: get32(b, 36),
            },
            op::LOGIN => Pdu::Login {
                head: LoginHead::decode(b),
                itt,
                cid: get16(b, 20),
                cmd_sn: get32(b, 24),
                exp_stat_sn: get32(b, 28),
                data: f.data,
            },
            op::TEXT => Pdu::Text {
                immediate,
                final_,
                cont: b[1] & CONTINUE != 0,
                lun,
                itt,
                ttt: get32(b, 20),
                cmd_sn: get32(b, 24),
                exp_stat_sn: get32(b, 28),
                data: f.data,
            },
            op::DATA_OUT => Pdu::DataOut {
                final_,
                lun,
                itt,
                ttt: get32(b, 20),
                exp_stat_sn: get32(b, 28),
                data_sn: get32(b, 36),
                offset: get32(b, 40),
                data: f.data,
            },
            op::LOGOUT => Pdu::Logout {
                immediate,
                reason: b[1] & 0x7f,
                itt,
                cid: get16(b, 20),
                cmd_sn: get32(b, 24),
                exp_stat_sn: get32(b, 28),
            },
            op::SNACK => {
                // Kept for the Reject; the length fields describe this frame only.
                let mut header = *b;
                header[4..8].fill(0);
                Pdu::Snack { itt, header }
            }
            op::NOP_IN => Pdu::NopIn { lun, itt, ttt: get32(b, 20), sn: get_sn(b), data: f.data },
            op::SCSI_RESPONSE => {
                let sense = match f.data.len() {
                    0 => Vec::new(),
                    1 => return Err(CodecError::InvalidField { field: "SenseLength", value: 1 }),
                    n => {
                        let len = u16::from_be_bytes([f.data[0], f.data[1]]) as usize;
                        if len + 2 > n {
                            return Err(CodecError::InvalidField { field: "SenseLength", value: len as u64 });
                        }
                        f.data[2..2 + len].to_vec()
                    }
                };
                Pdu::ScsiResponse {
                    response: b[2],
                    status: b[3],
                    itt,
                    sn: get_sn(b),
                    exp_data_sn: get32(b, 36),
                    residual: Residual::from_bits(b[1], get32(b, 44)),
                    sense,
                }
            }
            op::TASK_MGMT_RESPONSE => Pdu::TaskMgmtResponse { response: b[2], itt, sn: get_sn(b) },
            op::LOGIN_RESPONSE => Pdu::LoginResponse {
                head: LoginHead::decode(b),
                itt,
                sn: get_sn(b),
                status_class: b[36],
                status_detail: b[37],
                data: f.data,
            },
            op::TEXT_RESPONSE => Pdu::TextResponse {
                final_,
                cont: b[1] & CONTINUE != 0,
                lun,
                itt,
                ttt: get32(b, 20),
                sn: get_sn(b),
                data: f.data,
            },
            // The residual is meaningful only with the status (S), which implies F.
            op::DATA_IN => Pdu::DataIn {
                final_: final_ || b[1] & 0x01 != 0,
                status: (b[1] & 0x01 != 0).then_some(b[3]),
                residual: if b[1] & 0x01 != 0 { Residual::from_bits(b[1], get32(b, 44)) } else { Residual::None },
                lun,
                itt,
                ttt: get32(b, 20),
                sn: get_sn(b),
                data_sn: get32(b, 36),
                offset: get32(b, 40),
                data: f.data,
            },
            op::LOGOUT_RESPONSE => Pdu::LogoutResponse {
                response: b[2],
                itt,
                sn: get_sn(b),
                time2wait: get16(b, 40),
                time2retain: get16(b, 42),
            },
            op::R2T => Pdu::R2t {
                lun,
                itt,
                ttt: get32(b, 20),
                sn: get_sn(b),
                r2t_sn: get32(b, 36),
                offset: get32(b, 40),
                length: get32(b, 44),
            },
            op::REJECT => {
                let header: [u8; BHS_LEN] = f
                    .data
                    .get(..BHS_LEN)
                    .and_then(|h| h.try_into().ok())
                    .ok_or(CodecError::InvalidField { field: "Reject data length", value: f.data.len() as u64 })?;
                Pdu::Reject { reason: b[2], sn: get_sn(b), data_sn: get32(b, 36), header }
            }
            other => return Err(CodecError::UnknownOpcode(other)),
        };
        Ok(pdu)
    }

    /// [`Pdu::to_frame`] without copying the data segment of the PDUs that carry bulk data
    /// (Data-In, Data-Out, SCSI Command).
    pub fn into_frame(mut self) -> Frame {
        let data = match &mut self {
            Pdu::DataIn { data, .. } | Pdu::DataOut { data, .. } | Pdu::ScsiCommand { data, .. } => {
                std::mem::take(data)
            }
            _ => return self.to_frame(),
        };
        let mut frame = self.to_frame();
        frame.data = data;
        frame
    }

    /// Encodes the PDU as a frame (lengths are set by [`crate::frame::encode`]).
    pub fn to_frame(&self) -> Frame {
        let mut b = [0u8; BHS_LEN];
        let mut ahs = Vec::new();
        let imm = |i: bool| if i { IMMEDIATE } else { 0 };
        let fin = |f: bool| if f { FINAL } else { 0 };
        let cont = |c: bool| if c { CONTINUE } else { 0 };
        let data: Vec<u8> = match self {
            Pdu::NopOut { immediate, lun, itt, ttt, cmd_sn, exp_stat_sn, data } => {
                b[0] = op::NOP_OUT | imm(*immediate);
                b[1] = FINAL;
                put64(&mut b, 8, *lun);
                put32(&mut b, 16, *itt);
                put32(&mut b, 20, *ttt);
                put32(&mut b, 24, *cmd_sn);
                put32(&mut b, 28, *exp_stat_sn);
                data.clone()
            }
            Pdu::ScsiCommand {
                immediate,
                final_,
                read,
                write,
                attr,
                lun,
                itt,
                expected_len,
                cmd_sn,
                exp_stat_sn,
                cdb,
                data,
            } => {
                b[0] = op::SCSI_COMMAND | imm(*immediate);
                b[1] = fin(*final_) | if *read { 0x40 } else { 0 } | if *write { 0x20 } else { 0 } | (attr & 7);
                put64(&mut b, 8, *lun);
                put32(&mut b, 16, *itt);
                put32(&mut b, 20, *expected_len);
                put32(&mut b, 24, *cmd_sn);
                put32(&mut b, 28, *exp_stat_sn);
                ahs = cdb_into(cdb, &mut b);
                data.clone()
            }
            Pdu::TaskMgmt { immediate, function, lun, itt, ref_itt, cmd_sn, exp_stat_sn, ref_cmd_sn, exp_data_sn } => {
                b[0] = op::TASK_MGMT | imm(*immediate);
                b[1] = FINAL | (function & 0x7f);
                put64(&mut b, 8, *lun);
                put32(&mut b, 16, *itt);
                put32(&mut b, 20, *ref_itt);
                put32(&mut b, 24, *cmd_sn);
                put32(&mut b, 28, *exp_stat_sn);
                put32(&mut b, 32, *ref_cmd_sn);
                put32(&mut b, 36, *exp_data_sn);
                Vec::new()
            }
            Pdu::Login { head, itt, cid, cmd_sn, exp_stat_sn, data } => {
                b[0] = op::LOGIN | IMMEDIATE;
                head.encode(&mut b);
                put32(&mut b, 16, *itt);
                put16(&mut b, 20, *cid);
                put32(&mut b, 24, *cmd_sn);
                put32(&mut b, 28, *exp_stat_sn);
                data.clone()
            }
            Pdu::Text { immediate, final_, cont: c, lun, itt, ttt, cmd_sn, exp_stat_sn, data } => {
                b[0] = op::TEXT | imm(*immediate);
                b[1] = fin(*final_) | cont(*c);
                put64(&mut b, 8, *lun);
                put32(&mut b, 16, *itt);
                put32(&mut b, 20, *ttt);
                put32(&mut b, 24, *cmd_sn);
                put32(&mut b, 28, *exp_stat_sn);
                data.clone()
            }
            Pdu::DataOut { final_, lun, itt, ttt, exp_stat_sn, data_sn, offset, data } => {
                b[0] = op::DATA_OUT;
                b[1] = fin(*final_);
                put64(&mut b, 8, *lun);
                put32(&mut b, 16, *itt);
                put32(&mut b, 20, *ttt);
                put32(&mut b, 28, *exp_stat_sn);
                put32(&mut b, 36, *data_sn);
                put32(&mut b, 40, *offset);
                data.clone()
            }
            Pdu::Logout { immediate, reason, itt, cid, cmd_sn, exp_stat_sn } => {
                b[0] = op::LOGOUT | imm(*immediate);
                b[1] = FINAL | (reason & 0x7f);
                put32(&mut b, 16, *itt);
                put16(&mut b, 20, *cid);
                put32(&mut b, 24, *cmd_sn);
                put32(&mut b, 28, *exp_stat_sn);
                Vec::new()
            }
            Pdu::Snack { header, .. } => {
                b = *header;
                Vec::new()
            }
            Pdu::NopIn { lun, itt, ttt, sn, data } => {
                b[0] = op::NOP_IN;
                b[1] = FINAL;
                put64(&mut b, 8, *lun);
                put32(&mut b, 16, *itt);
                put32(&mut b, 20, *ttt);
                put_sn(&mut b, *sn);
                data.clone()
            }
            Pdu::ScsiResponse { response, status, itt, sn, exp_data_sn, residual, sense } => {
                b[0] = op::SCSI_RESPONSE;
                b[1] = FINAL | residual.flags();
                b[2] = *response;
                b[3] = *status;
                put32(&mut b, 16, *itt);
                put_sn(&mut b, *sn);
                put32(&mut b, 36, *exp_data_sn);
                put32(&mut b, 44, residual.count());
                if sense.is_empty() {
                    Vec::new()
                } else {
                    let len = sense.len().min(u16::MAX as usize);
                    let mut d = Vec::with_capacity(len + 2);
                    d.extend_from_slice(&(len as u16).to_be_bytes());
                    d.extend_from_slice(&sense[..len]);
                    d
                }
            }
            Pdu::TaskMgmtResponse { response, itt, sn } => {
                b[0] = op::TASK_MGMT_RESPONSE;
                b[1] = FINAL;
                b[2] = *response;
                put32(&mut b, 16, *itt);
                put_sn(&mut b, *sn);
                Vec::new()
            }
            Pdu::LoginResponse { head, itt, sn, status_class, status_detail, data } => {
                b[0] = op::LOGIN_RESPONSE;
                head.encode(&mut b);
                put32(&mut b, 16, *itt);
                put_sn(&mut b, *sn);
                b[36] = *status_class;
                b[37] = *status_detail;
                data.clone()
            }
            Pdu::TextResponse { final_, cont: c, lun, itt, ttt, sn, data } => {
                b[0] = op::TEXT_RESPONSE;
                b[1] = fin(*final_) | cont(*c);
                put64(&mut b, 8, *lun);
                put32(&mut b, 16, *itt);
                put32(&mut b, 20, *ttt);
                put_sn(&mut b, *sn);
                data.clone()
            }
            Pdu::DataIn { final_, status, residual, lun, itt, ttt, sn, data_sn, offset, data } => {
                b[0] = op::DATA_IN;
                b[1] = fin(*final_ || status.is_some());
                if let Some(s) = status {
                    b[1] |= 0x01 | residual.flags();
                    b[3] = *s;
                    put32(&mut b, 44, residual.count());
                }
                put64(&mut b, 8, *lun);
                put32(&mut b, 16, *itt);
                put32(&mut b, 20, *ttt);
                put_sn(&mut b, *sn);
                put32(&mut b, 36, *data_sn);
                put32(&mut b, 40, *offset);
                data.clone()
            }
            Pdu::LogoutResponse { response, itt, sn, time2wait, time2retain } => {
                b[0] = op::LOGOUT_RESPONSE;
                b[1] = FINAL;
                b[2] = *response;
                put32(&mut b, 16, *itt);
                put_sn(&mut b, *sn);
                put16(&mut b, 40, *time2wait);
                put16(&mut b, 42, *time2retain);
                Vec::new()
            }
            Pdu::R2t { lun, itt, ttt, sn, r2t_sn, offset, length } => {
                b[0] = op::R2T;
                b[1] = FINAL;
                put64(&mut b, 8, *lun);
                put32(&mut b, 16, *itt);
                put32(&mut b, 20, *ttt);
                put_sn(&mut b, *sn);
                put32(&mut b, 36, *r2t_sn);
                put32(&mut b, 40, *offset);
                put32(&mut b, 44, *length);
                Vec::new()
            }
            Pdu::Reject { reason, sn, data_sn, header } => {
                b[0] = op::REJECT;
                b[1] = FINAL;
                b[2] = *reason;
                put32(&mut b, 16, RESERVED_TAG);
                put_sn(&mut b, *sn);
                put32(&mut b, 36, *data_sn);
                header.to_vec()
            }
        };
        Frame { bhs: b, ahs, data }
    }
}
