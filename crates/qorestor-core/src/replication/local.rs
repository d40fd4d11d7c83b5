//! The receiving side of replication: a replica container in a data directory this process
//! opened. A pass to a directory drives it directly; the replication listener drives it for a
//! remote source (see [`super::remote`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::{ReplicaTarget, SOURCE};
use crate::catalog::{ContainerRecord, GroupRecord, StreamRecord};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::format::RECORD_HEADER_LEN;
use crate::group::{GroupStore, Lookup, NewChunk, WriterPin};
use crate::pack::{check_record_payload, decode_chunk, decode_record_header};
use crate::recipe::{ImageMeta, RecipeEntry, RecipeHeader, RecipeWriter};

/// Bytes counted per fingerprint asked, per recipe entry, and per stream header (the
/// in-process exchange has no wire; these are what the network protocol moves).
const ASK_BYTES: u64 = 32;
const ENTRY_BYTES: u64 = 36;
const STREAM_HEADER_BYTES: u64 = 64;

/// A replica container being brought up to date.
pub(crate) struct LocalReplica {
    engine: Engine,
    /// Set by [`ReplicaTarget::prepare`].
    dest: Option<(Arc<GroupStore>, ContainerRecord)>,
    stream: Option<IncomingStream>,
    bytes: u64,
}

/// A stream being received: its recipe so far and the batch waiting for its records.
struct IncomingStream {
    pin: WriterPin,
    recipe: RecipeWriter,
    id: u64,
    name: String,
    created: u64,
    new_chunks: u64,
    new_stored: u64,
    /// The batch asked last: (fingerprint, raw length) and what the lookup found.
    asked: Vec<(Fingerprint, u32)>,
    found: Vec<Lookup>,
    /// Per asked entry: the index of the record that supplies it, when it was missing.
    supplier: Vec<Option<usize>>,
    records_expected: usize,
}

impl LocalReplica {
    /// Opens (creating if needed) the data directory `dir` as a replication target.
    pub(crate) fn open(dir: &Path) -> Result<LocalReplica> {
        Ok(LocalReplica::on(Engine::open_or_create_as(dir, "qorestor replication")?))
    }

    /// A replication target on an engine already open (the listener's).
    pub(crate) fn on(engine: Engine) -> LocalReplica {
        LocalReplica { engine, dest: None, stream: None, bytes: 0 }
    }

    fn dest(&self) -> Result<&(Arc<GroupStore>, ContainerRecord)> {
        self.dest.as_ref().ok_or_else(|| Error::protocol(SOURCE, "no replica container prepared"))
    }

    fn stream(&mut self) -> Result<&mut IncomingStream> {
        self.stream.as_mut().ok_or_else(|| Error::protocol(SOURCE, "no stream begun"))
    }

    /// Unpins and forgets the stream being received (its temporary recipe goes with it).
    fn drop_stream(&mut self) {
        if let (Some(s), Some((store, _))) = (self.stream.take(), self.dest.as_ref()) {
            store.unpin(&s.pin);
        }
    }
}

impl Drop for LocalReplica {
    fn drop(&mut self) {
        self.drop_stream();
    }
}

impl ReplicaTarget for LocalReplica {
    fn prepare(&mut self, group: &GroupRecord, container: &ContainerRecord, origin: &str) -> Result<()> {
        self.drop_stream();
        let g = self.engine.replica_group(group)?;
        let c = self.engine.replica_container(container, &g, origin)?;
        let store = self.engine.inner.group_store(&g)?;
        self.dest = Some((store, c));
        Ok(())
    }

    fn stream_names(&mut self) -> Result<Vec<String>> {
        let (_, c) = self.dest()?;
        Ok(self.engine.catalog().streams(c.id)?.into_iter().map(|s| s.name).collect())
    }

    fn begin_stream(&mut self, name: &str, created: u64, image: Option<&ImageMeta>) -> Result<()> {
        // The source's names, as they are (one stored before control characters were refused
        // is replicated too).
        crate::engine::check_stream_address(name)?;
        self.drop_stream();
        let (store, c) = self.dest()?;
        let id = self.engine.catalog().next_id()?;
        let header = RecipeHeader {
            group_id: store.record().id,
            stream_id: id,
            created,
            container: c.name.clone(),
            stream: name.into(),
            image: image.cloned(),
        };
        let recipe = RecipeWriter::create(store.recipes_dir(), &header)?;
        let pin = store.pin_writer();
        self.stream = Some(IncomingStream {
            pin,
            recipe,
            id,
            name: name.into(),
            created,
            new_chunks: 0,
            new_stored: 0,
            asked: Vec::new(),
            found: Vec::new(),
            supplier: Vec::new(),
            records_expected: 0,
        });
        self.bytes += STREAM_HEADER_BYTES + name.len() as u64;
        if let Some(i) = image {
            // Its date, copy number and properties, as the wire's BeginImage carries them.
            self.bytes += 16 + i.properties.len() as u64;
        }
        Ok(())
    }

    fn missing(&mut self, entries: &[(Fingerprint, u32)]) -> Result<Vec<bool>> {
        let store = self.dest()?.0.clone();
        let s = self.stream()?;
        if s.records_expected > 0 {
            return Err(Error::protocol(SOURCE, "the previous batch's records never came"));
        }
        s.asked = entries.to_vec();
        let fps: Vec<Fingerprint> = entries.iter().map(|e| e.0).collect();
        store.lookup_batch(&s.pin, &fps, &mut s.found);
        // Each missing chunk is asked for once, however often the batch names it.
        let mut first: HashMap<Fingerprint, usize> = HashMap::new();
        let mut wanted = Vec::with_capacity(entries.len());
        s.supplier.clear();
        for (i, (fp, _)) in entries.iter().enumerate() {
            if s.found[i].is_some() {
                s.supplier.push(None);
                wanted.push(false);
            } else if let Some(&r) = first.get(fp) {
                s.supplier.push(Some(r));
                wanted.push(false);
            } else {
                first.insert(*fp, first.len());
                s.supplier.push(Some(first.len() - 1));
                wanted.push(true);
            }
        }
        s.records_expected = first.len();
        self.bytes += ASK_BYTES * entries.len() as u64 + (entries.len() as u64).div_ceil(8);
        Ok(wanted)
    }

    fn store(&mut self, records: &[&[u8]]) -> Result<()> {
        let store = self.dest()?.0.clone();
        let s = self.stream()?;
        if records.len() != s.records_expected {
            return Err(Error::protocol(
                SOURCE,
                format!("{} chunk records sent for {} missing", records.len(), s.records_expected),
            ));
        }
        // Every record is checked before anything is stored: header, fingerprint, checksum, and,
        // when this side can read the group (not encrypted, or unlocked), that its bytes
        // decode and hash to the fingerprint: a record that does not would poison every later
        // chunk deduplicated against it.
        let crypto = store.crypto().ok();
        let mut scratch = Vec::new();
        let mut headers = Vec::with_capacity(records.len());
        let mut want = vec![None; records.len()];
        for (i, supplier) in s.supplier.iter().enumerate() {
            if let Some(r) = *supplier {
                want[r].get_or_insert(s.asked[i]);
            }
        }
        for (rec, want) in records.iter().zip(&want) {
            let (fp, raw_len) = want.expect("every record supplies an asked entry");
            let bad = |why: &str| {
                Error::corrupt("replicated chunk record", store.recipes_dir(), format!("chunk {}: {why}", fp.to_hex()))
            };
            let h = decode_record_header(rec).map_err(|e| bad(&e.to_string()))?;
            if h.fp != fp || h.raw_len != raw_len {
                return Err(bad("the record holds another chunk"));
            }
            check_record_payload(rec, &h, &rec[RECORD_HEADER_LEN..]).map_err(|e| bad(&e.to_string()))?;
            if let Some(crypto) = &crypto {
                scratch.clear();
                decode_chunk(rec, &fp, crypto, &mut scratch).map_err(|e| bad(&e.to_string()))?;
            }
            headers.push(h);
        }
        let chunks: Vec<(Lookup, Option<NewChunk<'_>>)> = s
            .supplier
            .iter()
            .enumerate()
            .map(|(i, supplier)| match *supplier {
                None => (s.found[i], None),
                Some(r) => {
                    let h = &headers[r];
                    let payload = &records[r][RECORD_HEADER_LEN..];
                    (None, Some(NewChunk { fp: h.fp, raw_len: h.raw_len, codec: h.codec, payload }))
                }
            })
            .collect();
        let mut placed = Vec::with_capacity(chunks.len());
        store.store_batch(&s.pin, &chunks, &mut placed)?;
        for ((fp, raw_len), (loc, appended)) in s.asked.iter().zip(&placed) {
            s.recipe.push(&RecipeEntry { fp: *fp, raw_len: *raw_len, loc: *loc })?;
            if *appended {
                s.new_chunks += 1;
                s.new_stored += loc.record_len();
            }
        }
        // Arrived records survive a kill of this process: the next pass finds them.
        store.flush_open()?;
        s.records_expected = 0;
        let entries = s.asked.len() as u64;
        self.bytes += records.iter().map(|r| r.len() as u64).sum::<u64>() + ENTRY_BYTES * entries;
        Ok(())
    }

    fn end_stream(&mut self) -> Result<u64> {
        let (store, c) = self.dest()?.clone();
        if self.stream()?.records_expected > 0 {
            return Err(Error::protocol(SOURCE, "the last batch's records never came"));
        }
        let s = self.stream.take().expect("checked above");
        let result = (|| {
            store.make_durable()?;
            let (chunks, logical_len) = (s.recipe.len(), s.recipe.logical_len());
            s.recipe.finish()?;
            let record = StreamRecord {
                id: s.id,
                name: s.name.clone(),
                logical_len,
                chunks,
                new_chunks: s.new_chunks,
                new_stored_bytes: s.new_stored,
                created: s.created,
            };
            if let Some(old) = self.engine.catalog().put_stream(c.id, &record)? {
                self.engine.inner.remove_recipe(&store, old.id);
            }
            Ok(logical_len)
        })();
        store.unpin(&s.pin);
        result
    }

    fn delete_stream(&mut self, name: &str) -> Result<()> {
        let (store, c) = self.dest()?.clone();
        let s = self.engine.catalog().stream(c.id, name)?.ok_or_else(|| Error::not_found("replica stream", name))?;
        self.engine.delete_replica_stream(&c, &store, &s)?;
        self.bytes += STREAM_HEADER_BYTES + name.len() as u64;
        Ok(())
    }

    fn bytes_sent(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ContainerKind;
    use crate::compress::Codec;
    use crate::pack::encode_record_header;
    use crate::stats::StatsScope;
    use crate::DEFAULT_GROUP;

    #[test]
    fn a_record_whose_bytes_do_not_hash_to_its_fingerprint_is_refused() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let src = Engine::create(a.path()).unwrap();
        src.add_container("c", DEFAULT_GROUP, ContainerKind::Object).unwrap();
        let group = src.catalog().group(DEFAULT_GROUP).unwrap().unwrap();
        let container = src.container_record("c").unwrap();
        let mut replica = LocalReplica::open(b.path()).unwrap();
        replica.prepare(&group, &container, "source").unwrap();
        replica.begin_stream("s", 0, None).unwrap();
        // A record with a right header and checksum, but other bytes than the fingerprint's.
        let claimed = Fingerprint::of(b"the bytes the fingerprint names");
        let forged = b"other bytes of the same length!";
        let header = encode_record_header(&claimed, forged.len() as u32, Codec::Raw, forged);
        let record = [&header[..], &forged[..]].concat();
        assert_eq!(replica.missing(&[(claimed, forged.len() as u32)]).unwrap(), vec![true]);
        let e = replica.store(&[&record]).unwrap_err();
        assert!(e.to_string().contains(&claimed.to_hex()), "{e}");
        assert_eq!(replica.engine.stats(&StatsScope::System).unwrap().stored_bytes, 0);
        // The same record with the right bytes goes in.
        let right = b"the bytes the fingerprint names";
        let header = encode_record_header(&claimed, right.len() as u32, Codec::Raw, right);
        let record = [&header[..], &right[..]].concat();
        replica.begin_stream("s", 0, None).unwrap();
        assert_eq!(replica.missing(&[(claimed, right.len() as u32)]).unwrap(), vec![true]);
        replica.store(&[&record]).unwrap();
        assert_eq!(replica.end_stream().unwrap(), right.len() as u64);
    }
}
