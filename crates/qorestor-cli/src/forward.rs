//! A command on a data directory that `qorestor serve` serves is handed to the daemon (see
//! `docs/DAEMON.md`): this process has parsed the command line already (help and usage errors
//! stay here), opens the files it names itself, and passes the argument vector, its stdin, stdout
//! and stderr and those files as descriptors over `DATA/control`; the daemon runs the command
//! against its live engine and answers with the exit code, which this process exits with.
//!
//! Not handed over: `serve`, `bench` and the network-client commands (`ost put|get|ls|rm`).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use qorestor_core::control::{
    check_request, decode_reply, encode_request, NamedEntry, NamedFile, Reply, Request, MAX_REPLY_BODY,
};

use crate::control_socket;
use crate::{Cli, Command, EXIT_FAILED};

/// The environment variables a command reads, passed to the daemon with their values.
pub const FORWARDED_ENV: [&str; 2] = [crate::secret::PASSPHRASE_ENV, crate::replication::PASSWORD_ENV];
/// The name under which the client's data directory (as it gave it, for messages) travels.
pub const DATA_ENV: &str = "QORESTOR_DATA";
/// The name under which the client's working directory travels (for a path argument that is
/// not a file the client opens, such as `replication add --target DIR`).
pub const CWD_ENV: &str = "PWD";
/// The shortest wait for the daemon to take a command (with `--lock-wait 0` too).
const MIN_ACCEPT_WAIT: Duration = Duration::from_secs(1);

/// Whether `command` is handed to the daemon serving its directory.
pub fn forwardable(command: &Command) -> bool {
    use crate::ost::OstCommand;
    match command {
        Command::Serve(_) | Command::Bench(_) => false,
        Command::Ost(cmd) => matches!(cmd, OstCommand::Show),
        _ => true,
    }
}

/// The files `cli` names: `--passphrase-file`, FILE inputs and `--*-file` flags (opened for
/// reading), and `get`'s output FILE (whose directory is opened).
pub fn named_files(cli: &Cli) -> Vec<(PathBuf, NamedFile)> {
    let mut named: Vec<(PathBuf, NamedFile)> = Vec::new();
    if let Some(p) = &cli.passphrase_file {
        named.push((p.clone(), NamedFile::Input));
    }
    let dash = |p: &Path| p.as_os_str() == "-";
    match &cli.command {
        Command::Put(a) if !dash(&a.input) => named.push((a.input.clone(), NamedFile::Input)),
        Command::Get(a) if !dash(&a.output) => named.push((a.output.clone(), NamedFile::OutputDir)),
        Command::Iscsi(crate::iscsi::IscsiCommand::SetPassword(a)) => {
            named.extend(a.mutual_password_file.iter().map(|p| (p.clone(), NamedFile::Input)))
        }
        Command::Replication(crate::replication::ReplicationCommand::SetPassword(a)) => {
            named.extend(a.password_file.iter().map(|p| (p.clone(), NamedFile::Input)))
        }
        Command::Replication(crate::replication::ReplicationCommand::Add(a)) => {
            named.extend(a.password.password_file.iter().map(|p| (p.clone(), NamedFile::Input)))
        }
        _ => {}
    }
    named
}

/// Opens a named file as a command run here would: the file itself for an input, the
/// directory an output file is created in.
fn open_named(path: &Path, kind: NamedFile) -> io::Result<File> {
    match kind {
        NamedFile::Input => File::open(path),
        NamedFile::OutputDir => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            File::open(dir)
        }
    }
}

/// Hands `cli` (parsed from this process's arguments) to the daemon on `conn`; returns the exit
/// code to exit with.
pub fn run(conn: UnixStream, cli: &Cli) -> u8 {
    match hand_over(&conn, cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("qorestor: {e}");
            EXIT_FAILED
        }
    }
}

fn hand_over(conn: &UnixStream, cli: &Cli) -> Result<u8, String> {
    let data = cli.data.display();
    let mut files = Vec::new();
    let mut named = Vec::new();
    for (path, kind) in named_files(cli) {
        let errno = match open_named(&path, kind) {
            Ok(f) => {
                files.push(f);
                0
            }
            Err(e) => e.raw_os_error().unwrap_or(libc::EIO) as u32,
        };
        named.push(NamedEntry { kind, path: path.as_os_str().as_bytes().to_vec(), errno });
    }
    let mut env: Vec<(Vec<u8>, Vec<u8>)> = FORWARDED_ENV
        .iter()
        .filter_map(|k| std::env::var_os(k).map(|v| (k.as_bytes().to_vec(), v.as_bytes().to_vec())))
        .collect();
    env.push((DATA_ENV.as_bytes().to_vec(), cli.data.as_os_str().as_bytes().to_vec()));
    if let Ok(cwd) = std::env::current_dir() {
        env.retain(|(k, _)| k != CWD_ENV.as_bytes());
        env.push((CWD_ENV.as_bytes().to_vec(), cwd.as_os_str().as_bytes().to_vec()));
    }
    let request = Request {
        version: env!("CARGO_PKG_VERSION").as_bytes().to_vec(),
        args: std::env::args_os().map(|a| a.as_bytes().to_vec()).collect(),
        named,
        env,
    };
    check_request(&request).map_err(|e| format!("cannot hand the command to the daemon serving {data}: {e}"))?;
    let (stdin, stdout, stderr) = (io::stdin(), io::stdout(), io::stderr());
    let mut fds: Vec<BorrowedFd<'_>> = vec![stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
    fds.extend(files.iter().map(AsFd::as_fd));
    control_socket::send_frame(conn, &encode_request(&request), &fds)
        .map_err(|e| format!("cannot hand the command to the daemon serving {data}: {e:#}"))?;
    drop(files);
    let wait = cli.lock_wait.max(MIN_ACCEPT_WAIT);
    let _ = conn.set_read_timeout(Some(wait));
    match read_reply(conn) {
        Ok(Some(Reply::Accepted)) => {}
        Ok(Some(Reply::Exit(code))) => return Ok(code),
        Ok(None) => return Err(ended(&data)),
        Err(e) if e.contains("timed out") || e.contains("temporarily unavailable") => {
            return Err(format!(
                "the daemon serving {data} did not take the command within {} s (--lock-wait); its serving \
                 process may be restarting: see `qorestor alerts list --events`",
                wait.as_secs()
            ))
        }
        Err(e) => return Err(format!("the daemon serving {data}: {e}")),
    }
    let _ = conn.set_read_timeout(None);
    match read_reply(conn) {
        Ok(Some(Reply::Exit(code))) => Ok(code),
        Ok(Some(Reply::Accepted)) => Err(format!("the daemon serving {data} answered out of turn")),
        Ok(None) => Err(ended(&data)),
        Err(e) => Err(format!("{} ({e})", ended(&data))),
    }
}

fn ended(data: &impl std::fmt::Display) -> String {
    format!(
        "the daemon serving {data} ended during the command; its outcome is unknown (see `qorestor alerts list \
         --events`)"
    )
}

fn read_reply(conn: &UnixStream) -> Result<Option<Reply>, String> {
    match control_socket::recv_frame(conn, MAX_REPLY_BODY) {
        Ok(Some((frame, _))) => decode_reply(&frame).map(Some).map_err(|e| e.to_string()),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// The message for a directory held by `qorestor serve` whose daemon could not be reached.
pub fn unreachable_note(data: &Path, why: &str) -> String {
    format!("its daemon cannot be reached on {}: {why}", data.join(OsStr::new(control_socket::SOCKET_NAME)).display())
}
