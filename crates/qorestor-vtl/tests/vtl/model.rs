//! A model-based property test: random sequences of WRITE, WRITE FILEMARKS, REWIND, SPACE,
//! LOCATE, READ, READ POSITION and crash/restart against a simple in-memory reference tape,
//! comparing status, sense (key, ASC, ASCQ, FILEMARK/EOM/ILI, INFORMATION) and data.

use proptest::prelude::*;
use qorestor_vtl::ScsiResponse;

use super::cdbs::*;
use super::{bytes, Lib};

#[derive(Debug, Clone)]
enum Op {
    Write(u32, u64),
    Filemarks(u32),
    Rewind,
    SpaceBlocks(i32),
    SpaceFilemarks(i32),
    SpaceEod,
    Locate(u32),
    Read(u32, bool),
    Position,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u32..3000, any::<u64>()).prop_map(|(n, s)| Op::Write(n, s)),
        2 => (0u32..3).prop_map(Op::Filemarks),
        1 => Just(Op::Rewind),
        2 => (-4i32..5).prop_map(Op::SpaceBlocks),
        2 => (-3i32..4).prop_map(Op::SpaceFilemarks),
        1 => Just(Op::SpaceEod),
        2 => (0u32..25).prop_map(Op::Locate),
        5 => (0u32..3500, any::<bool>()).prop_map(|(n, s)| Op::Read(n, s)),
        1 => Just(Op::Position),
        1 => Just(Op::Crash),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum Obj {
    Block(Vec<u8>),
    Mark,
}

/// Key, ASC, ASCQ, FILEMARK, EOM, ILI, INFORMATION.
type SenseFields = (u8, u8, u8, bool, bool, bool, Option<i32>);

/// What a command should return.
#[derive(Debug, PartialEq)]
struct Expect {
    /// `None` for GOOD, else (key, asc, ascq, filemark, eom, ili, info).
    sense: Option<SenseFields>,
    data: Vec<u8>,
}

fn good(data: Vec<u8>) -> Expect {
    Expect { sense: None, data }
}

fn cond(key: u8, asc: u8, ascq: u8, flags: (bool, bool, bool), info: Option<i32>, data: Vec<u8>) -> Expect {
    Expect { sense: Some((key, asc, ascq, flags.0, flags.1, flags.2, info)), data }
}

fn observed(r: &ScsiResponse) -> Expect {
    let sense = (r.status != 0).then(|| {
        let (k, a, q) = r.sense_code();
        let (f, e, i) = r.sense_flags();
        (k, a, q, f, e, i, r.sense_info())
    });
    Expect { sense, data: r.data_in.clone() }
}

/// The reference: a list of objects, a position, and the state at the last durable point.
#[derive(Default)]
struct Tape {
    objs: Vec<Obj>,
    pos: usize,
    durable: Vec<Obj>,
}

impl Tape {
    fn apply(&mut self, op: &Op) -> Expect {
        // Every command but WRITE and READ POSITION is a durable point (before it acts).
        if !matches!(op, Op::Write(..) | Op::Position | Op::Crash) {
            self.durable = self.objs.clone();
        }
        let n = self.objs.len();
        let none = (false, false, false);
        match *op {
            Op::Write(0, _) => good(vec![]),
            Op::Write(len, seed) => {
                self.objs.truncate(self.pos);
                self.objs.push(Obj::Block(bytes(seed, len as usize)));
                self.pos += 1;
                good(vec![])
            }
            Op::Filemarks(c) => {
                if c > 0 {
                    self.objs.truncate(self.pos);
                    for _ in 0..c {
                        self.objs.push(Obj::Mark);
                    }
                    self.pos += c as usize;
                    self.durable = self.objs.clone();
                }
                good(vec![])
            }
            Op::Rewind => {
                self.pos = 0;
                good(vec![])
            }
            Op::SpaceEod => {
                self.pos = n;
                good(vec![])
            }
            Op::SpaceBlocks(c) if c >= 0 => {
                for i in 0..c {
                    if self.pos == n {
                        return cond(8, 0, 5, none, Some(c - i), vec![]);
                    }
                    self.pos += 1;
                    if self.objs[self.pos - 1] == Obj::Mark {
                        return cond(0, 0, 1, (true, false, false), Some(c - i), vec![]);
                    }
                }
                good(vec![])
            }
            Op::SpaceBlocks(c) => {
                let c = -c;
                for i in 0..c {
                    if self.pos == 0 {
                        return cond(0, 0, 4, (false, true, false), Some(-(c - i)), vec![]);
                    }
                    self.pos -= 1;
                    if self.objs[self.pos] == Obj::Mark {
                        return cond(0, 0, 1, (true, false, false), Some(-(c - i)), vec![]);
                    }
                }
                good(vec![])
            }
            Op::SpaceFilemarks(c) if c >= 0 => {
                let mut done = 0;
                while done < c {
                    if self.pos == n {
                        return cond(8, 0, 5, none, Some(c - done), vec![]);
                    }
                    if self.objs[self.pos] == Obj::Mark {
                        done += 1;
                    }
                    self.pos += 1;
                }
                good(vec![])
            }
            Op::SpaceFilemarks(c) => {
                let c = -c;
                let mut done = 0;
                while done < c {
                    if self.pos == 0 {
                        return cond(0, 0, 4, (false, true, false), Some(-(c - done)), vec![]);
                    }
                    self.pos -= 1;
                    if self.objs[self.pos] == Obj::Mark {
                        done += 1;
                    }
                }
                good(vec![])
            }
            Op::Locate(x) => {
                if x as usize <= n {
                    self.pos = x as usize;
                    good(vec![])
                } else {
                    self.pos = n;
                    cond(8, 0, 5, none, None, vec![])
                }
            }
            Op::Read(0, _) => good(vec![]),
            Op::Read(len, sili) => {
                if self.pos == n {
                    return cond(8, 0, 5, none, Some(len as i32), vec![]);
                }
                self.pos += 1;
                match &self.objs[self.pos - 1] {
                    Obj::Mark => cond(0, 0, 1, (true, false, false), Some(len as i32), vec![]),
                    Obj::Block(b) => {
                        let data = b[..b.len().min(len as usize)].to_vec();
                        if b.len() == len as usize || (b.len() < len as usize && sili) {
                            good(data)
                        } else {
                            cond(0, 0, 0, (false, false, true), Some(len as i32 - b.len() as i32), data)
                        }
                    }
                }
            }
            Op::Position => {
                let mut d = vec![0u8; 20];
                d[0] = if self.pos == 0 { 0x80 } else { 0 };
                d[4..8].copy_from_slice(&(self.pos as u32).to_be_bytes());
                d[8..12].copy_from_slice(&(self.pos as u32).to_be_bytes());
                good(d)
            }
            Op::Crash => {
                self.objs = self.durable.clone();
                self.pos = 0;
                good(vec![])
            }
        }
    }
}

fn run(l: &mut Lib, op: &Op) -> Expect {
    let r = match *op {
        Op::Write(len, seed) => l.cmd(1, &write6(false, len), &bytes(seed, len as usize)),
        Op::Filemarks(c) => l.cmd(1, &write_filemarks(c, false), &[]),
        Op::Rewind => l.cmd(1, &rewind(), &[]),
        Op::SpaceBlocks(c) => l.cmd(1, &space6(0, c), &[]),
        Op::SpaceFilemarks(c) => l.cmd(1, &space16(1, c as i64), &[]),
        Op::SpaceEod => l.cmd(1, &space6(3, 0), &[]),
        Op::Locate(x) => l.cmd(1, &locate10(x), &[]),
        Op::Read(len, sili) => l.cmd(1, &read6(false, sili, len), &[]),
        Op::Position => l.cmd(1, &read_position(0), &[]),
        Op::Crash => {
            l.crash_and_reopen();
            l.settle(1);
            return good(vec![]);
        }
    };
    observed(&r)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn the_drive_behaves_like_the_reference_tape(ops in proptest::collection::vec(op(), 1..40)) {
        let mut l = Lib::small(100_000_000_000).loaded("QS0001L5");
        let mut tape = Tape::default();
        for (i, op) in ops.iter().enumerate() {
            let want = tape.apply(op);
            let got = run(&mut l, op);
            prop_assert_eq!(got, want, "op {} {:?}", i, op);
        }
        // The whole tape reads back the same.
        l.ok(1, &rewind(), &[]);
        for (i, o) in tape.objs.iter().enumerate() {
            let r = l.cmd(1, &read6(false, true, 4000), &[]);
            match o {
                Obj::Block(b) => prop_assert_eq!(&r.data_in, b, "object {}", i),
                Obj::Mark => prop_assert_eq!(r.sense_code(), (0, 0, 1), "object {}", i),
            }
        }
        prop_assert_eq!(l.cmd(1, &read6(false, true, 4000), &[]).sense_code(), (8, 0, 5));
    }
}
