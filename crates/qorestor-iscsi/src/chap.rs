//! CHAP (RFC 1994 with MD5, as RFC 7143 §12.1.3 uses it): the credentials the target checks
//! and presents, and the response computation. The credentials are stored by the CLI as the
//! engine setting [`SETTING_KEY`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The engine setting holding the [`ChapConfig`].
pub const SETTING_KEY: &str = "iscsi/chap";
/// CHAP_A value of MD5.
pub const ALGORITHM_MD5: &str = "5";
/// Length of the challenges the target sends.
pub const CHALLENGE_LEN: usize = 16;
/// Longest user name or secret accepted.
pub const MAX_CREDENTIAL_LEN: usize = 255;
/// Shortest secret accepted, in characters: RFC 3720 §8.2.1 asks for at least 96 bits (12
/// bytes) of secret, and Microsoft's initiator refuses shorter ones.
pub const MIN_SECRET_LEN: usize = 12;
/// Longest secret Microsoft's iSCSI initiator accepts, in characters (others take up to
/// [`MAX_CREDENTIAL_LEN`]).
pub const MICROSOFT_MAX_SECRET_LEN: usize = 16;

/// A CHAP user and secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// The CHAP name.
    pub user: String,
    /// The shared secret.
    pub secret: String,
}

/// The target's CHAP configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChapConfig {
    /// What initiators must present (one-way CHAP).
    pub initiator: Credential,
    /// What the target presents when an initiator asks it to authenticate (mutual CHAP).
    pub mutual: Option<Credential>,
    /// Whether discovery sessions need CHAP too (by default they stay open).
    pub discovery_auth: bool,
}

fn check(what: &'static str, v: &str) -> Result<()> {
    if v.is_empty() || v.len() > MAX_CREDENTIAL_LEN || v.chars().any(|c| c.is_control()) {
        return Err(Error::Config {
            what,
            value: v.chars().take(40).collect(),
            hint: "use 1 to 255 characters without control characters",
        });
    }
    Ok(())
}

/// Checks a secret: [`MIN_SECRET_LEN`] to [`MAX_CREDENTIAL_LEN`] characters without control
/// characters. The error never shows the secret, only its length.
fn check_secret(what: &'static str, v: &str) -> Result<()> {
    let chars = v.chars().count();
    if chars < MIN_SECRET_LEN || v.len() > MAX_CREDENTIAL_LEN || v.chars().any(|c| c.is_control()) {
        return Err(Error::Config {
            what,
            value: format!("({chars} characters, hidden)"),
            hint: "use 12 to 255 characters without control characters (RFC 3720 asks for at least 12 \
                   bytes of secret; Microsoft's initiator refuses fewer than 12)",
        });
    }
    Ok(())
}

impl ChapConfig {
    /// Checks the configuration: names 1 to 255 printable characters, secrets 12 to 255, and a
    /// mutual secret different from the initiator's (RFC 7143 §12.1.3).
    pub fn validate(&self) -> Result<()> {
        check("CHAP user", &self.initiator.user)?;
        check_secret("CHAP secret", &self.initiator.secret)?;
        if let Some(m) = &self.mutual {
            check("mutual CHAP user", &m.user)?;
            check_secret("mutual CHAP secret", &m.secret)?;
            if m.secret == self.initiator.secret {
                return Err(Error::Config {
                    what: "mutual CHAP secret",
                    value: "(hidden)".into(),
                    hint: "it must differ from the initiator's secret",
                });
            }
        }
        Ok(())
    }
}

/// The CHAP response: MD5 over the identifier, the secret and the challenge.
pub fn response(id: u8, secret: &[u8], challenge: &[u8]) -> [u8; 16] {
    let mut ctx = md5::Context::new();
    ctx.consume([id]);
    ctx.consume(secret);
    ctx.consume(challenge);
    ctx.compute().0
}

/// Compares two byte strings in time independent of where they differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_is_md5_of_id_secret_challenge() {
        // MD5("\x01" "secret" "abc"), computed with Python's hashlib.
        let r = response(1, b"secret", b"abc");
        assert_eq!(crate::text::hex(&r), "0xea64469e3d699ce7884d07b0e6b1edb3");
        assert!(same(&r, &r) && !same(&r, &[0; 16]));
    }

    #[test]
    fn mutual_secret_must_differ() {
        let c = |s: &str| Credential { user: "u".into(), secret: s.into() };
        let mut cfg =
            ChapConfig { initiator: c("secret1secret1"), mutual: Some(c("secret1secret1")), discovery_auth: false };
        assert!(cfg.validate().is_err());
        cfg.mutual = Some(c("other-secret"));
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn secrets_take_12_to_255_characters_and_errors_hide_them() {
        let cfg = |s: &str| ChapConfig {
            initiator: Credential { user: "u".into(), secret: s.into() },
            mutual: None,
            discovery_auth: false,
        };
        let short = cfg("elevenchars").validate().unwrap_err().to_string();
        assert!(short.contains("11 characters") && !short.contains("elevenchars"), "{short}");
        assert!(cfg("twelve-chars").validate().is_ok());
        assert!(cfg(&"x".repeat(255)).validate().is_ok());
        assert!(cfg(&"x".repeat(256)).validate().is_err());
        assert!(cfg("twelve-chars\t").validate().is_err());
    }
}
