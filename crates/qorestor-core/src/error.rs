//! The engine's error type.
//!
//! Policy: every fallible public function returns [`Result<T>`] with one public [`Error`]
//! type. Each variant names the value that was wrong (a group, container or stream name, a file
//! path, an offset) so that a message printed as-is tells an administrator what to fix.
//! [`Error::kind`] gives a stable classification for callers that branch on errors (the CLI maps
//! kinds to exit codes). Corruption found in on-disk bytes is always [`ErrorKind::Corrupt`] and
//! never a panic; an I/O failure while making data durable poisons the pack writer
//! ([`ErrorKind::Poisoned`]) instead of being retried silently.

use std::path::PathBuf;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A stable classification of [`Error`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A named object (storage group, container, stream) does not exist.
    NotFound,
    /// A named object already exists.
    AlreadyExists,
    /// The caller passed a bad value (name, size, policy...).
    InvalidInput,
    /// The operation is not allowed in the object's current state.
    Conflict,
    /// On-disk bytes failed validation (checksum, magic, length, fingerprint).
    Corrupt,
    /// An operating system I/O error.
    Io,
    /// A previous durability failure made the writer refuse further writes.
    Poisoned,
    /// Another process owns the data directory.
    Locked,
    /// A write would take a storage group or container past its quota.
    QuotaExceeded,
    /// An encrypted storage group needs its passphrase, or the one given is wrong.
    Passphrase,
}

/// The engine's error type. See the module documentation for the policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// I/O failed on a path.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (e.g. "read", "fsync").
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// On-disk bytes failed validation.
    #[error("corrupt {what} in {path}: {detail}")]
    Corrupt {
        /// The kind of record (e.g. "pack record", "recipe").
        what: &'static str,
        /// The file holding it.
        path: PathBuf,
        /// What exactly was wrong.
        detail: String,
    },
    /// A named object does not exist.
    #[error("{what} {name:?} does not exist")]
    NotFound {
        /// "storage group", "container" or "stream".
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// A named object already exists.
    #[error("{what} {name:?} already exists")]
    AlreadyExists {
        /// "storage group" or "container".
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// A bad value was passed in.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidInput {
        /// What the value is (e.g. "container name").
        what: &'static str,
        /// The value itself.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// The operation conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// A durability failure poisoned the storage group's pack writer.
    #[error(
        "storage group {group:?} refuses writes after an earlier failure: {reason} (it takes writes again once \
         the data directory is opened anew: fix the cause, then restart qorestor serve or the writing process)"
    )]
    Poisoned {
        /// The storage group.
        group: String,
        /// The original failure.
        reason: String,
    },
    /// Another process holds the data directory.
    #[error("data directory {path} is in use by {holder}")]
    Locked {
        /// The data directory.
        path: PathBuf,
        /// Who holds it, as far as known.
        holder: String,
    },
    /// A write would take a storage group or container past its quota; nothing of it is
    /// visible.
    #[error("{what} {name:?} is over its quota of {quota} bytes ({used} bytes would be used)")]
    QuotaExceeded {
        /// "storage group" or "container".
        what: &'static str,
        /// Its name.
        name: String,
        /// The quota in bytes.
        quota: u64,
        /// The bytes the write would have made it use.
        used: u64,
    },
    /// An encrypted storage group was used without its passphrase.
    #[error(
        "storage group {group:?} is encrypted: give its passphrase in QORESTOR_PASSPHRASE or with --passphrase-file"
    )]
    PassphraseRequired {
        /// The storage group.
        group: String,
    },
    /// The passphrase given does not unlock an encrypted storage group.
    #[error("wrong passphrase for encrypted storage group {group:?}")]
    WrongPassphrase {
        /// The storage group.
        group: String,
    },
    /// The catalog database failed.
    #[error("catalog: {0}")]
    Catalog(#[from] sled::Error),
}

impl Error {
    /// The stable classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } => ErrorKind::Io,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Poisoned { .. } => ErrorKind::Poisoned,
            Error::Locked { .. } => ErrorKind::Locked,
            Error::QuotaExceeded { .. } => ErrorKind::QuotaExceeded,
            Error::PassphraseRequired { .. } | Error::WrongPassphrase { .. } => ErrorKind::Passphrase,
            Error::Catalog(_) => ErrorKind::Io,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { op, path: path.into(), source }
    }

    pub(crate) fn corrupt(what: &'static str, path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Error::Corrupt { what, path: path.into(), detail: detail.into() }
    }

    pub(crate) fn invalid(what: &'static str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput { what, value: value.into(), reason: reason.into() }
    }

    pub(crate) fn not_found(what: &'static str, name: impl Into<String>) -> Self {
        Error::NotFound { what, name: name.into() }
    }
}

/// A decoding failure of on-disk bytes, before the file it came from is known.
///
/// Pure decoders return this; the caller attaches the path with [`DecodeError::at`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct DecodeError {
    /// The kind of record.
    pub what: &'static str,
    /// What was wrong.
    pub detail: String,
}

impl DecodeError {
    pub(crate) fn new(what: &'static str, detail: impl Into<String>) -> Self {
        DecodeError { what, detail: detail.into() }
    }

    /// Attaches the file the bytes came from.
    pub fn at(self, path: impl Into<PathBuf>) -> Error {
        Error::corrupt(self.what, path, self.detail)
    }
}
