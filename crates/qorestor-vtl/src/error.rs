//! The VTL's error type.
//!
//! Policy: every fallible public function of the library model returns [`Result<T>`] with one
//! public [`Error`]; each variant names the offending value (a library name, a barcode, a drive
//! index) and [`Error::kind`] gives a stable classification. SCSI commands never fail with an
//! `Error`: a bad CDB or a media condition is a CHECK CONDITION with sense data
//! ([`crate::Sense`]); an engine failure during a SCSI command becomes the sense an SSC drive
//! reports for it (VOLUME OVERFLOW, MEDIUM ERROR, DATA PROTECT or HARDWARE ERROR; the table is
//! in `docs/VTL.md`) and is logged through `tracing` with the engine's message.

/// Result alias of the VTL crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A stable classification of [`Error`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A library, cartridge or drive does not exist.
    NotFound,
    /// A bad value (geometry, barcode, capacity, drive index).
    InvalidInput,
    /// Not possible in the current state (slot full, drive empty, no free slot...).
    Conflict,
    /// A stored record failed validation.
    Corrupt,
    /// The storage engine failed.
    Engine,
}

/// The VTL's error type. See the module documentation for the policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine failed (its own error names the object).
    #[error(transparent)]
    Engine(#[from] qorestor_core::Error),
    /// A named object does not exist.
    #[error("{what} {name:?} does not exist")]
    NotFound {
        /// "library", "cartridge" or "drive".
        what: &'static str,
        /// Its name, barcode or index.
        name: String,
    },
    /// A bad value.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidInput {
        /// What the value is.
        what: &'static str,
        /// The value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// The operation conflicts with the library's state.
    #[error("{0}")]
    Conflict(String),
    /// A stored VTL record failed validation.
    #[error("corrupt {what} of library {library:?}: {detail}")]
    Corrupt {
        /// The record ("library record", "cartridge map").
        what: &'static str,
        /// The library.
        library: String,
        /// What was wrong.
        detail: String,
    },
}

impl Error {
    /// The stable classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Engine(e) if e.kind() == qorestor_core::ErrorKind::NotFound => ErrorKind::NotFound,
            Error::Engine(e) if e.kind() == qorestor_core::ErrorKind::Corrupt => ErrorKind::Corrupt,
            Error::Engine(_) => ErrorKind::Engine,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
        }
    }

    pub(crate) fn invalid(what: &'static str, value: impl ToString, reason: impl Into<String>) -> Self {
        Error::InvalidInput { what, value: value.to_string(), reason: reason.into() }
    }

    pub(crate) fn not_found(what: &'static str, name: impl ToString) -> Self {
        Error::NotFound { what, name: name.to_string() }
    }
}
