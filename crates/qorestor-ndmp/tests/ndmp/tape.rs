//! The tape service's positioning rules, as ndmjob's T-WRITE, T-READ and T-MTIO series check
//! them (v4, and v3's SCSI positions): records and filemarks, file and block numbers from
//! TAPE_GET_STATE (the block number unknown after moving back over a filemark, as real drives
//! report it), residual counts at BOT, at a filemark and at end of data.

use qorestor_ndmp::client::Client;
use qorestor_ndmp::message::{code, NdmpError};
use qorestor_ndmp::tape::mtio;
use qorestor_ndmp::xdr::{Decoder, Encoder};

use crate::fixture::{data, Fixture, TAPE};

/// (records, record size) of each tape file.
const SERIES: &[(u32, usize)] = &[(1, 512), (20, 1024), (1, 512), (20, 139), (3, 32768)];

fn record(file: usize, rec: u32, size: usize) -> Vec<u8> {
    data(size, (file as u64) << 32 | rec as u64)
}

/// (error, residual count).
fn mt(c: &mut Client, op: u32, count: u32) -> (u32, u32) {
    let a = c.mtio(op, count).unwrap();
    let d = &mut Decoder::new(&a.body);
    (d.u32("error").unwrap(), d.u32("resid").unwrap())
}

/// The invalid (v3) / unsupported (v4) bit of the block number.
const BLOCKNO_UNKNOWN: u32 = 0x8;

/// (file number, block number; `None` when reported unknown: the bit set and the value
/// `0xFFFFFFFF`, both, as ndmjob accepts either and older DMAs look at one or the other).
fn position(c: &mut Client) -> (u32, Option<u32>) {
    let a = c.call(code::TAPE_GET_STATE, &[]).unwrap();
    let d = &mut Decoder::new(&a.body);
    let unknown = d.u32("unsupported").unwrap();
    assert_eq!(d.u32("error").unwrap(), 0);
    d.u32("flags").unwrap();
    let file = d.u32("file_num").unwrap();
    d.u32("soft_errors").unwrap();
    d.u32("block_size").unwrap();
    let blockno = d.u32("blockno").unwrap();
    assert_eq!(unknown & BLOCKNO_UNKNOWN != 0, blockno == u32::MAX, "bits {unknown:#x}, blockno {blockno:#x}");
    (file, (blockno != u32::MAX).then_some(blockno))
}

/// Writes [`SERIES`] from BOT: each file's records, then a filemark (T-WRITE).
fn write_series(c: &mut Client) {
    assert_eq!(c.tape_open(TAPE, 1).unwrap().error(), 0);
    assert_eq!(mt(c, mtio::REW, 1), (0, 0));
    for (file, &(n, size)) in SERIES.iter().enumerate() {
        for r in 0..n {
            assert_eq!(write(c, &record(file, r, size)), 0);
        }
        assert_eq!(mt(c, mtio::EOF, 1), (0, 0));
        assert_eq!(position(c), (file as u32 + 1, Some(0)));
    }
    c.call_ok(code::TAPE_CLOSE, &[]).unwrap();
}

/// (error, data).
fn read(c: &mut Client, count: u32) -> (u32, Vec<u8>) {
    let a = c.call(code::TAPE_READ, Encoder::new().u32(count).as_bytes()).unwrap();
    let d = &mut Decoder::new(&a.body);
    (d.u32("error").unwrap(), d.opaque("data", 1 << 20).unwrap().to_vec())
}

fn write(c: &mut Client, bytes: &[u8]) -> u32 {
    c.call(code::TAPE_WRITE, Encoder::new().opaque(bytes).as_bytes()).unwrap().error()
}

const EOF_ERR: u32 = NdmpError::Eof as u32;
const EOM_ERR: u32 = NdmpError::Eom as u32;

#[test]
fn blank_tape_and_one_filemark() {
    let f = Fixture::new();
    let mut c = f.client();
    assert_eq!(c.tape_open(TAPE, 1).unwrap().error(), 0);
    assert_eq!(mt(&mut c, mtio::REW, 1), (0, 0));
    assert_eq!(mt(&mut c, mtio::BSR, 100), (0, 100));
    assert_eq!(mt(&mut c, mtio::BSF, 100), (0, 100));
    assert_eq!(read(&mut c, 1024).0, EOM_ERR);
    assert_eq!(mt(&mut c, mtio::EOF, 1), (0, 0));
    assert_eq!(mt(&mut c, mtio::BSF, 100), (0, 99));
    assert_eq!(mt(&mut c, mtio::FSF, 100), (0, 99));
    assert_eq!(read(&mut c, 1024).0, EOM_ERR);
    // One record and no filemark: spacing stops at end of data.
    assert_eq!(mt(&mut c, mtio::REW, 1), (0, 0));
    assert_eq!(write(&mut c, &[9; 512]), 0);
    assert_eq!(mt(&mut c, mtio::BSR, 100), (0, 99));
    assert_eq!(mt(&mut c, mtio::FSR, 100), (0, 99));
    assert_eq!(mt(&mut c, mtio::FSR, 100), (0, 100));
    assert_eq!(mt(&mut c, mtio::FSF, 100), (0, 100));
}

#[test]
fn write_read_and_seek_series() {
    let f = Fixture::new();
    let mut c = f.client();
    write_series(&mut c);

    // T-READ: every record, a read larger than the record returns the record; the filemark
    // is EOF_ERR and leaves the position before it, having stepped back over it: the block
    // number is unknown until the FSF over the filemark.
    assert_eq!(c.tape_open(TAPE, 0).unwrap().error(), 0);
    assert_eq!(mt(&mut c, mtio::REW, 1), (0, 0));
    for (file, &(n, size)) in SERIES.iter().enumerate() {
        for r in 0..n {
            let (err, got) = read(&mut c, 65536);
            assert_eq!(err, 0);
            assert_eq!(got, record(file, r, size), "file {file} record {r}");
            assert_eq!(position(&mut c), (file as u32, Some(r + 1)));
        }
        assert_eq!(read(&mut c, size as u32).0, EOF_ERR);
        assert_eq!(position(&mut c), (file as u32, None));
        assert_eq!(mt(&mut c, mtio::FSF, 1), (0, 0));
        assert_eq!(position(&mut c), (file as u32 + 1, Some(0)));
    }
    assert_eq!(read(&mut c, 1024).0, EOM_ERR);

    // T-MTIO: seek around each file.
    for (file, &(n, size)) in SERIES.iter().enumerate() {
        let file_u = file as u32;
        assert_eq!(mt(&mut c, mtio::REW, 1), (0, 0));
        assert_eq!(position(&mut c), (0, Some(0)));
        assert_eq!(mt(&mut c, mtio::FSF, file_u), (0, 0));
        assert_eq!(position(&mut c), (file_u, Some(0)));
        // FSR stops before the filemark, on this file's last record boundary, having stepped
        // back over it: the block number is unknown (ndmjob expects n or unknown).
        assert_eq!(mt(&mut c, mtio::FSR, 1_000_000), (0, 1_000_000 - n));
        assert_eq!(position(&mut c), (file_u, None));
        // BSR stops after the previous filemark (stepping forward over it again), at this
        // file's start, block 0 again.
        assert_eq!(mt(&mut c, mtio::BSR, 1_000_000), (0, 1_000_000 - n));
        assert_eq!(position(&mut c), (file_u, Some(0)));
        assert_eq!(mt(&mut c, mtio::FSR, 0), (0, 0));
        let half = n / 2;
        assert_eq!(mt(&mut c, mtio::FSR, half), (0, 0));
        assert_eq!(position(&mut c), (file_u, Some(half)));
        let (err, got) = read(&mut c, size as u32);
        assert_eq!((err, got), (0, record(file, half, size)));
        if half + 1 > 1 {
            assert_eq!(mt(&mut c, mtio::BSR, 2), (0, 0));
            assert_eq!(position(&mut c), (file_u, Some(half - 1)));
            assert_eq!(read(&mut c, size as u32), (0, record(file, half - 1, size)));
        }
    }
    // A short read returns the first bytes of the record.
    assert_eq!(mt(&mut c, mtio::REW, 1), (0, 0));
    assert_eq!(mt(&mut c, mtio::FSF, 1), (0, 0));
    assert_eq!(read(&mut c, 100), (0, record(1, 0, 1024)[..100].to_vec()));
    // A read over the largest transfer is refused.
    assert_eq!(read(&mut c, 0x8000_0000).0, NdmpError::IllegalArgs as u32);
}

#[test]
fn version_3_keeps_scsi_positions() {
    let f = Fixture::new();
    let mut c = qorestor_ndmp::client::Client::connect(f.addr).unwrap();
    assert_eq!(c.login_version(3, crate::fixture::USER, crate::fixture::PASSWORD).unwrap().error(), 0);
    assert_eq!(c.tape_open(TAPE, 1).unwrap().error(), 0);
    assert_eq!(mt(&mut c, mtio::REW, 1), (0, 0));
    for r in 0..3 {
        assert_eq!(write(&mut c, &record(0, r, 512)), 0);
    }
    assert_eq!(mt(&mut c, mtio::EOF, 1), (0, 0));
    assert_eq!(write(&mut c, &record(1, 0, 512)), 0);
    assert_eq!(mt(&mut c, mtio::REW, 1), (0, 0));
    // FSR over the filemark ends after it, in the next file.
    assert_eq!(mt(&mut c, mtio::FSR, 10), (0, 7));
    assert_eq!(position(&mut c).0, 1);
    assert_eq!(read(&mut c, 512), (0, record(1, 0, 512)));
    // End of data reads as EOF_ERR in version 3.
    assert_eq!(read(&mut c, 512).0, EOF_ERR);
    // v3 TAPE_GET_STATE ends with a partition word: 12 words in all.
    let a = c.call(code::TAPE_GET_STATE, &[]).unwrap();
    assert_eq!(a.body.len(), 12 * 4);
    // v3 MOVER_GET_STATE has no mode: error, state... and a LOCAL address, 17 words.
    let a = c.call_ok(code::MOVER_GET_STATE, &[]).unwrap();
    assert_eq!(a.body.len(), 17 * 4);
    // A read that meets a filemark ends after it: the next read is the next file's record.
    assert_eq!(mt(&mut c, mtio::REW, 1), (0, 0));
    assert_eq!(mt(&mut c, mtio::FSR, 3), (0, 0));
    assert_eq!(read(&mut c, 512).0, EOF_ERR);
    assert_eq!(read(&mut c, 512), (0, record(1, 0, 512)));
}

#[test]
fn version_3_block_number_is_unknown_after_moving_back_over_a_filemark() {
    let f = Fixture::new();
    let mut c = Client::connect(f.addr).unwrap();
    assert_eq!(c.login_version(3, crate::fixture::USER, crate::fixture::PASSWORD).unwrap().error(), 0);
    write_series(&mut c);
    assert_eq!(c.tape_open(TAPE, 0).unwrap().error(), 0);
    // T-READ in v3: a read that meets the filemark ends after it, block 0 of the next file.
    assert_eq!(mt(&mut c, mtio::REW, 1), (0, 0));
    for (file, &(n, size)) in SERIES.iter().enumerate() {
        assert_eq!(mt(&mut c, mtio::FSR, n), (0, 0));
        assert_eq!(read(&mut c, size as u32).0, EOF_ERR);
        assert_eq!(position(&mut c), (file as u32 + 1, Some(0)));
    }
    // T-MTIO in v3, as ndmjob runs it on each file.
    for (file, &(n, _)) in SERIES.iter().enumerate() {
        let file_u = file as u32;
        assert_eq!(mt(&mut c, mtio::REW, 1), (0, 0));
        assert_eq!(mt(&mut c, mtio::FSF, file_u), (0, 0));
        // FSR over the filemark ends after it: the next file's block 0.
        assert_eq!(mt(&mut c, mtio::FSR, 1_000_000), (0, 1_000_000 - n));
        assert_eq!(position(&mut c), (file_u + 1, Some(0)));
        // "bsf 1 after fsr(1m)": back over the filemark, block unknown.
        assert_eq!(mt(&mut c, mtio::BSF, 1), (0, 0));
        assert_eq!(position(&mut c), (file_u, None));
        // Spacing records within the file leaves it unknown, unless that reaches BOT.
        assert_eq!(mt(&mut c, mtio::BSR, 1), (0, 0));
        let at_bot = file == 0 && n == 1;
        assert_eq!(position(&mut c), (file_u, at_bot.then_some(0)));
        assert_eq!(mt(&mut c, mtio::FSR, 1), (0, 0));
        assert_eq!(position(&mut c), (file_u, at_bot.then_some(1)));
        // BSR(1m) ends on the BOT side of the previous filemark (still unknown), or at BOT.
        assert_eq!(mt(&mut c, mtio::BSR, 1_000_000), (0, 1_000_000 - n));
        if file > 0 {
            assert_eq!(position(&mut c), (file_u - 1, None));
            assert_eq!(mt(&mut c, mtio::FSF, 1), (0, 0));
        }
        assert_eq!(position(&mut c), (file_u, Some(0)));
    }
    // BSF from the middle of a file to BOT: BOT is block 0.
    assert_eq!(mt(&mut c, mtio::REW, 1), (0, 0));
    assert_eq!(mt(&mut c, mtio::FSF, 1), (0, 0));
    assert_eq!(mt(&mut c, mtio::FSR, 3), (0, 0));
    assert_eq!(mt(&mut c, mtio::BSF, 5), (0, 4));
    assert_eq!(position(&mut c), (0, Some(0)));
    // Writing filemarks ends in the next file at block 0; a new open starts known.
    c.call_ok(code::TAPE_CLOSE, &[]).unwrap();
    assert_eq!(c.tape_open(TAPE, 1).unwrap().error(), 0);
    assert_eq!(mt(&mut c, mtio::FSF, 2), (0, 0));
    assert_eq!(mt(&mut c, mtio::BSF, 1), (0, 0));
    assert_eq!(position(&mut c), (1, None));
    assert_eq!(mt(&mut c, mtio::EOF, 1), (0, 0));
    assert_eq!(position(&mut c), (2, Some(0)));
}

#[test]
fn tape_execute_cdb_reaches_the_drive() {
    let f = Fixture::new();
    let mut c = f.client();
    let cdb = |c: &mut Client, cdb: &[u8], datain: u32| {
        let body = Encoder::new().u32(1).u32(10_000).u32(datain).opaque(cdb).opaque(&[]).as_bytes().to_vec();
        let a = c.call(code::TAPE_EXECUTE_CDB, &body).unwrap();
        let d = &mut Decoder::new(&a.body);
        let err = d.u32("error").unwrap();
        let status = d.u32("status").unwrap();
        d.u32("dataout_len").unwrap();
        (err, status, d.opaque("datain", 1024).unwrap().to_vec())
    };
    assert_eq!(cdb(&mut c, &[0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0], 20).0, NdmpError::DevNotOpen as u32);
    assert_eq!(c.tape_open(TAPE, 1).unwrap().error(), 0);
    assert_eq!(mt(&mut c, mtio::REW, 1), (0, 0));
    assert_eq!(write(&mut c, &[5; 512]), 0);
    // READ POSITION (short form): block 1, not at BOP.
    let (err, status, data) = cdb(&mut c, &[0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0], 20);
    assert_eq!((err, status), (0, 0));
    assert_eq!(data.len(), 20);
    assert_eq!(&data[4..8], &1u32.to_be_bytes());
    // A CDB the drive refuses: CHECK CONDITION with sense data.
    let body = Encoder::new().u32(1).u32(0).u32(0).opaque(&[0xFF, 0, 0, 0, 0, 0]).opaque(&[]).as_bytes().to_vec();
    let a = c.call_ok(code::TAPE_EXECUTE_CDB, &body).unwrap();
    let d = &mut Decoder::new(&a.body);
    d.u32("error").unwrap();
    assert_eq!(d.u32("status").unwrap(), 2);
    d.u32("dataout_len").unwrap();
    d.opaque("datain", 0).unwrap();
    assert_eq!(d.opaque("sense", 64).unwrap()[2] & 0x0F, 5);
    // SPACE back over a filemark through a CDB: the block number becomes unknown; REWIND
    // makes it known again.
    assert_eq!(mt(&mut c, mtio::EOF, 2), (0, 0));
    assert_eq!(position(&mut c), (2, Some(0)));
    assert_eq!(cdb(&mut c, &[0x11, 1, 0xFF, 0xFF, 0xFF, 0], 0).1, 0);
    assert_eq!(position(&mut c), (1, None));
    assert_eq!(cdb(&mut c, &[0x01, 0, 0, 0, 0, 0], 0).1, 0);
    assert_eq!(position(&mut c), (0, Some(0)));
}
