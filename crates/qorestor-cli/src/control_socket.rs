//! The daemon's control socket `DATA/control` (see `docs/DAEMON.md`): binding it (the
//! supervisor, once, mode 0600), connecting to it (a command on a served directory), the peer
//! check, and moving one control frame with its descriptors (`SCM_RIGHTS`).
//!
//! The socket is always reached through `/proc/self/fd/<directory descriptor>/control`, so a
//! data directory whose path is longer than a socket address holds (108 bytes) works too.

use std::fs::{self, File};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use qorestor_core::control::{decode_header, ControlError, FRAME_HEADER_LEN, MAX_REQUEST_FDS};
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags,
};

/// The control socket's name in the data directory.
pub const SOCKET_NAME: &str = "control";

/// The data directory, open, and the path of its control socket through it.
struct Reach {
    _dir: File,
    path: PathBuf,
}

fn reach(data: &Path) -> io::Result<Reach> {
    let dir = File::open(data)?;
    let path = PathBuf::from(format!("/proc/self/fd/{}/{SOCKET_NAME}", dir.as_raw_fd()));
    Ok(Reach { _dir: dir, path })
}

/// Binds `DATA/control` (a left-over socket file is replaced: the caller holds the directory),
/// readable and writable by the owner only.
pub fn bind(data: &Path) -> Result<UnixListener> {
    let shown = data.join(SOCKET_NAME);
    let at = reach(data).with_context(|| format!("cannot open data directory {}", data.display()))?;
    match fs::remove_file(&at.path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove the old control socket {}", shown.display()))
        }
        _ => {}
    }
    let listener =
        UnixListener::bind(&at.path).with_context(|| format!("cannot bind the control socket {}", shown.display()))?;
    fs::set_permissions(&at.path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make the control socket {} private", shown.display()))?;
    Ok(listener)
}

/// Removes `DATA/control` (when serve stops).
pub fn remove(data: &Path) {
    if let Ok(at) = reach(data) {
        let _ = fs::remove_file(at.path);
    }
}

/// Connects to the daemon serving `data`: `Ok(None)` when none serves it (no socket, or one
/// nobody listens on any more).
pub fn connect(data: &Path) -> io::Result<Option<UnixStream>> {
    let at = match reach(data) {
        Ok(at) => at,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => return Ok(None),
        Err(e) => return Err(e),
    };
    match UnixStream::connect(&at.path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the peer of `conn` may give commands: the daemon's own user or root. The error
/// says who was refused.
pub fn check_peer(conn: &UnixStream) -> Result<()> {
    let peer = rustix::net::sockopt::socket_peercred(conn).context("cannot learn the client's user (SO_PEERCRED)")?;
    let ours = rustix::process::getuid();
    if peer.uid != ours && !peer.uid.is_root() {
        bail!(
            "refused: the daemon (uid {}) takes commands only from uid {} or root, not from uid {} (pid {})",
            ours.as_raw(),
            ours.as_raw(),
            peer.uid.as_raw(),
            peer.pid.as_raw_nonzero()
        );
    }
    Ok(())
}

/// Sends one frame with `fds` attached to its first byte.
pub fn send_frame(to: &UnixStream, frame: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_REQUEST_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if fds.len() > MAX_REQUEST_FDS || !control.push(SendAncillaryMessage::ScmRights(fds)) {
        bail!("cannot pass {} descriptors to the daemon", fds.len());
    }
    let sent = sendmsg(to, &[IoSlice::new(frame)], &mut control, SendFlags::NOSIGNAL)
        .context("cannot send the command to the daemon")?;
    (&*to).write_all(&frame[sent..]).context("cannot send the command to the daemon")
}

/// Receives one frame whose body is at most `max_body` bytes, and the descriptors that came
/// with it (at most [`MAX_REQUEST_FDS`]). `Ok(None)` at end of stream before any byte.
pub fn recv_frame(from: &UnixStream, max_body: usize) -> Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut head = [0u8; FRAME_HEADER_LEN];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_REQUEST_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = recvmsg(from.as_fd(), &mut [IoSliceMut::new(&mut head)], &mut control, RecvFlags::CMSG_CLOEXEC)
        .context("cannot read from the control socket")?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if got.bytes == 0 {
        return Ok(None);
    }
    (&*from).read_exact(&mut head[got.bytes..]).context("the control frame ended early")?;
    let (_, len) = decode_header(&head, max_body)?;
    let mut frame = head.to_vec();
    frame.resize(FRAME_HEADER_LEN + len, 0);
    (&*from).read_exact(&mut frame[FRAME_HEADER_LEN..]).map_err(|_| ControlError::Truncated)?;
    Ok(Some((frame, fds)))
}
