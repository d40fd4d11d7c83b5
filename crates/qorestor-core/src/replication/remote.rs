//! Replication over TCP: the source's client ([`RemoteReplica`]) and the target's listener
//! ([`listen`], run by `qorestor serve --replication-listen`; admission as in
//! [`LISTENER_LIMITS`]: before `Welcome` a connection may send frames of at most
//! [`PRE_AUTH_MAX_FRAME`] bytes and must authenticate within [`HANDSHAKE_TIMEOUT`]).
//!
//! The session: the source sends `Hello` (version, nonce); the target answers `Challenge`
//! (the salt of its replication password's key, its nonce); the source proves it knows the
//! password with `Auth` (keyed BLAKE3 over both nonces under the Argon2id-derived key) and the
//! target proves it too with `Welcome`. Then the source drives a [`LocalReplica`] on the target
//! one request at a time (`Prepare`, `ListStreams`, `Begin`, `Missing`/`Store` per batch, `End`,
//! `Delete`); each gets `Done`, its answer, or `Failed` with the reason. Records arrive as
//! stored (compressed, sealed if the group is encrypted) and the target checks each one
//! (header, fingerprint, checksum) before storing it. With `--encryption aes128|aes256` the
//! connection is TLS 1.3 ([`super::tls`]) and the proofs are bound to the TLS session; without
//! it, data of unencrypted groups is visible on the network (sealed groups stay sealed).

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::local::LocalReplica;
use super::tls::{self, Transport, WireEncryption};
use super::wire::{self, Message};
use super::ReplicaTarget;
use super::SOURCE;
use crate::catalog::{ContainerRecord, GroupRecord};
use crate::crypto::{hex, random, unhex, Passphrase};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::listener::{is_timeout, Conn, Handler, Limits, Refusal, Server};
use crate::recipe::ImageMeta;

/// Engine state key of the listener's password key.
const SECRET_KEY: &str = "replication/listener";
/// Argon2id costs of the password's key (fixed: the source derives the same key).
const KDF_MEMORY_KIB: u32 = crate::crypto::DEFAULT_KDF_MEMORY_KIB;
const KDF_ITERATIONS: u32 = crate::crypto::DEFAULT_KDF_ITERATIONS;
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long either side waits for the other's next frame (a target may make a large batch
/// durable before it answers).
const IO_TIMEOUT: Duration = Duration::from_secs(600);
/// How long after its accept a connection may take to authenticate (an idle or slow
/// unauthenticated connection does not hold a slot for long).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest frame a listener accepts before `Welcome` (`Hello` and `Auth` are under 80 bytes).
pub const PRE_AUTH_MAX_FRAME: usize = 4096;
/// Authenticated sessions a listener serves at once; more are refused.
const MAX_SESSIONS: usize = 16;
/// Pause before a wrong password is answered (slows guessing).
const WRONG_PASSWORD_DELAY: Duration = Duration::from_secs(1);

/// The listener's salt and password key.
type ListenerKey = ([u8; 16], Zeroizing<[u8; 32]>);

/// The listener's password key, kept in its catalog.
#[derive(Serialize, Deserialize)]
struct ListenerSecret {
    /// Salt, hex (16 bytes).
    salt: String,
    /// Argon2id(password, salt), hex (32 bytes).
    key: String,
}

fn derive_key(password: &[u8], salt: &[u8; 16]) -> Result<Zeroizing<[u8; 32]>> {
    let params = argon2::Params::new(KDF_MEMORY_KIB, KDF_ITERATIONS, 1, Some(32))
        .map_err(|e| Error::internal(format!("replication key derivation: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(password, salt, key.as_mut())
        .map_err(|e| Error::internal(format!("replication key derivation: {e}")))?;
    Ok(key)
}

/// The proof of one side: keyed BLAKE3 over a label, both nonces (the prover's peer's first)
/// and the TLS channel binding (zeros on plain TCP).
fn proof(key: &[u8; 32], label: &[u8], first: &[u8; 32], second: &[u8; 32], binding: &[u8; 32]) -> blake3::Hash {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(label).update(first).update(second).update(binding);
    h.finalize()
}

fn unhex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    unhex(s)?.try_into().ok()
}

impl Engine {
    /// Sets the password that replication sources must give to send to this data directory
    /// (through `qorestor serve --replication-listen`). Only a derived key is stored.
    pub fn set_replication_password(&self, password: &Passphrase) -> Result<()> {
        let salt = random::<16>()?;
        let key = derive_key(password.as_bytes(), &salt)?;
        self.catalog().put_meta(SECRET_KEY, &ListenerSecret { salt: hex(&salt), key: hex(key.as_ref()) })
    }

    /// Whether a replication password is set (without one the listener refuses every source).
    pub fn replication_password_set(&self) -> Result<bool> {
        Ok(self.catalog().meta::<ListenerSecret>(SECRET_KEY)?.is_some())
    }

    fn listener_secret(&self) -> Result<Option<ListenerKey>> {
        let Some(s) = self.catalog().meta::<ListenerSecret>(SECRET_KEY)? else { return Ok(None) };
        let damaged = || Error::damaged("replication password record", "bad hex; set the password again");
        let salt = unhex_array::<16>(&s.salt).ok_or_else(damaged)?;
        let key = Zeroizing::new(unhex_array::<32>(&s.key).ok_or_else(damaged)?);
        Ok(Some((salt, key)))
    }
}

/// Writes one message.
fn send(w: &mut impl Write, m: &Message) -> std::io::Result<()> {
    write_frame(w, &wire::encode(m))
}

/// Writes one encoded frame and pushes it out.
fn write_frame(w: &mut impl Write, frame: &[u8]) -> std::io::Result<()> {
    w.write_all(frame)?;
    w.flush()
}

/// Reads one message (`None` at a clean end of the stream) of at most `max` bytes through `buf`,
/// whose allocation is reused from one frame to the next (a `Store` is up to 16 MiB). The
/// buffer grows as the frame's bytes arrive, never by the announced length up front. Errors
/// name `peer`.
fn receive(r: &mut impl Read, buf: &mut Vec<u8>, peer: &str, max: usize) -> Result<Option<Message>> {
    let mut head = [0u8; 4];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(Error::io("read from", peer, e)),
    }
    let len = wire::frame_len(head).map_err(|e| Error::protocol(peer, e.to_string()))?;
    if len > max {
        return Err(Error::protocol(peer, format!("a frame of {len} bytes before authentication (at most {max})")));
    }
    buf.clear();
    buf.extend_from_slice(&head);
    let read = r.take((len - 4) as u64).read_to_end(buf);
    let read = read.and_then(|n| match n == len - 4 {
        true => Ok(()),
        false => Err(std::io::ErrorKind::UnexpectedEof.into()),
    });
    read.map_err(|e| Error::io("read from", peer, e))?;
    let m = wire::decode(buf).map_err(|e| Error::protocol(peer, e.to_string()))?;
    Ok(Some(m))
}

/// A replica on another qorestor, reached through its replication listener.
pub(crate) struct RemoteReplica {
    target: String,
    /// Reads are buffered; a frame is written whole, straight through.
    conn: BufReader<Box<dyn Transport>>,
    /// Bytes that crossed the socket both ways (TLS included).
    bytes: Arc<AtomicU64>,
    /// `Store` requests sent whose answer has not been read yet (see [`RemoteReplica::store`]).
    unanswered: usize,
    /// The last `Store` frame's buffer, reused for the next.
    frame: Vec<u8>,
}

/// Resolves `target` (`HOST:PORT`) and connects to the first of its addresses that answers.
fn connect_tcp(target: &str) -> Result<TcpStream> {
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .map_err(|e| Error::invalid("replication target", target, format!("cannot resolve it: {e}")))?
        .collect();
    let mut last = None;
    let stream = addrs.iter().find_map(|a| match TcpStream::connect_timeout(a, CONNECT_TIMEOUT) {
        Ok(s) => Some(s),
        Err(e) => {
            last = Some(e);
            None
        }
    });
    stream.ok_or_else(|| {
        let e = last.unwrap_or_else(|| std::io::Error::other("no address"));
        Error::remote(target, format!("cannot connect: {e}"))
    })
}

/// Checks that the replication target `target` (`HOST:PORT`) answers and accepts `password`
/// (each side proves it knows it, as a replication pass begins). `Ok(None)` when the target
/// accepted; `Ok(Some(why))` when it could not be checked (it cannot be resolved or does not
/// answer); an error when it answered and refused (a wrong password, none set there, or a
/// different wire encryption).
pub fn check_target(target: &str, encryption: WireEncryption, password: &Passphrase) -> Result<Option<String>> {
    let stream = match connect_tcp(target) {
        Ok(s) => s,
        Err(e) => return Ok(Some(e.to_string())),
    };
    RemoteReplica::over(stream, target, password.as_bytes(), encryption).map(|_| None)
}

impl RemoteReplica {
    /// Connects to `target` (`HOST:PORT`), over TLS unless `enc` is `None`, and authenticates
    /// with `password`.
    pub(crate) fn connect(target: &str, password: Option<&[u8]>, enc: WireEncryption) -> Result<RemoteReplica> {
        let password = password.ok_or_else(|| {
            Error::invalid("replication target", target, "a HOST:PORT target needs the target's replication password")
        })?;
        let stream = connect_tcp(target)?;
        RemoteReplica::over(stream, target, password, enc)
    }

    /// Sets up the session on a connected `stream` and authenticates with `password`.
    fn over(stream: TcpStream, target: &str, password: &[u8], enc: WireEncryption) -> Result<RemoteReplica> {
        let io = |e| Error::remote(target, format!("cannot set up the connection: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let bytes = Arc::new(AtomicU64::new(0));
        let counted = tls::Counted { inner: stream, bytes: bytes.clone() };
        let transport: Box<dyn Transport> =
            if enc == WireEncryption::None { Box::new(counted) } else { Box::new(tls::client(counted, enc)?) };
        let mut r = RemoteReplica {
            target: target.into(),
            conn: BufReader::with_capacity(1 << 16, transport),
            bytes,
            unanswered: 0,
            frame: Vec::new(),
        };
        r.handshake(password)?;
        Ok(r)
    }

    fn handshake(&mut self, password: &[u8]) -> Result<()> {
        let ours = random::<32>()?;
        let Message::Challenge { salt, nonce: theirs } =
            self.call(&Message::Hello { version: wire::VERSION, nonce: ours })?
        else {
            return Err(self.unexpected("a challenge"));
        };
        let key = derive_key(password, &salt)?;
        let binding = self.conn.get_ref().channel_binding()?;
        let mac = *proof(&key, b"client", &theirs, &ours, &binding).as_bytes();
        let Message::Welcome { mac: back } = self.call(&Message::Auth { mac })? else {
            return Err(self.unexpected("a welcome"));
        };
        // blake3::Hash compares in constant time.
        if proof(&key, b"target", &ours, &theirs, &binding) != blake3::Hash::from_bytes(back) {
            return Err(Error::remote(&self.target, "it could not prove it knows the replication password"));
        }
        Ok(())
    }

    /// Sends a request and reads its answer; `Failed` becomes an error naming the target.
    ///
    /// The answers of stores sent before are read first. A `Missing` request goes out before
    /// them, so that the next batch's question travels while the target stores the last one;
    /// any other request only once every store before it succeeded.
    fn call(&mut self, m: &Message) -> Result<Message> {
        let pipelined = matches!(m, Message::Missing(_));
        if !pipelined {
            self.settle()?;
        }
        send(self.conn.get_mut(), m).map_err(|e| self.lost("write to", e))?;
        self.settle()?;
        self.answer()
    }

    /// Reads the next answer; `Failed` becomes an error naming the target.
    fn answer(&mut self) -> Result<Message> {
        let peer = format!("replication target {}", self.target);
        let answer = match receive(&mut self.conn, &mut Vec::new(), &peer, wire::MAX_FRAME) {
            Ok(a) => a.ok_or_else(|| Error::remote(&self.target, "it closed the connection"))?,
            Err(Error::Io { source, .. }) => return Err(self.lost("read from", source)),
            Err(e) => return Err(e),
        };
        match answer {
            Message::Failed { message } => Err(Error::remote(&self.target, message)),
            a => Ok(a),
        }
    }

    /// Reads the answers of the stores sent so far: each must be `Done`.
    fn settle(&mut self) -> Result<()> {
        while self.unanswered > 0 {
            self.unanswered -= 1;
            if !matches!(self.answer()?, Message::Done) {
                return Err(self.unexpected("done"));
            }
        }
        Ok(())
    }

    /// A failed read or write on the connection: the target (or the network to it) failed.
    fn lost(&self, op: &str, e: std::io::Error) -> Error {
        Error::remote(&self.target, format!("cannot {op} it: {e}"))
    }

    fn unexpected(&self, what: &str) -> Error {
        Error::protocol(format!("replication target {}", self.target), format!("expected {what}"))
    }

    fn call_done(&mut self, m: &Message) -> Result<()> {
        match self.call(m)? {
            Message::Done => Ok(()),
            _ => Err(self.unexpected("done")),
        }
    }
}

impl ReplicaTarget for RemoteReplica {
    fn prepare(&mut self, group: &GroupRecord, container: &ContainerRecord, origin: &str) -> Result<()> {
        let json = |v: serde_json::Result<String>| {
            v.map_err(|e| Error::internal(format!("cannot encode a catalog record for replication: {e}")))
        };
        let (group, container) = (json(serde_json::to_string(group))?, json(serde_json::to_string(container))?);
        self.call_done(&Message::Prepare { group, container, origin: origin.into() })
    }

    fn stream_names(&mut self) -> Result<Vec<String>> {
        match self.call(&Message::ListStreams)? {
            Message::Names(n) => Ok(n),
            _ => Err(self.unexpected("stream names")),
        }
    }

    fn begin_stream(&mut self, name: &str, created: u64, image: Option<&ImageMeta>) -> Result<()> {
        let name = name.to_string();
        self.call_done(&match image {
            Some(image) => Message::BeginImage { created, name, image: image.clone() },
            None => Message::Begin { created, name },
        })
    }

    fn missing(&mut self, entries: &[(Fingerprint, u32)]) -> Result<Vec<bool>> {
        match self.call(&Message::Missing(entries.to_vec()))? {
            Message::Wanted(w) => Ok(w),
            _ => Err(self.unexpected("the missing chunks")),
        }
    }

    /// Sends the records without waiting for the target to store them: its answer is read
    /// with the next request's (a failure fails that request, and nothing after it commits).
    fn store(&mut self, records: &[&[u8]]) -> Result<()> {
        wire::encode_store_into(records, &mut self.frame);
        // The frame's length field counts all but itself and the 4-byte checksum.
        if self.frame.len() - 8 > wire::MAX_FRAME {
            return Err(Error::internal(format!(
                "replication: a batch of {} chunk records ({} bytes) is over the protocol's frame limit",
                records.len(),
                self.frame.len()
            )));
        }
        write_frame(self.conn.get_mut(), &self.frame).map_err(|e| self.lost("write to", e))?;
        self.unanswered += 1;
        Ok(())
    }

    fn end_stream(&mut self) -> Result<u64> {
        match self.call(&Message::End)? {
            Message::Ended { logical_len } => Ok(logical_len),
            _ => Err(self.unexpected("the end of the stream")),
        }
    }

    fn delete_stream(&mut self, name: &str) -> Result<()> {
        self.call_done(&Message::Delete { name: name.into() })
    }

    fn bytes_sent(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// What a replication listener admits: unauthenticated connections (before `Welcome`) per
/// peer address and in all, the time one has to authenticate, and the sessions served at once.
pub const LISTENER_LIMITS: Limits = Limits::with(HANDSHAKE_TIMEOUT, MAX_SESSIONS);

/// Starts the replication listener on `addr` for `engine`. Each connection is served on its
/// own thread, admitted as [`LISTENER_LIMITS`] says (more are refused with a `Failed` frame).
pub fn listen(engine: Engine, addr: SocketAddr) -> Result<Server> {
    let listener = TcpListener::bind(addr).map_err(|e| Error::io("listen on", addr.to_string(), e))?;
    serve_listener(engine, listener)
}

/// Serves replication for `engine` on a socket already listening (bound by `qorestor serve`'s
/// supervisor and passed down), as [`listen`] does.
pub fn serve_listener(engine: Engine, listener: TcpListener) -> Result<Server> {
    let addr = listener.local_addr().map_err(|e| Error::io("inspect", "the replication listener", e))?;
    Server::spawn("replication", listener, LISTENER_LIMITS, Arc::new(Listener { engine }))
        .map_err(|e| Error::io("start", format!("the replication listener on {addr}"), e))
}

/// The listener's connection handler.
struct Listener {
    engine: Engine,
}

impl Handler for Listener {
    fn serve(&self, stream: TcpStream, conn: Conn) {
        let peer = conn.peer();
        match serve_session(&self.engine, stream, &conn) {
            Ok(()) => {}
            // The watchdog logged it.
            Err(_) if conn.timed_out() => {}
            Err(Error::Io { source, .. }) if is_timeout(&source) => {
                eprintln!("replication: connection from {peer} timed out waiting for its next frame; closed")
            }
            Err(e) => eprintln!("replication: session from {peer} ended: {e}"),
        }
    }

    fn refuse(&self, mut stream: TcpStream, why: &Refusal) {
        // The accept thread must not wait: a frame this small fits the empty socket buffer.
        let _ = stream.set_nonblocking(true);
        let _ = send(&mut stream, &Message::Failed { message: format!("refused: {why}") });
    }
}

/// Serves one source's session until it closes the connection.
fn serve_session(engine: &Engine, conn: TcpStream, admitted: &Conn) -> Result<()> {
    let io = |e| Error::io("set up", "a replication session", e);
    let socket = conn.try_clone().map_err(io)?;
    conn.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(io)?;
    conn.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    conn.set_nodelay(true).map_err(io)?;
    admitted.set_state("handshake");
    let mut first = [0u8; 1];
    conn.peek(&mut first).map_err(|e| Error::io("read from", SOURCE, e))?;
    let transport: Box<dyn Transport> =
        if first[0] == tls::TLS_HANDSHAKE_BYTE { Box::new(tls::server(engine, conn)?) } else { Box::new(conn) };
    // Small until the source has authenticated: buffered bytes are part of its budget.
    let mut conn = BufReader::with_capacity(PRE_AUTH_MAX_FRAME, transport);
    let reply = |c: &mut BufReader<Box<dyn Transport>>, m: &Message| {
        send(c.get_mut(), m).map_err(|e| Error::io("write to", "the replication source", e))
    };
    let failed = |message: String| Message::Failed { message };
    // Authentication.
    let mut buf = Vec::new();
    let (version, theirs) = match receive(&mut conn, &mut buf, SOURCE, PRE_AUTH_MAX_FRAME)? {
        Some(Message::Hello { version, nonce }) => (version, nonce),
        Some(other) => return reply(&mut conn, &failed(format!("expected Hello, got {}", other.name()))),
        None => return Ok(()),
    };
    let binding = conn.get_ref().channel_binding()?;
    if version != wire::VERSION {
        let m = format!("protocol version {version} is not served (this target speaks {})", wire::VERSION);
        return reply(&mut conn, &failed(m));
    }
    let Some((salt, key)) = engine.listener_secret()? else {
        let m = "no replication password is set on the target (run qorestor replication set-password there; \
                 no restart needed)"
            .to_string();
        return reply(&mut conn, &failed(m));
    };
    let ours = random::<32>()?;
    reply(&mut conn, &Message::Challenge { salt, nonce: ours })?;
    let mac = match receive(&mut conn, &mut buf, SOURCE, PRE_AUTH_MAX_FRAME)? {
        Some(Message::Auth { mac }) => mac,
        Some(other) => return reply(&mut conn, &failed(format!("expected Auth, got {}", other.name()))),
        None => return Ok(()),
    };
    if proof(&key, b"client", &ours, &theirs, &binding) != blake3::Hash::from_bytes(mac) {
        std::thread::sleep(WRONG_PASSWORD_DELAY);
        return reply(&mut conn, &failed("wrong replication password".into()));
    }
    if let Err(why) = admitted.authenticated(None, "authenticated") {
        return reply(&mut conn, &failed(format!("refused: {why}")));
    }
    reply(&mut conn, &Message::Welcome { mac: *proof(&key, b"target", &theirs, &ours, &binding).as_bytes() })?;
    // Requests: an authenticated source may take its time between them, and gets a larger
    // read buffer (the source sends nothing between Auth and Welcome, so none is buffered).
    socket.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    if conn.buffer().is_empty() {
        conn = BufReader::with_capacity(1 << 20, conn.into_inner());
    }
    let mut replica = LocalReplica::on(engine.clone());
    while let Some(request) = receive(&mut conn, &mut buf, SOURCE, wire::MAX_FRAME)? {
        if let Message::Prepare { origin, .. } = &request {
            admitted.set_user(origin);
            admitted.set_state("replicating");
        }
        let answer = answer(&mut replica, request).unwrap_or_else(|e| failed(e.to_string()));
        reply(&mut conn, &answer)?;
    }
    Ok(())
}

/// Carries out one request on the replica.
fn answer(replica: &mut LocalReplica, request: Message) -> Result<Message> {
    let bad = |what: &str, e: serde_json::Error| Error::invalid("replicated record", what.to_string(), e.to_string());
    Ok(match request {
        Message::Prepare { group, container, origin } => {
            let g: GroupRecord = serde_json::from_str(&group).map_err(|e| bad("storage group", e))?;
            let c: ContainerRecord = serde_json::from_str(&container).map_err(|e| bad("container", e))?;
            replica.prepare(&g, &c, &origin)?;
            Message::Done
        }
        Message::ListStreams => Message::Names(replica.stream_names()?),
        Message::Begin { created, name } => {
            replica.begin_stream(&name, created, None)?;
            Message::Done
        }
        Message::BeginImage { created, name, image } => {
            replica.begin_stream(&name, created, Some(&image))?;
            Message::Done
        }
        Message::Missing(entries) => Message::Wanted(replica.missing(&entries)?),
        Message::Store(records) => {
            let refs: Vec<&[u8]> = records.iter().map(|r| r.as_slice()).collect();
            replica.store(&refs)?;
            Message::Done
        }
        Message::End => Message::Ended { logical_len: replica.end_stream()? },
        Message::Delete { name } => {
            replica.delete_stream(&name)?;
            Message::Done
        }
        other => {
            return Err(Error::protocol(SOURCE, format!("unexpected {} in an authenticated session", other.name())))
        }
    })
}
