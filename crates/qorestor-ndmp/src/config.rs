//! The NDMP user and password, one per system, stored as the engine setting [`CREDENTIALS_KEY`].
//! Until they are set the server refuses every authentication.

use qorestor_core::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::request::MAX_STRING;

/// The engine setting holding the credentials.
pub const CREDENTIALS_KEY: &str = "ndmp/user";

/// The NDMP user and its clear-text password (NDMP's MD5 scheme needs the clear text).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).finish_non_exhaustive()
    }
}

fn check(what: &'static str, value: &str) -> Result<()> {
    let why = if value.is_empty() {
        "it is empty"
    } else if value.len() > MAX_STRING {
        "it is longer than 1024 bytes"
    } else if value.chars().any(char::is_control) {
        "it contains control characters"
    } else {
        return Ok(());
    };
    let shown = if what == "password" { "…".to_string() } else { value.to_string() };
    Err(Error::Invalid { what, value: shown, why })
}

/// The configured credentials, if any.
pub fn load(engine: &Engine) -> Result<Option<Credentials>> {
    Ok(engine.setting(CREDENTIALS_KEY)?)
}

/// Sets the credentials.
pub fn save(engine: &Engine, c: &Credentials) -> Result<()> {
    check("user", &c.user)?;
    check("password", &c.password)?;
    Ok(engine.put_setting(CREDENTIALS_KEY, c)?)
}

/// The NDMP MD5 digest: MD5 of a 128-byte message holding the password (at most its first 32
/// bytes) at both ends and the 64-byte challenge between them, zeros elsewhere.
pub fn md5_digest(challenge: &[u8; 64], password: &str) -> [u8; 16] {
    let pw = &password.as_bytes()[..password.len().min(32)];
    let mut msg = [0u8; 128];
    msg[..pw.len()].copy_from_slice(pw);
    msg[64 - pw.len()..128 - pw.len()].copy_from_slice(challenge);
    msg[128 - pw.len()..].copy_from_slice(pw);
    md5::compute(msg).0
}
