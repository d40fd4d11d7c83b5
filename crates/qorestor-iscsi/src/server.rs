//! The I/O driver: a TCP listener and one thread per connection. Each thread reads bytes,
//! cuts them into frames with [`crate::frame::decode`] under the limits in force, hands them to
//! its [`Connection`], and writes what comes back. Reads time out every [`POLL`] so that the
//! connection's timers (login timeout, keep-alive ping) run on a quiet connection.
//!
//! Admission is [`LIMITS`] (see [`qorestor_core::listener`]): a connection counts as
//! unauthenticated until a normal session reaches the full feature phase (discovery sessions
//! stay so: they get 8 KiB data segments and must end within [`LOGIN_TIMEOUT`] of the
//! accept); then it takes one of [`MAX_SESSIONS`] session slots.
//!
//! Session reinstatement (RFC 7143 §6.3.5): a new login with the InitiatorName, ISID and
//! target of a running session replaces it; the old session's connection is shut down, as
//! ErrorRecoveryLevel 0 implies (a backup host that restarts logs in again with the same ISID).
//!
//! A library taken out of service ([`qorestor_vtl::Vtl::retire`]: deleted, or reopened by
//! [`qorestor_vtl::Libraries::reload`]) ends its sessions: [`Server::watch`] has the registry
//! tell the target, which shuts down the connection of every session on retired units (and a
//! session that logs in to them in the meantime is shut down as it enters). The initiator sees
//! its connection closed without a Logout; its reconnection finds the target gone (Login
//! Response "not found") unless the library was reopened.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use qorestor_core::listener::{self, Conn, Handler, Limits, Refusal, SessionInfo};

use crate::chap::CHALLENGE_LEN;
use crate::connection::{Connection, Output};
use crate::error::{Error, Result};
use crate::frame;
use crate::portal::{LogicalUnits, Portal};
use crate::session::Action;

/// How often a quiet connection checks its timers.
pub const POLL: Duration = Duration::from_millis(500);
/// Normal sessions (one connection each) in full feature phase at once.
pub const MAX_SESSIONS: usize = 64;
/// How long after its accept a connection may take to reach the full feature phase of a
/// normal session (a discovery session must also end within it).
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(15);
/// What the target admits: connections before the full feature phase of a normal session per
/// peer address and in all, the time they get (the portal's login timeout, by default
/// [`LOGIN_TIMEOUT`]), and the normal sessions served at once.
pub const LIMITS: Limits = Limits::with(LOGIN_TIMEOUT, MAX_SESSIONS);
/// The first read of a connection; each read that fills its space doubles it, up to
/// [`MAX_READ`] (only in a normal session's full feature phase: a login PDU is at most 9 KiB).
const FIRST_READ: usize = 16 * 1024;
/// The largest read.
const MAX_READ: usize = 256 * 1024;

/// A running iSCSI target: stop it, join it, list its connections.
pub struct Server {
    inner: listener::Server,
    sessions: Arc<Registry>,
}

impl Server {
    /// Binds `addr` and serves `portal` on background threads, one per connection.
    pub fn start(addr: SocketAddr, portal: Arc<Portal>) -> Result<Server> {
        let listener =
            TcpListener::bind(addr).map_err(|source| Error::Io { what: format!("cannot listen on {addr}"), source })?;
        Self::serve(listener, portal)
    }

    /// Serves `portal` on a socket already listening (bound by `qorestor serve`'s supervisor
    /// and passed down), on background threads, one per connection.
    pub fn serve(listener: TcpListener, portal: Arc<Portal>) -> Result<Server> {
        let limits = Limits { pre_auth_timeout: portal.timeouts.login, ..LIMITS };
        let sessions = Arc::new(Registry::default());
        let handler = Arc::new(Target { portal, registry: sessions.clone() });
        let inner = listener::Server::spawn("iscsi", listener, limits, handler)
            .map_err(|source| Error::Io { what: "cannot start the iSCSI threads".into(), source })?;
        Ok(Server { inner, sessions })
    }

    /// Ends the sessions on a library as `libraries` takes it out of service (see the module
    /// documentation).
    pub fn watch(&self, libraries: &qorestor_vtl::Libraries) {
        let watcher: Weak<Registry> = Arc::downgrade(&self.sessions);
        libraries.watch(watcher);
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    /// The open connections (initiator name, `login`, `discovery` or `full feature`), oldest
    /// first.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.inner.sessions()
    }

    /// Stops accepting and shuts down every connection; [`Server::join`] waits for them.
    pub fn stop(&self) {
        self.inner.stop()
    }

    /// Waits for every thread of the target (after [`Server::stop`]).
    pub fn join(&self) {
        self.inner.join()
    }

    /// As [`Server::join`], giving up after `limit`; whether every thread ended.
    pub fn join_within(&self, limit: Duration) -> bool {
        self.inner.join_within(limit)
    }
}

/// The connection handler.
struct Target {
    portal: Arc<Portal>,
    registry: Arc<Registry>,
}

impl Handler for Target {
    fn serve(&self, stream: TcpStream, conn: Conn) {
        conn.set_state("login");
        let mut entered = None;
        let result = serve(stream, self.portal.clone(), &self.registry, &conn, &mut entered);
        if let Some((key, id)) = entered {
            self.registry.leave(&key, id);
        }
        match result {
            Err(_) if conn.timed_out() => {} // the watchdog logged it
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof
                ) => {}
            Err(e) => eprintln!("iscsi: connection from {}: {e}", conn.peer()),
            Ok(()) => {}
        }
    }

    fn refuse(&self, _stream: TcpStream, _why: &Refusal) {
        // Nothing is sent before a Login Request: the connection is closed.
    }
}

/// What identifies a session: InitiatorName, ISID, TargetName.
type SessionKey = (String, [u8; 6], String);

/// A running normal session: its number, a handle to shut its connection, its units.
struct Entered {
    id: u64,
    stream: TcpStream,
    units: Arc<dyn LogicalUnits>,
}

/// The running normal sessions, with a handle to shut each one's connection.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    sessions: Mutex<HashMap<SessionKey, Entered>>,
}

impl Registry {
    /// Records a session on `units` that just logged in, shutting down the one it reinstates;
    /// a session on retired units is shut down at once (its library left as it logged in).
    fn enter(&self, key: SessionKey, stream: &TcpStream, units: Arc<dyn LogicalUnits>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let Ok(handle) = stream.try_clone() else { return id };
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        // Checked under the lock that `retired` takes after the units were retired: either
        // this sees them retired, or `retired` sees this session.
        if units.retired() {
            let _ = stream.shutdown(Shutdown::Both);
            return id;
        }
        let old = sessions.insert(key, Entered { id, stream: handle, units });
        if let Some(old) = old {
            let _ = old.stream.shutdown(Shutdown::Both);
        }
        id
    }

    /// Forgets a session whose connection ended (unless a newer one took its key).
    fn leave(&self, key: &SessionKey, id: u64) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.get(key).is_some_and(|e| e.id == id) {
            sessions.remove(key);
        }
    }
}

impl qorestor_vtl::Watcher for Registry {
    fn retired(&self, _library: &Arc<qorestor_vtl::Vtl>) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, e| {
            if e.units.retired() {
                let _ = e.stream.shutdown(Shutdown::Both);
                return false;
            }
            true
        });
    }
}

/// Bytes for the CHAP identifier and challenge: the kernel's random source, or (should it be
/// unreadable) a hash of the time and thread, which is still unique per connection.
fn entropy() -> [u8; 1 + CHALLENGE_LEN] {
    let mut e = [0u8; 1 + CHALLENGE_LEN];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut e)).is_err() {
        let seed = format!("{:?}{:?}", SystemTime::now(), thread::current().id());
        let d = md5::compute(seed.as_bytes()).0;
        e[..16].copy_from_slice(&d);
        e[16] = d[0] ^ d[15];
    }
    e
}

/// Serves one connection until it closes; `entered` is where its session is in `registry`.
fn serve(
    mut stream: TcpStream,
    portal: Arc<Portal>,
    registry: &Registry,
    admitted: &Conn,
    entered: &mut Option<(SessionKey, u64)>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(POLL))?;
    let local = stream.local_addr()?.to_string();
    let mut conn = Connection::new(portal, local, entropy(), Instant::now());
    let mut framing = Connection::initial_framing();
    // Received bytes not yet framed are buf[start..end]. The buffer grows as data arrives: it
    // holds one PDU (bounded by the framing limits in force) plus a read.
    let mut buf = Vec::new();
    let (mut start, mut end) = (0, 0);
    let mut read_size = FIRST_READ;
    let mut wire = Vec::new();
    loop {
        loop {
            let outputs = match frame::decode(&buf[start..end], framing.digests, framing.max_recv) {
                Ok(Some((f, used))) => {
                    start += used;
                    conn.receive(f, Instant::now())
                }
                Ok(None) => break,
                Err(e) => conn.framing_error(&e),
            };
            // A session that just logged in is registered before the initiator hears of it,
            // so that a later login reinstating it always finds it.
            if entered.is_none() {
                if let Some(est) = conn.session().map(|s| s.established()) {
                    match &est.target {
                        Some(t) => {
                            // Out of session slots: the connection closes before the final
                            // Login Response.
                            if let Err(why) = admitted.authenticated(Some(&est.initiator), "full feature") {
                                eprintln!("iscsi: refused a session of {}: {why}", est.initiator);
                                let _ = stream.shutdown(Shutdown::Both);
                                return Ok(());
                            }
                            let key = (est.initiator.clone(), est.isid, t.name.clone());
                            let id = registry.enter(key.clone(), &stream, t.units.clone());
                            *entered = Some((key, id));
                        }
                        None => {
                            admitted.set_user(&est.initiator);
                            admitted.set_state("discovery");
                        }
                    }
                }
            }
            if !write_outputs(&mut stream, outputs, &mut framing, &mut wire)? {
                return Ok(());
            }
        }
        if buf.len() - end < read_size {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
            if buf.len() - end < read_size {
                buf.resize(end + read_size, 0);
            }
        }
        end += match stream.read(&mut buf[end..end + read_size]) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                if n == read_size && entered.is_some() {
                    read_size = (read_size * 2).min(MAX_READ);
                }
                n
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => 0,
            Err(e) => return Err(e),
        };
        let outputs = conn.tick(Instant::now());
        if !write_outputs(&mut stream, outputs, &mut framing, &mut wire)? {
            return Ok(());
        }
    }
}

/// Encodes and sends the outputs; `false` when the connection is to be closed.
fn write_outputs(
    stream: &mut TcpStream,
    outputs: Vec<Output>,
    framing: &mut crate::connection::Framing,
    wire: &mut Vec<u8>,
) -> std::io::Result<bool> {
    wire.clear();
    let mut open = true;
    for o in outputs {
        match o {
            Output::Act(Action::Send(pdu)) => frame::encode(&pdu.into_frame(), framing.digests, wire),
            Output::Act(Action::Close) => open = false,
            Output::Reframe(f) => {
                // The new framing applies after what is queued: send that first.
                stream.write_all(wire)?;
                wire.clear();
                *framing = f;
            }
        }
    }
    stream.write_all(wire)?;
    if !open {
        let _ = stream.shutdown(Shutdown::Both);
    }
    Ok(open)
}
