//! The one-time migration of a catalog kept in sled 0.34 (data directories made before the
//! catalog moved to redb) into `catalog.redb`.
//!
//! sled was replaced because it could not survive a full disk: after `ENOSPC` it leaves an empty
//! `snap.<n>.generating` behind, and every later open fails ("Read corrupted data", sled issue
//! #1527), also after space is freed. Its trees hold the same keys and framed values the redb
//! tables hold, so the migration copies them byte for byte:
//! 1. Leftover snapshots being generated (`snap.*.generating`, never complete by definition)
//!    are deleted, so a catalog that sled itself can no longer open is migrated too.
//! 2. Every tree is read and written into a new `catalog.redb` in one transaction, which is
//!    made durable and renamed into place ([`store::create`]). The `recycle` tree's bins of one
//!    entry per name come along; `Catalog::open` then moves them to `recycle_bin`.
//! 3. sled's files are deleted. If a crash comes first, the next open finds `catalog.redb` and
//!    deletes them then: once `catalog.redb` exists it is the catalog.

use std::path::Path;

use super::store::{self, OrCatalog, TABLES};
use super::Rows;
use crate::error::{Error, Result};

/// sled's files in a catalog directory.
const SLED_FILES: [&str; 2] = ["conf", "db"];
/// How long to wait for sled's file lock, released by its flusher thread a moment after a
/// handle of this process is dropped.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn is_sled_leftover(name: &str) -> bool {
    SLED_FILES.contains(&name) || name == "blobs" || name.starts_with("snap.")
}

/// Migrates a sled catalog in `dir` if there is one, and removes sled's files once
/// `catalog.redb` exists.
pub fn migrate_if_needed(dir: &Path) -> Result<()> {
    if !SLED_FILES.iter().any(|f| dir.join(f).exists()) {
        return Ok(());
    }
    if !dir.join(store::FILE).exists() {
        remove_generating_snapshots(dir)?;
        let rows = read_sled(dir)?;
        store::create(dir, |tx| {
            for (t, table_rows) in TABLES.iter().zip(&rows) {
                let mut table = tx.open_table(*t).db()?;
                for (k, v) in table_rows {
                    table.insert(k.as_slice(), v.as_slice()).db()?;
                }
            }
            Ok(())
        })?;
    }
    remove_sled_files(dir)
}

fn entries(dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let e = e.map_err(|e| Error::io("list", dir, e))?;
        if let Some(name) = e.file_name().to_str() {
            out.push((name.to_string(), e.path()));
        }
    }
    Ok(out)
}

fn remove_generating_snapshots(dir: &Path) -> Result<()> {
    for (name, path) in entries(dir)? {
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
        }
    }
    Ok(())
}

/// The sled settings the catalog was made with (sled must open a database with them).
pub(super) fn sled_config(dir: &Path) -> sled::Config {
    sled::Config::new().path(dir).cache_capacity(16 << 20).segment_size(256 << 10)
}

/// Every (key, value) of each sled tree named like a table of [`TABLES`], in table order.
fn read_sled(dir: &Path) -> Result<Vec<Rows>> {
    let sled_err = |e: sled::Error| Error::corrupt("sled catalog", dir, format!("cannot migrate it: {e}"));
    let config = sled_config(dir);
    let started = std::time::Instant::now();
    let db = loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock") && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(sled::Error::Io(e)) => return Err(Error::io("open the sled catalog in", dir, e)),
            opened => break opened.map_err(sled_err)?,
        }
    };
    let mut out = Vec::new();
    for t in TABLES {
        let tree = db.open_tree(redb::TableHandle::name(&t)).map_err(sled_err)?;
        let rows = tree
            .iter()
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(sled_err)?;
        out.push(rows);
    }
    Ok(out)
}

fn remove_sled_files(dir: &Path) -> Result<()> {
    for (name, path) in entries(dir)? {
        if !is_sled_leftover(&name) {
            continue;
        }
        let r = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        r.map_err(|e| Error::io("remove", &path, e))?;
    }
    crate::fsutil::sync_dir(dir)
}
