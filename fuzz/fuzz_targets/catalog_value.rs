//! Catalog values: `decode_value` for each kind with `GroupRecord`, `ContainerRecord`,
//! `StreamRecord`, `RecycledRecord` (kind 5, and kind 7: a recycle-bin entry per kept version) and
//! the engine state records of the `meta` tree
//! (`CleanerStatus`, cleaner schedules, quarantine lists).
//!
//! Input: one mode byte, then
//! - mode 0: a value as stored in the catalog;
//! - mode 1: kind byte and JSON body: the wrapper (magic, version, CRC) is built correctly, so
//!   that the JSON decoding is reached. An accepted value must round-trip through the encoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qorestor_core::test_support::catalog::{decode_value, encode_value, ContainerRecord, GroupRecord, RecycledRecord, StreamRecord};
use qorestor_core::verify::QuarantinedChunk;
use qorestor_core::{CleanerSchedule, CleanerStatus};

fn try_all(b: &[u8]) {
    for kind in 0u8..=7 {
        if let Ok(v) = decode_value::<GroupRecord>(kind, b) {
            assert_eq!(decode_value::<GroupRecord>(kind, &encode_value(kind, &v)).unwrap(), v);
        }
        if let Ok(v) = decode_value::<ContainerRecord>(kind, b) {
            assert_eq!(decode_value::<ContainerRecord>(kind, &encode_value(kind, &v)).unwrap(), v);
        }
        if let Ok(v) = decode_value::<StreamRecord>(kind, b) {
            assert_eq!(decode_value::<StreamRecord>(kind, &encode_value(kind, &v)).unwrap(), v);
        }
        if let Ok(v) = decode_value::<CleanerStatus>(kind, b) {
            // Floats in a report may not survive a JSON round trip bit for bit; re-decoding must work.
            decode_value::<CleanerStatus>(kind, &encode_value(kind, &v)).unwrap();
        }
        if let Ok(v) = decode_value::<RecycledRecord>(kind, b) {
            assert_eq!(decode_value::<RecycledRecord>(kind, &encode_value(kind, &v)).unwrap(), v);
        }
        if let Ok(v) = decode_value::<Vec<CleanerSchedule>>(kind, b) {
            assert_eq!(decode_value::<Vec<CleanerSchedule>>(kind, &encode_value(kind, &v)).unwrap(), v);
        }
        if let Ok(v) = decode_value::<Vec<QuarantinedChunk>>(kind, b) {
            assert_eq!(decode_value::<Vec<QuarantinedChunk>>(kind, &encode_value(kind, &v)).unwrap(), v);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        try_all(rest);
        return;
    }
    let Some((&kind, body)) = rest.split_first() else {
        return;
    };
    let mut b = vec![b'Q', b'V', 1, kind % 4];
    b.extend_from_slice(body);
    let c = crc32fast::hash(&b);
    b.extend_from_slice(&c.to_le_bytes());
    try_all(&b);
});
