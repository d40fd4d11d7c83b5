//! `qorestor put`, `get`, `ls` and `rm`: streams.
//!
//! `put` and `get` are on the benchmarked data path: `put` hands the input file or stdin
//! straight to [`qorestor_core::StreamWriter::write_from`] (1 MiB reads into the pipeline's own
//! buffers) and `get` hands the output file or stdout straight to
//! [`qorestor_core::StreamReader::copy_to`] (4 MiB writes). Nothing is buffered in between.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use qorestor_core::{ErrorKind, StreamInfo};
use serde::Serialize;

use crate::context::Ctx;
use crate::output::{self, Align, Table};
use crate::progress;
use crate::values::StreamAddr;

/// Long help of `put`.
pub const PUT_ABOUT: &str = "\
Store a stream: read FILE (or stdin when FILE is - or omitted) into CONTAINER/STREAM.

The stream name is everything after the first / and may contain more /. An existing stream of
the same name is refused (before any input is read) unless --replace is given; it is then
replaced when the new one is complete (with the container's recycle bin on, the replaced
version goes to the bin). With --replace, empty input is refused unless --allow-empty: a
producer that failed (a tar that could not start) usually gives empty input. An interrupted put
leaves no stream and the old one as it was. A progress bar (bytes, rate, dedup and compression
reduction so far) is drawn on stderr when it is a terminal.

JSON: the stream object (container, name, logical_bytes, chunks, new_chunks, new_stored_bytes,
created) plus seconds and mb_per_s (10^6 bytes per second).

Examples:
  qorestor put nightly/home-monday.tar home.tar
  set -o pipefail; tar cf - /home | qorestor put nightly/2024/03/01/home.tar
  tar cf - /home | qorestor put --replace nightly/home-latest.tar";

/// Long help of `get`.
pub const GET_ABOUT: &str = "\
Read a stream back: write CONTAINER/STREAM to FILE (or stdout when FILE is - or omitted).

FILE is created or replaced: the data goes to a temporary file in the same directory, renamed
over FILE once complete, so FILE is never seen half-written. Every chunk is verified against its
BLAKE3 fingerprint. A progress bar is drawn on stderr when it is a terminal.

JSON: {\"container\", \"name\", \"bytes\", \"seconds\", \"mb_per_s\"}. When the data goes to
stdout the JSON report goes to stderr (on one line), since stdout carries the data.

Examples:
  qorestor get nightly/home-monday.tar restored.tar
  qorestor get nightly/2024/03/01/home.tar | tar xf -";

/// Long help of `ls`.
pub const LS_ABOUT: &str = "\
List the streams of a container, by name; without a container, list the containers (as
container list does). Control characters in names are printed escaped (\\u{1b}, \\n).

JSON: an array of stream objects (container, name, logical_bytes, chunks, new_chunks,
new_stored_bytes, created); without a container, of container objects.

Examples:
  qorestor ls
  qorestor ls nightly";

/// Long help of `rm`.
pub const RM_ABOUT: &str = "\
Delete a stream. Its space is reclaimed when the cleaner runs (chunks it shares with other
streams stay).

JSON: the deleted stream object plus \"deleted\": true.

Example:
  qorestor rm nightly/home-monday.tar";

/// Arguments of `put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// Where to store the stream.
    #[arg(value_name = "CONTAINER/STREAM")]
    pub addr: StreamAddr,
    /// The input file; - reads stdin.
    #[arg(value_name = "FILE|-", default_value = "-")]
    pub input: PathBuf,
    /// Replace an existing stream of the same name (without it, an existing name is refused).
    #[arg(long)]
    pub replace: bool,
    /// With --replace, accept empty input (refused by default: a failed producer gives none).
    #[arg(long, requires = "replace")]
    pub allow_empty: bool,
}

/// Arguments of `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The stream to read.
    #[arg(value_name = "CONTAINER/STREAM")]
    pub addr: StreamAddr,
    /// The output file (created or replaced); - writes to stdout.
    #[arg(value_name = "FILE|-", default_value = "-")]
    pub output: PathBuf,
}

/// Arguments of `ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// The container (without it: the containers).
    pub container: Option<String>,
}

/// Arguments of `rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// The stream to delete.
    #[arg(value_name = "CONTAINER/STREAM")]
    pub addr: StreamAddr,
}

/// Whether a FILE argument means stdin or stdout.
fn is_dash(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// The JSON result of `put`.
#[derive(Debug, Serialize)]
struct PutReport<'a> {
    #[serde(flatten)]
    info: &'a StreamInfo,
    seconds: f64,
    mb_per_s: f64,
}

/// Runs `put`.
pub fn put(ctx: &Ctx, args: PutArgs) -> Result<()> {
    let input = if is_dash(&args.input) {
        stdin_file(ctx)?
    } else {
        ctx.io.open_input(&args.input).with_context(|| format!("cannot open {}", args.input.display()))?
    };
    let len = input.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
    let engine = ctx.open("qorestor put")?;
    let (container, name) = (&args.addr.container, &args.addr.stream);
    let start = Instant::now();
    // The writer checks the container (it exists, takes writes from us); nothing is visible
    // unless it finishes.
    let mut writer = engine.create_stream(container, name)?;
    let exists = match engine.stream(container, name) {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => return Err(e.into()),
    };
    if exists && !args.replace {
        bail!("stream {} already exists; nothing was read or changed (add --replace to replace it)", args.addr);
    }
    if is_dash(&args.input) && !ctx.json && ctx.io.stdin_is_terminal() {
        ctx.io.eprintln(&format!("qorestor: reading {} from the terminal; end it with Ctrl-D", args.addr));
    }
    let bar = progress::transfer(ctx, progress::enabled(ctx), len, Some(writer.counters()));
    // Inside the daemon, a client that ends stops the reading (nothing is published).
    let mut input = ctx.io.cancellable(input);
    let read = writer.write_from(&mut *input, &*bar)?;
    if read == 0 && args.replace && !args.allow_empty {
        bar.finish();
        drop(writer);
        bail!(
            "the input for {} is empty; nothing was changed (a failed producer gives empty input; add --allow-empty \
             to store an empty stream)",
            args.addr
        );
    }
    let info = writer.finish()?;
    bar.finish();
    let seconds = start.elapsed().as_secs_f64();
    let report = PutReport {
        info: &info,
        seconds: output::round3(seconds),
        mb_per_s: output::mb_per_s(info.logical_bytes, seconds),
    };
    ctx.emit(&report, || {
        let reduction = if info.new_stored_bytes == 0 {
            "all chunks were already stored".to_string()
        } else {
            format!("{} reduction", output::ratio(info.logical_bytes as f64 / info.new_stored_bytes as f64))
        };
        format!(
            "stored {}: {} in {:.2} s ({}); {} chunks, {} new, {} added to storage ({})",
            args.addr,
            output::bytes(info.logical_bytes),
            seconds,
            output::rate(info.logical_bytes as f64 / seconds.max(1e-9)),
            info.chunks,
            info.new_chunks,
            output::bytes(info.new_stored_bytes),
            reduction
        )
    })
}

/// Standard input as a file, refused when it is closed or unusable (a closed stdin would
/// otherwise read as empty and store an empty stream).
fn stdin_file(ctx: &Ctx) -> Result<File> {
    const UNUSABLE: &str = "cannot read standard input (it is closed or unusable)";
    if stdin_was_closed(ctx) {
        bail!("{UNUSABLE}: it was closed when qorestor started (give a FILE, or redirect stdin from it)");
    }
    ctx.io.stdin_file().context(UNUSABLE)
}

/// Whether standard input was closed when the process started: Rust's runtime then opens
/// `/dev/null` read-write in its place (a shell's `< /dev/null` opens it read-only), which would
/// read as empty input. Linux: the open flags come from `/proc/self/fdinfo/N` (a client's stdin
/// keeps its open flags when passed to the daemon).
fn stdin_was_closed(ctx: &Ctx) -> bool {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::fs::MetadataExt;
    let Ok(stdin) = ctx.io.stdin_file() else { return false };
    let (Ok(meta), Ok(null)) = (stdin.metadata(), fs::metadata("/dev/null")) else { return false };
    if !meta.file_type().is_char_device() || meta.rdev() != null.rdev() {
        return false;
    }
    let Ok(info) = fs::read_to_string(ctx.io.stdin_fdinfo()) else { return false };
    let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).map(str::trim);
    flags.and_then(|f| u32::from_str_radix(f, 8).ok()).is_some_and(|f| f & 0o3 == 0o2)
}

/// The JSON result of `get`.
#[derive(Debug, Serialize)]
struct GetReport<'a> {
    container: &'a str,
    name: &'a str,
    bytes: u64,
    seconds: f64,
    mb_per_s: f64,
}

/// Runs `get`.
pub fn get(ctx: &Ctx, args: GetArgs) -> Result<()> {
    let engine = ctx.open("qorestor get")?;
    let start = Instant::now();
    let mut reader = engine.open_stream(&args.addr.container, &args.addr.stream)?;
    let to_stdout = is_dash(&args.output);
    // Don't draw over the data when both go to the same terminal.
    let show = progress::enabled(ctx) && !(to_stdout && ctx.io.stdout_is_terminal());
    let bar = progress::transfer(ctx, show, Some(reader.len()), None);
    let bytes = if to_stdout {
        ctx.io.with_raw_stdout(|out| Ok(reader.copy_to(out, &*bar)?))?
    } else {
        let target =
            ctx.io.output_path(&args.output).with_context(|| format!("cannot write to {}", args.output.display()))?;
        replace_file(&args.output, &target, |f| Ok(reader.copy_to(f, &*bar)?))?
    };
    bar.finish();
    let seconds = start.elapsed().as_secs_f64();
    let report = GetReport {
        container: &args.addr.container,
        name: &args.addr.stream,
        bytes,
        seconds: output::round3(seconds),
        mb_per_s: output::mb_per_s(bytes, seconds),
    };
    if to_stdout {
        if ctx.json {
            ctx.io.eprintln(&serde_json::to_string(&report)?);
        }
        return Ok(());
    }
    ctx.emit(&report, || {
        format!(
            "wrote {} to {}: {} in {:.2} s ({})",
            args.addr,
            args.output.display(),
            output::bytes(bytes),
            seconds,
            output::rate(bytes as f64 / seconds.max(1e-9))
        )
    })
}

/// Tells the temporary files of the `get`s one process runs at once apart.
static TEMP_SERIAL: AtomicU64 = AtomicU64::new(0);

/// Removes a temporary file unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Creates or replaces `path` with what `write` writes: into a temporary file in the same
/// directory, renamed over `path` when complete (an existing file's permissions are kept).
/// Devices and pipes are written in place; a symbolic link is followed. `at` is where `path` is
/// reached from this process (see [`crate::cmdio::Io::output_path`]); messages name `path`.
fn replace_file(path: &Path, at: &Path, write: impl FnOnce(&mut File) -> Result<u64>) -> Result<u64> {
    let mut target = at.to_path_buf();
    if fs::symlink_metadata(at).is_ok_and(|m| m.file_type().is_symlink()) {
        if let Ok(resolved) = fs::canonicalize(at) {
            target = resolved;
        }
    }
    let permissions = match fs::metadata(&target) {
        Ok(m) if m.is_dir() => bail!("cannot write to {}: it is a directory", path.display()),
        Ok(m) if !m.is_file() => {
            let mut f = OpenOptions::new()
                .write(true)
                .open(&target)
                .with_context(|| format!("cannot open {}", path.display()))?;
            return write(&mut f);
        }
        Ok(m) => Some(m.permissions()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot write to {}", path.display())),
    };
    let Some(name) = target.file_name() else {
        bail!("cannot write to {}: not a file name", path.display());
    };
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".qorestor-{}-{}.tmp", std::process::id(), TEMP_SERIAL.fetch_add(1, Ordering::Relaxed)));
    let tmp = TempFile { path: target.with_file_name(tmp_name), keep: false };
    let mut file = File::create(&tmp.path).with_context(|| format!("cannot create {}", tmp.path.display()))?;
    let n = write(&mut file)?;
    if let Some(p) = permissions {
        file.set_permissions(p).with_context(|| format!("cannot set permissions of {}", tmp.path.display()))?;
    }
    drop(file);
    fs::rename(&tmp.path, &target)
        .with_context(|| format!("cannot rename {} to {}", tmp.path.display(), path.display()))?;
    let mut tmp = tmp;
    tmp.keep = true;
    Ok(n)
}

/// Runs `ls`.
pub fn ls(ctx: &Ctx, args: LsArgs) -> Result<()> {
    let engine = ctx.open("qorestor ls")?;
    let Some(container) = args.container else {
        let list = engine.containers(None)?;
        return ctx.emit(&list, || crate::container::table(&list));
    };
    let streams = engine.streams(&container)?;
    ctx.emit(&streams, || {
        let mut t = Table::new(&[
            ("NAME", Align::Left),
            ("SIZE", Align::Right),
            ("CHUNKS", Align::Right),
            ("NEW CHUNKS", Align::Right),
            ("ADDED", Align::Right),
            ("CREATED (UTC)", Align::Left),
        ]);
        for s in &streams {
            t.row(vec![
                output::name(&s.name).into_owned(),
                output::bytes(s.logical_bytes),
                s.chunks.to_string(),
                s.new_chunks.to_string(),
                output::bytes(s.new_stored_bytes),
                output::time(s.created),
            ]);
        }
        t.render()
    })
}

/// The JSON result of `rm`.
#[derive(Debug, Serialize)]
struct RmReport<'a> {
    #[serde(flatten)]
    info: &'a StreamInfo,
    deleted: bool,
}

/// Runs `rm`.
pub fn rm(ctx: &Ctx, args: RmArgs) -> Result<()> {
    let engine = ctx.open("qorestor rm")?;
    let info = engine.delete_stream(&args.addr.container, &args.addr.stream)?;
    let report = RmReport { info: &info, deleted: true };
    ctx.emit(&report, || {
        format!(
            "deleted {} ({}); its space is reclaimed when the cleaner runs",
            args.addr,
            output::bytes(info.logical_bytes)
        )
    })
}
