//! NDMP message codes, error codes, enumerations and the message header (NDMP v4,
//! draft-skardal-ndmpv4; v3 shares the codes used here).

use crate::error::DecodeError;
use crate::xdr::{Decoder, Encoder};

/// Highest protocol version this server speaks (offered in NOTIFY_CONNECTION_STATUS).
pub const VERSION: u16 = 4;
/// Lowest protocol version accepted by CONNECT_OPEN.
pub const MIN_VERSION: u16 = 3;

/// Message codes.
pub mod code {
    #![allow(missing_docs)]
    pub const CONNECT_OPEN: u32 = 0x900;
    pub const CONNECT_CLIENT_AUTH: u32 = 0x901;
    pub const CONNECT_CLOSE: u32 = 0x902;
    pub const CONNECT_SERVER_AUTH: u32 = 0x903;
    pub const CONFIG_GET_HOST_INFO: u32 = 0x100;
    pub const CONFIG_GET_CONNECTION_TYPE: u32 = 0x102;
    pub const CONFIG_GET_AUTH_ATTR: u32 = 0x103;
    pub const CONFIG_GET_BUTYPE_INFO: u32 = 0x104;
    pub const CONFIG_GET_FS_INFO: u32 = 0x105;
    pub const CONFIG_GET_TAPE_INFO: u32 = 0x106;
    pub const CONFIG_GET_SCSI_INFO: u32 = 0x107;
    pub const CONFIG_GET_SERVER_INFO: u32 = 0x108;
    pub const CONFIG_SET_EXT_LIST: u32 = 0x109;
    pub const CONFIG_GET_EXT_LIST: u32 = 0x10A;
    pub const SCSI_OPEN: u32 = 0x200;
    pub const SCSI_CLOSE: u32 = 0x201;
    pub const SCSI_GET_STATE: u32 = 0x202;
    pub const SCSI_RESET_DEVICE: u32 = 0x204;
    pub const SCSI_EXECUTE_CDB: u32 = 0x206;
    pub const TAPE_OPEN: u32 = 0x300;
    pub const TAPE_CLOSE: u32 = 0x301;
    pub const TAPE_GET_STATE: u32 = 0x302;
    pub const TAPE_MTIO: u32 = 0x303;
    pub const TAPE_WRITE: u32 = 0x304;
    pub const TAPE_READ: u32 = 0x305;
    pub const TAPE_EXECUTE_CDB: u32 = 0x307;
    pub const NOTIFY_CONNECTION_STATUS: u32 = 0x502;
    pub const NOTIFY_MOVER_HALTED: u32 = 0x503;
    pub const NOTIFY_MOVER_PAUSED: u32 = 0x504;
    pub const LOG_MESSAGE: u32 = 0x603;
    pub const MOVER_GET_STATE: u32 = 0xA00;
    pub const MOVER_LISTEN: u32 = 0xA01;
    pub const MOVER_CONTINUE: u32 = 0xA02;
    pub const MOVER_ABORT: u32 = 0xA03;
    pub const MOVER_STOP: u32 = 0xA04;
    pub const MOVER_SET_WINDOW: u32 = 0xA05;
    pub const MOVER_READ: u32 = 0xA06;
    pub const MOVER_CLOSE: u32 = 0xA07;
    pub const MOVER_SET_RECORD_SIZE: u32 = 0xA08;
    pub const MOVER_CONNECT: u32 = 0xA09;
}

/// NDMP error codes (`ndmp4_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
#[allow(missing_docs)]
pub enum NdmpError {
    NoErr = 0,
    NotSupported = 1,
    DeviceBusy = 2,
    DeviceOpened = 3,
    NotAuthorized = 4,
    Permission = 5,
    DevNotOpen = 6,
    Io = 7,
    IllegalArgs = 9,
    NoTapeLoaded = 10,
    WriteProtect = 11,
    Eof = 12,
    Eom = 13,
    NoDevice = 16,
    XdrDecode = 18,
    IllegalState = 19,
    Undefined = 20,
    Connect = 23,
    SequenceNum = 24,
    Precondition = 26,
    ClassNotSupported = 27,
}

/// Tape open modes.
pub mod tape_mode {
    #![allow(missing_docs)]
    pub const READ: u32 = 0;
    pub const RDWR: u32 = 1;
    pub const RAW: u32 = 2;
}

/// Mover modes: in v4, READ means "read from the network, write to tape" (a backup).
pub mod mover_mode {
    #![allow(missing_docs)]
    pub const READ: u32 = 0;
    pub const WRITE: u32 = 1;
}

/// Address types.
pub mod addr_type {
    #![allow(missing_docs)]
    pub const LOCAL: u32 = 0;
    pub const TCP: u32 = 1;
}

/// Authentication types.
pub mod auth_type {
    #![allow(missing_docs)]
    pub const NONE: u32 = 0;
    pub const TEXT: u32 = 1;
    pub const MD5: u32 = 2;
}

/// Header message types.
pub const MESSAGE_REQUEST: u32 = 0;
/// A reply.
pub const MESSAGE_REPLY: u32 = 1;

/// Size of an encoded header.
pub const HEADER_LEN: usize = 24;

/// The header of every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Sender's sequence number.
    pub sequence: u32,
    /// Seconds since the epoch.
    pub time_stamp: u32,
    /// [`MESSAGE_REQUEST`] or [`MESSAGE_REPLY`].
    pub message_type: u32,
    /// The message code.
    pub message_code: u32,
    /// The request's sequence in a reply, else 0.
    pub reply_sequence: u32,
    /// Header-level error (e.g. NOT_SUPPORTED).
    pub error: u32,
}

impl Header {
    /// Decodes a header.
    pub fn decode(d: &mut Decoder<'_>) -> Result<Header, DecodeError> {
        let h = Header {
            sequence: d.u32("header sequence")?,
            time_stamp: d.u32("header time_stamp")?,
            message_type: d.u32("header message_type")?,
            message_code: d.u32("header message_code")?,
            reply_sequence: d.u32("header reply_sequence")?,
            error: d.u32("header error")?,
        };
        if h.message_type > MESSAGE_REPLY {
            return Err(DecodeError::BadValue { what: "header message_type", value: h.message_type as u64 });
        }
        Ok(h)
    }

    /// Encodes the header.
    pub fn encode(&self, e: &mut Encoder) {
        e.u32(self.sequence)
            .u32(self.time_stamp)
            .u32(self.message_type)
            .u32(self.message_code)
            .u32(self.reply_sequence)
            .u32(self.error);
    }
}
