//! Codec properties: record marking round-trips however the record is fragmented and
//! however the bytes arrive; no input makes a decoder panic or allocate past its limits.

use proptest::prelude::*;
use qorestor_ndmp::message::{code, Header};
use qorestor_ndmp::record::{decode_record, encode_record, Assembler, MAX_RECORD, PRE_AUTH_MAX_RECORD};
use qorestor_ndmp::reply::{encode_reply, frame, Reply};
use qorestor_ndmp::request::{decode_request, Request};
use qorestor_ndmp::xdr::{Decoder, Encoder};
use qorestor_ndmp::DecodeError;

/// Frames `body` in fragments of the given sizes (the last takes the rest).
fn fragmented(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    for &s in sizes {
        if rest.len() <= s {
            break;
        }
        out.extend_from_slice(&(s as u32).to_be_bytes());
        out.extend_from_slice(&rest[..s]);
        rest = &rest[s..];
    }
    out.extend_from_slice(&(0x8000_0000u32 | rest.len() as u32).to_be_bytes());
    out.extend_from_slice(rest);
    out
}

proptest! {
    #[test]
    fn records_round_trip(body in proptest::collection::vec(any::<u8>(), 0..4096),
                          sizes in proptest::collection::vec(0usize..600, 0..8),
                          cut in 0usize..5000) {
        let framed = fragmented(&body, &sizes);
        let (got, used) = decode_record(&framed, MAX_RECORD).unwrap().unwrap();
        prop_assert_eq!(&got, &body);
        prop_assert_eq!(used, framed.len());
        // Any prefix is incomplete, never an error.
        let cut = cut.min(framed.len().saturating_sub(1));
        prop_assert_eq!(decode_record(&framed[..cut], MAX_RECORD).unwrap(), None);
    }

    /// The assembler, fed the bytes in any pieces (the server's reads), takes the same records
    /// as the pure decoder, and leaves at most one incomplete fragment untaken.
    #[test]
    fn the_assembler_takes_records_however_the_bytes_arrive(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1500), 1..4),
        sizes in proptest::collection::vec(0usize..600, 0..8),
        pieces in proptest::collection::vec(1usize..700, 1..40)) {
        let mut wire = Vec::new();
        for b in &bodies {
            wire.extend_from_slice(&fragmented(b, &sizes));
        }
        let mut assembler = Assembler::default();
        let (mut pending, mut got) = (Vec::new(), Vec::new());
        let mut at = 0;
        let mut piece = pieces.iter().cycle();
        while at < wire.len() {
            let n = (*piece.next().unwrap()).min(wire.len() - at);
            pending.extend_from_slice(&wire[at..at + n]);
            at += n;
            loop {
                let (used, record) = assembler.take(&pending, MAX_RECORD).unwrap();
                pending.drain(..used);
                match record {
                    Some(r) => got.push(r),
                    None => break,
                }
            }
            prop_assert!(pending.len() < 4 + 1500, "{} bytes untaken", pending.len());
        }
        prop_assert_eq!(got, bodies);
        prop_assert_eq!(assembler.pending(), 0);
    }

    #[test]
    fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..512),
                                        msg in prop_oneof![0x100u32..0x10B, 0x200u32..0x207, 0x300u32..0x308,
                                                           0x900u32..0x904, 0xA00u32..0xA0A, any::<u32>()]) {
        let _ = decode_request(3, msg, &bytes);
        let _ = decode_request(4, msg, &bytes);
        let _ = decode_record(&bytes, 1024);
        let _ = Header::decode(&mut Decoder::new(&bytes));
    }

    #[test]
    fn header_round_trip(seq in any::<u32>(), ts in any::<u32>(), t in 0u32..2, c in any::<u32>(),
                         rs in any::<u32>(), e in any::<u32>()) {
        let h = Header { sequence: seq, time_stamp: ts, message_type: t, message_code: c, reply_sequence: rs, error: e };
        let mut enc = Encoder::new();
        h.encode(&mut enc);
        prop_assert_eq!(Header::decode(&mut Decoder::new(enc.as_bytes())).unwrap(), h);
    }

    #[test]
    fn tape_write_round_trip(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let body = Encoder::new().opaque(&data).as_bytes().to_vec();
        prop_assert_eq!(body.len() % 4, 0);
        prop_assert_eq!(decode_request(4, code::TAPE_WRITE, &body).unwrap(), Request::TapeWrite { data });
    }
}

#[test]
fn oversized_lengths_are_refused_before_allocation() {
    // A fragment header announcing 2 GiB.
    let r = decode_record(&[0xFF, 0xFF, 0xFF, 0xFF], MAX_RECORD);
    assert!(matches!(r, Err(DecodeError::TooLong { what: "fragment", .. })), "{r:?}");
    // Fragments that add up past the record limit.
    let mut many = Vec::new();
    for _ in 0..3 {
        many.extend_from_slice(&(600u32).to_be_bytes());
        many.extend_from_slice(&[0; 600]);
    }
    assert!(matches!(decode_record(&many, 1024), Err(DecodeError::TooLong { what: "record", .. })));
    // Empty fragments count their headers: a drip of them reaches the record limit.
    let empty = vec![0u8; PRE_AUTH_MAX_RECORD + 4];
    let r = Assembler::default().take(&empty, PRE_AUTH_MAX_RECORD);
    assert!(matches!(r, Err(DecodeError::TooLong { what: "record", .. })), "{r:?}");
    let mut a = Assembler::default();
    let refused = empty.chunks(100).any(|chunk| match a.take(chunk, PRE_AUTH_MAX_RECORD) {
        Ok((used, None)) => {
            assert_eq!(used, chunk.len());
            false
        }
        Err(DecodeError::TooLong { what: "record", .. }) => true,
        other => panic!("{other:?}"),
    });
    assert!(refused && a.pending() <= PRE_AUTH_MAX_RECORD, "the assembler took every empty fragment");
    // A TAPE_WRITE claiming more than the largest block, with few bytes behind it.
    let body = Encoder::new().u32(u32::MAX).as_bytes().to_vec();
    assert!(matches!(decode_request(4, code::TAPE_WRITE, &body), Err(DecodeError::TooLong { .. })));
    // A device name longer than the string limit.
    let body = Encoder::new().u32(1 << 20).as_bytes().to_vec();
    assert!(matches!(decode_request(4, code::TAPE_OPEN, &body), Err(DecodeError::TooLong { .. })));
    // An address list count that cannot fit in the body.
    let body = Encoder::new().u32(0).u32(1).u32(60).as_bytes().to_vec();
    assert!(matches!(decode_request(4, code::MOVER_CONNECT, &body), Err(DecodeError::Truncated { .. })));
}

#[test]
fn requests_decode_from_spec_layouts() {
    let md5 = Encoder::new().u32(2).string("ndmp").fixed(&[7; 16]).as_bytes().to_vec();
    assert_eq!(
        decode_request(4, code::CONNECT_CLIENT_AUTH, &md5).unwrap(),
        Request::ConnectClientAuth(qorestor_ndmp::request::Auth::Md5 { user: "ndmp".into(), digest: [7; 16] })
    );
    let window = Encoder::new().u64(1 << 40).u64(u64::MAX).as_bytes().to_vec();
    assert_eq!(
        decode_request(4, code::MOVER_SET_WINDOW, &window).unwrap(),
        Request::MoverSetWindow { offset: 1 << 40, length: u64::MAX }
    );
    assert_eq!(decode_request(4, 0x401, &[]).unwrap(), Request::Unsupported { code: 0x401 });
}

#[test]
fn error_replies_keep_the_body_shape() {
    // TAPE_GET_STATE: unsupported, error, flags, file_num, soft_errors, block_size, blockno,
    // total_space (2 words), space_remain (2 words).
    let b = encode_reply(4, code::TAPE_GET_STATE, &Reply::Error(qorestor_ndmp::message::NdmpError::DevNotOpen));
    assert_eq!(b.len(), 11 * 4);
    assert_eq!(&b[4..8], &6u32.to_be_bytes());
    // MOVER_GET_STATE: 17 words after the error (the address type LOCAL last).
    let b = encode_reply(4, code::MOVER_GET_STATE, &Reply::Error(qorestor_ndmp::message::NdmpError::NoErr));
    assert_eq!(b.len(), 18 * 4);
    let framed = frame(
        &Header { sequence: 1, time_stamp: 0, message_type: 1, message_code: 0xA00, reply_sequence: 1, error: 0 },
        &b,
    );
    assert_eq!(decode_record(&framed, MAX_RECORD).unwrap().unwrap().0.len(), 24 + b.len());
    assert_eq!(encode_record(&[]).len(), 4);
}
