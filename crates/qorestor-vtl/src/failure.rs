//! Engine failures during SCSI commands: the sense data an SSC drive reports for them (the
//! table in `docs/VTL.md`) and the log line that keeps the engine's message for the operator.
//!
//! | engine failure | drive sense |
//! | --- | --- |
//! | out of space (disk full, disk quota) or over the container's or group's quota | VOLUME OVERFLOW 0D/00/02, EOM |
//! | damaged or missing stored data | MEDIUM ERROR 03/11/00 |
//! | encrypted group without its passphrase | DATA PROTECT 07/74/01 (unable to decrypt data) |
//! | encrypted group with a wrong passphrase | DATA PROTECT 07/74/03 (incorrect data encryption key) |
//! | a poisoned group, and anything else | HARDWARE ERROR 04/44/00 |
//!
//! The changer has no medium of its own: every engine failure of MOVE MEDIUM is HARDWARE ERROR
//! 04/44/00. Either way the log line says which library, cartridge, drive and command, the
//! sense, and the engine's message (for a poisoned group, how to make it take writes again).

use crate::sense::{Sense, DATA_PROTECT, MEDIUM_ERROR, VOLUME_OVERFLOW};
use crate::Error;

/// Where an engine failure happened, for its log line.
pub(crate) struct Place<'a> {
    /// The library.
    pub library: &'a str,
    /// The cartridge.
    pub barcode: &'a str,
    /// The drive (its index in the library), if a drive was involved.
    pub drive: Option<u16>,
    /// The SCSI command (e.g. "WRITE", "MOVE MEDIUM").
    pub operation: &'static str,
}

/// The sense a drive reports for `e`.
pub(crate) fn drive_sense(e: &Error) -> Sense {
    use qorestor_core::{Error as Engine, ErrorKind as Kind};
    match e {
        Error::Engine(Engine::PassphraseRequired { .. }) => Sense::new(DATA_PROTECT, 0x74, 0x01),
        Error::Engine(Engine::WrongPassphrase { .. }) => Sense::new(DATA_PROTECT, 0x74, 0x03),
        Error::Engine(e) => match e.kind() {
            Kind::OutOfSpace | Kind::QuotaExceeded => Sense::new(VOLUME_OVERFLOW, 0x00, 0x02).with_eom(),
            Kind::Corrupt | Kind::NotFound => Sense::new(MEDIUM_ERROR, 0x11, 0x00),
            _ => Sense::internal_failure(),
        },
        Error::Corrupt { .. } => Sense::new(MEDIUM_ERROR, 0x11, 0x00),
        _ => Sense::internal_failure(),
    }
}

/// Logs `e` and the sense it became.
pub(crate) fn log(at: &Place<'_>, sense: &Sense, e: &Error) {
    tracing::error!(
        library = at.library,
        barcode = at.barcode,
        drive = at.drive,
        operation = at.operation,
        sense = %format_args!("{:02X}/{:02X}/{:02X}", sense.key, sense.asc, sense.ascq),
        "tape command failed in the storage engine: {e}"
    );
}
