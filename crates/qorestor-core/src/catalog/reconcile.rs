//! Checking the catalog against its redundant records (`records.rs`) and, on repair, making
//! them agree: how `verify` checks the records and how `verify --repair` rebuilds a catalog.
//!
//! Records are written after the catalog commit and before a change is acknowledged, so every
//! acknowledged change is in them. Which side wins where they differ:
//! - A readable record whose row differs from the catalog (or is missing from it, or is a
//!   tombstone of a row the catalog still has): **the record** (the catalog lost a commit, or
//!   was rebuilt; at worst the catalog held a change that was never acknowledged).
//! - A catalog row with no record, or whose record is unreadable: **the catalog** (its record
//!   is written again).
//! - A stream's record counts only while its recipe exists (a deletion removes the recipe
//!   first); of two live records for one name, the newer stream (larger id) wins.
//! - An unreadable record whose row is not in the catalog cannot be restored: it is named.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use redb::TableHandle;

use super::records::{CatalogRecord, RecordKind};
use super::store::{Durability, OrCatalog, Table};
use super::{
    decode_value, scan_prefix, Catalog, ContainerRecord, RecycledRecord, StreamRecord, CONTAINERS, GROUPS,
    KIND_BIN_ENTRY, KIND_CONTAINER, KIND_STREAM, META, MIRRORED, NEXT_ID, RECYCLE_BIN, STREAMS,
};
use crate::error::Result;

/// What a comparison of catalog and records found (and, on repair, did).
#[derive(Debug, Default)]
pub(crate) struct Reconciled {
    /// Disagreements and unreadable records, one sentence each.
    pub problems: Vec<String>,
    /// Of `problems`, those repair fixed.
    pub fixed: Vec<String>,
    /// Rows repair put back into the catalog from their records, by what they are.
    pub restored: Vec<String>,
    /// What could not be restored (an unreadable record whose row the catalog lacks).
    pub not_restored: Vec<String>,
}

/// (table name, key) of a row.
type RowId = (String, Vec<u8>);

/// A row as the catalog or a record has it.
struct Row {
    value: Vec<u8>,
}

fn is_stream_table(name: &str) -> bool {
    name == STREAMS.name() || name == RECYCLE_BIN.name()
}

/// The stream id a `streams` or `recycle_bin` value carries.
fn stream_id(table: &str, value: &[u8]) -> Option<u64> {
    if table == STREAMS.name() {
        decode_value::<StreamRecord>(KIND_STREAM, value).ok().map(|s| s.id)
    } else {
        decode_value::<RecycledRecord>(KIND_BIN_ENTRY, value).ok().map(|r| r.stream.id)
    }
}

fn container_id(key: &[u8]) -> Option<u64> {
    key.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes)
}

impl Catalog {
    /// Every row of the mirrored tables, the id counter left out.
    fn mirrored_rows(&self) -> Result<BTreeMap<RowId, Row>> {
        let mut out = BTreeMap::new();
        for table in MIRRORED {
            for (k, v) in self.store.read(|tx| scan_prefix(&tx.open_table(table).db()?, b""))? {
                if table.name() == META.name() && k == NEXT_ID {
                    continue;
                }
                out.insert((table.name().to_string(), k), Row { value: v });
            }
        }
        Ok(out)
    }

    /// What a row is, for a report: `storage group g1`, `container c (record library)`...
    fn describe(&self, names: &HashMap<u64, String>, table: &str, key: &[u8], value: Option<&[u8]>) -> String {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let container = |k: &[u8]| {
            container_id(k).map_or_else(|| "?".into(), |id| names.get(&id).cloned().unwrap_or_else(|| format!("#{id}")))
        };
        match table {
            "groups" => format!("storage group {}", text(key)),
            "containers" => format!("container {}", text(key)),
            "meta" => {
                let key = text(key);
                let id = |p: &str| key.strip_prefix(p).and_then(|n| n.parse::<u64>().ok());
                if let Some(s) = key.strip_prefix("setting/") {
                    format!("system setting {s}")
                } else if let Some(c) = id("replication/") {
                    format!("replication link of container {}", container(&c.to_be_bytes()))
                } else if let Some(g) = id("quarantine/") {
                    format!("quarantine list of storage group #{g}")
                } else if key == "cleaner/schedules" {
                    "cleaner schedules".into()
                } else {
                    format!("engine record {key}")
                }
            }
            "container_meta" => format!("record {} of container {}", text(key.get(8..).unwrap_or(&[])), container(key)),
            "streams" => format!("stream {}/{}", container(key), text(key.get(8..).unwrap_or(&[]))),
            _ => {
                let id = value.and_then(|v| stream_id(table, v)).map_or_else(|| "?".into(), |i| i.to_string());
                let name = value
                    .and_then(|v| decode_value::<RecycledRecord>(KIND_BIN_ENTRY, v).ok())
                    .map_or_else(|| "?".into(), |r| r.stream.name);
                format!("recycle-bin version {id} of {}/{name}", container(key))
            }
        }
    }

    /// Container names by id, from the catalog and from `records` (a rebuilt catalog has none
    /// yet).
    fn container_names(&self, records: &[CatalogRecord]) -> Result<HashMap<u64, String>> {
        let rows = self.store.read(|tx| scan_prefix(&tx.open_table(CONTAINERS).db()?, b""))?;
        let recorded = records.iter().filter(|r| r.table == CONTAINERS.name()).filter_map(|r| r.value.as_deref());
        Ok(rows
            .iter()
            .map(|(_, v)| v.as_slice())
            .chain(recorded)
            .filter_map(|v| decode_value::<ContainerRecord>(KIND_CONTAINER, v).ok())
            .map(|c| (c.id, c.name))
            .collect())
    }

    fn set_row(&self, table: &str, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let Some(t) = MIRRORED.into_iter().find(|t| t.name() == table) else { return Ok(()) };
        self.store.write(Durability::Durable, |tx| {
            let mut t = tx.open_table(t).db()?;
            match value {
                Some(v) => drop(t.insert(key, v).db()?),
                None => drop(t.remove(key).db()?),
            }
            Ok(())
        })
    }

    /// Compares the catalog with its records; with `repair`, makes them agree (see the module
    /// documentation). `recipe_exists(group id, stream id)` says whether a stream's recipe is
    /// there.
    pub(crate) fn reconcile(&self, repair: bool, recipe_exists: &dyn Fn(u32, u64) -> bool) -> Result<Reconciled> {
        let mut out = Reconciled::default();
        let catalog = self.mirrored_rows()?;
        let records = self.records.read_all(RecordKind::Row)?;
        let streams = self.records.read_all(RecordKind::Stream)?;
        self.reconcile_rows(repair, &catalog, records, &mut out)?;
        // Stream rows need the containers (restored above) to find their recipes.
        let catalog = self.mirrored_rows()?;
        self.reconcile_streams(repair, &catalog, streams, recipe_exists, &mut out)?;
        if repair {
            self.raise_id_counter()?;
        }
        Ok(out)
    }

    fn reconcile_rows(
        &self,
        repair: bool,
        catalog: &BTreeMap<RowId, Row>,
        records: Vec<(PathBuf, std::result::Result<CatalogRecord, String>)>,
        out: &mut Reconciled,
    ) -> Result<()> {
        let mut damaged: HashMap<PathBuf, String> = HashMap::new();
        let mut seen: HashSet<PathBuf> = HashSet::new();
        // Groups and containers first, so that rows naming them are restored after them.
        let mut good: Vec<CatalogRecord> = Vec::new();
        for (path, r) in records {
            match r {
                Ok(r) => good.push(r),
                Err(why) => drop(damaged.insert(path, why)),
            }
        }
        let names = self.container_names(&good)?;
        let order = |t: &str| [GROUPS.name(), CONTAINERS.name()].iter().position(|n| *n == t).unwrap_or(2);
        good.sort_by_key(|r| order(&r.table));
        for r in good {
            let path = self.records.row_path(&r.table, &r.key);
            seen.insert(path);
            let current = catalog.get(&(r.table.clone(), r.key.clone())).map(|row| row.value.as_slice());
            if current == r.value.as_deref() || is_stream_table(&r.table) {
                continue;
            }
            let what = self.describe(&names, &r.table, &r.key, r.value.as_deref().or(current));
            let problem = match (&r.value, current) {
                (Some(_), None) => format!("{what} is missing from the catalog (its record has it)"),
                (Some(_), Some(_)) => format!("{what} differs from its record (the record is newer)"),
                (None, _) => format!("{what} was removed (its record says so) but the catalog still has it"),
            };
            out.problems.push(problem.clone());
            if repair {
                self.set_row(&r.table, &r.key, r.value.as_deref())?;
                out.fixed.push(problem);
                if r.value.is_some() {
                    out.restored.push(what);
                }
            }
        }
        for ((table, key), row) in catalog.iter().filter(|((t, _), _)| !is_stream_table(t)) {
            let path = self.records.row_path(table, key);
            if seen.contains(&path) {
                continue;
            }
            let what = self.describe(&names, table, key, Some(&row.value));
            let problem = match damaged.remove(&path) {
                Some(why) => format!("the record of {what} is unreadable ({why})"),
                None => format!("{what} has no redundant record"),
            };
            out.problems.push(problem.clone());
            if repair {
                self.mirror(
                    MIRRORED.into_iter().find(|t| t.name() == table).unwrap_or(META),
                    key,
                    None,
                    Some(&row.value),
                )?;
                out.fixed.push(problem);
            }
        }
        self.report_unrestorable(repair, damaged, out)
    }

    /// Unreadable records whose row the catalog lacks: named, and on repair moved aside
    /// (`.rec.damaged`) so that they are reported once.
    fn report_unrestorable(&self, repair: bool, damaged: HashMap<PathBuf, String>, out: &mut Reconciled) -> Result<()> {
        let mut damaged: Vec<_> = damaged.into_iter().collect();
        damaged.sort();
        for (path, why) in damaged {
            let what = format!("the row recorded in {} (unreadable: {why})", path.display());
            out.problems.push(format!("{what} could not be restored"));
            if repair {
                let aside = path.with_extension("rec.damaged");
                std::fs::rename(&path, &aside).map_err(|e| crate::error::Error::io("rename", &path, e))?;
                out.not_restored.push(what);
            }
        }
        Ok(())
    }

    fn reconcile_streams(
        &self,
        repair: bool,
        catalog: &BTreeMap<RowId, Row>,
        records: Vec<(PathBuf, std::result::Result<CatalogRecord, String>)>,
        recipe_exists: &dyn Fn(u32, u64) -> bool,
        out: &mut Reconciled,
    ) -> Result<()> {
        let names = self.container_names(&[])?;
        let rows = self.store.read(|tx| scan_prefix(&tx.open_table(CONTAINERS).db()?, b""))?;
        let groups: HashMap<u64, u32> = rows
            .iter()
            .filter_map(|(_, v)| decode_value::<ContainerRecord>(KIND_CONTAINER, v).ok())
            .map(|c| (c.id, c.group_id))
            .collect();
        let has_recipe =
            |key: &[u8], id: u64| container_id(key).and_then(|c| groups.get(&c)).is_some_and(|g| recipe_exists(*g, id));
        // The stream records that count: readable, of a stream whose recipe exists; of two
        // live ones for one name, the larger id.
        let mut wanted: BTreeMap<RowId, (u64, Vec<u8>)> = BTreeMap::new();
        let mut damaged: HashMap<u64, (PathBuf, String)> = HashMap::new();
        for (path, r) in records {
            let id = path.file_stem().and_then(|s| s.to_str()).and_then(|h| u64::from_str_radix(h, 16).ok());
            let r = match (r, id) {
                (Ok(r), Some(id)) if r.value.as_deref().and_then(|v| stream_id(&r.table, v)) == Some(id) => r,
                (r, id) => {
                    let why = r.err().unwrap_or_else(|| "its row is not the stream the file name says".into());
                    damaged.insert(id.unwrap_or(u64::MAX), (path, why));
                    continue;
                }
            };
            let (Some(value), Some(id)) = (r.value, id) else { continue };
            if !has_recipe(&r.key, id) {
                if repair && !catalog.values().any(|row| stream_id_any(&row.value) == Some(id)) {
                    // The stream is gone (its recipe was removed first): a leftover record.
                    self.records.remove(&path)?;
                }
                continue;
            }
            let slot = wanted.entry((r.table, r.key)).or_insert((id, value.clone()));
            if id > slot.0 {
                *slot = (id, value);
            }
        }
        // The streams whose record wins (a losing record of a name is stale: the catalog wins).
        let recorded: HashSet<u64> = wanted.values().map(|(id, _)| *id).collect();
        for ((table, key), (id, value)) in &wanted {
            let current = catalog.get(&(table.clone(), key.clone()));
            if current.map(|r| r.value.as_slice()) == Some(value.as_slice()) {
                continue;
            }
            // A newer live stream of the name that has no record of its own: the catalog wins.
            let newer = current.and_then(|r| stream_id(table, &r.value)).filter(|c| c > id && !recorded.contains(c));
            if newer.is_some() {
                continue;
            }
            let what = self.describe(&names, table, key, Some(value));
            let problem = match current {
                None => format!("{what} is missing from the catalog (its record has it)"),
                Some(_) => format!("{what} differs from its record (the record is newer)"),
            };
            out.problems.push(problem.clone());
            if repair {
                self.set_row(table, key, Some(value))?;
                out.fixed.push(problem);
                out.restored.push(what);
            }
        }
        for ((table, key), row) in catalog.iter().filter(|((t, _), _)| is_stream_table(t)) {
            if wanted.contains_key(&(table.clone(), key.clone())) {
                continue;
            }
            let Some(id) = stream_id(table, &row.value) else { continue };
            let what = self.describe(&names, table, key, Some(&row.value));
            let problem = if recorded.contains(&id) {
                format!("{what} is elsewhere in its record (the record is newer)")
            } else if let Some((_, why)) = damaged.remove(&id) {
                format!("the record of {what} is unreadable ({why})")
            } else {
                format!("{what} has no redundant record")
            };
            out.problems.push(problem.clone());
            if repair {
                let t: Table = if table == STREAMS.name() { STREAMS } else { RECYCLE_BIN };
                if recorded.contains(&id) {
                    self.set_row(table, key, None)?;
                } else {
                    self.mirror(t, key, None, Some(&row.value))?;
                }
                out.fixed.push(problem);
            }
        }
        // Unreadable stream records of streams the catalog lacks: the stream comes back from
        // its recipe (verify's orphan recipes), without the record's extra state.
        let mut left: Vec<_> = damaged.into_values().collect();
        left.sort();
        for (path, why) in left {
            let problem = format!("stream record {} is unreadable ({why})", path.display());
            out.problems.push(problem.clone());
            if repair {
                self.records.remove(&path)?;
                out.fixed.push(problem);
                out.not_restored.push(format!(
                    "the state recorded in {} (the stream, if its recipe is there, comes back from it as a live stream)",
                    path.display()
                ));
            }
        }
        Ok(())
    }
}

/// The stream id a `streams` or `recycle_bin` value carries, whichever it is.
fn stream_id_any(value: &[u8]) -> Option<u64> {
    stream_id(STREAMS.name(), value).or_else(|| stream_id(RECYCLE_BIN.name(), value))
}
