//! Recipes: `decode_recipe` on arbitrary bytes.
//!
//! Input: one mode byte, then
//! - mode 0: a recipe file as stored;
//! - mode 1: a recipe whose magics, version, reserved bytes and both CRCs are fixed up, so that
//!   the name, count, entry and length checks are reached. An accepted recipe must re-encode
//!   to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qorestor_core::format::{MAX_CHUNK_LEN, RECIPE_HEADER_LEN, RECIPE_MAGIC, RECIPE_TRAILER_LEN, RECIPE_TRAILER_MAGIC};
use qorestor_core::test_support::recipe::{decode_recipe, encode_recipe};

fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

fn fix_up(rest: &[u8]) -> Option<Vec<u8>> {
    if rest.len() < RECIPE_HEADER_LEN + RECIPE_TRAILER_LEN {
        return None;
    }
    let mut b = rest.to_vec();
    b[0..8].copy_from_slice(&RECIPE_MAGIC);
    b[8..12].copy_from_slice(&[1, 0, 0, 0]);
    let clen = u16::from_le_bytes([b[32], b[33]]) as usize;
    let slen = u16::from_le_bytes([b[34], b[35]]) as usize;
    let names_end = (RECIPE_HEADER_LEN + clen + slen).min(b.len() - RECIPE_TRAILER_LEN);
    let h = crc(&[&b[..36], &b[RECIPE_HEADER_LEN..names_end]]);
    b[36..40].copy_from_slice(&h.to_le_bytes());
    let tstart = b.len() - RECIPE_TRAILER_LEN;
    b[tstart + 20..tstart + 24].copy_from_slice(&[0; 4]);
    b[tstart + 24..].copy_from_slice(&RECIPE_TRAILER_MAGIC);
    let c = crc(&[&b[..tstart], &b[tstart..tstart + 16]]);
    b[tstart + 16..tstart + 20].copy_from_slice(&c.to_le_bytes());
    Some(b)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        match fix_up(rest) {
            Some(b) => b,
            None => return,
        }
    };
    if let Ok(r) = decode_recipe(&bytes) {
        assert_eq!(r.logical_len, r.entries.iter().map(|e| e.raw_len as u64).sum::<u64>());
        for e in &r.entries {
            assert!(e.raw_len >= 1 && e.raw_len <= MAX_CHUNK_LEN && e.loc.stored_len <= e.raw_len);
        }
        if mode & 1 == 1 {
            assert_eq!(encode_recipe(&r), bytes, "an accepted recipe is canonical");
        }
    }
});
