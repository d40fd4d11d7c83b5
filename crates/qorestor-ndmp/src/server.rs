//! The TCP server: one thread accepts control connections, one thread per connection reads
//! records, decodes them and runs the [`Session`]; replies and notifications are written under
//! one lock so they never interleave. Admission is [`LIMITS`] (see
//! [`qorestor_core::listener`]): until CONNECT_CLIENT_AUTH succeeds a connection holds a slot of
//! the pre-authentication pool (limited per peer address), may send records of at most
//! [`PRE_AUTH_MAX_RECORD`] bytes and is closed [`LOGIN_TIMEOUT`] after its accept; a connection
//! that is not admitted gets NOTIFY_CONNECTION_STATUS REFUSED. At most [`MAX_SESSIONS`]
//! authenticated sessions are served at once.
//!
//! A server has the live registry of its libraries tell it when one is taken out of service
//! (deleted, or reopened by a reload): every session with one of its devices open is ended
//! ([`crate::claims`]). Its connection stops taking requests; the session ends as on a
//! disconnection (mover halted, devices released), then the DMA gets NOTIFY_CONNECTION_STATUS
//! SHUTDOWN with a text naming the library, and the connection is closed.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use qorestor_core::listener::{is_timeout, Conn, Handler, Limits, Refusal, Server};

use crate::error::{Error, Result};
use crate::message::{Header, NdmpError, MESSAGE_REPLY, VERSION};
use crate::record::{Assembler, MAX_RECORD, PRE_AUTH_MAX_RECORD};
use crate::reply::{encode_reply, Outgoing, Post, Reply};
use crate::request::decode_request;
use crate::session::{Outbox, Outcome, Session, Shared};
use crate::xdr::Decoder;

/// The write side of a control connection, and a handle to stop its reads.
struct Control {
    out: Mutex<(TcpStream, Outgoing)>,
    socket: TcpStream,
}

impl Control {
    fn send(&self, f: impl FnOnce(&mut Outgoing) -> Vec<u8>) {
        let mut g = self.out.lock();
        let (s, o) = &mut *g;
        let bytes = f(o);
        let _ = s.write_all(&bytes);
    }
}

impl Outbox for Control {
    fn post(&self, post: Post) {
        self.send(|o| o.post(&post));
    }

    /// Shuts the reading half: the connection's thread, reading the next request, sees the
    /// end at once (a reply it is writing is not cut short).
    fn end(&self) {
        let _ = self.socket.shutdown(Shutdown::Read);
    }
}

/// Authenticated sessions served at once.
pub const MAX_SESSIONS: usize = 64;
/// How long after its accept a connection may take to authenticate (CONNECT_CLIENT_AUTH).
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(15);
/// What the server admits: unauthenticated connections per peer address and in all, the time
/// one has to authenticate, and the sessions served at once.
pub const LIMITS: Limits = Limits::with(LOGIN_TIMEOUT, MAX_SESSIONS);
/// Bytes read from the socket at a time before authentication, and after.
const PRE_AUTH_READ: usize = 4096;
const READ: usize = 64 << 10;

/// NOTIFY_CONNECTION_STATUS reason SHUTDOWN.
const SHUTDOWN: u32 = 1;
/// NOTIFY_CONNECTION_STATUS reason REFUSED.
const REFUSED: u32 = 2;

/// Binds `addr` and serves NDMP on it in background threads; returns the server's handle.
pub fn start(addr: SocketAddr, shared: Arc<Shared>) -> Result<Server> {
    let listener = TcpListener::bind(addr).map_err(|e| Error::io(format!("cannot listen on {addr}"), e))?;
    serve(listener, shared)
}

/// Serves NDMP on a socket already listening (bound by `qorestor serve`'s supervisor and
/// passed down), in background threads; returns the server's handle. The registry
/// `shared.libraries` ends the sessions on a library it takes out of service (see the module
/// documentation).
pub fn serve(listener: TcpListener, shared: Arc<Shared>) -> Result<Server> {
    let watcher: Weak<Shared> = Arc::downgrade(&shared);
    shared.libraries.watch(watcher);
    Server::spawn("ndmp", listener, LIMITS, Arc::new(Ndmp { shared }))
        .map_err(|e| Error::io("cannot start the NDMP server threads", e))
}

/// The server's connection handler.
struct Ndmp {
    shared: Arc<Shared>,
}

impl Handler for Ndmp {
    fn serve(&self, stream: TcpStream, conn: Conn) {
        if let Err(e) = serve_connection(stream, self.shared.clone(), &conn) {
            if conn.timed_out() {
                return; // the watchdog logged it
            }
            match e {
                Error::Io { source, .. } if is_timeout(&source) => eprintln!(
                    "ndmp: connection from {} timed out: not authenticated within {} s; closed",
                    conn.peer(),
                    LOGIN_TIMEOUT.as_secs()
                ),
                e => eprintln!("ndmp: connection from {} ended: {e}", conn.peer()),
            }
        }
    }

    fn refuse(&self, mut stream: TcpStream, why: &Refusal) {
        // The accept thread must not wait: a record this small fits the empty socket buffer.
        let _ = stream.set_nonblocking(true);
        let refused = Post::ConnectionStatus { reason: REFUSED, version: VERSION, text: format!("refused: {why}") };
        let _ = stream.write_all(&Outgoing::default().post(&refused));
    }
}

/// Serves one control connection. The session ends (mover halted, devices freed) before the
/// connection closes, and its slot is given back with `conn` (whose descriptor keeps the
/// connection open until then), so a DMA that sees it close can open the next session at once.
fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>, conn: &Conn) -> Result<()> {
    let _ = stream.set_nodelay(true);
    let local_ip = match stream.local_addr().map(|a| a.ip()) {
        Ok(IpAddr::V4(ip)) => ip,
        _ => Ipv4Addr::LOCALHOST,
    };
    let clone = || stream.try_clone().map_err(|e| Error::io("cannot clone the control socket", e));
    let control = Arc::new(Control { out: Mutex::new((clone()?, Outgoing::default())), socket: clone()? });
    conn.set_state("unauthenticated");
    control.post(Session::greeting());
    let mut session = Session::new(shared, control.clone(), local_ip);
    let _ = stream.set_read_timeout(Some(LOGIN_TIMEOUT));
    // Bytes received and not yet taken by the assembler: at most one fragment (within the
    // record limit in force) and one read.
    let mut buf: Vec<u8> = Vec::new();
    let mut records = Assembler::default();
    let result = loop {
        if session.ended().is_some() {
            break Ok(());
        }
        let (limit, read) =
            if session.authenticated() { (MAX_RECORD, READ) } else { (PRE_AUTH_MAX_RECORD, PRE_AUTH_READ) };
        let (used, record) = match records.take(&buf, limit) {
            Ok(taken) => taken,
            Err(e) => break Err(e.into()),
        };
        buf.drain(..used);
        if let Some(record) = record {
            let was = session.authenticated();
            if !handle_record(&mut session, &control, &record, conn) {
                break Ok(());
            }
            if !was && session.authenticated() {
                // An authenticated DMA may stay quiet as long as it likes.
                let _ = stream.set_read_timeout(None);
            }
            continue;
        }
        let old = buf.len();
        buf.resize(old + read, 0);
        match stream.read(&mut buf[old..]) {
            Err(e) => break Err(Error::io("cannot read the control socket", e)),
            Ok(0) => break Ok(()),
            Ok(n) => buf.truncate(old + n),
        }
    };
    session.finish();
    if let Some(why) = session.ended() {
        // Ended from outside: the read that saw it is no failure of the connection.
        eprintln!("ndmp: session from {}: {why}", conn.peer());
        control.post(Post::ConnectionStatus { reason: SHUTDOWN, version: session.version(), text: why });
        let _ = stream.shutdown(Shutdown::Both);
        return Ok(());
    }
    result
}

/// Handles one message; `false` to close the connection. A successful authentication moves
/// the connection to a session slot; when none is free the DMA gets NOT_AUTHORIZED and the
/// connection is closed.
fn handle_record(session: &mut Session, control: &Control, record: &[u8], conn: &Conn) -> bool {
    let d = &mut Decoder::new(record);
    let Ok(header) = Header::decode(d) else {
        eprintln!("ndmp: closing a connection that sent a malformed header");
        return false;
    };
    if header.message_type == MESSAGE_REPLY {
        return true;
    }
    let body = &record[record.len() - d.remaining()..];
    let was = session.authenticated();
    let mut open = true;
    let outcome = match decode_request(session.version(), header.message_code, body) {
        Ok(req) => {
            let mut o = session.handle(req);
            if !was && session.authenticated() {
                if let Err(why) = conn.authenticated(session.user(), "authenticated") {
                    eprintln!("ndmp: refused a session for {}: {why}", conn.peer());
                    o = Outcome::Reply(Reply::Error(NdmpError::NotAuthorized));
                    open = false;
                }
            }
            // CONNECT_OPEN may have chosen the version: posts from now on use it.
            control.out.lock().1.version = session.version();
            o
        }
        Err(e) => {
            eprintln!("ndmp: message {:#x}: {e}", header.message_code);
            Outcome::HeaderError(NdmpError::XdrDecode)
        }
    };
    match outcome {
        Outcome::Reply(r) => {
            let body = encode_reply(session.version(), header.message_code, &r);
            control.send(|o| o.reply(&header, NdmpError::NoErr, &body));
        }
        Outcome::HeaderError(e) => control.send(|o| o.reply(&header, e, &[])),
        Outcome::Close => return false,
    }
    open
}
