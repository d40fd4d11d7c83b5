//! What every network server (iSCSI, NDMP, replication) shares: an accept loop that backs off
//! on errors, admission of connections into two separate pools, and a handle to stop, join and
//! inspect the server.
//!
//! A connection starts *unauthenticated*: it takes a slot from the pre-authentication pool,
//! which is limited per peer address ([`Limits::pre_auth_per_peer`]) and in all
//! ([`Limits::pre_auth_total`]), so that silent or hostile connections from one address never
//! lock out another. A watchdog closes a connection that has not authenticated within
//! [`Limits::pre_auth_timeout`] of its accept, and logs it as a timeout naming the peer. Once
//! the protocol's authentication succeeds the server calls [`Conn::authenticated`], which
//! moves the connection to the session pool ([`Limits::sessions`]). Every slot is held by the
//! [`Conn`] guard and released when it drops: no penalty outlasts the connection.
//!
//! [`Server::stop`] stops accepting (the port closes) and shuts down every connection's socket;
//! [`Server::join`] waits for the accept loop, the watchdog and every connection thread.
//! Dropping a [`Server`] stops it.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex};

/// Unauthenticated connections one peer address may hold at once, by default.
pub const PRE_AUTH_PER_PEER: usize = 8;
/// Unauthenticated connections a server holds at once from all addresses, by default.
pub const PRE_AUTH_TOTAL: usize = 128;
/// First pause of the accept loop after an error (such as EMFILE); it doubles on each error in
/// a row up to [`MAX_ACCEPT_BACKOFF`].
pub const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause of the accept loop after errors.
pub const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// Refused connections are logged at most once per this interval (with a count).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A server's admission limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Unauthenticated connections from one peer address.
    pub pre_auth_per_peer: usize,
    /// Unauthenticated connections from all addresses.
    pub pre_auth_total: usize,
    /// How long after its accept a connection may take to authenticate.
    pub pre_auth_timeout: Duration,
    /// Authenticated sessions at once.
    pub sessions: usize,
}

impl Limits {
    /// The default pre-authentication pool ([`PRE_AUTH_PER_PEER`], [`PRE_AUTH_TOTAL`]) with a
    /// protocol's authentication timeout and session count.
    pub const fn with(pre_auth_timeout: Duration, sessions: usize) -> Limits {
        Limits { pre_auth_per_peer: PRE_AUTH_PER_PEER, pre_auth_total: PRE_AUTH_TOTAL, pre_auth_timeout, sessions }
    }
}

/// Why a connection was not admitted or not given a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The peer address holds its share of unauthenticated connections.
    PeerBusy {
        /// The address.
        peer: IpAddr,
        /// Its limit.
        limit: usize,
    },
    /// The pre-authentication pool is full.
    PreAuthFull {
        /// Its size.
        limit: usize,
    },
    /// Every session slot is taken.
    SessionsFull {
        /// Their number.
        limit: usize,
    },
    /// The server is stopping.
    Stopping,
    /// The connection could not be held (no file descriptor for its watchdog handle).
    Resources(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::PeerBusy { peer, limit } => {
                write!(f, "{peer} already has {limit} unauthenticated connections open")
            }
            Refusal::PreAuthFull { limit } => write!(f, "{limit} unauthenticated connections are open"),
            Refusal::SessionsFull { limit } => write!(f, "too many sessions ({limit} are open)"),
            Refusal::Stopping => write!(f, "the server is stopping"),
            Refusal::Resources(e) => write!(f, "cannot hold the connection: {e}"),
        }
    }
}

/// One connection as [`Server::sessions`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The user, initiator or source name, once known.
    pub user: Option<String>,
    /// The protocol's state (such as `login`, `authenticated`, `full feature`).
    pub state: String,
    /// Whether the connection has authenticated (it holds a session slot).
    pub authenticated: bool,
    /// When it was accepted.
    pub since: SystemTime,
}

/// What a server does with its connections.
pub trait Handler: Send + Sync + 'static {
    /// Serves an admitted connection until it ends (on its own thread). The slot is released
    /// when `conn` drops.
    fn serve(&self, stream: TcpStream, conn: Conn);
    /// Answers a connection that was not admitted (on the accept thread: it must not block),
    /// then drops it.
    fn refuse(&self, stream: TcpStream, why: &Refusal);
}

struct Entry {
    info: SessionInfo,
    socket: TcpStream,
    deadline: Instant,
    timed_out: bool,
}

#[derive(Default)]
struct State {
    next: u64,
    entries: HashMap<u64, Entry>,
    per_peer: HashMap<IpAddr, usize>,
    pre_auth: usize,
    sessions: usize,
    /// Connection threads running.
    threads: usize,
    stopping: bool,
    refused_unlogged: u64,
    last_refusal_log: Option<Instant>,
}

struct Shared {
    name: &'static str,
    limits: Limits,
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn admit(self: &Arc<Self>, stream: &TcpStream, peer: SocketAddr) -> Result<Conn, Refusal> {
        let mut st = self.state.lock();
        let l = self.limits;
        if st.stopping {
            return Err(Refusal::Stopping);
        }
        let from_peer = st.per_peer.get(&peer.ip()).copied().unwrap_or(0);
        if from_peer >= l.pre_auth_per_peer {
            return Err(Refusal::PeerBusy { peer: peer.ip(), limit: l.pre_auth_per_peer });
        }
        if st.pre_auth >= l.pre_auth_total {
            return Err(Refusal::PreAuthFull { limit: l.pre_auth_total });
        }
        // A second descriptor, to shut the connection down on a timeout or a stop.
        let socket = stream.try_clone().map_err(|e| Refusal::Resources(e.to_string()))?;
        let id = st.next;
        st.next += 1;
        *st.per_peer.entry(peer.ip()).or_default() += 1;
        st.pre_auth += 1;
        let info =
            SessionInfo { peer, user: None, state: "connected".into(), authenticated: false, since: SystemTime::now() };
        let entry = Entry { info, socket, deadline: Instant::now() + l.pre_auth_timeout, timed_out: false };
        st.entries.insert(id, entry);
        drop(st);
        self.changed.notify_all();
        Ok(Conn { id, peer, shared: self.clone() })
    }

    /// Logs a refusal, at most once per [`REFUSAL_LOG_INTERVAL`].
    fn log_refusal(&self, peer: SocketAddr, why: &Refusal) {
        let mut st = self.state.lock();
        st.refused_unlogged += 1;
        let now = Instant::now();
        if st.last_refusal_log.is_some_and(|t| now.duration_since(t) < REFUSAL_LOG_INTERVAL) {
            return;
        }
        let n = std::mem::take(&mut st.refused_unlogged);
        st.last_refusal_log = Some(now);
        drop(st);
        let more = if n > 1 { format!(" ({} refused since the last such line)", n) } else { String::new() };
        eprintln!("{}: refused a connection from {peer}: {why}{more}", self.name);
    }

    /// Closes the connections past their authentication deadline until the server stops.
    fn watch(&self) {
        let mut st = self.state.lock();
        while !st.stopping {
            let now = Instant::now();
            for e in st.entries.values_mut() {
                if !e.info.authenticated && !e.timed_out && e.deadline <= now {
                    e.timed_out = true;
                    let (name, timeout) = (self.name, self.limits.pre_auth_timeout);
                    eprintln!(
                        "{name}: connection from {} timed out: not authenticated within {} s of connecting; closed",
                        e.info.peer,
                        timeout.as_secs_f64()
                    );
                    let _ = e.socket.shutdown(Shutdown::Both);
                }
            }
            let next = st.entries.values().filter(|e| !e.info.authenticated && !e.timed_out).map(|e| e.deadline).min();
            match next {
                Some(deadline) => {
                    self.changed.wait_until(&mut st, deadline);
                }
                None => self.changed.wait(&mut st),
            }
        }
    }

    fn stop(&self) {
        let mut st = self.state.lock();
        st.stopping = true;
        for e in st.entries.values() {
            let _ = e.socket.shutdown(Shutdown::Both);
        }
        drop(st);
        self.changed.notify_all();
    }
}

/// An admitted connection's slot and its line in [`Server::sessions`]; released on drop.
pub struct Conn {
    id: u64,
    peer: SocketAddr,
    shared: Arc<Shared>,
}

impl Conn {
    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn with_entry<T>(&self, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        self.shared.state.lock().entries.get_mut(&self.id).map(f)
    }

    /// Records the connection's protocol state.
    pub fn set_state(&self, state: &str) {
        self.with_entry(|e| e.info.state = state.to_string());
    }

    /// Records the user, initiator or source name.
    pub fn set_user(&self, user: &str) {
        self.with_entry(|e| e.info.user = Some(user.to_string()));
    }

    /// Whether the watchdog closed this connection for not authenticating in time.
    pub fn timed_out(&self) -> bool {
        self.with_entry(|e| e.timed_out).unwrap_or(false)
    }

    /// Moves the connection from the pre-authentication pool to a session slot, recording
    /// `user` and `state`; refused when every session slot is taken (the connection stays
    /// unauthenticated: the caller closes it).
    pub fn authenticated(&self, user: Option<&str>, state: &str) -> Result<(), Refusal> {
        let mut st = self.shared.state.lock();
        let limit = self.shared.limits.sessions;
        if st.stopping {
            return Err(Refusal::Stopping);
        }
        if st.sessions >= limit {
            return Err(Refusal::SessionsFull { limit });
        }
        let Some(e) = st.entries.get_mut(&self.id) else { return Err(Refusal::Stopping) };
        if e.info.authenticated {
            return Ok(());
        }
        e.info.authenticated = true;
        e.info.state = state.to_string();
        if let Some(u) = user {
            e.info.user = Some(u.to_string());
        }
        st.sessions += 1;
        st.pre_auth -= 1;
        release_peer(&mut st.per_peer, self.peer.ip());
        drop(st);
        self.shared.changed.notify_all();
        Ok(())
    }
}

fn release_peer(per_peer: &mut HashMap<IpAddr, usize>, ip: IpAddr) {
    if let Some(n) = per_peer.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            per_peer.remove(&ip);
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock();
        if let Some(e) = st.entries.remove(&self.id) {
            if e.info.authenticated {
                st.sessions -= 1;
            } else {
                st.pre_auth -= 1;
                release_peer(&mut st.per_peer, self.peer.ip());
            }
        }
        drop(st);
        self.shared.changed.notify_all();
    }
}

/// Counts a running connection thread; the count drops with it.
struct ThreadSlot(Arc<Shared>);

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        self.0.state.lock().threads -= 1;
        self.0.changed.notify_all();
    }
}

/// A running server: stop it, join it, list its connections.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Server {
    /// Serves `listener` with `handler` on background threads: one accepting, one watching the
    /// authentication deadlines, one per connection. `name` prefixes the log lines and names
    /// the threads.
    pub fn spawn(
        name: &'static str,
        listener: TcpListener,
        limits: Limits,
        handler: Arc<dyn Handler>,
    ) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared { name, limits, state: Mutex::new(State::default()), changed: Condvar::new() });
        let watched = shared.clone();
        let watchdog = thread::Builder::new().name(format!("{name}-watchdog")).spawn(move || watched.watch())?;
        let accepting = shared.clone();
        let accept = thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn(move || accept_loop(listener, accepting, handler));
        let accept = match accept {
            Ok(a) => a,
            Err(e) => {
                shared.stop();
                let _ = watchdog.join();
                return Err(e);
            }
        };
        Ok(Server { addr, shared, threads: Mutex::new(vec![accept, watchdog]) })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The open connections, oldest first.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let st = self.shared.state.lock();
        let mut v: Vec<(u64, SessionInfo)> = st.entries.iter().map(|(id, e)| (*id, e.info.clone())).collect();
        v.sort_by_key(|(id, _)| *id);
        v.into_iter().map(|(_, i)| i).collect()
    }

    /// Stops accepting (the listening socket closes once the accept thread sees it) and shuts
    /// down every connection. Returns at once; [`Server::join`] waits for the threads.
    pub fn stop(&self) {
        self.shared.stop();
        // Wake the accept thread if it is waiting in accept(): it sees the stop and returns.
        let _ = TcpStream::connect_timeout(&wake_address(self.addr), Duration::from_secs(1));
    }

    /// Waits until the accept thread, the watchdog and every connection thread have ended
    /// (call [`Server::stop`] first, or this waits as long as the server runs).
    pub fn join(&self) {
        self.join_until(None);
    }

    /// As [`Server::join`], giving up on connection threads still running after `limit`
    /// (a session in the middle of a long command); returns whether every thread ended.
    pub fn join_within(&self, limit: Duration) -> bool {
        self.join_until(Some(Instant::now() + limit))
    }

    fn join_until(&self, deadline: Option<Instant>) -> bool {
        // The accept thread and the watchdog return as soon as they see the stop.
        let handles = std::mem::take(&mut *self.threads.lock());
        for h in handles {
            let _ = h.join();
        }
        let mut st = self.shared.state.lock();
        while st.threads > 0 {
            match deadline {
                Some(d) => {
                    if self.shared.changed.wait_until(&mut st, d).timed_out() {
                        return st.threads == 0;
                    }
                }
                None => self.shared.changed.wait(&mut st),
            }
        }
        true
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where to connect to reach a listener bound to `addr` (a wildcard address becomes loopback).
fn wake_address(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, handler: Arc<dyn Handler>) {
    let mut backoff = MIN_ACCEPT_BACKOFF;
    for incoming in listener.incoming() {
        if shared.state.lock().stopping {
            break;
        }
        let stream = match incoming {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{}: accept failed: {e}; pausing {} ms", shared.name, backoff.as_millis());
                let mut st = shared.state.lock();
                if !st.stopping {
                    shared.changed.wait_for(&mut st, backoff);
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
        };
        backoff = MIN_ACCEPT_BACKOFF;
        let Ok(peer) = stream.peer_addr() else { continue };
        let conn = match shared.admit(&stream, peer) {
            Ok(c) => c,
            Err(why) => {
                shared.log_refusal(peer, &why);
                handler.refuse(stream, &why);
                continue;
            }
        };
        shared.state.lock().threads += 1;
        let slot = ThreadSlot(shared.clone());
        let handler = handler.clone();
        let spawned = thread::Builder::new().name(format!("{}-conn", shared.name)).spawn(move || {
            let _slot = slot;
            handler.serve(stream, conn);
        });
        if let Err(e) = spawned {
            eprintln!("{}: cannot start a thread for the connection from {peer}: {e}", shared.name);
        }
    }
}

/// Whether `e` is a read or write timing out (a socket timeout shows as either kind).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}
