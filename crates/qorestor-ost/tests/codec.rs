//! Property tests of the OST frame codec: every message round-trips, every truncation and
//! every flipped bit is refused, the vectored `Data` writer and the in-place `Data` decoder
//! agree with the others, arbitrary bytes never panic, and counts beyond the frame are refused
//! before anything is allocated.

use proptest::prelude::*;
use qorestor_core::Fingerprint;
use qorestor_ost::codec::*;

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..16).prop_map(move |cs| {
        let mut s = String::new();
        for c in cs {
            if s.len() + c.len_utf8() > max {
                break;
            }
            s.push(c);
        }
        s
    })
}

fn fp() -> impl Strategy<Value = Fingerprint> {
    any::<[u8; 32]>().prop_map(Fingerprint)
}

fn image() -> impl Strategy<Value = ImageInfo> {
    (text(MAX_NAME), any::<u64>(), any::<u64>(), any::<u32>(), text(MAX_PROPERTIES)).prop_map(
        |(name, logical_bytes, date, copy, properties)| ImageInfo { name, logical_bytes, date, copy, properties },
    )
}

fn chunk() -> impl Strategy<Value = WireChunk> {
    (fp(), prop::collection::vec(any::<u8>(), 1..64), 0u8..2, 0u32..1000)
        .prop_map(|(fp, payload, codec, extra)| WireChunk { fp, raw_len: payload.len() as u32 + extra, codec, payload })
}

fn code() -> impl Strategy<Value = FailCode> {
    prop::sample::select(vec![
        FailCode::UnsupportedVersion,
        FailCode::AuthenticationFailed,
        FailCode::NotPermitted,
        FailCode::NotFound,
        FailCode::Exists,
        FailCode::Busy,
        FailCode::Invalid,
        FailCode::NoSpace,
        FailCode::Protocol,
        FailCode::Internal,
        FailCode::Refused,
        FailCode::OptimizedUnavailable,
    ])
}

fn message() -> impl Strategy<Value = Message> {
    let requests = prop_oneof![
        (prop::collection::vec(any::<u16>(), 1..=MAX_VERSIONS), any::<u64>(), text(64), text(64), any::<[u8; 32]>())
            .prop_map(|(versions, caps, user, host, nonce)| Message::Hello { versions, caps, user, host, nonce }),
        any::<[u8; 32]>().prop_map(|proof| Message::Proof { proof }),
        Just(Message::ListLsus),
        (text(64), text(64), any::<u64>(), any::<u32>(), text(200), any::<bool>()).prop_map(
            |(lsu, name, date, copy, properties, opt)| Message::Create {
                lsu,
                name,
                date,
                copy,
                properties,
                mode: if opt { WriteMode::Optimized } else { WriteMode::Passthrough },
            }
        ),
        prop::collection::vec(any::<u8>(), 0..256).prop_map(Message::Write),
        prop::collection::vec(fp(), 0..20).prop_map(Message::Ask),
        (prop::collection::vec((fp(), 1u32..=MAX_CHUNK), 0..20), prop::collection::vec(chunk(), 0..5))
            .prop_map(|(entries, chunks)| Message::Append { entries, chunks }),
        Just(Message::Close),
        Just(Message::Abort),
        (text(64), text(64)).prop_map(|(lsu, name)| Message::Open { lsu, name }),
        (any::<u64>(), 0u32..=MAX_DATA as u32).prop_map(|(offset, len)| Message::Read { offset, len }),
        (text(64), text(64)).prop_map(|(lsu, name)| Message::Info { lsu, name }),
        text(64).prop_map(|lsu| Message::List { lsu }),
        (text(64), text(64)).prop_map(|(lsu, name)| Message::Delete { lsu, name }),
    ];
    let answers = prop_oneof![
        (any::<u16>(), any::<u64>(), any::<[u8; 32]>(), any::<[u8; 16]>(), any::<(u32, u32, u32)>()).prop_map(
            |(version, caps, nonce, salt, (memory_kib, iterations, parallelism))| Message::Challenge {
                version,
                caps,
                nonce,
                salt,
                memory_kib,
                iterations,
                parallelism,
            }
        ),
        any::<[u8; 32]>().prop_map(|signature| Message::Welcome { signature }),
        Just(Message::Done),
        prop::collection::vec(
            (text(64), any::<u64>(), any::<u64>(), any::<u64>(), any::<bool>(), text(100)).prop_map(
                |(name, capacity, logical_bytes, physical_bytes, optimized, properties)| LsuInfo {
                    name,
                    capacity,
                    logical_bytes,
                    physical_bytes,
                    optimized,
                    properties,
                }
            ),
            0..4
        )
        .prop_map(Message::Lsus),
        (1u32..1000, 0u32..1000, 0u32..1000, 0i32..=22).prop_map(|(min, a, b, zstd_level)| Message::Created(
            Chunking { min, avg: min + a, max: (min + a + b).min(MAX_CHUNK), zstd_level }
        )),
        prop::collection::vec(any::<bool>(), 0..=MAX_BATCH).prop_map(Message::Missing),
        any::<u64>().prop_map(|logical_bytes| Message::Closed { logical_bytes }),
        image().prop_map(Message::Opened),
        prop::collection::vec(any::<u8>(), 0..256).prop_map(Message::Data),
        image().prop_map(Message::Image),
        prop::collection::vec(image(), 0..4).prop_map(Message::Images),
        (code(), text(200)).prop_map(|(code, message)| Message::Failed { code, message }),
    ];
    prop_oneof![requests, answers]
}

proptest! {
    #[test]
    fn every_message_round_trips(m in message()) {
        let b = encode(&m);
        prop_assert_eq!(frame_len(b[0..4].try_into().unwrap()).unwrap(), b.len());
        prop_assert_eq!(decode(&b).unwrap(), m);
    }

    #[test]
    fn data_payload_agrees_with_decode(m in message()) {
        let b = encode(&m);
        match (&m, data_payload(&b).unwrap()) {
            (Message::Data(d), Some(r)) => prop_assert_eq!(&b[r], &d[..]),
            (Message::Data(_), None) => prop_assert!(false, "a Data frame not seen as one"),
            (_, Some(r)) => prop_assert!(false, "{} seen as Data {:?}", m.name(), r),
            (_, None) => {}
        }
    }

    #[test]
    fn a_data_frame_written_from_parts_is_its_encoding(d in prop::collection::vec(any::<u8>(), 0..4096), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6), limit in 1usize..64) {
        // The payload in parts (some empty) written to a writer that takes few bytes a call.
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(d.len() + 1)).collect();
        at.sort_unstable();
        let mut parts = Vec::new();
        let mut from = 0;
        for &to in at.iter().chain(std::iter::once(&d.len())) {
            parts.push(&d[from..to]);
            from = to;
        }
        let mut out = Trickle { bytes: Vec::new(), limit };
        write_data(&mut out, &parts).unwrap();
        prop_assert_eq!(out.bytes, encode(&Message::Data(d.clone())));
    }

    #[test]
    fn truncations_and_flipped_bits_are_refused(m in message(), bit in any::<prop::sample::Index>()) {
        let b = encode(&m);
        for n in 0..b.len() {
            prop_assert!(decode(&b[..n]).is_err(), "truncated to {}", n);
            prop_assert!(data_payload(&b[..n]).is_err(), "truncated to {}", n);
        }
        let mut c = b.clone();
        let at = bit.index(b.len() * 8);
        c[at / 8] ^= 1 << (at % 8);
        prop_assert!(decode(&c).is_err(), "bit {} flipped", at);
        prop_assert!(data_payload(&c).is_err(), "bit {} flipped", at);
    }

    #[test]
    fn arbitrary_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 1..512)) {
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        frame.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        let decoded = decode(&frame);
        if let Ok(m) = &decoded {
            prop_assert_eq!(&encode(m), &frame);
        }
        match (decoded, data_payload(&frame)) {
            (Ok(Message::Data(d)), Ok(Some(r))) => prop_assert_eq!(&frame[r], &d[..]),
            (Ok(Message::Data(_)), other) => prop_assert!(false, "Data decoded, data_payload gave {:?}", other),
            (Err(_), Ok(Some(r))) => prop_assert!(false, "refused by decode, Data {:?} by data_payload", r),
            (Ok(_), Ok(Some(_))) | (Ok(_), Err(_)) => prop_assert!(false, "another message not left to decode"),
            _ => {}
        }
    }
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame.extend_from_slice(&crc32fast::hash(body).to_be_bytes());
    frame
}

#[test]
fn counts_beyond_the_frame_or_the_limits_are_refused() {
    // An image list claiming four billion images in a few bytes.
    let e = decode(&framed(&[138, 0xff, 0xff, 0xff, 0xff])).unwrap_err();
    assert!(e.to_string().contains("image count"), "{e}");
    // An Ask of more than a batch.
    let mut ask = vec![6];
    ask.extend_from_slice(&(MAX_BATCH as u32 + 1).to_be_bytes());
    ask.extend(std::iter::repeat_n(0u8, 32 * (MAX_BATCH + 1)));
    assert!(decode(&framed(&ask)).unwrap_err().to_string().contains("fingerprint count"));
    // A string longer than its limit.
    let mut list = vec![12];
    list.extend_from_slice(&(MAX_NAME as u32 + 1).to_be_bytes());
    list.extend(std::iter::repeat_n(b'a', MAX_NAME + 1));
    assert!(decode(&framed(&list)).unwrap_err().to_string().contains("over the limit"));
    // A frame length over the limit, and an unknown type.
    assert!(matches!(frame_len((MAX_FRAME as u32 + 1).to_be_bytes()), Err(WireError::Length(_))));
    assert!(matches!(decode(&framed(&[99])), Err(WireError::Type(99))));
    // A zstd payload longer than its raw length.
    let mut append = vec![7, 0, 0, 0, 0, 0, 0, 0, 1];
    append.extend_from_slice(&[0; 32]);
    append.extend_from_slice(&2u32.to_be_bytes());
    append.push(1);
    append.extend_from_slice(&3u32.to_be_bytes());
    append.extend_from_slice(b"abc");
    assert!(decode(&framed(&append)).unwrap_err().to_string().contains("payload"));
}

/// A writer that takes at most `limit` bytes a call (as a socket may).
struct Trickle {
    bytes: Vec<u8>,
    limit: usize,
}

impl std::io::Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.limit);
        self.bytes.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        let mut n = 0;
        for b in bufs {
            let k = (self.limit - n).min(b.len());
            self.bytes.extend_from_slice(&b[..k]);
            n += k;
            if n == self.limit {
                break;
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
