//! A new stream from a prefix of another: the kept whole chunks are referenced, not copied.
//!
//! Tape semantics need it (writing in the middle of a tape file discards what follows, and the
//! kept part must not be written again). The new stream's recipe starts with the source's
//! recipe entries of the whole chunks that lie inside the prefix; a prefix that ends inside a
//! chunk re-feeds that chunk's first bytes to the writer as data (they are chunked, and
//! deduplicated, like any written bytes). The writer then takes more data as usual and is
//! published by [`StreamWriter::finish`]. The inherited chunks are announced to the storage
//! group ([`GroupStore::note_inherited`]) so that the cleaner protects them while the writer
//! runs, as it protects chunks a writer looks up.

use std::io::{Read, Write};

use super::Engine;
use crate::error::{Error, Result};
use crate::group::GroupStore;
use crate::pack::ChunkLoc;
use crate::reader::StreamReader;
use crate::recipe::{read_recipe, recipe_path, Recipe};
use crate::writer::StreamWriter;

impl GroupStore {
    /// Announces chunks that a writer references without looking them up (a stream started
    /// from a prefix of another): they must stay stored while the writer runs, as if the writer
    /// had looked them up. The cleaner's in-flight protection hooks in here; until it exists
    /// this records nothing (no chunk is ever deleted without a cleaner).
    pub fn note_inherited(&self, locs: &[ChunkLoc]) {
        let _ = locs;
    }
}

impl Engine {
    /// Starts writing stream `name` of `container` whose first `len` bytes are the first `len`
    /// bytes of the finished stream `source` of the same container. Whole chunks of the prefix
    /// are referenced (no data copied); the bytes of a chunk cut by the prefix's end are read
    /// and written again. The source is untouched (and may be replaced or deleted once this
    /// returns). `len` larger than the source is [`crate::ErrorKind::InvalidInput`].
    pub fn create_stream_from_prefix(
        &self,
        container: &str,
        name: &str,
        source: &str,
        len: u64,
    ) -> Result<StreamWriter> {
        super::check_stream_name(name)?;
        let c = self.container_record(container)?;
        let s = self.stream_record(&c, source)?;
        if len > s.logical_len {
            return Err(Error::invalid(
                "prefix length",
                len.to_string(),
                format!("stream {container}/{source} has only {} bytes", s.logical_len),
            ));
        }
        let store = self.store_for(&c)?;
        let recipe = read_recipe(&recipe_path(store.recipes_dir(), s.id))?;
        let mut kept = 0u64;
        let mut whole = 0usize;
        while whole < recipe.entries.len() && kept + recipe.entries[whole].raw_len as u64 <= len {
            kept += recipe.entries[whole].raw_len as u64;
            whole += 1;
        }
        let inherited = &recipe.entries[..whole];
        let locs: Vec<ChunkLoc> = inherited.iter().map(|e| e.loc).collect();
        store.note_inherited(&locs);
        let mut w = StreamWriter::start(self.inner.clone(), store.clone(), c, name.to_string(), inherited)?;
        if kept < len {
            let e = recipe.entries[whole];
            let partial = Recipe { header: recipe.header.clone(), entries: vec![e], logical_len: e.raw_len as u64 };
            let mut r = StreamReader::new(store, partial, format!("{container}/{source}"));
            let mut buf = vec![0u8; (len - kept) as usize];
            r.read_exact(&mut buf).map_err(|e| Error::io("read prefix of", format!("{container}/{source}"), e))?;
            w.write_all(&buf).map_err(|e| Error::io("write prefix to", format!("{container}/{name}"), e))?;
        }
        Ok(w)
    }
}
