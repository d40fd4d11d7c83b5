//! The engine's error type.
//!
//! Policy: every fallible public function returns [`Result<T>`] with one public [`Error`]
//! type. Each variant names the value that was wrong (a group, container or stream name, a file
//! path, an offset) so that a message printed as-is tells an administrator what to fix.
//! [`Error::kind`] gives a stable classification for callers that branch on errors (the CLI maps
//! kinds to exit codes). Corruption found in on-disk bytes is always [`ErrorKind::Corrupt`] and
//! never a panic; an I/O failure while making data durable poisons the pack writer
//! ([`ErrorKind::Poisoned`]) instead of being retried silently. A full filesystem or disk quota
//! is [`ErrorKind::OutOfSpace`] wherever the engine writes (the failing write itself; later
//! writes to a group it poisoned are [`ErrorKind::Poisoned`]). Peers are named:
//! [`ErrorKind::Remote`] for a replication target that failed or cannot be reached,
//! [`ErrorKind::Protocol`] for one that broke the protocol. [`ErrorKind::Internal`] is the
//! engine's own failure, never the caller's.

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
    /// The operation is not allowed in the object's current state (retrying after the state
    /// changes may succeed).
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
    /// The filesystem holding the data directory is full or the user's disk quota is reached
    /// (`ENOSPC`, `EDQUOT`): freeing space is the fix.
    OutOfSpace,
    /// A replication target failed or could not be reached; the error names it.
    Remote,
    /// A peer broke the replication protocol (an unexpected or undecodable message).
    Protocol,
    /// The engine itself failed (a worker thread stopped, the system random source failed,
    /// a cryptographic primitive refused its input): a bug or a broken system, not the caller's
    /// doing.
    Internal,
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
    /// A record without a file of its own (in the catalog) failed validation.
    #[error("damaged {what}: {detail}")]
    Damaged {
        /// The record (e.g. "encryption record of storage group \"sg\"").
        what: String,
        /// What was wrong, and what to do about it where known.
        detail: String,
    },
    /// The filesystem is full or the disk quota is reached; nothing of the write is visible.
    #[error("{op} {path}: out of space: {reason}")]
    OutOfSpace {
        /// What was being done (e.g. "write", "fsync").
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's (or the engine's) reason.
        reason: String,
    },
    /// New data was refused because storing it would leave less available space than the space
    /// reserve (see [`crate::space`]); nothing of the write is visible.
    #[error(
        "{path}: new data refused: the filesystem has {} available and keeps a space reserve of {} \
         (free space with `qorestor rm` and `qorestor cleaner run`, or change the reserve with `qorestor system \
         set-reserve`)",
        crate::space::size_text(*available),
        crate::space::size_text(*reserve)
    )]
    ReserveReached {
        /// The directory new data was refused for.
        path: PathBuf,
        /// Bytes available on its filesystem (statvfs `f_bavail × f_frsize`).
        available: u64,
        /// The space reserve in bytes.
        reserve: u64,
    },
    /// A replication target failed, refused, or could not be reached.
    #[error("replication target {target}: {detail}")]
    Remote {
        /// The target (`HOST:PORT`).
        target: String,
        /// What went wrong.
        detail: String,
    },
    /// A peer sent a message the replication protocol does not allow there.
    #[error("replication protocol violation by {peer}: {detail}")]
    Protocol {
        /// The peer (a replication target, or "the replication source").
        peer: String,
        /// What was wrong.
        detail: String,
    },
    /// The engine itself failed; see [`ErrorKind::Internal`].
    #[error("internal error: {0}")]
    Internal(String),
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
    Catalog(CatalogError),
}

/// A failure of the catalog database, with its message (the database library stays out of the
/// public API).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CatalogError {
    message: String,
    kind: ErrorKind,
}

impl CatalogError {
    /// The classification of the failure: [`ErrorKind::OutOfSpace`], [`ErrorKind::Corrupt`],
    /// [`ErrorKind::Io`], [`ErrorKind::Locked`] or [`ErrorKind::Internal`].
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the database handle failed on I/O (and must be opened anew).
    pub(crate) fn is_io(&self) -> bool {
        matches!(self.kind, ErrorKind::Io | ErrorKind::OutOfSpace)
    }
}

impl From<redb::Error> for Error {
    fn from(e: redb::Error) -> Self {
        use redb::Error as E;
        let kind = match &e {
            E::Io(io) if is_out_of_space(io) => ErrorKind::OutOfSpace,
            E::Io(_) | E::PreviousIo | E::DatabaseClosed => ErrorKind::Io,
            E::Corrupted(_) => ErrorKind::Corrupt,
            E::DatabaseAlreadyOpen | E::LockProtocolMismatch => ErrorKind::Locked,
            _ => ErrorKind::Internal,
        };
        Error::Catalog(CatalogError { message: e.to_string(), kind })
    }
}

/// Whether an I/O error says the filesystem is full or the disk quota is reached.
fn is_out_of_space(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
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
            Error::Damaged { .. } => ErrorKind::Corrupt,
            Error::OutOfSpace { .. } | Error::ReserveReached { .. } => ErrorKind::OutOfSpace,
            Error::Remote { .. } => ErrorKind::Remote,
            Error::Protocol { .. } => ErrorKind::Protocol,
            Error::Internal(_) => ErrorKind::Internal,
            Error::Poisoned { .. } => ErrorKind::Poisoned,
            Error::Locked { .. } => ErrorKind::Locked,
            Error::QuotaExceeded { .. } => ErrorKind::QuotaExceeded,
            Error::PassphraseRequired { .. } | Error::WrongPassphrase { .. } => ErrorKind::Passphrase,
            Error::Catalog(e) => e.kind(),
        }
    }

    /// An I/O failure; a full filesystem or disk quota (`ENOSPC`, `EDQUOT`) becomes
    /// [`Error::OutOfSpace`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        if is_out_of_space(&source) {
            return Error::OutOfSpace { op, path: path.into(), reason: source.to_string() };
        }
        Error::Io { op, path: path.into(), source }
    }

    /// The error behind an I/O error from a stream's `Read` or `Write` ([`crate::StreamReader`],
    /// [`crate::StreamWriter`] carry the engine's error inside it); any other I/O error as
    /// [`Error::Io`] (or [`Error::OutOfSpace`]) of `op` on `path`.
    pub fn from_stream_io(e: std::io::Error, op: &'static str, path: impl Into<PathBuf>) -> Self {
        match e.downcast::<Error>() {
            Ok(engine) => engine,
            Err(e) => Error::io(op, path, e),
        }
    }

    pub(crate) fn internal(detail: impl Into<String>) -> Self {
        Error::Internal(detail.into())
    }

    pub(crate) fn protocol(peer: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Protocol { peer: peer.into(), detail: detail.into() }
    }

    pub(crate) fn remote(target: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Remote { target: target.into(), detail: detail.into() }
    }

    pub(crate) fn damaged(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Damaged { what: what.into(), detail: detail.into() }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_or_quota_is_out_of_space_and_other_io_errors_stay_io() {
        for errno in [28, 122] {
            let e = Error::io("write", "/d/packs/1.pack", std::io::Error::from_raw_os_error(errno));
            assert_eq!(e.kind(), ErrorKind::OutOfSpace, "{e}");
            assert!(e.to_string().starts_with("write /d/packs/1.pack: out of space"), "{e}");
        }
        assert_eq!(Error::io("read", "/d/x", std::io::Error::from_raw_os_error(5)).kind(), ErrorKind::Io);
    }

    #[test]
    fn catalog_errors_keep_their_kind_without_the_database_type() {
        let full = Error::from(redb::Error::Io(std::io::Error::from_raw_os_error(28)));
        assert_eq!(full.kind(), ErrorKind::OutOfSpace, "{full}");
        let eio = Error::from(redb::Error::Io(std::io::Error::from_raw_os_error(5)));
        assert_eq!(eio.kind(), ErrorKind::Io, "{eio}");
        let bug = Error::from(redb::Error::TransactionPoisoned);
        assert_eq!(bug.kind(), ErrorKind::Internal, "{bug}");
        assert!(matches!(bug, Error::Catalog(_)) && bug.to_string().starts_with("catalog: "), "{bug}");
    }

    #[test]
    fn an_engine_error_comes_back_out_of_a_stream_io_error() {
        let inner = Error::QuotaExceeded { what: "container", name: "c".into(), quota: 1, used: 2 };
        let back = Error::from_stream_io(std::io::Error::other(inner), "write", "c/s");
        assert_eq!(back.kind(), ErrorKind::QuotaExceeded, "{back}");
        let other = Error::from_stream_io(std::io::Error::from_raw_os_error(5), "write", "c/s");
        assert_eq!(other.kind(), ErrorKind::Io, "{other}");
    }
}
