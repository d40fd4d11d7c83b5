//! NDMP decoding: record marking, the message header and the body of every request. Any
//! input gives a value or a `DecodeError`, never a panic, and nothing decoded is larger than
//! the input allows.
//!
//! Input: the bytes as received on a control connection (records decoded one after the
//! other, each header and body decoded as the server does; and fed to the server's
//! `Assembler` in pieces, which must take the same records); the same bytes are also decoded
//! as the body of the request whose code their first word names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qorestor_ndmp::message::Header;
use qorestor_ndmp::record::{decode_record, Assembler};
use qorestor_ndmp::request::decode_request;
use qorestor_ndmp::xdr::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let mut whole = Vec::new();
    while let Ok(Some((record, used))) = decode_record(rest, 1 << 20) {
        whole.push(record.clone());
        assert!(used <= rest.len() && record.len() <= used);
        rest = &rest[used..];
        let d = &mut Decoder::new(&record);
        if let Ok(h) = Header::decode(d) {
            let body = &record[record.len() - d.remaining()..];
            let _ = decode_request(3 + (h.sequence & 1) as u16, h.message_code, body);
        }
    }
    // The assembler, fed 7 bytes at a time, takes the same records before any error.
    let (mut assembler, mut pending, mut taken) = (Assembler::default(), Vec::new(), Vec::new());
    'feed: for piece in data.chunks(7) {
        pending.extend_from_slice(piece);
        loop {
            match assembler.take(&pending, 1 << 20) {
                Ok((used, record)) => {
                    pending.drain(..used);
                    match record {
                        Some(r) => taken.push(r),
                        None => break,
                    }
                }
                Err(_) => break 'feed,
            }
        }
    }
    assert_eq!(taken, whole);
    if data.len() >= 4 {
        let code = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) & 0xFFF;
        let _ = decode_request(3 + (data[0] >> 7) as u16, code, &data[4..]);
    }
});
