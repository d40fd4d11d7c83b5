//! A new stream from a prefix of another: the kept whole chunks are referenced, not copied.
//!
//! Tape semantics need it (writing in the middle of a tape file discards what follows, and the
//! kept part must not be written again). The new stream's recipe starts with the source's
//! recipe entries of the whole chunks that lie inside the prefix; a prefix that ends inside a
//! chunk re-feeds that chunk's first bytes to the writer as data (they are chunked, and
//! deduplicated, like any written bytes). The writer then takes more data as usual and is
//! published by [`StreamWriter::finish`]. The packs of the inherited chunks are pinned with the
//! writer's pin ([`GroupStore::pin_packs`]) so that the cleaner keeps them while the writer
//! runs, as it keeps the packs of chunks a writer looks up; if the cleaner is reclaiming one of
//! them (it may have rewritten the source's recipe), the recipe is read again and the writer
//! started again.

use std::io::{Read, Write};

use super::Engine;
use crate::error::{Error, Result};
use crate::reader::StreamReader;
use crate::recipe::{read_recipe, recipe_path, Recipe};
use crate::writer::StreamWriter;

/// How often the recipe is read again when the cleaner reclaims an inherited pack meanwhile.
const PIN_ATTEMPTS: usize = 16;

impl Engine {
    /// Starts writing stream `name` of `container` whose first `len` bytes are the first `len`
    /// bytes of the finished stream `source` of the same container. Whole chunks of the prefix
    /// are referenced (no data copied); the bytes of a chunk cut by the prefix's end are read
    /// and written again. The source is untouched (and may be replaced or deleted once this
    /// returns). `len` larger than the source is [`crate::ErrorKind::InvalidInput`].
    /// A container whose streams a frontend owns is refused (see [`super::OwnedStreams`]).
    pub fn create_stream_from_prefix(
        &self,
        container: &str,
        name: &str,
        source: &str,
        len: u64,
    ) -> Result<StreamWriter> {
        super::owned::check_not_owned(&self.container_record(container)?)?;
        self.stream_from_prefix(container, name, source, len)
    }

    pub(super) fn stream_from_prefix(
        &self,
        container: &str,
        name: &str,
        source: &str,
        len: u64,
    ) -> Result<StreamWriter> {
        super::check_stream_name(name)?;
        let c = self.container_record(container)?;
        super::check_writable(&c)?;
        let store = self.writable_store_for(&c)?;
        let mut attempt = 0;
        let (recipe, whole, kept, mut w) = loop {
            let s = self.stream_record(&c, source)?;
            if len > s.logical_len {
                return Err(Error::invalid(
                    "prefix length",
                    len.to_string(),
                    format!("stream {container}/{source} has only {} bytes", s.logical_len),
                ));
            }
            let recipe = read_recipe(&recipe_path(store.recipes_dir(), s.id))?;
            let mut kept = 0u64;
            let mut whole = 0usize;
            while whole < recipe.entries.len() && kept + recipe.entries[whole].raw_len as u64 <= len {
                kept += recipe.entries[whole].raw_len as u64;
                whole += 1;
            }
            let inherited = &recipe.entries[..whole];
            let mut packs: Vec<u32> = inherited.iter().map(|e| e.loc.pack).collect();
            packs.sort_unstable();
            packs.dedup();
            let w =
                StreamWriter::start(self.inner.clone(), store.clone(), c.clone(), name.to_string(), inherited, None)?;
            if w.pin_inherited(&packs) {
                break (recipe, whole, kept, w);
            }
            drop(w);
            attempt += 1;
            if attempt == PIN_ATTEMPTS {
                return Err(Error::Conflict(format!(
                    "the cleaner keeps reclaiming packs of {container}/{source}; try again"
                )));
            }
        };
        if kept < len {
            let e = recipe.entries[whole];
            let partial = Recipe { header: recipe.header.clone(), entries: vec![e], logical_len: e.raw_len as u64 };
            let mut r = StreamReader::new(store, partial, format!("{container}/{source}"))?;
            let mut buf = vec![0u8; (len - kept) as usize];
            r.read_exact(&mut buf).map_err(|e| Error::io("read prefix of", format!("{container}/{source}"), e))?;
            w.write_all(&buf).map_err(|e| Error::io("write prefix to", format!("{container}/{name}"), e))?;
        }
        Ok(w)
    }
}
