//! iSCSI text segments (login and Text keys): `text::parse`, and the numerical and binary value
//! decoders CHAP and negotiation use. Any input gives pairs or an error, never a panic; parsed
//! pairs format and parse back to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qorestor_iscsi::text;

fuzz_target!(|data: &[u8]| {
    if let Ok(pairs) = text::parse(data) {
        assert!(pairs.0.len() <= text::MAX_PAIRS);
        assert_eq!(text::parse(&text::format(&pairs)).unwrap(), pairs);
        for (_, v) in &pairs.0 {
            let _ = text::number(v);
            if let Some(b) = text::binary(v, 1024) {
                assert!(b.len() <= 1024 + 3);
            }
        }
    }
});
