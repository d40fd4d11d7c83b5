//! `qorestor bench`: ingest the generations of the shared benchmark dataset
//! (`gen_dataset.py`, tar streams `DATASET/tars/genN.tar`) into a fresh data directory, restore
//! the last generation, verify it, and report throughput, CPU-seconds per GB, peak RSS, stored
//! bytes and ratios.
//!
//! Each phase runs in this process, so CPU time (user+sys of all threads, from
//! `/proc/self/stat`) and peak RSS (`VmHWM`, reset between phases through
//! `/proc/self/clear_refs`) are the engine's own. Numbers on a shared machine are noisy: compare
//! ratios from one run and prefer CPU-seconds per GB.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;

use qorestor_core::{
    ChunkParams, Compression, ContainerKind, EncryptionMode, EncryptionOptions, Engine, GroupOptions, NoProgress,
    Passphrase, StatsScope,
};

use crate::context::Ctx;
use crate::group::EncryptionArg;
use crate::values::parse_size_u32;

/// The long help of `qorestor bench`.
pub const LONG_ABOUT: &str = "Benchmark ingest and restore on the benchmark dataset.\n\n\
    Ingests DATASET/tars/gen1.tar .. genN.tar (made by bench/gen_dataset.py in the source tree) as \
    streams of one container in a fresh data directory (--work, not --data), restores the last \
    generation to a file, verifies it with BLAKE3, and reports MB/s, CPU-seconds per GB, peak RSS, \
    stored bytes and dedup/compression ratios.\n\n\
    Example:\n  python3 bench/gen_dataset.py /tmp/qorestor-bench/ds --size-gib 1 --gens 5 --seed 42\n  \
    qorestor bench --dataset /tmp/qorestor-bench/ds";

/// Arguments of `qorestor bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Dataset directory holding tars/genN.tar.
    #[arg(long, value_name = "DIR", default_value = "/tmp/qorestor-bench/ds")]
    pub dataset: PathBuf,
    /// Generations to ingest (default: all in the dataset).
    #[arg(long, value_name = "N")]
    pub gens: Option<u32>,
    /// Scratch directory for the benchmark's data directory and restored file (emptied first).
    #[arg(long, value_name = "DIR", default_value = "/tmp/qorestor-bench/qorestor-bench-work")]
    pub work: PathBuf,
    /// Compression policy of the benchmark's storage group.
    #[arg(long, value_name = "none|fast|best", default_value = "fast")]
    pub compression: Compression,
    /// Average chunk size (a power of two).
    #[arg(long, value_name = "SIZE", value_parser = parse_size_u32, default_value = "16KiB")]
    pub chunk_avg: u32,
    /// Minimum chunk size (default: a quarter of the average).
    #[arg(long, value_name = "SIZE", value_parser = parse_size_u32)]
    pub chunk_min: Option<u32>,
    /// Maximum chunk size (default: four times the average).
    #[arg(long, value_name = "SIZE", value_parser = parse_size_u32)]
    pub chunk_max: Option<u32>,
    /// Encrypt the benchmark's storage group (passphrase: the fixed `qorestor bench`), to
    /// measure what encryption costs.
    #[arg(long, value_enum)]
    pub encryption: Option<EncryptionArg>,
    /// Keep the work directory afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// One measured phase.
#[derive(Debug, Serialize)]
struct Phase {
    op: String,
    logical_bytes: u64,
    wall_s: f64,
    cpu_s: f64,
    mb_per_s: f64,
    cpu_s_per_gb: f64,
    peak_rss_kb: u64,
    new_stored_bytes: u64,
}

/// The whole report.
#[derive(Debug, Serialize)]
struct Report {
    encryption: Option<EncryptionMode>,
    phases: Vec<Phase>,
    ingest_wall_s: f64,
    ingest_mb_per_s: f64,
    restore_verified: bool,
    data_dir_bytes: u64,
    stored_bytes: u64,
    logical_bytes: u64,
    unique_chunks: u64,
    dedup_ratio: f64,
    compression_ratio: f64,
    reduction_ratio: f64,
    index_file_bytes: u64,
    index_bytes_per_unique_chunk: f64,
}

/// CPU seconds (user + sys, all threads) of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    // Fields 14 and 15 of stat(5) (utime, stime) are 11 and 12 after the command name, in
    // clock ticks of USER_HZ = 100 on Linux.
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// Peak resident set size in KiB since the last [`reset_peak_rss`].
fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn reset_peak_rss() {
    // "5" resets the peak RSS (Linux 4.0+); ignore failure on other systems.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn tree_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => tree_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn file_blake3(path: &Path) -> Result<blake3::Hash> {
    let mut f = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("read {}", path.display()))?;
        if n == 0 {
            return Ok(h.finalize());
        }
        h.update(&buf[..n]);
    }
}

fn measure<T>(op: String, logical: u64, f: impl FnOnce() -> Result<(T, u64)>) -> Result<(T, Phase)> {
    reset_peak_rss();
    let (c0, t0) = (cpu_seconds(), Instant::now());
    let (value, new_stored_bytes) = f()?;
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu_s = cpu_seconds() - c0;
    let gb = logical as f64 / 1e9;
    let phase = Phase {
        op,
        logical_bytes: logical,
        wall_s,
        cpu_s,
        mb_per_s: logical as f64 / wall_s.max(1e-9) / 1e6,
        cpu_s_per_gb: if gb > 0.0 { cpu_s / gb } else { 0.0 },
        peak_rss_kb: peak_rss_kb(),
        new_stored_bytes,
    };
    Ok((value, phase))
}

/// Runs the benchmark.
pub fn run(ctx: &Ctx, args: &BenchArgs) -> Result<()> {
    let tars = args.dataset.join("tars");
    let available = (1..).take_while(|g| tars.join(format!("gen{g}.tar")).exists()).count() as u32;
    let gens = args.gens.unwrap_or(available);
    if gens == 0 || gens > available {
        bail!(
            "dataset {} has {available} generations (tars/genN.tar), {gens} asked; make it with gen_dataset.py",
            args.dataset.display()
        );
    }
    let avg = args.chunk_avg;
    let chunking = ChunkParams {
        min: args.chunk_min.unwrap_or(avg / 4),
        avg,
        max: args.chunk_max.unwrap_or(avg.saturating_mul(4)),
    };
    let data = args.work.join("data");
    if args.work.exists() {
        std::fs::remove_dir_all(&args.work).with_context(|| format!("empty {}", args.work.display()))?;
    }
    let engine = Engine::create_as(&data, "qorestor bench")?;
    let opts = GroupOptions { compression: args.compression, chunking };
    let encryption = args.encryption.map(EncryptionMode::from);
    match encryption {
        Some(mode) => {
            let pass = Passphrase::new(b"qorestor bench".to_vec())?;
            engine.add_encrypted_storage_group("bench", opts, EncryptionOptions::new(mode, 30, pass))?
        }
        None => engine.add_storage_group("bench", opts)?,
    };
    engine.add_container("bench", "bench", ContainerKind::Object)?;

    let mut phases = Vec::new();
    for g in 1..=gens {
        let src = tars.join(format!("gen{g}.tar"));
        let len = std::fs::metadata(&src).with_context(|| format!("stat {}", src.display()))?.len();
        let ((), phase) = measure(format!("ingest gen{g}"), len, || {
            let mut f = File::open(&src).with_context(|| format!("open {}", src.display()))?;
            let mut w = engine.create_stream("bench", &format!("gen{g}"))?;
            w.write_from(&mut f, &NoProgress)?;
            let info = w.finish()?;
            Ok(((), info.new_stored_bytes))
        })?;
        if !ctx.json {
            eprintln!("{}: {:.0} MB/s, {:.2} CPU-s/GB", phase.op, phase.mb_per_s, phase.cpu_s_per_gb);
        }
        phases.push(phase);
    }
    let last = tars.join(format!("gen{gens}.tar"));
    let restored = args.work.join("restored.tar");
    let len = std::fs::metadata(&last)?.len();
    let ((), phase) = measure(format!("restore gen{gens}"), len, || {
        let mut r = engine.open_stream("bench", &format!("gen{gens}"))?;
        let mut out = File::create(&restored).with_context(|| format!("create {}", restored.display()))?;
        r.copy_to(&mut out, &NoProgress)?;
        Ok(((), 0))
    })?;
    phases.push(phase);
    let restore_verified = file_blake3(&restored)? == file_blake3(&last)?;
    std::fs::remove_file(&restored).ok();

    let stats = engine.stats(&StatsScope::StorageGroup("bench".into()))?;
    let index_file_bytes: u64 = walk_named(&data, "fp.idx");
    drop(engine);
    let ingest: Vec<&Phase> = phases.iter().filter(|p| p.op.starts_with("ingest")).collect();
    let ingest_wall_s: f64 = ingest.iter().map(|p| p.wall_s).sum();
    let ingest_bytes: u64 = ingest.iter().map(|p| p.logical_bytes).sum();
    let report = Report {
        encryption,
        ingest_wall_s,
        ingest_mb_per_s: ingest_bytes as f64 / ingest_wall_s.max(1e-9) / 1e6,
        restore_verified,
        data_dir_bytes: tree_bytes(&data),
        stored_bytes: stats.stored_bytes,
        logical_bytes: stats.logical_bytes,
        unique_chunks: stats.unique_chunks,
        dedup_ratio: stats.dedup_ratio,
        compression_ratio: stats.compression_ratio,
        reduction_ratio: stats.reduction_ratio,
        index_file_bytes,
        index_bytes_per_unique_chunk: index_file_bytes as f64 / stats.unique_chunks.max(1) as f64,
        phases,
    };
    if !args.keep {
        std::fs::remove_dir_all(&args.work).ok();
    }
    print_report(ctx, &report)?;
    if !report.restore_verified {
        bail!("the restored gen{gens} differs from the source");
    }
    Ok(())
}

fn walk_named(dir: &Path, name: &str) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk_named(&p, name)
            } else if e.file_name() == name {
                e.metadata().map_or(0, |m| m.len())
            } else {
                0
            }
        })
        .sum()
}

fn print_report(ctx: &Ctx, r: &Report) -> Result<()> {
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    if let Some(mode) = r.encryption {
        println!("encryption: {} (AES-256-GCM, keyed fingerprints and chunking)", mode.as_str());
    }
    println!(
        "{:<16} {:>12} {:>9} {:>9} {:>9} {:>11} {:>12}",
        "phase", "bytes", "wall s", "MB/s", "CPU s", "CPU-s/GB", "peak RSS MiB"
    );
    for p in &r.phases {
        println!(
            "{:<16} {:>12} {:>9.2} {:>9.0} {:>9.2} {:>11.2} {:>12.1}",
            p.op,
            p.logical_bytes,
            p.wall_s,
            p.mb_per_s,
            p.cpu_s,
            p.cpu_s_per_gb,
            p.peak_rss_kb as f64 / 1024.0
        );
    }
    println!("ingest total: {:.2} s ({:.0} MB/s)", r.ingest_wall_s, r.ingest_mb_per_s);
    println!("restore verified: {}", if r.restore_verified { "bit-exact" } else { "MISMATCH" });
    println!(
        "stored {} bytes (data directory {} bytes) for {} logical: dedup {:.2}x, compression {:.2}x, total {:.2}x",
        r.stored_bytes, r.data_dir_bytes, r.logical_bytes, r.dedup_ratio, r.compression_ratio, r.reduction_ratio
    );
    println!(
        "unique chunks {}; fingerprint index file {} bytes ({:.1} bytes per unique chunk)",
        r.unique_chunks, r.index_file_bytes, r.index_bytes_per_unique_chunk
    );
    Ok(())
}
