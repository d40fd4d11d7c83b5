//! The catalog's database file: one redb file, `DATA/catalog/catalog.redb`.
//!
//! redb is a copy-on-write B-tree with two commit slots and checksummed pages: a commit writes
//! new pages and then flips one byte, so a crash or a failed write (a full disk) leaves the last
//! commit intact, and an interrupted commit is rolled back when the file is next opened. What
//! this wrapper adds:
//! - **Atomic creation.** A new catalog is made as `catalog.redb.new` (tables created, closed,
//!   fsynced) and renamed into place, so `catalog.redb` is never a half-initialised file. A
//!   leftover `.new` is deleted at open.
//! - **Reopen after a failed write.** After an I/O error (`ENOSPC` in a commit, say) redb
//!   refuses every later transaction of that handle. The failing call returns its error, and the
//!   next call drops the handle and opens the file again (redb repairs it to the last commit),
//!   so a daemon keeps working once space is back, with no restart.
//! - **Every commit durable** (fsync) unless asked otherwise ([`Durability::Soft`]: made durable
//!   by the next durable commit).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;
use redb::{ReadTransaction, TableDefinition, WriteTransaction};

use crate::error::{Error, Result};

/// File name of the catalog database inside `DATA/catalog/`.
pub const FILE: &str = "catalog.redb";
/// Name of a catalog being created (renamed to [`FILE`] when complete).
const NEW_FILE: &str = "catalog.redb.new";

/// A catalog table: raw keys and values (values are framed by [`super::encode_value`]).
pub type Table = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// The catalog's tables, all created with the file.
pub const TABLES: [Table; 7] = [
    TableDefinition::new("groups"),
    TableDefinition::new("containers"),
    TableDefinition::new("streams"),
    TableDefinition::new("meta"),
    TableDefinition::new("recycle"),
    TableDefinition::new("container_meta"),
    TableDefinition::new("recycle_bin"),
];

/// How durable a commit must be when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On stable storage (fsync) when the commit returns.
    Durable,
    /// Visible at once, durable with the next durable commit (lost by a crash before it).
    Soft,
}

/// Converts any redb error into the engine's catalog error.
pub trait OrCatalog<T> {
    /// The value, or the error as [`Error::Catalog`].
    fn db(self) -> Result<T>;
}

impl<T, E: Into<redb::Error>> OrCatalog<T> for std::result::Result<T, E> {
    fn db(self) -> Result<T> {
        self.map_err(|e| Error::from(e.into()))
    }
}

/// The open database, reopened after a failure.
pub struct Store {
    file: PathBuf,
    db: RwLock<Option<redb::Database>>,
    failed: AtomicBool,
}

impl Store {
    /// Opens `dir/catalog.redb`, creating it (atomically) if it does not exist.
    pub fn open(dir: &Path) -> Result<Store> {
        let file = dir.join(FILE);
        let new = dir.join(NEW_FILE);
        if new.exists() {
            std::fs::remove_file(&new).map_err(|e| Error::io("remove", &new, e))?;
        }
        if !file.exists() {
            create(dir, |_| Ok(()))?;
        }
        let db = open_file(&file)?;
        Ok(Store { file, db: RwLock::new(Some(db)), failed: AtomicBool::new(false) })
    }

    /// The database file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Drops a handle that failed and opens the file again.
    fn reopen_if_failed(&self) -> Result<()> {
        if !self.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut db = self.db.write();
        if self.failed.load(Ordering::Acquire) {
            // Close the failed handle first: it holds the file's lock.
            *db = None;
            *db = Some(open_file(&self.file)?);
            self.failed.store(false, Ordering::Release);
        }
        Ok(())
    }

    fn note<R>(&self, r: Result<R>) -> Result<R> {
        if let Err(Error::Catalog(e)) = &r {
            if e.is_io() {
                self.failed.store(true, Ordering::Release);
            }
        }
        r
    }

    /// Runs `f` in a read transaction.
    pub fn read<R>(&self, f: impl FnOnce(&ReadTransaction) -> Result<R>) -> Result<R> {
        self.reopen_if_failed()?;
        let guard = self.db.read();
        let db = guard.as_ref().ok_or_else(|| closed(&self.file))?;
        let r = redb::ReadableDatabase::begin_read(db).db().and_then(|tx| f(&tx));
        self.note(r)
    }

    /// Runs `f` in a write transaction and commits it if `f` succeeds (an error aborts it).
    pub fn write<R>(&self, durability: Durability, f: impl FnOnce(&WriteTransaction) -> Result<R>) -> Result<R> {
        self.reopen_if_failed()?;
        let guard = self.db.read();
        let db = guard.as_ref().ok_or_else(|| closed(&self.file))?;
        let r = (|| {
            let mut tx = db.begin_write().db()?;
            if durability == Durability::Soft {
                tx.set_durability(redb::Durability::None).db()?;
            }
            let out = f(&tx)?;
            tx.commit().db()?;
            Ok(out)
        })();
        self.note(r)
    }
}

fn closed(file: &Path) -> Error {
    Error::corrupt("catalog", file, "the database could not be reopened after an earlier failure")
}

fn open_file(file: &Path) -> Result<redb::Database> {
    // Every open checks every page's checksum: the catalog is small (a few MB for tens of
    // thousands of streams), and a damaged page is then an error at open, never a misread.
    redb::Builder::new().set_check_integrity_on_open(true).open(file).db()
}

/// Creates a catalog with every table as `catalog.redb.new`, fills it with `fill` in the same
/// transaction, makes it durable, then renames it into place.
pub fn create(dir: &Path, fill: impl FnOnce(&WriteTransaction) -> Result<()>) -> Result<()> {
    let new = dir.join(NEW_FILE);
    crate::fsutil::create_dir_durable(dir)?;
    if new.exists() {
        std::fs::remove_file(&new).map_err(|e| Error::io("remove", &new, e))?;
    }
    {
        let db = redb::Builder::new().create(&new).db()?;
        let tx = db.begin_write().db()?;
        for t in TABLES {
            tx.open_table(t).db()?;
        }
        fill(&tx)?;
        tx.commit().db()?;
        db.close().db()?;
    }
    let f = std::fs::File::open(&new).map_err(|e| Error::io("open", &new, e))?;
    f.sync_all().map_err(|e| Error::io("fsync", &new, e))?;
    let file = dir.join(FILE);
    std::fs::rename(&new, &file).map_err(|e| Error::io("rename", &new, e))?;
    crate::fsutil::sync_dir(dir)
}
