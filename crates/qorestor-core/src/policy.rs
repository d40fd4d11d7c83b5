//! Quotas and the recycle bin.
//!
//! - **Quotas.** A storage group's quota caps the bytes of its pack files: an append that would
//!   pass it fails with [`Error::QuotaExceeded`] (the group is not poisoned; the stream being
//!   written fails and nothing of it becomes visible). A container's quota caps the logical
//!   bytes of its live streams: a writer fails as soon as the bytes it accepted, added to the
//!   container's other streams when it started, pass the quota. The cleaner's copies are not
//!   subject to the group quota (a run gives space back overall). Concurrent writers into one
//!   container each count only the streams finished when they started.
//! - **Recycle bin.** With the bin on, deleting a stream moves its catalog entry (in one catalog
//!   transaction) to the `recycle_bin` tree with an expiry time, and so does replacing it with a
//!   new stream of the same name; its recipe stays, so the cleaner keeps its chunks. Every
//!   version is kept, under its stream id (never reused). `restore` moves one back. The cleaner
//!   deletes expired entries for good at the start of each run (`purge_recycle_bin`), then
//!   reclaims their chunks.

use serde::Serialize;

use crate::catalog::{ContainerRecord, RecycledRecord, StreamRecord};
use crate::engine::{now_secs, ContainerInfo, Engine, GroupInfo, StreamInfo};
use crate::error::{Error, Result};

/// Seconds in a day (retention periods are given in days).
pub const DAY_SECS: u64 = 86_400;

/// Changes to a container's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerUpdate {
    /// New quota on its live streams' logical bytes (`Some(None)` removes it).
    pub quota: Option<Option<u64>>,
    /// Recycle bin: `Some(Some(days))` turns it on with that retention, `Some(None)` off
    /// (streams already in the bin stay until they expire).
    pub recycle_retention_days: Option<Option<u64>>,
}

/// A stream version in a recycle bin, as reported to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecycledInfo {
    /// Its id in the bin (stable; never reused within the container).
    pub id: u64,
    /// Container name.
    pub container: String,
    /// Stream name.
    pub name: String,
    /// Length in bytes.
    pub logical_bytes: u64,
    /// Deletion time, seconds since the Unix epoch.
    pub deleted: u64,
    /// When the cleaner may delete it for good.
    pub expires: u64,
}

impl RecycledInfo {
    fn new(container: &str, r: &RecycledRecord) -> Self {
        RecycledInfo {
            id: r.stream.id,
            container: container.to_string(),
            name: r.stream.name.clone(),
            logical_bytes: r.stream.logical_len,
            deleted: r.deleted,
            expires: r.expires,
        }
    }
}

impl Engine {
    /// Sets or removes a storage group's quota (bytes of its pack files).
    pub fn set_storage_group_quota(&self, name: &str, quota: Option<u64>) -> Result<GroupInfo> {
        let _guard = self.inner.group_update.lock();
        let mut g = self.group_record(name)?;
        g.quota = quota;
        self.catalog().replace_group(&g)?;
        self.inner.group_store(&g)?.set_quota(quota);
        self.storage_group(name)
    }

    /// Changes a container's quota and recycle bin settings.
    pub fn update_container(&self, name: &str, update: &ContainerUpdate) -> Result<ContainerInfo> {
        let mut c = self.container_record(name)?;
        if let Some(q) = update.quota {
            c.quota = q;
        }
        if let Some(days) = update.recycle_retention_days {
            if days == Some(0) {
                return Err(Error::invalid("retention", "0", "use at least 1 day"));
            }
            if days.is_some() && c.kind == crate::ContainerKind::Vtl {
                return Err(Error::Conflict(format!(
                    "container {name:?} is a virtual tape library (type vtl): its recycle bin cannot be turned \
                     on (a tape's data is kept or erased by the backup application)"
                )));
            }
            c.recycle_retention = days.map(|d| d.saturating_mul(DAY_SECS));
        }
        self.catalog().replace_container(&c)?;
        self.container(name)
    }

    /// Moves a stream to its container's recycle bin (the bin is on), beside the versions of
    /// the same name already there.
    pub(crate) fn recycle_stream(&self, c: &ContainerRecord, s: &StreamRecord, retention: u64) -> Result<()> {
        let now = now_secs();
        let binned = self.catalog().next_id()?;
        let r = RecycledRecord { stream: s.clone(), deleted: now, expires: now.saturating_add(retention), binned };
        self.catalog().recycle_stream(c.id, &r)
    }

    /// The stream versions in a container's recycle bin, by id (the order they were made).
    pub fn recycle_bin(&self, container: &str) -> Result<Vec<RecycledInfo>> {
        let c = self.container_record(container)?;
        Ok(self.catalog().recycled(c.id)?.iter().map(|r| RecycledInfo::new(container, r)).collect())
    }

    /// Restores a stream from its container's recycle bin: version `id`, or the most recently
    /// binned one of that name. Fails if a live stream has its name.
    pub fn restore_stream(&self, container: &str, name: &str, id: Option<u64>) -> Result<StreamInfo> {
        let c = self.container_record(container)?;
        crate::engine::check_not_owned(&c)?;
        let r = self.catalog().restore_recycled(c.id, name, id)?;
        Ok(StreamInfo::new(container, &r.stream))
    }

    /// Deletes for good the recycle bin entries that expired by `now` (seconds since the Unix
    /// epoch), the same way a stream is deleted (recipe renamed to `.rcp.deleted` first).
    /// Returns them as `CONTAINER/STREAM`.
    pub fn purge_recycle_bin(&self, now: u64) -> Result<Vec<String>> {
        let mut purged = Vec::new();
        for c in self.catalog().containers()? {
            let expired: Vec<RecycledRecord> =
                self.catalog().recycled(c.id)?.into_iter().filter(|r| r.expires <= now).collect();
            if expired.is_empty() {
                continue;
            }
            let store = self.store_for(&c)?;
            for r in expired {
                let id = r.stream.id;
                self.delete_with_recipe(&store, id, || self.catalog().remove_recycled_id(c.id, id).map(|_| ()))?;
                purged.push(format!("{}/{}", c.name, r.stream.name));
            }
        }
        Ok(purged)
    }
}
