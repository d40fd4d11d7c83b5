//! VTL CDB and parameter-list decoding: `parse_cdb` for the changer and a drive,
//! `parse_mode_select` for both header formats, `mam::parse_write_attribute`. Any input gives a command or an ILLEGAL
//! REQUEST sense; never a panic.
//!
//! Input: one mode byte (bit 0: drive or changer; bit 1: MODE SELECT(10) or (6)), then the
//! bytes, tried both as a CDB and as a parameter list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qorestor_vtl::{parse_cdb, parse_mode_select, DeviceKind};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let kind = if mode & 1 == 0 { DeviceKind::Drive } else { DeviceKind::Changer };
    if let Err(s) = parse_cdb(kind, rest) {
        assert_eq!(s.key, qorestor_vtl::sense::ILLEGAL_REQUEST);
        assert_eq!(s.to_fixed().len(), 18);
    }
    if let Ok(list) = parse_mode_select(mode & 2 != 0, rest) {
        let body: usize = list.pages.iter().map(|p| p.body.len()).sum();
        assert!(body <= rest.len());
    }
    if let Ok(writes) = qorestor_vtl::mam::parse_write_attribute(rest) {
        let values: usize = writes.iter().map(|w| w.value.len() + 5).sum();
        assert!(values + 4 <= rest.len());
    }
});
