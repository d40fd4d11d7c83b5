//! Small file-system helpers for durable publication.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};

/// Fsyncs a directory so that entries created or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| crate::fileio::sync_all(&d)).map_err(|e| Error::io("fsync directory", dir, e))
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    crate::fileio::write_file(&tmp, bytes).map_err(|e| Error::io("write", &tmp, e))?;
    File::open(&tmp).and_then(|f| crate::fileio::sync_all(&f)).map_err(|e| Error::io("fsync", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", &tmp, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Creates a directory (and missing parents) so that it survives a crash: each directory
/// created is fsynced in its parent.
pub fn create_dir_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durable(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(Error::io("create directory", dir, e)),
    }
    sync_dir(dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
}

/// Gives `file` a length of `len` bytes with every block allocated for real (`fallocate`), so
/// that writing into it (through a memory map, where a missing block is SIGBUS rather than an
/// error) cannot run out of space. A filesystem without `fallocate` gets the bytes written as
/// zeros instead.
pub fn allocate(file: &File, path: &Path, len: u64) -> Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => return Ok(()),
        Err(e) if e != rustix::io::Errno::OPNOTSUPP => {
            return Err(Error::io("allocate", path, std::io::Error::from(e)));
        }
        Err(_) => {}
    }
    let current = file.metadata().map_err(|e| Error::io("stat", path, e))?.len();
    let mut f = file;
    f.seek(SeekFrom::Start(current)).map_err(|e| Error::io("seek", path, e))?;
    let zeros = vec![0u8; 1 << 20];
    let mut at = current;
    while at < len {
        let n = (len - at).min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n]).map_err(|e| Error::io("allocate", path, e))?;
        at += n as u64;
    }
    Ok(())
}
