//! Encrypted storage groups: creating one, the passphrase that unlocks them, and data key
//! rotation. The key hierarchy and the sealed record layout are in [`crate::crypto`].

use std::sync::Arc;

use super::{now_secs, Engine, GroupInfo, GroupOptions};
use crate::catalog::GroupRecord;
use crate::crypto::{EncryptionMode, EncryptionOptions, GroupCrypto, Passphrase};
use crate::error::{Error, Result};
use crate::group::GroupStore;

impl Engine {
    /// Gives the passphrase of encrypted storage groups: groups opened from now on, and open
    /// ones still locked, are unlocked with it. A group it does not unlock reports
    /// [`Error::WrongPassphrase`] when it is read or written; other groups are not affected.
    pub fn set_passphrase(&self, pass: Passphrase) -> Result<()> {
        *self.inner.passphrase.lock() = Some(pass.clone());
        let open: Vec<Arc<GroupStore>> = self.inner.open_groups();
        for store in open.into_iter().filter(|s| s.is_locked()) {
            let record = self.catalog().group(&store.record().name)?;
            if let Some(enc) = record.and_then(|r| r.encryption) {
                match store.unlock(&enc, &pass) {
                    Ok(()) | Err(Error::WrongPassphrase { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Checks that `pass` is the passphrase this engine was given with
    /// [`Engine::set_passphrase`] (compared in constant time): `Ok` when they are equal or no
    /// storage group is encrypted, else [`Error::WrongPassphrase`] naming the first encrypted
    /// group. The daemon checks a client's passphrase with it: its groups are unlocked with its
    /// own.
    pub fn check_same_passphrase(&self, pass: &Passphrase) -> Result<()> {
        let ours = self.inner.passphrase.lock().clone();
        if ours.is_some_and(|o| crate::users::equal_in_constant_time(o.as_bytes(), pass.as_bytes())) {
            return Ok(());
        }
        match self.catalog().groups()?.into_iter().find(|g| g.encryption.is_some()) {
            Some(g) => Err(Error::WrongPassphrase { group: g.name }),
            None => Ok(()),
        }
    }

    /// Creates an encrypted storage group. Its keys are wrapped by `enc.passphrase`, which
    /// every later process needs to read or write it. Encryption cannot be removed later.
    pub fn add_encrypted_storage_group(
        &self,
        name: &str,
        opts: GroupOptions,
        enc: EncryptionOptions,
    ) -> Result<GroupInfo> {
        super::check_object_name("storage group name", name)?;
        let (record, crypto) = GroupCrypto::generate(&enc, now_secs())?;
        let record = self.insert_group(name, opts, Some(record))?;
        self.inner.group_store(&record)?.set_crypto(crypto);
        self.group_info(&record)
    }

    /// Adds a new data key to an encrypted group now (mode `internal` also does this by itself
    /// every rotation interval); chunks stored from now on are sealed with it, older chunks
    /// keep theirs. Returns the new key's id.
    pub fn rotate_storage_group_key(&self, name: &str) -> Result<u32> {
        let record = self.group_record(name)?;
        if record.encryption.is_none() {
            return Err(Error::Conflict(format!("storage group {name:?} is not encrypted")));
        }
        let store = self.inner.group_store(&record)?;
        self.add_data_key(&store, name)
    }

    /// Rotates the data key of an `internal`-mode group whose newest key is older than its
    /// interval (called when a stream starts; needs the group unlocked).
    pub(crate) fn rotate_if_due(&self, record: &GroupRecord, store: &GroupStore) -> Result<()> {
        let Some(enc) = &record.encryption else { return Ok(()) };
        if enc.mode != EncryptionMode::Internal {
            return Ok(());
        }
        let crypto = store.crypto()?;
        let keys = crypto.keys().expect("an unlocked encrypted group has keys");
        let due = keys.newest_key_created().saturating_add(enc.rotation_days as u64 * 86_400);
        if now_secs() >= due {
            self.add_data_key(store, &record.name)?;
        }
        Ok(())
    }

    /// Makes a data key, stores it wrapped in the group's record (durably) and then starts
    /// sealing with it.
    fn add_data_key(&self, store: &GroupStore, name: &str) -> Result<u32> {
        let crypto = store.crypto()?;
        let keys = crypto.keys().expect("an unlocked encrypted group has keys");
        let _guard = self.inner.group_update.lock();
        let mut record = self.group_record(name)?;
        let mut enc = record.encryption.take().expect("checked encrypted");
        // The key is recorded before any chunk is sealed with it (add_data_key installs it
        // in memory only after wrapping): the catalog write below makes it durable first.
        let id = keys.add_data_key_recorded(&mut enc, now_secs(), |enc| {
            record.encryption = Some(enc.clone());
            self.catalog().replace_group(&record)
        })?;
        Ok(id)
    }
}
