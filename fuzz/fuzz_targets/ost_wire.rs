//! The OST protocol's frame decoder on arbitrary bytes: never panics; whatever it accepts
//! re-encodes to the same bytes (the encoding is canonical). The input is decoded as a whole
//! frame, and also framed first (length and checksum made right around it as type and body),
//! so that the body parsers are reached without the fuzzer having to find checksums.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qorestor_ost::codec::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode(data) {
        assert_eq!(encode(&m), data);
    }
    if data.is_empty() {
        return;
    }
    let mut frame = (data.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(data);
    frame.extend_from_slice(&crc32fast::hash(data).to_be_bytes());
    if let Ok(m) = decode(&frame) {
        assert_eq!(encode(&m), frame);
    }
});
