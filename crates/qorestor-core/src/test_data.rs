//! Deterministic pseudo-random bytes for the unit tests (xorshift64).

/// `len` bytes from a xorshift64 generator seeded with `seed` (0 is replaced by 1), each with
/// `bits` random bits (1..=8; fewer bits make long runs and repeated values likely).
pub(crate) fn xorshift_bytes(len: usize, seed: u64, bits: u32) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 32) as u8) >> (8 - bits)
        })
        .collect()
}
