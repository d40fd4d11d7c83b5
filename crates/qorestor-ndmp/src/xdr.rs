//! XDR (RFC 4506) primitives: a bounds-checked [`Decoder`] over a byte slice and an
//! [`Encoder`] into a `Vec<u8>`. Every variable length read from the wire is checked against a
//! limit the caller gives before anything is allocated.

use crate::error::DecodeError;

/// Reads XDR items from a byte slice.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn pad(len: usize) -> usize {
    (4 - len % 4) % 4
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Decoder<'a> {
        Decoder { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated { what, need: n, have: self.remaining() });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// An unsigned 32-bit integer.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(what, 4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An unsigned 16-bit integer (sent as 4 bytes); larger values are refused.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        let v = self.u32(what)?;
        u16::try_from(v).map_err(|_| DecodeError::BadValue { what, value: v as u64 })
    }

    /// An unsigned hyper (64-bit) integer.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let hi = self.u32(what)? as u64;
        let lo = self.u32(what)? as u64;
        Ok(hi << 32 | lo)
    }

    /// Variable-length opaque data of at most `max` bytes.
    pub fn opaque(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(what)? as usize;
        if len > max {
            return Err(DecodeError::TooLong { what, len: len as u64, max: max as u64 });
        }
        let data = self.take(what, len)?;
        self.take(what, pad(len))?;
        Ok(data)
    }

    /// Fixed-length opaque data of `N` bytes.
    pub fn fixed<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(what, N)?);
        self.take(what, pad(N))?;
        Ok(out)
    }

    /// A string of at most `max` bytes (bytes that are not UTF-8 are replaced).
    pub fn string(&mut self, what: &'static str, max: usize) -> Result<String, DecodeError> {
        Ok(String::from_utf8_lossy(self.opaque(what, max)?).into_owned())
    }

    /// The element count of a variable-length array, at most `max`; also refuses a count
    /// whose elements (each at least `min_size` bytes) cannot fit in what is left.
    pub fn count(&mut self, what: &'static str, max: usize, min_size: usize) -> Result<usize, DecodeError> {
        let n = self.u32(what)? as usize;
        if n > max {
            return Err(DecodeError::TooLong { what, len: n as u64, max: max as u64 });
        }
        if n.saturating_mul(min_size) > self.remaining() {
            return Err(DecodeError::Truncated { what, need: n * min_size, have: self.remaining() });
        }
        Ok(n)
    }
}

/// Writes XDR items.
#[derive(Debug, Clone, Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// An unsigned 32-bit integer.
    pub fn u32(&mut self, v: u32) -> &mut Encoder {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// An unsigned hyper integer.
    pub fn u64(&mut self, v: u64) -> &mut Encoder {
        self.u32((v >> 32) as u32).u32(v as u32)
    }

    /// Variable-length opaque data.
    pub fn opaque(&mut self, data: &[u8]) -> &mut Encoder {
        self.u32(data.len() as u32);
        self.fixed(data)
    }

    /// Fixed-length opaque data (padded to 4 bytes).
    pub fn fixed(&mut self, data: &[u8]) -> &mut Encoder {
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(&[0u8; 3][..pad(data.len())]);
        self
    }

    /// A string.
    pub fn string(&mut self, s: &str) -> &mut Encoder {
        self.opaque(s.as_bytes())
    }
}
