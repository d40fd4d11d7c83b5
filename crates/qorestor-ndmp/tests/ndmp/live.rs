//! Live reconfiguration: a library deleted from the live registry while the server runs ends
//! the sessions that have one of its devices open (NOTIFY_CONNECTION_STATUS SHUTDOWN, then
//! the connection closed) and releases their devices at once; sessions on another library and
//! sessions with nothing open carry on; the deleted device names are no longer found; a backup
//! running through the mover is halted and its data connection closed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use qorestor_core::DEFAULT_GROUP;
use qorestor_ndmp::client::Client;
use qorestor_ndmp::message::{code, mover_mode, NdmpError};
use qorestor_ndmp::mover::{halt, state};
use qorestor_ndmp::xdr::{Decoder, Encoder};
use qorestor_vtl::LibraryConfig;

use crate::fixture::{data, Fixture, TAPE};

const RDWR: u32 = 1;
/// NOTIFY_CONNECTION_STATUS reason SHUTDOWN.
const SHUTDOWN: u32 = 1;
/// Bounds a hang only: the post is sent as the deletion returns.
const HANG: Duration = Duration::from_secs(30);

fn scsi_open(c: &mut Client, device: &str) -> u32 {
    c.call(code::SCSI_OPEN, Encoder::new().string(device).as_bytes()).unwrap().error()
}

fn tape_write(c: &mut Client, seed: u64) -> u32 {
    c.call(code::TAPE_WRITE, Encoder::new().opaque(&data(512, seed)).as_bytes()).unwrap().error()
}

/// Library `other` with a cartridge in drive 0, beside the fixture's `lib`.
fn other_library(f: &Fixture) {
    let config = LibraryConfig { slots: 4, drives: 1, ie_slots: 0, tapes: 2, tape_size: 1 << 30 };
    let other = f.libraries.create("other", DEFAULT_GROUP, &config).unwrap();
    let barcode = other.info().unwrap().slots.into_iter().find_map(|s| s.barcode).unwrap();
    other.load(&barcode, 0).unwrap();
}

/// Waits for the session's NOTIFY_CONNECTION_STATUS SHUTDOWN and then the connection's end;
/// returns the post's text.
fn ended(mut c: Client) -> String {
    let post = c.wait_post(code::NOTIFY_CONNECTION_STATUS, HANG).unwrap();
    let d = &mut Decoder::new(&post);
    assert_eq!(d.u32("reason").unwrap(), SHUTDOWN);
    d.u32("protocol_version").unwrap();
    let text = d.string("text_reason", 4096).unwrap();
    c.hang_up().expect("the server closes the connection");
    text
}

#[test]
fn deleting_a_library_ends_the_sessions_with_its_devices_open_and_no_other() {
    let f = Fixture::new();
    other_library(&f);
    // On the library to be deleted: a drive open (with the other library's changer), and its
    // changer open in another session.
    let mut tape = f.client();
    assert_eq!(tape.tape_open(TAPE, RDWR).unwrap().error(), 0);
    assert_eq!(tape_write(&mut tape, 1), 0);
    assert_eq!(scsi_open(&mut tape, "other/changer"), 0);
    let mut robot = f.client();
    assert_eq!(scsi_open(&mut robot, "lib/changer"), 0);
    // On the other library, and with nothing open.
    let mut on_other = f.client();
    assert_eq!(on_other.tape_open("other/tape0", RDWR).unwrap().error(), 0);
    assert_eq!(tape_write(&mut on_other, 2), 0);
    let mut listing = f.client();

    f.libraries.delete("lib", true).unwrap();

    // The deleted library's device names are gone.
    let mut next = f.client();
    assert_eq!(next.tape_open(TAPE, RDWR).unwrap().error(), NdmpError::NoDevice as u32);
    assert_eq!(scsi_open(&mut next, "lib/changer"), NdmpError::NoDevice as u32);
    // Every device of the ended sessions is free once the deletion returns.
    assert_eq!(scsi_open(&mut next, "other/changer"), 0, "the ended session's other device stayed open");
    // What the DMA of an ended session sees: SHUTDOWN naming the library, then the close.
    for c in [tape, robot] {
        let text = ended(c);
        assert!(text.contains("library lib "), "{text}");
    }
    // The other sessions carry on.
    assert_eq!(tape_write(&mut on_other, 3), 0);
    on_other.call_ok(code::TAPE_CLOSE, &[]).unwrap();
    let tapes = listing.call_ok(code::CONFIG_GET_TAPE_INFO, &[]).unwrap();
    let listed = String::from_utf8_lossy(&tapes.body);
    assert!(listed.contains("other/tape0") && !listed.contains(TAPE), "{listed}");
}

#[test]
fn a_library_created_again_under_a_deleted_name_opens_its_drive_free() {
    let f = Fixture::new();
    let mut old = f.client();
    assert_eq!(old.tape_open(TAPE, RDWR).unwrap().error(), 0);
    f.libraries.delete("lib", true).unwrap();
    // Created again before the old session's connection has even been read from: its drive
    // name was released by the deletion, not left to the ending session.
    let config = LibraryConfig { slots: 4, drives: 1, ie_slots: 0, tapes: 2, tape_size: 1 << 30 };
    let lib = f.libraries.create("lib", DEFAULT_GROUP, &config).unwrap();
    let barcode = lib.info().unwrap().slots.into_iter().find_map(|s| s.barcode).unwrap();
    lib.load(&barcode, 0).unwrap();
    let mut new = f.client();
    assert_eq!(new.tape_open(TAPE, RDWR).unwrap().error(), 0);
    assert!(ended(old).contains("library lib "));
    // The old session's end did not take the new session's claim with it.
    let mut third = f.client();
    assert_eq!(third.tape_open(TAPE, RDWR).unwrap().error(), NdmpError::DeviceBusy as u32);
    assert_eq!(tape_write(&mut new, 4), 0);
}

#[test]
fn a_backup_running_on_a_deleted_library_is_halted_and_its_session_ended() {
    let f = Fixture::new();
    let mut c = f.client();
    assert_eq!(c.tape_open(TAPE, RDWR).unwrap().error(), 0);
    c.call_ok(code::MOVER_SET_RECORD_SIZE, Encoder::new().u32(10240).as_bytes()).unwrap();
    c.call_ok(code::MOVER_SET_WINDOW, Encoder::new().u64(0).u64(u64::MAX).as_bytes()).unwrap();
    let addr = c.mover_listen(mover_mode::READ).unwrap();
    let mut data_conn = TcpStream::connect(addr).unwrap();
    // MOVER_GET_STATE takes the waiting data connection before it answers.
    assert_eq!(c.mover_state().unwrap(), state::ACTIVE);
    data_conn.write_all(&data(3 * 10240, 5)).unwrap();

    f.libraries.delete("lib", true).unwrap();

    let halted = c.wait_post(code::NOTIFY_MOVER_HALTED, HANG).unwrap();
    let reason = Decoder::new(&halted).u32("reason").unwrap();
    assert!([halt::ABORTED, halt::MEDIA_ERROR].contains(&reason), "halted with {reason}");
    assert!(ended(c).contains("library lib "));
    // The data connection is closed by the server too.
    data_conn.set_read_timeout(Some(HANG)).unwrap();
    let mut rest = Vec::new();
    match data_conn.read_to_end(&mut rest) {
        Ok(n) => assert_eq!(n, 0),
        // A reset is a close too (the server had unread bytes of ours); a timeout is not.
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "the data connection stayed open: {e}"),
    }
}
