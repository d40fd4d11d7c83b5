//! The event log `DIR/events` (format in `docs/FORMAT.md`, "Event log"):
//! - the golden fixture `fixtures/events_v1.bin` (two records written once by the ignored
//!   `regenerate_events` test) decodes to the values here, field bytes at their documented
//!   offsets, and encoding those values gives the fixture bytes again;
//! - property tests: records round-trip; any cut of a log loses only the record it cuts (the
//!   torn tail); a flipped byte loses at most the record it is in; arbitrary bytes never panic
//!   and every byte is accounted for (records, skipped, torn tail).
//!
//! Rebuild the fixture deliberately with
//! `cargo test -p qorestor-core --test events -- --ignored regenerate_events`.

use std::path::PathBuf;

use proptest::prelude::*;
use qorestor_core::events::*;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events_v1.bin")
}

fn golden_events() -> Vec<Event> {
    vec![
        Event {
            time_ms: 1_700_000_000_123,
            severity: Severity::Info,
            source: "serve".into(),
            message: "serve started (pid 4242): iscsi 127.0.0.1:3260".into(),
        },
        Event {
            time_ms: 1_700_000_060_456,
            severity: Severity::Warning,
            source: "serve".into(),
            message:
                "the serving process (pid 4243) was killed by signal 9 (SIGKILL); restarted as pid 4250 after 0 s \
                      (restart 1 within 60 s)"
                    .into(),
        },
    ]
}

fn encode_all(events: &[Event]) -> Vec<u8> {
    events.iter().flat_map(encode_event).collect()
}

#[test]
#[ignore = "writes the fixture"]
fn regenerate_events() {
    std::fs::write(fixture(), encode_all(&golden_events())).unwrap();
}

#[test]
fn the_golden_fixture_decodes_field_by_field_and_encodes_back_to_the_same_bytes() {
    let bytes = std::fs::read(fixture()).unwrap();
    let log = decode_events(&bytes);
    assert_eq!(log.events, golden_events());
    assert_eq!((log.skipped, log.torn_tail, log.valid_len), (0, 0, bytes.len()));
    // The first record's bytes at their documented offsets.
    assert_eq!(&bytes[0..4], b"QEVT");
    assert_eq!(bytes[4], 1, "version");
    assert_eq!(bytes[5], 0, "severity info");
    assert_eq!(u16::from_le_bytes([bytes[6], bytes[7]]), 5, "source length");
    let message_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    assert_eq!(message_len, golden_events()[0].message.len());
    assert_eq!(u64::from_le_bytes(bytes[12..20].try_into().unwrap()), 1_700_000_000_123);
    assert_eq!(&bytes[20..25], b"serve");
    let end = 25 + message_len;
    let crc = u32::from_le_bytes(bytes[end..end + 4].try_into().unwrap());
    assert_eq!(crc, crc32fast::hash(&bytes[..end]));
    assert_eq!(&bytes[end + 4..end + 8], b"QEVT");
    assert_eq!(bytes[end + 9], 1, "the second record's severity is warning");
    assert_eq!(encode_all(&golden_events()), bytes);
}

#[test]
fn every_single_bit_flip_of_the_fixture_costs_at_most_one_record() {
    let bytes = std::fs::read(fixture()).unwrap();
    let first_len = decode_event(&bytes).unwrap().1;
    for bit in 0..bytes.len() * 8 {
        let mut damaged = bytes.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        let log = decode_events(&damaged);
        let expected = if bit / 8 < first_len { &golden_events()[1..] } else { &golden_events()[..1] };
        assert_eq!(log.events, expected, "bit {bit}");
    }
}

fn arb_event() -> impl Strategy<Value = Event> {
    (any::<u64>(), 0u8..3, "[a-z]{0,64}", ".{0,300}").prop_map(|(time_ms, s, source, message)| Event {
        time_ms,
        severity: [Severity::Info, Severity::Warning, Severity::Error][s as usize],
        source,
        message,
    })
}

proptest! {
    #[test]
    fn records_round_trip(e in arb_event()) {
        let bytes = encode_event(&e);
        prop_assert_eq!(decode_event(&bytes), Ok((e, bytes.len())));
    }

    #[test]
    fn a_cut_log_keeps_every_whole_record_and_ignores_the_torn_tail(
        events in prop::collection::vec(arb_event(), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = encode_all(&events);
        let at = cut.index(bytes.len() + 1);
        let log = decode_events(&bytes[..at]);
        let whole: Vec<usize> = events.iter().scan(0, |end, e| { *end += encode_event(e).len(); Some(*end) }).collect();
        let kept = whole.iter().filter(|&&end| end <= at).count();
        prop_assert_eq!(&log.events[..], &events[..kept]);
        prop_assert_eq!(log.valid_len + log.torn_tail, at);
        prop_assert_eq!(log.skipped, 0);
    }

    #[test]
    fn a_damaged_byte_costs_at_most_the_record_it_is_in(
        events in prop::collection::vec(arb_event(), 2..6),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let mut bytes = encode_all(&events);
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        let log = decode_events(&bytes);
        prop_assert!(log.events.len() + 1 >= events.len(), "{} of {}", log.events.len(), events.len());
        let lost = events.iter().filter(|e| !log.events.contains(e)).count();
        prop_assert!(lost <= 1);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_every_byte_is_accounted_for(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let log = decode_events(&bytes);
        let records: usize = log.events.iter().map(|e| encode_event(e).len()).sum();
        prop_assert_eq!(records + log.skipped + log.torn_tail, bytes.len());
    }
}
