//! Encryption at rest of a storage group.
//!
//! Key hierarchy (byte layouts in `docs/FORMAT.md`):
//! - passphrase → **key-encryption key** (KEK, 32 bytes, never stored): Argon2id with the
//!   group's random 16-byte salt and the memory and iteration costs kept in the group record;
//! - the KEK wraps (AES-256-GCM, random nonce) the group's **master secret** and each **data
//!   key** (32 random bytes each). A wrong passphrase gives a KEK under which the master secret
//!   fails authentication: that is how it is told apart, without storing anything derived
//!   from the passphrase;
//! - from the master secret, BLAKE3's key derivation gives the **fingerprint key** (chunks are
//!   named by keyed BLAKE3, so equal data in two groups gets unrelated fingerprints, and a
//!   fingerprint confirms nothing about data to whoever lacks the key) and the **chunker key**
//!   (the gear table is drawn from it, so where chunks are cut, and so their lengths, cannot be
//!   predicted from known data);
//! - data keys seal chunk payloads with AES-256-GCM: the sealed payload is the key id (4 bytes),
//!   a random 96-bit nonce, the ciphertext of the (compressed or raw) payload and the 16-byte
//!   tag; the associated data binds it to the record's fingerprint, raw length and codec.
//!
//! Mode `static` keeps one data key. Mode `internal` adds a new data key when the newest is
//! older than the rotation interval (checked when a stream starts) and keeps the old ones, so
//! old chunks stay readable. Replicating a group copies its record, wrapped keys included:
//! the replica opens with the same passphrase and its fingerprints match.

use std::sync::Arc;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::chunker::{ChunkParams, Chunker};
use crate::compress::Codec;
use crate::error::{DecodeError, Error, Result};
use crate::fingerprint::Fingerprint;

/// Bytes a sealed payload adds to the plaintext: key id (4), nonce (12) and tag (16).
pub const SEAL_OVERHEAD: usize = 32;
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const SALT_LEN: usize = 16;
/// Longest passphrase accepted, in bytes.
pub const MAX_PASSPHRASE_LEN: usize = 1024;
/// Default Argon2id memory cost, KiB (OWASP's recommended minimum for Argon2id).
pub const DEFAULT_KDF_MEMORY_KIB: u32 = 19 * 1024;
/// Default Argon2id iterations.
pub const DEFAULT_KDF_ITERATIONS: u32 = 2;
/// Largest Argon2id memory cost a group record may ask for (1 GiB), so that a damaged or
/// hostile record cannot make an open allocate without bound.
const MAX_KDF_MEMORY_KIB: u32 = 1 << 20;
const MAX_KDF_ITERATIONS: u32 = 64;
/// Most data keys a group record may hold (a daily rotation for 27 years).
const MAX_DATA_KEYS: usize = 10_000;

/// A passphrase, wiped from memory when dropped.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// The passphrase's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Accepts 1 to [`MAX_PASSPHRASE_LEN`] bytes (one trailing newline, as a file or a pipe
    /// gives it, is dropped).
    pub fn new(mut bytes: Vec<u8>) -> Result<Passphrase> {
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        let p = Passphrase(Zeroizing::new(bytes));
        if p.0.is_empty() || p.0.len() > MAX_PASSPHRASE_LEN {
            return Err(Error::invalid(
                "passphrase",
                format!("({} bytes)", p.0.len()),
                format!("use 1 to {MAX_PASSPHRASE_LEN} bytes"),
            ));
        }
        Ok(p)
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// How a group's data keys change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncryptionMode {
    /// One data key for the group's life.
    Static,
    /// A new data key every rotation interval; old keys are kept to read old chunks.
    Internal,
}

impl EncryptionMode {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionMode::Static => "static",
            EncryptionMode::Internal => "internal",
        }
    }
}

/// Argon2id parameters of a group's key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Random salt, hex.
    pub salt: String,
    /// Memory cost, KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
}

/// A data key, wrapped by the key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// Key id (named in every payload it seals); ids start at 1 and grow.
    pub id: u32,
    /// When it was made, seconds since the Unix epoch.
    pub created: u64,
    /// Nonce, ciphertext and tag, hex.
    pub wrapped: String,
}

/// A storage group's encryption settings and wrapped keys, kept in its catalog record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionRecord {
    /// Static or internal (rotating) keys.
    pub mode: EncryptionMode,
    /// Days between data key rotations (`internal` mode).
    pub rotation_days: u32,
    /// How the key-encryption key is derived from the passphrase.
    pub kdf: KdfParams,
    /// The master secret, wrapped.
    pub master: String,
    /// The data keys, oldest first.
    pub keys: Vec<WrappedKey>,
}

/// Options for a new encrypted group.
#[derive(Debug, Clone)]
pub struct EncryptionOptions {
    /// Static or internal keys.
    pub mode: EncryptionMode,
    /// Days between rotations in `internal` mode (1 to 3650).
    pub rotation_days: u32,
    /// The passphrase that wraps the keys.
    pub passphrase: Passphrase,
    /// Argon2id memory cost, KiB (default [`DEFAULT_KDF_MEMORY_KIB`]).
    pub kdf_memory_kib: u32,
    /// Argon2id iterations (default [`DEFAULT_KDF_ITERATIONS`]).
    pub kdf_iterations: u32,
}

impl EncryptionOptions {
    /// Options with the default key derivation costs.
    pub fn new(mode: EncryptionMode, rotation_days: u32, passphrase: Passphrase) -> Self {
        EncryptionOptions {
            mode,
            rotation_days,
            passphrase,
            kdf_memory_kib: DEFAULT_KDF_MEMORY_KIB,
            kdf_iterations: DEFAULT_KDF_ITERATIONS,
        }
    }
}

/// `N` bytes from the system's random source.
pub(crate) fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| Error::internal(format!("the system random source failed: {e}")))?;
    Ok(b)
}

/// Lower-case hex of `b`.
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The bytes of a hex string (`None` if it is not hex).
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

fn corrupt(detail: impl Into<String>) -> Error {
    Error::damaged("encryption record of the storage group", detail)
}

fn derive_kek(pass: &Passphrase, kdf: &KdfParams) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let salt = unhex(&kdf.salt).filter(|s| s.len() == SALT_LEN).ok_or_else(|| corrupt("bad salt"))?;
    if !(8..=MAX_KDF_MEMORY_KIB).contains(&kdf.memory_kib) || !(1..=MAX_KDF_ITERATIONS).contains(&kdf.iterations) {
        return Err(corrupt(format!("key derivation costs {} KiB x {} out of range", kdf.memory_kib, kdf.iterations)));
    }
    let params = argon2::Params::new(kdf.memory_kib, kdf.iterations, 1, Some(KEY_LEN))
        .map_err(|e| corrupt(format!("key derivation parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut kek = Zeroizing::new([0u8; KEY_LEN]);
    argon.hash_password_into(&pass.0, &salt, kek.as_mut()).map_err(|e| corrupt(format!("key derivation: {e}")))?;
    Ok(kek)
}

/// Associated data of a wrapped key: what it is, so a wrapped data key cannot stand in for the
/// master secret or for another data key.
fn wrap_aad(id: u32) -> [u8; 12] {
    let mut a = *b"qswrap\0\0\0\0\0\0";
    a[8..12].copy_from_slice(&id.to_le_bytes());
    a
}

/// Id under which the master secret is wrapped (data keys start at 1).
const MASTER_ID: u32 = 0;

fn wrap(kek: &Aes256Gcm, id: u32, key: &[u8; KEY_LEN]) -> Result<String> {
    let nonce = random::<NONCE_LEN>()?;
    let mut buf = key.to_vec();
    let tag = kek
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), &wrap_aad(id), &mut buf)
        .map_err(|_| Error::internal("key wrapping failed"))?;
    let mut all = nonce.to_vec();
    all.extend_from_slice(&buf);
    all.extend_from_slice(&tag);
    Ok(hex(&all))
}

/// Unwraps a key; `None` when it does not authenticate under this KEK.
fn unwrap_key(kek: &Aes256Gcm, id: u32, wrapped: &str) -> Result<Option<Zeroizing<[u8; KEY_LEN]>>> {
    let all = unhex(wrapped).filter(|b| b.len() == NONCE_LEN + KEY_LEN + TAG_LEN).ok_or_else(|| {
        corrupt(format!("wrapped key {id} is not {} hex digits", 2 * (NONCE_LEN + KEY_LEN + TAG_LEN)))
    })?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&all[NONCE_LEN..NONCE_LEN + KEY_LEN]);
    let tag = Tag::from_slice(&all[NONCE_LEN + KEY_LEN..]);
    let ok = kek.decrypt_in_place_detached(Nonce::from_slice(&all[..NONCE_LEN]), &wrap_aad(id), key.as_mut(), tag);
    Ok(ok.is_ok().then_some(key))
}

struct DataKey {
    id: u32,
    created: u64,
    cipher: Aes256Gcm,
}

/// A group's unlocked keys.
pub(crate) struct GroupKeys {
    kek: Aes256Gcm,
    fingerprint_key: Zeroizing<[u8; KEY_LEN]>,
    gear_key: Zeroizing<[u8; KEY_LEN]>,
    /// Oldest first; the last one seals new chunks.
    data: RwLock<Vec<DataKey>>,
}

impl GroupKeys {
    fn from_master(kek: Aes256Gcm, master: &[u8; KEY_LEN]) -> GroupKeys {
        GroupKeys {
            kek,
            fingerprint_key: Zeroizing::new(blake3::derive_key("qorestor 2026 chunk fingerprint key", master)),
            gear_key: Zeroizing::new(blake3::derive_key("qorestor 2026 chunker gear key", master)),
            data: RwLock::new(Vec::new()),
        }
    }

    /// Makes the keys of a new encrypted group and the record that keeps them.
    pub(crate) fn create(opts: &EncryptionOptions, now: u64) -> Result<(EncryptionRecord, GroupKeys)> {
        if opts.mode == EncryptionMode::Internal && !(1..=3650).contains(&opts.rotation_days) {
            return Err(Error::invalid(
                "key rotation interval",
                format!("{} days", opts.rotation_days),
                "use 1 to 3650 days",
            ));
        }
        let kdf = KdfParams {
            salt: hex(&random::<SALT_LEN>()?),
            memory_kib: opts.kdf_memory_kib,
            iterations: opts.kdf_iterations,
        };
        let kek = Aes256Gcm::new(derive_kek(&opts.passphrase, &kdf)?.as_ref().into());
        let master = Zeroizing::new(random::<KEY_LEN>()?);
        let mut record = EncryptionRecord {
            mode: opts.mode,
            rotation_days: opts.rotation_days,
            kdf,
            master: wrap(&kek, MASTER_ID, &master)?,
            keys: Vec::new(),
        };
        let keys = GroupKeys::from_master(kek, &master);
        keys.add_data_key(&mut record, now)?;
        Ok((record, keys))
    }

    /// Unlocks a group's keys with its passphrase.
    pub(crate) fn unlock(group: &str, record: &EncryptionRecord, pass: &Passphrase) -> Result<GroupKeys> {
        if record.keys.is_empty() || record.keys.len() > MAX_DATA_KEYS {
            return Err(corrupt(format!("{} data keys", record.keys.len())));
        }
        let kek = Aes256Gcm::new(derive_kek(pass, &record.kdf)?.as_ref().into());
        let master = unwrap_key(&kek, MASTER_ID, &record.master)?
            .ok_or_else(|| Error::WrongPassphrase { group: group.to_string() })?;
        let keys = GroupKeys::from_master(kek, &master);
        {
            let mut data = keys.data.write();
            for w in &record.keys {
                let key = unwrap_key(&keys.kek, w.id, &w.wrapped)?
                    .ok_or_else(|| corrupt(format!("data key {} does not authenticate", w.id)))?;
                data.push(DataKey { id: w.id, created: w.created, cipher: Aes256Gcm::new(key.as_ref().into()) });
            }
        }
        Ok(keys)
    }

    /// Adds a new data key (it seals new chunks from now on) to `record` and to the keys.
    pub(crate) fn add_data_key(&self, record: &mut EncryptionRecord, now: u64) -> Result<u32> {
        self.add_data_key_recorded(record, now, |_| Ok(()))
    }

    /// Like [`GroupKeys::add_data_key`], calling `persist` with the updated record before the
    /// key seals anything: no chunk is ever sealed with a key that is not durably recorded.
    pub(crate) fn add_data_key_recorded(
        &self,
        record: &mut EncryptionRecord,
        now: u64,
        persist: impl FnOnce(&EncryptionRecord) -> Result<()>,
    ) -> Result<u32> {
        if record.keys.len() >= MAX_DATA_KEYS {
            return Err(Error::Conflict(format!("the group has {MAX_DATA_KEYS} data keys, the most it may hold")));
        }
        let id = record.keys.iter().map(|k| k.id).max().unwrap_or(0) + 1;
        let key = Zeroizing::new(random::<KEY_LEN>()?);
        record.keys.push(WrappedKey { id, created: now, wrapped: wrap(&self.kek, id, &key)? });
        persist(record)?;
        self.data.write().push(DataKey { id, created: now, cipher: Aes256Gcm::new(key.as_ref().into()) });
        Ok(id)
    }

    /// When the newest data key was made.
    pub(crate) fn newest_key_created(&self) -> u64 {
        self.data.read().last().map_or(0, |k| k.created)
    }

    /// Seals `buf[start + 16..]` (the plaintext payload, after 16 bytes reserved by the
    /// caller for the key id and nonce) in place and appends the tag.
    pub(crate) fn seal(&self, aad: &[u8], buf: &mut Vec<u8>, start: usize) -> Result<()> {
        let nonce = random::<NONCE_LEN>()?;
        let data = self.data.read();
        let key = data.last().expect("an unlocked group has a data key");
        buf[start..start + 4].copy_from_slice(&key.id.to_le_bytes());
        buf[start + 4..start + 16].copy_from_slice(&nonce);
        let tag = key
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut buf[start + 16..])
            .map_err(|_| Error::internal("chunk encryption failed"))?;
        buf.extend_from_slice(&tag);
        Ok(())
    }

    /// Opens a sealed payload, appending the plaintext to `out`.
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let what = "sealed chunk payload";
        if sealed.len() < SEAL_OVERHEAD {
            return Err(DecodeError::new(what, format!("{} bytes, need at least {SEAL_OVERHEAD}", sealed.len())));
        }
        let id = u32::from_le_bytes(sealed[..4].try_into().expect("4 bytes"));
        let data = self.data.read();
        let key =
            data.iter().find(|k| k.id == id).ok_or_else(|| DecodeError::new(what, format!("unknown data key {id}")))?;
        let start = out.len();
        out.extend_from_slice(&sealed[16..sealed.len() - TAG_LEN]);
        let tag = Tag::from_slice(&sealed[sealed.len() - TAG_LEN..]);
        if key.cipher.decrypt_in_place_detached(Nonce::from_slice(&sealed[4..16]), aad, &mut out[start..], tag).is_err()
        {
            out.truncate(start);
            return Err(DecodeError::new(what, "authentication failed"));
        }
        Ok(())
    }
}

/// Associated data of a sealed chunk payload: fingerprint, raw length and codec byte.
pub(crate) fn chunk_aad(fp: &Fingerprint, raw_len: u32, codec: Codec) -> [u8; 37] {
    let mut a = [0u8; 37];
    a[..32].copy_from_slice(fp.as_bytes());
    a[32..36].copy_from_slice(&raw_len.to_le_bytes());
    a[36] = codec as u8;
    a
}

/// How a storage group names, cuts and protects its chunks: plainly, or with its keys.
/// Cheap to clone.
#[derive(Clone, Default)]
pub struct GroupCrypto {
    keys: Option<Arc<GroupKeys>>,
}

impl GroupCrypto {
    pub(crate) fn with_keys(keys: Arc<GroupKeys>) -> Self {
        GroupCrypto { keys: Some(keys) }
    }

    /// Makes the keys of a new encrypted group: the record that keeps them wrapped, and the
    /// unlocked crypto. (The engine uses it for `add_encrypted_storage_group`; tests and fuzz
    /// targets use it to decode sealed records.)
    pub fn generate(opts: &EncryptionOptions, now: u64) -> Result<(EncryptionRecord, GroupCrypto)> {
        let (record, keys) = GroupKeys::create(opts, now)?;
        Ok((record, GroupCrypto::with_keys(Arc::new(keys))))
    }

    /// Whether chunks are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.keys.is_some()
    }

    /// The fingerprint of a chunk: BLAKE3, keyed with the group's fingerprint key if encrypted.
    pub fn fingerprint(&self, data: &[u8]) -> Fingerprint {
        match &self.keys {
            None => Fingerprint::of(data),
            Some(k) => Fingerprint(*blake3::keyed_hash(&k.fingerprint_key, data).as_bytes()),
        }
    }

    /// The group's chunker: the gear table is drawn from the chunker key if encrypted.
    pub fn chunker(&self, params: ChunkParams) -> Result<Chunker> {
        match &self.keys {
            None => Chunker::new(params),
            Some(k) => Chunker::keyed(params, &k.gear_key),
        }
    }

    pub(crate) fn keys(&self) -> Option<&GroupKeys> {
        self.keys.as_deref()
    }

    /// Unlocks the keys kept in an encrypted group's record (`group` names it in errors).
    pub fn unlock(group: &str, record: &EncryptionRecord, pass: &Passphrase) -> Result<GroupCrypto> {
        Ok(GroupCrypto::with_keys(Arc::new(GroupKeys::unlock(group, record, pass)?)))
    }

    /// Seals a plaintext payload (`inner`: [`Codec::Raw`] or [`Codec::Zstd`]) of the chunk
    /// `fp` of `raw_len` bytes with the newest data key; returns the sealed codec and payload.
    /// (The writer seals in place in its own buffers; this is the same seal for one record.)
    pub fn seal_payload(&self, fp: &Fingerprint, raw_len: u32, inner: Codec, plain: &[u8]) -> Result<(Codec, Vec<u8>)> {
        let keys = self.keys().ok_or_else(|| Error::Conflict("the storage group is not encrypted".into()))?;
        let codec = inner.sealed();
        let mut buf = vec![0u8; 16];
        buf.extend_from_slice(plain);
        keys.seal(&chunk_aad(fp, raw_len, codec), &mut buf, 0)?;
        Ok((codec, buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(mode: EncryptionMode) -> EncryptionOptions {
        let mut o = EncryptionOptions::new(mode, 7, Passphrase::new(b"correct horse\n".to_vec()).unwrap());
        o.kdf_memory_kib = 64;
        o.kdf_iterations = 1;
        o
    }

    #[test]
    fn unlock_with_the_right_passphrase_only() {
        let (rec, _) = GroupKeys::create(&opts(EncryptionMode::Static), 1).unwrap();
        assert!(GroupKeys::unlock("g", &rec, &Passphrase::new(b"correct horse".to_vec()).unwrap()).is_ok());
        let e = GroupKeys::unlock("g", &rec, &Passphrase::new(b"wrong".to_vec()).unwrap()).err().unwrap();
        assert!(matches!(e, Error::WrongPassphrase { .. }), "{e}");
    }

    #[test]
    fn a_damaged_encryption_record_is_corrupt_data() {
        let (mut rec, _) = GroupKeys::create(&opts(EncryptionMode::Static), 1).unwrap();
        rec.kdf.salt = "zz".into();
        let e = GroupKeys::unlock("g", &rec, &Passphrase::new(b"correct horse".to_vec()).unwrap()).err().unwrap();
        assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{e}");
        assert!(e.to_string().contains("encryption record") && e.to_string().contains("bad salt"), "{e}");
    }

    #[test]
    fn seal_open_round_trip_across_rotation_and_tamper_detection() {
        let (mut rec, keys) = GroupKeys::create(&opts(EncryptionMode::Internal), 1).unwrap();
        let fp = Fingerprint([7; 32]);
        let aad = chunk_aad(&fp, 5, Codec::SealedRaw);
        let mut old = vec![0u8; 16];
        old.extend_from_slice(b"hello");
        keys.seal(&aad, &mut old, 0).unwrap();
        assert_eq!(old.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(keys.add_data_key(&mut rec, 2).unwrap(), 2);
        let mut new = vec![0u8; 16];
        new.extend_from_slice(b"world");
        keys.seal(&aad, &mut new, 0).unwrap();
        // A reopened keyring reads chunks sealed under both keys.
        let again = GroupKeys::unlock("g", &rec, &Passphrase::new(b"correct horse".to_vec()).unwrap()).unwrap();
        let mut out = Vec::new();
        again.open(&aad, &old, &mut out).unwrap();
        again.open(&aad, &new, &mut out).unwrap();
        assert_eq!(out, b"helloworld");
        // Changed bytes or changed associated data fail authentication.
        let mut bad = new.clone();
        bad[20] ^= 1;
        assert!(again.open(&aad, &bad, &mut out).is_err());
        assert!(again.open(&chunk_aad(&fp, 6, Codec::SealedRaw), &new, &mut out).is_err());
        assert_eq!(out, b"helloworld");
    }

    #[test]
    fn keyed_fingerprints_differ_between_groups() {
        let (_, a) = GroupKeys::create(&opts(EncryptionMode::Static), 1).unwrap();
        let (_, b) = GroupKeys::create(&opts(EncryptionMode::Static), 1).unwrap();
        let (a, b) = (GroupCrypto::with_keys(Arc::new(a)), GroupCrypto::with_keys(Arc::new(b)));
        let data = b"the same chunk";
        assert_ne!(a.fingerprint(data), b.fingerprint(data));
        assert_ne!(a.fingerprint(data), Fingerprint::of(data));
        assert_eq!(a.fingerprint(data), a.fingerprint(data));
    }
}
