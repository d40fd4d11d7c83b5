//! Shared by the VTL test binaries that drive a library without the `vtl` test harness.

/// Incompressible bytes from a linear congruential generator (the high byte of each step).
pub fn random(seed: u64, len: usize) -> Vec<u8> {
    std::iter::successors(Some(seed), |x| Some(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1)))
        .skip(1)
        .take(len)
        .map(|x| (x >> 56) as u8)
        .collect()
}
