//! Encryption at rest: no plaintext under the data directory, bit-exact reads with the
//! passphrase, clear failures without it or with a wrong one (other groups unaffected), key
//! rotation, keyed fingerprints, and the cleaner and verify on an encrypted group.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;

use common::data;
use qorestor_core::test_support::recipe::read_recipe;
use qorestor_core::{
    CleanerOptions, Compression, ContainerKind, EncryptionMode, EncryptionOptions, Engine, ErrorKind, Fingerprint,
    GroupOptions, NoProgress, Passphrase, StatsScope, VerifyOptions, VerifyScope, DEFAULT_GROUP,
};

const PASS: &[u8] = b"correct horse battery staple";
const MARKER: &[u8] = b"QORESTOR-PLAINTEXT-MARKER-7f3a9c";

fn pass(p: &[u8]) -> Passphrase {
    Passphrase::new(p.to_vec()).unwrap()
}

fn options(mode: EncryptionMode, compression: Compression) -> (GroupOptions, EncryptionOptions) {
    let g = GroupOptions { compression, ..GroupOptions::default() };
    (g, EncryptionOptions::new(mode, 30, pass(PASS)))
}

/// Pseudo-random bytes with the marker written every 8 KiB (so every chunk holds it).
fn marked(seed: u64, len: usize) -> Vec<u8> {
    let mut d = data(seed, len);
    for at in (0..len.saturating_sub(MARKER.len())).step_by(8192) {
        d[at..at + MARKER.len()].copy_from_slice(MARKER);
    }
    d
}

fn put(e: &Engine, c: &str, name: &str, bytes: &[u8]) -> qorestor_core::Result<()> {
    let mut w = e.create_stream(c, name)?;
    w.write_all(bytes).map_err(|err| *err.into_inner().unwrap().downcast::<qorestor_core::Error>().unwrap())?;
    w.finish().map(|_| ())
}

fn get(e: &Engine, c: &str, name: &str) -> qorestor_core::Result<Vec<u8>> {
    let mut out = Vec::new();
    e.open_stream(c, name)?.read_to_end(&mut out).unwrap();
    Ok(out)
}

/// Files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                todo.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    hits
}

/// Every fingerprint the recipes of group `id` name.
fn recipe_fingerprints(dir: &Path, group_id: u32) -> HashSet<Fingerprint> {
    let recipes = dir.join("groups").join(format!("{group_id:08x}")).join("recipes");
    let mut fps = HashSet::new();
    for f in std::fs::read_dir(recipes).unwrap().flatten() {
        if f.path().extension().is_some_and(|x| x == "rcp") {
            fps.extend(read_recipe(&f.path()).unwrap().entries.iter().map(|e| e.fp));
        }
    }
    fps
}

#[test]
fn no_plaintext_under_the_data_directory_and_bit_exact_reads_with_the_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = marked(1, 3 << 20);
    {
        let e = Engine::create(dir.path()).unwrap();
        // Control: a plain group without compression keeps the marker in its packs.
        let plain = GroupOptions { compression: Compression::None, ..GroupOptions::default() };
        e.add_storage_group("plain", plain).unwrap();
        e.add_container("p", "plain", ContainerKind::Object).unwrap();
        put(&e, "p", "s", &bytes).unwrap();
        assert!(!files_containing(dir.path(), MARKER).is_empty(), "the control group should hold the marker");
        e.delete_container("p", true).unwrap();
        e.run_cleaner(&CleanerOptions::default(), &NoProgress).unwrap();
        assert!(files_containing(dir.path(), MARKER).is_empty(), "the cleaner should have removed the control packs");

        for (name, compression) in [("enc-none", Compression::None), ("enc-fast", Compression::Fast)] {
            let (g, enc) = options(EncryptionMode::Static, compression);
            let info = e.add_encrypted_storage_group(name, g, enc).unwrap();
            assert_eq!(info.encryption, Some(EncryptionMode::Static));
            e.add_container(&format!("c-{name}"), name, ContainerKind::Object).unwrap();
            put(&e, &format!("c-{name}"), "backup", &bytes).unwrap();
            assert_eq!(get(&e, &format!("c-{name}"), "backup").unwrap(), bytes);
        }
    }
    let hits = files_containing(dir.path(), MARKER);
    assert!(hits.is_empty(), "plaintext marker found in {hits:?}");
    // A new process with the passphrase reads it back bit-exact.
    let e = Engine::open(dir.path()).unwrap();
    e.set_passphrase(pass(PASS)).unwrap();
    for c in ["c-enc-none", "c-enc-fast"] {
        assert!(get(&e, c, "backup").unwrap() == bytes);
    }
    let r = e.verify(&VerifyOptions { scope: VerifyScope::All, repair: false }, &NoProgress).unwrap();
    assert!(!r.damage_remains(), "{r:?}");
}

#[test]
fn without_or_with_a_wrong_passphrase_the_group_fails_clearly_and_others_work() {
    let dir = tempfile::tempdir().unwrap();
    let secret = data(2, 1 << 20);
    {
        let e = Engine::create(dir.path()).unwrap();
        let (g, enc) = options(EncryptionMode::Static, Compression::Fast);
        e.add_encrypted_storage_group("vault", g, enc).unwrap();
        e.add_container("v", "vault", ContainerKind::Object).unwrap();
        e.add_container("open", DEFAULT_GROUP, ContainerKind::Object).unwrap();
        put(&e, "v", "s", &secret).unwrap();
    }
    for given in [None, Some(b"not the passphrase".as_slice())] {
        let e = Engine::open(dir.path()).unwrap();
        if let Some(p) = given {
            e.set_passphrase(pass(p)).unwrap();
        }
        let read = get(&e, "v", "s").unwrap_err();
        let write = put(&e, "v", "t", b"more").unwrap_err();
        for err in [&read, &write] {
            assert_eq!(err.kind(), ErrorKind::Passphrase, "{err}");
            let text = err.to_string();
            assert!(text.contains("\"vault\""), "{text}");
            if given.is_some() {
                assert!(text.contains("wrong passphrase"), "{text}");
            } else {
                assert!(text.contains("QORESTOR_PASSPHRASE"), "{text}");
            }
        }
        // Nothing else is affected: listing, stats, the other group, the cleaner.
        assert_eq!(e.streams("v").unwrap().len(), 1);
        put(&e, "open", "x", &data(3, 100_000)).unwrap();
        assert_eq!(get(&e, "open", "x").unwrap(), data(3, 100_000));
        e.stats(&StatsScope::System).unwrap();
        e.run_cleaner(&CleanerOptions::default(), &NoProgress).unwrap();
        // The failed write left nothing visible.
        assert_eq!(e.streams("v").unwrap().len(), 1);
        // Given the right passphrase later in the same process, the group unlocks.
        e.set_passphrase(pass(PASS)).unwrap();
        assert!(get(&e, "v", "s").unwrap() == secret);
    }
}

#[test]
fn after_a_key_rotation_old_and_new_chunks_read_and_dedup_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (data(4, 2 << 20), data(5, 2 << 20));
    {
        let e = Engine::create(dir.path()).unwrap();
        let (g, enc) = options(EncryptionMode::Internal, Compression::Fast);
        let info = e.add_encrypted_storage_group("rot", g, enc).unwrap();
        assert_eq!((info.data_keys, info.key_rotation_days), (Some(1), Some(30)));
        e.add_container("c", "rot", ContainerKind::Object).unwrap();
        put(&e, "c", "old", &old).unwrap();
        assert_eq!(e.rotate_storage_group_key("rot").unwrap(), 2);
        put(&e, "c", "new", &new).unwrap();
        // The same data again under the new key deduplicates against chunks sealed by the old.
        let before = e.stats(&StatsScope::StorageGroup("rot".into())).unwrap().stored_bytes;
        put(&e, "c", "old-again", &old).unwrap();
        let after = e.stats(&StatsScope::StorageGroup("rot".into())).unwrap().stored_bytes;
        assert!(after - before < 64 << 10, "a repeat stored {} bytes", after - before);
        assert_eq!(e.rotate_storage_group_key(DEFAULT_GROUP).unwrap_err().kind(), ErrorKind::Conflict);
    }
    let e = Engine::open(dir.path()).unwrap();
    e.set_passphrase(pass(PASS)).unwrap();
    assert_eq!(e.storage_group("rot").unwrap().data_keys, Some(2));
    assert!(get(&e, "c", "old").unwrap() == old);
    assert!(get(&e, "c", "new").unwrap() == new);
    assert!(get(&e, "c", "old-again").unwrap() == old);
    // The cleaner copies sealed records as they are: after deleting a stream and compacting
    // everything, what remains still reads and verifies.
    e.delete_stream("c", "old").unwrap();
    e.run_cleaner(&CleanerOptions { dry_run: false, compact_below: 1.0 }, &NoProgress).unwrap();
    assert!(get(&e, "c", "new").unwrap() == new);
    assert!(get(&e, "c", "old-again").unwrap() == old);
    let r = e.verify(&VerifyOptions { scope: VerifyScope::All, repair: false }, &NoProgress).unwrap();
    assert!(!r.damage_remains(), "{r:?}");
}

#[test]
fn the_same_data_in_two_groups_has_unrelated_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::create(dir.path()).unwrap();
    let bytes = data(6, 1 << 20);
    let mut ids = Vec::new();
    for name in ["a", "b"] {
        let (g, enc) = options(EncryptionMode::Static, Compression::Fast);
        ids.push(e.add_encrypted_storage_group(name, g, enc).unwrap().id);
        e.add_container(&format!("c{name}"), name, ContainerKind::Object).unwrap();
        put(&e, &format!("c{name}"), "s", &bytes).unwrap();
    }
    e.add_container("plain", DEFAULT_GROUP, ContainerKind::Object).unwrap();
    put(&e, "plain", "s", &bytes).unwrap();
    let plain_id = e.storage_group(DEFAULT_GROUP).unwrap().id;
    let (a, b) = (recipe_fingerprints(dir.path(), ids[0]), recipe_fingerprints(dir.path(), ids[1]));
    let plain = recipe_fingerprints(dir.path(), plain_id);
    assert!(a.len() > 10 && b.len() > 10 && plain.len() > 10);
    assert!(a.is_disjoint(&b), "equal data in two encrypted groups shares fingerprints");
    assert!(a.is_disjoint(&plain) && b.is_disjoint(&plain));
}

#[test]
fn a_bad_passphrase_or_interval_is_refused_by_name() {
    assert_eq!(Passphrase::new(Vec::new()).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(Passphrase::new(vec![b'x'; 5000]).unwrap_err().kind(), ErrorKind::InvalidInput);
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::create(dir.path()).unwrap();
    let enc = EncryptionOptions::new(EncryptionMode::Internal, 0, pass(PASS));
    let err = e.add_encrypted_storage_group("g", GroupOptions::default(), enc).unwrap_err();
    assert!(err.to_string().contains("rotation"), "{err}");
    assert!(e.storage_group("g").is_err(), "nothing was created");
}
