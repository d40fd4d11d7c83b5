//! What every command gets: the data directory and the output mode; usage errors.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use qorestor_core::{Engine, Passphrase};
use serde::Serialize;

use crate::output;

/// The global options of one invocation.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The data directory.
    pub data: PathBuf,
    /// Whether results are printed as JSON.
    pub json: bool,
    /// `--passphrase-file`, if given.
    pub passphrase_file: Option<PathBuf>,
}

impl Ctx {
    /// Builds the context from the global flags.
    pub fn new(data: PathBuf, json: bool, passphrase_file: Option<PathBuf>) -> Self {
        Ctx { data, json, passphrase_file }
    }

    /// The passphrase of encrypted storage groups, if given (`--passphrase-file`, else
    /// `QORESTOR_PASSPHRASE`).
    pub fn passphrase(&self) -> Result<Option<Vec<u8>>> {
        crate::secret::passphrase(self.passphrase_file.as_deref())
    }

    /// The data directory.
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// Opens the data directory (initialising it first if it never was), holding it as
    /// `holder` (other processes name the holder when they find the directory in use).
    /// Encrypted storage groups are unlocked with the passphrase, if one is given.
    pub fn open(&self, holder: &str) -> Result<Engine> {
        let pass = self.passphrase()?.map(Passphrase::new).transpose()?;
        let engine = Engine::open_or_create_as(&self.data, holder)?;
        if let Some(p) = pass {
            engine.set_passphrase(p)?;
        }
        Ok(engine)
    }

    /// Prints a result: `value` as JSON with `--json`, else the human rendering `human` writes.
    pub fn emit<T: Serialize + ?Sized>(&self, value: &T, human: impl FnOnce() -> String) -> Result<()> {
        if self.json {
            output::print_json(value)
        } else {
            output::print_text(&human())
        }
    }
}

/// A usage error found after argument parsing (exit code 2, like clap's own errors).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Verify found damage it did not heal: the results are printed already (exit code 3).
#[derive(Debug)]
pub struct DamageFound(pub String);

impl fmt::Display for DamageFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DamageFound {}
