//! Pack recovery: the input is written to a temporary pack file and `pack::recover` runs on it.
//! It must not panic; when it succeeds the file must be a sealed pack whose footer is what
//! recover returned, and a second recover must change nothing.
//!
//! Input: one mode byte, then
//! - mode 0: the pack file as is;
//! - mode 1: a valid pack header, then records built from (codec byte, length byte, payload)
//!   items with correct CRCs, then the rest of the input as a torn tail;
//! - mode 2: a valid pack header, then the input as is.
//!
//! Inputs over 1 MiB are skipped. Files go to /dev/shm when it exists (recover fsyncs).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use qorestor_core::compress::Codec;
use qorestor_core::test_support::pack::{encode_pack_header, encode_record_header, read_footer, recover, PackState};
use qorestor_core::Fingerprint;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let dir =
            if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.expect("temporary directory");
        let path = dir.path().join("00000001.pack");
        (dir, path)
    })
    .1
}

fn build(mode: u8, rest: &[u8]) -> Vec<u8> {
    match mode % 3 {
        0 => rest.to_vec(),
        1 => {
            let mut b = encode_pack_header(1, 1).to_vec();
            let mut r = rest;
            while r.len() >= 2 {
                let zstd = r[0] & 1 == 1;
                let n = (r[1] as usize).min(r.len() - 2);
                if n == 0 {
                    break;
                }
                let payload = &r[2..2 + n];
                let (codec, raw_len) =
                    if zstd { (Codec::Zstd, n as u32 + 1 + r[0] as u32) } else { (Codec::Raw, n as u32) };
                let fp = Fingerprint::of(payload);
                b.extend_from_slice(&encode_record_header(&fp, raw_len, codec, payload));
                b.extend_from_slice(payload);
                r = &r[2 + n..];
            }
            b.extend_from_slice(r);
            b
        }
        _ => {
            let mut b = encode_pack_header(1, 1).to_vec();
            b.extend_from_slice(rest);
            b
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 1 << 20 {
        return;
    }
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = build(mode, rest);
    let path = scratch();
    std::fs::write(path, &bytes).expect("write scratch pack");
    match recover(path) {
        Ok((_, PackState::Damaged(_))) => {
            assert_eq!(std::fs::read(path).expect("read back"), bytes, "a damaged pack is never modified");
        }
        Ok((entries, _)) => {
            let sealed = std::fs::read(path).expect("read back");
            let f = std::fs::File::open(path).expect("open");
            assert_eq!(read_footer(&f, path).expect("recovered pack is sealed"), entries);
            assert_eq!(recover(path).expect("second recover"), (entries, PackState::Sealed));
            assert_eq!(std::fs::read(path).expect("read back"), sealed);
        }
        Err(_) => {}
    }
});
