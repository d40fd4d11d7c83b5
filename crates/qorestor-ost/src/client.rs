//! The client library (the plug-in side): [`OstClient`] connects and authenticates, lists
//! storage units and images, deletes images, creates an [`ImageWriter`] and opens an
//! [`ImageReader`].
//!
//! Requests are pipelined: a request is written at once and its answer read when it is needed
//! (writes and appends are answered `Done`; those answers are read later, a failure surfacing
//! on the next call). Answers come in request order, which [`OstClient`] tracks.

use std::collections::VecDeque;
use std::io::{BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qorestor_core::counted::Counted;
use qorestor_core::users::KdfParams;

use crate::auth;
use crate::codec::{self, caps, FailCode, ImageInfo, LsuInfo, Message, VERSION};
use crate::error::{Error, Result};
use crate::frame_io::{receive, receive_frame};
use crate::reader::ImageReader;
use crate::writer::{ClientMode, ImageSpec, ImageWriter};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the client waits for an answer.
const IO_TIMEOUT: Duration = Duration::from_secs(600);

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `HOST:PORT` of the server.
    pub server: String,
    /// User name.
    pub user: String,
    /// The user's password.
    pub password: Vec<u8>,
    /// This host's name as the server lists it.
    pub host: String,
    /// Wire versions offered (default: this build's, [`VERSION`]).
    pub versions: Vec<u16>,
}

impl ConnectOptions {
    /// Options for `user` at `server` with this build's wire version.
    pub fn new(server: &str, user: &str, password: &[u8]) -> ConnectOptions {
        let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "localhost".into());
        ConnectOptions {
            server: server.into(),
            user: user.into(),
            password: password.to_vec(),
            host,
            versions: vec![VERSION],
        }
    }
}

/// What answer a request sent earlier is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// `Done`.
    Done,
    /// `Missing` (of an optimized batch).
    Missing,
}

/// A session with an OST server.
pub struct OstClient {
    pub(crate) server: String,
    reader: BufReader<Counted<TcpStream>>,
    writer: BufWriter<Counted<TcpStream>>,
    bytes: Arc<AtomicU64>,
    pub(crate) pending: VecDeque<Expect>,
    buf: Vec<u8>,
    caps: u64,
}

fn connect_tcp(server: &str) -> Result<TcpStream> {
    let io = |op, e| Error::Io { peer: server.into(), op, source: e };
    let addrs: Vec<SocketAddr> = server.to_socket_addrs().map_err(|e| io("resolve", e))?.collect();
    let mut last = std::io::Error::other("no address");
    for a in &addrs {
        match TcpStream::connect_timeout(a, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(io("connect", last))
}

impl OstClient {
    /// Connects to `server` (`HOST:PORT`) and authenticates as `user`.
    pub fn connect(server: &str, user: &str, password: &[u8]) -> Result<OstClient> {
        OstClient::connect_with(&ConnectOptions::new(server, user, password))
    }

    /// Connects and authenticates as `opts` says.
    pub fn connect_with(opts: &ConnectOptions) -> Result<OstClient> {
        let tcp = connect_tcp(&opts.server)?;
        let io = |e| Error::Io { peer: opts.server.clone(), op: "set up the connection", source: e };
        tcp.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        tcp.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        tcp.set_nodelay(true).map_err(io)?;
        let bytes = Arc::new(AtomicU64::new(0));
        let read_half = Counted { inner: tcp.try_clone().map_err(io)?, bytes: bytes.clone() };
        let write_half = Counted { inner: tcp, bytes: bytes.clone() };
        let mut client = OstClient {
            server: opts.server.clone(),
            // Small: a frame's bulk is read past it, straight into the frame's buffer.
            reader: BufReader::with_capacity(64 << 10, read_half),
            writer: BufWriter::with_capacity(1 << 20, write_half),
            bytes,
            pending: VecDeque::new(),
            buf: Vec::new(),
            caps: 0,
        };
        client.authenticate(opts)?;
        Ok(client)
    }

    fn authenticate(&mut self, opts: &ConnectOptions) -> Result<()> {
        let nonce = qorestor_core::users::random_nonce()?;
        let hello = Message::Hello {
            versions: opts.versions.clone(),
            caps: caps::ALL,
            user: opts.user.clone(),
            host: opts.host.clone(),
            nonce,
        };
        let hello_frame = codec::encode(&hello);
        self.send(&hello)?;
        let challenge = self.answer()?;
        let Message::Challenge { version, caps, salt, memory_kib, iterations, parallelism, .. } = challenge else {
            return Err(self.unexpected("a challenge", &challenge));
        };
        let challenge_frame = codec::encode(&challenge);
        if !opts.versions.contains(&version) {
            let detail = format!("the server chose wire version {version}, which was not offered");
            return Err(Error::Untrusted { peer: self.server.clone(), detail });
        }
        let kdf = KdfParams { memory_kib, iterations, parallelism };
        let message = auth::auth_message(&hello_frame, &challenge_frame, &[0; 32]);
        let side = auth::client_side(&opts.password, &salt, kdf, &message).map_err(|e| Error::Untrusted {
            peer: self.server.clone(),
            detail: format!("refusing to authenticate: {e}"),
        })?;
        self.send(&Message::Proof { proof: side.proof })?;
        match self.answer()? {
            Message::Welcome { signature } => {
                if !qorestor_core::users::equal_in_constant_time(&signature, &side.expected_signature) {
                    let detail = "the server could not prove it holds the user's keys".to_string();
                    return Err(Error::Untrusted { peer: self.server.clone(), detail });
                }
            }
            other => return Err(self.unexpected("a welcome", &other)),
        }
        self.caps = caps;
        Ok(())
    }

    /// Bytes that crossed the socket so far, both ways.
    pub fn bytes_transferred(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The capabilities the server granted.
    pub fn capabilities(&self) -> u64 {
        self.caps
    }

    /// Writes a request (buffered; flushed before any answer is read).
    pub(crate) fn send(&mut self, m: &Message) -> Result<()> {
        let frame = codec::encode(m);
        self.writer.write_all(&frame).map_err(|e| Error::Io { peer: self.server.clone(), op: "write", source: e })
    }

    /// Reads the next answer (flushing requests first); `Failed` becomes [`Error::Refused`].
    pub(crate) fn answer(&mut self) -> Result<Message> {
        self.flush()?;
        let m = receive(&mut self.reader, &mut self.buf, codec::MAX_FRAME, &self.server)?;
        match m {
            None => {
                Err(Error::Protocol { peer: self.server.clone(), detail: "the server closed the connection".into() })
            }
            Some(Message::Failed { code, message }) => Err(Error::Refused { peer: self.server.clone(), code, message }),
            Some(m) => Ok(m),
        }
    }

    /// Sends the requests written so far.
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.writer.flush().map_err(|e| Error::Io { peer: self.server.clone(), op: "write", source: e })
    }

    /// Reads the next answer, which must be `Data`, into `frame` (the client's receive buffer
    /// and `frame` are swapped: the bytes are not copied); returns the payload's range in it.
    pub(crate) fn answer_data(&mut self, frame: &mut Vec<u8>) -> Result<std::ops::Range<usize>> {
        self.flush()?;
        if !receive_frame(&mut self.reader, &mut self.buf, codec::MAX_FRAME, &self.server)? {
            return Err(Error::Protocol {
                peer: self.server.clone(),
                detail: "the server closed the connection".into(),
            });
        }
        let wire = |e| Error::Wire { peer: self.server.clone(), source: e };
        if let Some(range) = codec::data_payload(&self.buf).map_err(wire)? {
            std::mem::swap(frame, &mut self.buf);
            return Ok(range);
        }
        match codec::decode(&self.buf).map_err(wire)? {
            Message::Failed { code, message } => Err(Error::Refused { peer: self.server.clone(), code, message }),
            other => Err(self.unexpected("data", &other)),
        }
    }

    /// Reads the answers of requests sent earlier up to and including the oldest one that
    /// expects `Missing`, returning that one (or `None` when only `Done`s were pending).
    pub(crate) fn settle_one(&mut self) -> Result<Option<Vec<bool>>> {
        while let Some(expect) = self.pending.pop_front() {
            let a = self.answer()?;
            match (expect, a) {
                (Expect::Done, Message::Done) => {}
                (Expect::Missing, Message::Missing(bits)) => return Ok(Some(bits)),
                (_, other) => {
                    return Err(self.unexpected(if expect == Expect::Done { "done" } else { "missing" }, &other))
                }
            }
        }
        Ok(None)
    }

    /// Reads every pending answer (each must be `Done`).
    pub(crate) fn settle(&mut self) -> Result<()> {
        while !self.pending.is_empty() {
            if self.settle_one()?.is_some() {
                let detail = "an answer to a batch nobody waits for".to_string();
                return Err(Error::Protocol { peer: self.server.clone(), detail });
            }
        }
        Ok(())
    }

    pub(crate) fn unexpected(&self, wanted: &str, got: &Message) -> Error {
        Error::Protocol { peer: self.server.clone(), detail: format!("expected {wanted}, got {}", got.name()) }
    }

    /// Sends a request and reads its answer, after every pending one.
    pub(crate) fn call(&mut self, m: &Message) -> Result<Message> {
        self.settle()?;
        self.send(m)?;
        self.answer()
    }

    fn call_done(&mut self, m: &Message) -> Result<()> {
        match self.call(m)? {
            Message::Done => Ok(()),
            other => Err(self.unexpected("done", &other)),
        }
    }

    /// The storage units.
    pub fn lsus(&mut self) -> Result<Vec<LsuInfo>> {
        match self.call(&Message::ListLsus)? {
            Message::Lsus(l) => Ok(l),
            other => Err(self.unexpected("storage units", &other)),
        }
    }

    /// The images of a storage unit.
    pub fn images(&mut self, lsu: &str) -> Result<Vec<ImageInfo>> {
        match self.call(&Message::List { lsu: lsu.into() })? {
            Message::Images(l) => Ok(l),
            other => Err(self.unexpected("images", &other)),
        }
    }

    /// One image.
    pub fn image(&mut self, lsu: &str, name: &str) -> Result<ImageInfo> {
        match self.call(&Message::Info { lsu: lsu.into(), name: name.into() })? {
            Message::Image(i) => Ok(i),
            other => Err(self.unexpected("an image", &other)),
        }
    }

    /// Deletes an image (refused with [`FailCode::Busy`] while it is written or read).
    pub fn delete(&mut self, lsu: &str, name: &str) -> Result<()> {
        self.call_done(&Message::Delete { lsu: lsu.into(), name: name.into() })
    }

    /// Creates image `name` in `lsu` and returns its writer. `mode` `auto` writes optimized
    /// where the storage unit allows it, else passthrough; `dedupe` fails where it does not.
    pub fn create(&mut self, lsu: &str, name: &str, spec: &ImageSpec, mode: ClientMode) -> Result<ImageWriter<'_>> {
        ImageWriter::create(self, lsu, name, spec, mode)
    }

    /// Opens an image for reading.
    pub fn open(&mut self, lsu: &str, name: &str) -> Result<ImageReader<'_>> {
        match self.call(&Message::Open { lsu: lsu.into(), name: name.into() })? {
            Message::Opened(info) => Ok(ImageReader::new(self, info)),
            other => Err(self.unexpected("the opened image", &other)),
        }
    }

    /// Whether `e` is the server's refusal with `code`.
    pub fn is_refusal(e: &Error, code: FailCode) -> bool {
        e.fail_code() == Some(code)
    }

    /// Ends the session (the server drops anything still open).
    pub fn close(mut self) -> Result<()> {
        self.settle()?;
        self.writer.flush().map_err(|e| Error::Io { peer: self.server.clone(), op: "write", source: e })?;
        let _ = self.writer.get_ref().inner.shutdown(std::net::Shutdown::Both);
        Ok(())
    }
}
