//! One NDMP control connection: authentication, the CONFIG, SCSI, TAPE and MOVER interfaces.
//! [`Session::handle`] takes a decoded request and returns what to answer; notifications go
//! to the connection's [`Outbox`]. Nothing but CONNECT_OPEN, CONNECT_CLOSE,
//! CONFIG_GET_AUTH_ATTR, CONFIG_GET_SERVER_INFO and CONNECT_CLIENT_AUTH is accepted before
//! authentication (NOT_AUTHORIZED_ERR).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use qorestor_vtl::{Libraries, Vtl, GOOD};

use crate::claims::OpenDevices;
use crate::config::{md5_digest, Credentials};
use crate::devices::{self, Kind};
use crate::message::{addr_type, auth_type, mover_mode, tape_mode, NdmpError, MIN_VERSION, VERSION};
use crate::mover::{halt, state, MoverState};
use crate::pump;
use crate::reply::{DeviceInfo, Post, Reply};
use crate::request::{Addr, Auth, ExecuteCdb, Request, TcpAddr, MAX_IO};
use crate::tape::Tape;

/// Where a session's notifications go (the control connection).
pub trait Outbox: Send + Sync {
    /// Sends a post to the DMA.
    fn post(&self, post: Post);

    /// Stops taking the DMA's requests, so that whoever runs the session sees
    /// [`Session::ended`] and ends it ([`Conn::end`]). Nothing by default (a session driven
    /// without a connection).
    fn end(&self) {}
}

/// What every session of a server shares.
pub struct Shared {
    /// The libraries.
    pub libraries: Arc<Libraries>,
    /// The system name (CONFIG_GET_HOST_INFO).
    pub system_name: String,
    /// Reads the configured credentials (`None`: no user set, every authentication refused).
    pub credentials: Box<dyn Fn() -> Option<Credentials> + Send + Sync>,
    /// The devices open in some session; a library taken out of service ends the sessions
    /// with its devices open (once [`crate::server`] has the registry tell it).
    pub opened: OpenDevices,
}

/// The part of a session the mover's pump threads share.
pub struct Conn {
    /// The mover.
    pub mover: Mutex<MoverState>,
    /// Signalled when the mover's state changes (CONTINUE, READ, ABORT, CLOSE).
    pub changed: Condvar,
    /// The open tape.
    pub tape: Mutex<Option<Tape>>,
    /// The data connection, to shut it down on ABORT or CLOSE.
    pub data: Mutex<Option<TcpStream>>,
    /// The listening socket while the mover listens.
    pub listener: Mutex<Option<TcpListener>>,
    /// A data connection accepted, for the pump thread to take.
    pub accepted: Mutex<Option<TcpStream>>,
    /// The control connection's notifications.
    pub outbox: Arc<dyn Outbox>,
    /// Why the session was ended from outside ([`Conn::end`]), once it was.
    ended: Mutex<Option<String>>,
}

impl Conn {
    /// The state of a new session whose notifications go to `outbox`.
    pub(crate) fn new(outbox: Arc<dyn Outbox>) -> Conn {
        Conn {
            mover: Mutex::new(MoverState::default()),
            changed: Condvar::new(),
            tape: Mutex::new(None),
            data: Mutex::new(None),
            listener: Mutex::new(None),
            accepted: Mutex::new(None),
            outbox,
            ended: Mutex::new(None),
        }
    }

    /// Sends posts.
    pub fn send(&self, posts: Vec<Post>) {
        for p in posts {
            self.outbox.post(p);
        }
    }

    /// Halts the mover (if running) and closes the data connection.
    pub fn halt(&self, reason: u32) -> Vec<Post> {
        let posts = self.mover.lock().halt(reason);
        self.close_data();
        posts
    }

    /// Ends the session from outside (its library was taken out of service), saying why:
    /// the connection stops taking requests, and its thread ends the session and closes it.
    pub fn end(&self, why: &str) {
        self.ended.lock().get_or_insert_with(|| why.to_string());
        self.outbox.end();
    }

    /// Why the session was ended from outside ([`Conn::end`]), if it was.
    pub fn ended(&self) -> Option<String> {
        self.ended.lock().clone()
    }

    /// Closes the data connection and wakes the pump.
    pub fn close_data(&self) {
        if let Some(s) = self.data.lock().take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        self.changed.notify_all();
    }
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send this reply body.
    Reply(Reply),
    /// Send a reply with this header error and no body.
    HeaderError(NdmpError),
    /// Close the connection (CONNECT_CLOSE: no reply).
    Close,
}

/// One control connection's state.
pub struct Session {
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    local_ip: Ipv4Addr,
    version: u16,
    opened: bool,
    authenticated: bool,
    /// The user that authenticated.
    user: Option<String>,
    challenge: Option<[u8; 64]>,
    tape_device: Option<String>,
    scsi: Option<(Arc<Vtl>, String)>,
}

fn challenge() -> [u8; 64] {
    let mut c = [0u8; 64];
    for (i, chunk) in c.chunks_mut(8).enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    c
}

fn err(e: NdmpError) -> Outcome {
    Outcome::Reply(Reply::Error(e))
}

fn done(r: Result<(), NdmpError>) -> Outcome {
    err(r.err().unwrap_or(NdmpError::NoErr))
}

impl Session {
    /// A new session on a connection whose local address is `local_ip` (the address
    /// MOVER_LISTEN binds, so that the DMA's data service can reach it).
    pub fn new(shared: Arc<Shared>, outbox: Arc<dyn Outbox>, local_ip: Ipv4Addr) -> Session {
        Session {
            shared,
            conn: Arc::new(Conn::new(outbox)),
            local_ip,
            version: VERSION,
            opened: false,
            authenticated: false,
            user: None,
            challenge: None,
            tape_device: None,
            scsi: None,
        }
    }

    /// Whether CONNECT_CLIENT_AUTH succeeded.
    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// The user that authenticated, once one has.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Why the session was ended from outside ([`Conn::end`]), if it was: it takes no more
    /// requests.
    pub fn ended(&self) -> Option<String> {
        self.conn.ended()
    }

    /// The protocol version (4 until CONNECT_OPEN chose 3).
    pub fn version(&self) -> u16 {
        self.version
    }

    /// The greeting sent on accept.
    pub fn greeting() -> Post {
        Post::ConnectionStatus { reason: 0, version: VERSION, text: "qorestor NDMP tape server".into() }
    }

    /// Handles one request.
    pub fn handle(&mut self, req: Request) -> Outcome {
        match req {
            Request::ConnectOpen { version } => {
                if !(MIN_VERSION..=VERSION).contains(&version) {
                    return err(NdmpError::IllegalArgs);
                }
                if self.opened {
                    return err(NdmpError::IllegalState);
                }
                self.opened = true;
                self.version = version;
                err(NdmpError::NoErr)
            }
            Request::ConnectClose => Outcome::Close,
            Request::Unsupported { .. } => Outcome::HeaderError(NdmpError::NotSupported),
            _ if !self.opened => err(NdmpError::IllegalState),
            Request::ConfigGetAuthAttr { auth_type } => self.auth_attr(auth_type),
            Request::ConfigGetServerInfo => Outcome::Reply(Reply::ServerInfo {
                vendor: "qorestor".into(),
                product: "qorestor NDMP tape server".into(),
                revision: env!("CARGO_PKG_VERSION").into(),
                auth_types: vec![auth_type::TEXT, auth_type::MD5],
            }),
            Request::ConnectClientAuth(auth) => self.authenticate(auth),
            _ if !self.authenticated => err(NdmpError::NotAuthorized),
            other => self.authorized(other),
        }
    }

    fn auth_attr(&mut self, t: u32) -> Outcome {
        match t {
            auth_type::NONE | auth_type::TEXT => Outcome::Reply(Reply::AuthAttr { auth_type: t, challenge: [0; 64] }),
            auth_type::MD5 => {
                let c = challenge();
                self.challenge = Some(c);
                Outcome::Reply(Reply::AuthAttr { auth_type: t, challenge: c })
            }
            _ => err(NdmpError::IllegalArgs),
        }
    }

    fn authenticate(&mut self, auth: Auth) -> Outcome {
        if self.authenticated {
            return err(NdmpError::IllegalState);
        }
        let Some(creds) = (self.shared.credentials)() else {
            eprintln!("ndmp: authentication refused: no NDMP user is configured (qorestor ndmp update)");
            return err(NdmpError::NotAuthorized);
        };
        let ok = match &auth {
            Auth::None => false,
            Auth::Text { user, password } => *user == creds.user && *password == creds.password,
            Auth::Md5 { user, digest } => match self.challenge {
                Some(c) => *user == creds.user && md5_digest(&c, &creds.password) == *digest,
                None => false,
            },
        };
        if !ok {
            let user = match &auth {
                Auth::None => "",
                Auth::Text { user, .. } | Auth::Md5 { user, .. } => user,
            };
            eprintln!("ndmp: authentication refused for user {user:?}: wrong user or password");
            return err(NdmpError::NotAuthorized);
        }
        self.authenticated = true;
        self.user = Some(creds.user);
        err(NdmpError::NoErr)
    }

    fn authorized(&mut self, req: Request) -> Outcome {
        match req {
            Request::ConnectServerAuth { .. } => err(NdmpError::NotSupported),
            Request::ConfigGetHostInfo => Outcome::Reply(Reply::HostInfo {
                hostname: self.shared.system_name.clone(),
                os_type: std::env::consts::OS.into(),
                os_vers: env!("CARGO_PKG_VERSION").into(),
                hostid: format!(
                    "{:08x}",
                    self.shared.system_name.bytes().fold(0u32, |h, b| h.rotate_left(5) ^ b as u32)
                ),
            }),
            Request::ConfigGetConnectionType => Outcome::Reply(Reply::ConnectionTypes(vec![addr_type::TCP])),
            Request::ConfigGetButypeInfo | Request::ConfigGetFsInfo | Request::ConfigGetExtList => {
                Outcome::Reply(Reply::EmptyList)
            }
            Request::ConfigSetExtList { classes } => {
                err(if classes == 0 { NdmpError::NoErr } else { NdmpError::ClassNotSupported })
            }
            Request::ConfigGetTapeInfo => self.device_info(Kind::Tape),
            Request::ConfigGetScsiInfo => self.device_info(Kind::Changer),
            Request::ScsiOpen { device } => done(self.scsi_open(&device)),
            Request::ScsiClose => done(self.scsi_close()),
            Request::ScsiGetState | Request::ScsiResetDevice => {
                err(if self.scsi.is_some() { NdmpError::NoErr } else { NdmpError::DevNotOpen })
            }
            Request::ScsiExecuteCdb(x) => match &self.scsi {
                Some((vtl, _)) => execute_cdb(&x, |cdb, out| vtl.execute(0, cdb, out)),
                None => err(NdmpError::DevNotOpen),
            },
            Request::TapeOpen { device, mode } => done(self.tape_open(&device, mode)),
            Request::TapeClose => done(self.tape_close()),
            Request::TapeGetState => match self.with_tape(|t| t.state()) {
                Ok(s) => Outcome::Reply(Reply::TapeState(s)),
                Err(e) => err(e),
            },
            Request::TapeMtio { op, count } => {
                if self.conn.mover.lock().state == state::ACTIVE {
                    return Outcome::Reply(Reply::Count(NdmpError::IllegalState, 0));
                }
                match self.with_tape(|t| t.mtio(op, count)) {
                    Ok(resid) => Outcome::Reply(Reply::Count(NdmpError::NoErr, resid)),
                    Err(e) => Outcome::Reply(Reply::Count(e, 0)),
                }
            }
            Request::TapeWrite { data } => match self.with_tape(|t| t.write(&data)) {
                Ok(_) => Outcome::Reply(Reply::Count(NdmpError::NoErr, data.len() as u32)),
                Err(e) => Outcome::Reply(Reply::Count(e, 0)),
            },
            Request::TapeRead { count } => {
                if count as usize > MAX_IO {
                    return Outcome::Reply(Reply::Data(NdmpError::IllegalArgs, Vec::new()));
                }
                match self.with_tape(|t| t.read(count)) {
                    Ok(d) => Outcome::Reply(Reply::Data(NdmpError::NoErr, d)),
                    Err(e) => Outcome::Reply(Reply::Data(e, Vec::new())),
                }
            }
            Request::TapeExecuteCdb(x) => {
                let tape = self.conn.tape.lock();
                match tape.as_ref() {
                    Some(t) => execute_cdb(&x, |cdb, out| t.exec(cdb, out)),
                    None => err(NdmpError::DevNotOpen),
                }
            }
            Request::MoverGetState => {
                pump::try_accept(&self.conn);
                Outcome::Reply(Reply::MoverState(self.conn.mover.lock().reply()))
            }
            Request::MoverSetRecordSize { len } => done(self.conn.mover.lock().set_record_size(len)),
            Request::MoverSetWindow { offset, length } => {
                // Version 3 also sets the window while listening; version 4 refuses it.
                done(self.conn.mover.lock().set_window(offset, length, self.version < 4))
            }
            Request::MoverListen { mode, addr_type } => match self.mover_listen(mode, addr_type) {
                Ok(a) => Outcome::Reply(Reply::Listen(a)),
                Err(e) => err(e),
            },
            Request::MoverConnect { mode, addr } => done(self.mover_connect(mode, addr)),
            Request::MoverContinue => {
                let r = self.conn.mover.lock().resume();
                self.conn.changed.notify_all();
                done(r)
            }
            Request::MoverRead { offset, length } => {
                let r = self.conn.mover.lock().read(offset, length);
                self.conn.changed.notify_all();
                done(r)
            }
            Request::MoverAbort => self.mover_halt(|m| m.abort()),
            Request::MoverClose => self.mover_halt(|m| m.close()),
            Request::MoverStop => done(self.conn.mover.lock().stop()),
            // Handled before authentication.
            Request::ConnectOpen { .. }
            | Request::ConnectClose
            | Request::ConnectClientAuth(_)
            | Request::ConfigGetAuthAttr { .. }
            | Request::ConfigGetServerInfo
            | Request::Unsupported { .. } => err(NdmpError::IllegalState),
        }
    }

    fn device_info(&self, kind: Kind) -> Outcome {
        match devices::all(&self.shared.libraries) {
            Ok(list) => Outcome::Reply(Reply::Devices(
                list.into_iter()
                    .filter(|d| d.kind == kind)
                    .map(|d| DeviceInfo {
                        model: d.model,
                        device: d.name,
                        capability: match d.element_address {
                            Some(a) => vec![("element_address".into(), a.to_string())],
                            None => Vec::new(),
                        },
                    })
                    .collect(),
            )),
            Err(_) => err(NdmpError::Io),
        }
    }

    fn claim(&self, name: &str, library: &Arc<Vtl>) -> Result<(), NdmpError> {
        self.shared.opened.claim(name, library, &self.conn)
    }

    fn release(&self, name: &str) {
        self.shared.opened.release(name, &self.conn);
    }

    fn scsi_open(&mut self, device: &str) -> Result<(), NdmpError> {
        if self.scsi.is_some() {
            return Err(NdmpError::DeviceOpened);
        }
        let Some((vtl, d)) = devices::find(&self.shared.libraries, device).filter(|(_, d)| d.kind == Kind::Changer)
        else {
            return Err(NdmpError::NoDevice);
        };
        self.claim(&d.name, &vtl)?;
        // Clear the power-on and medium-changed unit attentions, as a host driver does.
        for _ in 0..4 {
            if vtl.execute(0, &[0; 6], &[]).status == GOOD {
                break;
            }
        }
        self.scsi = Some((vtl, d.name));
        Ok(())
    }

    fn scsi_close(&mut self) -> Result<(), NdmpError> {
        let (_, name) = self.scsi.take().ok_or(NdmpError::DevNotOpen)?;
        self.release(&name);
        Ok(())
    }

    fn tape_open(&mut self, device: &str, mode: u32) -> Result<(), NdmpError> {
        if mode > tape_mode::RAW {
            return Err(NdmpError::IllegalArgs);
        }
        if self.tape_device.is_some() {
            return Err(NdmpError::DeviceOpened);
        }
        let Some((vtl, d)) = devices::find(&self.shared.libraries, device).filter(|(_, d)| d.kind == Kind::Tape) else {
            return Err(NdmpError::NoDevice);
        };
        self.claim(&d.name, &vtl)?;
        match Tape::open(vtl, d.drive, mode != tape_mode::READ, self.version) {
            Ok(t) => {
                *self.conn.tape.lock() = Some(t);
                self.tape_device = Some(d.name);
                Ok(())
            }
            Err(e) => {
                self.release(&d.name);
                Err(e)
            }
        }
    }

    fn tape_close(&mut self) -> Result<(), NdmpError> {
        if self.tape_device.is_none() {
            return Err(NdmpError::DevNotOpen);
        }
        let s = self.conn.mover.lock().state;
        if s == state::ACTIVE || s == state::LISTEN {
            return Err(NdmpError::IllegalState);
        }
        self.conn.tape.lock().take();
        if let Some(name) = self.tape_device.take() {
            self.release(&name);
        }
        Ok(())
    }

    fn with_tape<T>(&self, f: impl FnOnce(&Tape) -> Result<T, NdmpError>) -> Result<T, NdmpError> {
        let tape = self.conn.tape.lock();
        f(tape.as_ref().ok_or(NdmpError::DevNotOpen)?)
    }

    /// Checks the tape for a mover start in `mode`.
    fn check_tape_for(&self, mode: u32) -> Result<(), NdmpError> {
        let tape = self.conn.tape.lock();
        let t = tape.as_ref().ok_or(NdmpError::DevNotOpen)?;
        // NDMP v4: mode READ reads the network and writes the tape.
        if mode == mover_mode::READ && !t.writable() {
            return Err(NdmpError::Permission);
        }
        Ok(())
    }

    fn mover_listen(&mut self, mode: u32, addr_t: u32) -> Result<TcpAddr, NdmpError> {
        let mut m = self.conn.mover.lock();
        m.check_start(mode, addr_t == addr_type::TCP)?;
        self.check_tape_for(mode)?;
        let listener = TcpListener::bind((self.local_ip, 0)).map_err(|_| NdmpError::Io)?;
        let port = listener.local_addr().map_err(|_| NdmpError::Io)?.port();
        let addr = TcpAddr { ip: u32::from(self.local_ip), port };
        m.listening(mode, addr);
        let activation = m.activation;
        drop(m);
        if pump::spawn_listen(self.conn.clone(), listener, activation).is_err() {
            let posts = self.conn.halt(halt::INTERNAL_ERROR);
            self.conn.send(posts);
        }
        Ok(addr)
    }

    fn mover_connect(&mut self, mode: u32, addr: Addr) -> Result<(), NdmpError> {
        let mut m = self.conn.mover.lock();
        let tcp = match addr {
            Addr::Tcp(v) if !v.is_empty() => v,
            _ => return Err(NdmpError::IllegalArgs),
        };
        m.check_start(mode, true)?;
        self.check_tape_for(mode)?;
        let stream = tcp
            .iter()
            .find_map(|a| {
                let sa = SocketAddr::from((Ipv4Addr::from(a.ip), a.port));
                TcpStream::connect_timeout(&sa, Duration::from_secs(10)).ok().map(|s| (s, *a))
            })
            .ok_or(NdmpError::Connect)?;
        m.connected(mode, stream.1);
        let activation = m.activation;
        drop(m);
        if pump::spawn_run(self.conn.clone(), stream.0, activation).is_err() {
            let posts = self.conn.halt(halt::INTERNAL_ERROR);
            self.conn.send(posts);
        }
        Ok(())
    }

    fn mover_halt(&mut self, f: impl FnOnce(&mut MoverState) -> Result<Vec<Post>, NdmpError>) -> Outcome {
        let r = f(&mut self.conn.mover.lock());
        match r {
            Ok(posts) => {
                self.conn.close_data();
                self.conn.send(posts);
                err(NdmpError::NoErr)
            }
            Err(e) => err(e),
        }
    }

    /// Ends the session: halts the mover, makes the tape's data durable and frees the
    /// devices, so a client that disconnects mid-backup leaves a readable tape and a free
    /// drive. A session ended from outside ([`Session::ended`]) still has its DMA listening:
    /// it is told that the mover halted.
    pub fn finish(&mut self) {
        let posts = self.conn.halt(halt::ABORTED);
        if self.ended().is_some() {
            self.conn.send(posts);
        }
        self.conn.tape.lock().take();
        if let Some(name) = self.tape_device.take() {
            self.release(&name);
        }
        if let Some((_, name)) = self.scsi.take() {
            self.release(&name);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.finish();
    }
}

fn execute_cdb(x: &ExecuteCdb, run: impl FnOnce(&[u8], &[u8]) -> qorestor_vtl::ScsiResponse) -> Outcome {
    if x.cdb.is_empty() {
        return err(NdmpError::IllegalArgs);
    }
    let r = run(&x.cdb, &x.dataout);
    let mut datain = r.data_in;
    datain.truncate(x.datain_len as usize);
    Outcome::Reply(Reply::ExecuteCdb {
        status: r.status,
        dataout_len: if r.status == GOOD { x.dataout.len() as u32 } else { 0 },
        datain,
        sense: r.sense,
    })
}
