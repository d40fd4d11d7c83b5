//! The mover's data pump threads: accept or use the data connection, then move records
//! between it and the tape, pausing and halting through [`MoverState`].
//!
//! Backup (mode READ): full records are read from the network and written to the tape (the
//! last one padded with zeros); end of window or of medium pauses the mover until
//! MOVER_CONTINUE; the peer closing the connection halts it (CONNECT_CLOSED).
//! Restore (mode WRITE): each MOVER_READ is served from tape records, positioning the tape
//! inside the window; a filemark pauses with EOF, end of data with EOM, an offset outside the
//! window with SEEK.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::message::{mover_mode, NdmpError};
use crate::mover::{halt, pause, state, MoverState, MAX_RECORD_SIZE};
use crate::request::TcpAddr;
use crate::session::Conn;
use crate::tape::{mtio, WriteOutcome};

fn tcp_addr(a: SocketAddr) -> TcpAddr {
    let ip = match a.ip() {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(0, u32::from),
    };
    TcpAddr { ip, port: a.port() }
}

/// Accepts a pending data connection if the mover listens and one is waiting (the pump
/// thread polls this, and MOVER_GET_STATE calls it so that a DMA that asks right after its
/// data service connected sees the mover ACTIVE). The stream goes to [`Conn::accepted`].
pub fn try_accept(conn: &Conn) {
    let mut m = conn.mover.lock();
    if m.state != state::LISTEN {
        return;
    }
    let mut listener = conn.listener.lock();
    let Some(l) = listener.as_ref() else { return };
    match l.accept() {
        Ok((s, peer)) => {
            if s.set_nonblocking(false).is_err() {
                return;
            }
            listener.take();
            let mode = m.mode;
            m.connected(mode, tcp_addr(peer));
            *conn.accepted.lock() = Some(s);
            conn.changed.notify_all();
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
        Err(_) => {
            listener.take();
            let posts = m.halt(halt::CONNECT_ERROR);
            drop(m);
            conn.send(posts);
        }
    }
}

/// Starts listening on `listener` for the data connection of the mover's start `activation`:
/// a pump thread waits for it (until the mover leaves LISTEN), then runs.
pub fn spawn_listen(conn: Arc<Conn>, listener: TcpListener, activation: u64) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    *conn.listener.lock() = Some(listener);
    thread::Builder::new().name("ndmp-mover".into()).spawn(move || loop {
        try_accept(&conn);
        let mut m = conn.mover.lock();
        if m.activation != activation {
            return;
        }
        // Out of its lock before the pump runs: the pump takes the mover's lock, and
        // try_accept takes this one under it.
        let accepted = conn.accepted.lock().take();
        if let Some(s) = accepted {
            drop(m);
            run(&conn, s, activation);
            return;
        }
        if m.state != state::LISTEN {
            conn.listener.lock().take();
            return;
        }
        conn.changed.wait_for(&mut m, Duration::from_millis(5));
    })?;
    Ok(())
}

/// Runs the pump of the mover's start `activation` on a connected data stream in a new thread.
pub fn spawn_run(conn: Arc<Conn>, stream: TcpStream, activation: u64) -> std::io::Result<()> {
    thread::Builder::new().name("ndmp-mover".into()).spawn(move || run(&conn, stream, activation))?;
    Ok(())
}

/// The pump of the mover's start `activation`: it moves data while the mover is in that start,
/// and halts it only then.
fn run(conn: &Conn, stream: TcpStream, activation: u64) {
    match stream.try_clone() {
        Ok(s) => *conn.data.lock() = Some(s),
        Err(_) => {
            let posts = conn.halt(halt::INTERNAL_ERROR);
            conn.send(posts);
            return;
        }
    }
    let mode = conn.mover.lock().mode;
    let reason =
        if mode == mover_mode::READ { backup(conn, stream, activation) } else { restore(conn, stream, activation) };
    if let Some(r) = reason {
        let mut m = conn.mover.lock();
        if m.activation != activation {
            return;
        }
        let posts = m.halt(r);
        drop(m);
        conn.close_data();
        conn.send(posts);
    }
}

/// Reads until `buf` is full or end of stream; returns the bytes read.
fn fill(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match s.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Network → tape. Returns the halt reason, or `None` if something else halted the mover.
///
/// The end of the data stream is acted on only while the mover is active: after a record that
/// reached the early warning the mover pauses, and a tape mover does not look further until the
/// DMA has changed the tape and continued. (Halting at once would race the DMA's tape change:
/// it got the pause, and its MOVER_SET_WINDOW or MOVER_CONTINUE would find the mover halted.)
fn backup(conn: &Conn, mut stream: TcpStream, activation: u64) -> Option<u32> {
    let size = conn.mover.lock().record_size as usize;
    let mut buf = vec![0u8; size];
    loop {
        if !wait_while_paused(conn, activation) {
            return None;
        }
        let n = match fill(&mut stream, &mut buf) {
            Ok(n) => n,
            Err(_) => return Some(halt::CONNECT_CLOSED),
        };
        if n == 0 {
            return Some(halt::CONNECT_CLOSED);
        }
        buf[n..].fill(0);
        if !write_record(conn, &buf, n as u64, activation) {
            return None;
        }
        if n < size {
            return wait_while_paused(conn, activation).then_some(halt::CONNECT_CLOSED);
        }
    }
}

/// Waits while the mover is paused; `true` if it is active afterwards in start `activation`
/// (`false`: halted, or otherwise no longer moving data for this pump).
fn wait_while_paused(conn: &Conn, activation: u64) -> bool {
    let mut m = conn.mover.lock();
    while m.activation == activation && m.state == state::PAUSED {
        conn.changed.wait(&mut m);
    }
    m.activation == activation && m.state == state::ACTIVE
}

/// Writes one record, waiting through pauses. `false` when the mover halted (or is no longer
/// in start `activation`).
fn write_record(conn: &Conn, record: &[u8], data_len: u64, activation: u64) -> bool {
    let mut m = conn.mover.lock();
    loop {
        if m.activation != activation {
            return false;
        }
        match m.state {
            state::ACTIVE => {}
            state::PAUSED => {
                conn.changed.wait(&mut m);
                continue;
            }
            _ => return false,
        }
        if m.window_end() {
            let at = m.position();
            let posts = m.pause(pause::EOW, at);
            conn.send(posts);
            continue;
        }
        let result = match conn.tape.lock().as_ref() {
            Some(t) => t.write(record),
            None => Err(NdmpError::DevNotOpen),
        };
        match result {
            Ok(outcome) => {
                m.record_num += 1;
                m.bytes_moved += data_len;
                if outcome == WriteOutcome::EarlyWarning {
                    let at = m.position();
                    let posts = m.pause(pause::EOM, at);
                    conn.send(posts);
                }
                return true;
            }
            Err(NdmpError::Eom) => {
                let at = m.position();
                let posts = m.pause(pause::EOM, at);
                conn.send(posts);
            }
            Err(_) => {
                let posts = m.halt(halt::MEDIA_ERROR);
                conn.send(posts);
                return false;
            }
        }
    }
}

/// The last record read: its stream offset and bytes.
struct Held {
    offset: u64,
    data: Vec<u8>,
}

/// Tape → network. Returns the halt reason, or `None` if something else halted the mover.
fn restore(conn: &Conn, mut stream: TcpStream, activation: u64) -> Option<u32> {
    let mut held: Option<Held> = None;
    loop {
        let chunk = match next_chunk(conn, &mut held, activation) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(reason) => return reason,
        };
        if stream.write_all(&chunk).is_err() {
            return Some(halt::CONNECT_CLOSED);
        }
    }
}

/// Waits for a pending MOVER_READ and returns the next bytes to send (`None`: paused,
/// try again). `Err` ends the pump with an optional halt reason (at once if the mover is no
/// longer in start `activation`).
fn next_chunk(conn: &Conn, held: &mut Option<Held>, activation: u64) -> Result<Option<Vec<u8>>, Option<u32>> {
    let mut m = conn.mover.lock();
    loop {
        if m.activation != activation {
            return Err(None);
        }
        match m.state {
            state::ACTIVE if m.bytes_left_to_read > 0 => break,
            state::ACTIVE | state::PAUSED => {
                conn.changed.wait_for(&mut m, Duration::from_secs(1));
            }
            _ => return Err(None),
        }
    }
    let off = m.read_offset;
    let covered = held.as_ref().is_some_and(|h| off >= h.offset && off < h.offset + h.data.len() as u64);
    if !covered {
        // The stream offset of the block after the one held: reading on needs no positioning,
        // whatever size the tape's blocks are.
        let next = held.take().map(|h| h.offset + h.data.len() as u64);
        if !m.in_window(off) {
            let posts = m.pause(pause::SEEK, off);
            conn.send(posts);
            return Ok(None);
        }
        match read_record_at(conn, &mut m, off, next == Some(off)) {
            Ok(h) => *held = Some(h),
            Err(Some(reason)) => {
                let posts = m.pause(reason, off);
                conn.send(posts);
                return Ok(None);
            }
            Err(None) => {
                let posts = m.halt(halt::MEDIA_ERROR);
                conn.send(posts);
                return Err(None);
            }
        }
    }
    let h = held.as_ref().expect("set above");
    let start = (off - h.offset) as usize;
    let n = ((h.data.len() - start) as u64).min(m.bytes_left_to_read) as usize;
    let chunk = h.data[start..start + n].to_vec();
    m.read_offset += n as u64;
    m.bytes_left_to_read -= n as u64;
    m.bytes_moved += n as u64;
    Ok(Some(chunk))
}

/// Reads the block holding stream offset `off`: the next block on tape if `sequential`, else
/// the block `off / record size` of the window, positioning the tape there first. `Err(Some)`
/// is a pause reason (EOF, EOM), `Err(None)` a media error.
fn read_record_at(conn: &Conn, m: &mut MoverState, off: u64, sequential: bool) -> Result<Held, Option<u32>> {
    let size = m.record_size as u64;
    let target = if sequential { m.record_num } else { off / size };
    let start = if sequential { off } else { target * size };
    let tape = conn.tape.lock();
    let t = tape.as_ref().ok_or(None)?;
    if target != m.record_num {
        let (op, count) =
            if target > m.record_num { (mtio::FSR, target - m.record_num) } else { (mtio::BSR, m.record_num - target) };
        let count = u32::try_from(count).map_err(|_| None)?;
        match t.mtio(op, count) {
            Ok(0) => m.record_num = target,
            Ok(_) => return Err(Some(pause::EOF)),
            Err(_) => return Err(None),
        }
    }
    // Read whatever block is there (a tape written with another record size still reads).
    match t.read(MAX_RECORD_SIZE.max(m.record_size)) {
        Ok(data) if !data.is_empty() => {
            m.record_num += 1;
            Ok(Held { offset: start, data })
        }
        Ok(_) | Err(NdmpError::Eom) => Err(Some(pause::EOM)),
        Err(NdmpError::Eof) => Err(Some(pause::EOF)),
        Err(_) => Err(None),
    }
}
