//! `qorestor serve`: the daemon. The supervisor ([`crate::supervisor`]) holds the data
//! directory and binds the listeners; this module is the serving process it starts, which
//! adopts them ([`crate::handoff`]), opens every virtual tape library, serves the frontends
//! on the sockets handed over, tells the supervisor it serves (which then prints the
//! `listening <frontend> <addr:port>` lines), ticks the libraries every second (so idle drives
//! make their buffered tape data durable), runs the cleaner in its scheduled windows
//! ([`crate::scheduler`]), and on SIGTERM or SIGINT first stops every listener (no new
//! connection; the open ones are ended and their threads joined), then stops a cleaner run at
//! its next pack, makes every drive's data durable and exits 0. Nothing a session had been
//! acknowledged is lost by ending it, since an acknowledgement comes only after durability
//! (see `docs/VTL.md`).

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use qorestor_core::{DirLock, Engine};
use qorestor_vtl::Libraries;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::context::Ctx;
use crate::handoff::{self, Frontend};
use crate::listen::{self, ListenAddr};
use crate::scheduler::{Scheduler, SystemClock};

/// Long help of `serve`.
pub const LONG_ABOUT: &str = "\
Run the qorestor daemon: the frontends whose --*-listen flag is given (a frontend without its \
flag is off). ADDR may be a host name (the first of its addresses that binds is used). Port 0 \
picks a free port. When every listener is bound, one line per listener is \
printed on stdout:

  listening <frontend> <addr:port>

serve runs as two processes: a supervisor, which holds the data directory, binds the \
listeners (once: a port stays the same across restarts) and prints the listening lines; and \
one serving process (the same program, started by the supervisor, handed the directory's lock \
and the listening sockets), which opens the engine and serves. When the serving process dies \
abnormally (killed, crashed, exited non-zero) the supervisor starts a new one at once, then \
after 1 s, 2 s, 4 s ... (at most 16 s) if it keeps dying; after 5 restarts within 60 s it gives \
up and exits 1 (leave the next attempt to the service manager). Connections made while no \
serving process runs wait in the listen queue. If the supervisor is killed the serving process \
gets SIGTERM and stops too.

While serve runs it owns the data directory, and every other qorestor command on it is handed \
to the daemon: the command parses its arguments and opens the files it names itself, then runs \
inside the serving process (against the engine the frontends use) with its own stdin, stdout, \
stderr and files, and exits with the code the daemon answers; output and exit code are those \
it gives on its own. serve, bench and the ost network-client commands always run on their own. \
The commands reach the daemon through DIR/control (a Unix socket, mode 0600, taking commands \
from serve's own user or root); while a serving process restarts they wait (at most \
--lock-wait). Encrypted storage groups are unlocked with the passphrase serve was started with \
(QORESTOR_PASSPHRASE or --passphrase-file): a command through the daemon needs none, and one it \
gives must be that same passphrase (else it fails, exit 1, naming the group). See \
docs/DAEMON.md. A second serve on the directory fails with \"data directory \
DIR is in use by qorestor serve (pid N)\" (N: the supervisor). SIGTERM or \
SIGINT, to the supervisor or to the whole process group, stops it cleanly (exit 0): the \
listeners stop first (open sessions are ended) and commands of clients still running finish \
(at most 20 s; new ones are refused), then every tape drive's buffered data is made durable.

Starts, stops, restarts (with how the serving process ended) and listeners that cannot bind \
are recorded in the event log DIR/events: see `qorestor alerts list`.

serve runs the cleaner in the windows stored with `qorestor cleaner schedule add` (local time; \
the TZ environment variable applies): one run per opening of a window, asked to stop when the \
window closes (what it has not reached waits for the next window). Each run is reported on \
stderr; `qorestor cleaner status` shows the last one once serve has stopped.

With --replication-listen, other qorestor systems replicate containers into this one \
(`qorestor replication add C --target HOST:PORT` on the source); they must know the password \
set here with `qorestor replication set-password`.

With --ost-listen, backup applications write and read images of the ost containers (storage \
units) through the OST protocol (docs/OST-PROTOCOL.md), as users added with `qorestor user add \
NAME --role ost`. An image not closed complete when its session ends is removed.

Example:
  qorestor --data /srv/qorestor serve --iscsi-listen localhost:3260 --ndmp-listen localhost:10000

serve warns on stderr when it serves nobody (no listener, iSCSI without a vtl container, NDMP \
without a user) or anybody (iSCSI beyond loopback with CHAP off).";

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Serve the iSCSI target (one target per vtl container) on ADDR:PORT.
    #[arg(long, value_name = "ADDR:PORT", value_parser = listen::parse)]
    pub iscsi_listen: Option<ListenAddr>,
    /// Serve NDMP v4 (tape, mover and robot services of the vtl containers) on ADDR:PORT.
    #[arg(long, value_name = "ADDR:PORT", value_parser = listen::parse)]
    pub ndmp_listen: Option<ListenAddr>,
    /// Accept container replication from other qorestor systems on ADDR:PORT (sources must
    /// know the password set with `qorestor replication set-password`).
    #[arg(long, value_name = "ADDR:PORT", value_parser = listen::parse)]
    pub replication_listen: Option<ListenAddr>,
    /// Serve the OST image server on ADDR:PORT (backup applications' OST plug-ins and
    /// `qorestor ost`; users with role ost or administrator, see `qorestor user add`).
    #[arg(long, value_name = "ADDR:PORT", value_parser = listen::parse)]
    pub ost_listen: Option<ListenAddr>,
    /// Serve the HTTP management API on ADDR:PORT (not built yet).
    #[arg(long, value_name = "ADDR:PORT")]
    pub http_listen: Option<SocketAddr>,
}

/// What the frontends get: the engine and every library.
#[derive(Clone)]
pub struct Services {
    /// The engine (the data directory, held by this process).
    pub engine: Engine,
    /// Every `vtl` container's library, open: the live registry that the frontends serve and
    /// the `vtl` commands run in the daemon change.
    pub libraries: Arc<Libraries>,
}

/// A frontend listening: its name in the `listening` line, its bound address and its server.
struct Listening {
    frontend: &'static str,
    addr: SocketAddr,
    server: Box<dyn FrontendServer>,
}

/// What `serve` does with a frontend's server at shutdown.
trait FrontendServer {
    /// Stops accepting and ends the sessions.
    fn stop(&self);
    /// Waits for its threads, at most `limit`; whether they all ended.
    fn join_within(&self, limit: Duration) -> bool;
}

impl FrontendServer for qorestor_core::listener::Server {
    fn stop(&self) {
        qorestor_core::listener::Server::stop(self)
    }

    fn join_within(&self, limit: Duration) -> bool {
        qorestor_core::listener::Server::join_within(self, limit)
    }
}

impl FrontendServer for qorestor_iscsi::Server {
    fn stop(&self) {
        qorestor_iscsi::Server::stop(self)
    }

    fn join_within(&self, limit: Duration) -> bool {
        qorestor_iscsi::Server::join_within(self, limit)
    }
}

/// How often the libraries are ticked.
const TICK: Duration = Duration::from_secs(1);
/// How long a stop waits for a frontend's sessions to end (one may be finishing a command).
const SESSION_END: Duration = Duration::from_secs(20);

/// Runs `serve`: the supervisor ([`crate::supervisor`]), or, in the process it starts, the
/// serving process.
pub fn run(ctx: &Ctx, args: ServeArgs) -> Result<()> {
    match std::env::var(handoff::SUPERVISOR_ENV) {
        Ok(pid) => {
            let pid = pid.parse().with_context(|| format!("{} is not a pid: {pid:?}", handoff::SUPERVISOR_ENV))?;
            serve(ctx, pid)
        }
        Err(_) => crate::supervisor::run(ctx, &args),
    }
}

/// The serving process: adopts the hold and the listening sockets the supervisor `supervisor`
/// hands over on stdin, opens the engine, serves until SIGTERM or SIGINT.
fn serve(ctx: &Ctx, supervisor: u32) -> Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT]).context("cannot install the signal handlers")?;
    handoff::follow_supervisor(supervisor)?;
    let stdin = std::io::stdin();
    let handed = handoff::receive(stdin.as_fd())?;
    // The VTL logs every engine failure it reports to an initiator (library, cartridge, drive,
    // command, sense, the engine's message): one line each on stderr, with serve's messages.
    let log = tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).with_target(false);
    if log.try_init().is_err() {
        eprintln!("qorestor serve: cannot install the log writer: tape errors will not be logged");
    }
    let engine = ctx.open_held(DirLock::adopt(ctx.data(), handed.lock)?)?;
    let libraries = Arc::new(Libraries::open_all(&engine)?);
    let services = Services { engine, libraries: libraries.clone() };
    let mut listening = Vec::new();
    for (frontend, listener) in handed.listeners {
        listening.push(match frontend {
            Frontend::Iscsi => start_iscsi(listener, &services)?,
            Frontend::Ndmp => start_ndmp(listener, &services)?,
            Frontend::Replication => start_replication(listener, &services)?,
            Frontend::Ost => start_ost(listener, &services)?,
        });
    }
    let bound: Vec<_> = listening.iter().map(|l| (l.frontend, l.addr)).collect();
    for warning in crate::serve_warnings::warnings(&services.engine, &libraries, &bound)? {
        eprintln!("qorestor serve: warning: {warning}");
    }
    let control = crate::control_server::start(handed.control, services.clone())?;
    handoff::send_ready(stdin.as_fd())?;
    let ticked = libraries.clone();
    thread::Builder::new().name("tick".into()).spawn(move || loop {
        thread::sleep(TICK);
        if let Err(e) = ticked.tick() {
            eprintln!("qorestor serve: cannot make buffered tape data durable: {e}");
        }
    })?;
    let scheduler = Scheduler::start(services.engine.clone(), Arc::new(SystemClock))?;
    let signal = signals.forever().next().unwrap_or(SIGTERM);
    let name = if signal == SIGINT { "SIGINT" } else { "SIGTERM" };
    eprintln!("qorestor serve: {name}: stopping the listeners, then making tape data durable");
    // No new session may write once the flush has begun: every frontend stops accepting and
    // ends its sessions (what they had acknowledged is durable already), then its threads end.
    for l in &listening {
        l.server.stop();
    }
    // Commands handed over by clients: new ones are refused, running ones end first.
    control.stop();
    if !control.join_within(SESSION_END) {
        eprintln!(
            "qorestor serve: commands of clients still running after {} s; making tape data durable anyway",
            SESSION_END.as_secs()
        );
    }
    for l in &listening {
        if !l.server.join_within(SESSION_END) {
            eprintln!(
                "qorestor serve: {} sessions still running after {} s; making tape data durable anyway",
                l.frontend,
                SESSION_END.as_secs()
            );
        }
    }
    scheduler.stop();
    libraries.flush_all().context("cannot make buffered tape data durable at shutdown")?;
    Ok(())
}

/// Starts the replication listener on `listener`.
fn start_replication(listener: TcpListener, services: &Services) -> Result<Listening> {
    if !services.engine.replication_password_set()? {
        eprintln!(
            "qorestor serve: no replication password is set: the replication listener refuses every source \
             (run `qorestor replication set-password`: accepted from the next login, no restart needed)"
        );
    }
    let server = qorestor_core::replication::serve_listener(services.engine.clone(), listener)
        .context("cannot serve replication")?;
    Ok(Listening { frontend: "replication", addr: server.local_addr(), server: Box::new(server) })
}

/// Starts the OST server on `listener`.
fn start_ost(listener: TcpListener, services: &Services) -> Result<Listening> {
    let server = qorestor_ost::serve_listener(services.engine.clone(), listener).context("cannot serve OST")?;
    Ok(Listening { frontend: "ost", addr: server.local_addr(), server: Box::new(server) })
}

/// Starts the iSCSI target on `listener`: one target per library of the live registry, CHAP as
/// `iscsi set-password` stored it, both read at each discovery and login.
fn start_iscsi(listener: TcpListener, services: &Services) -> Result<Listening> {
    let server = qorestor_iscsi::config::serve(listener, &services.engine, &services.libraries)?;
    Ok(Listening { frontend: "iscsi", addr: server.local_addr(), server: Box::new(server) })
}

/// Starts the NDMP server on `listener`.
fn start_ndmp(listener: TcpListener, services: &Services) -> Result<Listening> {
    let engine = services.engine.clone();
    let shared = qorestor_ndmp::Shared {
        libraries: services.libraries.clone(),
        system_name: services.engine.system_name()?,
        credentials: Box::new(move || match qorestor_ndmp::config::load(&engine) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("ndmp: cannot read the NDMP user: {e}");
                None
            }
        }),
        opened: Default::default(),
    };
    let server = qorestor_ndmp::server::serve(listener, Arc::new(shared)).context("cannot start the NDMP server")?;
    Ok(Listening { frontend: "ndmp", addr: server.local_addr(), server: Box::new(server) })
}
