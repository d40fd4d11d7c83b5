//! SCSI status codes, sense data (fixed format) and the response of a command.
//!
//! [`Sense`] holds what a CHECK CONDITION reports: the sense key, the additional sense code
//! and qualifier, the FILEMARK / EOM / ILI flags, the INFORMATION field (a residue) and, for
//! ILLEGAL REQUEST, the field pointer. [`Sense::to_fixed`] encodes the 18-byte fixed format
//! (response code 70h) that REQUEST SENSE and autosense return.

/// GOOD status.
pub const GOOD: u8 = 0x00;
/// CHECK CONDITION status.
pub const CHECK_CONDITION: u8 = 0x02;

/// Sense key NO SENSE (conditions such as filemark, early warning, beginning of medium).
pub const NO_SENSE: u8 = 0x0;
/// Sense key NOT READY.
pub const NOT_READY: u8 = 0x2;
/// Sense key MEDIUM ERROR.
pub const MEDIUM_ERROR: u8 = 0x3;
/// Sense key HARDWARE ERROR.
pub const HARDWARE_ERROR: u8 = 0x4;
/// Sense key ILLEGAL REQUEST.
pub const ILLEGAL_REQUEST: u8 = 0x5;
/// Sense key UNIT ATTENTION.
pub const UNIT_ATTENTION: u8 = 0x6;
/// Sense key DATA PROTECT.
pub const DATA_PROTECT: u8 = 0x7;
/// Sense key BLANK CHECK.
pub const BLANK_CHECK: u8 = 0x8;
/// Sense key VOLUME OVERFLOW.
pub const VOLUME_OVERFLOW: u8 = 0xD;

/// Length of fixed-format sense data.
pub const FIXED_SENSE_LEN: usize = 18;

/// Sense data of one condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sense {
    /// Sense key.
    pub key: u8,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
    /// FILEMARK bit: a filemark was read or spaced over.
    pub filemark: bool,
    /// EOM bit: end of medium (early warning or end of partition) or beginning of medium.
    pub eom: bool,
    /// ILI bit: the block read had another length than asked for.
    pub ili: bool,
    /// INFORMATION field (residue), with the VALID bit, when set.
    pub info: Option<i32>,
    /// Field pointer of an ILLEGAL REQUEST: (in the CDB rather than the parameter list, byte,
    /// bit).
    pub field: Option<(bool, u16, Option<u8>)>,
}

impl Sense {
    /// A sense with key, ASC and ASCQ.
    pub const fn new(key: u8, asc: u8, ascq: u8) -> Sense {
        Sense { key, asc, ascq, filemark: false, eom: false, ili: false, info: None, field: None }
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN CDB (5/24/00), pointing at `byte` (and `bit`).
    pub const fn invalid_cdb_field(byte: u16, bit: Option<u8>) -> Sense {
        let mut s = Sense::new(ILLEGAL_REQUEST, 0x24, 0x00);
        s.field = Some((true, byte, bit));
        s
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST (5/26/00), pointing at `byte`.
    pub const fn invalid_param_field(byte: u16) -> Sense {
        let mut s = Sense::new(ILLEGAL_REQUEST, 0x26, 0x00);
        s.field = Some((false, byte, None));
        s
    }

    /// ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE (5/20/00).
    pub const fn invalid_opcode() -> Sense {
        let mut s = Sense::new(ILLEGAL_REQUEST, 0x20, 0x00);
        s.field = Some((true, 0, Some(7)));
        s
    }

    /// ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED (5/25/00).
    pub const fn lun_not_supported() -> Sense {
        Sense::new(ILLEGAL_REQUEST, 0x25, 0x00)
    }

    /// NOT READY, MEDIUM NOT PRESENT (2/3A/00).
    pub const fn no_medium() -> Sense {
        Sense::new(NOT_READY, 0x3A, 0x00)
    }

    /// UNIT ATTENTION, POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (6/29/00).
    pub const fn power_on() -> Sense {
        Sense::new(UNIT_ATTENTION, 0x29, 0x00)
    }

    /// UNIT ATTENTION, NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED (6/28/00).
    pub const fn medium_changed() -> Sense {
        Sense::new(UNIT_ATTENTION, 0x28, 0x00)
    }

    /// UNIT ATTENTION, IMPORT OR EXPORT ELEMENT ACCESSED (6/28/01).
    pub const fn ie_accessed() -> Sense {
        Sense::new(UNIT_ATTENTION, 0x28, 0x01)
    }

    /// UNIT ATTENTION, MODE PARAMETERS CHANGED (6/2A/01).
    pub const fn mode_changed() -> Sense {
        Sense::new(UNIT_ATTENTION, 0x2A, 0x01)
    }

    /// DATA PROTECT, WRITE PROTECTED (7/27/00).
    pub const fn write_protected() -> Sense {
        Sense::new(DATA_PROTECT, 0x27, 0x00)
    }

    /// DATA PROTECT, WORM MEDIUM - OVERWRITE ATTEMPTED (7/30/0C).
    pub const fn worm_overwrite() -> Sense {
        Sense::new(DATA_PROTECT, 0x30, 0x0C)
    }

    /// ILLEGAL REQUEST, INVALID ELEMENT ADDRESS (5/21/01).
    pub const fn invalid_element() -> Sense {
        Sense::new(ILLEGAL_REQUEST, 0x21, 0x01)
    }

    /// HARDWARE ERROR, INTERNAL TARGET FAILURE (4/44/00): the engine failed.
    pub const fn internal_failure() -> Sense {
        Sense::new(HARDWARE_ERROR, 0x44, 0x00)
    }

    /// Sets the INFORMATION field (residue).
    pub const fn with_info(mut self, info: i32) -> Sense {
        self.info = Some(info);
        self
    }

    /// Sets the FILEMARK bit.
    pub const fn with_filemark(mut self) -> Sense {
        self.filemark = true;
        self
    }

    /// Sets the EOM bit.
    pub const fn with_eom(mut self) -> Sense {
        self.eom = true;
        self
    }

    /// Sets the ILI bit.
    pub const fn with_ili(mut self) -> Sense {
        self.ili = true;
        self
    }

    /// Encodes fixed-format sense data (response code 70h, current error).
    pub fn to_fixed(&self) -> [u8; FIXED_SENSE_LEN] {
        let mut b = [0u8; FIXED_SENSE_LEN];
        b[0] = 0x70;
        if let Some(info) = self.info {
            b[0] |= 0x80;
            b[3..7].copy_from_slice(&info.to_be_bytes());
        }
        b[2] = self.key & 0x0F;
        if self.filemark {
            b[2] |= 0x80;
        }
        if self.eom {
            b[2] |= 0x40;
        }
        if self.ili {
            b[2] |= 0x20;
        }
        b[7] = (FIXED_SENSE_LEN - 8) as u8;
        b[12] = self.asc;
        b[13] = self.ascq;
        if let Some((cdb, byte, bit)) = self.field {
            b[15] = 0x80 | if cdb { 0x40 } else { 0 };
            if let Some(bit) = bit {
                b[15] |= 0x08 | (bit & 7);
            }
            b[16..18].copy_from_slice(&byte.to_be_bytes());
        }
        b
    }
}

/// What a command returns: status, sense data (fixed format, empty unless CHECK CONDITION) and
/// the data-in buffer (which a CHECK CONDITION may carry too, e.g. a short read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiResponse {
    /// SCSI status ([`GOOD`] or [`CHECK_CONDITION`]).
    pub status: u8,
    /// Fixed-format sense data when the status is CHECK CONDITION.
    pub sense: Vec<u8>,
    /// Data for the initiator.
    pub data_in: Vec<u8>,
}

impl ScsiResponse {
    /// GOOD with data.
    pub fn good(data_in: Vec<u8>) -> ScsiResponse {
        ScsiResponse { status: GOOD, sense: Vec::new(), data_in }
    }

    /// CHECK CONDITION with `sense` and data.
    pub fn check(sense: Sense, data_in: Vec<u8>) -> ScsiResponse {
        ScsiResponse { status: CHECK_CONDITION, sense: sense.to_fixed().to_vec(), data_in }
    }

    /// The decoded sense key, ASC and ASCQ (zeros without sense data).
    pub fn sense_code(&self) -> (u8, u8, u8) {
        match self.sense.len() {
            n if n >= 14 => (self.sense[2] & 0x0F, self.sense[12], self.sense[13]),
            _ => (0, 0, 0),
        }
    }

    /// The INFORMATION field if its VALID bit is set.
    pub fn sense_info(&self) -> Option<i32> {
        (self.sense.len() >= 7 && self.sense[0] & 0x80 != 0)
            .then(|| i32::from_be_bytes([self.sense[3], self.sense[4], self.sense[5], self.sense[6]]))
    }

    /// The FILEMARK, EOM and ILI bits of the sense data.
    pub fn sense_flags(&self) -> (bool, bool, bool) {
        match self.sense.get(2) {
            Some(&b) => (b & 0x80 != 0, b & 0x40 != 0, b & 0x20 != 0),
            None => (false, false, false),
        }
    }
}

/// The result of a command before encoding: data plus an optional condition.
pub(crate) type Outcome = Result<Vec<u8>, (Sense, Vec<u8>)>;

/// Turns an outcome into a response, cutting data to the allocation length where one applies.
pub(crate) fn respond(outcome: Outcome) -> ScsiResponse {
    match outcome {
        Ok(data) => ScsiResponse::good(data),
        Err((sense, data)) => ScsiResponse::check(sense, data),
    }
}
