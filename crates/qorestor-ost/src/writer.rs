//! Writing an image: [`ImageWriter`] (`impl Write`), in passthrough or optimized mode.
//!
//! Optimized: bytes are cut with the storage group's parameters (the server announces them in
//! `Created`), fingerprinted, and gathered in batches of at most [`BATCH_BYTES`] and
//! [`codec::MAX_BATCH`] chunks. Each batch's fingerprints are asked at once (`Ask`), and up to
//! [`WINDOW`] batches are in flight: the client goes on cutting while the server answers. When
//! the oldest batch's answer arrives, only its missing chunks are compressed and sent with the
//! batch's recipe entries (`Append`), each chunk once (a chunk sent in one of the last batches
//! is not sent again). Memory: at most `WINDOW + 1` batches' bytes.
//!
//! Passthrough: bytes go in `Write` frames of [`PASSTHROUGH_FRAME`] bytes, their answers read
//! later (at most [`WINDOW`] × 4 unanswered).

use std::collections::{HashSet, VecDeque};
use std::io::{self, Write};

use qorestor_core::compress::{compress_into, Codec};
use qorestor_core::{ChunkParams, Chunker, Fingerprint};

use crate::client::{Expect, OstClient};
use crate::codec::{self, FailCode, Message, WireChunk, WriteMode};
use crate::error::{Error, Result};

/// Raw bytes of one optimized batch, at most.
pub const BATCH_BYTES: usize = 4 << 20;
/// Batches asked and not yet sent, at most.
pub const WINDOW: usize = 2;
/// Bytes per passthrough `Write`.
pub const PASSTHROUGH_FRAME: usize = 1 << 20;

/// How a client writes (QoreStor's client modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientMode {
    /// Optimized where the storage unit allows it, else passthrough.
    #[default]
    Auto,
    /// Always raw bytes.
    Passthrough,
    /// Always optimized; refused where the storage unit does not allow it.
    Dedupe,
}

impl std::str::FromStr for ClientMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<ClientMode> {
        match s {
            "auto" => Ok(ClientMode::Auto),
            "passthrough" => Ok(ClientMode::Passthrough),
            "dedupe" => Ok(ClientMode::Dedupe),
            _ => Err(Error::Invalid { what: "mode", value: s.into(), why: "use auto, passthrough or dedupe".into() }),
        }
    }
}

/// An image's metadata as the client gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// The image's date, seconds since the Unix epoch.
    pub date: u64,
    /// Copy number.
    pub copy: u32,
    /// Free-form properties.
    pub properties: String,
}

impl Default for ImageSpec {
    /// Dated now, copy 1, no properties.
    fn default() -> Self {
        let date = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        ImageSpec { date, copy: 1, properties: String::new() }
    }
}

/// One optimized batch: its bytes and where its chunks end.
struct Batch {
    data: Vec<u8>,
    ends: Vec<u32>,
    fps: Vec<Fingerprint>,
}

impl Batch {
    fn chunk(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.data[start..self.ends[i] as usize]
    }
}

struct Optimizer {
    chunker: Chunker,
    level: i32,
    /// Bytes not yet in a batch.
    input: Vec<u8>,
    cuts: Vec<u32>,
    /// Batches asked, oldest first.
    waiting: VecDeque<Batch>,
    /// Fingerprints sent in the last batches (not sent again).
    recent: VecDeque<HashSet<Fingerprint>>,
    payload: Vec<u8>,
}

enum Sink {
    Passthrough(Vec<u8>),
    Optimized(Box<Optimizer>),
}

/// An image being written. Call [`ImageWriter::close`] to publish it; dropping it abandons the
/// image (the server removes it).
pub struct ImageWriter<'a> {
    client: &'a mut OstClient,
    sink: Sink,
    logical: u64,
    done: bool,
}

impl<'a> ImageWriter<'a> {
    pub(crate) fn create(
        client: &'a mut OstClient,
        lsu: &str,
        name: &str,
        spec: &ImageSpec,
        mode: ClientMode,
    ) -> Result<ImageWriter<'a>> {
        let create = |mode| Message::Create {
            lsu: lsu.into(),
            name: name.into(),
            date: spec.date,
            copy: spec.copy,
            properties: spec.properties.clone(),
            mode,
        };
        let first = if mode == ClientMode::Passthrough { WriteMode::Passthrough } else { WriteMode::Optimized };
        let answer = match client.call(&create(first)) {
            Err(e) if mode == ClientMode::Auto && e.fail_code() == Some(FailCode::OptimizedUnavailable) => {
                client.call(&create(WriteMode::Passthrough)).map(|a| (a, WriteMode::Passthrough))
            }
            other => other.map(|a| (a, first)),
        };
        let (chunking, used) = match answer? {
            (Message::Created(c), used) => (c, used),
            (other, _) => return Err(client.unexpected("the created image", &other)),
        };
        let sink = match used {
            WriteMode::Passthrough => Sink::Passthrough(Vec::with_capacity(PASSTHROUGH_FRAME)),
            WriteMode::Optimized => {
                let params = ChunkParams { min: chunking.min, avg: chunking.avg, max: chunking.max };
                let chunker = Chunker::new(params).map_err(|e| Error::Protocol {
                    peer: client.server.clone(),
                    detail: format!("the server announced chunking it cannot use: {e}"),
                })?;
                Sink::Optimized(Box::new(Optimizer {
                    chunker,
                    level: chunking.zstd_level,
                    input: Vec::with_capacity(BATCH_BYTES),
                    cuts: Vec::new(),
                    waiting: VecDeque::new(),
                    recent: VecDeque::new(),
                    payload: Vec::new(),
                }))
            }
        };
        Ok(ImageWriter { client, sink, logical: 0, done: false })
    }

    /// Whether the image is written optimized (client-side dedup).
    pub fn is_optimized(&self) -> bool {
        matches!(self.sink, Sink::Optimized(_))
    }

    /// Bytes accepted so far.
    pub fn logical_bytes(&self) -> u64 {
        self.logical
    }

    fn push(&mut self, data: &[u8]) -> Result<()> {
        self.logical += data.len() as u64;
        match &mut self.sink {
            Sink::Passthrough(buf) => {
                let mut rest = data;
                while !rest.is_empty() {
                    let take = (PASSTHROUGH_FRAME - buf.len()).min(rest.len());
                    buf.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if buf.len() == PASSTHROUGH_FRAME {
                        let frame = std::mem::replace(buf, Vec::with_capacity(PASSTHROUGH_FRAME));
                        send_write(self.client, frame)?;
                    }
                }
                Ok(())
            }
            Sink::Optimized(o) => {
                let mut rest = data;
                while !rest.is_empty() {
                    let take = (BATCH_BYTES - o.input.len()).min(rest.len());
                    o.input.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if o.input.len() == BATCH_BYTES {
                        o.cut_batch(self.client, false)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Sends what is buffered and publishes the image; returns its length.
    pub fn close(mut self) -> Result<u64> {
        self.done = true;
        match &mut self.sink {
            Sink::Passthrough(buf) => {
                if !buf.is_empty() {
                    send_write(self.client, std::mem::take(buf))?;
                }
            }
            Sink::Optimized(o) => {
                while !o.input.is_empty() {
                    o.cut_batch(self.client, true)?;
                }
                while !o.waiting.is_empty() {
                    o.send_oldest(self.client)?;
                }
            }
        }
        match self.client.call(&Message::Close)? {
            Message::Closed { logical_bytes } if logical_bytes == self.logical => Ok(logical_bytes),
            Message::Closed { logical_bytes } => Err(Error::Protocol {
                peer: self.client.server.clone(),
                detail: format!("the server stored {logical_bytes} bytes of the {} sent", self.logical),
            }),
            other => Err(self.client.unexpected("the closed image", &other)),
        }
    }
}

fn send_write(client: &mut OstClient, frame: Vec<u8>) -> Result<()> {
    client.send(&Message::Write(frame))?;
    client.pending.push_back(Expect::Done);
    while client.pending.len() > WINDOW * 4 {
        client.settle_one()?;
    }
    Ok(())
}

impl Optimizer {
    /// Cuts the buffered input into one batch (all of it when `eof`) and asks its fingerprints;
    /// sends the oldest batch once more than [`WINDOW`] wait.
    fn cut_batch(&mut self, client: &mut OstClient, eof: bool) -> Result<()> {
        self.cuts.clear();
        let mut used = self.chunker.cut_all(&self.input, eof, &mut self.cuts);
        if self.cuts.len() > codec::MAX_BATCH {
            self.cuts.truncate(codec::MAX_BATCH);
            used = *self.cuts.last().expect("not empty") as usize;
        }
        if used == 0 {
            // No chunk ended in a full buffer cannot happen (a chunk is at most 4 MiB); at eof
            // the input was empty.
            return Ok(());
        }
        let tail = self.input.split_off(used);
        let data = std::mem::replace(&mut self.input, tail);
        self.input.reserve(BATCH_BYTES.saturating_sub(self.input.len()));
        let mut fps = Vec::with_capacity(self.cuts.len());
        let mut start = 0usize;
        for &end in &self.cuts {
            fps.push(Fingerprint::of(&data[start..end as usize]));
            start = end as usize;
        }
        client.send(&Message::Ask(fps.clone()))?;
        client.pending.push_back(Expect::Missing);
        self.waiting.push_back(Batch { data, ends: self.cuts.clone(), fps });
        while self.waiting.len() > WINDOW {
            self.send_oldest(client)?;
        }
        Ok(())
    }

    /// Reads the oldest batch's answer and sends its entries and missing chunks.
    fn send_oldest(&mut self, client: &mut OstClient) -> Result<()> {
        let batch = self.waiting.pop_front().expect("a batch waits");
        let missing = client.settle_one()?.ok_or_else(|| Error::Protocol {
            peer: client.server.clone(),
            detail: "no answer for an asked batch".into(),
        })?;
        if missing.len() != batch.fps.len() {
            let detail = format!("{} answers for {} fingerprints", missing.len(), batch.fps.len());
            return Err(Error::Protocol { peer: client.server.clone(), detail });
        }
        let mut sent_now = HashSet::new();
        let mut chunks = Vec::new();
        for (i, fp) in batch.fps.iter().enumerate() {
            if !missing[i] || self.recent.iter().any(|s| s.contains(fp)) || !sent_now.insert(*fp) {
                continue;
            }
            let raw = batch.chunk(i);
            self.payload.clear();
            let codec = match self.level {
                0 => Codec::Raw,
                level => compress_into(raw, level, &mut self.payload),
            };
            let (codec, payload) = match codec {
                Codec::Zstd => (1, self.payload.clone()),
                _ => (0, raw.to_vec()),
            };
            chunks.push(WireChunk { fp: *fp, raw_len: raw.len() as u32, codec, payload });
        }
        let mut start = 0u32;
        let entries = batch
            .ends
            .iter()
            .zip(&batch.fps)
            .map(|(&end, fp)| {
                let e = (*fp, end - start);
                start = end;
                e
            })
            .collect();
        client.send(&Message::Append { entries, chunks })?;
        client.pending.push_back(Expect::Done);
        self.recent.push_back(sent_now);
        if self.recent.len() > WINDOW {
            self.recent.pop_front();
        }
        Ok(())
    }
}

impl Write for ImageWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.push(data).map_err(io::Error::other)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ImageWriter<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Abandoned: the server removes the image. Pending answers are read and dropped
        // (a failure among them is what abandoned it).
        if self.client.send(&Message::Abort).is_ok() {
            self.client.pending.push_back(Expect::Done);
            while !self.client.pending.is_empty() {
                self.client.pending.pop_front();
                if let Err(Error::Io { .. } | Error::Wire { .. }) = self.client.answer() {
                    break;
                }
            }
        }
    }
}
