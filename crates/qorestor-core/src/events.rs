//! The lifecycle event log `DIR/events`: an append-only file of records (start, stop, restart
//! of the serving process, a listener that cannot bind) that `qorestor serve` writes and
//! `qorestor alerts list` reads. The record format is in `docs/FORMAT.md` ("Event log").
//!
//! [`decode_event`] and [`decode_events`] are pure functions of the bytes: a damaged record is
//! skipped (the next record is found by its magic), an incomplete or damaged last part of the
//! file (a write torn by a crash) is ignored and reported as [`EventLog::torn_tail`].
//! [`EventFile`] appends (one `write` per record, then `fsync`) and, when it opens, cuts a torn
//! tail off so that the next record follows the last good one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::{Error, Result};

/// The event log's file name in the data directory.
pub const EVENTS_FILE: &str = "events";
/// The first four bytes of every record.
pub const EVENT_MAGIC: [u8; 4] = *b"QEVT";
/// The record format version written.
pub const EVENT_VERSION: u8 = 1;
/// Bytes before a record's source: magic, version, severity, lengths, time.
pub const EVENT_HEADER_LEN: usize = 20;
/// Bytes of the CRC-32 that ends a record.
pub const EVENT_CRC_LEN: usize = 4;
/// Longest source (bytes); longer ones are cut when encoding and refused when decoding.
pub const MAX_EVENT_SOURCE_LEN: usize = 64;
/// Longest message (bytes); longer ones are cut when encoding and refused when decoding.
pub const MAX_EVENT_MESSAGE_LEN: usize = 4096;
/// How much of the end of the file `qorestor alerts list` reads (the newest events).
pub const MAX_EVENT_READ: u64 = 4 << 20;

/// How serious an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Normal operation (a start, a stop).
    Info,
    /// Something went wrong and was handled (a restart).
    Warning,
    /// Something went wrong and was not handled (a listener that cannot bind, giving up).
    Error,
}

impl Severity {
    fn code(self) -> u8 {
        match self {
            Severity::Info => 0,
            Severity::Warning => 1,
            Severity::Error => 2,
        }
    }

    fn from_code(code: u8) -> Option<Severity> {
        match code {
            0 => Some(Severity::Info),
            1 => Some(Severity::Warning),
            2 => Some(Severity::Error),
            _ => None,
        }
    }

    /// The name shown by `alerts list` (`info`, `warning`, `error`).
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When it happened: milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// How serious it is.
    pub severity: Severity,
    /// Who reported it (such as `serve`).
    pub source: String,
    /// What happened.
    pub message: String,
}

impl Event {
    /// An event happening now.
    pub fn now(severity: Severity, source: &str, message: impl Into<String>) -> Event {
        let time_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Event { time_ms, severity, source: source.to_string(), message: message.into() }
    }
}

/// Why a record does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Fewer bytes than the record needs.
    #[error("record cut short: {needed} bytes needed, {available} present")]
    Short {
        /// Bytes the record needs.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The first four bytes are not [`EVENT_MAGIC`].
    #[error("bad magic")]
    BadMagic,
    /// A version this build does not read.
    #[error("unsupported version {0}")]
    BadVersion(u8),
    /// A severity code that is not 0, 1 or 2.
    #[error("unknown severity code {0}")]
    BadSeverity(u8),
    /// A length over its limit.
    #[error("{field} length {len} over the limit {max}")]
    TooLong {
        /// `source` or `message`.
        field: &'static str,
        /// The length read.
        len: usize,
        /// Its limit.
        max: usize,
    },
    /// The CRC does not match the bytes.
    #[error("CRC mismatch")]
    BadCrc,
    /// A text field is not UTF-8.
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
}

/// Cuts `text` to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Encodes one record; a source or message over its limit is cut at a character boundary.
pub fn encode_event(event: &Event) -> Vec<u8> {
    let source = cut(&event.source, MAX_EVENT_SOURCE_LEN);
    let message = cut(&event.message, MAX_EVENT_MESSAGE_LEN);
    let mut b = Vec::with_capacity(EVENT_HEADER_LEN + source.len() + message.len() + EVENT_CRC_LEN);
    b.extend_from_slice(&EVENT_MAGIC);
    b.push(EVENT_VERSION);
    b.push(event.severity.code());
    b.extend_from_slice(&(source.len() as u16).to_le_bytes());
    b.extend_from_slice(&(message.len() as u32).to_le_bytes());
    b.extend_from_slice(&event.time_ms.to_le_bytes());
    b.extend_from_slice(source.as_bytes());
    b.extend_from_slice(message.as_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes the record at the start of `bytes`: the event and the record's length.
pub fn decode_event(bytes: &[u8]) -> std::result::Result<(Event, usize), RecordError> {
    let short = |needed: usize| RecordError::Short { needed, available: bytes.len() };
    if bytes.len() < EVENT_HEADER_LEN {
        // A torn header still shows whether it is one of ours.
        if !EVENT_MAGIC.starts_with(&bytes[..bytes.len().min(4)]) {
            return Err(RecordError::BadMagic);
        }
        return Err(short(EVENT_HEADER_LEN + EVENT_CRC_LEN));
    }
    if bytes[0..4] != EVENT_MAGIC {
        return Err(RecordError::BadMagic);
    }
    if bytes[4] != EVENT_VERSION {
        return Err(RecordError::BadVersion(bytes[4]));
    }
    let severity = Severity::from_code(bytes[5]).ok_or(RecordError::BadSeverity(bytes[5]))?;
    let source_len = u16::from_le_bytes([bytes[6], bytes[7]]) as usize;
    if source_len > MAX_EVENT_SOURCE_LEN {
        return Err(RecordError::TooLong { field: "source", len: source_len, max: MAX_EVENT_SOURCE_LEN });
    }
    let message_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    if message_len > MAX_EVENT_MESSAGE_LEN {
        return Err(RecordError::TooLong { field: "message", len: message_len, max: MAX_EVENT_MESSAGE_LEN });
    }
    let body_end = EVENT_HEADER_LEN + source_len + message_len;
    let len = body_end + EVENT_CRC_LEN;
    if bytes.len() < len {
        return Err(short(len));
    }
    let stored = u32::from_le_bytes([bytes[body_end], bytes[body_end + 1], bytes[body_end + 2], bytes[body_end + 3]]);
    if crc32fast::hash(&bytes[..body_end]) != stored {
        return Err(RecordError::BadCrc);
    }
    let mut time = [0u8; 8];
    time.copy_from_slice(&bytes[12..20]);
    let source = std::str::from_utf8(&bytes[EVENT_HEADER_LEN..EVENT_HEADER_LEN + source_len])
        .map_err(|_| RecordError::NotUtf8("source"))?;
    let message = std::str::from_utf8(&bytes[EVENT_HEADER_LEN + source_len..body_end])
        .map_err(|_| RecordError::NotUtf8("message"))?;
    let event =
        Event { time_ms: u64::from_le_bytes(time), severity, source: source.to_string(), message: message.to_string() };
    Ok((event, len))
}

/// What [`decode_events`] found in a file's bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventLog {
    /// The events, oldest first.
    pub events: Vec<Event>,
    /// Bytes skipped between records (damage followed by a good record).
    pub skipped: usize,
    /// Where the last good record ends (the length a writer keeps).
    pub valid_len: usize,
    /// Bytes after it that hold no good record (a torn write), ignored.
    pub torn_tail: usize,
}

/// Decodes a file of records. A record that does not decode is skipped up to the next magic
/// that starts a good record; when none follows, the rest is the torn tail.
pub fn decode_events(bytes: &[u8]) -> EventLog {
    let mut log = EventLog::default();
    let mut pos = 0;
    while pos < bytes.len() {
        match decode_event(&bytes[pos..]) {
            Ok((event, len)) => {
                log.events.push(event);
                pos += len;
                log.valid_len = pos;
            }
            Err(_) => match next_record(bytes, pos + 1) {
                Some(next) => {
                    log.skipped += next - pos;
                    pos = next;
                }
                None => {
                    log.torn_tail = bytes.len() - pos;
                    break;
                }
            },
        }
    }
    log
}

/// The first offset at or after `from` where a good record starts.
fn next_record(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(EVENT_MAGIC.len() - 1))
        .filter(|&p| bytes[p..].starts_with(&EVENT_MAGIC))
        .find(|&p| decode_event(&bytes[p..]).is_ok())
}

/// Reads the events of the data directory `dir`, oldest first (none when the file does not
/// exist). Only the last [`MAX_EVENT_READ`] bytes are read; a record cut by that start is
/// skipped.
pub fn read_events(dir: &Path) -> Result<EventLog> {
    let path = dir.join(EVENTS_FILE);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(EventLog::default()),
        Err(e) => return Err(Error::io("open", &path, e)),
    };
    let len = file.metadata().map_err(|e| Error::io("stat", &path, e))?.len();
    let start = len.saturating_sub(MAX_EVENT_READ);
    file.seek(SeekFrom::Start(start)).map_err(|e| Error::io("read", &path, e))?;
    let mut bytes = Vec::with_capacity((len - start) as usize);
    file.take(MAX_EVENT_READ).read_to_end(&mut bytes).map_err(|e| Error::io("read", &path, e))?;
    Ok(decode_events(&bytes))
}

/// The event log opened for appending (by the process holding the data directory).
pub struct EventFile {
    path: PathBuf,
    file: File,
}

impl EventFile {
    /// Opens or creates `dir/events` and cuts off a torn tail (the caller holds the data
    /// directory, so no one else writes it).
    pub fn open(dir: &Path) -> Result<EventFile> {
        let path = dir.join(EVENTS_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| Error::io("read", &path, e))?;
        let log = decode_events(&bytes);
        if log.torn_tail > 0 {
            file.set_len(log.valid_len as u64).map_err(|e| Error::io("truncate", &path, e))?;
        }
        Ok(EventFile { path, file })
    }

    /// Appends one event and makes it durable.
    pub fn append(&mut self, event: &Event) -> Result<()> {
        self.file.write_all(&encode_event(event)).map_err(|e| Error::io("write", &self.path, e))?;
        self.file.sync_data().map_err(|e| Error::io("sync", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(message: &str) -> Event {
        Event {
            time_ms: 1_700_000_000_123,
            severity: Severity::Warning,
            source: "serve".into(),
            message: message.into(),
        }
    }

    #[test]
    fn a_record_round_trips_and_long_fields_are_cut_at_a_character_boundary() {
        let e = event("serving process restarted");
        let bytes = encode_event(&e);
        assert_eq!(decode_event(&bytes), Ok((e, bytes.len())));
        let long = Event { source: "é".repeat(40), message: "ü".repeat(3000), ..event("") };
        let (back, _) = decode_event(&encode_event(&long)).unwrap();
        assert_eq!(back.source.len(), 64);
        assert_eq!(back.message.len(), 4096);
    }

    #[test]
    fn the_file_writer_cuts_a_torn_tail_and_appends_after_the_last_good_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = EventFile::open(dir.path()).unwrap();
        f.append(&event("one")).unwrap();
        drop(f);
        let path = dir.path().join(EVENTS_FILE);
        let torn = &encode_event(&event("torn"))[..10];
        OpenOptions::new().append(true).open(&path).unwrap().write_all(torn).unwrap();
        assert_eq!(read_events(dir.path()).unwrap().torn_tail, 10);
        EventFile::open(dir.path()).unwrap().append(&event("two")).unwrap();
        let log = read_events(dir.path()).unwrap();
        let messages: Vec<_> = log.events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["one", "two"]);
        assert_eq!((log.skipped, log.torn_tail), (0, 0));
    }
}
