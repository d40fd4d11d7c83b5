//! One authenticated OST session's state and requests: [`Session::handle`] takes a request and
//! gives its answer, without I/O; [`Session::read_to`] writes a `Read`'s answer to the
//! connection (a restore's bytes go there straight from the engine's decoded segments).
//!
//! A session has at most one image open: being written (passthrough through the engine's
//! stream writer, or optimized through its client ingest) or being read. Images in use are
//! claimed in a registry shared by all sessions ([`Busy`]): deleting one answers busy. An image
//! being written is only published by `Close`; dropping the session (the connection ended, the
//! server stopped) drops the writer, which leaves no image.

use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;

use parking_lot::Mutex;
use qorestor_core::compress::Codec;
use qorestor_core::{
    ClientChunk, ClientIngest, ContainerKind, Engine, ErrorKind, ImageMeta, OwnedStreams, StatsScope, StreamReader,
    StreamWriter,
};

use crate::codec::{self, Chunking, FailCode, ImageInfo, LsuInfo, Message, WireChunk, WriteMode};

/// The images in use by any session, with the number of sessions using each.
#[derive(Default)]
pub struct Busy {
    images: Mutex<HashMap<(String, String), usize>>,
}

/// A session's claim on an image; released on drop.
struct Claim {
    busy: Arc<Busy>,
    key: (String, String),
}

impl Busy {
    /// Claims `lsu/name`; with `exclusive`, only if no session uses it.
    fn claim(self: &Arc<Self>, lsu: &str, name: &str, exclusive: bool) -> Option<Claim> {
        let key = (lsu.to_string(), name.to_string());
        let mut images = self.images.lock();
        let n = images.entry(key.clone()).or_insert(0);
        if exclusive && *n > 0 {
            return None;
        }
        *n += 1;
        Some(Claim { busy: self.clone(), key })
    }

    fn in_use(&self, lsu: &str, name: &str) -> bool {
        self.images.lock().get(&(lsu.to_string(), name.to_string())).is_some_and(|n| *n > 0)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut images = self.busy.images.lock();
        if let Some(n) = images.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                images.remove(&self.key);
            }
        }
    }
}

enum Sink {
    Passthrough(Box<StreamWriter>),
    Optimized(Box<ClientIngest>),
}

enum State {
    Idle,
    Writing { sink: Sink, _claim: Claim, lsu: String, name: String },
    Reading { reader: Box<StreamReader>, _claim: Claim, lsu: String, name: String },
}

/// An authenticated session (see the module documentation).
pub struct Session {
    engine: Engine,
    busy: Arc<Busy>,
    state: State,
}

type Answer = Result<Message, (FailCode, String)>;

fn engine_failure(e: qorestor_core::Error) -> (FailCode, String) {
    let code = match e.kind() {
        ErrorKind::NotFound => FailCode::NotFound,
        ErrorKind::AlreadyExists => FailCode::Exists,
        ErrorKind::InvalidInput | ErrorKind::Conflict => FailCode::Invalid,
        ErrorKind::QuotaExceeded | ErrorKind::OutOfSpace => FailCode::NoSpace,
        _ => FailCode::Internal,
    };
    (code, e.to_string())
}

fn protocol(detail: impl Into<String>) -> (FailCode, String) {
    (FailCode::Protocol, detail.into())
}

impl Session {
    /// A new session on `engine`, sharing the registry of images in use.
    pub fn new(engine: Engine, busy: Arc<Busy>) -> Session {
        Session { engine, busy, state: State::Idle }
    }

    /// The session's mode and open image, for the server's session list.
    pub fn describe(&self) -> String {
        match &self.state {
            State::Idle => "idle".into(),
            State::Writing { sink: Sink::Passthrough(_), lsu, name, .. } => {
                format!("mode=passthrough image={lsu}/{name}")
            }
            State::Writing { sink: Sink::Optimized(_), lsu, name, .. } => format!("mode=optimized image={lsu}/{name}"),
            State::Reading { lsu, name, .. } => format!("mode=read image={lsu}/{name}"),
        }
    }

    /// Carries out one request and encodes its answer as a frame into `frame` (cleared; its
    /// allocation is reused). A `Read` is better answered by [`Session::read_to`].
    pub fn handle_into(&mut self, request: Message, frame: &mut Vec<u8>) {
        codec::encode_into(&self.handle(request), frame);
    }

    /// Answers a `Read` of `len` bytes at `offset` by writing its `Data` frame to `out`, the
    /// bytes straight from the engine's decoded segments ([`codec::write_data`]), or its
    /// `Failed` frame, encoded in `frame`. Only writing to `out` can fail.
    pub fn read_to(&mut self, offset: u64, len: u32, frame: &mut Vec<u8>, out: &mut dyn Write) -> std::io::Result<()> {
        let mut sent = Ok(());
        match self.read_with(offset, len, |parts| sent = codec::write_data(out, parts)) {
            Ok(()) => sent,
            Err((code, message)) => {
                codec::encode_into(&Message::Failed { code, message }, frame);
                out.write_all(frame)
            }
        }
    }

    /// Carries out one request; every request gets exactly one answer.
    pub fn handle(&mut self, request: Message) -> Message {
        let name = request.name();
        match self.answer(request) {
            Ok(m) => m,
            Err((code, message)) => {
                // A failed write abandons the image: it cannot be completed consistently.
                if matches!(name, "Write" | "Ask" | "Append" | "Close") {
                    self.state = State::Idle;
                }
                Message::Failed { code, message }
            }
        }
    }

    fn lsu(&self, lsu: &str) -> Result<OwnedStreams, (FailCode, String)> {
        self.engine.owned_streams(lsu, ContainerKind::Ost).map_err(engine_failure)
    }

    fn answer(&mut self, request: Message) -> Answer {
        match request {
            Message::ListLsus => self.list_lsus(),
            Message::Create { lsu, name, date, copy, properties, mode } => {
                self.create(lsu, name, ImageMeta { date, copy, properties }, mode)
            }
            Message::Write(data) => match &mut self.state {
                State::Writing { sink: Sink::Passthrough(w), .. } => {
                    w.write_all(&data).map_err(|e| (FailCode::Internal, e.to_string()))?;
                    Ok(Message::Done)
                }
                _ => Err(protocol("Write without an image open for passthrough writing")),
            },
            Message::Ask(fps) => match &mut self.state {
                State::Writing { sink: Sink::Optimized(ingest), .. } => Ok(Message::Missing(ingest.missing(&fps))),
                _ => Err(protocol("Ask without an image open for optimized writing")),
            },
            Message::Append { entries, chunks } => match &mut self.state {
                State::Writing { sink: Sink::Optimized(ingest), .. } => {
                    let chunks: Vec<ClientChunk<'_>> = chunks.iter().map(client_chunk).collect();
                    ingest.append(&entries, &chunks).map_err(engine_failure)?;
                    Ok(Message::Done)
                }
                _ => Err(protocol("Append without an image open for optimized writing")),
            },
            Message::Close => match std::mem::replace(&mut self.state, State::Idle) {
                State::Writing { sink, .. } => {
                    let info = match sink {
                        Sink::Passthrough(w) => (*w).finish(),
                        Sink::Optimized(i) => (*i).publish(),
                    }
                    .map_err(engine_failure)?;
                    Ok(Message::Closed { logical_bytes: info.logical_bytes })
                }
                State::Reading { .. } => Ok(Message::Done),
                State::Idle => Err(protocol("Close without an open image")),
            },
            Message::Abort => match std::mem::replace(&mut self.state, State::Idle) {
                State::Writing { .. } => Ok(Message::Done),
                other => {
                    self.state = other;
                    Err(protocol("Abort without an image being written"))
                }
            },
            Message::Open { lsu, name } => self.open(lsu, name),
            Message::Read { offset, len } => {
                let mut data = Vec::new();
                self.read_with(offset, len, |parts| data = parts.concat())?;
                Ok(Message::Data(data))
            }
            Message::Info { lsu, name } => Ok(Message::Image(self.image_info(&self.lsu(&lsu)?, &name)?)),
            Message::List { lsu } => {
                let owned = self.lsu(&lsu)?;
                let streams = self.engine.streams(&lsu).map_err(engine_failure)?;
                let images = streams.iter().map(|s| self.image_info(&owned, &s.name)).collect::<Result<_, _>>()?;
                Ok(Message::Images(images))
            }
            Message::Delete { lsu, name } => {
                let owned = self.lsu(&lsu)?;
                if self.busy.in_use(&lsu, &name) {
                    return Err((FailCode::Busy, format!("image {lsu}/{name} is being written or read")));
                }
                owned.delete_stream(&name).map_err(engine_failure)?;
                Ok(Message::Done)
            }
            other => Err(protocol(format!("{} is not a request", other.name()))),
        }
    }

    fn list_lsus(&self) -> Answer {
        // New data may use the free space above the space reserve.
        let space = self.engine.space().map_err(engine_failure)?;
        let free = space.free_bytes.saturating_sub(space.reserve_bytes);
        let mut lsus = Vec::new();
        for c in self.engine.containers(None).map_err(engine_failure)? {
            if c.kind != ContainerKind::Ost {
                continue;
            }
            let group = self.engine.storage_group(&c.storage_group).map_err(engine_failure)?;
            let scope = StatsScope::StorageGroup(c.storage_group.clone());
            let physical = self.engine.stats(&scope).map_err(engine_failure)?.stored_bytes;
            lsus.push(LsuInfo {
                name: c.name.clone(),
                capacity: c.quota_bytes.unwrap_or(free.saturating_add(physical)),
                logical_bytes: c.logical_bytes,
                physical_bytes: physical,
                optimized: group.encryption.is_none(),
                properties: format!("storage_group={}\ncompression={}", group.name, group.compression.as_str()),
            });
        }
        Ok(Message::Lsus(lsus))
    }

    fn create(&mut self, lsu: String, name: String, meta: ImageMeta, mode: WriteMode) -> Answer {
        if !matches!(self.state, State::Idle) {
            return Err(protocol("Create while an image is open (close it first)"));
        }
        let owned = self.lsu(&lsu)?;
        let params = owned.ingest_params().map_err(engine_failure)?;
        let Some(claim) = self.busy.claim(&lsu, &name, true) else {
            return Err((FailCode::Busy, format!("image {lsu}/{name} is being written or read")));
        };
        let sink = match mode {
            WriteMode::Passthrough => {
                Sink::Passthrough(Box::new(owned.create_image(&name, &meta).map_err(engine_failure)?))
            }
            WriteMode::Optimized if params.keyed => {
                return Err((
                    FailCode::OptimizedUnavailable,
                    format!(
                        "storage unit {lsu:?} is in an encrypted storage group, whose chunker and fingerprints are \
                         keyed: a client cannot cut matching chunks (use passthrough)"
                    ),
                ))
            }
            WriteMode::Optimized => {
                Sink::Optimized(Box::new(owned.start_ingest(&name, &meta).map_err(engine_failure)?))
            }
        };
        let c = params.chunking;
        let chunking =
            Chunking { min: c.min, avg: c.avg, max: c.max, zstd_level: params.compression.zstd_level().unwrap_or(0) };
        self.state = State::Writing { sink, _claim: claim, lsu, name };
        Ok(Message::Created(chunking))
    }

    fn image_info(&self, owned: &OwnedStreams, name: &str) -> Result<ImageInfo, (FailCode, String)> {
        let lsu = owned.container();
        let s = self.engine.stream(lsu, name).map_err(engine_failure)?;
        let meta = owned.image_meta(name).map_err(engine_failure)?;
        let meta = meta.unwrap_or(ImageMeta { date: s.created, copy: 1, properties: String::new() });
        Ok(ImageInfo {
            name: s.name,
            logical_bytes: s.logical_bytes,
            date: meta.date,
            copy: meta.copy,
            properties: meta.properties,
        })
    }

    fn open(&mut self, lsu: String, name: String) -> Answer {
        if !matches!(self.state, State::Idle) {
            return Err(protocol("Open while an image is open (close it first)"));
        }
        let owned = self.lsu(&lsu)?;
        let claim = self.busy.claim(&lsu, &name, false).expect("a shared claim is always granted");
        let info = self.image_info(&owned, &name)?;
        let reader = self.engine.open_stream(&lsu, &name).map_err(engine_failure)?;
        self.state = State::Reading { reader: Box::new(reader), _claim: claim, lsu, name };
        Ok(Message::Opened(info))
    }

    /// Hands the image's bytes a `Read` asks for (`len` is at most [`codec::MAX_DATA`], as the
    /// decoder checked; fewer at the image's end) to `f`, as slices of the engine's decoded
    /// segments. Nothing is handed over when the bytes cannot all be read.
    fn read_with(&mut self, offset: u64, len: u32, f: impl FnOnce(&[&[u8]])) -> Result<(), (FailCode, String)> {
        let State::Reading { reader, .. } = &mut self.state else {
            return Err(protocol("Read without an image open for reading"));
        };
        reader.seek(SeekFrom::Start(offset)).map_err(|e| (FailCode::Internal, e.to_string()))?;
        reader.with_next(len as u64, f).map_err(engine_failure)?;
        Ok(())
    }
}

fn client_chunk(c: &WireChunk) -> ClientChunk<'_> {
    let codec = if c.codec == 1 { Codec::Zstd } else { Codec::Raw };
    ClientChunk { fp: c.fp, raw_len: c.raw_len, codec, payload: &c.payload }
}
