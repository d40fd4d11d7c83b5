//! Embeds the qorestor engine as a library: creates a storage group and a container, writes
//! the same backup stream twice, reads it back, and prints the savings.
//!
//! Run it with `cargo run -p qorestor-examples --bin embed_engine [DATA_DIR]`. Without DATA_DIR
//! it works in a new temporary directory (under `$TMPDIR`, else `/tmp`) that it removes when it
//! ends, whether it succeeded or failed.

use std::io::{Read, Write};

use qorestor_core::{Compression, ContainerKind, Engine, GroupOptions, StatsScope};

fn backup_stream() -> Vec<u8> {
    // A stand-in for a nightly full: log-like text and pseudo-random binary blocks.
    let mut out = Vec::new();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..2_000u64 {
        out.extend_from_slice(format!("{i:08} INFO job=nightly client=fs01 bytes={}\n", i * 4096).as_bytes());
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Declared before the engine, so the engine is closed first and the directory removed after.
    let scratch;
    let dir = match std::env::args_os().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            scratch = tempfile::Builder::new().prefix("qorestor-example-").tempdir()?;
            scratch.path().join("data")
        }
    };
    let engine = Engine::open_or_create(&dir)?;
    if engine.storage_group("example-sg").is_err() {
        engine
            .add_storage_group("example-sg", GroupOptions { compression: Compression::Fast, ..Default::default() })?;
        engine.add_container("example", "example-sg", ContainerKind::Object)?;
    }

    let data = backup_stream();
    for name in ["monday.tar", "tuesday.tar"] {
        let mut w = engine.create_stream("example", name)?;
        w.write_all(&data)?;
        let info = w.finish()?;
        println!("wrote {name}: {} bytes, {} new chunks of {}", info.logical_bytes, info.new_chunks, info.chunks);
    }

    let mut back = Vec::new();
    engine.open_stream("example", "tuesday.tar")?.read_to_end(&mut back)?;
    if back != data {
        return Err("read back differs".into());
    }
    println!("read back tuesday.tar: bit-exact");

    let s = engine.stats(&StatsScope::Container("example".into()))?;
    println!(
        "logical {} bytes, stored {} bytes: dedup {:.2}x, compression {:.2}x, savings {:.1}%",
        s.logical_bytes, s.live_stored_bytes, s.dedup_ratio, s.compression_ratio, s.savings_percent
    );
    Ok(())
}
