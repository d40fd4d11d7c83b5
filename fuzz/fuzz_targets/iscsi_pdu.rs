//! iSCSI framing and PDU decoding: `frame::decode` under every digest setting and a data
//! segment limit, then `Pdu::from_frame`. Any input gives frames, "not yet" or an error, never
//! a panic; a data segment never exceeds the limit; a decoded PDU encodes and decodes back to
//! itself.
//!
//! Input: one mode byte (bit 0 header digest, bit 1 data digest, bits 2..7 the limit in KiB),
//! then the bytes of one or more PDUs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qorestor_iscsi::frame::{decode, encode, Digests};
use qorestor_iscsi::pdu::Pdu;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let digests = Digests { header: mode & 1 != 0, data: mode & 2 != 0 };
    let limit = (mode as u32 >> 2) * 1024;
    while let Ok(Some((frame, used))) = decode(rest, digests, limit) {
        assert!(used <= rest.len() && used >= 48);
        assert!(frame.data.len() <= limit as usize);
        rest = &rest[used..];
        if let Ok(pdu) = Pdu::from_frame(frame) {
            let mut wire = Vec::new();
            encode(&pdu.to_frame(), digests, &mut wire);
            let (again, n) = decode(&wire, digests, 1 << 24).unwrap().unwrap();
            assert_eq!(n, wire.len());
            assert_eq!(Pdu::from_frame(again).unwrap(), pdu);
        }
    }
});
