//! Errors of the iSCSI target.
//!
//! Policy: decoding never panics; every malformed input is a [`CodecError`] naming the
//! offending value (the connection answers it with a Reject or drops the connection, as
//! RFC 7143 allows at ErrorRecoveryLevel 0). [`enum@Error`] is the crate's one public error type,
//! for what the server itself cannot do (bind, accept, configuration); [`Error::kind`] sorts it.

use thiserror::Error;

/// A PDU or text segment that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A data segment longer than the negotiated limit.
    #[error("data segment of {len} bytes exceeds the limit of {limit} bytes")]
    DataTooLong {
        /// Announced length.
        len: u32,
        /// Negotiated or fixed limit.
        limit: u32,
    },
    /// The header digest does not match.
    #[error("header digest {got:#010x} does not match the computed {want:#010x}")]
    HeaderDigest {
        /// Received digest.
        got: u32,
        /// Computed digest.
        want: u32,
    },
    /// The data digest does not match.
    #[error("data digest {got:#010x} does not match the computed {want:#010x}")]
    DataDigest {
        /// Received digest.
        got: u32,
        /// Computed digest.
        want: u32,
    },
    /// An opcode the target does not know in this direction.
    #[error("opcode {0:#04x} is not an initiator PDU this target knows")]
    UnknownOpcode(u8),
    /// A field with a value outside its range.
    #[error("{field} has the invalid value {value}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A text segment that is not `key=value` pairs separated by NUL bytes.
    #[error("malformed text key/value pair {0:?}")]
    MalformedText(String),
}

/// What kind of failure an [`enum@Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Input/output (bind, accept, socket).
    Io,
    /// A configuration value is invalid.
    Config,
    /// The engine failed (reading or writing settings).
    Engine,
}

/// The error type of this crate.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O failure.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An invalid configuration value.
    #[error("invalid {what} {value:?}: {hint}")]
    Config {
        /// What the value is.
        what: &'static str,
        /// The value.
        value: String,
        /// What would be valid.
        hint: &'static str,
    },
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] qorestor_core::Error),
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } => ErrorKind::Io,
            Error::Config { .. } => ErrorKind::Config,
            Error::Engine(_) => ErrorKind::Engine,
        }
    }
}

/// Result with this crate's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
