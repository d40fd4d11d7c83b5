//! Reading and writing whole frames on a byte stream.

use std::io::{Read, Write};

use crate::codec::{self, Message};
use crate::error::{Error, Result};

/// Bytes a receive buffer grows by ahead of the bytes that arrived.
const GROW_STEP: usize = 1 << 20;

/// Writes one message as a frame and flushes it; returns the frame's bytes.
pub(crate) fn send(w: &mut impl Write, m: &Message, peer: &str) -> Result<Vec<u8>> {
    let frame = codec::encode(m);
    w.write_all(&frame).and_then(|_| w.flush()).map_err(|e| Error::Io { peer: peer.into(), op: "write", source: e })?;
    Ok(frame)
}

/// Reads one frame of at most `max` bytes into `buf` (reused; it grows with the bytes that
/// arrive, never by the announced length up front) and decodes it. `None` at a clean end of
/// the stream.
pub(crate) fn receive(r: &mut impl Read, buf: &mut Vec<u8>, max: usize, peer: &str) -> Result<Option<Message>> {
    if !receive_frame(r, buf, max, peer)? {
        return Ok(None);
    }
    codec::decode(buf).map(Some).map_err(|e| Error::Wire { peer: peer.into(), source: e })
}

/// Reads one frame of at most `max` bytes into `buf` as [`receive`] does, without decoding
/// it; false at a clean end of the stream.
pub(crate) fn receive_frame(r: &mut impl Read, buf: &mut Vec<u8>, max: usize, peer: &str) -> Result<bool> {
    let io = |e| Error::Io { peer: peer.into(), op: "read", source: e };
    let mut head = [0u8; 4];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(io(e)),
    }
    let len = codec::frame_len(head).map_err(|e| Error::Wire { peer: peer.into(), source: e })?;
    if len - codec::FRAME_OVERHEAD + 1 > max {
        let detail = format!("a frame of {len} bytes where at most {max} are accepted now");
        return Err(Error::Protocol { peer: peer.into(), detail });
    }
    // The buffer keeps its length from frame to frame (bytes past it are overwritten), so only
    // growth is zeroed; it grows by at most GROW_STEP past the bytes that arrived.
    if buf.len() < 4 {
        buf.resize(4, 0);
    }
    buf[..4].copy_from_slice(&head);
    let mut have = 4;
    while have < len {
        let upto = len.min(have + GROW_STEP);
        if buf.len() < upto {
            buf.resize(upto, 0);
        }
        r.read_exact(&mut buf[have..upto]).map_err(io)?;
        have = upto;
    }
    buf.truncate(len);
    Ok(true)
}
