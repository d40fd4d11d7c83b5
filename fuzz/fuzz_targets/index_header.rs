//! Fingerprint index header: `decode_index_header` with the file length taken from the input.
//!
//! Input: one mode byte, the file length (u64 LE), then the header bytes; in mode 1 the magic,
//! version and CRC are fixed up so that the slot-count checks are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qorestor_core::format::{INDEX_HEADER_LEN, INDEX_MAGIC, INDEX_SLOT_LEN};
use qorestor_core::test_support::index::{decode_index_header, encode_index_header};

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let mode = data[0];
    let file_len = u64::from_le_bytes(data[1..9].try_into().unwrap());
    let mut b = data[9..].to_vec();
    if mode & 1 == 1 && b.len() >= 36 {
        b[0..8].copy_from_slice(&INDEX_MAGIC);
        b[8..10].copy_from_slice(&1u16.to_le_bytes());
        let c = crc32fast::hash(&b[..32]);
        b[32..36].copy_from_slice(&c.to_le_bytes());
    }
    if let Ok(h) = decode_index_header(&b, file_len) {
        assert!(h.slots.is_power_of_two() && h.slots >= 1 << 14);
        assert_eq!(INDEX_HEADER_LEN as u64 + h.slots * INDEX_SLOT_LEN as u64, file_len);
        let again = encode_index_header(&h);
        assert_eq!(again[12..32], b[12..32]);
    }
});
