//! What one command reads and writes: its stdin, stdout and stderr, the files named on its
//! command line and the environment variables it reads. A command run on its own uses the
//! process's; a command the daemon runs for a client (`crate::control`) uses the descriptors
//! and values the client passed, so that many commands can run at once on the daemon's threads,
//! each with its own terminal, pipes and files.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use anyhow::{Context, Result};
use serde::Serialize;

/// How often the watcher looks whether the command has ended (it wakes at once when the client
/// ends).
const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// One of the standard streams.
#[derive(Debug, Clone)]
enum Handle {
    /// The process's own (fd 0, 1 or 2).
    Own,
    /// A descriptor a client passed.
    Passed(Arc<File>),
}

/// How a file named on a client's command line was passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedKind {
    /// The file itself, opened for reading (FILE inputs, `--*-file`).
    Input,
    /// The directory an output file is created in (`get`'s FILE).
    OutputDir,
}

/// A file named on a client's command line: the path as the client gave it, and what the client
/// got when it opened it (the descriptor, or the error number).
#[derive(Debug)]
pub struct Named {
    /// The path as given.
    pub path: PathBuf,
    /// What was opened.
    pub kind: NamedKind,
    /// The descriptor, or the client's `errno` when opening failed.
    pub opened: std::result::Result<File, i32>,
}

/// The standard streams, named files and environment of one command.
#[derive(Debug, Clone)]
pub struct Io {
    stdin: Handle,
    stdout: Handle,
    stderr: Handle,
    /// `None`: the process's own files and environment.
    passed: Option<Arc<Passed>>,
}

/// What a client passed besides its standard streams.
#[derive(Debug)]
struct Passed {
    named: Vec<Named>,
    env: Vec<(String, OsString)>,
    /// The client's control connection: it sends nothing after its request, so the connection
    /// becoming readable means the client ended (or broke the protocol): the command is
    /// cancelled.
    client: UnixStream,
    /// Set once the client is seen gone (by [`Io::watch_client`] or a read).
    gone: AtomicBool,
}

/// The message of a command cancelled because its client went away.
pub const CLIENT_GONE: &str = "the client went away: the command was cancelled";

/// Whether `client` has become readable (or hung up) within `timeout` (`None`: waits).
fn client_ended(client: &UnixStream, timeout: Option<Duration>) -> bool {
    let timeout = timeout.map(|t| Timespec { tv_sec: t.as_secs() as i64, tv_nsec: i64::from(t.subsec_nanos()) });
    let mut fds = [PollFd::new(client, PollFlags::IN | PollFlags::RDHUP)];
    matches!(poll(&mut fds, timeout.as_ref()), Ok(n) if n > 0)
}

/// A reader that fails with [`CLIENT_GONE`] instead of waiting for input once the client is
/// gone (a `put` whose client is killed while the producer keeps its pipe open).
struct Cancellable {
    file: File,
    io: Io,
}

impl Read for Cancellable {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(passed) = &self.io.passed else { return self.file.read(buf) };
        let mut fds =
            [PollFd::new(&self.file, PollFlags::IN), PollFd::new(&passed.client, PollFlags::IN | PollFlags::RDHUP)];
        loop {
            match poll(&mut fds, None) {
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if !fds[1].revents().is_empty() || passed.gone.load(Ordering::Relaxed) {
            passed.gone.store(true, Ordering::Relaxed);
            return Err(io::Error::other(CLIENT_GONE));
        }
        self.file.read(buf)
    }
}

impl Io {
    /// The process's own streams, files and environment.
    pub fn own() -> Io {
        Io { stdin: Handle::Own, stdout: Handle::Own, stderr: Handle::Own, passed: None }
    }

    /// What a client passed: its three standard streams, the files its command line names and
    /// the values of the environment variables it forwards.
    pub fn passed(streams: [OwnedFd; 3], named: Vec<Named>, env: Vec<(String, OsString)>, client: UnixStream) -> Io {
        let [stdin, stdout, stderr] = streams.map(|fd| Handle::Passed(Arc::new(File::from(fd))));
        let passed = Passed { named, env, client, gone: AtomicBool::new(false) };
        Io { stdin, stdout, stderr, passed: Some(Arc::new(passed)) }
    }

    /// `file` as a reader that stops with an error once the client is gone (here: `file`).
    pub fn cancellable(&self, file: File) -> Box<dyn Read + Send> {
        match self.passed {
            None => Box::new(file),
            Some(_) => Box::new(Cancellable { file, io: self.clone() }),
        }
    }

    /// The flag set once the command's client is gone (never, for a command run on its own):
    /// long runs (the cleaner) stop at their next cancel point when it is set.
    pub fn cancel_flag(&self) -> &AtomicBool {
        static NEVER: AtomicBool = AtomicBool::new(false);
        self.passed.as_ref().map_or(&NEVER, |p| &p.gone)
    }

    /// Watches the client until `done` is set; when the client ends first, sets the
    /// [`Io::cancel_flag`]. Returns at once for a command run on its own.
    pub fn watch_client(&self, done: &AtomicBool) {
        let Some(passed) = &self.passed else { return };
        while !done.load(Ordering::Relaxed) {
            if client_ended(&passed.client, Some(WATCH_INTERVAL)) {
                passed.gone.store(true, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Standard input as a file of its own (a duplicate descriptor).
    pub fn stdin_file(&self) -> io::Result<File> {
        match &self.stdin {
            Handle::Own => Ok(File::from(io::stdin().as_fd().try_clone_to_owned()?)),
            Handle::Passed(f) => f.try_clone(),
        }
    }

    /// The `/proc/self/fdinfo` entry of standard input's descriptor.
    pub fn stdin_fdinfo(&self) -> String {
        match &self.stdin {
            Handle::Own => "/proc/self/fdinfo/0".into(),
            Handle::Passed(f) => format!("/proc/self/fdinfo/{}", f.as_raw_fd()),
        }
    }

    /// Whether standard input is a terminal.
    pub fn stdin_is_terminal(&self) -> bool {
        match &self.stdin {
            Handle::Own => io::stdin().is_terminal(),
            Handle::Passed(f) => f.is_terminal(),
        }
    }

    /// Whether standard output is a terminal.
    pub fn stdout_is_terminal(&self) -> bool {
        match &self.stdout {
            Handle::Own => io::stdout().is_terminal(),
            Handle::Passed(f) => f.is_terminal(),
        }
    }

    /// Whether standard error is a terminal.
    pub fn stderr_is_terminal(&self) -> bool {
        match &self.stderr {
            Handle::Own => io::stderr().is_terminal(),
            Handle::Passed(f) => f.is_terminal(),
        }
    }

    /// Runs `write` on standard output, then flushes it.
    pub fn with_stdout<T>(&self, write: impl FnOnce(&mut dyn Write) -> Result<T>) -> Result<T> {
        match &self.stdout {
            Handle::Own => {
                let mut out = io::stdout().lock();
                let t = write(&mut out)?;
                out.flush().context("write to stdout")?;
                Ok(t)
            }
            Handle::Passed(f) => {
                let mut out = io::BufWriter::with_capacity(64 * 1024, &**f);
                let t = write(&mut out)?;
                out.flush().context("write to stdout")?;
                Ok(t)
            }
        }
    }

    /// Runs `write` on standard output without a buffer in between (for large writes).
    pub fn with_raw_stdout<T>(&self, write: impl FnOnce(&mut dyn Write) -> Result<T>) -> Result<T> {
        match &self.stdout {
            Handle::Own => self.with_stdout(write),
            Handle::Passed(f) => write(&mut &**f),
        }
    }

    /// Writes `text` on standard error as one write, as `eprint!` would (errors are ignored:
    /// there is nowhere left to report them).
    pub fn eprint(&self, text: &str) {
        let _ = match &self.stderr {
            Handle::Own => io::stderr().lock().write_all(text.as_bytes()),
            Handle::Passed(f) => (&**f).write_all(text.as_bytes()),
        };
    }

    /// Writes `line` and a newline on standard error, as `eprintln!` would.
    pub fn eprintln(&self, line: &str) {
        self.eprint(&format!("{line}\n"));
    }

    /// A terminal drawing on standard error (for progress bars).
    pub fn stderr_term(&self) -> Result<console::Term> {
        Ok(match &self.stderr {
            Handle::Own => console::Term::stderr(),
            Handle::Passed(f) => console::Term::read_write_pair(f.try_clone()?, f.try_clone()?),
        })
    }

    /// Opens a FILE or `--*-file` argument for reading: here, or the file the client opened.
    pub fn open_input(&self, path: &Path) -> io::Result<File> {
        let Some(passed) = &self.passed else { return File::open(path) };
        match passed.find(path, NamedKind::Input)?.opened.as_ref() {
            Ok(f) => f.try_clone(),
            Err(errno) => Err(io::Error::from_raw_os_error(*errno)),
        }
    }

    /// The path to create an output FILE argument at: here, the path itself; for a client, the
    /// file's name in the directory the client opened (through `/proc/self/fd`), so the daemon
    /// never resolves a client's relative path against its own working directory.
    pub fn output_path(&self, path: &Path) -> io::Result<PathBuf> {
        let Some(passed) = &self.passed else { return Ok(path.to_path_buf()) };
        let dir = match passed.find(path, NamedKind::OutputDir)?.opened.as_ref() {
            Ok(dir) => dir,
            Err(errno) => return Err(io::Error::from_raw_os_error(*errno)),
        };
        let name = path.file_name().unwrap_or(OsStr::new("."));
        Ok(Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name))
    }

    /// An environment variable: the process's, or the value the client forwarded.
    pub fn var_os(&self, name: &str) -> Option<OsString> {
        match &self.passed {
            None => std::env::var_os(name),
            Some(p) => p.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
        }
    }

    /// The command's working directory: the process's own, or the one the client gave (the
    /// daemon's own is never used for a client's relative path).
    pub fn current_dir(&self) -> io::Result<PathBuf> {
        match &self.passed {
            None => std::env::current_dir(),
            Some(p) => match p.env.iter().find(|(k, _)| k == crate::forward::CWD_ENV) {
                Some((_, cwd)) if Path::new(cwd).is_absolute() => Ok(PathBuf::from(cwd)),
                _ => Err(io::Error::other("the client did not give its working directory")),
            },
        }
    }

    /// Whether these are a client's (the command runs inside the daemon).
    pub fn is_passed(&self) -> bool {
        self.passed.is_some()
    }
}

impl Passed {
    fn find(&self, path: &Path, kind: NamedKind) -> io::Result<&Named> {
        self.named.iter().find(|n| n.path == path && n.kind == kind).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{} was not passed by the client", path.display()))
        })
    }
}

/// Writes `value` as one pretty-printed JSON document and a newline.
pub fn write_json<T: Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).context("write JSON to stdout")?;
    writeln!(out).context("write to stdout")
}

/// Writes human-readable text (a newline is added unless `text` is empty or already ends with
/// one).
pub fn write_text(out: &mut dyn Write, text: &str) -> Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    out.write_all(text.as_bytes()).context("write to stdout")?;
    if !text.ends_with('\n') {
        out.write_all(b"\n").context("write to stdout")?;
    }
    Ok(())
}
