//! The TCP server: one thread accepts control connections, one thread per connection reads
//! records, decodes them and runs the [`Session`]; replies and notifications are written under
//! one lock so they never interleave. At most [`MAX_SESSIONS`] connections are served at once
//! (more are refused with NOTIFY_CONNECTION_STATUS REFUSED), and a connection that has not
//! authenticated within [`LOGIN_TIMEOUT`] of its last message is closed.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::message::{Header, NdmpError, MESSAGE_REPLY, VERSION};
use crate::record::{decode_record, MAX_RECORD};
use crate::reply::{encode_reply, Outgoing, Post};
use crate::request::decode_request;
use crate::session::{Outbox, Outcome, Session, Shared};
use crate::xdr::Decoder;

/// The write side of a control connection.
struct Control {
    out: Mutex<(TcpStream, Outgoing)>,
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
}

/// Most control connections served at once.
pub const MAX_SESSIONS: usize = 64;
/// How long an unauthenticated connection may stay silent.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Counts a live session; the count drops with it.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Binds `addr` and serves NDMP on it in background threads; returns the bound address.
pub fn start(addr: SocketAddr, shared: Arc<Shared>) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr).map_err(|e| Error::io(format!("cannot listen on {addr}"), e))?;
    let bound = listener.local_addr().map_err(|e| Error::io("cannot read the bound address", e))?;
    thread::Builder::new()
        .name("ndmp-accept".into())
        .spawn(move || {
            let live = Arc::new(AtomicUsize::new(0));
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if live.fetch_add(1, Ordering::SeqCst) >= MAX_SESSIONS {
                    live.fetch_sub(1, Ordering::SeqCst);
                    let refused =
                        Post::ConnectionStatus { reason: 2, version: VERSION, text: "too many sessions".into() };
                    let _ = stream.write_all(&Outgoing::default().post(&refused));
                    eprintln!("ndmp: refused a connection: {MAX_SESSIONS} sessions are open");
                    continue;
                }
                let slot = Slot(live.clone());
                let shared = shared.clone();
                let spawned = thread::Builder::new().name("ndmp-session".into()).spawn(move || {
                    if let Err(e) = serve_connection(stream, shared, slot) {
                        eprintln!("ndmp: connection ended: {e}");
                    }
                });
                if spawned.is_err() {
                    eprintln!("ndmp: cannot start a session thread");
                }
            }
        })
        .map_err(|e| Error::io("cannot start the NDMP accept thread", e))?;
    Ok(bound)
}

/// Serves one control connection. The session ends (mover halted, devices freed) and its
/// `slot` is given back before the connection closes, so a DMA that sees it close can open the
/// next session at once.
fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>, slot: Slot) -> Result<()> {
    let _ = stream.set_nodelay(true);
    let local_ip = match stream.local_addr().map(|a| a.ip()) {
        Ok(IpAddr::V4(ip)) => ip,
        _ => Ipv4Addr::LOCALHOST,
    };
    let writer = stream.try_clone().map_err(|e| Error::io("cannot clone the control socket", e))?;
    let control = Arc::new(Control { out: Mutex::new((writer, Outgoing::default())) });
    control.post(Session::greeting());
    let mut session = Session::new(shared, control.clone(), local_ip);
    let _ = stream.set_read_timeout(Some(LOGIN_TIMEOUT));
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let result = loop {
        match decode_record(&buf, MAX_RECORD) {
            Err(e) => break Err(e.into()),
            Ok(Some((record, used))) => {
                buf.drain(..used);
                let was = session.authenticated();
                if !handle_record(&mut session, &control, &record) {
                    break Ok(());
                }
                if !was && session.authenticated() {
                    let _ = stream.set_read_timeout(None);
                }
            }
            Ok(None) => match stream.read(&mut chunk) {
                Err(e) => break Err(Error::io("cannot read the control socket", e)),
                Ok(0) => break Ok(()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
        }
    };
    session.finish();
    drop(slot);
    result
}

/// Handles one message; `false` to close the connection.
fn handle_record(session: &mut Session, control: &Control, record: &[u8]) -> bool {
    let d = &mut Decoder::new(record);
    let Ok(header) = Header::decode(d) else {
        eprintln!("ndmp: closing a connection that sent a malformed header");
        return false;
    };
    if header.message_type == MESSAGE_REPLY {
        return true;
    }
    let body = &record[record.len() - d.remaining()..];
    let outcome = match decode_request(session.version(), header.message_code, body) {
        Ok(req) => {
            let o = session.handle(req);
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
    true
}
