//! Reading an image: [`ImageReader`] (`impl Read + Seek`), reads at any offset.
//!
//! Bytes come in `Read` requests of [`READ_LEN`] bytes; while one is consumed the next one
//! (sequentially after it) is already asked for, so sequential reads do not wait a round trip
//! per request. A seek elsewhere drops the prefetched answer.

use std::io::{self, Read, Seek, SeekFrom};

use crate::client::OstClient;
use crate::codec::{ImageInfo, Message, MAX_DATA};
use crate::error::{Error, Result};

/// Bytes per `Read` request.
pub const READ_LEN: usize = MAX_DATA;

/// An image open for reading. Dropping it closes the image on the server.
pub struct ImageReader<'a> {
    client: &'a mut OstClient,
    info: ImageInfo,
    pos: u64,
    /// Bytes held and the image offset of their first byte.
    buf: Vec<u8>,
    buf_start: u64,
    /// Offset of a `Read` sent and not yet answered.
    prefetch: Option<u64>,
    closed: bool,
}

impl<'a> ImageReader<'a> {
    pub(crate) fn new(client: &'a mut OstClient, info: ImageInfo) -> ImageReader<'a> {
        ImageReader { client, info, pos: 0, buf: Vec::new(), buf_start: 0, prefetch: None, closed: false }
    }

    /// The image's name, length, date, copy number and properties.
    pub fn info(&self) -> &ImageInfo {
        &self.info
    }

    fn ask(&mut self, offset: u64) -> Result<()> {
        let len = (self.info.logical_bytes - offset).min(READ_LEN as u64) as u32;
        self.client.send(&Message::Read { offset, len })?;
        self.prefetch = Some(offset);
        Ok(())
    }

    /// Reads the answer of the `Read` in flight.
    fn take_answer(&mut self) -> Result<Vec<u8>> {
        self.prefetch = None;
        match self.client.answer()? {
            Message::Data(d) => Ok(d),
            other => Err(self.client.unexpected("data", &other)),
        }
    }

    /// Fills the buffer with the bytes at `self.pos`.
    fn fill(&mut self) -> Result<()> {
        let pos = self.pos;
        if self.prefetch.is_some_and(|p| p != pos) {
            self.take_answer()?;
        }
        if self.prefetch.is_none() {
            self.ask(pos)?;
        }
        let data = self.take_answer()?;
        let expected = (self.info.logical_bytes - pos).min(READ_LEN as u64) as usize;
        if data.len() != expected {
            let detail = format!("{} bytes at offset {pos} where {expected} were asked", data.len());
            return Err(Error::Protocol { peer: self.client.server.clone(), detail });
        }
        self.buf = data;
        self.buf_start = pos;
        let next = pos + self.buf.len() as u64;
        if next < self.info.logical_bytes {
            self.ask(next)?;
        }
        Ok(())
    }

    /// Writes the rest of the image, from the current position, to `out` (each answer as it
    /// arrives, with the next one already asked for); returns the bytes written.
    pub fn copy_to(&mut self, out: &mut dyn std::io::Write) -> Result<u64> {
        let start = self.pos;
        while self.pos < self.info.logical_bytes {
            let in_buf = self.pos >= self.buf_start && self.pos < self.buf_start + self.buf.len() as u64;
            if !in_buf {
                self.fill()?;
            }
            let at = (self.pos - self.buf_start) as usize;
            out.write_all(&self.buf[at..]).map_err(|e| Error::Io {
                peer: "the output".into(),
                op: "write",
                source: e,
            })?;
            self.pos += (self.buf.len() - at) as u64;
        }
        Ok(self.pos - start)
    }

    /// Closes the image on the server.
    pub fn close(mut self) -> Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> Result<()> {
        self.closed = true;
        if self.prefetch.is_some() {
            self.take_answer()?;
        }
        match self.client.call(&Message::Close)? {
            Message::Done => Ok(()),
            other => Err(self.client.unexpected("done", &other)),
        }
    }
}

impl Read for ImageReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.info.logical_bytes || out.is_empty() {
            return Ok(0);
        }
        let in_buf = self.pos >= self.buf_start && self.pos < self.buf_start + self.buf.len() as u64;
        if !in_buf {
            self.fill().map_err(io::Error::other)?;
        }
        let at = (self.pos - self.buf_start) as usize;
        let n = out.len().min(self.buf.len() - at);
        out[..n].copy_from_slice(&self.buf[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ImageReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.info.logical_bytes.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the image's start"))?;
        Ok(self.pos)
    }
}

impl Drop for ImageReader<'_> {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.finish();
        }
    }
}
