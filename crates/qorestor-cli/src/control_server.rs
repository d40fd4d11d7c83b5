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
use std::thread;

use anyhow::{bail, Context, Result};
use clap::Parser;
use qorestor_core::control::{decode_request, encode_reply, Reply, Request, MAX_REQUEST_BODY};

use crate::cmdio::{Io, Named, NamedKind};
use crate::context::Ctx;
use crate::serve::Services;
use crate::{control_socket, forward, Cli, EXIT_FAILED, EXIT_USAGE};

/// Accepts commands on `listener` for as long as the process lives, each on a thread of its
/// own.
pub fn start(listener: UnixListener, services: Services) -> Result<()> {
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
            let spawned = thread::Builder::new().name("command".into()).spawn(move || {
                if let Err(e) = serve_one(&conn, services) {
                    eprintln!("qorestor serve: control socket: {e:#}");
                }
            });
            if let Err(e) = spawned {
                eprintln!("qorestor serve: control socket: cannot start a thread for a command: {e}");
            }
        }
    })?;
    Ok(())
}

/// Takes one command from `conn`, runs it, answers with its exit code.
fn serve_one(conn: &UnixStream, services: Services) -> Result<()> {
    let peer = control_socket::check_peer(conn);
    let Some((frame, fds)) = control_socket::recv_frame(conn, MAX_REQUEST_BODY)? else { return Ok(()) };
    let request = decode_request(&frame, fds.len()).context("refused a command")?;
    let io = client_io(&request, fds, conn.try_clone().context("cannot watch the client")?)?;
    reply(conn, Reply::Accepted)?;
    let code = match (peer, command_line(&request, &io)) {
        (Err(e), _) => {
            io.eprintln(&format!("qorestor: {e}"));
            EXIT_FAILED
        }
        (Ok(()), Err(code)) => code,
        (Ok(()), Ok(cli)) => run(cli, io, services, &panic_point(&request)),
    };
    reply(conn, Reply::Exit(code))
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
    // As the command's own process would have closed the engine.
    if let Err(e) = services.engine.seal_open_packs() {
        io.eprintln(&format!("qorestor: cannot seal the open packs after the command: {e}"));
        return EXIT_FAILED;
    }
    code
}
