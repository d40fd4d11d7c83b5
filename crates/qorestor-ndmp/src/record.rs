//! ONC RPC record marking (RFC 5531 section 11) as NDMP uses it on TCP: a record is one or
//! more fragments, each a 4-byte header (bit 31: last fragment; bits 0-30: length) and its
//! bytes. [`decode_record`] is pure: it takes the bytes received so far and returns a whole
//! record and how much it used, `None` while incomplete, or an error for a fragment or record
//! over its limit (checked before anything is buffered).

use crate::error::DecodeError;

/// Largest fragment accepted.
pub const MAX_FRAGMENT: usize = 16 << 20;
/// Largest record accepted (a TAPE_WRITE of the largest block plus its header).
pub const MAX_RECORD: usize = (8 << 20) + 4096;

const LAST: u32 = 0x8000_0000;

/// A whole record and the number of input bytes it used.
pub type Record = (Vec<u8>, usize);

/// Decodes the first record of `buf`; `Ok(None)` when more bytes are needed.
pub fn decode_record(buf: &[u8], max_record: usize) -> Result<Option<Record>, DecodeError> {
    let mut pos = 0usize;
    let mut total = 0usize;
    // First pass: check the fragment headers and find the end without copying.
    loop {
        let Some(h) = buf.get(pos..pos + 4) else { return Ok(None) };
        let h = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let len = (h & !LAST) as usize;
        if len > MAX_FRAGMENT {
            return Err(DecodeError::TooLong { what: "fragment", len: len as u64, max: MAX_FRAGMENT as u64 });
        }
        total += len;
        if total > max_record {
            return Err(DecodeError::TooLong { what: "record", len: total as u64, max: max_record as u64 });
        }
        if buf.len() < pos + 4 + len {
            return Ok(None);
        }
        pos += 4 + len;
        if h & LAST != 0 {
            break;
        }
    }
    let mut out = Vec::with_capacity(total);
    let mut p = 0;
    while p < pos {
        let len = (u32::from_be_bytes([buf[p], buf[p + 1], buf[p + 2], buf[p + 3]]) & !LAST) as usize;
        out.extend_from_slice(&buf[p + 4..p + 4 + len]);
        p += 4 + len;
    }
    Ok(Some((out, pos)))
}

/// Frames `body` as one record of one fragment.
pub fn encode_record(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(LAST | body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}
