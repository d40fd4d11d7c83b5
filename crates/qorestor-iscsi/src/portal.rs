//! What a portal serves: its targets (one per virtual tape library) and CHAP configuration,
//! read from its [`Configuration`] at each discovery and login, and its limits and timeouts.
//! Shared by every connection of a server.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qorestor_vtl::{ScsiResponse, Vtl};

use crate::chap::ChapConfig;
use crate::error::Result;
use crate::params::Limits;

/// The logical units behind a target: what SCSI commands are sent to.
pub trait LogicalUnits: Send + Sync {
    /// Number of LUNs (0..count).
    fn lun_count(&self) -> u64;
    /// Runs one command on `lun`; never panics.
    fn execute(&self, lun: u64, cdb: &[u8], data_out: &[u8]) -> ScsiResponse;
    /// Whether the units are out of service for good (a deleted library): a session that logs
    /// in to them is ended at once.
    fn retired(&self) -> bool {
        false
    }
}

impl LogicalUnits for Vtl {
    fn lun_count(&self) -> u64 {
        Vtl::lun_count(self)
    }

    fn execute(&self, lun: u64, cdb: &[u8], data_out: &[u8]) -> ScsiResponse {
        Vtl::execute(self, lun, cdb, data_out)
    }

    fn retired(&self) -> bool {
        self.is_retired()
    }
}

/// Where a portal's targets and CHAP configuration come from. Read at each discovery
/// (SendTargets) and at each login, so that a target added or removed, or CHAP set or
/// cleared, is served from the next one without a restart.
pub trait Configuration: Send + Sync {
    /// The targets now, by name.
    fn targets(&self) -> Result<Vec<Target>>;
    /// The CHAP configuration now; `None` leaves every session open.
    fn chap(&self) -> Result<Option<ChapConfig>>;
}

/// A configuration that does not change (tests, tools).
pub struct Fixed {
    /// The targets.
    pub targets: Vec<Target>,
    /// CHAP; `None` leaves every session open.
    pub chap: Option<ChapConfig>,
}

impl Configuration for Fixed {
    fn targets(&self) -> Result<Vec<Target>> {
        Ok(self.targets.clone())
    }

    fn chap(&self) -> Result<Option<ChapConfig>> {
        Ok(self.chap.clone())
    }
}

/// One target: its iSCSI name, alias and logical units.
#[derive(Clone)]
pub struct Target {
    /// The iSCSI qualified name.
    pub name: String,
    /// TargetAlias (the container name).
    pub alias: String,
    /// The units (LUN 0 the changer, LUNs 1..M the drives).
    pub units: Arc<dyn LogicalUnits>,
}

/// How long the target waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A login not finished after this long is dropped.
    pub login: Duration,
    /// After this long without a PDU from the initiator, the target pings it (NOP-In).
    pub nop_interval: Duration,
    /// A ping not answered within this long drops the connection.
    pub nop_timeout: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            login: crate::server::LOGIN_TIMEOUT,
            nop_interval: Duration::from_secs(30),
            nop_timeout: Duration::from_secs(30),
        }
    }
}

/// Everything connections share.
pub struct Portal {
    config: Box<dyn Configuration>,
    /// TargetPortalGroupTag.
    pub portal_group_tag: u16,
    /// The target's negotiation limits.
    pub limits: Limits,
    /// Login and keep-alive timeouts.
    pub timeouts: Timeouts,
    next_tsih: AtomicU16,
}

impl Portal {
    /// A portal serving `targets`, always with `chap`.
    pub fn new(targets: Vec<Target>, chap: Option<ChapConfig>) -> Portal {
        Portal::with_config(Box::new(Fixed { targets, chap }))
    }

    /// A portal serving what `config` says at each discovery and login.
    pub fn with_config(config: Box<dyn Configuration>) -> Portal {
        Portal {
            config,
            portal_group_tag: 1,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            next_tsih: AtomicU16::new(1),
        }
    }

    /// The targets now, by name.
    pub fn targets(&self) -> Result<Vec<Target>> {
        self.config.targets()
    }

    /// The target named `name` now.
    pub fn target(&self, name: &str) -> Result<Option<Target>> {
        Ok(self.targets()?.into_iter().find(|t| t.name == name))
    }

    /// The CHAP configuration now; `None` leaves every session open.
    pub fn chap(&self) -> Result<Option<ChapConfig>> {
        self.config.chap()
    }

    /// A fresh target session identifying handle (never 0).
    pub fn new_tsih(&self) -> u16 {
        loop {
            let t = self.next_tsih.fetch_add(1, Ordering::Relaxed);
            if t != 0 {
                return t;
            }
        }
    }
}

/// The iSCSI name of the target of container `container` on system `system`:
/// `iqn.2024-01.org.qorestor:SYSTEM:CONTAINER`, lower-cased, with every character other than
/// letters, digits, `-` and `.` (such as `_`) replaced by `-` (iSCSI names allow only these
/// besides `:`).
pub fn target_name(system: &str, container: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
                _ => '-',
            })
            .collect()
    };
    format!("iqn.2024-01.org.qorestor:{}:{}", clean(system), clean(container))
}

/// The LUN number of an 8-byte LUN field (SAM peripheral or flat addressing); `None` for
/// addressing methods the target does not use.
pub fn lun_number(field: u64) -> Option<u64> {
    let b = field.to_be_bytes();
    match b[0] >> 6 {
        0 if b[0] == 0 => Some(b[1] as u64),
        1 => Some((((b[0] & 0x3f) as u64) << 8) | b[1] as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_are_valid_iqns() {
        assert_eq!(target_name("Backup-01.example", "Lib_1"), "iqn.2024-01.org.qorestor:backup-01.example:lib-1");
    }

    #[test]
    fn lun_fields_decode() {
        assert_eq!(lun_number(0), Some(0));
        assert_eq!(lun_number(0x0003_0000_0000_0000), Some(3));
        assert_eq!(lun_number(0x4101_0000_0000_0000), Some(257));
        assert_eq!(lun_number(0x8000_0000_0000_0000), None);
    }
}
