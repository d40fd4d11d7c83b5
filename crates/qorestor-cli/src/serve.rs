//! `qorestor serve`: the daemon. Holds the data directory, opens every virtual tape library,
//! starts the frontends whose `--*-listen` flag is given, prints `listening <frontend>
//! <addr:port>` once every listener is bound, ticks the libraries every second (so idle drives
//! make their buffered tape data durable), runs the cleaner in its scheduled windows
//! ([`crate::scheduler`]), and on SIGTERM or SIGINT first stops every listener (no new
//! connection; the open ones are ended and their threads joined), then stops a cleaner run at
//! its next pack, makes every drive's data durable and exits 0. Nothing a session had been
//! acknowledged is lost by ending it, since an acknowledgement comes only after durability
//! (see `docs/VTL.md`).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use qorestor_core::Engine;
use qorestor_vtl::Libraries;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::context::Ctx;
use crate::listen::{self, ListenAddr};
use crate::scheduler::{Scheduler, SystemClock};

/// Long help of `serve`.
pub const LONG_ABOUT: &str = "\
Run the qorestor daemon: the frontends whose --*-listen flag is given (a frontend without its \
flag is off). ADDR may be a host name (the first of its addresses that binds is used). Port 0 \
picks a free port. When every listener is bound, one line per listener is \
printed on stdout:

  listening <frontend> <addr:port>

While serve runs it owns the data directory: other qorestor commands on it fail with \
\"data directory DIR is in use by qorestor serve (pid N)\". SIGTERM or SIGINT stops it cleanly \
(exit 0): the listeners stop first (open sessions are ended), then every tape drive's buffered \
data is made durable.

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
pub struct Services {
    /// The engine (the data directory, held by this process).
    pub engine: Engine,
    /// Every `vtl` container's library, open.
    pub libraries: Arc<Libraries>,
}

/// A frontend listening: its name in the `listening` line, its bound address and its server.
struct Listening {
    frontend: &'static str,
    addr: SocketAddr,
    server: Box<dyn Frontend>,
}

/// What `serve` does with a frontend's server at shutdown.
trait Frontend {
    /// Stops accepting and ends the sessions.
    fn stop(&self);
    /// Waits for its threads, at most `limit`; whether they all ended.
    fn join_within(&self, limit: Duration) -> bool;
}

impl Frontend for qorestor_core::listener::Server {
    fn stop(&self) {
        qorestor_core::listener::Server::stop(self)
    }

    fn join_within(&self, limit: Duration) -> bool {
        qorestor_core::listener::Server::join_within(self, limit)
    }
}

impl Frontend for qorestor_iscsi::Server {
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

/// Runs `serve` until SIGTERM or SIGINT.
pub fn run(ctx: &Ctx, args: ServeArgs) -> Result<()> {
    // Signals are caught from before the first listener is bound, so that a stop sent right
    // after the `listening` lines is never lost.
    let mut signals = Signals::new([SIGTERM, SIGINT]).context("cannot install the signal handlers")?;
    // The VTL logs every engine failure it reports to an initiator (library, cartridge, drive,
    // command, sense, the engine's message): one line each on stderr, with serve's messages.
    let log = tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).with_target(false);
    if log.try_init().is_err() {
        eprintln!("qorestor serve: cannot install the log writer: tape errors will not be logged");
    }
    let engine = ctx.open_or_create_default("qorestor serve")?;
    let libraries = Arc::new(Libraries::open_all(&engine)?);
    let services = Services { engine, libraries: libraries.clone() };
    let mut listening = Vec::new();
    if let Some(addr) = args.iscsi_listen {
        listening.push(addr.bind_first(|a| start_iscsi(a, &services))?);
    }
    if let Some(addr) = args.ndmp_listen {
        listening.push(addr.bind_first(|a| start_ndmp(a, &services))?);
    }
    if let Some(addr) = args.replication_listen {
        if !services.engine.replication_password_set()? {
            eprintln!(
                "qorestor serve: no replication password is set: the replication listener refuses every source \
                 (stop serve, run `qorestor replication set-password`, start it again)"
            );
        }
        let server = addr.bind_first(|a| {
            qorestor_core::replication::listen(services.engine.clone(), a)
                .with_context(|| format!("cannot listen for replication on {a}"))
        })?;
        listening.push(Listening { frontend: "replication", addr: server.local_addr(), server: Box::new(server) });
    }
    if let Some(addr) = args.ost_listen {
        let server = addr.bind_first(|a| {
            qorestor_ost::listen(services.engine.clone(), a).with_context(|| format!("cannot serve OST on {a}"))
        })?;
        listening.push(Listening { frontend: "ost", addr: server.local_addr(), server: Box::new(server) });
    }
    if let Some(addr) = args.http_listen {
        bail!("cannot serve HTTP on {addr}: the HTTP API is not built yet");
    }
    let bound: Vec<_> = listening.iter().map(|l| (l.frontend, l.addr)).collect();
    for warning in crate::serve_warnings::warnings(&services.engine, &libraries, &bound)? {
        eprintln!("qorestor serve: warning: {warning}");
    }
    let mut out = std::io::stdout().lock();
    for l in &listening {
        writeln!(out, "listening {} {}", l.frontend, l.addr)?;
    }
    out.flush()?;
    drop(out);
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

/// Starts the iSCSI target on `addr`: one target per library, CHAP as `iscsi set-password`
/// stored it.
fn start_iscsi(addr: SocketAddr, services: &Services) -> Result<Listening> {
    let portal = qorestor_iscsi::config::portal(&services.engine, &services.libraries)?;
    let server = qorestor_iscsi::Server::start(addr, Arc::new(portal))?;
    Ok(Listening { frontend: "iscsi", addr: server.local_addr(), server: Box::new(server) })
}

/// Starts the NDMP server on `addr`.
fn start_ndmp(addr: SocketAddr, services: &Services) -> Result<Listening> {
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
    let server = qorestor_ndmp::server::start(addr, Arc::new(shared)).context("cannot start the NDMP server")?;
    Ok(Listening { frontend: "ndmp", addr: server.local_addr(), server: Box::new(server) })
}
