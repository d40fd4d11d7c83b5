//! Secrets from outside (shared by every `--*-stdin` and `--*-file` flag): one line from stdin or from a file, as `CLI.md` says (`--*-stdin` and
//! `--*-file` read one line; a trailing `\n` or `\r\n` is removed), and the passphrase of
//! encrypted storage groups (`QORESTOR_PASSPHRASE` or `--passphrase-file`).

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};

use crate::cmdio::Io;
use crate::context::UsageError;

/// Longest secret line read, in bytes.
const MAX_SECRET_LEN: usize = 4096;

/// The environment variable holding the passphrase of encrypted storage groups.
pub const PASSPHRASE_ENV: &str = "QORESTOR_PASSPHRASE";

/// The first line of `bytes` without its line end; empty or over-long lines are refused,
/// naming `what`.
fn first_line(bytes: &[u8], what: &str, source: &str) -> Result<Vec<u8>> {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // Bad values given on the command line's behalf: usage errors (exit 2).
    if line.is_empty() {
        return Err(UsageError(format!("the {what} from {source} is empty")).into());
    }
    if line.len() > MAX_SECRET_LEN || bytes.len() > MAX_SECRET_LEN + 2 && !bytes[..=MAX_SECRET_LEN].contains(&b'\n') {
        return Err(UsageError(format!("the {what} from {source} is longer than {MAX_SECRET_LEN} bytes")).into());
    }
    Ok(line.to_vec())
}

/// Reads one line from stdin.
pub fn read_stdin_line(io: &Io, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.stdin_file()
        .and_then(|f| f.take(MAX_SECRET_LEN as u64 + 3).read_to_end(&mut buf))
        .with_context(|| format!("cannot read the {what} from stdin"))?;
    first_line(&buf, what, "stdin")
}

/// Reads the first line of a file.
pub fn read_file_line(io: &Io, path: &Path, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.open_input(path)
        .and_then(|f| f.take(MAX_SECRET_LEN as u64 + 3).read_to_end(&mut buf))
        .with_context(|| format!("cannot read the {what} file {}", path.display()))?;
    first_line(&buf, what, &path.display().to_string())
}

fn text(bytes: Vec<u8>, what: &str) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("the {what} is not UTF-8 text"))
}

/// Reads one line of UTF-8 text from stdin (a password, a CHAP secret).
pub fn read_stdin_text(io: &Io, what: &str) -> Result<String> {
    text(read_stdin_line(io, what)?, what)
}

/// Reads the first line of a file as UTF-8 text.
pub fn read_file_text(io: &Io, path: &Path, what: &str) -> Result<String> {
    text(read_file_line(io, path, what)?, what)
}

/// The passphrase of encrypted storage groups: from `file` if given, else from
/// `QORESTOR_PASSPHRASE`, else none.
pub fn passphrase(io: &Io, file: Option<&Path>) -> Result<Option<Vec<u8>>> {
    if let Some(f) = file {
        return read_file_line(io, f, "passphrase").map(Some);
    }
    match io.var_os(PASSPHRASE_ENV) {
        Some(v) => first_line(v.as_encoded_bytes(), "passphrase", PASSPHRASE_ENV).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_without_its_line_end() {
        assert_eq!(first_line(b"secret\n", "x", "t").unwrap(), b"secret");
        assert_eq!(first_line(b"secret\r\nmore\n", "x", "t").unwrap(), b"secret");
        assert_eq!(first_line(b"no newline", "x", "t").unwrap(), b"no newline");
        assert!(first_line(b"\n", "x", "t").is_err());
        assert!(first_line(b"", "x", "t").is_err());
        assert!(first_line(&vec![b'a'; MAX_SECRET_LEN + 1], "x", "t").is_err());
    }
}
