//! The I/O driver: a TCP listener and one thread per connection. Each thread reads bytes,
//! cuts them into frames with [`crate::frame::decode`] under the limits in force, hands them to
//! its [`Connection`], and writes what comes back. Reads time out every [`POLL`] so that the
//! connection's timers (login timeout, keep-alive ping) run on a quiet connection.
//!
//! Session reinstatement (RFC 7143 §6.3.5): a new login with the InitiatorName, ISID and
//! target of a running session replaces it; the old session's connection is shut down, as
//! ErrorRecoveryLevel 0 implies (a backup host that restarts logs in again with the same ISID).

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::chap::CHALLENGE_LEN;
use crate::connection::{Connection, Output};
use crate::error::{Error, Result};
use crate::frame;
use crate::portal::Portal;
use crate::session::Action;

/// How often a quiet connection checks its timers.
pub const POLL: Duration = Duration::from_millis(500);
/// How much is read from the socket at a time.
const READ_CHUNK: usize = 256 * 1024;

/// A running iSCSI target.
pub struct Server {
    addr: SocketAddr,
}

impl Server {
    /// Binds `addr` and serves `portal` on a background thread, one thread per connection.
    pub fn start(addr: SocketAddr, portal: Arc<Portal>) -> Result<Server> {
        let listener =
            TcpListener::bind(addr).map_err(|source| Error::Io { what: format!("cannot listen on {addr}"), source })?;
        let addr = listener.local_addr().map_err(|source| Error::Io { what: "local address".into(), source })?;
        thread::Builder::new()
            .name("iscsi-accept".into())
            .spawn(move || accept_loop(listener, portal))
            .map_err(|source| Error::Io { what: "cannot start the iSCSI accept thread".into(), source })?;
        Ok(Server { addr })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// What identifies a session: InitiatorName, ISID, TargetName.
type SessionKey = (String, [u8; 6], String);

/// The running normal sessions, with a handle to shut each one's connection.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    sessions: Mutex<HashMap<SessionKey, (u64, TcpStream)>>,
}

impl Registry {
    /// Records a session that just logged in, shutting down the one it reinstates.
    fn enter(&self, key: SessionKey, stream: &TcpStream) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let Ok(handle) = stream.try_clone() else { return id };
        let old = self.sessions.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (id, handle));
        if let Some((_, old)) = old {
            let _ = old.shutdown(Shutdown::Both);
        }
        id
    }

    /// Forgets a session whose connection ended (unless a newer one took its key).
    fn leave(&self, key: &SessionKey, id: u64) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.get(key).is_some_and(|(i, _)| *i == id) {
            sessions.remove(key);
        }
    }
}

fn accept_loop(listener: TcpListener, portal: Arc<Portal>) {
    let registry = Arc::new(Registry::default());
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("iscsi: accept failed: {e}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let (portal, registry) = (portal.clone(), registry.clone());
        let spawned = thread::Builder::new().name("iscsi-conn".into()).spawn(move || {
            let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            let mut entered = None;
            let result = serve(stream, portal, &registry, &mut entered);
            if let Some((key, id)) = entered {
                registry.leave(&key, id);
            }
            if let Err(e) = result {
                if !matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof) {
                    eprintln!("iscsi: connection from {peer}: {e}");
                }
            }
        });
        if let Err(e) = spawned {
            eprintln!("iscsi: cannot start a connection thread: {e}");
        }
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
    entered: &mut Option<(SessionKey, u64)>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(POLL))?;
    let local = stream.local_addr()?.to_string();
    let mut conn = Connection::new(portal, local, entropy(), Instant::now());
    let mut framing = Connection::initial_framing();
    // Received bytes not yet framed are buf[start..end]. The buffer is zeroed once and reused:
    // it grows only to hold one PDU (bounded by the framing limits) plus a read.
    let mut buf = vec![0u8; READ_CHUNK * 2];
    let (mut start, mut end) = (0, 0);
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
                    if let Some(t) = &est.target {
                        let key = (est.initiator.clone(), est.isid, t.name.clone());
                        let id = registry.enter(key.clone(), &stream);
                        *entered = Some((key, id));
                    }
                }
            }
            if !write_outputs(&mut stream, outputs, &mut framing, &mut wire)? {
                return Ok(());
            }
        }
        if buf.len() - end < READ_CHUNK {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
            if buf.len() - end < READ_CHUNK {
                buf.resize(end + READ_CHUNK, 0);
            }
        }
        end += match stream.read(&mut buf[end..]) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
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
