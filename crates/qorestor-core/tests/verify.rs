//! Verify and repair: bit flips in packs are found every time and named by stream, repair
//! heals from another intact copy, quarantines the rest, and every undamaged stream stays
//! readable.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use qorestor_core::test_support::pack::read_footer;
use qorestor_core::{
    ChunkParams, Compression, ContainerKind, Engine, GroupOptions, NoProgress, VerifyOptions, VerifyReport, VerifyScope,
};

mod common;
use common::data;

const SMALL: ChunkParams = ChunkParams { min: 512, avg: 2048, max: 8192 };

/// A small xorshift for choosing what to damage.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn setup(dir: &Path) -> Engine {
    std::env::set_var(qorestor_core::test_support::PACK_SIZE_ENV, (256 << 10).to_string());
    let e = Engine::create(dir).unwrap();
    e.add_storage_group("g", GroupOptions { compression: Compression::Fast, chunking: SMALL }).unwrap();
    e.add_container("c", "g", ContainerKind::Object).unwrap();
    e
}

/// Streams: a shared prefix plus their own data, so a damaged chunk may hit one or several.
fn streams() -> Vec<(String, Vec<u8>)> {
    let shared = data(99, 300 << 10);
    (0..6u64)
        .map(|i| {
            let mut b = if i % 2 == 0 { shared.clone() } else { Vec::new() };
            b.extend_from_slice(&data(i, 400 << 10));
            (format!("s{i}"), b)
        })
        .collect()
}

fn put(e: &Engine, name: &str, bytes: &[u8]) {
    let mut w = e.create_stream("c", name).unwrap();
    w.write_all(bytes).unwrap();
    w.finish().unwrap();
}

fn reads_back(e: &Engine, name: &str, bytes: &[u8]) -> bool {
    let mut out = Vec::new();
    match e.open_stream("c", name) {
        Ok(mut r) => r.read_to_end(&mut out).is_ok() && out == bytes,
        Err(_) => false,
    }
}

fn pack_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "pack") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Flips one random bit inside a random chunk record (header or payload).
fn flip_record_bit(dir: &Path, rng: &mut Rng) {
    let packs = pack_files(dir);
    let path = &packs[rng.below(packs.len() as u64) as usize];
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let footer = read_footer(&f, path).unwrap();
    let e = footer[rng.below(footer.len() as u64) as usize];
    let at = e.offset as u64 + rng.below(48 + e.stored_len as u64);
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 1 << rng.below(8);
    f.write_all_at(&b, at).unwrap();
}

fn verify(e: &Engine, scope: VerifyScope, repair: bool) -> VerifyReport {
    e.verify(&VerifyOptions { scope, repair }, &NoProgress).unwrap()
}

#[test]
fn a_clean_store_verifies_clean() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path());
    for (name, bytes) in streams() {
        put(&e, &name, &bytes);
    }
    let r = verify(&e, VerifyScope::All, false);
    assert!(!r.damage_remains(), "{r:?}");
    assert!(r.chunks_checked > 100 && r.packs_checked > 2 && r.recipes_checked == 6, "{r:?}");
    assert!(r.damaged_streams.is_empty() && r.problems.is_empty(), "{r:?}");
}

#[test]
fn bit_flips_are_found_named_healed_or_quarantined() {
    for trial in 0..20u64 {
        let dir = tempfile::tempdir().unwrap();
        let all = streams();
        {
            let e = setup(dir.path());
            for (name, bytes) in &all {
                put(&e, name, bytes);
            }
        }
        let mut rng = Rng(0x1234_5678 + trial * 7919);
        for _ in 0..=rng.below(3) {
            flip_record_bit(dir.path(), &mut rng);
        }
        let e = Engine::open(dir.path()).unwrap();
        // Ground truth: the streams whose read fails (every chunk is checked by BLAKE3).
        let unreadable: BTreeSet<String> =
            all.iter().filter(|(n, b)| !reads_back(&e, n, b)).map(|(n, _)| format!("c/{n}")).collect();
        assert!(!unreadable.is_empty(), "trial {trial}: a flipped record bit always damages a stream");
        for scope in [VerifyScope::Data, VerifyScope::All] {
            let r = verify(&e, scope, false);
            let named: BTreeSet<String> = r.damaged_streams.iter().cloned().collect();
            assert_eq!(named, unreadable, "trial {trial} {scope:?}: {r:?}");
            assert!(r.damage_remains() && r.damaged_chunks >= 1);
        }
        // Repair: no other copy exists, so the damaged chunks are quarantined and the streams
        // named as losing data; the others stay readable.
        let r = verify(&e, VerifyScope::All, true);
        let lost: BTreeSet<String> = r.lost_streams.iter().cloned().collect();
        assert_eq!(lost, unreadable, "trial {trial}: {r:?}");
        assert!(r.quarantined_chunks >= 1 && r.damage_remains());
        for (n, b) in &all {
            assert_eq!(reads_back(&e, n, b), !unreadable.contains(&format!("c/{n}")), "trial {trial} {n}");
        }
        // The same backups written again store fresh copies of the quarantined chunks (they
        // are no dedup target), and the next repair heals the old streams from them.
        for (n, b) in all.iter().filter(|(n, _)| unreadable.contains(&format!("c/{n}"))) {
            put(&e, &format!("{n}.again"), b);
        }
        let r = verify(&e, VerifyScope::All, true);
        assert!(r.lost_streams.is_empty(), "trial {trial}: {r:?}");
        let healed: BTreeSet<String> = r.healed_streams.iter().cloned().collect();
        assert_eq!(healed, unreadable, "trial {trial}: {r:?}");
        for (n, b) in &all {
            assert!(reads_back(&e, n, b), "trial {trial}: {n} after healing");
        }
        let r = verify(&e, VerifyScope::All, false);
        assert!(r.damaged_streams.is_empty() && !r.damage_remains(), "trial {trial}: {r:?}");
        assert!(r.known_quarantined >= 1, "trial {trial}: {r:?}");
        drop(e);
        let e = Engine::open(dir.path()).unwrap();
        for (n, b) in &all {
            assert!(reads_back(&e, n, b), "trial {trial}: {n} after reopen");
        }
    }
}

#[test]
fn a_damaged_footer_is_reported_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let all = streams();
    {
        let e = setup(dir.path());
        for (name, bytes) in &all {
            put(&e, name, bytes);
        }
    }
    let path = &pack_files(dir.path())[0];
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let len = f.metadata().unwrap().len();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, len - 40).unwrap(); // inside the last footer entry
    f.write_all_at(&[b[0] ^ 0x20], len - 40).unwrap();
    let e = Engine::open(dir.path()).unwrap();
    let r = verify(&e, VerifyScope::All, false);
    assert_eq!(r.damaged_packs.len(), 1, "{r:?}");
    assert!(r.damaged_streams.is_empty() && r.damage_remains(), "{r:?}");
    let r = verify(&e, VerifyScope::All, true);
    assert!(!r.damage_remains(), "{r:?}");
    assert!(r.fixed.iter().any(|f| f.contains("footer rebuilt")), "{r:?}");
    let r = verify(&e, VerifyScope::All, false);
    assert!(!r.damage_remains(), "{r:?}");
    for (n, b) in &all {
        assert!(reads_back(&e, n, b));
    }
}

#[test]
fn a_missing_recipe_names_its_stream() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path());
    for (name, bytes) in streams() {
        put(&e, &name, &bytes);
    }
    let recipes: Vec<PathBuf> = {
        let mut v = Vec::new();
        let mut stack = vec![dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rcp") {
                    v.push(p);
                }
            }
        }
        v
    };
    std::fs::remove_file(&recipes[0]).unwrap();
    let r = verify(&e, VerifyScope::Metadata, false);
    assert_eq!(r.damaged_streams.len(), 1, "{r:?}");
    assert!(r.damage_remains());
}

#[test]
fn system_settings_come_back_when_the_catalog_is_rebuilt() {
    // Settings are rows like any other (the space reserve is the setting `space_reserve`): a
    // change, a removal and a setting changed twice all come back as they were last set.
    let dir = tempfile::tempdir().unwrap();
    {
        let e = Engine::create(dir.path()).unwrap();
        e.put_setting("space_reserve", &(64u64 << 20)).unwrap();
        e.put_setting("space_reserve", &(32u64 << 20)).unwrap();
        e.put_setting("gone", &"soon".to_string()).unwrap();
        assert!(e.remove_setting("gone").unwrap());
        e.set_system_name("rebuilt").unwrap();
    }
    let file = dir.path().join("catalog/catalog.redb");
    let len = std::fs::metadata(&file).unwrap().len();
    OpenOptions::new().write(true).open(&file).unwrap().set_len(len / 2).unwrap();
    assert!(Engine::open(dir.path()).is_err());
    let e = Engine::open_for_repair_as(dir.path(), "test").unwrap();
    let r = e.verify(&VerifyOptions { scope: VerifyScope::All, repair: true }, &NoProgress).unwrap();
    assert!(!r.damage_remains(), "{r:?}");
    assert!(r.catalog_restored.iter().any(|x| x == "system setting space_reserve"), "{r:?}");
    assert_eq!(e.setting::<u64>("space_reserve").unwrap(), Some(32 << 20));
    assert_eq!(e.setting::<String>("gone").unwrap(), None, "a removed setting stays removed");
    assert_eq!(e.system_name().unwrap(), "rebuilt");
    drop(e);
    let e = Engine::open(dir.path()).unwrap();
    let r = e.verify(&VerifyOptions { scope: VerifyScope::All, repair: false }, &NoProgress).unwrap();
    assert!(!r.damage_remains(), "{r:?}");
}
