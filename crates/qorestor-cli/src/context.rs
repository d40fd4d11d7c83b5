//! What every command gets: the data directory and the output mode; usage errors.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use qorestor_core::{DirLock, Engine, Passphrase};
use serde::Serialize;

use crate::cmdio::{self, Io};

/// The global options of one invocation.
#[derive(Clone)]
pub struct Ctx {
    /// The data directory.
    pub data: PathBuf,
    /// Whether results are printed as JSON.
    pub json: bool,
    /// `--passphrase-file`, if given.
    pub passphrase_file: Option<PathBuf>,
    /// How long to wait for a data directory another command holds (`--lock-wait`).
    pub lock_wait: Duration,
    /// The command's stdin, stdout, stderr, named files and environment.
    pub io: Io,
    /// The serving process's engine and libraries when the command runs inside the daemon; None for a command run on its own.
    pub live: Option<crate::serve::Services>,
    /// Why the daemon serving the directory could not be reached, for a command that would have
    /// been handed to it (said when `qorestor serve` is found holding the directory).
    pub daemon_unreachable: Option<String>,
}

/// How to choose or make a data directory, for errors about a missing or unusable one.
const DIR_HINT: &str = "choose another with --data DIR or QORESTOR_DATA, or initialise this one with `qorestor init`";

/// How often a waiting command tries the lock again.
const LOCK_RETRY: Duration = Duration::from_millis(100);

impl Ctx {
    /// Builds the context from the global flags.
    pub fn new(data: PathBuf, json: bool, passphrase_file: Option<PathBuf>, lock_wait: Duration) -> Self {
        Ctx { data, json, passphrase_file, lock_wait, io: Io::own(), live: None, daemon_unreachable: None }
    }

    /// The passphrase of encrypted storage groups, if given (`--passphrase-file`, else
    /// `QORESTOR_PASSPHRASE`).
    pub fn passphrase(&self) -> Result<Option<Vec<u8>>> {
        crate::secret::passphrase(&self.io, self.passphrase_file.as_deref())
    }

    /// The data directory (as given: inside the daemon, as the client gave it).
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// The data directory as this process reaches it (inside the daemon, the live engine's).
    pub fn data_dir(&self) -> &Path {
        self.live.as_ref().map_or(&self.data, |l| l.engine.dir())
    }

    /// Opens the initialised data directory, holding it as `holder` (other processes name the
    /// holder when they find the directory in use); waits for another command holding it (see
    /// [`Ctx::hold`]). A missing or never-initialised directory is an error that says how to
    /// choose another. Encrypted storage groups are unlocked with the passphrase, if one is
    /// given.
    /// Inside the daemon, the live engine (see [`Ctx::live_engine`]).
    pub fn open(&self, holder: &str) -> Result<Engine> {
        if let Some(live) = &self.live {
            return self.live_engine(live);
        }
        self.check_initialised()?;
        self.unlocked(self.hold(|| Engine::open_as(&self.data, holder))?)
    }

    /// Like [`Ctx::open`], for `verify --repair`: a catalog that cannot be opened is rebuilt
    /// from its redundant records ([`Engine::open_for_repair_as`]).
    /// Inside the daemon, the live engine (whose catalog is open).
    pub fn open_for_repair(&self, holder: &str) -> Result<Engine> {
        if let Some(live) = &self.live {
            return self.live_engine(live);
        }
        self.check_initialised()?;
        self.unlocked(self.hold(|| Engine::open_for_repair_as(&self.data, holder))?)
    }

    /// An error saying how to choose another directory unless the data directory is
    /// initialised.
    pub fn check_initialised(&self) -> Result<()> {
        match Engine::is_initialised(&self.data) {
            Ok(true) => {}
            Ok(false) if self.data.exists() => {
                bail!("data directory {} was never initialised ({DIR_HINT})", self.data.display())
            }
            Ok(false) => bail!("data directory {} does not exist ({DIR_HINT})", self.data.display()),
            Err(e) => bail!("cannot use data directory {}: {e} ({DIR_HINT})", self.data.display()),
        }
        Ok(())
    }

    /// Like [`Ctx::open`], but creates and initialises the directory if it is the default one
    /// (for `serve`, which a service manager starts on a fresh system).
    pub fn open_or_create_default(&self, holder: &str) -> Result<Engine> {
        if self.data != Path::new(crate::DEFAULT_DATA_DIR) || Engine::is_initialised(&self.data).unwrap_or(true) {
            return self.open(holder);
        }
        self.unlocked(self.hold(|| Engine::open_or_create_as(&self.data, holder))?)
    }

    /// Takes the hold of the initialised data directory as `holder` without opening it (for
    /// `serve`'s supervisor, which hands it to its serving process): the checks and the waiting
    /// of [`Ctx::open`]; the default directory is created first if it was never initialised.
    pub fn hold_dir(&self, holder: &str) -> Result<DirLock> {
        if self.data == Path::new(crate::DEFAULT_DATA_DIR) && !Engine::is_initialised(&self.data).unwrap_or(true) {
            drop(self.open_or_create_default(holder)?);
        }
        self.check_initialised()?;
        self.hold(|| DirLock::acquire(&self.data, holder))
    }

    /// Opens the data directory whose hold `lock` another process passed down, unlocking
    /// encrypted storage groups as [`Ctx::open`] does.
    pub fn open_held(&self, lock: DirLock) -> Result<Engine> {
        self.unlocked(Engine::open_held(&self.data, lock).map_err(|e| self.with_hint(e))?)
    }

    /// The daemon's engine, for a command it runs: its encrypted groups are unlocked with the
    /// passphrase serve was started with; a passphrase the client gives must be the same one.
    fn live_engine(&self, live: &crate::serve::Services) -> Result<Engine> {
        if let Some(p) = self.passphrase()?.map(Passphrase::new).transpose()? {
            live.engine.check_same_passphrase(&p).map_err(|e| {
                anyhow!(
                    "{e}: it is not the passphrase qorestor serve was started with (commands through the daemon \
                     use the daemon's; give that one, or none)"
                )
            })?;
        }
        Ok(live.engine.clone())
    }

    /// Gives the engine the passphrase, if one is given.
    fn unlocked(&self, engine: Engine) -> Result<Engine> {
        if let Some(p) = self.passphrase()?.map(Passphrase::new).transpose()? {
            engine.set_passphrase(p)?;
        }
        Ok(engine)
    }

    /// Runs `open` until it does not find the directory held by another command, at most
    /// `--lock-wait` long, saying once on stderr whom it waits for. A directory held by `serve`
    /// is not waited for (the daemon holds it until stopped).
    pub fn hold<T>(&self, mut open: impl FnMut() -> qorestor_core::Result<T>) -> Result<T> {
        let started = Instant::now();
        let mut told = false;
        loop {
            let (path, holder) = match open() {
                Err(qorestor_core::Error::Locked { path, holder }) => (path, holder),
                other => return other.map_err(|e| self.with_hint(e)),
            };
            let waited = started.elapsed();
            if holder.starts_with("qorestor serve") || waited >= self.lock_wait {
                let serving = holder.starts_with("qorestor serve");
                let e = qorestor_core::Error::Locked { path, holder };
                if let Some(note) = self.daemon_unreachable.as_ref().filter(|_| serving) {
                    bail!("{e}; {note}");
                }
                if told {
                    bail!("{e}: gave up after waiting {} (--lock-wait)", humantime(waited));
                }
                return Err(e.into());
            }
            if !told {
                self.io.eprintln(&format!(
                    "qorestor: data directory {} is in use by {holder}; waiting for it (at most {}, --lock-wait)",
                    path.display(),
                    humantime(self.lock_wait)
                ));
                told = true;
            }
            std::thread::sleep(LOCK_RETRY.min(self.lock_wait - waited));
        }
    }

    /// An engine error; a permission error on the data directory also says how to choose another.
    fn with_hint(&self, e: qorestor_core::Error) -> anyhow::Error {
        use std::error::Error as _;
        let denied = e
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied);
        if denied {
            anyhow!("cannot use data directory {}: {e} ({DIR_HINT})", self.data.display())
        } else {
            e.into()
        }
    }

    /// Prints a result: `value` as JSON with `--json`, else the human rendering `human` writes.
    pub fn emit<T: Serialize + ?Sized>(&self, value: &T, human: impl FnOnce() -> String) -> Result<()> {
        if self.json {
            self.io.with_stdout(|out| cmdio::write_json(out, value))
        } else {
            let text = human();
            self.io.with_stdout(|out| cmdio::write_text(out, &text))
        }
    }
}

/// A duration as people write it: `90s`, `10m`, `2h`, `1h30m`.
fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, sec) => format!("{m}m{sec}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
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
