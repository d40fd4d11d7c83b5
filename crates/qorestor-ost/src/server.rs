//! The OST server (`qorestor serve --ost-listen`): one thread per connection, admitted under
//! the shared listener rules ([`LISTENER_LIMITS`]: pre-authentication caps per peer and in all,
//! [`HANDSHAKE_TIMEOUT`] to authenticate, frames of at most [`PRE_AUTH_MAX_FRAME`] bytes
//! before then).
//!
//! A session authenticates (module [`crate::auth`]; users with role `ost` or `administrator`),
//! then sends requests one after another; each gets exactly one answer, in order, so a client
//! may send several before reading (pipelining). At most one image is open per session, for
//! writing or for reading ([`crate::session`] holds that state). An image not closed complete
//! when the session ends is removed (its chunks are reclaimable by the cleaner). The server's
//! handle ([`Server::sessions`]) lists each session's peer, user, and in its state the client's
//! host, mode and open image.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use qorestor_core::listener::{is_timeout, Conn, Handler, Limits, Refusal, Server};
use qorestor_core::users::Role;
use qorestor_core::Engine;

use crate::auth;
use crate::codec::{self, caps, FailCode, Message, PRE_AUTH_MAX_FRAME, VERSION};
use crate::error::{Error, Result};
use crate::frame_io::{receive, send};
use crate::session::{Busy, Session};

/// How long after its accept a connection may take to authenticate.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Authenticated sessions served at once.
pub const MAX_SESSIONS: usize = 64;
/// What the OST listener admits.
pub const LISTENER_LIMITS: Limits = Limits::with(HANDSHAKE_TIMEOUT, MAX_SESSIONS);
/// How long an authenticated session may wait between requests (a backup application may
/// pause between images).
const IO_TIMEOUT: Duration = Duration::from_secs(600);
/// Pause before a failed authentication is answered (slows guessing).
const AUTH_FAILURE_DELAY: Duration = Duration::from_millis(500);
/// How the server names its peer in errors.
const CLIENT: &str = "the OST client";

/// Starts the OST server on `addr` for `engine`.
pub fn listen(engine: Engine, addr: SocketAddr) -> Result<Server> {
    let io = |op, e| Error::Io { peer: addr.to_string(), op, source: e };
    let listener = TcpListener::bind(addr).map_err(|e| io("listen", e))?;
    serve_listener(engine, listener)
}

/// Serves OST for `engine` on a socket already listening (bound by `qorestor serve`'s supervisor
/// and passed down), as [`listen`] does.
pub fn serve_listener(engine: Engine, listener: TcpListener) -> Result<Server> {
    let peer = match listener.local_addr() {
        Ok(addr) => addr.to_string(),
        Err(_) => "the OST listener".to_string(),
    };
    let handler = OstHandler { engine, busy: Arc::new(Busy::default()) };
    Server::spawn("ost", listener, LISTENER_LIMITS, Arc::new(handler)).map_err(|e| Error::Io {
        peer,
        op: "start the OST server",
        source: e,
    })
}

struct OstHandler {
    engine: Engine,
    busy: Arc<Busy>,
}

impl Handler for OstHandler {
    fn serve(&self, stream: TcpStream, conn: Conn) {
        let peer = conn.peer();
        match serve_connection(&self.engine, &self.busy, stream, &conn) {
            Ok(()) => {}
            Err(_) if conn.timed_out() => {}
            Err(Error::Io { source, .. }) if is_timeout(&source) => {
                eprintln!("ost: connection from {peer} timed out waiting for its next request; closed")
            }
            Err(e) => eprintln!("ost: session from {peer} ended: {e}"),
        }
    }

    fn refuse(&self, mut stream: TcpStream, why: &Refusal) {
        let _ = stream.set_nonblocking(true);
        let m = Message::Failed { code: FailCode::Refused, message: format!("refused: {why}") };
        let _ = send(&mut stream, &m, CLIENT);
    }
}

fn failed(code: FailCode, message: impl Into<String>) -> Message {
    Message::Failed { code, message: message.into() }
}

/// Authenticates the client; returns its user and host, or `None` when it was answered with a
/// refusal (or left).
fn authenticate(engine: &Engine, conn: &mut BufReader<TcpStream>, admitted: &Conn) -> Result<Option<(String, String)>> {
    let mut buf = Vec::new();
    // The client's nonce is signed as part of the Hello frame's bytes.
    let (versions, wanted, user, host) = match receive(conn, &mut buf, PRE_AUTH_MAX_FRAME, CLIENT)? {
        Some(Message::Hello { versions, caps, user, host, .. }) => (versions, caps, user, host),
        Some(other) => {
            send(conn.get_mut(), &failed(FailCode::Protocol, format!("expected Hello, got {}", other.name())), CLIENT)?;
            return Ok(None);
        }
        None => return Ok(None),
    };
    let hello_frame = buf.clone();
    if !versions.contains(&VERSION) {
        let offered: Vec<String> = versions.iter().map(u16::to_string).collect();
        let m =
            format!("this server speaks OST wire version {VERSION}; the client offered only {}", offered.join(", "));
        send(conn.get_mut(), &failed(FailCode::UnsupportedVersion, m), CLIENT)?;
        return Ok(None);
    }
    admitted.set_user(&user);
    let verifier = engine.user_verifier(&user)?;
    let server_nonce = qorestor_core::users::random_nonce()?;
    let challenge = Message::Challenge {
        version: VERSION,
        caps: wanted & caps::ALL,
        nonce: server_nonce,
        salt: verifier.salt,
        memory_kib: verifier.kdf.memory_kib,
        iterations: verifier.kdf.iterations,
        parallelism: verifier.kdf.parallelism,
    };
    let challenge_frame = send(conn.get_mut(), &challenge, CLIENT)?;
    let proof = match receive(conn, &mut buf, PRE_AUTH_MAX_FRAME, CLIENT)? {
        Some(Message::Proof { proof }) => proof,
        Some(other) => {
            send(conn.get_mut(), &failed(FailCode::Protocol, format!("expected Proof, got {}", other.name())), CLIENT)?;
            return Ok(None);
        }
        None => return Ok(None),
    };
    let message = auth::auth_message(&hello_frame, &challenge_frame, &[0; 32]);
    let matches = qorestor_core::users::proof_matches(&verifier.stored_key, &message, &proof);
    let role = match verifier.role {
        Some(role) if matches => role,
        _ => {
            std::thread::sleep(AUTH_FAILURE_DELAY);
            let m = format!("authentication failed for user {user:?} (unknown user or wrong password)");
            send(conn.get_mut(), &failed(FailCode::AuthenticationFailed, m), CLIENT)?;
            return Ok(None);
        }
    };
    if !matches!(role, Role::Ost | Role::Administrator) {
        let m = format!("user {user:?} has role {role}; OST sessions take users with role ost or administrator");
        send(conn.get_mut(), &failed(FailCode::NotPermitted, m), CLIENT)?;
        return Ok(None);
    }
    if let Err(why) = admitted.authenticated(Some(&user), &format!("host={host} idle")) {
        send(conn.get_mut(), &failed(FailCode::Refused, format!("refused: {why}")), CLIENT)?;
        return Ok(None);
    }
    let signature = auth::server_signature(&verifier.server_key, &message);
    send(conn.get_mut(), &Message::Welcome { signature }, CLIENT)?;
    Ok(Some((user, host)))
}

/// Serves one connection until the client closes it.
fn serve_connection(engine: &Engine, busy: &Arc<Busy>, stream: TcpStream, admitted: &Conn) -> Result<()> {
    let io = |e| Error::Io { peer: CLIENT.into(), op: "set up the connection", source: e };
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    admitted.set_state("handshake");
    // Small until authenticated: buffered bytes are part of the pre-authentication budget.
    let mut conn = BufReader::with_capacity(PRE_AUTH_MAX_FRAME, stream);
    let Some((_user, host)) = authenticate(engine, &mut conn, admitted)? else { return Ok(()) };
    conn.get_ref().set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    if conn.buffer().is_empty() {
        conn = BufReader::with_capacity(1 << 20, conn.into_inner());
    }
    let mut session = Session::new(engine.clone(), busy.clone());
    let (mut buf, mut frame) = (Vec::new(), Vec::new());
    let mut state = String::new();
    loop {
        let request = match receive(&mut conn, &mut buf, codec::MAX_FRAME, CLIENT) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e @ (Error::Wire { .. } | Error::Protocol { .. })) => {
                let _ = send(conn.get_mut(), &failed(FailCode::Protocol, e.to_string()), CLIENT);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let sent = match request {
            // Reading changes no state; the bytes go out without being assembled in a frame.
            Message::Read { offset, len } => session.read_to(offset, len, &mut frame, conn.get_mut()),
            request => {
                session.handle_into(request, &mut frame);
                let now = format!("host={host} {}", session.describe());
                if now != state {
                    admitted.set_state(&now);
                    state = now;
                }
                conn.get_mut().write_all(&frame)
            }
        };
        sent.map_err(|e| Error::Io { peer: CLIENT.into(), op: "write", source: e })?;
    }
}
