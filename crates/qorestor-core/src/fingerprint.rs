//! Fingerprints: the BLAKE3-256 hash that names a chunk.

use std::fmt;

/// The 32-byte BLAKE3 hash of a chunk's raw bytes.
///
/// BLAKE3 is cryptographic (a collision would silently swap a customer's data, so a
/// non-cryptographic hash is never used) and runs at ~5 GB/s per core on 8 KiB chunks here.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Hashes `data`.
    pub fn of(data: &[u8]) -> Self {
        Fingerprint(*blake3::hash(data).as_bytes())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 bytes as a little-endian integer (uniformly distributed).
    pub fn prefix_u64(&self) -> u64 {
        u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes"))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", &self.to_hex()[..16])
    }
}
