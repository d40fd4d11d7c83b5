//! A minimal blocking DMA: enough of the client side of NDMP v4 to drive this server from
//! tests and tools (log in, open a tape, back a byte stream up through the mover and read it
//! back). Not a general NDMP client: replies are returned as raw bodies.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::message::{code, mover_mode, Header, MESSAGE_REQUEST};
use crate::mover::state;
use crate::record::{decode_record, MAX_RECORD};
use crate::reply::frame;
use crate::request::{decode_addr, Addr};
use crate::xdr::{Decoder, Encoder};

/// How long a read waits for the server before failing (only bounds a hang).
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// NOTIFY_CONNECTION_STATUS reason CONNECTED.
const CONNECTED: u32 = 0;

/// A control connection to an NDMP server.
pub struct Client {
    stream: TcpStream,
    sequence: u32,
    buf: Vec<u8>,
    posts: Vec<(u32, Vec<u8>)>,
}

fn bad(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// A reply: the header error and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Header error.
    pub header_error: u32,
    /// Body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body's first word: the NDMP error of most replies (TAPE_GET_STATE's is second).
    pub fn error(&self) -> u32 {
        Decoder::new(&self.body).u32("error").unwrap_or(u32::MAX)
    }
}

impl Client {
    /// Connects and reads the server's NOTIFY_CONNECTION_STATUS.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<Client> {
        Client::on(TcpStream::connect(addr)?)
    }

    /// Reads the server's NOTIFY_CONNECTION_STATUS on a connected socket. A status other than
    /// CONNECTED (such as REFUSED) is an error of kind `ConnectionRefused` carrying its text.
    pub fn on(stream: TcpStream) -> io::Result<Client> {
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        let mut c = Client { stream, sequence: 0, buf: Vec::new(), posts: Vec::new() };
        let (h, body) = c.read_message()?;
        if h.message_code != code::NOTIFY_CONNECTION_STATUS {
            return Err(bad(format!("expected NOTIFY_CONNECTION_STATUS, got {:#x}", h.message_code)));
        }
        let d = &mut Decoder::new(&body);
        let reason = d.u32("reason").map_err(bad)?;
        if reason != CONNECTED {
            d.u32("protocol_version").map_err(bad)?;
            let text = d.string("text_reason", 4096).unwrap_or_default();
            let why = format!("the server refused the connection (status {reason}): {text}");
            return Err(io::Error::new(io::ErrorKind::ConnectionRefused, why));
        }
        Ok(c)
    }

    fn read_message(&mut self) -> io::Result<(Header, Vec<u8>)> {
        let mut chunk = [0u8; 65536];
        loop {
            if let Some((rec, used)) = decode_record(&self.buf, MAX_RECORD).map_err(bad)? {
                self.buf.drain(..used);
                let d = &mut Decoder::new(&rec);
                let h = Header::decode(d).map_err(bad)?;
                let body = rec[rec.len() - d.remaining()..].to_vec();
                return Ok((h, body));
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends raw bytes (for tests of malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a request without waiting; returns its sequence number.
    pub fn send(&mut self, message_code: u32, body: &[u8]) -> io::Result<u32> {
        self.sequence += 1;
        let h = Header {
            sequence: self.sequence,
            time_stamp: 0,
            message_type: MESSAGE_REQUEST,
            message_code,
            reply_sequence: 0,
            error: 0,
        };
        self.stream.write_all(&frame(&h, body))?;
        Ok(self.sequence)
    }

    /// Waits for the reply to request `sequence`, keeping posts that arrive meanwhile.
    pub fn answer(&mut self, sequence: u32) -> io::Result<Answer> {
        loop {
            let (h, body) = self.read_message()?;
            if h.message_type == MESSAGE_REQUEST {
                self.posts.push((h.message_code, body));
            } else if h.reply_sequence == sequence {
                return Ok(Answer { header_error: h.error, body });
            }
        }
    }

    /// Sends a request and waits for its reply.
    pub fn call(&mut self, message_code: u32, body: &[u8]) -> io::Result<Answer> {
        let seq = self.send(message_code, body)?;
        self.answer(seq)
    }

    /// Calls and checks that the reply's error is NO_ERR.
    pub fn call_ok(&mut self, message_code: u32, body: &[u8]) -> io::Result<Answer> {
        let a = self.call(message_code, body)?;
        if a.header_error != 0 || a.error() != 0 {
            return Err(bad(format!("message {message_code:#x}: error {} / {}", a.header_error, a.error())));
        }
        Ok(a)
    }

    /// Waits for a post with `message_code` (one already received counts); returns its body.
    pub fn wait_post(&mut self, message_code: u32, timeout: Duration) -> io::Result<Vec<u8>> {
        self.wait_any_post(&[message_code], timeout).map(|(_, body)| body)
    }

    /// Waits for a post with one of `codes` (one already received counts), reading the
    /// connection until it comes or `timeout` has passed; returns its code and body.
    pub fn wait_any_post(&mut self, codes: &[u32], timeout: Duration) -> io::Result<(u32, Vec<u8>)> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(i) = self.posts.iter().position(|(c, _)| codes.contains(c)) {
                return Ok(self.posts.remove(i));
            }
            let left = end.saturating_duration_since(Instant::now());
            let timed_out = || io::Error::new(io::ErrorKind::TimedOut, format!("no post {codes:#x?} in {timeout:?}"));
            if left.is_zero() {
                return Err(timed_out());
            }
            self.stream.set_read_timeout(Some(left))?;
            let message = self.read_message();
            self.stream.set_read_timeout(Some(READ_TIMEOUT))?;
            let (h, body) = match message {
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(timed_out())
                }
                other => other?,
            };
            // A reply here answers nothing pending: dropped.
            if h.message_type == MESSAGE_REQUEST {
                self.posts.push((h.message_code, body));
            }
        }
    }

    /// Goes away as a DMA does at the end of a session: closes the sending half of the
    /// connection and reads (dropping posts) until the server closes it, which it does once
    /// the session has ended: its mover halted and its devices free.
    pub fn hang_up(mut self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)?;
        let mut chunk = [0u8; 4096];
        while self.stream.read(&mut chunk)? > 0 {}
        Ok(())
    }

    /// CONNECT_OPEN (version 4) and CONNECT_CLIENT_AUTH with a clear-text password.
    pub fn login(&mut self, user: &str, password: &str) -> io::Result<Answer> {
        self.login_version(4, user, password)
    }

    /// CONNECT_OPEN with `version` and CONNECT_CLIENT_AUTH with a clear-text password.
    pub fn login_version(&mut self, version: u16, user: &str, password: &str) -> io::Result<Answer> {
        self.call_ok(code::CONNECT_OPEN, Encoder::new().u32(version as u32).as_bytes())?;
        self.call(code::CONNECT_CLIENT_AUTH, Encoder::new().u32(1).string(user).string(password).as_bytes())
    }

    /// TAPE_OPEN.
    pub fn tape_open(&mut self, device: &str, mode: u32) -> io::Result<Answer> {
        self.call(code::TAPE_OPEN, Encoder::new().string(device).u32(mode).as_bytes())
    }

    /// TAPE_MTIO; returns the reply (error, residual count).
    pub fn mtio(&mut self, op: u32, count: u32) -> io::Result<Answer> {
        self.call(code::TAPE_MTIO, Encoder::new().u32(op).u32(count).as_bytes())
    }

    /// The mover state (MOVER_GET_STATE's `state`).
    pub fn mover_state(&mut self) -> io::Result<u32> {
        let a = self.call_ok(code::MOVER_GET_STATE, &[])?;
        let d = &mut Decoder::new(&a.body);
        d.u32("error").map_err(bad)?;
        d.u32("mode").map_err(bad)?;
        d.u32("state").map_err(bad)
    }

    /// MOVER_LISTEN (TCP) in `mode`; returns the address to connect to.
    pub fn mover_listen(&mut self, mode: u32) -> io::Result<SocketAddr> {
        let a = self.call_ok(code::MOVER_LISTEN, Encoder::new().u32(mode).u32(1).as_bytes())?;
        let d = &mut Decoder::new(&a.body);
        d.u32("error").map_err(bad)?;
        match decode_addr(4, d).map_err(bad)? {
            Addr::Tcp(v) if !v.is_empty() => Ok(SocketAddr::from((Ipv4Addr::from(v[0].ip), v[0].port))),
            other => Err(bad(format!("MOVER_LISTEN answered {other:?}"))),
        }
    }

    /// Backs `data` up onto the open tape at its position through the mover in records of
    /// `record_size`, then writes a filemark: what a DMA does for one backup image.
    pub fn backup(&mut self, data: &[u8], record_size: u32) -> io::Result<()> {
        self.call_ok(code::MOVER_SET_RECORD_SIZE, Encoder::new().u32(record_size).as_bytes())?;
        self.call_ok(code::MOVER_SET_WINDOW, Encoder::new().u64(0).u64(u64::MAX).as_bytes())?;
        let addr = self.mover_listen(mover_mode::READ)?;
        let mut data_conn = TcpStream::connect(addr)?;
        data_conn.write_all(data)?;
        drop(data_conn);
        self.wait_post(code::NOTIFY_MOVER_HALTED, READ_TIMEOUT)?;
        self.call_ok(code::MOVER_STOP, &[])?;
        self.mtio(crate::tape::mtio::EOF, 1)?;
        Ok(())
    }

    /// Reads the tape file at the open tape's position back through the mover (MOVER_READ
    /// of everything, until the filemark pauses the mover).
    pub fn restore(&mut self, record_size: u32) -> io::Result<Vec<u8>> {
        self.call_ok(code::MOVER_SET_RECORD_SIZE, Encoder::new().u32(record_size).as_bytes())?;
        self.call_ok(code::MOVER_SET_WINDOW, Encoder::new().u64(0).u64(u64::MAX).as_bytes())?;
        let addr = self.mover_listen(mover_mode::WRITE)?;
        let mut data_conn = TcpStream::connect(addr)?;
        // NDMP has no notification for the mover taking the data connection: ask until it has.
        let end = Instant::now() + READ_TIMEOUT;
        while self.mover_state()? == state::LISTEN {
            if Instant::now() > end {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "the mover never took the data connection"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.call_ok(code::MOVER_READ, Encoder::new().u64(0).u64(u64::MAX).as_bytes())?;
        self.wait_post(code::NOTIFY_MOVER_PAUSED, READ_TIMEOUT)?;
        self.call_ok(code::MOVER_CLOSE, &[])?;
        let mut out = Vec::new();
        data_conn.read_to_end(&mut out)?;
        self.call_ok(code::MOVER_STOP, &[])?;
        Ok(out)
    }
}
