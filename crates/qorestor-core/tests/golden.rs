//! Golden fixtures of every on-disk format (byte tables in `docs/FORMAT.md`).
//!
//! `tests/fixtures/` holds small files written once, in format 1, by the `regenerate` test
//! below. The normal tests only read them:
//! - (a) each fixture is decoded and checked field by field against the constants here, and the
//!   raw bytes at the offsets documented in `docs/FORMAT.md` are checked too;
//! - (b) the same values are encoded again with the crate's encoders and must give the fixture
//!   bytes exactly, so any change of the format is a visible decision;
//! - (c) corrupt variants (truncated, every single bit flipped, wrong lengths) are rejected;
//! - `datadir-v1/` is a data directory made by the engine: it is copied to a temporary
//!   directory, opened, and both streams are read back bit-exactly.
//!
//! Rebuild the fixtures deliberately (and review the diff) with
//! `cargo test -p qorestor-core --test golden -- --ignored regenerate`.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use qorestor_core::compress::{compress_into, Codec, FAST_LEVEL};
use qorestor_core::crypto::GroupCrypto;
use qorestor_core::format::*;
use qorestor_core::test_support::catalog::{
    decode_value, encode_value, ContainerRecord, GroupRecord, RecycledRecord, StreamRecord,
};
use qorestor_core::test_support::index::{decode_index_header, encode_index_header, IndexHeader};
use qorestor_core::test_support::pack::{
    self, check_record_payload, decode_chunk, decode_footer, decode_pack_header, decode_record_header, decode_trailer,
    encode_footer, encode_pack_header, encode_record_header, FooterEntry,
};
use qorestor_core::test_support::recipe::{decode_recipe, encode_recipe, ImageMeta, Recipe, RecipeEntry, RecipeHeader};
use qorestor_core::verify::QuarantinedChunk;
use qorestor_core::CleanerSchedule;
use qorestor_core::{ChunkParams, Chunker, Compression, ContainerKind, Engine, Fingerprint, GroupOptions, StatsScope};
use qorestor_core::{EncryptionMode, EncryptionOptions, Passphrase};
use qorestor_core::{ErrorKind, NoProgress, VerifyOptions, VerifyScope};

// ---------------------------------------------------------------------------------------------
// The values the fixtures hold.
// ---------------------------------------------------------------------------------------------

const GROUP_ID: u32 = 0x0102_0304;
const PACK_ID: u32 = 0x0000_002a;
const STREAM_ID: u64 = 0x1122_3344_5566_7788;
const CREATED: u64 = 1_700_000_000;
const CONTAINER: &str = "golden";
const STREAM: &str = "nächtlich/mon.tar";
const INDEX_SLOTS: u64 = 1 << 14;
const INDEX_COUNT: u64 = 3;
const INDEX_WATERMARK: u32 = 43;
const KIND_GROUP: u8 = 1;
const KIND_CONTAINER: u8 = 2;
const KIND_STREAM: u8 = 3;
const KIND_META: u8 = 4;
const KIND_RECYCLED: u8 = 5;
const KIND_BIN_ENTRY: u8 = 7;

/// The chunk stored raw (codec 0).
fn raw_chunk() -> Vec<u8> {
    b"qorestor golden fixture: a chunk stored raw \x00\x01\x02\x7f\x80\xfe\xff".to_vec()
}

/// The chunk stored as a zstd frame (codec 1).
fn zstd_chunk() -> Vec<u8> {
    b"backup ".repeat(64)
}

fn group_record() -> GroupRecord {
    GroupRecord {
        id: 3,
        name: "golden-sg".into(),
        compression: Compression::Fast,
        chunking: ChunkParams { min: 256, avg: 1024, max: 4096 },
        created: CREATED,
        quota: None,
        encryption: None,
    }
}

const GROUP_JSON: &str = r#"{"id":3,"name":"golden-sg","compression":"fast","chunking":{"min":256,"avg":1024,"max":4096},"created":1700000000}"#;

fn container_record() -> ContainerRecord {
    // Format-1 records written before quotas and the recycle bin existed: the new optional
    // fields are absent from the JSON, so these bytes stay valid.
    ContainerRecord {
        id: 4,
        name: CONTAINER.into(),
        kind: ContainerKind::Vtl,
        group_id: 3,
        created: CREATED,
        quota: None,
        recycle_retention: None,
        replica_of: None,
    }
}

const CONTAINER_JSON: &str = r#"{"id":4,"name":"golden","kind":"vtl","group_id":3,"created":1700000000}"#;

fn stream_record() -> StreamRecord {
    StreamRecord {
        id: STREAM_ID,
        name: STREAM.into(),
        logical_len: 2 * raw_chunk().len() as u64 + zstd_chunk().len() as u64,
        chunks: 3,
        new_chunks: 2,
        new_stored_bytes: 123,
        created: CREATED,
    }
}

const STREAM_JSON: &str = r#"{"id":1234605616436508552,"name":"nächtlich/mon.tar","logical_len":550,"chunks":3,"new_chunks":2,"new_stored_bytes":123,"created":1700000000}"#;

// ---------------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------------

/// A quarantine list (catalog `meta` key `quarantine/<group id>`).
fn quarantine() -> Vec<QuarantinedChunk> {
    vec![QuarantinedChunk {
        pack: 7,
        offset: 4128,
        fingerprint: "aa5f0c1e2d3b4a59687766554433221100ffeeddccbbaa998877665544332211".into(),
        since: 1_700_000_000,
    }]
}
const QUARANTINE_JSON: &str = r#"[{"pack":7,"offset":4128,"fingerprint":"aa5f0c1e2d3b4a59687766554433221100ffeeddccbbaa998877665544332211","since":1700000000}]"#;

/// A stream in a recycle bin (format 1: catalog tree `recycle`, kind 5, migrated at open;
/// format 2: tree `recycle_bin`, kind 7, the same body).
fn recycled() -> RecycledRecord {
    RecycledRecord { stream: stream_record(), deleted: 1_700_086_400, expires: 1_700_691_200, binned: 0 }
}

/// A stream version in a recycle bin of format 2 (tree `recycle_bin`, kind 7).
fn bin_entry() -> RecycledRecord {
    RecycledRecord { binned: 77, ..recycled() }
}
const BIN_ENTRY_JSON: &str = r#"{"stream":{"id":1234605616436508552,"name":"nächtlich/mon.tar","logical_len":550,"chunks":3,"new_chunks":2,"new_stored_bytes":123,"created":1700000000},"deleted":1700086400,"expires":1700691200,"binned":77}"#;
const RECYCLED_JSON: &str = r#"{"stream":{"id":1234605616436508552,"name":"nächtlich/mon.tar","logical_len":550,"chunks":3,"new_chunks":2,"new_stored_bytes":123,"created":1700000000},"deleted":1700086400,"expires":1700691200}"#;

/// Cleaner schedules (catalog `meta` key `cleaner/schedules`).
fn schedules() -> Vec<CleanerSchedule> {
    vec![
        CleanerSchedule { id: 1, day: "saturday".into(), start: "22:00".into(), stop: "06:00".into() },
        CleanerSchedule { id: 2, day: "daily".into(), start: "01:00".into(), stop: "02:30".into() },
    ]
}
const SCHEDULES_JSON: &str = r#"[{"id":1,"day":"saturday","start":"22:00","stop":"06:00"},{"id":2,"day":"daily","start":"01:00","stop":"02:30"}]"#;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (rebuild with `cargo test -p qorestor-core --test golden -- --ignored regenerate`)",
            path.display()
        )
    })
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast_like::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// A bitwise CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), written out here so that
/// the tests check the documented checksum independently of the crate's own helper.
mod crc32fast_like {
    pub struct Hasher(u32);

    impl Hasher {
        pub fn new() -> Self {
            Hasher(!0)
        }

        pub fn update(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 ^= b as u32;
                for _ in 0..8 {
                    let mask = (self.0 & 1).wrapping_neg();
                    self.0 = (self.0 >> 1) ^ (0xEDB8_8320 & mask);
                }
            }
        }

        pub fn finalize(&self) -> u32 {
            !self.0
        }
    }
}

/// Every single-bit flip of `b`, as (bit index, flipped copy).
fn bit_flips(b: &[u8]) -> impl Iterator<Item = (usize, Vec<u8>)> + '_ {
    (0..b.len() * 8).map(move |bit| {
        let mut c = b.to_vec();
        c[bit / 8] ^= 1 << (bit % 8);
        (bit, c)
    })
}

fn fp_of(b: &[u8]) -> Fingerprint {
    Fingerprint::of(b)
}

/// A whole chunk record: header, then payload.
fn record(fp: &Fingerprint, raw_len: usize, codec: Codec, payload: &[u8]) -> Vec<u8> {
    let mut r = encode_record_header(fp, raw_len as u32, codec, payload).to_vec();
    r.extend_from_slice(payload);
    r
}

/// The layout of the golden pack: header, raw record, zstd record, footer, trailer.
struct PackLayout {
    zstd_payload: Vec<u8>,
    raw_offset: u32,
    zstd_offset: u32,
    footer_offset: u64,
}

impl PackLayout {
    fn from_zstd_payload(zstd_payload: Vec<u8>) -> Self {
        let raw_offset = PACK_HEADER_LEN as u32;
        let zstd_offset = raw_offset + (RECORD_HEADER_LEN + raw_chunk().len()) as u32;
        let footer_offset = zstd_offset as u64 + (RECORD_HEADER_LEN + zstd_payload.len()) as u64;
        PackLayout { zstd_payload, raw_offset, zstd_offset, footer_offset }
    }

    /// From the committed zstd record fixture.
    fn committed() -> Self {
        let rec = fixture("record_zstd.bin");
        Self::from_zstd_payload(rec[RECORD_HEADER_LEN..].to_vec())
    }

    fn entries(&self) -> Vec<FooterEntry> {
        let raw = raw_chunk();
        let z = zstd_chunk();
        vec![
            FooterEntry {
                fp: fp_of(&raw),
                offset: self.raw_offset,
                stored_len: raw.len() as u32,
                raw_len: raw.len() as u32,
                codec: Codec::Raw,
            },
            FooterEntry {
                fp: fp_of(&z),
                offset: self.zstd_offset,
                stored_len: self.zstd_payload.len() as u32,
                raw_len: z.len() as u32,
                codec: Codec::Zstd,
            },
        ]
    }

    fn raw_record(&self) -> Vec<u8> {
        let raw = raw_chunk();
        record(&fp_of(&raw), raw.len(), Codec::Raw, &raw)
    }

    fn zstd_record(&self) -> Vec<u8> {
        let z = zstd_chunk();
        record(&fp_of(&z), z.len(), Codec::Zstd, &self.zstd_payload)
    }

    fn footer(&self) -> Vec<u8> {
        encode_footer(&self.entries(), self.footer_offset)
    }

    fn sealed_pack(&self) -> Vec<u8> {
        let mut p = encode_pack_header(GROUP_ID, PACK_ID).to_vec();
        p.extend_from_slice(&self.raw_record());
        p.extend_from_slice(&self.zstd_record());
        p.extend_from_slice(&self.footer());
        p
    }

    fn recipe(&self) -> Recipe {
        let entries: Vec<RecipeEntry> = [0usize, 1, 0]
            .iter()
            .map(|&i| {
                let e = self.entries()[i];
                RecipeEntry {
                    fp: e.fp,
                    raw_len: e.raw_len,
                    loc: pack::ChunkLoc { pack: PACK_ID, offset: e.offset, stored_len: e.stored_len },
                }
            })
            .collect();
        Recipe {
            header: RecipeHeader {
                group_id: GROUP_ID,
                stream_id: STREAM_ID,
                created: CREATED,
                container: CONTAINER.into(),
                stream: STREAM.into(),
                image: None,
            },
            logical_len: entries.iter().map(|e| e.raw_len as u64).sum(),
            entries,
        }
    }
}

fn index_header() -> IndexHeader {
    IndexHeader { slots: INDEX_SLOTS, count: INDEX_COUNT, watermark: INDEX_WATERMARK }
}

fn index_file_len() -> u64 {
    INDEX_HEADER_LEN as u64 + INDEX_SLOTS * INDEX_SLOT_LEN as u64
}

fn index_page() -> Vec<u8> {
    let mut page = vec![0u8; INDEX_HEADER_LEN];
    page[..40].copy_from_slice(&encode_index_header(&index_header()));
    page
}

// ---------------------------------------------------------------------------------------------
// Deterministic stream content of the golden data directory.
// ---------------------------------------------------------------------------------------------

/// Made by format 1 (catalog in sled 0.34): opening it migrates the catalog to redb.
const DATADIR: &str = "datadir-v1";
/// Made by format 2 (catalog in redb), by `regenerate`.
const DATADIR_V2: &str = "datadir-v2";
const DD_GROUP: &str = "golden-sg";
const DD_CONTAINER: &str = "golden";
const DD_PARAMS: ChunkParams = ChunkParams { min: 256, avg: 1024, max: 4096 };
/// Distinct chunks of the two streams (checked against the chunker too).
const DD_UNIQUE_CHUNKS: u64 = 27;
/// Id of the `golden-sg` storage group in the committed catalog.
const DD_GROUP_ID: u32 = 2;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn text(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "backup",
        "tape",
        "chunk",
        "restore",
        "nightly",
        "full",
        "incremental",
        "vault",
        "catalog",
        "stream",
        "container",
        "dedup",
        "pack",
        "recipe",
        "index",
        "qorestor",
    ];
    let mut r = Rng(seed);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        let x = r.next();
        out.extend_from_slice(WORDS[(x >> 60) as usize].as_bytes());
        out.push(if x & 15 == 0 { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(seed);
    (0..len).map(|_| (r.next() >> 56) as u8).collect()
}

fn stream_first() -> Vec<u8> {
    let mut v = text(1, 12_000);
    v.extend(noise(2, 4_000));
    v.extend(text(3, 8_000));
    v
}

fn stream_second() -> Vec<u8> {
    let a = stream_first();
    let mut v = a[..9_000].to_vec();
    v.extend_from_slice(b"-- inserted by the second stream --\n");
    v.extend_from_slice(&a[9_000..20_000]);
    v.extend(noise(4, 3_000));
    v
}

fn chunk_fps(data: &[u8]) -> Vec<Fingerprint> {
    let c = Chunker::new(DD_PARAMS).unwrap();
    let mut cuts = Vec::new();
    assert_eq!(c.cut_all(data, true, &mut cuts), data.len());
    let mut start = 0;
    cuts.iter()
        .map(|&end| {
            let fp = Fingerprint::of(&data[start..end as usize]);
            start = end as usize;
            fp
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The generator (run deliberately).
// ---------------------------------------------------------------------------------------------

#[test]
#[ignore = "rewrites tests/fixtures: run deliberately and review the diff"]
fn regenerate() {
    let dir = fixtures();
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();

    let z = zstd_chunk();
    let mut zpayload = Vec::new();
    assert_eq!(compress_into(&z, FAST_LEVEL, &mut zpayload), Codec::Zstd);
    let layout = PackLayout::from_zstd_payload(zpayload);

    write("pack_header.bin", &encode_pack_header(GROUP_ID, PACK_ID));
    write("record_raw.bin", &layout.raw_record());
    write("record_zstd.bin", &layout.zstd_record());
    write("pack_footer.bin", &layout.footer());
    write("pack_sealed.pack", &layout.sealed_pack());
    write("recipe.rcp", &encode_recipe(&layout.recipe()));
    write("recipe_image.rcp", &encode_recipe(&image_recipe(&layout)));
    write("index_header.bin", &index_page());
    write("catalog_group.bin", &encode_value(KIND_GROUP, &group_record()));
    write("catalog_container.bin", &encode_value(KIND_CONTAINER, &container_record()));
    write("catalog_stream.bin", &encode_value(KIND_STREAM, &stream_record()));
    write("catalog_quarantine.bin", &encode_value(KIND_META, &quarantine()));
    write("catalog_schedules.bin", &encode_value(KIND_META, &schedules()));
    write("catalog_recycled.bin", &encode_value(KIND_RECYCLED, &recycled()));
    write("catalog_bin_entry.bin", &encode_value(KIND_BIN_ENTRY, &bin_entry()));

    write_sealed_fixtures(&dir, &z);

    // The data directory.
    let dd = dir.join(DATADIR_V2);
    if dd.exists() {
        std::fs::remove_dir_all(&dd).unwrap();
    }
    {
        let engine = Engine::create(&dd).unwrap();
        let g = engine
            .add_storage_group(DD_GROUP, GroupOptions { compression: Compression::Fast, chunking: DD_PARAMS })
            .unwrap();
        assert_eq!(g.id, DD_GROUP_ID, "update DD_GROUP_ID");
        engine.add_container(DD_CONTAINER, DD_GROUP, ContainerKind::Object).unwrap();
        for (name, data) in [("first", stream_first()), ("second", stream_second())] {
            let mut w = engine.create_stream(DD_CONTAINER, name).unwrap();
            w.write_all(&data).unwrap();
            w.finish().unwrap();
        }
        let stats = engine.stats(&StatsScope::Container(DD_CONTAINER.into())).unwrap();
        assert_eq!(stats.unique_chunks, DD_UNIQUE_CHUNKS, "update DD_UNIQUE_CHUNKS");
    }
    // The lock file names a pid, and the fingerprint index (528 KiB at its minimum size) is a
    // hint that the engine rebuilds from pack footers: neither is committed. Recipes and the
    // catalog hold creation times, so they differ from one regeneration to the next.
    std::fs::remove_file(dd.join("lock")).unwrap();
    std::fs::remove_file(dd.join("groups").join(format!("{DD_GROUP_ID:08x}")).join("fp.idx")).unwrap();
}

/// Writes the encrypted group's record and the two sealed records (keys and nonces are random:
/// each regeneration gives new bytes).
fn write_sealed_fixtures(dir: &Path, z: &[u8]) {
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    // An encrypted group's record and two records it sealed.
    let mut opts = EncryptionOptions::new(EncryptionMode::Internal, 30, golden_pass());
    opts.kdf_memory_kib = 64;
    opts.kdf_iterations = 1;
    let (enc, crypto) = GroupCrypto::generate(&opts, CREATED).unwrap();
    let mut g = group_record();
    g.encryption = Some(enc);
    write("catalog_group_encrypted.bin", &encode_value(KIND_GROUP, &g));
    for (name, content, inner) in
        [("record_sealed_raw.bin", raw_chunk(), Codec::Raw), ("record_sealed_zstd.bin", z.to_vec(), Codec::Zstd)]
    {
        let fp = crypto.fingerprint(&content);
        let mut plain = Vec::new();
        if inner == Codec::Zstd {
            assert_eq!(compress_into(&content, FAST_LEVEL, &mut plain), Codec::Zstd);
        } else {
            plain = content.clone();
        }
        let (codec, payload) = crypto.seal_payload(&fp, content.len() as u32, inner, &plain).unwrap();
        let mut rec = encode_record_header(&fp, content.len() as u32, codec, &payload).to_vec();
        rec.extend_from_slice(&payload);
        write(name, &rec);
    }
}

#[test]
#[ignore = "rewrites the encrypted-group fixtures only: run deliberately"]
fn regenerate_sealed() {
    write_sealed_fixtures(&fixtures(), &zstd_chunk());
}

// ---------------------------------------------------------------------------------------------
// Pack header.
// ---------------------------------------------------------------------------------------------

#[test]
fn pack_header_golden() {
    let b = fixture("pack_header.bin");
    assert_eq!(b.len(), PACK_HEADER_LEN);
    // (a) documented bytes
    assert_eq!(&b[0..8], b"QSPACK\0\x01");
    assert_eq!(u16_at(&b, 8), 1, "version");
    assert_eq!(u16_at(&b, 10), 0, "reserved");
    assert_eq!(u32_at(&b, 12), GROUP_ID);
    assert_eq!(u32_at(&b, 16), PACK_ID);
    assert_eq!(&b[20..28], &[0u8; 8], "reserved");
    assert_eq!(u32_at(&b, 28), crc(&[&b[..28]]));
    assert_eq!(decode_pack_header(&b).unwrap(), (GROUP_ID, PACK_ID));
    // (b) re-encode
    assert_eq!(encode_pack_header(GROUP_ID, PACK_ID).as_slice(), &b[..]);
    // (c) corrupt
    for n in 0..b.len() {
        assert!(decode_pack_header(&b[..n]).is_err(), "truncated to {n}");
    }
    for (bit, c) in bit_flips(&b) {
        assert!(decode_pack_header(&c).is_err(), "bit {bit} flipped");
    }
}

// ---------------------------------------------------------------------------------------------
// Chunk records.
// ---------------------------------------------------------------------------------------------

fn check_record_fixture(name: &str, content: &[u8], codec: Codec) {
    let b = fixture(name);
    let fp = fp_of(content);
    let stored_len = b.len() - RECORD_HEADER_LEN;
    // (a) documented bytes
    assert_eq!(&b[0..2], b"QC");
    assert_eq!(b[2], 1, "version");
    assert_eq!(b[3], codec as u8, "codec");
    assert_eq!(u32_at(&b, 4) as usize, content.len(), "raw length");
    assert_eq!(u32_at(&b, 8) as usize, stored_len, "stored length");
    assert_eq!(&b[12..44], fp.as_bytes());
    assert_eq!(
        u32_at(&b, 44),
        crc(&[&b[..44], &b[RECORD_HEADER_LEN..]]),
        "CRC over header bytes 0..44 and the payload"
    );
    if codec == Codec::Raw {
        assert_eq!(&b[RECORD_HEADER_LEN..], content);
    } else {
        assert_eq!(&b[RECORD_HEADER_LEN..RECORD_HEADER_LEN + 4], &[0x28, 0xb5, 0x2f, 0xfd]);
        assert!(stored_len < content.len());
    }
    let h = decode_record_header(&b).unwrap();
    assert_eq!(h.codec, codec);
    assert_eq!(h.raw_len as usize, content.len());
    assert_eq!(h.stored_len as usize, stored_len);
    assert_eq!(h.fp, fp);
    assert_eq!(h.crc, u32_at(&b, 44));
    check_record_payload(&b, &h, &b[RECORD_HEADER_LEN..]).unwrap();
    let mut out = b"prefix".to_vec();
    decode_chunk(&b, &fp, &GroupCrypto::default(), &mut out).unwrap();
    assert_eq!(&out[..6], b"prefix", "decode_chunk appends");
    assert_eq!(&out[6..], content);
    // (b) re-encode
    let payload = &b[RECORD_HEADER_LEN..];
    let header = encode_record_header(&fp, content.len() as u32, codec, payload);
    assert_eq!(&header[..], &b[..RECORD_HEADER_LEN]);
    // (c) corrupt
    let mut out = Vec::new();
    for n in 0..b.len() {
        assert!(decode_chunk(&b[..n], &fp, &GroupCrypto::default(), &mut out).is_err(), "truncated to {n}");
        assert!(out.is_empty());
    }
    for (bit, c) in bit_flips(&b) {
        assert!(decode_chunk(&c, &fp, &GroupCrypto::default(), &mut out).is_err(), "bit {bit} flipped");
        assert!(out.is_empty(), "a rejected record leaves `out` as it was");
    }
    // Wrong lengths: payload one byte short or long, wrong expected fingerprint.
    assert!(check_record_payload(&b, &h, &payload[..payload.len() - 1]).is_err());
    let mut long = payload.to_vec();
    long.push(0);
    assert!(check_record_payload(&b, &h, &long).is_err());
    assert!(decode_chunk(&b, &fp_of(b"other"), &GroupCrypto::default(), &mut out).is_err());
}

// ---------------------------------------------------------------------------------------------
// Encrypted groups: the group record's keys and sealed records.
// ---------------------------------------------------------------------------------------------

const GOLDEN_PASSPHRASE: &[u8] = b"golden passphrase";

fn golden_pass() -> Passphrase {
    Passphrase::new(GOLDEN_PASSPHRASE.to_vec()).unwrap()
}

#[test]
fn sealed_records_golden() {
    let g: GroupRecord = decode_value(KIND_GROUP, &fixture("catalog_group_encrypted.bin")).unwrap();
    let enc = g.encryption.clone().expect("the encryption field");
    assert_eq!(enc.mode, EncryptionMode::Internal);
    assert_eq!((enc.kdf.memory_kib, enc.kdf.iterations, enc.kdf.salt.len()), (64, 1, 32));
    assert_eq!(enc.master.len(), 120);
    assert_eq!(enc.keys.len(), 1);
    assert_eq!((enc.keys[0].id, enc.keys[0].created, enc.keys[0].wrapped.len()), (1, CREATED, 120));
    let wrong = GroupCrypto::unlock("golden-sg", &enc, &Passphrase::new(b"not it".to_vec()).unwrap());
    assert!(matches!(wrong, Err(qorestor_core::Error::WrongPassphrase { .. })));
    let crypto = GroupCrypto::unlock("golden-sg", &enc, &golden_pass()).unwrap();
    for (name, content, codec) in [
        ("record_sealed_raw.bin", raw_chunk(), Codec::SealedRaw),
        ("record_sealed_zstd.bin", zstd_chunk(), Codec::SealedZstd),
    ] {
        let b = fixture(name);
        let fp = crypto.fingerprint(&content);
        assert_ne!(fp, fp_of(&content), "fingerprints are keyed");
        let h = decode_record_header(&b).unwrap();
        assert_eq!((h.codec, h.raw_len as usize, h.fp), (codec, content.len(), fp), "{name}");
        assert_eq!(b[3], codec as u8);
        let payload = &b[RECORD_HEADER_LEN..];
        assert_eq!(u32_at(payload, 0), 1, "{name}: sealed by data key 1");
        if codec == Codec::SealedRaw {
            assert_eq!(payload.len(), content.len() + 32);
        } else {
            assert!(payload.len() < content.len() + 32);
        }
        assert!(!payload.windows(16).any(|w| content.windows(16).any(|c| c == w)), "{name}: plaintext visible");
        let mut out = b"prefix".to_vec();
        decode_chunk(&b, &fp, &crypto, &mut out).unwrap();
        assert_eq!(&out[6..], &content[..]);
        // Without the keys, or with any bit changed, the record does not decode.
        let mut out = Vec::new();
        assert!(decode_chunk(&b, &fp, &GroupCrypto::default(), &mut out).is_err());
        for (bit, c) in bit_flips(&b) {
            assert!(decode_chunk(&c, &fp, &crypto, &mut out).is_err(), "{name}: bit {bit} flipped");
            assert!(out.is_empty());
        }
    }
}

#[test]
fn record_raw_golden() {
    check_record_fixture("record_raw.bin", &raw_chunk(), Codec::Raw);
}

#[test]
fn record_zstd_golden() {
    check_record_fixture("record_zstd.bin", &zstd_chunk(), Codec::Zstd);
}

// ---------------------------------------------------------------------------------------------
// Pack footer, trailer and whole packs.
// ---------------------------------------------------------------------------------------------

#[test]
fn pack_footer_golden() {
    let layout = PackLayout::committed();
    let b = fixture("pack_footer.bin");
    let entries = layout.entries();
    let off = layout.footer_offset;
    assert_eq!(b.len(), entries.len() * FOOTER_ENTRY_LEN + TRAILER_LEN);
    // (a) documented bytes
    for (i, e) in entries.iter().enumerate() {
        let x = &b[i * FOOTER_ENTRY_LEN..(i + 1) * FOOTER_ENTRY_LEN];
        assert_eq!(&x[0..32], e.fp.as_bytes());
        assert_eq!(u32_at(x, 32), e.offset);
        assert_eq!(u32_at(x, 36), e.stored_len);
        assert_eq!(u32_at(x, 40), e.raw_len);
        assert_eq!(x[44], e.codec as u8);
        assert_eq!(&x[45..48], &[0, 0, 0]);
    }
    let t = &b[b.len() - TRAILER_LEN..];
    let body = &b[..b.len() - TRAILER_LEN];
    assert_eq!(u64_at(t, 0), off);
    assert_eq!(u32_at(t, 8), 2);
    assert_eq!(u32_at(t, 12), crc(&[body, &t[..12]]));
    assert_eq!(&t[16..24], b"QSPKEND1");
    let file_len = off + b.len() as u64;
    assert_eq!(decode_trailer(t, file_len).unwrap(), (off, 2));
    assert_eq!(decode_footer(&b, off).unwrap(), entries);
    // (b) re-encode
    assert_eq!(encode_footer(&entries, off), b);
    // (c) corrupt
    for n in 0..b.len() {
        assert!(decode_footer(&b[..n], off).is_err(), "truncated to {n}");
        assert!(decode_footer(&b[b.len() - n..], off).is_err(), "head cut to {n}");
    }
    for (bit, c) in bit_flips(&b) {
        assert!(decode_footer(&c, off).is_err(), "bit {bit} flipped");
    }
    for wrong in [off - 1, off + 1, off + 48, 0, PACK_HEADER_LEN as u64] {
        assert!(decode_footer(&b, wrong).is_err(), "footer offset {wrong}");
    }
    for wrong in [file_len - 1, file_len + 1, 0] {
        assert!(decode_trailer(t, wrong).is_err(), "file length {wrong}");
    }
    assert!(decode_trailer(&t[1..], file_len).is_err());
    let mut long = t.to_vec();
    long.push(0);
    assert!(decode_trailer(&long, file_len).is_err());
    // An entry running into the footer is rejected even with a valid CRC.
    let mut bad = entries.clone();
    bad[1].stored_len += 1;
    bad[1].raw_len += 1;
    assert!(decode_footer(&encode_footer(&bad, off), off).is_err());
}

#[test]
fn sealed_pack_golden_and_recovery() {
    let layout = PackLayout::committed();
    let b = fixture("pack_sealed.pack");
    // (b) the pack is exactly header + records + footer + trailer
    assert_eq!(b, layout.sealed_pack());
    assert_eq!(b[..PACK_HEADER_LEN], fixture("pack_header.bin"));
    assert_eq!(b[layout.raw_offset as usize..layout.zstd_offset as usize], fixture("record_raw.bin"));
    assert_eq!(b[layout.zstd_offset as usize..layout.footer_offset as usize], fixture("record_zstd.bin"));
    assert_eq!(b[layout.footer_offset as usize..], fixture("pack_footer.bin"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{PACK_ID:08x}.pack"));
    assert_eq!(pack::parse_pack_name("0000002a.pack"), Some(PACK_ID));
    assert_eq!(pack::pack_path(dir.path(), PACK_ID), path);
    // A sealed pack opens as it is.
    std::fs::write(&path, &b).unwrap();
    let f = std::fs::File::open(&path).unwrap();
    assert_eq!(pack::read_footer(&f, &path).unwrap(), layout.entries());
    assert_eq!(pack::scan_records(&path).unwrap(), (layout.entries(), layout.footer_offset));
    assert_eq!(pack::recover(&path).unwrap(), (layout.entries(), pack::PackState::Sealed));
    assert_eq!(std::fs::read(&path).unwrap(), b, "recover leaves a sealed pack alone");

    // A torn pack keeps the records that are whole and is sealed again.
    let ends = [PACK_HEADER_LEN as u64, layout.zstd_offset as u64, layout.footer_offset];
    let mut cuts: Vec<u64> = (PACK_HEADER_LEN as u64..b.len() as u64).step_by(13).collect();
    for e in ends {
        cuts.extend([e - 1, e, e + 1]);
    }
    cuts.retain(|&n| n >= PACK_HEADER_LEN as u64 && n < b.len() as u64);
    for n in cuts {
        std::fs::write(&path, &b[..n as usize]).unwrap();
        let whole = layout
            .entries()
            .into_iter()
            .filter(|e| e.offset as u64 + RECORD_HEADER_LEN as u64 + e.stored_len as u64 <= n)
            .collect::<Vec<_>>();
        let end = ends[whole.len()];
        assert_eq!(pack::recover(&path).unwrap(), (whole.clone(), pack::PackState::Repaired), "torn at {n}");
        let mut expect = b[..end as usize].to_vec();
        expect.extend(encode_footer(&whole, end));
        assert_eq!(std::fs::read(&path).unwrap(), expect, "torn at {n}");
    }
    // A damaged trailer magic looks like a torn tail: the pack is rescanned and sealed again,
    // identical to the original.
    let mut damaged = b.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x40;
    std::fs::write(&path, &damaged).unwrap();
    assert_eq!(pack::recover(&path).unwrap(), (layout.entries(), pack::PackState::Repaired));
    assert_eq!(std::fs::read(&path).unwrap(), b);
    // A damaged footer behind an intact trailer: bit rot, not a crash. The pack is left as it
    // is and its readable records are returned.
    let mut damaged = b.clone();
    damaged[layout.footer_offset as usize + 3] ^= 1;
    std::fs::write(&path, &damaged).unwrap();
    let (entries, state) = pack::recover(&path).unwrap();
    assert_eq!(entries, layout.entries());
    assert!(matches!(state, pack::PackState::Damaged(_)), "{state:?}");
    assert_eq!(std::fs::read(&path).unwrap(), damaged, "a damaged sealed pack is never modified");
    // A footer that reached the disk while a record did not (a crash between the seal and the
    // sync): the footer is not trusted; the records before the lost one are returned and the
    // pack is left as it is.
    let mut lost = b.clone();
    let at = layout.zstd_offset as usize + RECORD_HEADER_LEN + 2;
    lost[at] ^= 0xff;
    std::fs::write(&path, &lost).unwrap();
    let (entries, state) = pack::recover(&path).unwrap();
    assert_eq!(entries, layout.entries()[..1].to_vec());
    assert!(matches!(state, pack::PackState::Damaged(_)), "{state:?}");
    assert_eq!(std::fs::read(&path).unwrap(), lost, "such a pack is never modified");
    // A damaged header: nothing can be read, and nothing is changed.
    let mut damaged = b[..layout.footer_offset as usize].to_vec();
    damaged[3] ^= 1;
    std::fs::write(&path, &damaged).unwrap();
    let (entries, state) = pack::recover(&path).unwrap();
    assert!(entries.is_empty() && matches!(state, pack::PackState::Damaged(_)), "{state:?}");
    assert_eq!(std::fs::read(&path).unwrap(), damaged);
}

// ---------------------------------------------------------------------------------------------
// Recipe.
// ---------------------------------------------------------------------------------------------

/// Every truncation and every single flipped bit of a recipe fails to decode.
fn assert_every_corruption_refused(b: &[u8]) {
    for n in 0..b.len() {
        assert!(decode_recipe(&b[..n]).is_err(), "truncated to {n}");
    }
    for (bit, c) in bit_flips(b) {
        assert!(decode_recipe(&c).is_err(), "bit {bit} flipped");
    }
}

/// The OST image's metadata of `recipe_image.rcp` (format version 2's header extension).
fn image_meta() -> ImageMeta {
    ImageMeta { date: 1_700_000_123, copy: 2, properties: "policy=nightly;client=büro".into() }
}

fn image_recipe(layout: &PackLayout) -> Recipe {
    let mut r = layout.recipe();
    r.header.image = Some(image_meta());
    r
}

#[test]
fn recipe_with_image_metadata_golden() {
    let layout = PackLayout::committed();
    let r = image_recipe(&layout);
    let b = fixture("recipe_image.rcp");
    let meta = image_meta();
    let (clen, slen, plen) = (CONTAINER.len(), STREAM.len(), meta.properties.len());
    let names_end = RECIPE_HEADER_LEN + clen + slen;
    let xlen = 1 + 2 + 8 + 4 + plen;
    let header_end = names_end + xlen;
    assert_eq!(b.len(), header_end + 3 * RECIPE_ENTRY_LEN + RECIPE_TRAILER_LEN);
    // (a) documented bytes
    assert_eq!(&b[0..8], b"QSRECIPE");
    assert_eq!(u16_at(&b, 8), 2, "version");
    assert_eq!(u16_at(&b, 10) as usize, xlen, "extension length");
    assert_eq!(u32_at(&b, 36), crc(&[&b[..36], &b[RECIPE_HEADER_LEN..header_end]]));
    let x = &b[names_end..header_end];
    assert_eq!(x[0], 1, "image record kind");
    assert_eq!(u16_at(x, 1) as usize, 8 + 4 + plen);
    assert_eq!(u64_at(x, 3), meta.date);
    assert_eq!(u32_at(x, 11), meta.copy);
    assert_eq!(&x[15..], meta.properties.as_bytes());
    let d = decode_recipe(&b).unwrap();
    assert_eq!(d.header.image, Some(meta));
    assert_eq!(d.entries, r.entries);
    // (b) re-encode
    assert_eq!(encode_recipe(&r), b);
    // (c) corrupt
    assert_every_corruption_refused(&b);
}

#[test]
fn recipe_golden() {
    let layout = PackLayout::committed();
    let r = layout.recipe();
    let b = fixture("recipe.rcp");
    let clen = CONTAINER.len();
    let slen = STREAM.len();
    let names_end = RECIPE_HEADER_LEN + clen + slen;
    assert_eq!(b.len(), names_end + 3 * RECIPE_ENTRY_LEN + RECIPE_TRAILER_LEN);
    // (a) documented bytes
    assert_eq!(&b[0..8], b"QSRECIPE");
    assert_eq!(u16_at(&b, 8), 1, "version");
    assert_eq!(u16_at(&b, 10), 0, "reserved");
    assert_eq!(u32_at(&b, 12), GROUP_ID);
    assert_eq!(u64_at(&b, 16), STREAM_ID);
    assert_eq!(u64_at(&b, 24), CREATED);
    assert_eq!(u16_at(&b, 32) as usize, clen);
    assert_eq!(u16_at(&b, 34) as usize, slen);
    assert_eq!(u32_at(&b, 36), crc(&[&b[..36], &b[RECIPE_HEADER_LEN..names_end]]));
    assert_eq!(&b[40..40 + clen], CONTAINER.as_bytes());
    assert_eq!(&b[40 + clen..names_end], STREAM.as_bytes());
    for (i, e) in r.entries.iter().enumerate() {
        let x = &b[names_end + i * RECIPE_ENTRY_LEN..][..RECIPE_ENTRY_LEN];
        assert_eq!(&x[0..32], e.fp.as_bytes());
        assert_eq!(u32_at(x, 32), e.raw_len);
        assert_eq!(u32_at(x, 36), PACK_ID);
        assert_eq!(u32_at(x, 40), e.loc.offset);
        assert_eq!(u32_at(x, 44), e.loc.stored_len);
    }
    let t = &b[b.len() - RECIPE_TRAILER_LEN..];
    assert_eq!(u64_at(t, 0), 3);
    assert_eq!(u64_at(t, 8), r.logical_len);
    assert_eq!(u32_at(t, 16), crc(&[&b[..b.len() - RECIPE_TRAILER_LEN], &t[..16]]));
    assert_eq!(&t[20..24], &[0; 4]);
    assert_eq!(&t[24..32], b"QSRCPEND");
    let d = decode_recipe(&b).unwrap();
    assert_eq!(d.header.group_id, GROUP_ID);
    assert_eq!(d.header.stream_id, STREAM_ID);
    assert_eq!(d.header.created, CREATED);
    assert_eq!(d.header.container, CONTAINER);
    assert_eq!(d.header.stream, STREAM);
    assert_eq!(d.logical_len, 550);
    assert_eq!(d.entries, r.entries);
    // (b) re-encode
    assert_eq!(encode_recipe(&r), b);
    // (c) corrupt
    assert_every_corruption_refused(&b);
    let mut long = b.clone();
    long.push(0);
    assert!(decode_recipe(&long).is_err());
    let mut extra = b[..b.len() - RECIPE_TRAILER_LEN].to_vec();
    extra.extend_from_slice(&b[names_end..names_end + RECIPE_ENTRY_LEN]);
    extra.extend_from_slice(t);
    assert!(decode_recipe(&extra).is_err(), "an entry more than counted");
}

// ---------------------------------------------------------------------------------------------
// Fingerprint index header.
// ---------------------------------------------------------------------------------------------

#[test]
fn index_header_golden() {
    let b = fixture("index_header.bin");
    let len = index_file_len();
    assert_eq!(b.len(), INDEX_HEADER_LEN);
    // (a) documented bytes
    assert_eq!(&b[0..8], b"QSFPIDX1");
    assert_eq!(u16_at(&b, 8), 1, "version");
    assert_eq!(u16_at(&b, 10), 0, "reserved");
    assert_eq!(u64_at(&b, 12), INDEX_SLOTS);
    assert_eq!(u64_at(&b, 20), INDEX_COUNT);
    assert_eq!(u32_at(&b, 28), INDEX_WATERMARK);
    assert_eq!(u32_at(&b, 32), crc(&[&b[..32]]));
    assert!(b[36..].iter().all(|&x| x == 0), "rest of the page is zero");
    assert_eq!(decode_index_header(&b, len).unwrap(), index_header());
    // (b) re-encode
    assert_eq!(index_page(), b);
    // (c) corrupt: bytes 0..36 are checked (36..4096 are reserved and not checked)
    for n in 0..40 {
        assert!(decode_index_header(&b[..n], len).is_err(), "truncated to {n}");
    }
    for (bit, c) in bit_flips(&b[..36]) {
        assert!(decode_index_header(&c, len).is_err(), "bit {bit} flipped");
    }
    for wrong in [len - 1, len + 1, len - 32, len + 32, INDEX_HEADER_LEN as u64, 0] {
        assert!(decode_index_header(&b, wrong).is_err(), "file length {wrong}");
    }
    // Slot counts that are not a power of two, or below the minimum, are refused.
    for slots in [3 << 13, 1 << 13, 0] {
        let h = IndexHeader { slots, ..index_header() };
        let len = INDEX_HEADER_LEN as u64 + slots * INDEX_SLOT_LEN as u64;
        assert!(decode_index_header(&encode_index_header(&h), len).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// Catalog values.
// ---------------------------------------------------------------------------------------------

fn check_catalog_fixture<T>(name: &str, kind: u8, value: &T, json: &str)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let b = fixture(name);
    // (a) documented bytes
    assert_eq!(&b[0..2], b"QV");
    assert_eq!(b[2], 1, "version");
    assert_eq!(b[3], kind);
    assert_eq!(std::str::from_utf8(&b[4..b.len() - 4]).unwrap(), json);
    assert_eq!(u32_at(&b, b.len() - 4), crc(&[&b[..b.len() - 4]]));
    assert_eq!(&decode_value::<T>(kind, &b).unwrap(), value);
    // (b) re-encode
    assert_eq!(encode_value(kind, value), b);
    // (c) corrupt
    for n in 0..b.len() {
        assert!(decode_value::<T>(kind, &b[..n]).is_err(), "truncated to {n}");
    }
    for (bit, c) in bit_flips(&b) {
        assert!(decode_value::<T>(kind, &c).is_err(), "bit {bit} flipped");
    }
    for other in [0u8, 1, 2, 3, 4, 255].into_iter().filter(|&k| k != kind) {
        assert!(decode_value::<T>(other, &b).is_err(), "kind {other}");
    }
    let mut long = b.clone();
    long.push(0);
    assert!(decode_value::<T>(kind, &long).is_err());
}

#[test]
fn catalog_values_golden() {
    check_catalog_fixture("catalog_group.bin", KIND_GROUP, &group_record(), GROUP_JSON);
    check_catalog_fixture("catalog_container.bin", KIND_CONTAINER, &container_record(), CONTAINER_JSON);
    check_catalog_fixture("catalog_stream.bin", KIND_STREAM, &stream_record(), STREAM_JSON);
    check_catalog_fixture("catalog_quarantine.bin", KIND_META, &quarantine(), QUARANTINE_JSON);
    check_catalog_fixture("catalog_schedules.bin", KIND_META, &schedules(), SCHEDULES_JSON);
    check_catalog_fixture("catalog_recycled.bin", KIND_RECYCLED, &recycled(), RECYCLED_JSON);
    check_catalog_fixture("catalog_bin_entry.bin", KIND_BIN_ENTRY, &bin_entry(), BIN_ENTRY_JSON);
    // A value of one kind does not decode as another type even when the kind byte matches.
    let b = fixture("catalog_group.bin");
    let mut as_stream = b.clone();
    as_stream[3] = KIND_STREAM;
    let n = as_stream.len();
    let c = crc(&[&as_stream[..n - 4]]);
    as_stream[n - 4..].copy_from_slice(&c.to_le_bytes());
    assert!(decode_value::<StreamRecord>(KIND_STREAM, &as_stream).is_err());
}

// ---------------------------------------------------------------------------------------------
// The format constants the documentation states.
// ---------------------------------------------------------------------------------------------

#[test]
fn format_constants() {
    assert_eq!(PACK_MAGIC, *b"QSPACK\0\x01");
    assert_eq!(PACK_VERSION, 1);
    assert_eq!(PACK_HEADER_LEN, 32);
    assert_eq!(RECORD_MAGIC, *b"QC");
    assert_eq!(RECORD_VERSION, 1);
    assert_eq!(RECORD_HEADER_LEN, 48);
    assert_eq!(FOOTER_ENTRY_LEN, 48);
    assert_eq!(TRAILER_MAGIC, *b"QSPKEND1");
    assert_eq!(TRAILER_LEN, 24);
    assert_eq!(RECIPE_MAGIC, *b"QSRECIPE");
    assert_eq!(RECIPE_VERSION, 2);
    assert_eq!(MAX_RECIPE_EXTENSION_LEN, 8192);
    assert_eq!(RECIPE_HEADER_LEN, 40);
    assert_eq!(RECIPE_ENTRY_LEN, 48);
    assert_eq!(RECIPE_TRAILER_MAGIC, *b"QSRCPEND");
    assert_eq!(RECIPE_TRAILER_LEN, 32);
    assert_eq!(INDEX_MAGIC, *b"QSFPIDX1");
    assert_eq!(INDEX_VERSION, 1);
    assert_eq!(INDEX_HEADER_LEN, 4096);
    assert_eq!(INDEX_SLOT_LEN, 32);
    assert_eq!(INDEX_FP_PREFIX, 24);
    assert_eq!(CATALOG_MAGIC, *b"QV");
    assert_eq!(CATALOG_VERSION, 1);
    assert_eq!(MAX_CHUNK_LEN, 4 * 1024 * 1024);
    assert_eq!(MAX_PACK_LEN, 0xFFFF_FFFF);
    assert_eq!(MAX_STREAM_NAME_LEN, 1024);
    assert_eq!(MAX_OBJECT_NAME_LEN, 64);
    assert_eq!(Codec::from_u8(0), Some(Codec::Raw));
    assert_eq!(Codec::from_u8(1), Some(Codec::Zstd));
    assert_eq!((Codec::from_u8(2), Codec::from_u8(3)), (Some(Codec::SealedRaw), Some(Codec::SealedZstd)));
    assert!((4..=255).all(|b| Codec::from_u8(b).is_none()));
}

// ---------------------------------------------------------------------------------------------
// The golden data directory.
// ---------------------------------------------------------------------------------------------

#[test]
fn datadir_v1_committed_layout() {
    let dd = fixtures().join(DATADIR);
    assert_eq!(std::fs::read(dd.join("QORESTOR")).unwrap(), b"qorestor data directory\nformat 1\n");
    assert!(!dd.join("lock").exists(), "the lock file is not committed");
    assert!(dd.join("catalog").is_dir());
    let gdir = dd.join("groups").join(format!("{DD_GROUP_ID:08x}"));
    let pack_path = gdir.join("packs").join("00000001.pack");
    let bytes = std::fs::read(&pack_path).unwrap();
    assert_eq!(decode_pack_header(&bytes).unwrap(), (DD_GROUP_ID, 1));
    let f = std::fs::File::open(&pack_path).unwrap();
    let footer = pack::read_footer(&f, &pack_path).unwrap();
    assert_eq!(footer.len() as u64, DD_UNIQUE_CHUNKS);
    // Each footer entry describes a record that decodes to its fingerprint.
    let mut out = Vec::new();
    for e in &footer {
        let at = e.offset as usize;
        let rec = &bytes[at..at + RECORD_HEADER_LEN + e.stored_len as usize];
        out.clear();
        decode_chunk(rec, &e.fp, &GroupCrypto::default(), &mut out).unwrap();
        assert_eq!(out.len() as u32, e.raw_len);
    }
    // The two recipes, in stream id order.
    let mut recipes: Vec<PathBuf> =
        std::fs::read_dir(gdir.join("recipes")).unwrap().map(|e| e.unwrap().path()).collect();
    recipes.sort();
    assert_eq!(recipes.len(), 2);
    let expected = [("first", stream_first()), ("second", stream_second())];
    for (path, (name, data)) in recipes.iter().zip(&expected) {
        let r = qorestor_core::test_support::recipe::read_recipe(path).unwrap();
        assert_eq!(path.file_name().unwrap().to_str().unwrap(), format!("{:016x}.rcp", r.header.stream_id));
        assert_eq!(r.header.group_id, DD_GROUP_ID);
        assert_eq!(r.header.container, DD_CONTAINER);
        assert_eq!(r.header.stream, *name);
        assert_eq!(r.logical_len, data.len() as u64);
        let fps: Vec<Fingerprint> = r.entries.iter().map(|e| e.fp).collect();
        assert_eq!(fps, chunk_fps(data), "the chunker still cuts {name} as in format 1");
        for e in &r.entries {
            assert_eq!(e.loc.pack, 1);
            assert!(footer
                .iter()
                .any(|f| f.fp == e.fp && f.offset == e.loc.offset && f.stored_len == e.loc.stored_len));
        }
    }
}

#[test]
fn datadir_v2_committed_layout() {
    let dd = fixtures().join(DATADIR_V2);
    assert_eq!(std::fs::read(dd.join("QORESTOR")).unwrap(), b"qorestor data directory\nformat 2\n");
    let names: Vec<String> =
        std::fs::read_dir(dd.join("catalog")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, ["catalog.redb"]);
}

#[test]
fn datadir_v1_migrates_its_sled_catalog_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dd = tmp.path().join(DATADIR);
    copy_dir(&fixtures().join(DATADIR), &dd);
    // A sled snapshot left empty by ENOSPC (sled issue #1527) would make sled refuse to open.
    std::fs::write(dd.join("catalog").join("snap.00000000000000ff.generating"), b"").unwrap();
    datadir_opens_and_reads_back(&dd);
    assert_eq!(std::fs::read(dd.join("QORESTOR")).unwrap(), b"qorestor data directory\nformat 2\n");
    let names: Vec<String> =
        std::fs::read_dir(dd.join("catalog")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, ["catalog.redb"], "sled's files are gone once migrated");
    // And it opens again as format 2.
    let engine = Engine::open(&dd).unwrap();
    assert_eq!(engine.streams(DD_CONTAINER).unwrap().len(), 3);
}

#[test]
fn datadir_v2_opens_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dd = tmp.path().join(DATADIR_V2);
    copy_dir(&fixtures().join(DATADIR_V2), &dd);
    datadir_opens_and_reads_back(&dd);
}

#[test]
fn datadir_v2_gets_its_redundant_records_at_open_and_can_then_be_rebuilt_from_them() {
    // Made before records existed: the first open writes one per catalog row.
    let tmp = tempfile::tempdir().unwrap();
    let dd = tmp.path().join(DATADIR_V2);
    copy_dir(&fixtures().join(DATADIR_V2), &dd);
    assert!(!dd.join("records").exists());
    let before = {
        let engine = Engine::open(&dd).unwrap();
        (
            engine.storage_group(DD_GROUP).unwrap(),
            engine.container(DD_CONTAINER).unwrap(),
            engine.streams(DD_CONTAINER).unwrap(),
        )
    };
    assert!(dd.join("records/COMPLETE").exists());
    assert_eq!(std::fs::read_dir(dd.join("records/streams")).unwrap().count(), 2, "one record per stream");
    // The catalog is lost: a repair rebuilds it from those records.
    std::fs::write(dd.join("catalog/catalog.redb"), vec![0x5a; 16 << 10]).unwrap();
    assert_eq!(Engine::open(&dd).err().unwrap().kind(), ErrorKind::Corrupt);
    let engine = Engine::open_for_repair_as(&dd, "golden test").unwrap();
    let report = engine.verify(&VerifyOptions { scope: VerifyScope::All, repair: true }, &NoProgress).unwrap();
    assert!(!report.damage_remains() && report.catalog_not_restored.is_empty(), "{report:?}");
    assert!(report.catalog_restored.iter().any(|r| r == &format!("storage group {DD_GROUP}")), "{report:?}");
    let after = (
        engine.storage_group(DD_GROUP).unwrap(),
        engine.container(DD_CONTAINER).unwrap(),
        engine.streams(DD_CONTAINER).unwrap(),
    );
    assert_eq!(before, after);
    drop(engine);
    datadir_opens_and_reads_back(&dd);
}

fn datadir_opens_and_reads_back(dd: &Path) {
    let dd = dd.to_path_buf();
    let expected = [("first", stream_first()), ("second", stream_second())];
    let unique: HashSet<Fingerprint> = expected.iter().flat_map(|(_, d)| chunk_fps(d)).collect();
    assert_eq!(unique.len() as u64, DD_UNIQUE_CHUNKS);
    {
        let engine = Engine::open(&dd).unwrap();
        let groups = engine.storage_groups().unwrap();
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["DefaultGroup", DD_GROUP]);
        let g = engine.storage_group(DD_GROUP).unwrap();
        assert_eq!(g.id, DD_GROUP_ID);
        assert_eq!(g.compression, Compression::Fast);
        assert_eq!((g.chunk_min, g.chunk_avg, g.chunk_max), (256, 1024, 4096));
        let c = engine.container(DD_CONTAINER).unwrap();
        assert_eq!(c.kind, ContainerKind::Object);
        assert_eq!(c.storage_group, DD_GROUP);
        assert_eq!(c.streams, 2);

        let streams = engine.streams(DD_CONTAINER).unwrap();
        assert_eq!(streams.len(), 2);
        for ((name, data), info) in expected.iter().zip(&streams) {
            assert_eq!(info.name, *name);
            assert_eq!(info.logical_bytes, data.len() as u64);
            let mut back = Vec::new();
            engine.open_stream(DD_CONTAINER, name).unwrap().read_to_end(&mut back).unwrap();
            assert!(back == *data, "stream {name} differs");
        }
        assert_eq!(streams[0].new_chunks + streams[1].new_chunks, DD_UNIQUE_CHUNKS);

        let stats = engine.stats(&StatsScope::Container(DD_CONTAINER.into())).unwrap();
        assert_eq!(stats.unique_chunks, DD_UNIQUE_CHUNKS);
        assert_eq!(stats.logical_bytes, (stream_first().len() + stream_second().len()) as u64);
        assert_eq!(stats.streams, 2);
        let sg = engine.stats(&StatsScope::StorageGroup(DD_GROUP.into())).unwrap();
        assert_eq!(sg.packs, 1);
        assert_eq!(sg.unique_chunks, DD_UNIQUE_CHUNKS);

        // After a reopen only the fingerprint index (rebuilt from the pack footer, as it is not
        // committed) knows the old chunks: writing the second stream again stores nothing.
        let mut w = engine.create_stream(DD_CONTAINER, "again").unwrap();
        w.write_all(&stream_second()).unwrap();
        let info = w.finish().unwrap();
        assert_eq!(info.new_chunks, 0);
        assert_eq!(info.new_stored_bytes, 0);
    }

    // The rebuilt index follows the documented slot layout.
    let idx_path = dd.join("groups").join(format!("{DD_GROUP_ID:08x}")).join("fp.idx");
    let idx = std::fs::read(&idx_path).unwrap();
    let h = decode_index_header(&idx, idx.len() as u64).unwrap();
    assert_eq!(h.slots, 1 << 14);
    assert_eq!(h.watermark, 2, "every pack below id 2 is indexed");
    assert_eq!(h.count, DD_UNIQUE_CHUNKS);
    let slots = &idx[INDEX_HEADER_LEN..];
    let mask = h.slots - 1;
    let mut seen = HashSet::new();
    for (i, s) in slots.chunks_exact(INDEX_SLOT_LEN).enumerate() {
        if s.iter().all(|&b| b == 0) {
            continue;
        }
        assert_eq!(u32_at(s, 24), 1, "pack id");
        assert_eq!(u32_at(s, 28), crc(&[&s[..28]]), "slot CRC");
        let prefix: [u8; 24] = s[..24].try_into().unwrap();
        // Linear probing from the home slot: no empty slot in between.
        let home = u64_at(s, 0) & mask;
        let mut j = home;
        while j != i as u64 {
            let o = &slots[j as usize * INDEX_SLOT_LEN..][..INDEX_SLOT_LEN];
            assert!(o.iter().any(|&b| b != 0), "empty slot {j} between home {home} and {i}");
            j = (j + 1) & mask;
        }
        seen.insert(prefix);
    }
    let want: HashSet<[u8; 24]> = unique.iter().map(|fp| fp.as_bytes()[..24].try_into().unwrap()).collect();
    assert_eq!(seen, want);
}
