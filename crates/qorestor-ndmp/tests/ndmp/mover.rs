//! The mover: backup and restore through the data connection, end of medium, and a client
//! that disappears mid-backup. Waits are on the server's posts and on the connection closing
//! (blocking reads); their timeouts only bound a hang.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use qorestor_ndmp::client::Client;
use qorestor_ndmp::message::{code, mover_mode, NdmpError};
use qorestor_ndmp::mover::{halt, pause, state};
use qorestor_ndmp::tape::mtio;
use qorestor_ndmp::xdr::{Decoder, Encoder};

use crate::fixture::{data, Fixture, TAPE};

/// Bounds a wait that should end at once: only a hung server reaches it.
const HANG: Duration = Duration::from_secs(60);

/// MOVER_GET_STATE's record number.
fn record_num(c: &mut Client) -> u32 {
    let a = c.call_ok(code::MOVER_GET_STATE, &[]).unwrap();
    Decoder::new(&a.body[24..]).u32("record_num").unwrap()
}

#[test]
fn backup_and_restore_at_two_record_sizes() {
    let f = Fixture::new();
    let mut c = f.client();
    assert_eq!(c.tape_open(TAPE, 1).unwrap().error(), 0);
    c.mtio(mtio::REW, 1).unwrap();
    let small = data(300_000, 1);
    let large = data(1_000_001, 2);
    c.backup(&small, 10240).unwrap();
    c.backup(&large, 65536).unwrap();
    c.mtio(mtio::REW, 1).unwrap();
    let got = c.restore(10240).unwrap();
    assert_eq!(&got[..small.len()], &small[..]);
    assert!(got[small.len()..].iter().all(|&b| b == 0) && got.len().is_multiple_of(10240));
    assert_eq!(c.mtio(mtio::FSF, 1).unwrap().error(), 0);
    let got = c.restore(65536).unwrap();
    assert_eq!(&got[..large.len()], &large[..]);
    assert_eq!(got.len() % 65536, 0);
}

#[test]
fn restore_with_another_record_size_reads_the_blocks_written() {
    let f = Fixture::new();
    let mut c = f.client();
    assert_eq!(c.tape_open(TAPE, 1).unwrap().error(), 0);
    c.mtio(mtio::REW, 1).unwrap();
    let image = data(500_000, 6);
    c.backup(&image, 65536).unwrap();
    c.mtio(mtio::REW, 1).unwrap();
    let got = c.restore(10240).unwrap();
    assert_eq!(&got[..image.len()], &image[..]);
}

#[test]
fn listen_checks_its_arguments_and_the_tape() {
    let f = Fixture::new();
    let mut c = f.client();
    let listen = |c: &mut Client, mode: u32, t: u32| {
        c.call(code::MOVER_LISTEN, Encoder::new().u32(mode).u32(t).as_bytes()).unwrap().error()
    };
    assert_eq!(listen(&mut c, mover_mode::READ, 123), NdmpError::IllegalArgs as u32);
    assert_eq!(listen(&mut c, 7, 1), NdmpError::IllegalArgs as u32);
    assert_eq!(listen(&mut c, mover_mode::READ, 1), NdmpError::DevNotOpen as u32);
    assert_eq!(c.tape_open(TAPE, 0).unwrap().error(), 0);
    // Version 4: mode READ reads the network and writes the tape, so a read-only tape refuses.
    assert_eq!(listen(&mut c, mover_mode::READ, 1), NdmpError::Permission as u32);
    assert_eq!(listen(&mut c, mover_mode::WRITE, 1), 0);
    assert_eq!(c.mover_state().unwrap(), state::LISTEN);
    assert_eq!(
        c.call(code::MOVER_SET_WINDOW, Encoder::new().u64(0).u64(0).as_bytes()).unwrap().error(),
        NdmpError::IllegalState as u32
    );
    assert_eq!(c.call(code::MOVER_STOP, &[]).unwrap().error(), NdmpError::IllegalState as u32);
    c.call_ok(code::MOVER_ABORT, &[]).unwrap();
    assert_eq!(c.mover_state().unwrap(), state::HALTED);
    c.call_ok(code::MOVER_STOP, &[]).unwrap();
    assert_eq!(c.mover_state().unwrap(), state::IDLE);
    assert_eq!(c.call(code::MOVER_CONTINUE, &[]).unwrap().error(), NdmpError::IllegalState as u32);
}

#[test]
fn end_of_medium_pauses_the_mover() {
    let f = Fixture::with_tape_size(1 << 20);
    let mut c = f.client();
    assert_eq!(c.tape_open(TAPE, 1).unwrap().error(), 0);
    c.call_ok(code::MOVER_SET_RECORD_SIZE, Encoder::new().u32(65536).as_bytes()).unwrap();
    c.call_ok(code::MOVER_SET_WINDOW, Encoder::new().u64(0).u64(u64::MAX).as_bytes()).unwrap();
    let addr = c.mover_listen(mover_mode::READ).unwrap();
    let writer = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        // More than the cartridge holds; the write fails once the mover stops reading.
        let _ = s.write_all(&data(3 << 20, 3));
    });
    let paused = c.wait_post(code::NOTIFY_MOVER_PAUSED, HANG).unwrap();
    let log = c.wait_post(code::LOG_MESSAGE, HANG).unwrap();
    assert!(String::from_utf8_lossy(&log).contains("end of medium"));
    assert_eq!(Decoder::new(&paused).u32("reason").unwrap(), pause::EOM);
    assert_eq!(c.mover_state().unwrap(), state::PAUSED);
    c.call_ok(code::MOVER_ABORT, &[]).unwrap();
    let halted = c.wait_post(code::NOTIFY_MOVER_HALTED, HANG).unwrap();
    assert_eq!(Decoder::new(&halted).u32("reason").unwrap(), halt::ABORTED);
    writer.join().unwrap();
}

#[test]
fn a_client_gone_mid_backup_leaves_a_readable_tape_and_a_free_drive() {
    let f = Fixture::new();
    let record = 10240usize;
    let sent = data(record * 50 + 777, 4);
    {
        let mut c = f.client();
        assert_eq!(c.tape_open(TAPE, 1).unwrap().error(), 0);
        c.mtio(mtio::REW, 1).unwrap();
        c.call_ok(code::MOVER_SET_RECORD_SIZE, Encoder::new().u32(record as u32).as_bytes()).unwrap();
        let addr = c.mover_listen(mover_mode::READ).unwrap();
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&sent).unwrap();
        // Wait until the mover wrote the 50 whole records (NDMP posts nothing per record:
        // ask), then vanish without closing the data connection (the partial record never
        // completes). The server closes the control connection once the session has ended.
        let end = Instant::now() + HANG;
        while record_num(&mut c) < 50 {
            assert!(Instant::now() < end, "the mover wrote {} of 50 records", record_num(&mut c));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(record_num(&mut c), 50);
        c.hang_up().unwrap();
        std::mem::forget(s);
    }
    // The drive is free at once.
    let mut c = f.client();
    assert_eq!(c.tape_open(TAPE, 0).unwrap().error(), 0, "the drive stayed busy");
    c.mtio(mtio::REW, 1).unwrap();
    let mut got = Vec::new();
    loop {
        let a = c.call(code::TAPE_READ, Encoder::new().u32(record as u32).as_bytes()).unwrap();
        let d = &mut Decoder::new(&a.body);
        if d.u32("error").unwrap() != 0 {
            break;
        }
        got.extend_from_slice(d.opaque("data", record).unwrap());
    }
    assert_eq!(got, &sent[..record * 50]);
}

#[test]
fn mover_connect_reaches_a_listening_data_service() {
    let f = Fixture::new();
    let mut c = f.client();
    assert_eq!(c.tape_open(TAPE, 1).unwrap().error(), 0);
    c.mtio(mtio::REW, 1).unwrap();
    let service = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = service.local_addr().unwrap().port();
    let image = data(100_000, 5);
    let sent = image.clone();
    let feeder = std::thread::spawn(move || {
        let (mut s, _) = service.accept().unwrap();
        s.write_all(&sent).unwrap();
    });
    let addr =
        Encoder::new().u32(mover_mode::READ).u32(1).u32(1).u32(0x7F00_0001).u32(port as u32).u32(0).as_bytes().to_vec();
    c.call_ok(code::MOVER_CONNECT, &addr).unwrap();
    feeder.join().unwrap();
    let halted = c.wait_post(code::NOTIFY_MOVER_HALTED, HANG).unwrap();
    assert_eq!(Decoder::new(&halted).u32("reason").unwrap(), halt::CONNECT_CLOSED);
    c.call_ok(code::MOVER_STOP, &[]).unwrap();
    c.mtio(mtio::EOF, 1).unwrap();
    c.mtio(mtio::REW, 1).unwrap();
    let got = c.restore(10240).unwrap();
    assert_eq!(&got[..image.len()], &image[..]);
}

#[test]
fn a_backup_spans_cartridges_through_end_of_medium_pauses() {
    let f = Fixture::with_tape_size(1 << 20);
    let vtl = f.libraries.get("lib").unwrap().clone();
    let record = 65536usize;
    let image = data(3 << 20, 7);
    let mut c = f.client();
    assert_eq!(c.tape_open(TAPE, 1).unwrap().error(), 0);
    c.call_ok(code::MOVER_SET_RECORD_SIZE, Encoder::new().u32(record as u32).as_bytes()).unwrap();
    c.call_ok(code::MOVER_SET_WINDOW, Encoder::new().u64(0).u64(u64::MAX).as_bytes()).unwrap();
    let addr = c.mover_listen(mover_mode::READ).unwrap();
    let sent = image.clone();
    let writer = std::thread::spawn(move || TcpStream::connect(addr).unwrap().write_all(&sent).unwrap());
    let mut tapes = vec!["QS0001L5".to_string()];
    loop {
        // Wait for a pause (tape full) or the halt (all data written).
        let (post, _) = c.wait_any_post(&[code::NOTIFY_MOVER_PAUSED, code::NOTIFY_MOVER_HALTED], HANG).unwrap();
        if post == code::NOTIFY_MOVER_HALTED {
            assert_eq!(c.mover_state().unwrap(), state::HALTED);
            break;
        }
        assert_eq!(c.mover_state().unwrap(), state::PAUSED);
        // Change tapes as a DMA does: close, unload, load the next, open, window, continue.
        c.call_ok(code::TAPE_CLOSE, &[]).unwrap();
        vtl.unload(0).unwrap();
        let next = format!("QS000{}L5", tapes.len() + 1);
        vtl.load(&next, 0).unwrap();
        tapes.push(next);
        assert_eq!(c.tape_open(TAPE, 1).unwrap().error(), 0);
        let a = c.call_ok(code::MOVER_GET_STATE, &[]).unwrap();
        let at = Decoder::new(&a.body[24..]).u32("record_num").unwrap() as u64 * record as u64;
        c.call_ok(code::MOVER_SET_WINDOW, Encoder::new().u64(at).u64(u64::MAX).as_bytes()).unwrap();
        c.call_ok(code::MOVER_CONTINUE, &[]).unwrap();
    }
    writer.join().unwrap();
    assert!(tapes.len() >= 3, "3 MiB on 1 MiB cartridges took {} tapes", tapes.len());
    c.call_ok(code::MOVER_STOP, &[]).unwrap();
    c.call_ok(code::TAPE_CLOSE, &[]).unwrap();
    // Read the cartridges back in order: together they hold the image.
    let mut got = Vec::new();
    for bc in &tapes {
        vtl.unload(0).unwrap();
        vtl.load(bc, 0).unwrap();
        assert_eq!(c.tape_open(TAPE, 0).unwrap().error(), 0);
        loop {
            let a = c.call(code::TAPE_READ, Encoder::new().u32(record as u32).as_bytes()).unwrap();
            let d = &mut Decoder::new(&a.body);
            if d.u32("error").unwrap() != 0 {
                break;
            }
            got.extend_from_slice(d.opaque("data", record).unwrap());
        }
        c.call_ok(code::TAPE_CLOSE, &[]).unwrap();
    }
    assert_eq!(&got[..image.len()], &image[..]);
    assert!(got[image.len()..].iter().all(|&b| b == 0));
}
