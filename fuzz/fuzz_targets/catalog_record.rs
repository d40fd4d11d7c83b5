//! Redundant catalog records (`DATA/records/*/*.rec`): `decode_record` on arbitrary bytes, and on
//! bytes whose CRC is made right so that the length and flag checks behind it are reached. An
//! accepted record must encode back to the same bytes.
//!
//! Input: one mode byte, then the record bytes (mode 1: the last 4 bytes are replaced by the
//! CRC-32 of the rest).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qorestor_core::test_support::catalog_record::{decode_record, encode_record};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut b = rest.to_vec();
    if mode & 1 == 1 && b.len() >= 4 {
        let n = b.len() - 4;
        let crc = crc32fast::hash(&b[..n]);
        b[n..].copy_from_slice(&crc.to_le_bytes());
    }
    if let Ok(r) = decode_record(&b) {
        assert_eq!(encode_record(&r), b);
    }
});
