//! Writing a stream: a pipeline that keeps both cores busy.
//!
//! ```text
//! caller thread            workers (one per core)               appender thread
//! buffer 1 MiB blocks ──▶  BLAKE3 each chunk, dedup lookup  ──▶  reorder by block number,
//! cut chunks (FastCDC)     (one lock per block), compress        append new chunks to the pack,
//!                          chunks that were not found            write recipe entries
//! ```
//! Blocks travel as owned buffers (no chunk bytes are copied between stages) and return to a
//! small pool that hands out the most recently returned buffer first. Blocks are small (1 MiB)
//! so that the few buffers in use stay in the CPU caches: with 4 MiB blocks taken from the pool
//! in turn, reading the input wrote every byte to memory and read it back (on a duplicate
//! generation the kernel's copy of the input was a third of all CPU time; 1 MiB blocks and the
//! last-in first-out pool took ~25% off that generation's CPU, measured alternately). Channels
//! are bounded, so memory stays at a few blocks per stage. The stream is published by
//! [`StreamWriter::finish`]: packs durable, recipe durable, catalog entry durable, in that
//! order; only then does `finish` return. A writer dropped without `finish` leaves no
//! visible stream (its chunks become garbage for the cleaner).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::catalog::{ContainerRecord, StreamRecord};
use crate::chunker::Chunker;
use crate::compress::{compress_into, Codec};
use crate::crypto::{chunk_aad, GroupCrypto};
use crate::engine::{now_secs, EngineInner, StreamInfo};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::format::RECORD_HEADER_LEN;
use crate::group::{GroupStore, Lookup, NewChunk, Successors, WriterPin};
use crate::pack::ChunkLoc;
use crate::pool::Pool;
use crate::recipe::{ImageMeta, RecipeEntry, RecipeHeader, RecipeWriter};

/// Input bytes per block (see the module documentation).
const BLOCK_LEN: usize = 1 << 20;
const QUEUE_DEPTH: usize = 4;
/// Chunks are hashed in the writer thread to start predictions once the appender reports at
/// least this percentage of duplicates in a block.
const PROBE_DUP_PERCENT: u32 = 50;

/// Live counters of a stream being written (for progress displays).
#[derive(Debug, Default)]
pub struct WriteCounters {
    /// Bytes accepted so far.
    pub logical_bytes: AtomicU64,
    /// Bytes of chunks that were processed (hashed, deduplicated, stored) so far.
    pub processed_bytes: AtomicU64,
    /// Raw bytes of chunks that had to be stored.
    pub new_raw_bytes: AtomicU64,
    /// Pack bytes added (record headers included).
    pub new_stored_bytes: AtomicU64,
    /// Chunks processed.
    pub chunks: AtomicU64,
    /// Chunks that had to be stored.
    pub new_chunks: AtomicU64,
    /// Chunks whose boundary came from a verified prediction instead of the chunker.
    pub predicted_chunks: AtomicU64,
}

impl WriteCounters {
    /// Processed bytes divided by stored bytes so far (dedup and compression together).
    pub fn reduction_so_far(&self) -> f64 {
        let p = self.processed_bytes.load(Ordering::Relaxed) as f64;
        let s = self.new_stored_bytes.load(Ordering::Relaxed).max(1) as f64;
        p / s
    }
}

/// Capacity of a block buffer: a full block plus the tail carried over from the previous one
/// (less than one maximum-size chunk).
const BUFFER_LEN: usize = BLOCK_LEN + crate::format::MAX_CHUNK_LEN as usize;

/// Reusable buffers of one block: input bytes (always `BUFFER_LEN` long, so they are zeroed
/// once, when allocated) and compressed payloads.
struct Buffers {
    data: Vec<u8>,
    payloads: Vec<u8>,
}

impl Buffers {
    fn new() -> Self {
        Buffers { data: vec![0; BUFFER_LEN], payloads: Vec::with_capacity(BLOCK_LEN) }
    }
}

/// What the writer thread already knows about a chunk it cut.
#[derive(Clone, Copy)]
enum Known {
    /// Nothing: the worker hashes it and looks it up.
    Nothing,
    /// Its fingerprint (hashed while probing, not found): the worker looks it up again.
    Hashed(Fingerprint),
    /// Its fingerprint and where it is stored (a verified prediction or a probe hit).
    Located(Fingerprint, ChunkLoc),
}

struct Block {
    seq: u64,
    bufs: Buffers,
    cuts: Vec<u32>,
    known: Vec<Known>,
}

struct HashedBlock {
    block: Block,
    fps: Vec<Fingerprint>,
    found: Vec<Lookup>,
    /// Per chunk: codec and end offset in `block.bufs.payloads` (for chunks not found).
    encodings: Vec<(Codec, usize)>,
    /// Sealing a payload failed (the system random source, in practice): the stream fails.
    failed: Option<Error>,
}

/// A stream being written. Implements [`Write`]; call [`StreamWriter::finish`] to publish it.
pub struct StreamWriter {
    engine: Arc<EngineInner>,
    group: Arc<GroupStore>,
    container: ContainerRecord,
    name: String,
    stream_id: u64,
    chunker: Chunker,
    /// How chunks are named (and, in the workers, sealed).
    crypto: GroupCrypto,
    bufs: Buffers,
    /// Bytes of `bufs.data` filled with input.
    filled: usize,
    /// The fill at which the next block is cut: a block's length past the tail carried over,
    /// so that every cut sees new bytes even when chunks are longer than a block.
    block_end: usize,
    cuts: Vec<u32>,
    known: Vec<Known>,
    /// The chunks expected next, while the stream repeats stored data.
    predictor: Option<Successors>,
    /// Percentage of duplicate chunks in the last block the appender stored.
    recent_dup_percent: Arc<AtomicU32>,
    seq: u64,
    to_workers: Option<Sender<Block>>,
    workers: Vec<JoinHandle<()>>,
    appender: Option<JoinHandle<Result<RecipeWriter>>>,
    pool: Pool<Buffers>,
    counters: Arc<WriteCounters>,
    /// Keeps the packs this stream references safe from the cleaner until it is published.
    pin: Arc<WriterPin>,
    /// The container's quota and the logical bytes of its other live streams at the start.
    container_quota: Option<(u64, u64)>,
}

fn worker_loop(
    group: Arc<GroupStore>,
    pin: Arc<WriterPin>,
    crypto: GroupCrypto,
    level: Option<i32>,
    rx: Receiver<Block>,
    tx: Sender<HashedBlock>,
) {
    let (mut ask, mut answers) = (Vec::new(), Vec::new());
    for mut block in rx {
        let mut fps = Vec::with_capacity(block.cuts.len());
        let mut found = Vec::with_capacity(block.cuts.len());
        let mut start = 0usize;
        for (&end, known) in block.cuts.iter().zip(&block.known) {
            let (fp, loc) = match *known {
                Known::Nothing => (crypto.fingerprint(&block.bufs.data[start..end as usize]), None),
                Known::Hashed(fp) => (fp, None),
                Known::Located(fp, loc) => (fp, Some(loc)),
            };
            fps.push(fp);
            found.push(loc);
            start = end as usize;
        }
        // Look up, under one lock, the chunks whose location is not known yet.
        ask.clear();
        ask.extend(fps.iter().zip(&found).filter(|(_, l)| l.is_none()).map(|(fp, _)| *fp));
        group.lookup_batch(&pin, &ask, &mut answers);
        let mut answer = answers.iter();
        for l in found.iter_mut().filter(|l| l.is_none()) {
            *l = *answer.next().expect("one answer per question");
        }
        let Buffers { data, payloads } = &mut block.bufs;
        payloads.clear();
        let mut encodings = Vec::with_capacity(fps.len());
        let mut failed = None;
        let mut start = 0usize;
        for (i, &end) in block.cuts.iter().enumerate() {
            let raw = &data[start..end as usize];
            start = end as usize;
            let codec = match (found[i], crypto.keys()) {
                (Some(_), _) => Codec::Raw,
                (None, None) => level.map_or(Codec::Raw, |level| compress_into(raw, level, payloads)),
                (None, Some(keys)) => {
                    // Key id and nonce first, then the payload, sealed in place.
                    let at = payloads.len();
                    payloads.extend_from_slice(&[0; 16]);
                    let inner = level.map_or(Codec::Raw, |level| compress_into(raw, level, payloads));
                    if inner == Codec::Raw {
                        payloads.extend_from_slice(raw);
                    }
                    let sealed = inner.sealed();
                    if let Err(e) = keys.seal(&chunk_aad(&fps[i], raw.len() as u32, sealed), payloads, at) {
                        failed.get_or_insert(e);
                    }
                    sealed
                }
            };
            encodings.push((codec, payloads.len()));
        }
        let out = HashedBlock { block, fps, found, encodings, failed };
        if tx.send(out).is_err() {
            return;
        }
    }
}

fn append_block(
    group: &GroupStore,
    pin: &WriterPin,
    hb: &HashedBlock,
    recipe: &mut RecipeWriter,
    counters: &WriteCounters,
) -> Result<()> {
    let mut chunks = Vec::with_capacity(hb.fps.len());
    let mut start = 0usize;
    let mut pstart = 0usize;
    for (i, &end) in hb.block.cuts.iter().enumerate() {
        let raw = &hb.block.bufs.data[start..end as usize];
        let (codec, pend) = hb.encodings[i];
        let new = match hb.found[i] {
            Some(_) => None,
            None => Some(NewChunk {
                fp: hb.fps[i],
                raw_len: raw.len() as u32,
                codec,
                payload: if codec == Codec::Raw { raw } else { &hb.block.bufs.payloads[pstart..pend] },
            }),
        };
        chunks.push((hb.found[i], new));
        start = end as usize;
        pstart = pend;
    }
    let mut placed = Vec::with_capacity(chunks.len());
    group.store_batch(pin, &chunks, &mut placed)?;
    let mut start = 0u32;
    for (i, (loc, appended)) in placed.iter().enumerate() {
        let raw_len = hb.block.cuts[i] - start;
        start = hb.block.cuts[i];
        recipe.push(&RecipeEntry { fp: hb.fps[i], raw_len, loc: *loc })?;
        if *appended {
            counters.new_chunks.fetch_add(1, Ordering::Relaxed);
            counters.new_raw_bytes.fetch_add(raw_len as u64, Ordering::Relaxed);
            counters.new_stored_bytes.fetch_add(loc.stored_len as u64 + RECORD_HEADER_LEN as u64, Ordering::Relaxed);
        }
        counters.chunks.fetch_add(1, Ordering::Relaxed);
        counters.processed_bytes.fetch_add(raw_len as u64, Ordering::Relaxed);
    }
    Ok(())
}

fn appender_loop(
    group: Arc<GroupStore>,
    pin: Arc<WriterPin>,
    mut recipe: RecipeWriter,
    rx: Receiver<HashedBlock>,
    pool: Pool<Buffers>,
    counters: Arc<WriteCounters>,
    recent_dup_percent: Arc<AtomicU32>,
) -> Result<RecipeWriter> {
    let mut next = 0u64;
    let mut waiting = BTreeMap::new();
    for hb in rx {
        waiting.insert(hb.block.seq, hb);
        while let Some(mut hb) = waiting.remove(&next) {
            if let Some(e) = hb.failed.take() {
                return Err(e);
            }
            let new_before = counters.new_chunks.load(Ordering::Relaxed);
            append_block(&group, &pin, &hb, &mut recipe, &counters)?;
            let new = counters.new_chunks.load(Ordering::Relaxed) - new_before;
            let n = hb.block.cuts.len().max(1) as u64;
            recent_dup_percent.store((100 * (n - new.min(n)) / n) as u32, Ordering::Relaxed);
            next += 1;
            pool.put(hb.block.bufs);
        }
    }
    if !waiting.is_empty() {
        return Err(Error::internal("stream pipeline stopped with blocks missing"));
    }
    Ok(recipe)
}

impl StreamWriter {
    pub(crate) fn start(
        engine: Arc<EngineInner>,
        group: Arc<GroupStore>,
        container: ContainerRecord,
        name: String,
        inherited: &[RecipeEntry],
        image: Option<ImageMeta>,
    ) -> Result<Self> {
        let container_quota = crate::engine::container_quota(&engine.catalog, &container, &name)?;
        let stream_id = engine.catalog.next_id()?;
        let header = RecipeHeader {
            group_id: group.record().id,
            stream_id,
            created: now_secs(),
            container: container.name.clone(),
            stream: name.clone(),
            image,
        };
        let mut recipe = RecipeWriter::create(group.recipes_dir(), &header)?;
        // A stream started from a prefix of another (see `Engine::create_stream_from_prefix`).
        for e in inherited {
            recipe.push(e)?;
        }
        let crypto = group.crypto()?;
        let chunker = crypto.chunker(group.record().chunking)?;
        let level = group.compression().zstd_level();
        let counters = Arc::new(WriteCounters::default());
        let (to_workers, from_writer) = bounded::<Block>(QUEUE_DEPTH);
        let (to_appender, from_workers) = bounded::<HashedBlock>(QUEUE_DEPTH);
        let pool = Pool::new(QUEUE_DEPTH * 2 + 4);
        let pin = Arc::new(group.pin_writer());
        let nworkers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
        let mut workers = Vec::with_capacity(nworkers);
        for i in 0..nworkers {
            let (g, p, rx, tx) = (group.clone(), pin.clone(), from_writer.clone(), to_appender.clone());
            let k = crypto.clone();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("qorestor-hash-{i}"))
                    .spawn(move || worker_loop(g, p, k, level, rx, tx))
                    .map_err(|e| Error::io("spawn worker", "", e))?,
            );
        }
        drop(to_appender);
        let recent_dup_percent = Arc::new(AtomicU32::new(0));
        let (g, p, c, d) = (group.clone(), pin.clone(), counters.clone(), recent_dup_percent.clone());
        let returned = pool.clone();
        let appender = std::thread::Builder::new()
            .name("qorestor-append".into())
            .spawn(move || appender_loop(g, p, recipe, from_workers, returned, c, d))
            .map_err(|e| Error::io("spawn appender", "", e))?;
        Ok(StreamWriter {
            engine,
            group,
            container,
            name,
            stream_id,
            chunker,
            crypto,
            bufs: Buffers::new(),
            filled: 0,
            block_end: BLOCK_LEN,
            cuts: Vec::new(),
            known: Vec::new(),
            predictor: None,
            recent_dup_percent,
            seq: 0,
            to_workers: Some(to_workers),
            workers,
            appender: Some(appender),
            pool,
            counters,
            pin,
            container_quota,
        })
    }

    /// Fails once the container would exceed its quota with the bytes accepted so far.
    fn check_quota(&self) -> Result<()> {
        if let Some((quota, others)) = self.container_quota {
            let used = others + self.counters.logical_bytes.load(Ordering::Relaxed);
            if used > quota {
                let name = self.container.name.clone();
                return Err(Error::QuotaExceeded { what: "container", name, quota, used });
            }
        }
        Ok(())
    }

    /// Pins the packs of chunks this writer inherited without a lookup (a stream started from a
    /// prefix of another, `Engine::create_stream_from_prefix`); false, pinning nothing, if one
    /// of them is being reclaimed (see [`GroupStore::pin_packs`]).
    pub(crate) fn pin_inherited(&self, packs: &[u32]) -> bool {
        self.group.pin_packs(&self.pin, packs)
    }

    /// Live counters for progress displays.
    pub fn counters(&self) -> Arc<WriteCounters> {
        self.counters.clone()
    }

    /// Cuts the buffered bytes into chunks and sends the complete ones to the workers.
    ///
    /// Predictive chunking: while the stream repeats stored data, the next chunk is most
    /// likely the one stored after the previous chunk in its pack. The prediction is checked by
    /// hashing exactly that span: if the BLAKE3 matches, the bytes are that chunk and the
    /// content-defined chunker, which depends only on the bytes since the chunk start, would
    /// have cut at the same place (except after a chunk that ended a stream early, which only
    /// moves one boundary: data is never affected), so the gear scan is skipped. A mismatch
    /// falls back to the chunker. Predictions start from a probe: once the appender reports a
    /// block mostly of duplicates, chunks cut by the chunker are hashed here and looked up.
    fn cut_block(&mut self, eof: bool) -> usize {
        let data = &self.bufs.data[..self.filled];
        let max = self.chunker.params().max as usize;
        let probing = self.recent_dup_percent.load(Ordering::Relaxed) >= PROBE_DUP_PERCENT;
        let mut pos = 0usize;
        while pos < data.len() {
            if let Some(pred) = self.predictor.as_mut() {
                match pred.peek() {
                    Some((e, loc)) if pos + e.raw_len as usize <= data.len() => {
                        let end = pos + e.raw_len as usize;
                        if self.crypto.fingerprint(&data[pos..end]) == e.fp {
                            self.cuts.push(end as u32);
                            self.known.push(Known::Located(e.fp, loc));
                            self.counters.predicted_chunks.fetch_add(1, Ordering::Relaxed);
                            pred.advance();
                            pos = end;
                            continue;
                        }
                        self.predictor = None;
                    }
                    Some(_) if !eof => break,
                    _ => self.predictor = None,
                }
            }
            let rest = &data[pos..];
            let len = self.chunker.cut(rest);
            if !(len < rest.len() || len == max || eof) {
                break;
            }
            let end = pos + len;
            let known = if probing {
                let fp = self.crypto.fingerprint(&data[pos..end]);
                match self.group.locate_with_successors(&self.pin, &fp) {
                    Some((loc, successors)) => {
                        self.predictor = successors;
                        Known::Located(fp, loc)
                    }
                    None => Known::Hashed(fp),
                }
            } else {
                Known::Nothing
            };
            self.cuts.push(end as u32);
            self.known.push(known);
            pos = end;
        }
        pos
    }

    fn dispatch(&mut self, eof: bool) -> Result<()> {
        self.cuts.clear();
        self.known.clear();
        let used = self.cut_block(eof);
        // No chunk ended (they can be longer than a block): a block's length more is read
        // before the next cut. A tail is shorter than a maximum chunk, so this fits the buffer.
        self.block_end = self.filled - used + BLOCK_LEN;
        debug_assert!(self.block_end <= BUFFER_LEN);
        if used == 0 {
            return Ok(());
        }
        let mut next = self.pool.take().unwrap_or_else(Buffers::new);
        let tail = self.filled - used;
        next.data[..tail].copy_from_slice(&self.bufs.data[used..self.filled]);
        self.filled = tail;
        let block = Block {
            seq: self.seq,
            bufs: std::mem::replace(&mut self.bufs, next),
            cuts: std::mem::take(&mut self.cuts),
            known: std::mem::take(&mut self.known),
        };
        self.seq += 1;
        let sent = self.to_workers.as_ref().is_some_and(|tx| tx.send(block).is_ok());
        if !sent {
            return Err(self.stop_pipeline().err().unwrap_or_else(|| Error::internal("stream pipeline stopped")));
        }
        Ok(())
    }

    /// Stops the pipeline and returns the recipe (or the first error).
    fn stop_pipeline(&mut self) -> Result<RecipeWriter> {
        self.to_workers.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        match self.appender.take() {
            Some(a) => a.join().unwrap_or_else(|_| Err(Error::internal("stream appender panicked"))),
            None => Err(Error::internal("stream pipeline already stopped")),
        }
    }

    /// Reads `r` to its end straight into the pipeline's buffers (1 MiB reads, no extra copy),
    /// calling `progress` with the bytes of each read.
    pub fn write_from(&mut self, r: &mut dyn Read, progress: &dyn crate::Progress) -> Result<u64> {
        let mut total = 0u64;
        loop {
            let n = loop {
                match r.read(&mut self.bufs.data[self.filled..self.block_end]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io("read input of", &self.name, e)),
                }
            };
            self.filled += n;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
            self.counters.logical_bytes.fetch_add(n as u64, Ordering::Relaxed);
            self.check_quota()?;
            progress.inc(n as u64);
            if self.filled >= self.block_end {
                self.dispatch(false)?;
            }
        }
    }

    /// Publishes the stream: the last chunks go through the pipeline, packs are made durable,
    /// then the recipe, then the catalog entry (replacing a stream of the same name).
    pub fn finish(mut self) -> Result<StreamInfo> {
        self.dispatch(true)?;
        let recipe = self.stop_pipeline()?;
        let published = Published {
            id: self.stream_id,
            name: self.name.clone(),
            new_chunks: self.counters.new_chunks.load(Ordering::Relaxed),
            new_stored_bytes: self.counters.new_stored_bytes.load(Ordering::Relaxed),
        };
        publish(&self.engine, &self.group, &self.container, &self.pin, recipe, published)
    }
}

/// What a writer knows of the stream it publishes besides its recipe.
pub(crate) struct Published {
    /// Stream id (its recipe's).
    pub id: u64,
    /// Stream name.
    pub name: String,
    /// Chunks it stored.
    pub new_chunks: u64,
    /// Pack bytes it added.
    pub new_stored_bytes: u64,
}

/// Publishes a stream whose chunks are all appended: packs made durable, then the recipe, then
/// the catalog entry (replacing a stream of the same name; to the recycle bin when it is on),
/// then the writer's pin goes.
pub(crate) fn publish(
    engine: &EngineInner,
    group: &GroupStore,
    container: &ContainerRecord,
    pin: &WriterPin,
    recipe: RecipeWriter,
    p: Published,
) -> Result<StreamInfo> {
    group.make_durable()?;
    let chunks = recipe.len();
    let logical_len = recipe.logical_len();
    recipe.finish()?;
    let record = StreamRecord {
        id: p.id,
        name: p.name,
        logical_len,
        chunks,
        new_chunks: p.new_chunks,
        new_stored_bytes: p.new_stored_bytes,
        created: now_secs(),
    };
    // With the recycle bin on, a replaced stream goes to the bin (its recipe stays).
    let replaced = match crate::engine::bin_retention(container) {
        Some(retention) => {
            let now = record.created;
            let expires = now.saturating_add(retention);
            engine.catalog.put_stream_binning_replaced(container.id, &record, now, expires)?;
            None
        }
        None => engine.catalog.put_stream(container.id, &record)?,
    };
    // Published: from here the cleaner finds this stream's chunks through its recipe.
    group.unpin(pin);
    if let Some(old) = replaced {
        engine.remove_recipe(group, old.id);
    }
    Ok(StreamInfo::new(&container.name, &record))
}

impl Write for StreamWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            let take = (self.block_end - self.filled).min(rest.len());
            self.bufs.data[self.filled..self.filled + take].copy_from_slice(&rest[..take]);
            self.filled += take;
            rest = &rest[take..];
            self.counters.logical_bytes.fetch_add(take as u64, Ordering::Relaxed);
            self.check_quota().map_err(io::Error::other)?;
            if self.filled >= self.block_end {
                self.dispatch(false).map_err(io::Error::other)?;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        if self.appender.is_some() {
            // Not finished: stop the threads; the recipe writer removes its temporary file.
            let _ = self.stop_pipeline();
        }
        self.group.unpin(&self.pin);
    }
}
