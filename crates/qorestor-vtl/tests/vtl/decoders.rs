//! Property tests of the pure decoders: CDBs, MODE SELECT parameter lists and the catalog
//! records, plus golden fixtures of the records (a format change is a visible decision).

use proptest::prelude::*;
use qorestor_core::test_support::catalog::{decode_value, encode_value};
use qorestor_vtl::cdb::{Command, LocateTo, ModeSelectList, SpaceCode};
use qorestor_vtl::map::{Run, Segment};
use qorestor_vtl::model::{CartridgeRecord, LIBRARY_VERSION};
use qorestor_vtl::{parse_cdb, parse_mode_select, CartMap, DeviceKind, LibraryRecord, Location};

use super::cdbs::*;

/// Kind byte of container metadata in the catalog framing.
const KIND: u8 = 6;

fn library() -> LibraryRecord {
    LibraryRecord {
        version: LIBRARY_VERSION,
        vendor: "STK".into(),
        product: "L700".into(),
        serial: "QS0123ABCD".into(),
        drive_vendor: "IBM".into(),
        drive_product: "ULT3580-TD5".into(),
        drive_serials: vec!["QD0123AB01".into(), "QD0123AB02".into()],
        slots: 4,
        ie_slots: 1,
        cartridges: vec![
            CartridgeRecord {
                barcode: "QS0001L5".into(),
                capacity: 100_000_000_000,
                write_protected: false,
                worm: false,
                location: Location::Drive(1),
                source: Some(Location::Slot(0)),
            },
            CartridgeRecord {
                barcode: "QS0002L5".into(),
                capacity: 100_000_000_000,
                write_protected: true,
                worm: true,
                location: Location::Vault,
                source: Some(Location::Ie(0)),
            },
        ],
        next_barcode: 3,
        flush_bytes: 512 << 20,
        flush_secs: 10,
    }
}

fn cart_map() -> CartMap {
    CartMap {
        runs: vec![Run { size: 262_144, count: 4 }, Run { size: 0, count: 1 }, Run { size: 512, count: 2 }],
        segments: vec![Segment { id: 0, len: 1_048_576 }, Segment { id: 2, len: 1024 }],
        next_segment: 3,
        attributes: [(0x0800, qorestor_vtl::mam::to_hex(b"BACKUPCO"))].into_iter().collect(),
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn golden_records_decode_and_encode_the_same() {
    let lib = fixture("library_record.bin");
    assert_eq!(decode_value::<LibraryRecord>(KIND, &lib).unwrap(), library());
    assert_eq!(encode_value(KIND, &library()), lib);
    let map = fixture("cart_map.bin");
    assert_eq!(decode_value::<CartMap>(KIND, &map).unwrap(), cart_map());
    assert_eq!(encode_value(KIND, &cart_map()), map);
    assert!(library().validate().is_ok());
    assert!(cart_map().validate().is_ok());
    // Corrupt variants are refused.
    for (i, b) in [(5usize, lib.clone()), (lib.len() - 1, lib)].into_iter().map(|(i, mut b)| {
        b[i] ^= 1;
        (i, b)
    }) {
        assert!(decode_value::<LibraryRecord>(KIND, &b).is_err(), "flip at {i}");
    }
}

proptest! {
    #[test]
    fn any_cdb_decodes_or_is_an_illegal_request(kind in any::<bool>(), cdb in proptest::collection::vec(any::<u8>(), 0..20)) {
        let kind = if kind { DeviceKind::Drive } else { DeviceKind::Changer };
        if let Err(s) = parse_cdb(kind, &cdb) {
            prop_assert_eq!(s.key, 5);
        }
    }

    #[test]
    fn built_cdbs_decode_to_their_fields(
        fixed in any::<bool>(), sili in any::<bool>(), len in 0u32..0x100_0000,
        count in -0x80_0000i32..0x80_0000, count16 in any::<i64>(), obj in any::<u32>(), id in any::<u64>(),
    ) {
        let d = DeviceKind::Drive;
        let r = parse_cdb(d, &read6(fixed, sili, len));
        if fixed && sili {
            prop_assert!(r.is_err());
        } else {
            prop_assert_eq!(r.unwrap(), Command::Read { fixed, sili, len });
        }
        prop_assert_eq!(parse_cdb(d, &write6(fixed, len)).unwrap(), Command::Write { fixed, len });
        prop_assert_eq!(parse_cdb(d, &write_filemarks(len, false)).unwrap(), Command::WriteFilemarks { immed: false, count: len });
        prop_assert_eq!(parse_cdb(d, &space6(0, count)).unwrap(), Command::Space { code: SpaceCode::Blocks, count: count as i64 });
        prop_assert_eq!(parse_cdb(d, &space16(1, count16)).unwrap(), Command::Space { code: SpaceCode::Filemarks, count: count16 });
        prop_assert_eq!(parse_cdb(d, &locate10(obj)).unwrap(), Command::Locate { to: LocateTo::Object(obj as u64) });
        prop_assert_eq!(parse_cdb(d, &locate16(1, id)).unwrap(), Command::Locate { to: LocateTo::File(id) });
        let c = DeviceKind::Changer;
        let (a, b, e) = (obj as u16, (obj >> 16) as u16, id as u16);
        prop_assert_eq!(parse_cdb(c, &move_medium(a, b, e)).unwrap(), Command::MoveMedium { transport: a, source: b, dest: e });
        prop_assert_eq!(
            parse_cdb(c, &read_element_status(sili, (len % 5) as u8, a, b, fixed, len)).unwrap(),
            Command::ReadElementStatus { voltag: sili, element_type: (len % 5) as u8, start: a, count: b, dvcid: fixed, alloc: len }
        );
    }

    #[test]
    fn mode_select_lists_round_trip(
        ten in any::<bool>(), block in proptest::option::of(0u32..0x100_0000),
        pages in proptest::collection::vec((0u8..0x3F, proptest::collection::vec(any::<u8>(), 0..30)), 0..4),
    ) {
        let mut list = vec![0u8; if ten { 8 } else { 4 }];
        if block.is_some() {
            if ten { list[7] = 8 } else { list[3] = 8 }
        }
        if let Some(b) = block {
            list.extend_from_slice(&[0x58, 0, 0, 0, 0]);
            list.extend_from_slice(&b.to_be_bytes()[1..]);
        }
        for (code, body) in &pages {
            list.push(*code);
            list.push(body.len() as u8);
            list.extend_from_slice(body);
        }
        let p: ModeSelectList = parse_mode_select(ten, &list).unwrap();
        prop_assert_eq!(p.block_len, block);
        prop_assert_eq!(p.pages.len(), pages.len());
        for (got, (code, body)) in p.pages.iter().zip(&pages) {
            prop_assert_eq!(got.code, *code);
            prop_assert_eq!(&got.body, body);
        }
        // Every truncation is an error, never a panic.
        for n in 1..list.len() {
            let _ = parse_mode_select(ten, &list[..n]);
        }
    }

    #[test]
    fn records_round_trip_and_damage_is_refused(
        runs in proptest::collection::vec((0u32..5000, 1u64..100), 0..20),
        flip in any::<proptest::sample::Index>(),
    ) {
        let runs: Vec<Run> = runs.into_iter().map(|(size, count)| Run { size, count }).collect();
        let bytes: u64 = runs.iter().map(|r| r.size as u64 * r.count).sum();
        let segments = if bytes > 0 { vec![Segment { id: 0, len: bytes }] } else { vec![] };
        let m = CartMap { runs, segments, next_segment: 1, attributes: Default::default() };
        prop_assert!(m.validate().is_ok());
        let b = encode_value(KIND, &m);
        prop_assert_eq!(decode_value::<CartMap>(KIND, &b).unwrap(), m);
        let mut bad = b.clone();
        bad[flip.index(b.len())] ^= 0x20;
        prop_assert!(decode_value::<CartMap>(KIND, &bad).is_err());
    }

    #[test]
    fn random_record_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(r) = decode_value::<LibraryRecord>(KIND, &b) {
            let _ = r.validate();
        }
        if let Ok(m) = decode_value::<CartMap>(KIND, &b) {
            let _ = m.validate();
        }
    }
}

/// Writes the fixtures (run once when the format changes on purpose:
/// `QORESTOR_WRITE_FIXTURES=1 cargo test -p qorestor-vtl --test vtl fixtures`).
#[test]
fn write_fixtures_when_asked() {
    if std::env::var_os("QORESTOR_WRITE_FIXTURES").is_none() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("library_record.bin"), encode_value(KIND, &library())).unwrap();
    std::fs::write(dir.join("cart_map.bin"), encode_value(KIND, &cart_map())).unwrap();
}
