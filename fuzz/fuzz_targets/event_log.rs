//! The event log `DIR/events`: `decode_events` and `decode_event` on arbitrary bytes.
//!
//! Input: one mode byte, then
//! - mode 0: an event log as stored;
//! - mode 1: the bytes as one record whose magic, version and CRC are fixed up, so that the
//!   severity, length and UTF-8 checks are reached. An accepted record must re-encode to the
//!   same bytes.
//!
//! Every byte of a log is accounted for (records, skipped, torn tail) and nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qorestor_core::events::{
    decode_event, decode_events, encode_event, EVENT_CRC_LEN, EVENT_HEADER_LEN, EVENT_MAGIC, EVENT_VERSION,
};

fn fix_up(rest: &[u8]) -> Option<Vec<u8>> {
    if rest.len() < EVENT_HEADER_LEN + EVENT_CRC_LEN {
        return None;
    }
    let mut b = rest.to_vec();
    b[0..4].copy_from_slice(&EVENT_MAGIC);
    b[4] = EVENT_VERSION;
    let body_end = b.len() - EVENT_CRC_LEN;
    let crc = crc32fast::hash(&b[..body_end]);
    b[body_end..].copy_from_slice(&crc.to_le_bytes());
    Some(b)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let log = decode_events(rest);
        let records: usize = log.events.iter().map(|e| encode_event(e).len()).sum();
        assert_eq!(records + log.skipped + log.torn_tail, rest.len());
        assert!(log.valid_len <= rest.len());
    } else if let Some(bytes) = fix_up(rest) {
        if let Ok((event, len)) = decode_event(&bytes) {
            assert_eq!(encode_event(&event), bytes[..len], "an accepted record is canonical");
        }
    }
});
