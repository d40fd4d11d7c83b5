//! `decode_pack_header` on arbitrary bytes: never panics; whatever it accepts re-encodes to
//! the same 32 bytes, but for the reserved bytes 10..12 and 20..28, which are covered by the
//! CRC but not checked (libFuzzer's comparison tracing does find CRC-consistent headers with
//! non-zero reserved bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qorestor_core::format::PACK_HEADER_LEN;
use qorestor_core::test_support::pack::{decode_pack_header, encode_pack_header};

fuzz_target!(|data: &[u8]| {
    if let Ok((group, pack)) = decode_pack_header(data) {
        assert!(data.len() >= PACK_HEADER_LEN);
        let again = encode_pack_header(group, pack);
        let fields = [0..10, 12..20];
        for r in fields {
            assert_eq!(again[r.clone()], data[r]);
        }
    }
});
