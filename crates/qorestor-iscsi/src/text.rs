//! Text key/value segments (RFC 7143 §6.1): `key=value` pairs, each ended by a NUL byte, as
//! Login and Text PDUs carry them. Pure parsing and formatting with fixed limits.

use crate::error::CodecError;

/// Longest key name (RFC 7143 §6.1).
pub const MAX_KEY_LEN: usize = 63;
/// Longest value accepted (RFC 7143 allows 8,192 bytes for most values; CHAP values fit).
pub const MAX_VALUE_LEN: usize = 8192;
/// Most pairs accepted in one request.
pub const MAX_PAIRS: usize = 256;

/// Ordered key/value pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pairs(pub Vec<(String, String)>);

impl Pairs {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Appends `key=value`.
    pub fn push(&mut self, key: &str, value: impl Into<String>) {
        self.0.push((key.to_string(), value.into()));
    }

    /// Whether there is no pair.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_KEY_LEN
        && k.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+' | b'@' | b'_'))
}

/// Parses a text segment. A segment may end without the last NUL (some initiators) and may
/// carry NUL padding; a pair without `=`, an invalid key, a value that is not UTF-8 or too
/// long, or more than [`MAX_PAIRS`] pairs is an error naming the pair.
pub fn parse(data: &[u8]) -> Result<Pairs, CodecError> {
    let mut pairs = Vec::new();
    for raw in data.split(|&b| b == 0).filter(|p| !p.is_empty()) {
        let shown = || String::from_utf8_lossy(&raw[..raw.len().min(80)]).into_owned();
        let text = std::str::from_utf8(raw).map_err(|_| CodecError::MalformedText(shown()))?;
        let (k, v) = text.split_once('=').ok_or_else(|| CodecError::MalformedText(shown()))?;
        if !valid_key(k) || v.len() > MAX_VALUE_LEN || pairs.len() == MAX_PAIRS {
            return Err(CodecError::MalformedText(shown()));
        }
        pairs.push((k.to_string(), v.to_string()));
    }
    Ok(Pairs(pairs))
}

/// Formats pairs as a text segment (`key=value\0` each).
pub fn format(pairs: &Pairs) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in &pairs.0 {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// Parses a numerical value: decimal, or hexadecimal with `0x`.
pub fn number(v: &str) -> Option<u64> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) if !h.is_empty() && h.len() <= 16 => u64::from_str_radix(h, 16).ok(),
        Some(_) => None,
        None if !v.is_empty() && v.len() <= 20 && v.bytes().all(|c| c.is_ascii_digit()) => v.parse().ok(),
        None => None,
    }
}

/// Decodes a binary value: `0x` hexadecimal or `0b` base64 (RFC 7143 §6.1); at most
/// `max` bytes.
pub fn binary(v: &str, max: usize) -> Option<Vec<u8>> {
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        if h.is_empty() || h.len() > 2 * max + 1 || !h.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let padded = if h.len() % 2 == 1 { format!("0{h}") } else { h.to_string() };
        return (0..padded.len()).step_by(2).map(|i| u8::from_str_radix(&padded[i..i + 2], 16).ok()).collect();
    }
    if let Some(b) = v.strip_prefix("0b").or_else(|| v.strip_prefix("0B")) {
        if b.is_empty() || b.len() > max.div_ceil(3) * 4 {
            return None;
        }
        return base64(b);
    }
    None
}

fn base64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let body = s.trim_end_matches('=');
    if s.len() - body.len() > 2 {
        return None;
    }
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in body.bytes() {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Formats bytes as a `0x` hexadecimal value.
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * b.len());
    s.push_str("0x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_with_and_without_the_last_nul() {
        let p = parse(b"InitiatorName=iqn.x\0SessionType=Discovery").unwrap();
        assert_eq!(p.get("SessionType"), Some("Discovery"));
        assert_eq!(p.get("InitiatorName"), Some("iqn.x"));
        assert_eq!(format(&p), b"InitiatorName=iqn.x\0SessionType=Discovery\0");
        assert!(parse(b"NoEquals\0").is_err());
        assert!(parse(b"bad key=1\0").is_err());
    }

    #[test]
    fn numbers_and_binaries() {
        assert_eq!(number("262144"), Some(262144));
        assert_eq!(number("0x10"), Some(16));
        assert_eq!(number("-1"), None);
        assert_eq!(binary("0x0a0B", 16), Some(vec![10, 11]));
        assert_eq!(binary("0xabc", 16), Some(vec![0x0a, 0xbc]));
        assert_eq!(binary("0bAAEC", 16), Some(vec![0, 1, 2]));
        assert_eq!(binary("0bAQ==", 16), Some(vec![1]));
        assert_eq!(binary("12", 16), None);
        assert_eq!(binary("0xaЅ", 16), None);
        assert_eq!(hex(&[1, 0xab]), "0x01ab");
    }
}
