//! The serving process's side of the control socket (see `docs/DAEMON.md`): each connection is
//! one command a client hands over. The client's user is checked (the daemon's own or root), the
//! request decoded, taken (`A`), parsed again with the same parser, and run on a thread of its
//! own against the live engine with the client's descriptors; a panic ends that command only
//! (exit 1). The exit code is the answer (`X`).

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use qorestor_core::control::{decode_request, encode_reply, Reply, Request, MAX_REQUEST_BODY};

use crate::cmdio::{Io, Named, NamedKind};
use crate::context::Ctx;
use crate::serve::Services;
use crate::{control_socket, forward, Cli, EXIT_FAILED, EXIT_USAGE};

/// How long the daemon waits for a connected client's request.
const REQUEST_WAIT: Duration = Duration::from_secs(30);

/// The commands running, and whether the daemon is stopping (new ones are refused then).
#[derive(Default)]
struct Running {
    count: Mutex<(usize, bool)>,
    ended: Condvar,
}

/// The control socket's server: [`ControlServer::stop`] refuses new commands,
/// [`ControlServer::join_within`] waits for the running ones.
pub struct ControlServer {
    running: Arc<Running>,
}

impl ControlServer {
    /// Refuses the commands that come from now on (exit 1, saying the daemon stops).
    pub fn stop(&self) {
        self.running.count.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
    }

    /// Waits at most `limit` for the running commands to end; whether they all did.
    pub fn join_within(&self, limit: Duration) -> bool {
        let count = self.running.count.lock().unwrap_or_else(|e| e.into_inner());
        let (count, _) =
            self.running.ended.wait_timeout_while(count, limit, |c| c.0 > 0).unwrap_or_else(|e| e.into_inner());
        count.0 == 0
    }
}

impl Running {
    /// Counts a command in; false when the daemon is stopping.
    fn enter(&self) -> bool {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        if count.1 {
            return false;
        }
        count.0 += 1;
        true
    }

    fn leave(&self) {
        self.count.lock().unwrap_or_else(|e| e.into_inner()).0 -= 1;
        self.ended.notify_all();
    }
}

/// Accepts commands on `listener` for as long as the process lives, each on a thread of its
/// own.
pub fn start(listener: UnixListener, services: Services) -> Result<ControlServer> {
    let running = Arc::new(Running::default());
    let counted = running.clone();
    thread::Builder::new().name("control".into()).spawn(move || {
        for conn in listener.incoming() {
            let conn = match conn {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("qorestor serve: control socket: cannot accept: {e}");
                    thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                }
            };
            let services = services.clone();
            let running = counted.clone();
            let spawned = thread::Builder::new().name("command".into()).spawn(move || {
                if let Err(e) = serve_one(&conn, services, &running) {
                    eprintln!("qorestor serve: control socket: {e:#}");
                }
            });
            if let Err(e) = spawned {
                eprintln!("qorestor serve: control socket: cannot start a thread for a command: {e}");
            }
        }
    })?;
    Ok(ControlServer { running })
}

/// Takes one command from `conn`, runs it, answers with its exit code.
fn serve_one(conn: &UnixStream, services: Services, running: &Running) -> Result<()> {
    let peer = control_socket::check_peer(conn);
    // A client sends its request at once; one that does not is dropped.
    conn.set_read_timeout(Some(REQUEST_WAIT)).context("cannot set the control socket's timeout")?;
    let Some((frame, fds)) = control_socket::recv_frame(conn, MAX_REQUEST_BODY)? else { return Ok(()) };
    let request = decode_request(&frame, fds.len()).context("refused a command")?;
    let io = client_io(&request, fds, conn.try_clone().context("cannot watch the client")?)?;
    reply(conn, Reply::Accepted)?;
    if !running.enter() {
        io.eprintln(
            "qorestor: the daemon is stopping; run the command again once serve is back, or on its own once it \
             has stopped",
        );
        return reply(conn, Reply::Exit(EXIT_FAILED));
    }
    let code = match (peer, command_line(&request, &io)) {
        (Err(e), _) => {
            io.eprintln(&format!("qorestor: {e}"));
            EXIT_FAILED
        }
        (Ok(()), Err(code)) => code,
        (Ok(()), Ok(cli)) => run(cli, io, services, &panic_point(&request)),
    };
    // Answered before it counts as ended: a stopping daemon exits once none is running.
    let answered = reply(conn, Reply::Exit(code));
    running.leave();
    answered
}

fn reply(conn: &UnixStream, r: Reply) -> Result<()> {
    control_socket::send_frame(conn, &encode_reply(r), &[]).context("cannot answer the client")
}

/// The client's streams and named files, from the descriptors that came with `request`.
fn client_io(request: &Request, fds: Vec<OwnedFd>, client: UnixStream) -> Result<Io> {
    let mut fds = fds.into_iter();
    let (Some(stdin), Some(stdout), Some(stderr)) = (fds.next(), fds.next(), fds.next()) else {
        bail!("a command came without its standard streams");
    };
    let mut named = Vec::new();
    for n in &request.named {
        let opened = match n.errno {
            0 => Ok(File::from(fds.next().context("a named file came without its descriptor")?)),
            errno => Err(errno as i32),
        };
        let kind = match n.kind {
            qorestor_core::control::NamedFile::Input => NamedKind::Input,
            qorestor_core::control::NamedFile::OutputDir => NamedKind::OutputDir,
        };
        named.push(Named { path: PathBuf::from(OsString::from_vec(n.path.clone())), kind, opened });
    }
    let env = request
        .env
        .iter()
        .filter_map(|(k, v)| Some((String::from_utf8(k.clone()).ok()?, OsString::from_vec(v.clone()))));
    Ok(Io::passed([stdin, stdout, stderr], named, env.collect(), client))
}

/// The client's command line, parsed again; on a refusal the exit code (the message is on the
/// client's stderr).
fn command_line(request: &Request, io: &Io) -> std::result::Result<Cli, u8> {
    if request.version != env!("CARGO_PKG_VERSION").as_bytes() {
        io.eprintln(&format!(
            "qorestor: this qorestor ({}) differs from the running daemon's ({}): restart serve, or run the \
             daemon's program",
            String::from_utf8_lossy(&request.version),
            env!("CARGO_PKG_VERSION")
        ));
        return Err(EXIT_FAILED);
    }
    let args = request.args.iter().map(|a| OsString::from_vec(a.clone()));
    Cli::try_parse_from(args).map_err(|e| {
        io.eprintln(&format!("qorestor: {}", crate::one_line(&e)));
        EXIT_USAGE
    })
}

/// The panic point of test builds for a command line: `command argument X`, X its last
/// argument (`QORESTOR_PANIC_POINT`, see [`qorestor_core::test_support::fault_point`]).
fn panic_point(request: &Request) -> String {
    let last = request.args.last().map(|a| String::from_utf8_lossy(a).into_owned()).unwrap_or_default();
    format!("command argument {last}")
}

/// Runs `cli` with the client's `io` against the live engine, under `catch_unwind`, beside a
/// watcher that cancels it when the client ends.
fn run(cli: Cli, io: Io, services: Services, panic_point: &str) -> u8 {
    let data = io.var_os(forward::DATA_ENV).map_or(cli.data.clone(), PathBuf::from);
    let writes_streams = matches!(cli.command, crate::Command::Put(_));
    let mut ctx = Ctx::new(data, cli.json, cli.passphrase_file, cli.lock_wait);
    ctx.io = io.clone();
    ctx.live = Some(services.clone());
    let done = AtomicBool::new(false);
    let code = thread::scope(|scope| {
        // Beside the command: a client that ends cancels it.
        scope.spawn(|| io.watch_client(&done));
        let code = catch_unwind(AssertUnwindSafe(|| {
            qorestor_core::test_support::fault_point(panic_point);
            crate::execute(&ctx, cli.command)
        }));
        done.store(true, Ordering::Relaxed);
        code
    });
    let code = code.unwrap_or_else(|_| {
        io.eprintln("qorestor: internal error: the command panicked in the daemon (the daemon goes on serving)");
        EXIT_FAILED
    });
    // After a put, as its own process would have closed the engine. Only then: sealing also
    // ends the packs frontends are appending to (a tape or OST write starts a new one), so a
    // read-only command (`ls`, `stats` polled during a backup) must not leave small packs.
    if writes_streams {
        if let Err(e) = services.engine.seal_open_packs() {
            io.eprintln(&format!("qorestor: cannot seal the open packs after the command: {e}"));
            return EXIT_FAILED;
        }
    }
    code
}
