//! Fault injection against a simple model: the Nth write or fsync fails (ENOSPC, EIO, or a
//! short write) during a put or a cleaner run. The engine must return an error exactly when a
//! fault fired (never swallow one), keep every acknowledged stream readable, show no stream
//! whose put failed, refuse further appends after a failed pack write or sync (poisoned, not
//! retried), and after a reopen verify clean and work normally.
//!
//! The fault plan is process-wide, so this file holds a single test.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use qorestor_core::test_support::faults::{clear, inject, Fault, FaultOp};
use qorestor_core::{
    CleanerOptions, ContainerKind, Engine, ErrorKind, NoProgress, VerifyOptions, VerifyScope, DEFAULT_GROUP,
};

mod common;
use common::data;

fn put(e: &Engine, name: &str, bytes: &[u8]) -> qorestor_core::Result<()> {
    let mut w = e.create_stream("c", name)?;
    w.write_all(bytes).map_err(|err| qorestor_core::Error::from_stream_io(err, "write", name))?;
    w.finish().map(|_| ())
}

fn read(e: &Engine, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    e.open_stream("c", name).unwrap().read_to_end(&mut out).unwrap();
    out
}

fn check(e: &Engine, model: &BTreeMap<String, Vec<u8>>, what: &str) {
    let names: Vec<String> = e.streams("c").unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, model.keys().cloned().collect::<Vec<_>>(), "{what}");
    for (n, b) in model {
        assert!(read(e, n) == *b, "{what}: {n} differs");
    }
}

#[test]
fn injected_write_and_fsync_faults_are_reported_and_leave_a_consistent_store() {
    std::env::set_var(qorestor_core::test_support::PACK_SIZE_ENV, (256 << 10).to_string());
    let dir = tempfile::tempdir().unwrap();
    {
        let e = Engine::create(dir.path()).unwrap();
        e.add_container("c", DEFAULT_GROUP, ContainerKind::Object).unwrap();
    }
    let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let faults = [Fault::Errno(28), Fault::Errno(5), Fault::ShortWrite];
    let (mut fired_count, mut poisoned_count, mut scenarios) = (0, 0, 0);
    let mut k = 0u64;
    for op in [FaultOp::Write, FaultOp::Fsync] {
        for fault in faults {
            if op == FaultOp::Fsync && fault == Fault::ShortWrite {
                continue;
            }
            for nth in [1u64, 2, 3, 5, 8, 12] {
                for during_cleaner in [false, true] {
                    scenarios += 1;
                    k += 1;
                    let what = format!("{op:?} #{nth} {fault:?} cleaner={during_cleaner}");
                    let e = Engine::open(dir.path()).unwrap();
                    let name = format!("s{k}");
                    // Shares half its content with the previous stream, like a nightly backup.
                    let mut bytes = data(k / 2, 600_000);
                    bytes.extend_from_slice(&data(10_000 + k, 600_000));
                    if during_cleaner {
                        put(&e, &name, &bytes).unwrap();
                        model.insert(name.clone(), bytes.clone());
                        // Delete an old stream so the cleaner has work (copies, rewrites).
                        if let Some(old) = model.keys().next().cloned().filter(|_| model.len() > 3) {
                            e.delete_stream("c", &old).unwrap();
                            model.remove(&old);
                        }
                    }
                    inject(op, nth, fault);
                    let result = if during_cleaner {
                        e.run_cleaner(&CleanerOptions { dry_run: false, compact_below: 0.9 }, &NoProgress).map(|_| ())
                    } else {
                        put(&e, &name, &bytes)
                    };
                    let fired = clear();
                    match (&result, fired) {
                        (Ok(()), false) => {
                            if !during_cleaner {
                                model.insert(name.clone(), bytes);
                            }
                        }
                        (Err(err), true) => {
                            fired_count += 1;
                            // A full disk is reported as such by the operation that found it.
                            if matches!(fault, Fault::Errno(28) | Fault::ShortWrite) {
                                assert_eq!(err.kind(), ErrorKind::OutOfSpace, "{what}: {err}");
                            }
                            // Appends after a failed pack write or sync are refused, not retried.
                            match put(&e, "after-fault", b"more data") {
                                Err(err) => {
                                    assert_eq!(err.kind(), ErrorKind::Poisoned, "{what}: {err}");
                                    // The message tells the operator how writes come back.
                                    assert!(err.to_string().contains("restart qorestor serve"), "{err}");
                                    poisoned_count += 1;
                                }
                                Ok(()) => {
                                    e.delete_stream("c", "after-fault").unwrap();
                                }
                            }
                        }
                        (Ok(()), true) => panic!("{what}: a fault fired but the operation succeeded"),
                        (Err(err), false) => panic!("{what}: failed without a fault: {err}"),
                    }
                    // In-process: acknowledged streams read back, the failed one is not visible.
                    check(&e, &model, &what);
                    drop(e);
                    let e = Engine::open(dir.path()).unwrap();
                    check(&e, &model, &format!("{what}, reopened"));
                    let r = e.verify(&VerifyOptions { scope: VerifyScope::All, repair: false }, &NoProgress).unwrap();
                    assert!(!r.damage_remains() && r.index_missing == 0, "{what}: {r:?}");
                }
            }
        }
    }
    // After all that, the store still takes and returns data.
    let e = Engine::open(dir.path()).unwrap();
    let bytes = data(424_242, 1 << 20);
    put(&e, "final", &bytes).unwrap();
    assert!(read(&e, "final") == bytes);
    assert!(fired_count >= scenarios / 3, "only {fired_count} of {scenarios} faults fired");
    assert!(poisoned_count > 0);
    eprintln!("faults: {scenarios} scenarios, {fired_count} faults fired, {poisoned_count} left the group poisoned");
}
