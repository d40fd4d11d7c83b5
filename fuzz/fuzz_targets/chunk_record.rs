//! Chunk records: `decode_record_header`, `check_record_payload` and `decode_chunk` against the
//! fingerprint embedded in the input.
//!
//! Input: one mode byte (bit 1 set: decode as an encrypted group, whose sealed payloads must
//! authenticate under its keys), then
//! - mode 0: a record as stored (header and payload), taken as is;
//! - mode 1: codec byte, raw length (u32 LE), payload: the header is built with a correct CRC
//!   (and the fingerprint of the payload), so that the codec, zstd and hash checks are reached.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use qorestor_core::compress::Codec;
use qorestor_core::crypto::{EncryptionMode, EncryptionOptions, GroupCrypto, Passphrase};
use qorestor_core::format::{MAX_CHUNK_LEN, RECORD_HEADER_LEN};
use qorestor_core::test_support::pack::{check_record_payload, decode_chunk, decode_record_header, encode_record_header};
use qorestor_core::Fingerprint;

/// An encrypted group's crypto (cheap key derivation: only decoding is exercised).
fn keyed() -> &'static GroupCrypto {
    static KEYED: OnceLock<GroupCrypto> = OnceLock::new();
    KEYED.get_or_init(|| {
        let pass = Passphrase::new(b"fuzz".to_vec()).unwrap();
        let mut opts = EncryptionOptions::new(EncryptionMode::Static, 1, pass);
        opts.kdf_memory_kib = 8;
        opts.kdf_iterations = 1;
        GroupCrypto::generate(&opts, 0).unwrap().1
    })
}

fn check(record: &[u8], crypto: &GroupCrypto) {
    if let Ok(h) = decode_record_header(record) {
        assert!(h.raw_len >= 1 && h.raw_len <= MAX_CHUNK_LEN);
        let end = (RECORD_HEADER_LEN + h.stored_len as usize).min(record.len());
        let _ = check_record_payload(record, &h, &record[RECORD_HEADER_LEN..end]);
    }
    let embedded = match record.get(12..44) {
        Some(fp) => Fingerprint(fp.try_into().unwrap()),
        None => Fingerprint([0; 32]),
    };
    let mut out = b"keep".to_vec();
    match decode_chunk(record, &embedded, crypto, &mut out) {
        Ok(()) => {
            let h = decode_record_header(record).unwrap();
            assert_eq!(out.len() - 4, h.raw_len as usize);
            assert_eq!(crypto.fingerprint(&out[4..]), embedded);
        }
        Err(_) => assert_eq!(out, b"keep"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let plain = GroupCrypto::default();
    let crypto = if mode & 2 == 0 { &plain } else { keyed() };
    if mode & 1 == 0 || rest.len() < 5 {
        check(rest, crypto);
        return;
    }
    let codec = if rest[0] & 1 == 0 { Codec::Raw } else { Codec::Zstd };
    let raw_len = u32::from_le_bytes(rest[1..5].try_into().unwrap());
    let payload = &rest[5..];
    let raw_len = if codec == Codec::Raw { payload.len() as u32 } else { raw_len };
    let fp = Fingerprint::of(payload);
    let mut record = encode_record_header(&fp, raw_len, codec, payload).to_vec();
    record.extend_from_slice(payload);
    check(&record, crypto);
    if codec == Codec::Raw && !payload.is_empty() {
        let mut out = Vec::new();
        decode_chunk(&record, &fp, &GroupCrypto::default(), &mut out).expect("a well-formed raw record decodes");
        assert_eq!(out, payload);
    }
});
