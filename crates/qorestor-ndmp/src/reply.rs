//! Replies and posts (notifications, log messages) from the server, encoded as XDR bodies.
//! A reply whose error is not NO_ERR still carries its whole body (the error, then zeros), so
//! every reply has the shape its message code defines.

use crate::message::{code, Header, NdmpError, MESSAGE_REPLY, MESSAGE_REQUEST};
use crate::record::encode_record;
use crate::request::TcpAddr;
use crate::xdr::Encoder;

/// A device in CONFIG_GET_TAPE_INFO or CONFIG_GET_SCSI_INFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Model (e.g. "IBM ULT3580-TD5").
    pub model: String,
    /// The name TAPE_OPEN or SCSI_OPEN takes.
    pub device: String,
    /// Capability pairs.
    pub capability: Vec<(String, String)>,
}

/// MOVER_GET_STATE's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MoverStateReply {
    /// Mode.
    pub mode: u32,
    /// State.
    pub state: u32,
    /// Pause reason.
    pub pause_reason: u32,
    /// Halt reason.
    pub halt_reason: u32,
    /// Record size.
    pub record_size: u32,
    /// Records moved.
    pub record_num: u32,
    /// Bytes moved.
    pub bytes_moved: u64,
    /// Seek position.
    pub seek_position: u64,
    /// Bytes left of the current MOVER_READ.
    pub bytes_left_to_read: u64,
    /// Window offset.
    pub window_offset: u64,
    /// Window length.
    pub window_length: u64,
    /// Data connection address (TCP), if any.
    pub data_connection: Option<TcpAddr>,
}

/// TAPE_GET_STATE's invalid (v3) / unsupported (v4) bit: soft errors.
const TAPE_STATE_SOFT_ERRORS_UNKNOWN: u32 = 0x2;
/// TAPE_GET_STATE's invalid (v3) / unsupported (v4) bit: block number
/// (NDMP3_TAPE_STATE_BLOCKNO_INVALID, NDMP4_TAPE_STATE_BLOCKNO_UNS).
const TAPE_STATE_BLOCKNO_UNKNOWN: u32 = 0x8;
/// The value of a 32-bit field that is not known.
const UNKNOWN_U32: u32 = u32::MAX;

/// TAPE_GET_STATE's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TapeStateReply {
    /// Flags (WR_PROT...).
    pub flags: u32,
    /// File number.
    pub file_num: u32,
    /// Block size (0: variable).
    pub block_size: u32,
    /// Block number within the file; `None` when it is not known (after moving back over a
    /// filemark), sent as `0xFFFFFFFF` with the BLOCKNO invalid (v3) / unsupported (v4) bit.
    pub blockno: Option<u32>,
    /// Capacity.
    pub total_space: u64,
    /// Space left.
    pub space_remain: u64,
}

/// A reply body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Only the error (then zeros for the rest of the message's body).
    Error(NdmpError),
    /// CONFIG_GET_HOST_INFO.
    HostInfo {
        /// Host name.
        hostname: String,
        /// OS type.
        os_type: String,
        /// OS version.
        os_vers: String,
        /// Host id.
        hostid: String,
    },
    /// CONFIG_GET_SERVER_INFO.
    ServerInfo {
        /// Vendor.
        vendor: String,
        /// Product.
        product: String,
        /// Revision.
        revision: String,
        /// Authentication types.
        auth_types: Vec<u32>,
    },
    /// CONFIG_GET_CONNECTION_TYPE.
    ConnectionTypes(Vec<u32>),
    /// CONFIG_GET_AUTH_ATTR (the challenge for MD5).
    AuthAttr {
        /// The type.
        auth_type: u32,
        /// MD5 challenge.
        challenge: [u8; 64],
    },
    /// CONFIG_GET_TAPE_INFO / GET_SCSI_INFO.
    Devices(Vec<DeviceInfo>),
    /// An empty list (CONFIG_GET_BUTYPE_INFO, GET_FS_INFO, GET_EXT_LIST of a tape-only
    /// server without extensions).
    EmptyList,
    /// EXECUTE_CDB.
    ExecuteCdb {
        /// SCSI status.
        status: u8,
        /// Data out accepted.
        dataout_len: u32,
        /// Data in.
        datain: Vec<u8>,
        /// Sense data.
        sense: Vec<u8>,
    },
    /// TAPE_GET_STATE.
    TapeState(TapeStateReply),
    /// TAPE_MTIO (residual count) and TAPE_WRITE (count written), with an error.
    Count(NdmpError, u32),
    /// TAPE_READ, with an error.
    Data(NdmpError, Vec<u8>),
    /// MOVER_GET_STATE.
    MoverState(MoverStateReply),
    /// MOVER_LISTEN: where to connect.
    Listen(TcpAddr),
}

/// An address: `ndmp4_addr` (a one-element TCP list without environment) or `ndmp3_addr`.
fn tcp_addr(version: u16, e: &mut Encoder, a: Option<TcpAddr>) {
    match a {
        None => e.u32(0),
        Some(a) if version < 4 => e.u32(1).u32(a.ip).u32(a.port as u32),
        Some(a) => e.u32(1).u32(1).u32(a.ip).u32(a.port as u32).u32(0),
    };
}

/// A halt reason as `version` knows it (v3 has no MEDIA_ERROR halt: INTERNAL_ERROR).
fn halt_reason(version: u16, r: u32) -> u32 {
    if version < 4 && r == crate::mover::halt::MEDIA_ERROR {
        crate::mover::halt::INTERNAL_ERROR
    } else {
        r
    }
}

/// Number of zero words after the error in an error reply of `message_code`.
fn error_tail(version: u16, message_code: u32) -> usize {
    match message_code {
        // v3: TAPE_GET_STATE ends with a partition number; MOVER_GET_STATE has no mode.
        code::TAPE_GET_STATE if version < 4 => 10,
        code::MOVER_GET_STATE if version < 4 => 16,
        code::CONFIG_GET_HOST_INFO | code::CONFIG_GET_SERVER_INFO => 4,
        code::SCSI_GET_STATE => 3,
        code::SCSI_EXECUTE_CDB | code::TAPE_EXECUTE_CDB => 4,
        code::TAPE_GET_STATE => 9,
        code::MOVER_GET_STATE => 17,
        code::CONFIG_GET_CONNECTION_TYPE
        | code::CONFIG_GET_AUTH_ATTR
        | code::CONFIG_GET_BUTYPE_INFO
        | code::CONFIG_GET_FS_INFO
        | code::CONFIG_GET_TAPE_INFO
        | code::CONFIG_GET_SCSI_INFO
        | code::CONFIG_GET_EXT_LIST
        | code::CONNECT_SERVER_AUTH
        | code::TAPE_MTIO
        | code::TAPE_WRITE
        | code::TAPE_READ
        | code::MOVER_LISTEN => 1,
        _ => 0,
    }
}

/// Encodes the body of a reply to `message_code` in protocol `version`.
pub fn encode_reply(version: u16, message_code: u32, reply: &Reply) -> Vec<u8> {
    let mut e = Encoder::new();
    let ok = NdmpError::NoErr as u32;
    match reply {
        Reply::Error(err) => {
            if message_code == code::TAPE_GET_STATE {
                e.u32(0);
            }
            e.u32(*err as u32);
            for _ in 0..error_tail(version, message_code) {
                e.u32(0);
            }
        }
        Reply::HostInfo { hostname, os_type, os_vers, hostid } => {
            e.u32(ok).string(hostname).string(os_type).string(os_vers).string(hostid);
        }
        Reply::ServerInfo { vendor, product, revision, auth_types } => {
            e.u32(ok).string(vendor).string(product).string(revision).u32(auth_types.len() as u32);
            for t in auth_types {
                e.u32(*t);
            }
        }
        Reply::ConnectionTypes(types) => {
            e.u32(ok).u32(types.len() as u32);
            for t in types {
                e.u32(*t);
            }
        }
        Reply::AuthAttr { auth_type, challenge } => {
            e.u32(ok).u32(*auth_type);
            if *auth_type == crate::message::auth_type::MD5 {
                e.fixed(challenge);
            }
        }
        Reply::Devices(devices) => {
            e.u32(ok).u32(devices.len() as u32);
            for d in devices {
                e.string(&d.model).u32(1).string(&d.device).u32(0).u32(d.capability.len() as u32);
                for (k, v) in &d.capability {
                    e.string(k).string(v);
                }
            }
        }
        Reply::EmptyList => {
            e.u32(ok).u32(0);
        }
        Reply::ExecuteCdb { status, dataout_len, datain, sense } => {
            e.u32(ok).u32(*status as u32).u32(*dataout_len).opaque(datain).opaque(sense);
        }
        Reply::TapeState(s) => {
            // invalid (v3) / unsupported (v4): soft errors are not counted, and the block
            // number may be unknown.
            let unknown = if s.blockno.is_none() { TAPE_STATE_BLOCKNO_UNKNOWN } else { 0 };
            e.u32(TAPE_STATE_SOFT_ERRORS_UNKNOWN | unknown)
                .u32(ok)
                .u32(s.flags)
                .u32(s.file_num)
                .u32(0)
                .u32(s.block_size)
                .u32(s.blockno.unwrap_or(UNKNOWN_U32))
                .u64(s.total_space)
                .u64(s.space_remain);
            if version < 4 {
                e.u32(0); // partition
            }
        }
        Reply::Count(err, n) => {
            e.u32(*err as u32).u32(*n);
        }
        Reply::Data(err, data) => {
            e.u32(*err as u32).opaque(data);
        }
        Reply::MoverState(s) => {
            e.u32(ok);
            if version >= 4 {
                e.u32(s.mode);
            }
            e.u32(s.state)
                .u32(s.pause_reason)
                .u32(halt_reason(version, s.halt_reason))
                .u32(s.record_size)
                .u32(s.record_num)
                .u64(s.bytes_moved)
                .u64(s.seek_position)
                .u64(s.bytes_left_to_read)
                .u64(s.window_offset)
                .u64(s.window_length);
            tcp_addr(version, &mut e, s.data_connection);
        }
        Reply::Listen(a) => {
            e.u32(ok);
            tcp_addr(version, &mut e, Some(*a));
        }
    }
    e.into_bytes()
}

/// A message from the server that is not a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Post {
    /// NOTIFY_CONNECTION_STATUS: reason 0 connected, 1 shutdown, 2 refused.
    ConnectionStatus {
        /// Reason.
        reason: u32,
        /// Highest version offered.
        version: u16,
        /// Text.
        text: String,
    },
    /// NOTIFY_MOVER_HALTED.
    MoverHalted(u32),
    /// NOTIFY_MOVER_PAUSED.
    MoverPaused {
        /// Pause reason.
        reason: u32,
        /// Seek position.
        seek_position: u64,
    },
    /// LOG_MESSAGE.
    Log {
        /// 0 normal, 1 debug, 2 error, 3 warning.
        log_type: u32,
        /// Message id.
        id: u32,
        /// Text.
        text: String,
    },
}

impl Post {
    /// The message code.
    pub fn code(&self) -> u32 {
        match self {
            Post::ConnectionStatus { .. } => code::NOTIFY_CONNECTION_STATUS,
            Post::MoverHalted(_) => code::NOTIFY_MOVER_HALTED,
            Post::MoverPaused { .. } => code::NOTIFY_MOVER_PAUSED,
            Post::Log { .. } => code::LOG_MESSAGE,
        }
    }

    /// The body in protocol `version` (v3: NOTIFY_MOVER_HALTED has a text reason, LOG_MESSAGE
    /// no associated message).
    pub fn encode(&self, version: u16) -> Vec<u8> {
        let mut e = Encoder::new();
        match self {
            Post::ConnectionStatus { reason, version, text } => {
                e.u32(*reason).u32(*version as u32).string(text);
            }
            Post::MoverHalted(r) => {
                e.u32(halt_reason(version, *r));
                if version < 4 {
                    e.string(""); // v3: text_reason
                }
            }
            Post::MoverPaused { reason, seek_position } => {
                e.u32(*reason).u64(*seek_position);
            }
            Post::Log { log_type, id, text } => {
                e.u32(*log_type).u32(*id).string(text);
                if version >= 4 {
                    e.u32(0).u32(0);
                }
            }
        }
        e.into_bytes()
    }
}

/// Frames a whole message: header and body in one record.
pub fn frame(header: &Header, body: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new();
    header.encode(&mut e);
    let mut msg = e.into_bytes();
    msg.extend_from_slice(body);
    encode_record(&msg)
}

/// Numbers outgoing messages and frames replies and posts.
#[derive(Debug)]
pub struct Outgoing {
    sequence: u32,
    /// The protocol version posts are encoded in (the session's, once CONNECT_OPEN chose it).
    pub version: u16,
}

impl Default for Outgoing {
    fn default() -> Self {
        Outgoing { sequence: 0, version: crate::message::VERSION }
    }
}

fn now() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0)
}

impl Outgoing {
    fn next(&mut self) -> u32 {
        self.sequence = self.sequence.wrapping_add(1);
        self.sequence
    }

    /// A framed reply to request `request` with a header error (and then no body if not
    /// NO_ERR).
    pub fn reply(&mut self, request: &Header, header_error: NdmpError, body: &[u8]) -> Vec<u8> {
        let h = Header {
            sequence: self.next(),
            time_stamp: now(),
            message_type: MESSAGE_REPLY,
            message_code: request.message_code,
            reply_sequence: request.sequence,
            error: header_error as u32,
        };
        frame(&h, if header_error == NdmpError::NoErr { body } else { &[] })
    }

    /// A framed post.
    pub fn post(&mut self, post: &Post) -> Vec<u8> {
        let h = Header {
            sequence: self.next(),
            time_stamp: now(),
            message_type: MESSAGE_REQUEST,
            message_code: post.code(),
            reply_sequence: 0,
            error: 0,
        };
        frame(&h, &post.encode(self.version))
    }
}
