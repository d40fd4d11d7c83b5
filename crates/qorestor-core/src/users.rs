//! Users of the OST (and later REST) planes and the keys that authenticate them.
//!
//! Authentication is shaped like SCRAM-SHA-256 (RFC 5802, RFC 7677), with Argon2id in place of
//! PBKDF2 as the password's salting function:
//!
//! ```text
//! SaltedPassword  = Argon2id(password, salt, m, t, p) (32 bytes)
//! ClientKey       = HMAC-SHA-256(SaltedPassword, "Client Key")
//! StoredKey       = SHA-256(ClientKey)
//! ServerKey       = HMAC-SHA-256(SaltedPassword, "Server Key")
//! ClientSignature = HMAC-SHA-256(StoredKey, AuthMessage)
//! ClientProof     = ClientKey XOR ClientSignature
//! ServerSignature = HMAC-SHA-256(ServerKey, AuthMessage)
//! ```
//!
//! The catalog keeps only StoredKey and ServerKey, with the Argon2id parameters and salt beside
//! them as a PHC string: a stolen catalog logs nobody in (StoredKey does not give ClientKey). The
//! server checks a proof by recovering ClientKey from it and hashing it to StoredKey; the client
//! checks ServerSignature, so a server that does not hold the keys is found out too. A client
//! refuses Argon2id costs outside [`KDF_BOUNDS`] before it derives anything. For a name that is
//! not a user, [`Engine::user_verifier`] gives a decoy derived from a server secret and the name
//! (the same salt every time, never a matching key), so answers do not tell names apart.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use argon2::password_hash::{PasswordHash, SaltString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{hex, random, unhex, Passphrase};
use crate::engine::{check_object_name, now_secs, Engine};
use crate::error::{Error, Result};

/// Engine setting that holds the users.
const USERS_SETTING: &str = "users";
/// Engine setting that holds the secret decoys are derived from.
const SECRET_SETTING: &str = "users-secret";
/// Length of a salt, bytes.
pub const SALT_LEN: usize = 16;
/// Length of every key and signature, bytes.
pub const KEY_LEN: usize = 32;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Administrator,
    /// Look, never change (refused by the OST server).
    Monitor,
    /// Back up and restore through the OST server.
    Ost,
}

impl Role {
    /// The role's name as the CLI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Monitor => "monitor",
            Role::Ost => "ost",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Role> {
        match s {
            "administrator" => Ok(Role::Administrator),
            "monitor" => Ok(Role::Monitor),
            "ost" => Ok(Role::Ost),
            _ => Err(Error::invalid("role", s, "use administrator, monitor or ost")),
        }
    }
}

/// Argon2id costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory, KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

/// The costs new keys are derived with (OWASP's minimum for Argon2id: 19 MiB, 2 passes).
pub const DEFAULT_KDF: KdfParams = KdfParams {
    memory_kib: crate::crypto::DEFAULT_KDF_MEMORY_KIB,
    iterations: crate::crypto::DEFAULT_KDF_ITERATIONS,
    parallelism: 1,
};

/// The costs a client accepts from a server: (lowest, highest). Below, a relay could make the
/// password cheap to guess from what it saw; above, it could exhaust the client's memory.
pub const KDF_BOUNDS: (KdfParams, KdfParams) =
    (DEFAULT_KDF, KdfParams { memory_kib: 256 * 1024, iterations: 16, parallelism: 8 });

impl KdfParams {
    /// Refuses costs outside [`KDF_BOUNDS`], naming the offending one.
    pub fn check_bounds(&self) -> Result<()> {
        let (lo, hi) = KDF_BOUNDS;
        let check = |what: &'static str, v: u32, lo: u32, hi: u32| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(Error::invalid(what, v.to_string(), format!("the server asks for costs outside {lo}..={hi}")))
            }
        };
        check("Argon2id memory (KiB)", self.memory_kib, lo.memory_kib, hi.memory_kib)?;
        check("Argon2id iterations", self.iterations, lo.iterations, hi.iterations)?;
        check("Argon2id parallelism", self.parallelism, lo.parallelism, hi.parallelism)
    }
}

/// What a server needs to check one user's proof (a decoy's for an unknown name).
pub struct Verifier {
    /// The salt.
    pub salt: [u8; SALT_LEN],
    /// The Argon2id costs.
    pub kdf: KdfParams,
    /// SHA-256(ClientKey).
    pub stored_key: Zeroizing<[u8; KEY_LEN]>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Zeroizing<[u8; KEY_LEN]>,
    /// The user's role; `None` for a decoy (no proof matches it).
    pub role: Option<Role>,
}

/// A user as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
}

/// A user as the catalog keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserRecord {
    role: Role,
    created: u64,
    /// `$argon2id$v=19$m=..,t=..,p=..$<salt, B64>`: the salting function's parameters.
    phc: String,
    /// StoredKey, hex.
    stored_key: String,
    /// ServerKey, hex.
    server_key: String,
}

/// HMAC-SHA-256.
pub fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; KEY_LEN] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut ctx = ring::hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    ctx.sign().as_ref().try_into().expect("HMAC-SHA-256 is 32 bytes")
}

/// SHA-256.
pub fn sha256(b: &[u8]) -> [u8; KEY_LEN] {
    ring::digest::digest(&ring::digest::SHA256, b).as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// Whether two byte strings are equal, in time that depends only on their length.
pub fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A 32-byte nonce from the system's random source.
pub fn random_nonce() -> Result<[u8; KEY_LEN]> {
    random::<KEY_LEN>()
}

/// SaltedPassword: Argon2id of the password.
pub fn salted_password(password: &[u8], salt: &[u8; SALT_LEN], kdf: KdfParams) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let fail = |e: argon2::Error| Error::internal(format!("password key derivation: {e}"));
    let params = argon2::Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism, Some(KEY_LEN)).map_err(fail)?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    argon.hash_password_into(password, salt, out.as_mut()).map_err(fail)?;
    Ok(out)
}

/// ClientKey of a SaltedPassword.
pub fn client_key(salted: &[u8; KEY_LEN]) -> Zeroizing<[u8; KEY_LEN]> {
    Zeroizing::new(hmac(salted, &[b"Client Key"]))
}

/// ServerKey of a SaltedPassword.
pub fn server_key(salted: &[u8; KEY_LEN]) -> Zeroizing<[u8; KEY_LEN]> {
    Zeroizing::new(hmac(salted, &[b"Server Key"]))
}

/// ClientProof over `auth_message` (the client's side).
pub fn client_proof(client_key: &[u8; KEY_LEN], auth_message: &[u8]) -> [u8; KEY_LEN] {
    let signature = hmac(&sha256(client_key), &[auth_message]);
    std::array::from_fn(|i| client_key[i] ^ signature[i])
}

/// Whether `proof` over `auth_message` comes from the holder of the password (the server's
/// side: ClientKey is recovered from the proof and must hash to StoredKey).
pub fn proof_matches(stored_key: &[u8; KEY_LEN], auth_message: &[u8], proof: &[u8; KEY_LEN]) -> bool {
    let signature = hmac(stored_key, &[auth_message]);
    let key: Zeroizing<[u8; KEY_LEN]> = Zeroizing::new(std::array::from_fn(|i| proof[i] ^ signature[i]));
    equal_in_constant_time(&sha256(key.as_ref()), stored_key)
}

fn phc_string(salt: &[u8; SALT_LEN], kdf: KdfParams) -> Result<String> {
    let salt = SaltString::encode_b64(salt).map_err(|e| Error::internal(format!("salt encoding: {e}")))?;
    Ok(format!("$argon2id$v=19$m={},t={},p={}${}", kdf.memory_kib, kdf.iterations, kdf.parallelism, salt.as_str()))
}

fn parse_phc(s: &str) -> Option<([u8; SALT_LEN], KdfParams)> {
    let hash = PasswordHash::new(s).ok()?;
    if hash.algorithm.as_str() != "argon2id" {
        return None;
    }
    let params = argon2::Params::try_from(&hash).ok()?;
    let mut salt = [0u8; SALT_LEN];
    let decoded = hash.salt?.decode_b64(&mut salt).ok()?;
    (decoded.len() == SALT_LEN).then_some(())?;
    let kdf = KdfParams { memory_kib: params.m_cost(), iterations: params.t_cost(), parallelism: params.p_cost() };
    Some((salt, kdf))
}

fn key_from_hex(s: &str) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    Some(Zeroizing::new(unhex(s)?.try_into().ok()?))
}

impl UserRecord {
    fn new(role: Role, created: u64, password: &Passphrase) -> Result<UserRecord> {
        let salt = random::<SALT_LEN>()?;
        let salted = salted_password(password.as_bytes(), &salt, DEFAULT_KDF)?;
        Ok(UserRecord {
            role,
            created,
            phc: phc_string(&salt, DEFAULT_KDF)?,
            stored_key: hex(&sha256(client_key(&salted).as_ref())),
            server_key: hex(server_key(&salted).as_ref()),
        })
    }

    fn verifier(&self, name: &str) -> Result<Verifier> {
        let damaged = || Error::damaged("user record", format!("user {name:?}: set the password again"));
        let (salt, kdf) = parse_phc(&self.phc).ok_or_else(damaged)?;
        Ok(Verifier {
            salt,
            kdf,
            stored_key: key_from_hex(&self.stored_key).ok_or_else(damaged)?,
            server_key: key_from_hex(&self.server_key).ok_or_else(damaged)?,
            role: Some(self.role),
        })
    }
}

impl Engine {
    fn user_records(&self) -> Result<BTreeMap<String, UserRecord>> {
        Ok(self.setting(USERS_SETTING)?.unwrap_or_default())
    }

    /// Adds a user (names as container names: `[A-Za-z0-9._-]{1,64}`). Only keys derived from
    /// the password are kept.
    pub fn add_user(&self, name: &str, role: Role, password: &Passphrase) -> Result<UserInfo> {
        check_object_name("user name", name)?;
        let mut users = self.user_records()?;
        if users.contains_key(name) {
            return Err(Error::AlreadyExists { what: "user", name: name.to_string() });
        }
        let record = UserRecord::new(role, now_secs(), password)?;
        let info = UserInfo { name: name.to_string(), role, created: record.created };
        users.insert(name.to_string(), record);
        self.put_setting(USERS_SETTING, &users)?;
        Ok(info)
    }

    /// Sets a user's password (new salt, new keys).
    pub fn set_user_password(&self, name: &str, password: &Passphrase) -> Result<()> {
        let mut users = self.user_records()?;
        let old = users.get(name).ok_or_else(|| Error::not_found("user", name))?;
        let record = UserRecord::new(old.role, old.created, password)?;
        users.insert(name.to_string(), record);
        self.put_setting(USERS_SETTING, &users)
    }

    /// Deletes a user.
    pub fn delete_user(&self, name: &str) -> Result<()> {
        let mut users = self.user_records()?;
        users.remove(name).ok_or_else(|| Error::not_found("user", name))?;
        self.put_setting(USERS_SETTING, &users)
    }

    /// The users, by name.
    pub fn users(&self) -> Result<Vec<UserInfo>> {
        Ok(self
            .user_records()?
            .into_iter()
            .map(|(name, r)| UserInfo { name, role: r.role, created: r.created })
            .collect())
    }

    /// What checks `name`'s proof: the user's keys, or, for a name that is not a user, a decoy
    /// derived from this system's secret and the name (the same salt and costs every time, a
    /// key no proof matches).
    pub fn user_verifier(&self, name: &str) -> Result<Verifier> {
        if let Some(r) = self.user_records()?.get(name) {
            return r.verifier(name);
        }
        let secret = match self.setting::<String>(SECRET_SETTING)?.and_then(|s| key_from_hex(&s)) {
            Some(s) => s,
            None => {
                let s = Zeroizing::new(random::<KEY_LEN>()?);
                self.put_setting(SECRET_SETTING, &hex(s.as_ref()))?;
                s
            }
        };
        let derived = hmac(secret.as_ref(), &[b"decoy salt", name.as_bytes()]);
        let salt = derived[..SALT_LEN].try_into().expect("16 of 32 bytes");
        Ok(Verifier {
            salt,
            kdf: DEFAULT_KDF,
            stored_key: Zeroizing::new(hmac(secret.as_ref(), &[b"decoy stored key", name.as_bytes()])),
            server_key: Zeroizing::new(hmac(secret.as_ref(), &[b"decoy server key", name.as_bytes()])),
            role: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_from_the_password_matches_and_one_from_another_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::create(dir.path()).unwrap();
        engine.add_user("backup", Role::Ost, &Passphrase::new(b"right horse".to_vec()).unwrap()).unwrap();
        let v = engine.user_verifier("backup").unwrap();
        assert_eq!(v.role, Some(Role::Ost));
        let auth = b"n=backup,r=abc,r=abcdef,s=..";
        let prove = |password: &[u8]| {
            let salted = salted_password(password, &v.salt, v.kdf).unwrap();
            client_proof(&client_key(&salted), auth)
        };
        assert!(proof_matches(&v.stored_key, auth, &prove(b"right horse")));
        assert!(!proof_matches(&v.stored_key, auth, &prove(b"wrong horse")));
        // An unknown name gets the same decoy salt every time, and no proof matches it.
        let (a, b) = (engine.user_verifier("nobody").unwrap(), engine.user_verifier("nobody").unwrap());
        assert_eq!(a.salt, b.salt);
        assert_ne!(a.salt, engine.user_verifier("nobody2").unwrap().salt);
        assert_eq!(a.role, None);
        // Names and roles.
        assert!(engine.add_user("backup", Role::Monitor, &Passphrase::new(b"x".to_vec()).unwrap()).is_err());
        assert_eq!(engine.users().unwrap().len(), 1);
        engine.delete_user("backup").unwrap();
        assert!(engine.users().unwrap().is_empty());
    }

    #[test]
    fn cheap_or_huge_costs_are_refused() {
        assert!(DEFAULT_KDF.check_bounds().is_ok());
        let cheap = KdfParams { memory_kib: 8, ..DEFAULT_KDF };
        assert!(cheap.check_bounds().unwrap_err().to_string().contains("memory"));
        let one_pass = KdfParams { iterations: 1, ..DEFAULT_KDF };
        assert!(one_pass.check_bounds().is_err());
        let huge = KdfParams { memory_kib: 4 << 20, ..DEFAULT_KDF };
        assert!(huge.check_bounds().is_err());
    }

    #[test]
    fn phc_strings_round_trip() {
        let salt = [7u8; SALT_LEN];
        let s = phc_string(&salt, DEFAULT_KDF).unwrap();
        assert!(s.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{s}");
        assert_eq!(parse_phc(&s), Some((salt, DEFAULT_KDF)));
        assert_eq!(parse_phc("$argon2i$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA"), None);
    }
}
