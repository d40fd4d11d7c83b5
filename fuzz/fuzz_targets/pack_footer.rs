//! Pack footers: `decode_trailer` and `decode_footer`, the footer offset taken from the input.
//!
//! Input: one mode byte, the footer offset (u64 LE), then
//! - mode 0: the footer bytes (entries and trailer) as stored;
//! - mode 1: footer entries only: the trailer (offset, count, CRC, magic) is built correctly,
//!   so that the per-entry checks are reached. An accepted footer must re-encode identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qorestor_core::format::{FOOTER_ENTRY_LEN, PACK_HEADER_LEN, RECORD_HEADER_LEN, TRAILER_LEN};
use qorestor_core::test_support::pack::{decode_footer, decode_trailer, encode_footer};

fn trailer(body: &[u8], offset: u64, count: u32) -> [u8; TRAILER_LEN] {
    let mut t = [0u8; TRAILER_LEN];
    t[0..8].copy_from_slice(&offset.to_le_bytes());
    t[8..12].copy_from_slice(&count.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(body);
    h.update(&t[..12]);
    t[12..16].copy_from_slice(&h.finalize().to_le_bytes());
    t[16..24].copy_from_slice(b"QSPKEND1");
    t
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let mode = data[0];
    let offset = u64::from_le_bytes(data[1..9].try_into().unwrap());
    let rest = &data[9..];
    let bytes = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let n = rest.len() / FOOTER_ENTRY_LEN;
        let body = &rest[..n * FOOTER_ENTRY_LEN];
        let mut b = body.to_vec();
        b.extend_from_slice(&trailer(body, offset, n as u32));
        b
    };
    if bytes.len() >= TRAILER_LEN {
        let t = &bytes[bytes.len() - TRAILER_LEN..];
        let _ = decode_trailer(t, offset.wrapping_add(bytes.len() as u64));
        let _ = decode_trailer(t, offset);
    }
    let _ = decode_trailer(&bytes, offset);
    if let Ok(entries) = decode_footer(&bytes, offset) {
        assert!(offset >= PACK_HEADER_LEN as u64);
        for e in &entries {
            assert!(e.offset as u64 + RECORD_HEADER_LEN as u64 + e.stored_len as u64 <= offset);
        }
        if mode & 1 == 1 {
            // Padding bytes are covered by the CRC but not checked: compare the rest.
            let again = encode_footer(&entries, offset);
            assert_eq!(again.len(), bytes.len());
            for (i, (a, b)) in again.iter().zip(&bytes).enumerate() {
                let padding = i < entries.len() * FOOTER_ENTRY_LEN && i % FOOTER_ENTRY_LEN >= 45;
                let crc = i >= bytes.len() - 12 && i < bytes.len() - 8;
                if !padding && !crc {
                    assert_eq!(a, b, "byte {i}");
                }
            }
        }
    }
});
