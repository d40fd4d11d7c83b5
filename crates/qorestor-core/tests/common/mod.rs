//! Helpers shared by the engine's integration tests.

#![allow(dead_code)] // each test binary uses its own part

/// Deterministic pseudo-random bytes (xorshift64*), with every fourth 4 KiB block made
/// compressible text so both codecs are exercised.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        if (out.len() / 4096) % 4 == 3 {
            out.extend_from_slice(format!("line {} of a log file\n", v % 1000).as_bytes());
        } else {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

/// Deterministic incompressible bytes (xorshift64*), reproducible from `seed`.
pub fn random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}
pub mod small_fs;
