//! The OST wire protocol's frames: [`encode`] and the pure decoder [`decode`] (fuzz target
//! `ost_wire`; byte tables in `docs/OST-PROTOCOL.md`).
//!
//! A frame is `length: u32 BE` (of the type byte and the body), `type: u8`, the body, then
//! `crc32: u32 BE` of type and body. Integers are big-endian; a string or byte string is
//! `len: u32 BE` then its bytes; a fingerprint is 32 bytes. Every length and count is checked
//! against a limit, and against the bytes left in the frame, before anything is allocated.
//! The first byte of a connection is the high byte of a length below [`MAX_FRAME`], so never
//! `0x16`: a later TLS handshake (which starts with `0x16`) is told apart by its first byte.

use std::io::{IoSlice, Write};

use qorestor_core::Fingerprint;

/// The wire version this build speaks.
pub const VERSION: u16 = 1;
/// Largest frame (type and body) either side accepts.
pub const MAX_FRAME: usize = 20 << 20;
/// Largest frame a server accepts before authentication.
pub const PRE_AUTH_MAX_FRAME: usize = 4096;
/// Most wire versions a client offers.
pub const MAX_VERSIONS: usize = 16;
/// Most entries in one [`Message::Ask`] or [`Message::Append`] (and chunks in an `Append`).
pub const MAX_BATCH: usize = 1024;
/// Most bytes of one [`Message::Write`] or [`Message::Data`].
pub const MAX_DATA: usize = 4 << 20;
/// Longest user, host, storage unit or image name, bytes.
pub const MAX_NAME: usize = 1024;
/// Longest properties text, bytes.
pub const MAX_PROPERTIES: usize = qorestor_core::MAX_IMAGE_PROPERTIES;
/// Longest error message, bytes.
pub const MAX_MESSAGE: usize = 64 << 10;
/// Largest chunk, bytes.
pub const MAX_CHUNK: u32 = qorestor_core::format::MAX_CHUNK_LEN;
/// Bytes of framing around a body: length (4), type (1) and checksum (4).
pub const FRAME_OVERHEAD: usize = 9;

/// Capability bits a server announces in [`Message::Challenge`] (and a client asks for in
/// [`Message::Hello`]). Bits not listed are reserved for later issues and must be zero.
pub mod caps {
    /// Passthrough writes.
    pub const PASSTHROUGH: u64 = 1 << 0;
    /// Optimized (client-side dedup) writes.
    pub const OPTIMIZED: u64 = 1 << 1;
    /// Reads at any offset.
    pub const READ: u64 = 1 << 2;
    /// Every capability this build has.
    pub const ALL: u64 = PASSTHROUGH | OPTIMIZED | READ;
}

/// How an image is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Raw bytes; the server cuts and deduplicates.
    Passthrough = 1,
    /// Client-made chunks; only missing ones travel.
    Optimized = 2,
}

/// Why a request failed (with a message in [`Message::Failed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailCode {
    /// No wire version in common.
    UnsupportedVersion = 1,
    /// Wrong user name or password (never says which).
    AuthenticationFailed = 2,
    /// The user's role may not do this.
    NotPermitted = 3,
    /// No such storage unit or image.
    NotFound = 4,
    /// The name is taken.
    Exists = 5,
    /// The image is being written, read or deleted.
    Busy = 6,
    /// A value is refused (its form or range).
    Invalid = 7,
    /// A quota or the disk is full.
    NoSpace = 8,
    /// The request does not fit the session's state.
    Protocol = 9,
    /// Anything else.
    Internal = 10,
    /// Too many connections or sessions.
    Refused = 11,
    /// Optimized writes are not possible on this storage unit (the message says why).
    OptimizedUnavailable = 12,
}

impl FailCode {
    fn from_u16(v: u16) -> Option<FailCode> {
        use FailCode::*;
        Some(match v {
            1 => UnsupportedVersion,
            2 => AuthenticationFailed,
            3 => NotPermitted,
            4 => NotFound,
            5 => Exists,
            6 => Busy,
            7 => Invalid,
            8 => NoSpace,
            9 => Protocol,
            10 => Internal,
            11 => Refused,
            12 => OptimizedUnavailable,
            _ => return None,
        })
    }
}

/// A storage unit (an `ost` container) as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsuInfo {
    /// Name.
    pub name: String,
    /// Capacity in bytes (the container quota, else the free bytes above the space reserve
    /// plus the storage group's pack bytes).
    pub capacity: u64,
    /// Logical bytes of its images.
    pub logical_bytes: u64,
    /// Stored (physical) bytes of its storage group's packs.
    pub physical_bytes: u64,
    /// Whether optimized writes are possible (the group does not key its chunker).
    pub optimized: bool,
    /// Properties (`key=value` lines: storage group, compression).
    pub properties: String,
}

/// An image as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Name.
    pub name: String,
    /// Length in bytes.
    pub logical_bytes: u64,
    /// The date the backup application gave it, seconds since the Unix epoch.
    pub date: u64,
    /// Copy number.
    pub copy: u32,
    /// Free-form properties.
    pub properties: String,
}

/// The chunking a client uses for optimized writes (the storage group's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunking {
    /// Minimum chunk size.
    pub min: u32,
    /// Average chunk size.
    pub avg: u32,
    /// Maximum chunk size.
    pub max: u32,
    /// zstd level to compress sent chunks with (0: send them raw).
    pub zstd_level: i32,
}

/// A chunk sent in an [`Message::Append`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireChunk {
    /// Fingerprint of the raw bytes.
    pub fp: Fingerprint,
    /// Raw length.
    pub raw_len: u32,
    /// 0 raw, 1 zstd.
    pub codec: u8,
    /// Encoded bytes.
    pub payload: Vec<u8>,
}

/// One message. Client requests first, then server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Client: opens the session (SCRAM client-first).
    Hello {
        /// Wire versions the client speaks.
        versions: Vec<u16>,
        /// Capabilities it wants.
        caps: u64,
        /// User name.
        user: String,
        /// The client's host name (listed in the server's sessions).
        host: String,
        /// Client nonce.
        nonce: [u8; 32],
    },
    /// Client: SCRAM client-final.
    Proof {
        /// ClientProof.
        proof: [u8; 32],
    },
    /// Client: the storage units.
    ListLsus,
    /// Client: create an image and start writing it.
    Create {
        /// Storage unit.
        lsu: String,
        /// Image name.
        name: String,
        /// Image date.
        date: u64,
        /// Copy number.
        copy: u32,
        /// Properties.
        properties: String,
        /// How it is written.
        mode: WriteMode,
    },
    /// Client: passthrough bytes, appended at the image's current size.
    Write(Vec<u8>),
    /// Client: which of these fingerprints does the server lack?
    Ask(Vec<Fingerprint>),
    /// Client: recipe entries in image order, and the chunks the server lacked.
    Append {
        /// (fingerprint, raw length) per chunk of the batch.
        entries: Vec<(Fingerprint, u32)>,
        /// The chunks the server answered missing.
        chunks: Vec<WireChunk>,
    },
    /// Client: close the image being written complete, or the image being read.
    Close,
    /// Client: abandon the image being written (it is removed).
    Abort,
    /// Client: open an image for reading.
    Open {
        /// Storage unit.
        lsu: String,
        /// Image name.
        name: String,
    },
    /// Client: bytes of the open image.
    Read {
        /// Offset.
        offset: u64,
        /// Length (at most [`MAX_DATA`]).
        len: u32,
    },
    /// Client: one image's information.
    Info {
        /// Storage unit.
        lsu: String,
        /// Image name.
        name: String,
    },
    /// Client: the images of a storage unit.
    List {
        /// Storage unit.
        lsu: String,
    },
    /// Client: delete an image.
    Delete {
        /// Storage unit.
        lsu: String,
        /// Image name.
        name: String,
    },
    /// Server: SCRAM server-first.
    Challenge {
        /// The version chosen.
        version: u16,
        /// Capabilities granted.
        caps: u64,
        /// Server nonce (appended to the client's).
        nonce: [u8; 32],
        /// Salt.
        salt: [u8; 16],
        /// Argon2id memory, KiB.
        memory_kib: u32,
        /// Argon2id iterations.
        iterations: u32,
        /// Argon2id parallelism.
        parallelism: u32,
    },
    /// Server: authenticated (SCRAM server-final).
    Welcome {
        /// ServerSignature.
        signature: [u8; 32],
    },
    /// Server: the request succeeded.
    Done,
    /// Server: the storage units.
    Lsus(Vec<LsuInfo>),
    /// Server: the image is created; optimized writes use this chunking.
    Created(Chunking),
    /// Server: per asked fingerprint, whether it is missing.
    Missing(Vec<bool>),
    /// Server: the image is published, with this length.
    Closed {
        /// Logical bytes.
        logical_bytes: u64,
    },
    /// Server: the image is open for reading.
    Opened(ImageInfo),
    /// Server: bytes read (fewer than asked only at the end of the image).
    Data(Vec<u8>),
    /// Server: one image.
    Image(ImageInfo),
    /// Server: images.
    Images(Vec<ImageInfo>),
    /// Server: the request failed.
    Failed {
        /// Why, as a code.
        code: FailCode,
        /// Why, in words.
        message: String,
    },
}

mod tag {
    pub const HELLO: u8 = 1;
    pub const PROOF: u8 = 2;
    pub const LIST_LSUS: u8 = 3;
    pub const CREATE: u8 = 4;
    pub const WRITE: u8 = 5;
    pub const ASK: u8 = 6;
    pub const APPEND: u8 = 7;
    pub const CLOSE: u8 = 8;
    pub const OPEN: u8 = 9;
    pub const READ: u8 = 10;
    pub const INFO: u8 = 11;
    pub const LIST: u8 = 12;
    pub const DELETE: u8 = 13;
    pub const ABORT: u8 = 14;
    pub const CHALLENGE: u8 = 128;
    pub const WELCOME: u8 = 129;
    pub const DONE: u8 = 130;
    pub const LSUS: u8 = 131;
    pub const CREATED: u8 = 132;
    pub const MISSING: u8 = 133;
    pub const CLOSED: u8 = 134;
    pub const OPENED: u8 = 135;
    pub const DATA: u8 = 136;
    pub const IMAGE: u8 = 137;
    pub const IMAGES: u8 = 138;
    pub const FAILED: u8 = 139;
}

impl Message {
    /// The message's name, for errors (never its contents).
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "Hello",
            Message::Proof { .. } => "Proof",
            Message::ListLsus => "ListLsus",
            Message::Create { .. } => "Create",
            Message::Write(_) => "Write",
            Message::Ask(_) => "Ask",
            Message::Append { .. } => "Append",
            Message::Close => "Close",
            Message::Abort => "Abort",
            Message::Open { .. } => "Open",
            Message::Read { .. } => "Read",
            Message::Info { .. } => "Info",
            Message::List { .. } => "List",
            Message::Delete { .. } => "Delete",
            Message::Challenge { .. } => "Challenge",
            Message::Welcome { .. } => "Welcome",
            Message::Done => "Done",
            Message::Lsus(_) => "Lsus",
            Message::Created(_) => "Created",
            Message::Missing(_) => "Missing",
            Message::Closed { .. } => "Closed",
            Message::Opened(_) => "Opened",
            Message::Data(_) => "Data",
            Message::Image(_) => "Image",
            Message::Images(_) => "Images",
            Message::Failed { .. } => "Failed",
        }
    }
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The length field is out of range.
    #[error("frame length {0} is out of range (1..={MAX_FRAME})")]
    Length(usize),
    /// Fewer bytes than the length field says.
    #[error("frame truncated: {have} bytes of {need}")]
    Truncated {
        /// Bytes there.
        have: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The checksum does not match.
    #[error("frame checksum mismatch")]
    Checksum,
    /// Unknown message type.
    #[error("unknown message type {0}")]
    Type(u8),
    /// A field is bad.
    #[error("{message}: {field} {detail}")]
    Field {
        /// The message.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// Bytes left after the body.
    #[error("{0}: {1} bytes after the body")]
    Trailing(&'static str, usize),
}

/// The length of the frame that starts with `head` (the 4 length bytes), framing included.
pub fn frame_len(head: [u8; 4]) -> Result<usize, WireError> {
    let len = u32::from_be_bytes(head) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(WireError::Length(len));
    }
    Ok(len + 8)
}

struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u32(b.len() as u32).raw(b)
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    fn image(&mut self, i: &ImageInfo) -> &mut Self {
        self.str(&i.name).u64(i.logical_bytes).u64(i.date).u32(i.copy).str(&i.properties)
    }
}

/// Encodes a message as one frame.
pub fn encode(m: &Message) -> Vec<u8> {
    let mut frame = Vec::new();
    encode_into(m, &mut frame);
    frame
}

/// Encodes a message as one frame into `frame` (cleared first; its allocation is reused from
/// answer to answer).
pub fn encode_into(m: &Message, frame: &mut Vec<u8>) {
    frame.clear();
    let payload = match m {
        Message::Write(d) | Message::Data(d) => d.len(),
        _ => 0,
    };
    frame.reserve(payload + 64);
    frame.extend_from_slice(&[0; 4]);
    let mut o = Out(std::mem::take(frame));
    match m {
        Message::Hello { versions, caps, user, host, nonce } => {
            o.u8(tag::HELLO).u16(versions.len() as u16);
            for v in versions {
                o.u16(*v);
            }
            o.u64(*caps).str(user).str(host).raw(nonce);
        }
        Message::Proof { proof } => {
            o.u8(tag::PROOF).raw(proof);
        }
        Message::ListLsus => {
            o.u8(tag::LIST_LSUS);
        }
        Message::Create { lsu, name, date, copy, properties, mode } => {
            o.u8(tag::CREATE).str(lsu).str(name).u64(*date).u32(*copy).str(properties).u8(*mode as u8);
        }
        Message::Write(data) => {
            o.u8(tag::WRITE).bytes(data);
        }
        Message::Ask(fps) => {
            o.u8(tag::ASK).u32(fps.len() as u32);
            for fp in fps {
                o.raw(fp.as_bytes());
            }
        }
        Message::Append { entries, chunks } => {
            o.u8(tag::APPEND).u32(entries.len() as u32);
            for (fp, len) in entries {
                o.raw(fp.as_bytes()).u32(*len);
            }
            o.u32(chunks.len() as u32);
            for c in chunks {
                o.raw(c.fp.as_bytes()).u32(c.raw_len).u8(c.codec).bytes(&c.payload);
            }
        }
        Message::Close => {
            o.u8(tag::CLOSE);
        }
        Message::Abort => {
            o.u8(tag::ABORT);
        }
        Message::Open { lsu, name } => {
            o.u8(tag::OPEN).str(lsu).str(name);
        }
        Message::Read { offset, len } => {
            o.u8(tag::READ).u64(*offset).u32(*len);
        }
        Message::Info { lsu, name } => {
            o.u8(tag::INFO).str(lsu).str(name);
        }
        Message::List { lsu } => {
            o.u8(tag::LIST).str(lsu);
        }
        Message::Delete { lsu, name } => {
            o.u8(tag::DELETE).str(lsu).str(name);
        }
        Message::Challenge { version, caps, nonce, salt, memory_kib, iterations, parallelism } => {
            o.u8(tag::CHALLENGE).u16(*version).u64(*caps).raw(nonce).raw(salt);
            o.u32(*memory_kib).u32(*iterations).u32(*parallelism);
        }
        Message::Welcome { signature } => {
            o.u8(tag::WELCOME).raw(signature);
        }
        Message::Done => {
            o.u8(tag::DONE);
        }
        Message::Lsus(lsus) => {
            o.u8(tag::LSUS).u32(lsus.len() as u32);
            for l in lsus {
                o.str(&l.name).u64(l.capacity).u64(l.logical_bytes).u64(l.physical_bytes);
                o.u8(l.optimized as u8).str(&l.properties);
            }
        }
        Message::Created(c) => {
            o.u8(tag::CREATED).u32(c.min).u32(c.avg).u32(c.max).u32(c.zstd_level as u32);
        }
        Message::Missing(bits) => {
            o.u8(tag::MISSING).u32(bits.len() as u32);
            let mut packed = vec![0u8; bits.len().div_ceil(8)];
            for (i, b) in bits.iter().enumerate() {
                if *b {
                    packed[i / 8] |= 1 << (i % 8);
                }
            }
            o.raw(&packed);
        }
        Message::Closed { logical_bytes } => {
            o.u8(tag::CLOSED).u64(*logical_bytes);
        }
        Message::Opened(i) => {
            o.u8(tag::OPENED).image(i);
        }
        Message::Data(d) => {
            o.u8(tag::DATA).bytes(d);
        }
        Message::Image(i) => {
            o.u8(tag::IMAGE).image(i);
        }
        Message::Images(list) => {
            o.u8(tag::IMAGES).u32(list.len() as u32);
            for i in list {
                o.image(i);
            }
        }
        Message::Failed { code, message } => {
            o.u8(tag::FAILED).u16(*code as u16).str(message);
        }
    }
    let mut b = o.0;
    let len = (b.len() - 4) as u32;
    b[0..4].copy_from_slice(&len.to_be_bytes());
    let crc = crc32fast::hash(&b[4..]);
    b.extend_from_slice(&crc.to_be_bytes());
    *frame = b;
}

/// Bytes of a [`Message::Data`] frame before its payload: length (4), type (1) and the
/// payload's length (4).
pub const DATA_HEAD: usize = 9;

/// Writes the [`Message::Data`] frame whose payload is `parts` joined (at most [`MAX_DATA`]
/// bytes in all) to `out`, with vectored writes: the payload is not assembled anywhere first.
/// The bytes are those [`encode`] gives for the same message.
pub fn write_data(out: &mut dyn Write, parts: &[&[u8]]) -> std::io::Result<()> {
    let payload: usize = parts.iter().map(|p| p.len()).sum();
    debug_assert!(payload <= MAX_DATA, "a Data payload of {payload} bytes");
    let mut head = [0u8; DATA_HEAD];
    head[0..4].copy_from_slice(&((DATA_HEAD - 4 + payload) as u32).to_be_bytes());
    head[4] = tag::DATA;
    head[5..DATA_HEAD].copy_from_slice(&(payload as u32).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head[4..]);
    for p in parts {
        crc.update(p);
    }
    let tail = crc.finalize().to_be_bytes();
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len() + 2);
    slices.push(IoSlice::new(&head));
    slices.extend(parts.iter().filter(|p| !p.is_empty()).map(|p| IoSlice::new(p)));
    slices.push(IoSlice::new(&tail));
    let mut left = &mut slices[..];
    while !left.is_empty() {
        match out.write_vectored(left) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut left, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A cursor over a body that checks every read against the bytes left.
struct In<'a> {
    b: &'a [u8],
    message: &'static str,
}

impl<'a> In<'a> {
    fn bad(&self, field: &'static str, detail: impl Into<String>) -> WireError {
        WireError::Field { message: self.message, field, detail: detail.into() }
    }
    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], WireError> {
        if self.b.len() < n {
            return Err(self.bad(field, format!("needs {n} bytes, {} left", self.b.len())));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self, f: &'static str) -> Result<u8, WireError> {
        Ok(self.take(f, 1)?[0])
    }
    fn u16(&mut self, f: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.take(f, 2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self, f: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.take(f, 4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self, f: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.take(f, 8)?.try_into().expect("8 bytes")))
    }
    fn array<const N: usize>(&mut self, f: &'static str) -> Result<[u8; N], WireError> {
        Ok(self.take(f, N)?.try_into().expect("N bytes"))
    }
    fn fp(&mut self, f: &'static str) -> Result<Fingerprint, WireError> {
        Ok(Fingerprint(self.array::<32>(f)?))
    }
    fn bytes(&mut self, f: &'static str, max: usize) -> Result<&'a [u8], WireError> {
        let n = self.u32(f)? as usize;
        if n > max {
            return Err(self.bad(f, format!("of {n} bytes is over the limit of {max}")));
        }
        self.take(f, n)
    }
    fn str(&mut self, f: &'static str, max: usize) -> Result<String, WireError> {
        let b = self.bytes(f, max)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.bad(f, "is not UTF-8"))
    }
    /// A count of items of at least `min_size` bytes each: at most `max`, and no more than the
    /// bytes left could hold (so the allocation it sizes is bounded by the frame).
    fn count(&mut self, f: &'static str, max: usize, min_size: usize) -> Result<usize, WireError> {
        let n = self.u32(f)? as usize;
        if n > max || n.saturating_mul(min_size) > self.b.len() {
            return Err(self.bad(f, format!("count {n} is over the limit of {max} or the bytes left")));
        }
        Ok(n)
    }
    fn image(&mut self) -> Result<ImageInfo, WireError> {
        Ok(ImageInfo {
            name: self.str("image name", MAX_NAME)?,
            logical_bytes: self.u64("logical bytes")?,
            date: self.u64("date")?,
            copy: self.u32("copy")?,
            properties: self.str("properties", MAX_PROPERTIES)?,
        })
    }
    fn end(self) -> Result<(), WireError> {
        match self.b.len() {
            0 => Ok(()),
            n => Err(WireError::Trailing(self.message, n)),
        }
    }
}

/// Bytes of one image in a listing at least (two empty strings and the numbers).
const MIN_IMAGE: usize = 4 + 8 + 8 + 4 + 4;

/// Decodes one whole frame (length, type, body, checksum). Pure: no I/O, no allocation beyond
/// what the frame's own bytes bound.
pub fn decode(frame: &[u8]) -> Result<Message, WireError> {
    let body = checked_body(frame)?;
    let (t, rest) = (body[0], &body[1..]);
    let name = match t {
        tag::HELLO => "Hello",
        tag::PROOF => "Proof",
        tag::LIST_LSUS => "ListLsus",
        tag::CREATE => "Create",
        tag::WRITE => "Write",
        tag::ASK => "Ask",
        tag::APPEND => "Append",
        tag::CLOSE => "Close",
        tag::ABORT => "Abort",
        tag::OPEN => "Open",
        tag::READ => "Read",
        tag::INFO => "Info",
        tag::LIST => "List",
        tag::DELETE => "Delete",
        tag::CHALLENGE => "Challenge",
        tag::WELCOME => "Welcome",
        tag::DONE => "Done",
        tag::LSUS => "Lsus",
        tag::CREATED => "Created",
        tag::MISSING => "Missing",
        tag::CLOSED => "Closed",
        tag::OPENED => "Opened",
        tag::DATA => "Data",
        tag::IMAGE => "Image",
        tag::IMAGES => "Images",
        tag::FAILED => "Failed",
        other => return Err(WireError::Type(other)),
    };
    let mut i = In { b: rest, message: name };
    let m = decode_body(t, &mut i)?;
    i.end()?;
    Ok(m)
}

/// The payload of a [`Message::Data`] frame as a range of `frame`, decoded in place (a
/// restore's bytes are not copied out of the frame they came in); `None` when `frame` is a
/// frame of another type, for [`decode`]. A `Data` frame gets the checks and errors
/// [`decode`] gives it. Pure, and allocates nothing.
pub fn data_payload(frame: &[u8]) -> Result<Option<std::ops::Range<usize>>, WireError> {
    let body = checked_body(frame)?;
    if body[0] != tag::DATA {
        return Ok(None);
    }
    let mut i = In { b: &body[1..], message: "Data" };
    let n = i.bytes("data", MAX_DATA)?.len();
    i.end()?;
    Ok(Some(DATA_HEAD..DATA_HEAD + n))
}

/// The body (type and fields) of a whole frame whose length and checksum are right; never
/// empty.
fn checked_body(frame: &[u8]) -> Result<&[u8], WireError> {
    if frame.len() < 4 {
        return Err(WireError::Truncated { have: frame.len(), need: 4 });
    }
    let need = frame_len(frame[0..4].try_into().expect("4 bytes"))?;
    if frame.len() != need {
        return Err(WireError::Truncated { have: frame.len(), need });
    }
    let body = &frame[4..need - 4];
    let crc = u32::from_be_bytes(frame[need - 4..].try_into().expect("4 bytes"));
    if crc32fast::hash(body) != crc {
        return Err(WireError::Checksum);
    }
    Ok(body)
}

fn decode_body(t: u8, i: &mut In<'_>) -> Result<Message, WireError> {
    Ok(match t {
        tag::HELLO => {
            let n = i.u16("version count")? as usize;
            if n == 0 || n > MAX_VERSIONS {
                return Err(i.bad("version count", format!("{n} is outside 1..={MAX_VERSIONS}")));
            }
            let mut versions = Vec::with_capacity(n);
            for _ in 0..n {
                versions.push(i.u16("version")?);
            }
            let caps = i.u64("capabilities")?;
            let user = i.str("user", MAX_NAME)?;
            let host = i.str("host", MAX_NAME)?;
            Message::Hello { versions, caps, user, host, nonce: i.array("nonce")? }
        }
        tag::PROOF => Message::Proof { proof: i.array("proof")? },
        tag::LIST_LSUS => Message::ListLsus,
        tag::CREATE => {
            let lsu = i.str("storage unit", MAX_NAME)?;
            let name = i.str("image name", MAX_NAME)?;
            let date = i.u64("date")?;
            let copy = i.u32("copy")?;
            let properties = i.str("properties", MAX_PROPERTIES)?;
            let mode = match i.u8("mode")? {
                1 => WriteMode::Passthrough,
                2 => WriteMode::Optimized,
                m => return Err(i.bad("mode", format!("{m} is not 1 (passthrough) or 2 (optimized)"))),
            };
            Message::Create { lsu, name, date, copy, properties, mode }
        }
        tag::WRITE => Message::Write(i.bytes("data", MAX_DATA)?.to_vec()),
        tag::ASK => {
            let n = i.count("fingerprint count", MAX_BATCH, 32)?;
            let mut fps = Vec::with_capacity(n);
            for _ in 0..n {
                fps.push(i.fp("fingerprint")?);
            }
            Message::Ask(fps)
        }
        tag::APPEND => {
            let n = i.count("entry count", MAX_BATCH, 36)?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let fp = i.fp("fingerprint")?;
                let len = i.u32("raw length")?;
                if len == 0 || len > MAX_CHUNK {
                    return Err(i.bad("raw length", format!("{len} is outside 1..={MAX_CHUNK}")));
                }
                entries.push((fp, len));
            }
            let n = i.count("chunk count", MAX_BATCH, 41)?;
            let mut chunks = Vec::with_capacity(n);
            for _ in 0..n {
                let fp = i.fp("chunk fingerprint")?;
                let raw_len = i.u32("chunk raw length")?;
                if raw_len == 0 || raw_len > MAX_CHUNK {
                    return Err(i.bad("chunk raw length", format!("{raw_len} is outside 1..={MAX_CHUNK}")));
                }
                let codec = i.u8("codec")?;
                if codec > 1 {
                    return Err(i.bad("codec", format!("{codec} is not 0 (raw) or 1 (zstd)")));
                }
                let payload = i.bytes("payload", raw_len as usize)?.to_vec();
                chunks.push(WireChunk { fp, raw_len, codec, payload });
            }
            Message::Append { entries, chunks }
        }
        tag::CLOSE => Message::Close,
        tag::ABORT => Message::Abort,
        tag::OPEN => Message::Open { lsu: i.str("storage unit", MAX_NAME)?, name: i.str("image name", MAX_NAME)? },
        tag::READ => {
            let offset = i.u64("offset")?;
            let len = i.u32("length")?;
            if len as usize > MAX_DATA {
                return Err(i.bad("length", format!("{len} is over the limit of {MAX_DATA}")));
            }
            Message::Read { offset, len }
        }
        tag::INFO => Message::Info { lsu: i.str("storage unit", MAX_NAME)?, name: i.str("image name", MAX_NAME)? },
        tag::LIST => Message::List { lsu: i.str("storage unit", MAX_NAME)? },
        tag::DELETE => Message::Delete { lsu: i.str("storage unit", MAX_NAME)?, name: i.str("image name", MAX_NAME)? },
        tag::CHALLENGE => Message::Challenge {
            version: i.u16("version")?,
            caps: i.u64("capabilities")?,
            nonce: i.array("nonce")?,
            salt: i.array("salt")?,
            memory_kib: i.u32("memory")?,
            iterations: i.u32("iterations")?,
            parallelism: i.u32("parallelism")?,
        },
        tag::WELCOME => Message::Welcome { signature: i.array("signature")? },
        tag::DONE => Message::Done,
        tag::LSUS => {
            let n = i.count("storage unit count", usize::MAX, 4 + 24 + 1 + 4)?;
            let mut lsus = Vec::with_capacity(n);
            for _ in 0..n {
                lsus.push(LsuInfo {
                    name: i.str("storage unit", MAX_NAME)?,
                    capacity: i.u64("capacity")?,
                    logical_bytes: i.u64("logical bytes")?,
                    physical_bytes: i.u64("physical bytes")?,
                    optimized: match i.u8("optimized")? {
                        0 => false,
                        1 => true,
                        b => return Err(i.bad("optimized", format!("{b} is not 0 or 1"))),
                    },
                    properties: i.str("properties", MAX_PROPERTIES)?,
                });
            }
            Message::Lsus(lsus)
        }
        tag::CREATED => {
            let (min, avg, max) = (i.u32("min")?, i.u32("avg")?, i.u32("max")?);
            let zstd_level = i.u32("zstd level")? as i32;
            if !(min <= avg && avg <= max && max <= MAX_CHUNK && min > 0) {
                return Err(i.bad("chunking", format!("{min}/{avg}/{max} is not min <= avg <= max <= {MAX_CHUNK}")));
            }
            if !(0..=22).contains(&zstd_level) {
                return Err(i.bad("zstd level", format!("{zstd_level} is outside 0..=22")));
            }
            Message::Created(Chunking { min, avg, max, zstd_level })
        }
        tag::MISSING => {
            let n = i.u32("answer count")? as usize;
            if n > MAX_BATCH {
                return Err(i.bad("answer count", format!("{n} is over the limit of {MAX_BATCH}")));
            }
            let packed = i.take("answers", n.div_ceil(8))?;
            if !n.is_multiple_of(8) && packed[n / 8] >> (n % 8) != 0 {
                return Err(i.bad("answers", "padding bits are not zero"));
            }
            Message::Missing((0..n).map(|k| packed[k / 8] & (1 << (k % 8)) != 0).collect())
        }
        tag::CLOSED => Message::Closed { logical_bytes: i.u64("logical bytes")? },
        tag::OPENED => Message::Opened(i.image()?),
        tag::DATA => Message::Data(i.bytes("data", MAX_DATA)?.to_vec()),
        tag::IMAGE => Message::Image(i.image()?),
        tag::IMAGES => {
            let n = i.count("image count", usize::MAX, MIN_IMAGE)?;
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                list.push(i.image()?);
            }
            Message::Images(list)
        }
        tag::FAILED => {
            let raw = i.u16("code")?;
            let code = FailCode::from_u16(raw).ok_or_else(|| i.bad("code", format!("{raw} is not a known code")))?;
            Message::Failed { code, message: i.str("message", MAX_MESSAGE)? }
        }
        other => return Err(WireError::Type(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_handshake_is_never_a_frame_start() {
        // 0x16 as the length's high byte would announce a frame far over the limit.
        assert!(frame_len([0x16, 3, 1, 0]).is_err());
    }

    #[test]
    fn a_frame_round_trips_and_a_flipped_bit_fails() {
        let m = Message::Missing(vec![true, false, true]);
        let b = encode(&m);
        assert_eq!(decode(&b).unwrap(), m);
        let mut bad = b.clone();
        bad[6] ^= 1;
        assert!(decode(&bad).is_err());
    }
}
