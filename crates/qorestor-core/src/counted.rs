//! [`Counted`]: a stream that counts the bytes crossing it both ways, for the network clients
//! that report what crossed the wire (replication's sessions, the OST client).

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A stream that counts every byte read from it and written to it (below any TLS layer put on
/// top, so records and handshakes count too). Clones of `bytes` see the count as it grows.
pub struct Counted<S> {
    /// The stream.
    pub inner: S,
    /// Bytes both ways so far.
    pub bytes: Arc<AtomicU64>,
}

impl<S: Read> Read for Counted<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<S: Write> Write for Counted<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_both_ways() {
        let bytes = Arc::new(AtomicU64::new(0));
        let mut c = Counted { inner: std::io::Cursor::new(b"hello".to_vec()), bytes: bytes.clone() };
        let mut buf = [0u8; 3];
        c.read_exact(&mut buf).unwrap();
        c.write_all(b"abcd").unwrap();
        assert_eq!(bytes.load(Ordering::Relaxed), 7);
    }
}
