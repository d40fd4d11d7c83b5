//! Errors of the NDMP crate.
//!
//! Policy: the codec returns [`DecodeError`] for every malformed input (never a panic), naming
//! the field and the offending value or length; the session turns a decode error into an
//! `NDMP_XDR_DECODE_ERR` reply. [`Error`] is the crate's public error for the server and the
//! configuration (I/O, the engine, a decode error), with [`Error::kind`].

use std::fmt;

/// A malformed XDR body or record-marking frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends inside a field.
    #[error("{what}: needs {need} bytes, {have} left")]
    Truncated {
        /// The field.
        what: &'static str,
        /// Bytes the field needs.
        need: usize,
        /// Bytes left.
        have: usize,
    },
    /// A length or count above its limit.
    #[error("{what}: length {len} is over the limit {max}")]
    TooLong {
        /// The field.
        what: &'static str,
        /// The length read from the wire.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A value outside its enumeration or range.
    #[error("{what}: bad value {value}")]
    BadValue {
        /// The field.
        what: &'static str,
        /// The value read.
        value: u64,
    },
}

/// What went wrong, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Malformed input from the network.
    Decode,
    /// A socket or file operation failed.
    Io,
    /// The engine failed (settings).
    Engine,
    /// A bad configuration value.
    Invalid,
}

/// The crate's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Malformed input.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// I/O.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The engine.
    #[error(transparent)]
    Engine(#[from] qorestor_core::Error),
    /// A bad value.
    #[error("invalid {what} {value:?}: {why}")]
    Invalid {
        /// The setting.
        what: &'static str,
        /// The value.
        value: String,
        /// Why it is refused.
        why: &'static str,
    },
}

impl Error {
    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Decode(_) => ErrorKind::Decode,
            Error::Io { .. } => ErrorKind::Io,
            Error::Engine(_) => ErrorKind::Engine,
            Error::Invalid { .. } => ErrorKind::Invalid,
        }
    }

    /// An I/O error while doing `what`.
    pub fn io(what: impl fmt::Display, source: std::io::Error) -> Error {
        Error::Io { what: what.to_string(), source }
    }
}

/// The crate's result.
pub type Result<T> = std::result::Result<T, Error>;
