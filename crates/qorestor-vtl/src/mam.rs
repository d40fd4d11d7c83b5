//! Medium auxiliary memory: READ ATTRIBUTE and WRITE ATTRIBUTE (SPC) on a mounted cartridge.
//!
//! Device and medium attributes are computed (remaining and maximum capacity in MiB, TapeAlert
//! flags, manufacturer, serial number = barcode, density, medium type); host attributes
//! (application vendor, name and version, user label, date last written, localization, barcode,
//! owning host, media pool) are written by the application and kept in the cartridge map,
//! made durable with it. [`parse_write_attribute`] is a pure decoder of the parameter list
//! (fuzzed in `vtl_cdb`).

use std::collections::BTreeMap;

use crate::sense::{Outcome, Sense};
use crate::spc::{cut, padded};

/// Attribute formats.
const BINARY: u8 = 0;
const ASCII: u8 = 1;
const TEXT: u8 = 2;

/// Host attributes that WRITE ATTRIBUTE may set: (identifier, format, length; the maximum
/// length for text).
const HOST: [(u16, u8, usize); 9] = [
    (0x0800, ASCII, 8),  // application vendor
    (0x0801, ASCII, 32), // application name
    (0x0802, ASCII, 8),  // application version
    (0x0803, TEXT, 160), // user medium text label
    (0x0804, ASCII, 12), // date and time last written
    (0x0805, BINARY, 1), // text localization identifier
    (0x0806, ASCII, 32), // barcode
    (0x0807, TEXT, 80),  // owning host textual name
    (0x0808, TEXT, 160), // media pool
];

/// Read-only attributes the device reports.
const DEVICE: [u16; 8] = [0x0000, 0x0001, 0x0002, 0x0400, 0x0401, 0x0405, 0x0408, 0x0806];

/// What READ ATTRIBUTE needs to know about the mounted cartridge.
pub(crate) struct MamView<'a> {
    pub barcode: &'a str,
    pub capacity: u64,
    pub used: u64,
    pub density: u8,
    pub worm: bool,
    pub host: &'a BTreeMap<u16, String>,
}

/// The format of host attribute `id` if it is writable and `value` fits it (an empty value
/// deletes).
pub fn check_host_attribute(id: u16, value: &[u8]) -> Option<u8> {
    let &(_, format, len) = HOST.iter().find(|h| h.0 == id)?;
    let fits = match format {
        TEXT => value.len() <= len,
        _ => value.is_empty() || value.len() == len,
    };
    fits.then_some(format)
}

/// Lower-case hexadecimal.
pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Decodes hexadecimal (`None` if it is not).
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 2 * 4096 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// One attribute of a WRITE ATTRIBUTE parameter list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeWrite {
    /// Identifier.
    pub id: u16,
    /// Format code (0 binary, 1 ASCII, 2 text).
    pub format: u8,
    /// Value (empty: delete).
    pub value: Vec<u8>,
}

/// Decodes a WRITE ATTRIBUTE parameter list: a 4-byte parameter data length, then attributes
/// (identifier, format, length, value). Errors point at the offending byte (5/26/00) or are a
/// parameter list length error (5/1A/00).
pub fn parse_write_attribute(list: &[u8]) -> Result<Vec<AttributeWrite>, Sense> {
    let length_error = Sense::new(crate::sense::ILLEGAL_REQUEST, 0x1A, 0x00);
    if list.len() < 4 {
        return Err(length_error);
    }
    let n = u32::from_be_bytes([list[0], list[1], list[2], list[3]]) as usize;
    if n > list.len() - 4 {
        return Err(length_error);
    }
    let body = &list[4..4 + n];
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        if at + 5 > body.len() {
            return Err(length_error);
        }
        let id = u16::from_be_bytes([body[at], body[at + 1]]);
        let format = body[at + 2] & 0x03;
        let len = u16::from_be_bytes([body[at + 3], body[at + 4]]) as usize;
        if at + 5 + len > body.len() {
            return Err(length_error);
        }
        out.push(AttributeWrite { id, format, value: body[at + 5..at + 5 + len].to_vec() });
        at += 5 + len;
    }
    Ok(out)
}

/// Applies decoded writes to the host attributes: all or nothing.
pub(crate) fn apply(writes: &[AttributeWrite], host: &mut BTreeMap<u16, String>) -> Result<(), Sense> {
    let mut offset = 4u16;
    for w in writes {
        match check_host_attribute(w.id, &w.value) {
            Some(format) if format == w.format || w.value.is_empty() => {}
            _ => return Err(Sense::invalid_param_field(offset)),
        }
        offset = offset.saturating_add(5 + w.value.len() as u16);
    }
    for w in writes {
        if w.value.is_empty() {
            host.remove(&w.id);
        } else {
            host.insert(w.id, to_hex(&w.value));
        }
    }
    Ok(())
}

fn value(id: u16, v: &MamView<'_>) -> Option<(bool, u8, Vec<u8>)> {
    let mib = |b: u64| (b >> 20).to_be_bytes().to_vec();
    if let Some(hex) = v.host.get(&id) {
        let &(_, format, _) = HOST.iter().find(|h| h.0 == id)?;
        return Some((false, format, from_hex(hex)?));
    }
    Some(match id {
        0x0000 => (true, BINARY, mib(v.capacity.saturating_sub(v.used))),
        0x0001 => (true, BINARY, mib(v.capacity)),
        0x0002 => (true, BINARY, vec![0; 8]),
        0x0400 => (true, ASCII, padded("QORESTOR", 8)),
        0x0401 => (true, ASCII, padded(v.barcode, 32)),
        0x0405 => (true, BINARY, vec![v.density]),
        0x0408 => (true, BINARY, vec![if v.worm { 0x80 } else { 0x00 }]),
        0x0806 => (false, ASCII, padded(v.barcode, 32)),
        _ => return None,
    })
}

/// READ ATTRIBUTE data for service action `sa` (00h values, 01h list, 02h logical volumes,
/// 03h partitions, 05h supported attributes) from attribute `first` on.
pub(crate) fn read_attribute(sa: u8, first: u16, alloc: u32, v: &MamView<'_>) -> Outcome {
    let mut ids: Vec<u16> = DEVICE.to_vec();
    ids.extend(v.host.keys().copied());
    ids.sort_unstable();
    ids.dedup();
    let data = match sa {
        0x00 => {
            let mut d = vec![0u8; 4];
            for id in ids.into_iter().filter(|&i| i >= first) {
                if let Some((ro, format, val)) = value(id, v) {
                    d.extend_from_slice(&id.to_be_bytes());
                    d.push(if ro { 0x80 } else { 0 } | format);
                    d.extend_from_slice(&(val.len() as u16).to_be_bytes());
                    d.extend_from_slice(&val);
                }
            }
            let n = (d.len() - 4) as u32;
            d[0..4].copy_from_slice(&n.to_be_bytes());
            d
        }
        0x01 | 0x05 => {
            let list: Vec<u16> = if sa == 0x01 {
                ids
            } else {
                let mut all: Vec<u16> = DEVICE.to_vec();
                all.extend(HOST.iter().map(|h| h.0));
                all.sort_unstable();
                all.dedup();
                all
            };
            let mut d = ((2 * list.len()) as u32).to_be_bytes().to_vec();
            for id in list.into_iter().filter(|&i| i >= first) {
                d.extend_from_slice(&id.to_be_bytes());
            }
            let n = (d.len() - 4) as u32;
            d[0..4].copy_from_slice(&n.to_be_bytes());
            d
        }
        0x02 | 0x03 => vec![0, 2, 0, 1],
        _ => return Err((Sense::invalid_cdb_field(1, Some(4)), Vec::new())),
    };
    Ok(cut(data, alloc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_lists_and_host_attribute_rules() {
        let mut list = vec![0, 0, 0, 0];
        list.extend_from_slice(&[0x08, 0x00, 0x01, 0, 8]);
        list.extend_from_slice(b"BACKUPCO");
        list.extend_from_slice(&[0x08, 0x03, 0x02, 0, 3]);
        list.extend_from_slice(b"abc");
        let n = (list.len() - 4) as u32;
        list[0..4].copy_from_slice(&n.to_be_bytes());
        let w = parse_write_attribute(&list).unwrap();
        assert_eq!(w.len(), 2);
        let mut host = BTreeMap::new();
        apply(&w, &mut host).unwrap();
        assert_eq!(host[&0x0800], to_hex(b"BACKUPCO"));
        assert_eq!(from_hex(&host[&0x0803]).unwrap(), b"abc");
        // Read-only, unknown, wrong length: refused, nothing applied.
        let bad = [AttributeWrite { id: 0x0000, format: 0, value: vec![0; 8] }];
        assert_eq!(apply(&bad, &mut host).unwrap_err().asc, 0x26);
        let bad = [AttributeWrite { id: 0x0801, format: 1, value: vec![b'x'; 5] }];
        assert!(apply(&bad, &mut host).is_err());
        // Deleting.
        apply(&[AttributeWrite { id: 0x0803, format: 2, value: vec![] }], &mut host).unwrap();
        assert!(!host.contains_key(&0x0803));
        // Truncated lists.
        for n in 0..list.len() {
            let _ = parse_write_attribute(&list[..n]);
        }
        assert!(parse_write_attribute(&[0, 0, 0, 9, 1]).is_err());
        assert_eq!(from_hex("0g"), None);
        assert_eq!(from_hex("abc"), None);
    }
}
