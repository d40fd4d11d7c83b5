//! The replication protocol's frames: encoding and a pure decoder (fuzz target
//! `replication_wire`).
//!
//! A frame is `length: u32 BE` (of tag and body), `tag: u8`, the body, then `crc32: u32 BE` of
//! tag and body. Integers are big-endian; a string or byte string is `len: u32` then its bytes;
//! a fingerprint is 32 bytes. Every length and count is checked against a limit before
//! anything is allocated. The byte table is in `docs/FORMAT.md` ("Replication protocol").

use crate::error::DecodeError;
use crate::fingerprint::Fingerprint;
use crate::recipe::{ImageMeta, MAX_IMAGE_PROPERTIES};

/// Protocol version sent in [`Message::Hello`].
pub const VERSION: u16 = 1;
/// Largest frame (tag and body) either side accepts.
pub const MAX_FRAME: usize = 40 << 20;
/// Most entries in one [`Message::Missing`] or records in one [`Message::Store`].
pub const MAX_BATCH: usize = 4096;
/// Most stream names in one [`Message::Names`].
pub const MAX_NAMES: usize = 1 << 20;
/// Longest string in a frame (names, JSON records, error messages).
pub const MAX_STRING: usize = 1 << 20;
/// Bytes of framing around a body: length (4), tag (1) and checksum (4).
pub const FRAME_OVERHEAD: usize = 9;

/// One message of the protocol. The source (client) sends the first group, the target
/// (listener) answers with the second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Source: opens the session.
    Hello {
        /// Protocol version.
        version: u16,
        /// Source's random nonce.
        nonce: [u8; 32],
    },
    /// Source: proof that it knows the target's replication password.
    Auth {
        /// `keyed BLAKE3(key, "client" || target nonce || source nonce)`.
        mac: [u8; 32],
    },
    /// Source: create or check the replica group and container.
    Prepare {
        /// The source group's catalog record, JSON.
        group: String,
        /// The source container's catalog record, JSON.
        container: String,
        /// Names the source (`HOST:DIR/CONTAINER` as the target records it).
        origin: String,
    },
    /// Source: which streams does the replica container hold?
    ListStreams,
    /// Source: start receiving a stream.
    Begin {
        /// Creation time of the source stream.
        created: u64,
        /// Stream name.
        name: String,
    },
    /// Source: start receiving a stream that is an OST image, with the metadata its recipe
    /// carries (the replica's recipe carries it too).
    BeginImage {
        /// Creation time of the source stream.
        created: u64,
        /// Stream name.
        name: String,
        /// The image's date, copy number and properties.
        image: ImageMeta,
    },
    /// Source: which of these chunks (fingerprint, raw length) are missing?
    Missing(Vec<(Fingerprint, u32)>),
    /// Source: the records asked for by the last `Missing`, as stored.
    Store(Vec<Vec<u8>>),
    /// Source: publish the stream.
    End,
    /// Source: delete a stream from the replica.
    Delete {
        /// Stream name.
        name: String,
    },
    /// Target: the challenge after `Hello`.
    Challenge {
        /// Salt of the password's key derivation.
        salt: [u8; 16],
        /// Target's random nonce.
        nonce: [u8; 32],
    },
    /// Target: authenticated; its own proof.
    Welcome {
        /// `keyed BLAKE3(key, "target" || source nonce || target nonce)`.
        mac: [u8; 32],
    },
    /// Target: done.
    Done,
    /// Target: the stream names.
    Names(Vec<String>),
    /// Target: per asked entry, whether its record is wanted.
    Wanted(Vec<bool>),
    /// Target: the stream is published, with this logical length.
    Ended {
        /// Logical bytes of the stream.
        logical_len: u64,
    },
    /// Target: the request failed.
    Failed {
        /// Why.
        message: String,
    },
}

impl Message {
    /// The message's name, for errors (never its contents, which may be large or secret).
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "Hello",
            Message::Auth { .. } => "Auth",
            Message::Prepare { .. } => "Prepare",
            Message::ListStreams => "ListStreams",
            Message::Begin { .. } => "Begin",
            Message::BeginImage { .. } => "BeginImage",
            Message::Missing(_) => "Missing",
            Message::Store(_) => "Store",
            Message::End => "End",
            Message::Delete { .. } => "Delete",
            Message::Challenge { .. } => "Challenge",
            Message::Welcome { .. } => "Welcome",
            Message::Done => "Done",
            Message::Names(_) => "Names",
            Message::Wanted(_) => "Wanted",
            Message::Ended { .. } => "Ended",
            Message::Failed { .. } => "Failed",
        }
    }
}

mod tag {
    pub const HELLO: u8 = 1;
    pub const AUTH: u8 = 2;
    pub const PREPARE: u8 = 3;
    pub const LIST_STREAMS: u8 = 4;
    pub const BEGIN: u8 = 5;
    pub const MISSING: u8 = 6;
    pub const STORE: u8 = 7;
    pub const END: u8 = 8;
    pub const DELETE: u8 = 9;
    pub const BEGIN_IMAGE: u8 = 10;
    pub const CHALLENGE: u8 = 64;
    pub const WELCOME: u8 = 65;
    pub const DONE: u8 = 66;
    pub const NAMES: u8 = 67;
    pub const WANTED: u8 = 68;
    pub const ENDED: u8 = 69;
    pub const FAILED: u8 = 70;
}

/// Encodes a message as one frame.
pub fn encode(m: &Message) -> Vec<u8> {
    let mut b = vec![0u8; 4];
    let put_str = |b: &mut Vec<u8>, s: &[u8]| {
        b.extend_from_slice(&(s.len() as u32).to_be_bytes());
        b.extend_from_slice(s);
    };
    match m {
        Message::Hello { version, nonce } => {
            b.push(tag::HELLO);
            b.extend_from_slice(&version.to_be_bytes());
            b.extend_from_slice(nonce);
        }
        Message::Auth { mac } => {
            b.push(tag::AUTH);
            b.extend_from_slice(mac);
        }
        Message::Prepare { group, container, origin } => {
            b.push(tag::PREPARE);
            for s in [group, container, origin] {
                put_str(&mut b, s.as_bytes());
            }
        }
        Message::ListStreams => b.push(tag::LIST_STREAMS),
        Message::Begin { created, name } => {
            b.push(tag::BEGIN);
            b.extend_from_slice(&created.to_be_bytes());
            put_str(&mut b, name.as_bytes());
        }
        Message::BeginImage { created, name, image } => {
            b.push(tag::BEGIN_IMAGE);
            b.extend_from_slice(&created.to_be_bytes());
            put_str(&mut b, name.as_bytes());
            b.extend_from_slice(&image.date.to_be_bytes());
            b.extend_from_slice(&image.copy.to_be_bytes());
            put_str(&mut b, image.properties.as_bytes());
        }
        Message::Missing(entries) => {
            b.push(tag::MISSING);
            b.extend_from_slice(&(entries.len() as u32).to_be_bytes());
            for (fp, raw_len) in entries {
                b.extend_from_slice(fp.as_bytes());
                b.extend_from_slice(&raw_len.to_be_bytes());
            }
        }
        Message::Store(records) => put_store(&mut b, records.iter().map(Vec::as_slice)),
        Message::End => b.push(tag::END),
        Message::Delete { name } => {
            b.push(tag::DELETE);
            put_str(&mut b, name.as_bytes());
        }
        Message::Challenge { salt, nonce } => {
            b.push(tag::CHALLENGE);
            b.extend_from_slice(salt);
            b.extend_from_slice(nonce);
        }
        Message::Welcome { mac } => {
            b.push(tag::WELCOME);
            b.extend_from_slice(mac);
        }
        Message::Done => b.push(tag::DONE),
        Message::Names(names) => {
            b.push(tag::NAMES);
            b.extend_from_slice(&(names.len() as u32).to_be_bytes());
            for n in names {
                put_str(&mut b, n.as_bytes());
            }
        }
        Message::Wanted(bits) => {
            b.push(tag::WANTED);
            b.extend_from_slice(&(bits.len() as u32).to_be_bytes());
            let mut bytes = vec![0u8; bits.len().div_ceil(8)];
            for (i, _) in bits.iter().enumerate().filter(|(_, w)| **w) {
                bytes[i / 8] |= 1 << (i % 8);
            }
            b.extend_from_slice(&bytes);
        }
        Message::Ended { logical_len } => {
            b.push(tag::ENDED);
            b.extend_from_slice(&logical_len.to_be_bytes());
        }
        Message::Failed { message } => {
            b.push(tag::FAILED);
            put_str(&mut b, message.as_bytes());
        }
    }
    seal(&mut b);
    b
}

/// Encodes a `Store` of borrowed records into `out`, as [`encode`] would the same records
/// owned; `out` is cleared first and its allocation reused (a batch is up to 16 MiB).
pub fn encode_store_into(records: &[&[u8]], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(FRAME_OVERHEAD + 4 + records.iter().map(|r| 4 + r.len()).sum::<usize>());
    out.extend_from_slice(&[0; 4]);
    put_store(out, records.iter().copied());
    seal(out);
}

fn put_store<'a>(b: &mut Vec<u8>, records: impl ExactSizeIterator<Item = &'a [u8]>) {
    b.push(tag::STORE);
    b.extend_from_slice(&(records.len() as u32).to_be_bytes());
    for r in records {
        b.extend_from_slice(&(r.len() as u32).to_be_bytes());
        b.extend_from_slice(r);
    }
}

/// Fills in the length field (the first 4 bytes, reserved) and appends the checksum.
fn seal(b: &mut Vec<u8>) {
    let len = (b.len() - 4) as u32;
    b[..4].copy_from_slice(&len.to_be_bytes());
    let crc = crc32fast::hash(&b[4..]);
    b.extend_from_slice(&crc.to_be_bytes());
}

/// The length of the frame that starts with these 4 bytes (length, tag, body and checksum),
/// or an error if it exceeds [`MAX_FRAME`] or is empty.
pub fn frame_len(head: [u8; 4]) -> Result<usize, DecodeError> {
    let len = u32::from_be_bytes(head) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(DecodeError::new("replication frame", format!("body length {len} outside 1..={MAX_FRAME}")));
    }
    // The length field counts the tag and the body; the length and the checksum come around.
    Ok(len + 8)
}

/// Decodes one whole frame (as [`encode`] makes it; exactly `frame_len` bytes).
pub fn decode(frame: &[u8]) -> Result<Message, DecodeError> {
    let err = |why: String| DecodeError::new("replication frame", why);
    if frame.len() < FRAME_OVERHEAD {
        return Err(err(format!("{} bytes is shorter than a frame", frame.len())));
    }
    let head: [u8; 4] = frame[..4].try_into().expect("length checked");
    if frame_len(head)? != frame.len() {
        return Err(err(format!(
            "length field says {} bytes, frame has {}",
            u32::from_be_bytes(head),
            frame.len() - 8
        )));
    }
    let (content, crc) = frame[4..].split_at(frame.len() - 8);
    if crc32fast::hash(content) != u32::from_be_bytes(crc.try_into().expect("4 bytes")) {
        return Err(err("checksum mismatch".into()));
    }
    let mut r = Reader { buf: &content[1..] };
    let m = match content[0] {
        tag::HELLO => Message::Hello { version: r.u16()?, nonce: r.array()? },
        tag::AUTH => Message::Auth { mac: r.array()? },
        tag::PREPARE => Message::Prepare { group: r.string()?, container: r.string()?, origin: r.string()? },
        tag::LIST_STREAMS => Message::ListStreams,
        tag::BEGIN => Message::Begin { created: r.u64()?, name: r.string()? },
        tag::BEGIN_IMAGE => {
            let (created, name, date, copy) = (r.u64()?, r.string()?, r.u64()?, r.u32()?);
            let properties = r.string()?;
            if properties.len() > MAX_IMAGE_PROPERTIES {
                return Err(err(format!(
                    "image properties of {} bytes, over the limit of {MAX_IMAGE_PROPERTIES}",
                    properties.len()
                )));
            }
            Message::BeginImage { created, name, image: ImageMeta { date, copy, properties } }
        }
        tag::MISSING => {
            let n = r.count(36, MAX_BATCH)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push((Fingerprint(r.array()?), r.u32()?));
            }
            Message::Missing(v)
        }
        tag::STORE => {
            let n = r.count(4, MAX_BATCH)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(r.bytes(MAX_FRAME)?.to_vec());
            }
            Message::Store(v)
        }
        tag::END => Message::End,
        tag::DELETE => Message::Delete { name: r.string()? },
        tag::CHALLENGE => Message::Challenge { salt: r.array()?, nonce: r.array()? },
        tag::WELCOME => Message::Welcome { mac: r.array()? },
        tag::DONE => Message::Done,
        tag::NAMES => {
            let n = r.count(4, MAX_NAMES)?;
            let mut v = Vec::with_capacity(n.min(MAX_BATCH));
            for _ in 0..n {
                v.push(r.string()?);
            }
            Message::Names(v)
        }
        tag::WANTED => {
            let n = r.count(0, MAX_BATCH)?;
            let bytes = r.take(n.div_ceil(8))?;
            if !n.is_multiple_of(8) && bytes[n / 8] >> (n % 8) != 0 {
                return Err(err("bits set past the last answer".into()));
            }
            Message::Wanted((0..n).map(|i| bytes[i / 8] & (1 << (i % 8)) != 0).collect())
        }
        tag::ENDED => Message::Ended { logical_len: r.u64()? },
        tag::FAILED => Message::Failed { message: r.string()? },
        t => return Err(err(format!("unknown message tag {t}"))),
    };
    if !r.buf.is_empty() {
        return Err(err(format!("{} bytes left after the message", r.buf.len())));
    }
    Ok(m)
}

/// Reads fields off a frame body, every length checked.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::new(
                "replication frame",
                format!("field of {n} bytes, only {} left", self.buf.len()),
            ));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("length taken"))
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A count of items of at least `min_item` bytes each (0: bits), at most `max` and at
    /// most what the rest of the frame can hold.
    fn count(&mut self, min_item: usize, max: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        let fits = self.buf.len().checked_div(min_item).unwrap_or(self.buf.len().saturating_mul(8));
        if n > max || n > fits {
            return Err(DecodeError::new(
                "replication frame",
                format!("count {n} over the limit {max} or what the frame holds"),
            ));
        }
        Ok(n)
    }

    fn bytes(&mut self, max: usize) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(DecodeError::new("replication frame", format!("field of {n} bytes over the limit {max}")));
        }
        self.take(n)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let b = self.bytes(MAX_STRING)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::new("replication frame", "a string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message() -> impl Strategy<Value = Message> {
        let fp = any::<[u8; 32]>().prop_map(Fingerprint);
        prop_oneof![
            (any::<u16>(), any::<[u8; 32]>()).prop_map(|(version, nonce)| Message::Hello { version, nonce }),
            any::<[u8; 32]>().prop_map(|mac| Message::Auth { mac }),
            (".{0,40}", ".{0,40}", ".{0,20}").prop_map(|(group, container, origin)| Message::Prepare {
                group,
                container,
                origin
            }),
            Just(Message::ListStreams),
            (any::<u64>(), ".{0,30}").prop_map(|(created, name)| Message::Begin { created, name }),
            (any::<u64>(), ".{0,30}", any::<u64>(), any::<u32>(), ".{0,60}").prop_map(
                |(created, name, date, copy, properties)| Message::BeginImage {
                    created,
                    name,
                    image: ImageMeta { date, copy, properties }
                }
            ),
            proptest::collection::vec((fp, any::<u32>()), 0..50).prop_map(Message::Missing),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..10).prop_map(Message::Store),
            Just(Message::End),
            ".{0,30}".prop_map(|name| Message::Delete { name }),
            (any::<[u8; 16]>(), any::<[u8; 32]>()).prop_map(|(salt, nonce)| Message::Challenge { salt, nonce }),
            any::<[u8; 32]>().prop_map(|mac| Message::Welcome { mac }),
            Just(Message::Done),
            proptest::collection::vec(".{0,20}", 0..10).prop_map(Message::Names),
            proptest::collection::vec(any::<bool>(), 0..300).prop_map(Message::Wanted),
            any::<u64>().prop_map(|logical_len| Message::Ended { logical_len }),
            ".{0,60}".prop_map(|message| Message::Failed { message }),
        ]
    }

    proptest! {
        #[test]
        fn every_message_round_trips(m in message()) {
            let frame = encode(&m);
            prop_assert_eq!(frame_len(frame[..4].try_into().unwrap()).unwrap(), frame.len());
            prop_assert_eq!(decode(&frame).unwrap(), m);
        }

        /// A `Store` encoded from borrowed records into a reused buffer is the same frame.
        #[test]
        fn a_store_from_borrowed_records_is_the_same_frame(
            records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..10),
            stale in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let mut out = stale;
            let borrowed: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            encode_store_into(&borrowed, &mut out);
            prop_assert_eq!(out, encode(&Message::Store(records)));
        }

        /// A flipped bit, a cut or an extension is a typed error (the checksum or a length
        /// catches it), never a panic or a wrong message.
        #[test]
        fn damaged_frames_are_refused(
            m in message(),
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
            cut in any::<prop::sample::Index>(),
        ) {
            let frame = encode(&m);
            let mut flipped = frame.clone();
            let i = at.index(frame.len());
            flipped[i] ^= 1 << bit;
            prop_assert!(decode(&flipped).is_err());
            let n = cut.index(frame.len());
            prop_assert!(decode(&frame[..n]).is_err());
            let mut longer = frame.clone();
            longer.push(0);
            prop_assert!(decode(&longer).is_err());
        }

        /// Arbitrary bytes never panic, whatever their checksum says.
        #[test]
        fn arbitrary_bodies_are_typed_errors_or_messages(
            tag in any::<u8>(),
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut frame = ((body.len() + 1) as u32).to_be_bytes().to_vec();
            frame.push(tag);
            frame.extend_from_slice(&body);
            let crc = crc32fast::hash(&frame[4..]);
            frame.extend_from_slice(&crc.to_be_bytes());
            if let Ok(m) = decode(&frame) {
                prop_assert_eq!(encode(&m), frame);
            }
        }
    }

    #[test]
    fn lengths_and_counts_over_the_limits_are_refused_before_allocating() {
        assert!(frame_len(((MAX_FRAME + 1) as u32).to_be_bytes()).is_err());
        assert!(frame_len([0; 4]).is_err());
        // A count of four billion entries in a small frame.
        let mut frame = 5u32.to_be_bytes().to_vec();
        frame.push(tag::MISSING);
        frame.extend_from_slice(&u32::MAX.to_be_bytes());
        let crc = crc32fast::hash(&frame[4..]);
        frame.extend_from_slice(&crc.to_be_bytes());
        let e = decode(&frame).unwrap_err();
        assert!(e.to_string().contains("count"), "{e}");
    }

    #[test]
    fn image_properties_over_the_recipe_limit_are_refused() {
        let image = |n| ImageMeta { date: 1, copy: 1, properties: "p".repeat(n) };
        let at_limit = Message::BeginImage { created: 0, name: "i".into(), image: image(MAX_IMAGE_PROPERTIES) };
        assert_eq!(decode(&encode(&at_limit)).unwrap(), at_limit);
        let over = Message::BeginImage { created: 0, name: "i".into(), image: image(MAX_IMAGE_PROPERTIES + 1) };
        let e = decode(&encode(&over)).unwrap_err();
        assert!(e.to_string().contains("image properties of 4097 bytes"), "{e}");
    }
}
