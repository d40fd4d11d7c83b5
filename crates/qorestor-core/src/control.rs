//! The daemon's control protocol: how a `qorestor` command hands itself to a running
//! `qorestor serve` (`DATA/control`, a Unix stream socket), and the answer. Pure encoders and
//! decoders; the sockets and descriptors are the CLI's. The format is documented in
//! `docs/DAEMON.md`.
//!
//! A request is one frame: [`CONTROL_MAGIC`], [`CONTROL_VERSION`], the kind byte `R`, the body's
//! length (u32 little-endian, at most [`MAX_REQUEST_BODY`]) and the body: the client's program
//! version, the argument vector, the files its command line names (each either passed as the next
//! descriptor or the `errno` its opening gave), and the forwarded environment variables. The
//! request's descriptors travel with it (`SCM_RIGHTS`): stdin, stdout, stderr, then one per
//! named file passed. The daemon answers with a frame of kind `A` (empty: the command runs) and,
//! when it ends, one of kind `X` whose one-byte body is the exit code.

use std::fmt;

/// The first bytes of every control frame.
pub const CONTROL_MAGIC: [u8; 4] = *b"QCTL";
/// The version of the control protocol.
pub const CONTROL_VERSION: u8 = 1;
/// Bytes before a frame's body: magic, version, kind, body length.
pub const FRAME_HEADER_LEN: usize = 10;
/// The longest request body accepted.
pub const MAX_REQUEST_BODY: usize = 1 << 20;
/// Most arguments in a request's argument vector.
pub const MAX_ARGS: usize = 4096;
/// Most files a request names.
pub const MAX_NAMED: usize = 16;
/// Most environment variables a request forwards.
pub const MAX_ENV: usize = 8;
/// The longest program version string.
pub const MAX_VERSION_LEN: usize = 64;
/// Descriptors every request carries: stdin, stdout, stderr.
pub const STD_STREAMS: usize = 3;
/// Most descriptors a request carries.
pub const MAX_REQUEST_FDS: usize = STD_STREAMS + MAX_NAMED;

const KIND_REQUEST: u8 = b'R';
const KIND_EXIT: u8 = b'X';
const KIND_ACCEPTED: u8 = b'A';

/// How a named file was opened by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedFile {
    /// The file, opened for reading.
    Input,
    /// The directory an output file is created in.
    OutputDir,
}

/// A file the client's command line names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedEntry {
    /// How it was opened.
    pub kind: NamedFile,
    /// The path as the command line gives it.
    pub path: Vec<u8>,
    /// 0 when the client passes the descriptor, else the `errno` opening it gave.
    pub errno: u32,
}

/// A command handed to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The client program's version (the daemon refuses another version's parse).
    pub version: Vec<u8>,
    /// The argument vector, program name first.
    pub args: Vec<Vec<u8>>,
    /// The files the command line names.
    pub named: Vec<NamedEntry>,
    /// Forwarded environment variables: name and value.
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Request {
    /// The descriptors this request carries: the three standard streams and one per named file
    /// passed.
    pub fn fd_count(&self) -> usize {
        STD_STREAMS + self.named.iter().filter(|n| n.errno == 0).count()
    }
}

/// Why a control frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// Fewer bytes than the frame needs.
    Truncated,
    /// The frame does not start with [`CONTROL_MAGIC`].
    BadMagic,
    /// A protocol version this program does not speak.
    BadVersion(u8),
    /// An unexpected frame kind.
    BadKind(u8),
    /// A length or count over its limit.
    TooLarge(&'static str),
    /// Bytes left after the body's last field.
    TrailingBytes,
    /// An unknown named-file kind.
    BadNamedKind(u8),
    /// The frame carried another number of descriptors than its body says.
    DescriptorCount {
        /// As the body says.
        expected: usize,
        /// As received.
        received: usize,
    },
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::Truncated => f.write_str("truncated control frame"),
            ControlError::BadMagic => f.write_str("not a control frame (bad magic)"),
            ControlError::BadVersion(v) => write!(f, "control protocol version {v} is not spoken here"),
            ControlError::BadKind(k) => write!(f, "unexpected control frame kind {k:#04x}"),
            ControlError::TooLarge(what) => write!(f, "control frame: {what} over its limit"),
            ControlError::TrailingBytes => f.write_str("control frame: bytes after the last field"),
            ControlError::BadNamedKind(k) => write!(f, "control frame: unknown named-file kind {k:#04x}"),
            ControlError::DescriptorCount { expected, received } => {
                write!(f, "control frame: {received} descriptors received for {expected}")
            }
        }
    }
}

impl std::error::Error for ControlError {}

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + body.len());
    out.extend_from_slice(&CONTROL_MAGIC);
    out.push(CONTROL_VERSION);
    out.push(kind);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Encodes a request frame. The caller keeps within the limits ([`check_request`]).
pub fn encode_request(r: &Request) -> Vec<u8> {
    let mut body = Vec::new();
    put_bytes(&mut body, &r.version);
    body.extend_from_slice(&(r.args.len() as u32).to_le_bytes());
    for a in &r.args {
        put_bytes(&mut body, a);
    }
    body.push(r.named.len() as u8);
    for n in &r.named {
        body.push(match n.kind {
            NamedFile::Input => b'i',
            NamedFile::OutputDir => b'd',
        });
        body.extend_from_slice(&n.errno.to_le_bytes());
        put_bytes(&mut body, &n.path);
    }
    body.push(r.env.len() as u8);
    for (k, v) in &r.env {
        put_bytes(&mut body, k);
        put_bytes(&mut body, v);
    }
    frame(KIND_REQUEST, &body)
}

/// Whether `r` keeps within the limits the decoder checks (a client checks before sending).
pub fn check_request(r: &Request) -> Result<(), ControlError> {
    if r.version.len() > MAX_VERSION_LEN {
        return Err(ControlError::TooLarge("version"));
    }
    if r.args.len() > MAX_ARGS {
        return Err(ControlError::TooLarge("argument count"));
    }
    if r.named.len() > MAX_NAMED {
        return Err(ControlError::TooLarge("named file count"));
    }
    if r.env.len() > MAX_ENV {
        return Err(ControlError::TooLarge("environment count"));
    }
    if encode_request(r).len() - FRAME_HEADER_LEN > MAX_REQUEST_BODY {
        return Err(ControlError::TooLarge("request length"));
    }
    Ok(())
}

/// A frame's header: its kind and body length, checked against `max_body`.
pub fn decode_header(b: &[u8], max_body: usize) -> Result<(u8, usize), ControlError> {
    if b.len() < FRAME_HEADER_LEN {
        return Err(ControlError::Truncated);
    }
    if b[..4] != CONTROL_MAGIC {
        return Err(ControlError::BadMagic);
    }
    if b[4] != CONTROL_VERSION {
        return Err(ControlError::BadVersion(b[4]));
    }
    let len = u32::from_le_bytes([b[6], b[7], b[8], b[9]]) as usize;
    if len > max_body {
        return Err(ControlError::TooLarge("frame length"));
    }
    Ok((b[5], len))
}

/// A cursor over a body.
struct Body<'a>(&'a [u8]);

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ControlError> {
        if self.0.len() < n {
            return Err(ControlError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, ControlError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, ControlError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self, max: usize, what: &'static str) -> Result<Vec<u8>, ControlError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(ControlError::TooLarge(what));
        }
        Ok(self.take(len)?.to_vec())
    }

    fn count(&mut self, max: usize, what: &'static str, wide: bool) -> Result<usize, ControlError> {
        let n = if wide { self.u32()? as usize } else { usize::from(self.u8()?) };
        if n > max {
            return Err(ControlError::TooLarge(what));
        }
        Ok(n)
    }
}

/// Decodes a whole request frame that came with `fds` descriptors.
pub fn decode_request(b: &[u8], fds: usize) -> Result<Request, ControlError> {
    let (kind, len) = decode_header(b, MAX_REQUEST_BODY)?;
    if kind != KIND_REQUEST {
        return Err(ControlError::BadKind(kind));
    }
    let rest = &b[FRAME_HEADER_LEN..];
    if rest.len() < len {
        return Err(ControlError::Truncated);
    }
    if rest.len() > len {
        return Err(ControlError::TrailingBytes);
    }
    let mut body = Body(rest);
    let version = body.bytes(MAX_VERSION_LEN, "version")?;
    let argc = body.count(MAX_ARGS, "argument count", true)?;
    let mut args = Vec::new();
    for _ in 0..argc {
        args.push(body.bytes(MAX_REQUEST_BODY, "argument")?);
    }
    let named_count = body.count(MAX_NAMED, "named file count", false)?;
    let mut named = Vec::new();
    for _ in 0..named_count {
        let kind = match body.u8()? {
            b'i' => NamedFile::Input,
            b'd' => NamedFile::OutputDir,
            other => return Err(ControlError::BadNamedKind(other)),
        };
        let errno = body.u32()?;
        let path = body.bytes(MAX_REQUEST_BODY, "path")?;
        named.push(NamedEntry { kind, path, errno });
    }
    let env_count = body.count(MAX_ENV, "environment count", false)?;
    let mut env = Vec::new();
    for _ in 0..env_count {
        let k = body.bytes(MAX_REQUEST_BODY, "environment name")?;
        let v = body.bytes(MAX_REQUEST_BODY, "environment value")?;
        env.push((k, v));
    }
    if !body.0.is_empty() {
        return Err(ControlError::TrailingBytes);
    }
    let request = Request { version, args, named, env };
    if request.fd_count() != fds {
        return Err(ControlError::DescriptorCount { expected: request.fd_count(), received: fds });
    }
    Ok(request)
}

/// What the daemon answers a request with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The request was taken: the command runs (sent at once, so that a client waiting while
    /// the serving process restarts can tell waiting from running).
    Accepted,
    /// The command ended with this exit code.
    Exit(u8),
}

/// The longest reply body.
pub const MAX_REPLY_BODY: usize = 1;

/// Encodes a reply frame.
pub fn encode_reply(r: Reply) -> Vec<u8> {
    match r {
        Reply::Accepted => frame(KIND_ACCEPTED, &[]),
        Reply::Exit(code) => frame(KIND_EXIT, &[code]),
    }
}

/// Decodes a whole reply frame.
pub fn decode_reply(b: &[u8]) -> Result<Reply, ControlError> {
    let (kind, len) = decode_header(b, MAX_REPLY_BODY)?;
    let body = &b[FRAME_HEADER_LEN..];
    if body.len() < len {
        return Err(ControlError::Truncated);
    }
    if body.len() > len {
        return Err(ControlError::TrailingBytes);
    }
    match (kind, body) {
        (KIND_ACCEPTED, []) => Ok(Reply::Accepted),
        (KIND_EXIT, [code]) => Ok(Reply::Exit(*code)),
        (KIND_ACCEPTED | KIND_EXIT, _) => Err(ControlError::TooLarge("reply length")),
        (other, _) => Err(ControlError::BadKind(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request() -> impl Strategy<Value = Request> {
        let named = (any::<bool>(), prop::collection::vec(any::<u8>(), 0..40), prop_oneof![Just(0u32), 1u32..200])
            .prop_map(|(input, path, errno)| NamedEntry {
                kind: if input { NamedFile::Input } else { NamedFile::OutputDir },
                path,
                errno,
            });
        (
            prop::collection::vec(any::<u8>(), 0..MAX_VERSION_LEN),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..30), 0..20),
            prop::collection::vec(named, 0..MAX_NAMED),
            prop::collection::vec(
                (prop::collection::vec(any::<u8>(), 0..20), prop::collection::vec(any::<u8>(), 0..20)),
                0..MAX_ENV,
            ),
        )
            .prop_map(|(version, args, named, env)| Request { version, args, named, env })
    }

    proptest! {
        #[test]
        fn requests_round_trip(r in request()) {
            prop_assert!(check_request(&r).is_ok());
            let b = encode_request(&r);
            prop_assert_eq!(decode_request(&b, r.fd_count()).unwrap(), r);
        }

        #[test]
        fn a_truncated_request_is_refused(r in request(), cut in any::<prop::sample::Index>()) {
            let b = encode_request(&r);
            let cut = cut.index(b.len());
            prop_assert!(decode_request(&b[..cut], r.fd_count()).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..200), fds in 0usize..20) {
            let _ = decode_request(&b, fds);
            let _ = decode_reply(&b);
        }

        #[test]
        fn a_changed_byte_decodes_or_is_refused(r in request(), at in any::<prop::sample::Index>(), x in any::<u8>()) {
            let mut b = encode_request(&r);
            let i = at.index(b.len());
            b[i] = x;
            if let Ok(back) = decode_request(&b, r.fd_count()) {
                prop_assert_eq!(encode_request(&back), b, "an accepted request is canonical");
            }
        }

        #[test]
        fn replies_round_trip(code in any::<u8>()) {
            prop_assert_eq!(decode_reply(&encode_reply(Reply::Exit(code))).unwrap(), Reply::Exit(code));
            prop_assert_eq!(decode_reply(&encode_reply(Reply::Accepted)).unwrap(), Reply::Accepted);
        }
    }

    #[test]
    fn the_descriptor_count_must_match() {
        let r = Request {
            version: b"1".to_vec(),
            args: vec![b"qorestor".to_vec(), b"put".to_vec()],
            named: vec![NamedEntry { kind: NamedFile::Input, path: b"a".to_vec(), errno: 0 }],
            env: vec![],
        };
        let b = encode_request(&r);
        assert_eq!(decode_request(&b, 4).unwrap(), r);
        assert_eq!(decode_request(&b, 3), Err(ControlError::DescriptorCount { expected: 4, received: 3 }));
    }

    #[test]
    fn oversized_counts_are_refused_before_allocation() {
        let mut b = frame(KIND_REQUEST, &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(decode_request(&b, 3), Err(ControlError::TooLarge("argument count")));
        b[6..10].copy_from_slice(&(MAX_REQUEST_BODY as u32 + 1).to_le_bytes());
        assert_eq!(decode_request(&b, 3), Err(ControlError::TooLarge("frame length")));
        assert_eq!(decode_request(b"QCTL\x02R\0\0\0\0", 3), Err(ControlError::BadVersion(2)));
        assert_eq!(decode_reply(b"QCTL\x01X\x01\0\0\0"), Err(ControlError::Truncated));
        assert_eq!(decode_reply(b"QCTL\x01X\0\0\0\0"), Err(ControlError::TooLarge("reply length")));
    }
}
