//! VTL catalog records: the library record and cartridge maps as stored in the catalog
//! (container metadata, kind 6 of the catalog framing), decoded and validated the way
//! `Vtl::open` and a drive's mount do; a map that validates is indexed and queried at a few
//! positions.
//!
//! Input: one mode byte, then
//! - mode 0: a value as stored in the catalog;
//! - mode 1: a JSON body, framed correctly so that the JSON decoding and validation are
//!   reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qorestor_core::test_support::catalog::{decode_value, encode_value};
use qorestor_vtl::{CartMap, LibraryRecord, TapeMap};

/// The kind byte of container metadata in the catalog framing.
const KIND_CONTAINER_META: u8 = 6;

fn try_all(b: &[u8]) {
    if let Ok(r) = decode_value::<LibraryRecord>(KIND_CONTAINER_META, b) {
        if r.validate().is_ok() {
            let again = encode_value(KIND_CONTAINER_META, &r);
            assert_eq!(decode_value::<LibraryRecord>(KIND_CONTAINER_META, &again).unwrap(), r);
            for a in [0u16, 1, 10, 500, 1000, u16::MAX] {
                if let Some(l) = r.location_at(a) {
                    assert_eq!(r.address(l), Some(a));
                }
            }
            let _ = (r.free_slot(), r.free_ie_slot());
        }
    }
    if let Ok(m) = decode_value::<CartMap>(KIND_CONTAINER_META, b) {
        if m.validate().is_ok() {
            let mut t = TapeMap::from_map(&m);
            assert_eq!(t.to_map(), m);
            assert_eq!(t.segment_bytes(), t.data_bytes());
            let n = t.objects();
            for p in [0, 1, n / 2, n.saturating_sub(1), n, n + 1] {
                let _ = (t.object_at(p), t.filemarks_before(p), t.bytes_before(p));
            }
            if t.filemarks() > 0 {
                let p = t.filemark_position(t.filemarks() - 1);
                assert!(p < n);
            }
            let kept = t.truncate_objects(n / 2);
            let _ = t.truncate_segments(kept);
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
    let mut b = vec![b'Q', b'V', 1, KIND_CONTAINER_META];
    b.extend_from_slice(rest);
    let c = crc32fast::hash(&b);
    b.extend_from_slice(&c.to_le_bytes());
    try_all(&b);
});
