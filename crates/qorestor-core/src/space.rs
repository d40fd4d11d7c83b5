//! The space reserve: space on the data directory's filesystem kept free for what an operator
//! needs on a full store.
//!
//! New data (stream and tape writes, chunks a replication pass brings) is refused once the
//! filesystem's available space (statvfs `f_bavail × f_frsize`) would fall below the reserve,
//! with [`Error::ReserveReached`] ([`crate::ErrorKind::OutOfSpace`]). Reads, restores,
//! deletions, the cleaner, verify and the engine's own metadata writes (catalog, recipes being
//! rewritten, the fingerprint index rebuilt at open) may use the reserve, so they keep working
//! on a "full" store and free space through the product.
//!
//! The reserve is the system setting [`RESERVE_SETTING`] (bytes, as given: 0 turns it off);
//! without it, 1% of the filesystem, at least [`MIN_DEFAULT_RESERVE`] and at most
//! [`MAX_DEFAULT_RESERVE`].

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::error::{Error, Result};

/// Setting key of the space reserve (a number of bytes) among the system settings.
pub const RESERVE_SETTING: &str = "space_reserve";
/// The smallest default reserve: 8 MiB.
pub const MIN_DEFAULT_RESERVE: u64 = 8 << 20;
/// The largest default reserve: 1 GiB.
pub const MAX_DEFAULT_RESERVE: u64 = 1 << 30;

/// The default reserve of a filesystem of `filesystem_bytes`: 1% of it, clamped to
/// [`MIN_DEFAULT_RESERVE`]..=[`MAX_DEFAULT_RESERVE`].
pub fn default_reserve(filesystem_bytes: u64) -> u64 {
    (filesystem_bytes / 100).clamp(MIN_DEFAULT_RESERVE, MAX_DEFAULT_RESERVE)
}

/// Space of the filesystem holding the data directory, and the reserve in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SpaceInfo {
    /// Bytes an unprivileged writer can still use (statvfs `f_bavail × f_frsize`).
    pub free_bytes: u64,
    /// Size of the filesystem (statvfs `f_blocks × f_frsize`).
    pub filesystem_bytes: u64,
    /// The reserve in force, in bytes.
    pub reserve_bytes: u64,
    /// Whether the reserve is the default (no `system set-reserve`).
    pub reserve_is_default: bool,
}

/// Statvfs of `path`: (available bytes, filesystem bytes).
fn statvfs(path: &Path) -> Result<(u64, u64)> {
    let st = rustix::fs::statvfs(path).map_err(|e| Error::io("statvfs", path, std::io::Error::from(e)))?;
    Ok((st.f_bavail.saturating_mul(st.f_frsize), st.f_blocks.saturating_mul(st.f_frsize)))
}

/// Bytes of the filesystem holding `path` that an unprivileged writer can still use
/// (statvfs `f_bavail × f_frsize`).
pub(crate) fn available_bytes(path: &Path) -> Result<u64> {
    statvfs(path).map(|(available, _)| available)
}

/// The reserve setting of an open engine, shared by its storage groups (a data directory has one
/// owner at a time, so the value read at open stays current: [`Engine`](crate::Engine) updates it
/// with the setting).
#[derive(Debug)]
pub(crate) struct Reserve {
    /// The setting in bytes; [`Reserve::DEFAULT`] when none is set.
    set: AtomicU64,
}

impl Reserve {
    const DEFAULT: u64 = u64::MAX;

    /// A reserve of `setting` bytes, or the default when `None`.
    pub(crate) fn new(setting: Option<u64>) -> Self {
        Reserve { set: AtomicU64::new(setting.unwrap_or(Self::DEFAULT)) }
    }

    /// Changes the setting (`None`: back to the default).
    pub(crate) fn set(&self, setting: Option<u64>) {
        self.set.store(setting.unwrap_or(Self::DEFAULT), Ordering::Relaxed);
    }

    /// The space and reserve of the filesystem holding `path`.
    pub(crate) fn info(&self, path: &Path) -> Result<SpaceInfo> {
        let (free_bytes, filesystem_bytes) = statvfs(path)?;
        let set = self.set.load(Ordering::Relaxed);
        let reserve_is_default = set == Self::DEFAULT;
        let reserve_bytes = if reserve_is_default { default_reserve(filesystem_bytes) } else { set };
        Ok(SpaceInfo { free_bytes, filesystem_bytes, reserve_bytes, reserve_is_default })
    }

    /// Refuses new data of `needed` bytes (an upper bound of what writing it takes from the
    /// filesystem) when it would leave less than the reserve available under `path`.
    pub(crate) fn admit(&self, path: &Path, needed: u64) -> Result<()> {
        let info = self.info(path)?;
        // A reserve of 0 is no reserve: the filesystem itself says when it is full.
        if info.reserve_bytes > 0 && info.free_bytes < info.reserve_bytes.saturating_add(needed) {
            return Err(Error::ReserveReached {
                path: path.to_path_buf(),
                available: info.free_bytes,
                reserve: info.reserve_bytes,
            });
        }
        Ok(())
    }
}

/// A size for messages: `8388608 bytes (8.0 MiB)`.
pub(crate) fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{bytes} bytes ({v:.1} {})", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_one_percent_clamped() {
        assert_eq!(default_reserve(0), MIN_DEFAULT_RESERVE);
        assert_eq!(default_reserve(100 << 20), MIN_DEFAULT_RESERVE);
        assert_eq!(default_reserve(100 << 30), (100 << 30) / 100);
        assert_eq!(default_reserve(1 << 50), MAX_DEFAULT_RESERVE);
    }

    #[test]
    fn new_data_is_refused_below_the_reserve_naming_both_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let free = available_bytes(dir.path()).unwrap();
        let r = Reserve::new(Some(0));
        r.admit(dir.path(), u64::MAX).unwrap();
        r.set(Some(free + 1));
        let e = r.admit(dir.path(), 0).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::OutOfSpace, "{e}");
        let text = e.to_string();
        assert!(text.contains("available") && text.contains("reserve"), "{text}");
        r.set(None);
        let info = r.info(dir.path()).unwrap();
        assert!(info.reserve_is_default && info.reserve_bytes == default_reserve(info.filesystem_bytes));
    }

    #[test]
    fn sizes_read_in_bytes_and_binary_units() {
        assert_eq!(size_text(10), "10 bytes");
        assert_eq!(size_text(8 << 20), "8388608 bytes (8.0 MiB)");
        assert_eq!(size_text(3 << 29), "1610612736 bytes (1.5 GiB)");
    }
}
