//! Requests from the DMA, decoded from a message body ([`decode_request`]). Pure: every length
//! and count is bounded before allocation, and any bytes give a request or a [`DecodeError`].

use crate::error::DecodeError;
use crate::message::{auth_type, code};
use crate::xdr::Decoder;

/// Longest string accepted (device names, user names, passwords).
pub const MAX_STRING: usize = 1024;
/// Largest TAPE_WRITE, TAPE_READ or EXECUTE_CDB data transfer.
pub const MAX_IO: usize = qorestor_vtl::MAX_BLOCK_LEN as usize;
/// Longest CDB accepted.
pub const MAX_CDB: usize = 260;
/// Most elements accepted in an array (extension classes, addresses, environment).
pub const MAX_ITEMS: usize = 64;

/// CONNECT_CLIENT_AUTH credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    None,
    /// Clear text.
    Text {
        /// User.
        user: String,
        /// Password.
        password: String,
    },
    /// MD5 digest of the password and the server's challenge.
    Md5 {
        /// User.
        user: String,
        /// Digest.
        digest: [u8; 16],
    },
}

/// An EXECUTE_CDB request (SCSI or TAPE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecuteCdb {
    /// DATA_IN (1) / DATA_OUT (2) flags.
    pub flags: u32,
    /// Timeout, milliseconds.
    pub timeout: u32,
    /// Bytes of data in expected.
    pub datain_len: u32,
    /// The CDB.
    pub cdb: Vec<u8>,
    /// Data out.
    pub dataout: Vec<u8>,
}

/// A TCP address of an `ndmp4_addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpAddr {
    /// IPv4 address, host order.
    pub ip: u32,
    /// Port.
    pub port: u16,
}

/// An `ndmp4_addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// LOCAL (same host, no connection).
    Local,
    /// TCP addresses to try in turn.
    Tcp(Vec<TcpAddr>),
    /// Another type (refused by the session).
    Other(u32),
}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Request {
    ConnectOpen {
        version: u16,
    },
    ConnectClientAuth(Auth),
    ConnectClose,
    ConnectServerAuth {
        auth_type: u32,
    },
    ConfigGetHostInfo,
    ConfigGetServerInfo,
    ConfigGetConnectionType,
    ConfigGetAuthAttr {
        auth_type: u32,
    },
    ConfigGetButypeInfo,
    ConfigGetFsInfo,
    ConfigGetTapeInfo,
    ConfigGetScsiInfo,
    ConfigGetExtList,
    ConfigSetExtList {
        classes: usize,
    },
    ScsiOpen {
        device: String,
    },
    ScsiClose,
    ScsiGetState,
    ScsiResetDevice,
    ScsiExecuteCdb(ExecuteCdb),
    TapeOpen {
        device: String,
        mode: u32,
    },
    TapeClose,
    TapeGetState,
    TapeMtio {
        op: u32,
        count: u32,
    },
    TapeWrite {
        data: Vec<u8>,
    },
    TapeRead {
        count: u32,
    },
    TapeExecuteCdb(ExecuteCdb),
    MoverGetState,
    MoverListen {
        mode: u32,
        addr_type: u32,
    },
    MoverContinue,
    MoverAbort,
    MoverStop,
    MoverSetWindow {
        offset: u64,
        length: u64,
    },
    MoverRead {
        offset: u64,
        length: u64,
    },
    MoverClose,
    MoverSetRecordSize {
        len: u32,
    },
    MoverConnect {
        mode: u32,
        addr: Addr,
    },
    /// A message this server does not implement (DATA, FH, ...): answered NOT_SUPPORTED.
    Unsupported {
        code: u32,
    },
}

fn execute_cdb(d: &mut Decoder<'_>) -> Result<ExecuteCdb, DecodeError> {
    let flags = d.u32("execute_cdb flags")?;
    let timeout = d.u32("execute_cdb timeout")?;
    let datain_len = d.u32("execute_cdb datain_len")?;
    if datain_len as usize > MAX_IO {
        return Err(DecodeError::TooLong {
            what: "execute_cdb datain_len",
            len: datain_len as u64,
            max: MAX_IO as u64,
        });
    }
    let cdb = d.opaque("execute_cdb cdb", MAX_CDB)?.to_vec();
    let dataout = d.opaque("execute_cdb dataout", MAX_IO)?.to_vec();
    Ok(ExecuteCdb { flags, timeout, datain_len, cdb, dataout })
}

fn skip_pvals(d: &mut Decoder<'_>) -> Result<(), DecodeError> {
    let n = d.count("addr_env", MAX_ITEMS, 8)?;
    for _ in 0..n {
        d.opaque("pval name", MAX_STRING)?;
        d.opaque("pval value", MAX_STRING)?;
    }
    Ok(())
}

/// Decodes an address: `ndmp4_addr` (a list of TCP addresses with environments), or for
/// `version` 3 `ndmp3_addr` (one TCP address).
pub fn decode_addr(version: u16, d: &mut Decoder<'_>) -> Result<Addr, DecodeError> {
    match d.u32("addr_type")? {
        1 if version < 4 => {
            let ip = d.u32("tcp ip_addr")?;
            let port = d.u16("tcp port")?;
            Ok(Addr::Tcp(vec![TcpAddr { ip, port }]))
        }
        0 => Ok(Addr::Local),
        1 => {
            let n = d.count("tcp_addr", MAX_ITEMS, 12)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let ip = d.u32("tcp ip_addr")?;
                let port = d.u16("tcp port")?;
                skip_pvals(d)?;
                v.push(TcpAddr { ip, port });
            }
            Ok(Addr::Tcp(v))
        }
        t => Ok(Addr::Other(t)),
    }
}

/// Decodes the body of request `message_code` in protocol `version` (3 or 4: they differ in
/// MOVER_CONNECT's address, and v3 has no extension lists).
pub fn decode_request(version: u16, message_code: u32, body: &[u8]) -> Result<Request, DecodeError> {
    let d = &mut Decoder::new(body);
    use Request as R;
    Ok(match message_code {
        code::CONNECT_OPEN => R::ConnectOpen { version: d.u16("protocol_version")? },
        code::CONNECT_CLIENT_AUTH => R::ConnectClientAuth(match d.u32("auth_type")? {
            auth_type::NONE => Auth::None,
            auth_type::TEXT => {
                Auth::Text { user: d.string("auth_id", MAX_STRING)?, password: d.string("auth_password", MAX_STRING)? }
            }
            auth_type::MD5 => Auth::Md5 { user: d.string("auth_id", MAX_STRING)?, digest: d.fixed("auth_digest")? },
            t => return Err(DecodeError::BadValue { what: "auth_type", value: t as u64 }),
        }),
        code::CONNECT_CLOSE => R::ConnectClose,
        code::CONNECT_SERVER_AUTH => R::ConnectServerAuth { auth_type: d.u32("auth_type")? },
        code::CONFIG_GET_HOST_INFO => R::ConfigGetHostInfo,
        code::CONFIG_GET_SERVER_INFO => R::ConfigGetServerInfo,
        code::CONFIG_GET_CONNECTION_TYPE => R::ConfigGetConnectionType,
        code::CONFIG_GET_AUTH_ATTR => R::ConfigGetAuthAttr { auth_type: d.u32("auth_type")? },
        code::CONFIG_GET_BUTYPE_INFO => R::ConfigGetButypeInfo,
        code::CONFIG_GET_FS_INFO => R::ConfigGetFsInfo,
        code::CONFIG_GET_TAPE_INFO => R::ConfigGetTapeInfo,
        code::CONFIG_GET_SCSI_INFO => R::ConfigGetScsiInfo,
        code::CONFIG_GET_EXT_LIST | code::CONFIG_SET_EXT_LIST if version < 4 => R::Unsupported { code: message_code },
        code::CONFIG_GET_EXT_LIST => R::ConfigGetExtList,
        code::CONFIG_SET_EXT_LIST => {
            d.u32("error")?;
            let n = d.count("class_list", MAX_ITEMS, 8)?;
            for _ in 0..n {
                d.u16("class_id")?;
                let k = d.count("class_version", MAX_ITEMS, 4)?;
                for _ in 0..k {
                    d.u16("class_version")?;
                }
            }
            R::ConfigSetExtList { classes: n }
        }
        code::SCSI_OPEN => R::ScsiOpen { device: d.string("device", MAX_STRING)? },
        code::SCSI_CLOSE => R::ScsiClose,
        code::SCSI_GET_STATE => R::ScsiGetState,
        code::SCSI_RESET_DEVICE => R::ScsiResetDevice,
        code::SCSI_EXECUTE_CDB => R::ScsiExecuteCdb(execute_cdb(d)?),
        code::TAPE_OPEN => R::TapeOpen { device: d.string("device", MAX_STRING)?, mode: d.u32("mode")? },
        code::TAPE_CLOSE => R::TapeClose,
        code::TAPE_GET_STATE => R::TapeGetState,
        code::TAPE_MTIO => R::TapeMtio { op: d.u32("tape_op")?, count: d.u32("count")? },
        code::TAPE_WRITE => R::TapeWrite { data: d.opaque("data_out", MAX_IO)?.to_vec() },
        code::TAPE_READ => R::TapeRead { count: d.u32("count")? },
        code::TAPE_EXECUTE_CDB => R::TapeExecuteCdb(execute_cdb(d)?),
        code::MOVER_GET_STATE => R::MoverGetState,
        code::MOVER_LISTEN => R::MoverListen { mode: d.u32("mode")?, addr_type: d.u32("addr_type")? },
        code::MOVER_CONTINUE => R::MoverContinue,
        code::MOVER_ABORT => R::MoverAbort,
        code::MOVER_STOP => R::MoverStop,
        code::MOVER_SET_WINDOW => R::MoverSetWindow { offset: d.u64("offset")?, length: d.u64("length")? },
        code::MOVER_READ => R::MoverRead { offset: d.u64("offset")?, length: d.u64("length")? },
        code::MOVER_CLOSE => R::MoverClose,
        code::MOVER_SET_RECORD_SIZE => R::MoverSetRecordSize { len: d.u32("len")? },
        code::MOVER_CONNECT => R::MoverConnect { mode: d.u32("mode")?, addr: decode_addr(version, d)? },
        other => R::Unsupported { code: other },
    })
}
