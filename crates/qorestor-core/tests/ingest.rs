//! Client ingest (the OST server's record-ingest entry points) and image metadata.

use std::io::{Read, Write};

use qorestor_core::compress::{compress_into, Codec, FAST_LEVEL};
use qorestor_core::{
    ClientChunk, ContainerKind, Engine, Fingerprint, ImageMeta, OwnedStreams, StatsScope, DEFAULT_GROUP,
};

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 16) as u8
        })
        .collect()
}

fn lsu(engine: &Engine) -> OwnedStreams {
    engine.add_container("lsu", DEFAULT_GROUP, ContainerKind::Ost).unwrap();
    engine.owned_streams("lsu", ContainerKind::Ost).unwrap()
}

fn meta() -> ImageMeta {
    ImageMeta { date: 1_760_000_000, copy: 1, properties: "policy=nightly".into() }
}

/// Cuts `bytes` as a client would, with the group's parameters.
fn chunks(lsu: &OwnedStreams, bytes: &[u8]) -> Vec<(Fingerprint, Vec<u8>)> {
    let params = lsu.ingest_params().unwrap();
    let chunker = qorestor_core::Chunker::new(params.chunking).unwrap();
    let mut cuts = Vec::new();
    chunker.cut_all(bytes, true, &mut cuts);
    let mut start = 0usize;
    cuts.iter()
        .map(|&end| {
            let c = bytes[start..end as usize].to_vec();
            start = end as usize;
            (Fingerprint::of(&c), c)
        })
        .collect()
}

/// Ingests `bytes` as image `name` the way the optimized write does; returns the payload bytes sent.
fn ingest(lsu: &OwnedStreams, name: &str, bytes: &[u8]) -> u64 {
    let mut ingest = lsu.start_ingest(name, &meta()).unwrap();
    let cut = chunks(lsu, bytes);
    let mut sent = 0;
    for batch in cut.chunks(64) {
        let fps: Vec<Fingerprint> = batch.iter().map(|c| c.0).collect();
        let missing = ingest.missing(&fps);
        let mut payloads = Vec::new();
        for ((fp, raw), m) in batch.iter().zip(&missing) {
            if *m {
                let mut p = Vec::new();
                let codec = compress_into(raw, FAST_LEVEL, &mut p);
                if codec == Codec::Raw {
                    p = raw.clone();
                }
                payloads.push((*fp, raw.len() as u32, codec, p));
            }
        }
        let sent_chunks: Vec<ClientChunk<'_>> = payloads
            .iter()
            .map(|(fp, raw_len, codec, p)| ClientChunk { fp: *fp, raw_len: *raw_len, codec: *codec, payload: p })
            .collect();
        sent += payloads.iter().map(|p| p.3.len() as u64).sum::<u64>();
        let entries: Vec<(Fingerprint, u32)> = batch.iter().map(|c| (c.0, c.1.len() as u32)).collect();
        ingest.append(&entries, &sent_chunks).unwrap();
    }
    let info = ingest.publish().unwrap();
    assert_eq!(info.logical_bytes, bytes.len() as u64);
    sent
}

fn read_all(engine: &Engine, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    engine.open_stream("lsu", name).unwrap().read_to_end(&mut out).unwrap();
    out
}

#[test]
fn client_chunks_are_stored_and_read_back_with_their_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path()).unwrap();
    let lsu = lsu(&engine);
    let first = data(3 << 20, 1);
    let sent_first = ingest(&lsu, "gen1", &first);
    assert_eq!(read_all(&engine, "gen1"), first);
    assert_eq!(lsu.image_meta("gen1").unwrap(), Some(meta()));
    // The same bytes again: nothing is missing, nothing is sent, nothing is stored.
    let stored = engine.stats(&StatsScope::System).unwrap().stored_bytes;
    assert!(sent_first > 0);
    assert_eq!(ingest(&lsu, "gen2", &first), 0);
    assert_eq!(engine.stats(&StatsScope::System).unwrap().stored_bytes, stored);
    assert_eq!(read_all(&engine, "gen2"), first);
    // A name taken is refused: images are never replaced.
    assert!(lsu.start_ingest("gen1", &meta()).is_err());
    assert!(lsu.create_image("gen1", &meta()).is_err());
}

#[test]
fn a_passthrough_image_carries_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path()).unwrap();
    let lsu = lsu(&engine);
    let bytes = data(1 << 20, 2);
    let mut w = lsu.create_image("pt", &meta()).unwrap();
    w.write_all(&bytes).unwrap();
    w.finish().unwrap();
    assert_eq!(read_all(&engine, "pt"), bytes);
    assert_eq!(lsu.image_meta("pt").unwrap(), Some(meta()));
    // put and rm refuse an OST storage unit's streams.
    assert!(engine.create_stream("lsu", "x").is_err());
    assert!(engine.delete_stream("lsu", "pt").is_err());
}

#[test]
fn forged_or_unknown_chunks_are_refused_before_anything_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path()).unwrap();
    let lsu = lsu(&engine);
    let mut ingest = lsu.start_ingest("img", &meta()).unwrap();
    let right = b"the bytes the fingerprint names".to_vec();
    let fp = Fingerprint::of(&right);
    let forged = b"other bytes of the same length!".to_vec();
    let entry = [(fp, right.len() as u32)];
    fn chunk(fp: Fingerprint, codec: Codec, payload: &[u8]) -> ClientChunk<'_> {
        ClientChunk { fp, raw_len: payload.len() as u32, codec, payload }
    }
    // Bytes that do not hash to the fingerprint.
    let e = ingest.append(&entry, &[ClientChunk { payload: &forged, ..chunk(fp, Codec::Raw, &right) }]).unwrap_err();
    assert!(e.to_string().contains(&fp.to_hex()), "{e}");
    // A sealed codec.
    let e = ingest.append(&entry, &[chunk(fp, Codec::SealedRaw, &right)]).unwrap_err();
    assert!(e.to_string().contains("plain codec"), "{e}");
    // A zstd payload that is not a zstd frame.
    let e = ingest.append(&entry, &[ClientChunk { raw_len: 31, ..chunk(fp, Codec::Zstd, &right[..20]) }]).unwrap_err();
    assert!(e.to_string().contains("does not decode"), "{e}");
    // An entry whose chunk was neither sent nor stored.
    let e = ingest.append(&entry, &[]).unwrap_err();
    assert!(e.to_string().contains("neither sent nor stored"), "{e}");
    assert_eq!(engine.stats(&StatsScope::System).unwrap().stored_bytes, 0);
    // The right chunk goes in.
    ingest.append(&entry, &[chunk(fp, Codec::Raw, &right)]).unwrap();
    ingest.publish().unwrap();
    assert_eq!(read_all(&engine, "img"), right);
}

#[test]
fn an_ingest_dropped_before_publishing_leaves_no_image() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path()).unwrap();
    let lsu = lsu(&engine);
    let bytes = data(1 << 20, 3);
    {
        let mut ingest = lsu.start_ingest("half", &meta()).unwrap();
        let cut = chunks(&lsu, &bytes);
        let (fp, raw) = &cut[0];
        ingest
            .append(
                &[(*fp, raw.len() as u32)],
                &[ClientChunk { fp: *fp, raw_len: raw.len() as u32, codec: Codec::Raw, payload: raw }],
            )
            .unwrap();
    }
    assert!(engine.streams("lsu").unwrap().is_empty());
    let leftovers = std::fs::read_dir(dir.path().join("groups")).unwrap().flatten().flat_map(|g| {
        std::fs::read_dir(g.path().join("recipes")).unwrap().flatten().map(|f| f.file_name()).collect::<Vec<_>>()
    });
    assert_eq!(leftovers.count(), 0, "no temporary recipe is left");
}

#[test]
fn client_chunks_are_refused_at_the_space_reserve() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path()).unwrap();
    let lsu = lsu(&engine);
    // A reserve larger than any filesystem here: no new chunk fits above it.
    engine.set_space_reserve(Some(u64::MAX / 2)).unwrap();
    let mut ingest = lsu.start_ingest("img", &meta()).unwrap();
    let raw = data(10_000, 9);
    let fp = Fingerprint::of(&raw);
    let chunk = ClientChunk { fp, raw_len: raw.len() as u32, codec: Codec::Raw, payload: &raw };
    let e = ingest.append(&[(fp, raw.len() as u32)], &[chunk]).unwrap_err();
    assert_eq!(e.kind(), qorestor_core::ErrorKind::OutOfSpace, "{e}");
    assert_eq!(engine.stats(&StatsScope::System).unwrap().stored_bytes, 0);
}

#[test]
fn only_ost_storage_units_take_client_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path()).unwrap();
    engine.add_container("lib", DEFAULT_GROUP, ContainerKind::Vtl).unwrap();
    let vtl = engine.owned_streams("lib", ContainerKind::Vtl).unwrap();
    let e = vtl.start_ingest("x", &meta()).err().unwrap();
    assert!(e.to_string().contains("only OST storage units"), "{e}");
    let lsu = lsu(&engine);
    let long = ImageMeta { properties: "x".repeat(qorestor_core::MAX_IMAGE_PROPERTIES + 1), ..meta() };
    assert!(lsu.start_ingest("y", &long).is_err());
}
