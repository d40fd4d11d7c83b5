//! The daemon's control frames (`docs/DAEMON.md`): `decode_request` and `decode_reply` on
//! arbitrary bytes.
//!
//! Input: one byte giving the number of descriptors that came with the frame (mod 32), then
//! the frame. A request accepted must re-encode to the same bytes and keep within the limits
//! `check_request` checks; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qorestor_core::control::{check_request, decode_reply, decode_request, encode_reply, encode_request};

fuzz_target!(|data: &[u8]| {
    let Some((&fds, frame)) = data.split_first() else {
        return;
    };
    if let Ok(request) = decode_request(frame, usize::from(fds % 32)) {
        assert_eq!(encode_request(&request), frame, "an accepted request is canonical");
        assert!(check_request(&request).is_ok());
        assert_eq!(request.fd_count(), usize::from(fds % 32));
    }
    if let Ok(reply) = decode_reply(frame) {
        assert_eq!(encode_reply(reply), frame, "an accepted reply is canonical");
    }
});
