//! Client ingest: the OST server stores images whose chunks a client cut, fingerprinted and
//! (optionally) compressed itself.
//!
//! The exchange, per image ([`OwnedStreams::start_ingest`] → [`ClientIngest`]):
//! 1. The client cuts with the group's parameters ([`OwnedStreams::ingest_params`]; the same
//!    [`crate::Chunker`] and [`crate::Fingerprint`] the engine uses) and asks
//!    [`ClientIngest::missing`] for a batch of fingerprints. The image holds a writer pin for
//!    its whole life, so a chunk answered "present" stays until the image is published or
//!    dropped (the cleaner never deletes a pinned pack).
//! 2. [`ClientIngest::append`] takes the batch's recipe entries (fingerprint, raw length) and
//!    the chunks the server lacked as [`ClientChunk`]s (fingerprint, raw length, codec,
//!    payload). Only plain codecs are accepted (raw or zstd; never sealed). Every chunk is
//!    decoded and re-hashed before anything is stored, and the engine builds the record header
//!    and its CRC itself; the container quota, the group quota and the space reserve apply as
//!    for a local write (the last two in the group store's batch append).
//! 3. [`ClientIngest::publish`] makes the packs and the recipe durable, then the catalog entry.
//!    An ingest dropped before that leaves no stream (its chunks are garbage for the cleaner).
//!
//! Encrypted groups key their chunker and fingerprints: a client cannot cut matching chunks, so
//! client ingest refuses them (the OST server falls back to passthrough writes).

use std::collections::HashMap;
use std::sync::Arc;

use super::{check_writable, now_secs, Engine, OwnedStreams, StreamInfo};
use crate::catalog::{Catalog, ContainerKind, ContainerRecord};
use crate::chunker::ChunkParams;
use crate::compress::{decompress_append, Codec, Compression};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::format::MAX_CHUNK_LEN;
use crate::group::{GroupStore, Lookup, NewChunk, WriterPin};
use crate::recipe::{ImageMeta, RecipeEntry, RecipeHeader, RecipeWriter, MAX_IMAGE_PROPERTIES};

/// What a client needs to cut, fingerprint and compress chunks the way a storage group does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestParams {
    /// The group's chunking parameters.
    pub chunking: ChunkParams,
    /// The group's compression policy (`none`: send chunks raw).
    pub compression: Compression,
    /// Whether the group keys its chunker and fingerprints (encrypted): then client ingest is
    /// refused and only passthrough writes work.
    pub keyed: bool,
}

/// A chunk as a client made it.
#[derive(Debug, Clone, Copy)]
pub struct ClientChunk<'a> {
    /// BLAKE3 of the raw bytes.
    pub fp: Fingerprint,
    /// Raw length, 1 to 4 MiB.
    pub raw_len: u32,
    /// [`Codec::Raw`] or [`Codec::Zstd`].
    pub codec: Codec,
    /// The encoded bytes.
    pub payload: &'a [u8],
}

/// An image being stored from client-made chunks (see the module documentation).
pub struct ClientIngest {
    engine: Engine,
    store: Arc<GroupStore>,
    container: ContainerRecord,
    name: String,
    stream_id: u64,
    pin: WriterPin,
    recipe: Option<RecipeWriter>,
    new_chunks: u64,
    new_stored: u64,
    /// The container's quota and the logical bytes of its other live streams at the start.
    container_quota: Option<(u64, u64)>,
    scratch: Vec<u8>,
}

/// Checks an image's metadata before it is written to a recipe.
pub(crate) fn check_image_meta(meta: &ImageMeta) -> Result<()> {
    if meta.properties.len() > MAX_IMAGE_PROPERTIES {
        let why = format!("at most {MAX_IMAGE_PROPERTIES} bytes");
        return Err(Error::invalid("image properties", format!("{} bytes", meta.properties.len()), why));
    }
    Ok(())
}

/// The container's quota and the logical bytes of its live streams other than `name`.
pub(crate) fn container_quota(catalog: &Catalog, c: &ContainerRecord, name: &str) -> Result<Option<(u64, u64)>> {
    let Some(q) = c.quota else { return Ok(None) };
    let others = catalog.streams(c.id)?.iter().filter(|s| s.name != name).map(|s| s.logical_len).sum();
    Ok(Some((q, others)))
}

impl OwnedStreams {
    /// The chunking and compression parameters of the container's storage group.
    pub fn ingest_params(&self) -> Result<IngestParams> {
        let c = self.engine.container_record(&self.container)?;
        let g = self.engine.group_by_id(c.group_id)?;
        Ok(IngestParams { chunking: g.chunking, compression: g.compression, keyed: g.encryption.is_some() })
    }

    /// Starts storing image `name` from client-made chunks. Refused for a replica, for a
    /// container that is not an OST storage unit, for an encrypted group (see
    /// [`IngestParams::keyed`]), and when a stream of that name exists (images are never
    /// replaced).
    pub fn start_ingest(&self, name: &str, meta: &ImageMeta) -> Result<ClientIngest> {
        super::check_stream_name(name)?;
        check_image_meta(meta)?;
        let c = self.engine.container_record(&self.container)?;
        check_writable(&c)?;
        if c.kind != ContainerKind::Ost {
            return Err(Error::Conflict(format!(
                "container {:?} is of type {}: only OST storage units take client-made chunks",
                c.name,
                c.kind.as_str()
            )));
        }
        let g = self.engine.group_by_id(c.group_id)?;
        if g.encryption.is_some() {
            return Err(Error::Conflict(format!(
                "storage group {:?} is encrypted: its chunker and fingerprints are keyed, so a client cannot cut \
                 matching chunks (write in passthrough mode)",
                g.name
            )));
        }
        if self.engine.catalog().stream(c.id, name)?.is_some() {
            return Err(Error::AlreadyExists { what: "image", name: format!("{}/{name}", c.name) });
        }
        let store = self.engine.writable_store_for(&c)?;
        let container_quota = container_quota(self.engine.catalog(), &c, name)?;
        let stream_id = self.engine.catalog().next_id()?;
        let header = RecipeHeader {
            group_id: store.record().id,
            stream_id,
            created: now_secs(),
            container: c.name.clone(),
            stream: name.to_string(),
            image: Some(meta.clone()),
        };
        let recipe = RecipeWriter::create(store.recipes_dir(), &header)?;
        let pin = store.pin_writer();
        Ok(ClientIngest {
            engine: self.engine.clone(),
            store,
            container: c,
            name: name.to_string(),
            stream_id,
            pin,
            recipe: Some(recipe),
            new_chunks: 0,
            new_stored: 0,
            container_quota,
            scratch: Vec::new(),
        })
    }
}

impl ClientIngest {
    /// Per fingerprint, whether the group lacks the chunk. A chunk answered present stays
    /// stored until this image is published or dropped.
    pub fn missing(&mut self, fps: &[Fingerprint]) -> Vec<bool> {
        let mut found = Vec::with_capacity(fps.len());
        self.store.lookup_batch(&self.pin, fps, &mut found);
        found.iter().map(Option::is_none).collect()
    }

    /// Logical bytes recorded so far.
    pub fn logical_len(&self) -> u64 {
        self.recipe.as_ref().map_or(0, RecipeWriter::logical_len)
    }

    /// Checks a client's chunk: a plain codec, lengths in range, and bytes that decode to
    /// `raw_len` bytes hashing to its fingerprint.
    fn check_chunk(&mut self, c: &ClientChunk<'_>) -> Result<()> {
        let bad = |why: String| Error::invalid("client chunk", c.fp.to_hex(), why);
        if c.raw_len == 0 || c.raw_len > MAX_CHUNK_LEN {
            return Err(bad(format!("raw length {} is outside 1..={MAX_CHUNK_LEN}", c.raw_len)));
        }
        let raw = match c.codec {
            Codec::Raw if c.payload.len() == c.raw_len as usize => c.payload,
            Codec::Raw => return Err(bad(format!("raw payload of {} bytes for {}", c.payload.len(), c.raw_len))),
            Codec::Zstd if c.payload.len() <= c.raw_len as usize => {
                self.scratch.clear();
                if !decompress_append(c.payload, c.raw_len as usize, &mut self.scratch) {
                    return Err(bad(format!("its zstd payload does not decode to {} bytes", c.raw_len)));
                }
                &self.scratch[..]
            }
            Codec::Zstd => return Err(bad("a zstd payload longer than the raw bytes (send it raw)".into())),
            other => return Err(bad(format!("codec {other:?} is not a plain codec (raw or zstd)"))),
        };
        if Fingerprint::of(raw) != c.fp {
            return Err(bad("its bytes do not hash to its fingerprint".into()));
        }
        Ok(())
    }

    /// Appends a batch of recipe entries (fingerprint, raw length) in image order. `chunks`
    /// supplies the chunks the group lacked (each checked before anything is stored; each must
    /// be named by an entry); every other entry must be stored already.
    pub fn append(&mut self, entries: &[(Fingerprint, u32)], chunks: &[ClientChunk<'_>]) -> Result<()> {
        let mut supplied: HashMap<Fingerprint, usize> = HashMap::with_capacity(chunks.len());
        for (i, c) in chunks.iter().enumerate() {
            self.check_chunk(c)?;
            supplied.insert(c.fp, i);
        }
        let added: u64 = entries.iter().map(|e| e.1 as u64).sum();
        if let Some((quota, others)) = self.container_quota {
            let used = others + self.logical_len() + added;
            if used > quota {
                let name = self.container.name.clone();
                return Err(Error::QuotaExceeded { what: "container", name, quota, used });
            }
        }
        let unsupplied: Vec<Fingerprint> =
            entries.iter().filter(|e| !supplied.contains_key(&e.0)).map(|e| e.0).collect();
        let mut found = Vec::with_capacity(unsupplied.len());
        self.store.lookup_batch(&self.pin, &unsupplied, &mut found);
        let mut found = found.into_iter();
        let mut used = vec![false; chunks.len()];
        let mut batch: Vec<(Lookup, Option<NewChunk<'_>>)> = Vec::with_capacity(entries.len());
        for (fp, raw_len) in entries {
            match supplied.get(fp) {
                Some(&i) => {
                    let c = &chunks[i];
                    if c.raw_len != *raw_len {
                        let why = format!("entry says {raw_len} bytes, the chunk holds {}", c.raw_len);
                        return Err(Error::invalid("client chunk", fp.to_hex(), why));
                    }
                    used[i] = true;
                    let new = NewChunk { fp: *fp, raw_len: *raw_len, codec: c.codec, payload: c.payload };
                    batch.push((None, Some(new)));
                }
                None => match found.next().flatten() {
                    Some(loc) => batch.push((Some(loc), None)),
                    None => {
                        let why = "it was neither sent nor stored before";
                        return Err(Error::invalid("client chunk", fp.to_hex(), why));
                    }
                },
            }
        }
        if let Some(i) = used.iter().position(|u| !u) {
            return Err(Error::invalid("client chunk", chunks[i].fp.to_hex(), "no entry of the batch names it"));
        }
        let mut placed = Vec::with_capacity(batch.len());
        self.store.store_batch(&self.pin, &batch, &mut placed)?;
        let recipe = self.recipe.as_mut().ok_or_else(|| Error::internal("image ingest already published"))?;
        for ((fp, raw_len), (loc, appended)) in entries.iter().zip(&placed) {
            recipe.push(&RecipeEntry { fp: *fp, raw_len: *raw_len, loc: *loc })?;
            if *appended {
                self.new_chunks += 1;
                self.new_stored += loc.record_len();
            }
        }
        Ok(())
    }

    /// Publishes the image: packs durable, recipe durable, catalog entry last.
    pub fn publish(mut self) -> Result<StreamInfo> {
        let recipe = self.recipe.take().ok_or_else(|| Error::internal("image ingest already published"))?;
        crate::writer::publish(
            &self.engine.inner,
            &self.store,
            &self.container,
            &self.pin,
            recipe,
            crate::writer::Published {
                id: self.stream_id,
                name: self.name.clone(),
                new_chunks: self.new_chunks,
                new_stored_bytes: self.new_stored,
            },
        )
    }
}

impl Drop for ClientIngest {
    fn drop(&mut self) {
        // Unpublished: the recipe writer (if still here) removes its temporary file.
        self.store.unpin(&self.pin);
    }
}
