//! PDU framing (RFC 7143 §11.1): the 48-byte Basic Header Segment, the optional Additional
//! Header Segments, the optional CRC32C header and data digests, and the data segment padded to
//! a multiple of 4 bytes. Pure functions: [`decode`] takes the bytes received so far and says
//! whether a whole PDU is there; [`encode`] appends one PDU to a buffer.
//!
//! Byte layout of a PDU on the wire:
//!
//! | bytes | field |
//! | --- | --- |
//! | 48 | BHS; byte 4 is TotalAHSLength in 4-byte words, bytes 5..8 DataSegmentLength (24 bits) |
//! | 4 × TotalAHSLength | AHS |
//! | 0 or 4 | header digest: CRC32C of BHS and AHS, least significant byte first |
//! | DataSegmentLength | data segment |
//! | 0..3 | zero padding to a multiple of 4 |
//! | 0 or 4 | data digest: CRC32C of data segment and padding (absent without data) |

use crate::error::CodecError;

/// Size of the Basic Header Segment.
pub const BHS_LEN: usize = 48;
/// Largest data segment length the 24-bit field can express.
pub const MAX_DATA_SEGMENT: u32 = (1 << 24) - 1;

/// Which digests the connection negotiated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Digests {
    /// HeaderDigest=CRC32C.
    pub header: bool,
    /// DataDigest=CRC32C.
    pub data: bool,
}

/// One PDU as framed bytes: header, additional header segments and data segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The Basic Header Segment. Bytes 4..8 (lengths) are filled in by [`encode`].
    pub bhs: [u8; BHS_LEN],
    /// Additional header segments (a multiple of 4 bytes, at most 1,020).
    pub ahs: Vec<u8>,
    /// The data segment, without padding.
    pub data: Vec<u8>,
}

/// CRC32C (Castagnoli) as iSCSI digests use it.
pub fn crc32c(parts: &[&[u8]]) -> u32 {
    parts.iter().fold(0, |crc, p| crc32c::crc32c_append(crc, p))
}

fn pad_len(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Decodes one PDU from the start of `buf`. `Ok(None)` when `buf` does not hold a whole PDU
/// yet; otherwise the frame and how many bytes it took. A data segment longer than
/// `max_data` is refused before anything is allocated for it.
pub fn decode(buf: &[u8], digests: Digests, max_data: u32) -> Result<Option<(Frame, usize)>, CodecError> {
    if buf.len() < BHS_LEN {
        return Ok(None);
    }
    let ahs_len = buf[4] as usize * 4;
    let data_len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]);
    if data_len > max_data {
        return Err(CodecError::DataTooLong { len: data_len, limit: max_data });
    }
    let data_len = data_len as usize;
    let hd = if digests.header { 4 } else { 0 };
    let dd = if digests.data && data_len > 0 { 4 } else { 0 };
    let header_end = BHS_LEN + ahs_len;
    let data_start = header_end + hd;
    let total = data_start + data_len + pad_len(data_len) + dd;
    if buf.len() < total {
        return Ok(None);
    }
    if digests.header {
        let got = u32::from_le_bytes(buf[header_end..data_start].try_into().expect("4 bytes"));
        let want = crc32c(&[&buf[..header_end]]);
        if got != want {
            return Err(CodecError::HeaderDigest { got, want });
        }
    }
    let padded_end = data_start + data_len + pad_len(data_len);
    if dd == 4 {
        let got = u32::from_le_bytes(buf[padded_end..total].try_into().expect("4 bytes"));
        let want = crc32c(&[&buf[data_start..padded_end]]);
        if got != want {
            return Err(CodecError::DataDigest { got, want });
        }
    }
    let mut bhs = [0u8; BHS_LEN];
    bhs.copy_from_slice(&buf[..BHS_LEN]);
    let frame =
        Frame { bhs, ahs: buf[BHS_LEN..header_end].to_vec(), data: buf[data_start..data_start + data_len].to_vec() };
    Ok(Some((frame, total)))
}

/// Appends `frame` to `out`, setting its length fields and the negotiated digests.
/// An AHS that is not a multiple of 4 bytes is padded; lengths beyond what the fields can
/// express are the caller's bug and are cut (the caller splits data by the negotiated limit).
pub fn encode(frame: &Frame, digests: Digests, out: &mut Vec<u8>) {
    let start = out.len();
    let mut bhs = frame.bhs;
    let ahs_words = frame.ahs.len().div_ceil(4).min(255);
    let data = &frame.data[..frame.data.len().min(MAX_DATA_SEGMENT as usize)];
    bhs[4] = ahs_words as u8;
    bhs[5..8].copy_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&bhs);
    let ahs = &frame.ahs[..frame.ahs.len().min(ahs_words * 4)];
    out.extend_from_slice(ahs);
    out.resize(out.len() + ahs_words * 4 - ahs.len(), 0);
    if digests.header {
        let d = crc32c(&[&out[start..]]);
        out.extend_from_slice(&d.to_le_bytes());
    }
    if !data.is_empty() {
        let data_start = out.len();
        out.extend_from_slice(data);
        out.resize(out.len() + pad_len(data.len()), 0);
        if digests.data {
            let d = crc32c(&[&out[data_start..]]);
            out.extend_from_slice(&d.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_rfc_test_vectors() {
        // RFC 3720 B.4: 32 bytes of zeros give the digest bytes aa 36 91 8a.
        assert_eq!(crc32c(&[&[0u8; 32]]).to_le_bytes(), [0xaa, 0x36, 0x91, 0x8a]);
        assert_eq!(crc32c(&[&[0xffu8; 32]]).to_le_bytes(), [0x43, 0xab, 0xa8, 0x62]);
        let inc: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&[&inc]).to_le_bytes(), [0x4e, 0x79, 0xdd, 0x46]);
    }
}
