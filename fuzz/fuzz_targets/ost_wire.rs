//! The OST protocol's frame decoder on arbitrary bytes: never panics; whatever it accepts
//! re-encodes to the same bytes (the encoding is canonical), and the in-place `Data` decoder
//! (`data_payload`) agrees with it. The input is decoded as a whole
//! frame, and also framed first (length and checksum made right around it as type and body),
//! so that the body parsers are reached without the fuzzer having to find checksums.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qorestor_ost::codec::{data_payload, decode, encode, Message};

/// Decodes `frame` both ways and checks they agree.
fn check(frame: &[u8]) {
    let decoded = decode(frame);
    if let Ok(m) = &decoded {
        assert_eq!(encode(m), frame);
    }
    match (decoded, data_payload(frame)) {
        (Ok(Message::Data(d)), Ok(Some(r))) => assert_eq!(&frame[r], &d[..]),
        (Ok(Message::Data(_)), other) => panic!("Data decoded, data_payload gave {other:?}"),
        (_, Ok(Some(r))) => panic!("not Data to decode, Data {r:?} to data_payload"),
        (Ok(_), Err(e)) => panic!("decoded, refused by data_payload: {e}"),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.is_empty() {
        return;
    }
    let mut frame = (data.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(data);
    frame.extend_from_slice(&crc32fast::hash(data).to_be_bytes());
    check(&frame);
});
