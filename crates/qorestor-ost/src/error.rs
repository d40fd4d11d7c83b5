//! The crate's error type.
//!
//! Policy: every error names what it is about (the server's address, the storage unit, the
//! image, the offending value). A refusal by the server keeps its [`FailCode`] so a caller can
//! tell a wrong password from a busy image; failures of the engine keep the engine's error.

use crate::codec::{FailCode, WireError};

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The network failed (connect, read, write), naming the peer.
    #[error("{peer}: {op}: {source}")]
    Io {
        /// The peer.
        peer: String,
        /// What was being done.
        op: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The peer sent bytes that are not a valid frame.
    #[error("{peer}: bad frame: {source}")]
    Wire {
        /// The peer.
        peer: String,
        /// Why.
        source: WireError,
    },
    /// The peer sent a valid message that does not fit (out of order, unexpected).
    #[error("{peer}: protocol error: {detail}")]
    Protocol {
        /// The peer.
        peer: String,
        /// What was wrong.
        detail: String,
    },
    /// The server refused a request.
    #[error("{peer} refused: {message}")]
    Refused {
        /// The server.
        peer: String,
        /// Its code.
        code: FailCode,
        /// Its reason.
        message: String,
    },
    /// The client refused what the server asked of it (such as cheap key derivation costs).
    #[error("{peer}: {detail}")]
    Untrusted {
        /// The server.
        peer: String,
        /// Why.
        detail: String,
    },
    /// A value given to the library is refused.
    #[error("{what} {value:?}: {why}")]
    Invalid {
        /// What it is.
        what: &'static str,
        /// The value.
        value: String,
        /// Why.
        why: String,
    },
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] qorestor_core::Error),
}

impl Error {
    /// The server's code, if the server refused the request.
    pub fn fail_code(&self) -> Option<FailCode> {
        match self {
            Error::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}
