//! Per-container metadata: small records that a frontend keeps with its container (the VTL
//! keeps its library layout and cartridge maps here).
//!
//! They live in the catalog's `container_meta` table, keyed by the container id (8 bytes,
//! big-endian) followed by the record's key (UTF-8, at most [`MAX_META_KEY_LEN`] bytes). Values
//! are framed like every catalog value ([`crate::catalog::encode_value`]: magic, version, kind
//! [`KIND_CONTAINER_META`], JSON body, CRC-32), so a damaged record is reported, never misread.
//! Every change is flushed (durable) before the call returns. Deleting a container deletes its
//! metadata.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Engine;
use crate::catalog::store::{Durability, OrCatalog};
use crate::catalog::{decode_value, encode_value, get_raw, scan_prefix, ContainerRecord, CONTAINER_META};
use crate::error::{Error, Result};

/// Kind byte of container metadata values in the catalog framing (groups 1, containers 2,
/// streams 3, engine state 4, recycled streams 5).
pub const KIND_CONTAINER_META: u8 = 6;
/// Longest metadata key, in bytes.
pub const MAX_META_KEY_LEN: usize = 256;

fn meta_key(container_id: u64, key: &str) -> Vec<u8> {
    let mut k = container_id.to_be_bytes().to_vec();
    k.extend_from_slice(key.as_bytes());
    k
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_META_KEY_LEN {
        return Err(Error::invalid("metadata key", key, "use 1 to 256 bytes"));
    }
    Ok(())
}

impl Engine {
    /// Stores (replacing) the metadata record `key` of `container`, durably.
    pub fn put_container_meta<T: Serialize>(&self, container: &str, key: &str, value: &T) -> Result<()> {
        check_key(key)?;
        let c = self.container_record(container)?;
        let value = encode_value(KIND_CONTAINER_META, value);
        let key = meta_key(c.id, key);
        self.catalog().with_record_ahead(CONTAINER_META, &key, Some(&value), || {
            self.catalog().store().write(Durability::Durable, |tx| {
                tx.open_table(CONTAINER_META).db()?.insert(key.as_slice(), value.as_slice()).db()?;
                Ok(())
            })
        })
    }

    /// The metadata record `key` of `container`, if any. A damaged record is
    /// [`crate::ErrorKind::Corrupt`].
    pub fn container_meta<T: DeserializeOwned>(&self, container: &str, key: &str) -> Result<Option<T>> {
        check_key(key)?;
        let c = self.container_record(container)?;
        let raw =
            self.catalog().store().read(|tx| get_raw(&tx.open_table(CONTAINER_META).db()?, &meta_key(c.id, key)))?;
        match raw {
            None => Ok(None),
            Some(v) => decode_value(KIND_CONTAINER_META, &v).map(Some).map_err(|e| e.at(self.dir().join("catalog"))),
        }
    }

    /// The keys of `container`'s metadata records that start with `prefix`, in byte order.
    pub fn container_meta_keys(&self, container: &str, prefix: &str) -> Result<Vec<String>> {
        let c = self.container_record(container)?;
        let mut out = Vec::new();
        let rows = self
            .catalog()
            .store()
            .read(|tx| scan_prefix(&tx.open_table(CONTAINER_META).db()?, &meta_key(c.id, prefix)))?;
        for (k, _) in rows {
            let key = String::from_utf8(k[8..].to_vec()).map_err(|_| {
                Error::corrupt("container metadata key", self.dir().join("catalog"), "key is not UTF-8")
            })?;
            out.push(key);
        }
        Ok(out)
    }

    /// Removes the metadata record `key` of `container`, durably; returns whether it existed.
    pub fn remove_container_meta(&self, container: &str, key: &str) -> Result<bool> {
        check_key(key)?;
        let c = self.container_record(container)?;
        let key = meta_key(c.id, key);
        self.catalog().with_record_ahead(CONTAINER_META, &key, None, || {
            self.catalog().store().write(Durability::Durable, |tx| {
                let old = tx.open_table(CONTAINER_META).db()?.remove(key.as_slice()).db()?.is_some();
                Ok(old)
            })
        })
    }

    /// Removes every metadata record of a container (when the container is deleted).
    pub(crate) fn remove_all_container_meta(&self, c: &ContainerRecord) -> Result<()> {
        let prefix = c.id.to_be_bytes();
        let rows = self.catalog().store().read(|tx| scan_prefix(&tx.open_table(CONTAINER_META).db()?, &prefix))?;
        for (k, _) in rows {
            self.catalog().with_record_ahead(CONTAINER_META, &k, None, || {
                self.catalog().store().write(Durability::Durable, |tx| {
                    tx.open_table(CONTAINER_META).db()?.remove(k.as_slice()).db()?;
                    Ok(())
                })
            })?;
        }
        Ok(())
    }
}

/// Longest system setting key, in bytes.
pub const MAX_SETTING_KEY_LEN: usize = 128;
/// Prefix of system settings among the engine state records (kind 4, `meta` tree).
const SETTING_PREFIX: &str = "setting/";

fn setting_key(key: &str) -> Result<String> {
    if key.is_empty() || key.len() > MAX_SETTING_KEY_LEN {
        return Err(Error::invalid("setting key", key, "use 1 to 128 bytes"));
    }
    Ok(format!("{SETTING_PREFIX}{key}"))
}

impl Engine {
    /// Stores (replacing) a system-wide setting, durably: the system name, frontend
    /// credentials and the like. Kept among the engine state records under `setting/KEY`.
    pub fn put_setting<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        self.catalog().put_meta(&setting_key(key)?, value)
    }

    /// A system-wide setting, if set. A damaged record is [`crate::ErrorKind::Corrupt`].
    pub fn setting<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.catalog().meta(&setting_key(key)?)
    }

    /// Removes a system-wide setting, durably; returns whether it was set.
    pub fn remove_setting(&self, key: &str) -> Result<bool> {
        self.catalog().remove_meta(&setting_key(key)?)
    }

    /// The system name used in iSCSI target names and reports: the `system_name` setting,
    /// else the host name (`qorestor` when even that is unknown).
    pub fn system_name(&self) -> Result<String> {
        if let Some(n) = self.setting::<String>(SYSTEM_NAME_KEY)? {
            return Ok(n);
        }
        Ok(host_name().unwrap_or_else(|| "qorestor".into()))
    }

    /// Sets the system name (1 to 63 letters, digits, `-` and `.`, starting with a letter or
    /// digit, as in a host name; iSCSI names are made from it).
    pub fn set_system_name(&self, name: &str) -> Result<()> {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if !ok {
            return Err(Error::invalid(
                "system name",
                name,
                "use 1 to 63 letters, digits, '-' and '.', starting with a letter or digit",
            ));
        }
        self.put_setting(SYSTEM_NAME_KEY, &name.to_string())
    }
}

/// Setting key of the system name.
const SYSTEM_NAME_KEY: &str = "system_name";

/// The host name, from `/proc/sys/kernel/hostname` (Linux) or `/etc/hostname`.
fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}
