//! ONC RPC record marking (RFC 5531 section 11) as NDMP uses it on TCP: a record is one or
//! more fragments, each a 4-byte header (bit 31: last fragment; bits 0-30: length) and its
//! bytes. [`Assembler`] takes fragments as they arrive (the server's reader); [`decode_record`]
//! is the same as a pure function of the bytes received so far: a whole record and how much it
//! used, `None` while incomplete, or an error for a fragment or record over its limit (checked
//! at the fragment's header, before its bytes are waited for).

use crate::error::DecodeError;

/// Largest fragment accepted.
pub const MAX_FRAGMENT: usize = 16 << 20;
/// Largest record accepted from an authenticated DMA, fragment headers included (a TAPE_WRITE
/// of the largest block plus its headers).
pub const MAX_RECORD: usize = (8 << 20) + 4096;
/// Largest record accepted before authentication, fragment headers included (the largest
/// request allowed then, CONNECT_CLIENT_AUTH with two 1,024-byte strings, is under 2.2 KiB).
pub const PRE_AUTH_MAX_RECORD: usize = 8192;

const LAST: u32 = 0x8000_0000;

/// A whole record and the number of input bytes it used.
pub type Record = (Vec<u8>, usize);

/// Record marking decoded as the bytes arrive: whole fragments are taken from the input (and
/// can be dropped from it) as soon as they are complete, so that no byte is scanned twice. The
/// limit counts every byte of the record on the wire, fragment headers included: a stream of
/// empty fragments reaches it like any other.
#[derive(Debug, Default)]
pub struct Assembler {
    body: Vec<u8>,
    wire: usize,
}

impl Assembler {
    /// Takes the whole fragments at the start of `buf` (the bytes received and not taken yet).
    /// Returns how many bytes it took and, when a last fragment was among them, the record
    /// (nothing after that fragment is taken). A fragment over [`MAX_FRAGMENT`], or a record
    /// whose bytes so far plus the next fragment's would pass `max_record`, is an error as soon
    /// as that fragment's header is there.
    pub fn take(&mut self, buf: &[u8], max_record: usize) -> Result<(usize, Option<Vec<u8>>), DecodeError> {
        let mut pos = 0usize;
        loop {
            let Some(h) = buf.get(pos..pos + 4) else { return Ok((pos, None)) };
            let h = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
            let len = (h & !LAST) as usize;
            if len > MAX_FRAGMENT {
                return Err(DecodeError::TooLong { what: "fragment", len: len as u64, max: MAX_FRAGMENT as u64 });
            }
            let wire = self.wire + 4 + len;
            if wire > max_record {
                return Err(DecodeError::TooLong { what: "record", len: wire as u64, max: max_record as u64 });
            }
            let Some(payload) = buf.get(pos + 4..pos + 4 + len) else { return Ok((pos, None)) };
            self.body.extend_from_slice(payload);
            self.wire = wire;
            pos += 4 + len;
            if h & LAST != 0 {
                self.wire = 0;
                return Ok((pos, Some(std::mem::take(&mut self.body))));
            }
        }
    }

    /// Bytes of the record in progress taken so far (headers included).
    pub fn pending(&self) -> usize {
        self.wire
    }
}

/// Decodes the first record of `buf`; `Ok(None)` when more bytes are needed. `max_record`
/// bounds the record's bytes on the wire, fragment headers included.
pub fn decode_record(buf: &[u8], max_record: usize) -> Result<Option<Record>, DecodeError> {
    match Assembler::default().take(buf, max_record)? {
        (used, Some(record)) => Ok(Some((record, used))),
        (_, None) => Ok(None),
    }
}

/// Frames `body` as one record of one fragment.
pub fn encode_record(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(LAST | body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}
