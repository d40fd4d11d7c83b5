//! What `qorestor serve`'s supervisor hands its serving process: the hold of the data directory
//! (`DIR/lock`'s descriptor) and the listening sockets, sent as descriptors (`SCM_RIGHTS`)
//! over a socketpair whose child end is the serving process's stdin; and the one message the
//! serving process sends back, `ready`, once it serves.
//!
//! The message is `QSRV1` followed by one byte per listening socket naming its frontend (`i`
//! iSCSI, `n` NDMP, `r` replication, `o` OST) and then `c` for the control socket
//! (`DATA/control`, see [`crate::control_socket`]), with the descriptors in the same order after
//! the lock's.
//! The serving process is told its supervisor's pid in [`SUPERVISOR_ENV`]; it asks the kernel
//! to send it SIGTERM when the supervisor dies, then checks that the supervisor is still its
//! parent (it may have died before the request).

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::TcpListener;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

use anyhow::{bail, Context, Result};
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags,
};

/// The environment variable that makes `serve` the serving process of the supervisor whose pid
/// it holds.
pub const SUPERVISOR_ENV: &str = "QORESTOR_SERVE_SUPERVISOR";
/// The start of the hand-off message.
const MAGIC: &[u8] = b"QSRV1";
/// Most listening sockets handed over (one per frontend, and the control socket).
const MAX_LISTENERS: usize = 5;
/// The code of the control socket in the message.
const CONTROL_CODE: u8 = b'c';
/// What the serving process sends once it serves.
const READY: &[u8] = b"ready\n";

/// A frontend whose socket is handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontend {
    /// iSCSI.
    Iscsi,
    /// NDMP.
    Ndmp,
    /// Replication.
    Replication,
    /// OST.
    Ost,
}

impl Frontend {
    /// The name in `listening <frontend> <addr:port>`.
    pub fn name(self) -> &'static str {
        match self {
            Frontend::Iscsi => "iscsi",
            Frontend::Ndmp => "ndmp",
            Frontend::Replication => "replication",
            Frontend::Ost => "ost",
        }
    }

    fn code(self) -> u8 {
        match self {
            Frontend::Iscsi => b'i',
            Frontend::Ndmp => b'n',
            Frontend::Replication => b'r',
            Frontend::Ost => b'o',
        }
    }

    fn from_code(code: u8) -> Option<Frontend> {
        match code {
            b'i' => Some(Frontend::Iscsi),
            b'n' => Some(Frontend::Ndmp),
            b'r' => Some(Frontend::Replication),
            b'o' => Some(Frontend::Ost),
            _ => None,
        }
    }
}

/// What the serving process received.
pub struct Handed {
    /// The data directory's hold.
    pub lock: OwnedFd,
    /// The listening sockets, in the order the supervisor bound them.
    pub listeners: Vec<(Frontend, TcpListener)>,
    /// The control socket.
    pub control: UnixListener,
}

/// A connected pair: the supervisor's end and the serving process's end (for its stdin).
pub fn channel() -> Result<(UnixStream, OwnedFd)> {
    let (ours, theirs) = UnixStream::pair().context("cannot create the socketpair for the serving process")?;
    Ok((ours, theirs.into()))
}

/// Sends the hold, the listening sockets and the control socket over `to`.
pub fn send(
    to: &UnixStream,
    lock: BorrowedFd<'_>,
    listeners: &[(Frontend, &TcpListener)],
    control: &UnixListener,
) -> Result<()> {
    let mut payload = MAGIC.to_vec();
    payload.extend(listeners.iter().map(|(f, _)| f.code()));
    payload.push(CONTROL_CODE);
    let mut fds = vec![lock];
    fds.extend(listeners.iter().map(|(_, l)| l.as_fd()));
    fds.push(control.as_fd());
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1 + MAX_LISTENERS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        bail!("cannot pass {} descriptors to the serving process", fds.len());
    }
    let sent = sendmsg(to, &[IoSlice::new(&payload)], &mut control, SendFlags::empty())
        .context("cannot pass the listening sockets to the serving process")?;
    if sent != payload.len() {
        bail!("passed {sent} of {} bytes to the serving process", payload.len());
    }
    Ok(())
}

/// Receives what [`send`] sent, on `from` (the serving process's stdin).
pub fn receive(from: BorrowedFd<'_>) -> Result<Handed> {
    let mut payload = [0u8; 32];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1 + MAX_LISTENERS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = recvmsg(from, &mut [IoSliceMut::new(&mut payload)], &mut control, RecvFlags::CMSG_CLOEXEC)
        .context("cannot receive the listening sockets from the supervisor (stdin is not its socket)")?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    let payload = &payload[..got.bytes.min(payload.len())];
    let Some(codes) = payload.strip_prefix(MAGIC).and_then(|c| c.strip_suffix(&[CONTROL_CODE])) else {
        bail!("the supervisor's message does not start with {MAGIC:?} or end with the control socket");
    };
    let frontends: Option<Vec<Frontend>> = codes.iter().map(|&c| Frontend::from_code(c)).collect();
    let Some(frontends) = frontends else { bail!("the supervisor's message names an unknown frontend") };
    if frontends.len() >= MAX_LISTENERS || fds.len() != 2 + frontends.len() {
        bail!("the supervisor passed {} descriptors for {} listeners", fds.len(), frontends.len() + 1);
    }
    let control = UnixListener::from(fds.pop().context("no control socket")?);
    let mut fds = fds.into_iter();
    let lock = fds.next().context("no lock descriptor")?;
    let listeners = frontends.into_iter().zip(fds.map(TcpListener::from)).collect();
    Ok(Handed { lock, listeners, control })
}

/// Tells the supervisor the serving process serves (on its stdin's socket).
pub fn send_ready(to: BorrowedFd<'_>) -> Result<()> {
    let mut stream = UnixStream::from(to.try_clone_to_owned()?);
    stream.write_all(READY).context("cannot tell the supervisor that serving began")
}

/// Waits for the serving process's `ready` on the supervisor's end; false when the process
/// ended first.
pub fn wait_ready(mut from: &UnixStream) -> bool {
    let mut got = [0u8; READY.len()];
    from.read_exact(&mut got).is_ok() && got == READY
}

/// In the serving process: asks for SIGTERM when the supervisor `supervisor` dies, then checks
/// that it is still the parent (an error if it died already).
pub fn follow_supervisor(supervisor: u32) -> Result<()> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
        .context("cannot ask to be stopped with the supervisor")?;
    let parent = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32);
    if parent != supervisor {
        bail!("the supervisor (pid {supervisor}) is gone");
    }
    Ok(())
}
