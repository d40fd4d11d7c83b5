//! Container replication to another data directory (a second disk, or a mounted second site)
//! or, over TCP, to another qorestor's replication listener ([`listen`]; `HOST:PORT` targets,
//! module `remote`). Both go through the same steps (trait `ReplicaTarget`); the receiving
//! side is module `local` in either case (the listener runs it on the target for the remote
//! source).
//!
//! One pass ([`Engine::run_replication`]) brings the replica container up to date:
//! 1. The target gets the source's storage group (same name, policy and, for an encrypted
//!    group, the same encryption record: the wrapped keys travel, so fingerprints match and the
//!    replica opens with the same passphrase) and a container of the same name and type,
//!    marked read-only (`replica_of`).
//! 2. Each source stream the target does not have yet (by name and source stream id, kept in
//!    the source's replication record) is sent in batches of recipe entries: for each batch one
//!    "which of these fingerprints are missing" exchange (`GroupStore::lookup_batch` on the
//!    target), then only the missing chunk records travel, as stored (compressed, sealed if
//!    encrypted; never decrypted), each checked (header, fingerprint, CRC) before it is stored.
//!    The stream is published on the target like a local write: packs durable, recipe synced,
//!    catalog entry last. The source's record notes it right after. An OST image's metadata
//!    (date, copy number, properties) goes with it into the replica's recipe.
//! 3. Streams deleted at the source are deleted from the replica.
//!
//! A pass interrupted at any point is resumed by the next one: published streams are skipped
//! and chunks already stored on the target are found by the exchange and not sent again.
//! `bytes_sent` counts what the exchange moves: over TCP, every byte of every frame both ways;
//! to a directory, the same exchange's size (32 bytes per fingerprint asked, one bit per answer,
//! every chunk record sent (48-byte header and payload), 36 bytes per recipe entry and the
//! stream's name and sizes). A rate limit paces the pass to that count.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::catalog::{ContainerRecord, GroupRecord, StreamRecord};
use crate::crypto::Passphrase;
use crate::engine::{now_secs, Engine, GroupOptions};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::format::RECORD_HEADER_LEN;
use crate::group::GroupStore;
use crate::pack::{check_record_payload, decode_record_header, ChunkLoc};
use crate::progress::Progress;
use crate::recipe::{read_recipe_header, recipe_path, visit_recipe, ImageMeta, RecipeEntry};

mod local;
mod remote;
mod tls;
pub(crate) mod wire;

pub use remote::{check_target, listen, serve_listener, HANDSHAKE_TIMEOUT, LISTENER_LIMITS, PRE_AUTH_MAX_FRAME};
pub use tls::WireEncryption;

/// Recipe entries per "which are missing" exchange, at most (the protocol's limit). Each
/// exchange costs a round trip to a remote target, so a batch is as large as it can be: a pass
/// over a 50 ms link moves one batch per 50 ms.
const BATCH: usize = wire::MAX_BATCH;
/// How errors name the sending side of a replication session (a target names itself).
const SOURCE: &str = "the replication source";
/// Stored bytes of the chunks of one batch, at most (a batch ends when it reaches this): what a
/// pass killed mid-way may have to send again, and what one protocol frame must hold (chunks
/// can be up to 4 MiB).
const BATCH_BYTES: u64 = 16 << 20;

/// A container's replication: where to, how fast, and what the last pass did. Kept in the
/// source catalog's engine state records under `replication/<container id>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ReplicationRecord {
    target: String,
    limit_bytes_per_s: Option<u64>,
    stopped: bool,
    /// Streams the replica holds: name → source stream id.
    sent: BTreeMap<String, u64>,
    last: Option<ReplicationRun>,
    /// A pass was running (`running` left behind means it was interrupted).
    running: bool,
    /// For a `HOST:PORT` target: the target's replication password, hex of its bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    /// For a `HOST:PORT` target: encryption on the wire.
    #[serde(default)]
    encryption: WireEncryption,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicationRun {
    /// Start, seconds since the Unix epoch.
    pub started: u64,
    /// End, if it ended.
    pub finished: Option<u64>,
    /// Bytes the exchange moved to the target (see the module documentation).
    pub bytes_sent: u64,
    /// Logical bytes of the streams the pass brought up to date.
    pub logical_bytes: u64,
    /// Streams sent.
    pub streams_sent: u64,
    /// Streams deleted from the replica because they are gone at the source.
    pub streams_deleted: u64,
    /// Streams already up to date.
    pub streams_up_to_date: u64,
    /// Chunk records sent.
    pub chunks_sent: u64,
    /// Chunks the target already had.
    pub chunks_present: u64,
    /// Why the pass failed, if it did.
    pub error: Option<String>,
}

/// A container's replication as reported to users (`replication status`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicationInfo {
    /// The source container.
    pub container: String,
    /// The target data directory.
    pub target: String,
    /// `idle`, `running`, `interrupted`, `failed` or `stopped`.
    pub state: String,
    /// Rate limit, bytes per second.
    pub limit_bytes_per_s: Option<u64>,
    /// Encryption on the wire (`none` for a directory target).
    pub encryption: WireEncryption,
    /// Streams the replica holds.
    pub streams_replicated: u64,
    /// Bytes sent by the last pass.
    pub bytes_sent: u64,
    /// Logical bytes of the streams the last pass brought up to date.
    pub logical_bytes: u64,
    /// The last pass, if any.
    pub last: Option<ReplicationRun>,
}

fn key(c: &ContainerRecord) -> String {
    format!("replication/{}", c.id)
}

/// Whether a target names a host and port (`HOST:PORT`) rather than a directory.
pub fn is_host_port(target: &str) -> bool {
    !target.contains('/')
        && target
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Paces a pass to a byte rate.
struct Limiter {
    rate: Option<u64>,
    started: Instant,
}

impl Limiter {
    fn pace(&self, sent: u64) {
        if let Some(rate) = self.rate.filter(|r| *r > 0) {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }

    /// Stored bytes per batch: [`BATCH_BYTES`], or half a second's worth at the pass's rate
    /// limit (at least 256 KiB), so that a limited pass sends in small bursts.
    fn batch_bytes(&self) -> u64 {
        match self.rate.filter(|r| *r > 0) {
            Some(rate) => (rate / 2).clamp(256 << 10, BATCH_BYTES),
            None => BATCH_BYTES,
        }
    }
}

/// Where a pass sends: a replica in a data directory this process opens ([`local`]), or a
/// remote qorestor's replication listener ([`remote`]). One stream at a time: `begin_stream`,
/// then for each batch `missing` and `store`, then `end_stream`.
pub(crate) trait ReplicaTarget {
    /// Creates (or checks) the replica of `group` and `container`; `origin` names the source.
    fn prepare(&mut self, group: &GroupRecord, container: &ContainerRecord, origin: &str) -> Result<()>;
    /// Names of the streams the replica container holds.
    fn stream_names(&mut self) -> Result<Vec<String>>;
    /// Starts receiving stream `name` (replacing the replica's stream of that name when it ends);
    /// `image` is the metadata of an OST image, written into the replica's recipe as well.
    fn begin_stream(&mut self, name: &str, created: u64, image: Option<&ImageMeta>) -> Result<()>;
    /// For a batch of the stream's chunks (fingerprint, raw length), in order: whether the
    /// target wants the record (it lacks the chunk, and this is its first mention in the batch).
    fn missing(&mut self, entries: &[(Fingerprint, u32)]) -> Result<Vec<bool>>;
    /// The records wanted by the last `missing`, in order, as the source stores them. A remote
    /// target may return before it stored them; its failure then fails the next call.
    fn store(&mut self, records: &[&[u8]]) -> Result<()>;
    /// Publishes the stream (durable packs, recipe, catalog entry); returns its logical length.
    fn end_stream(&mut self) -> Result<u64>;
    /// Deletes a stream from the replica.
    fn delete_stream(&mut self, name: &str) -> Result<()>;
    /// Bytes that crossed to the target so far (see the module documentation).
    fn bytes_sent(&self) -> u64;
}

impl Engine {
    fn replication_record(&self, c: &ContainerRecord) -> Result<ReplicationRecord> {
        self.catalog().meta(&key(c))?.ok_or_else(|| Error::not_found("replication of container", c.name.clone()))
    }

    fn replication_info(&self, c: &ContainerRecord, r: &ReplicationRecord) -> ReplicationInfo {
        let state = if r.stopped {
            "stopped"
        } else if r.running {
            "interrupted"
        } else if r.last.as_ref().is_some_and(|l| l.error.is_some()) {
            "failed"
        } else {
            "idle"
        };
        let last = r.last.clone();
        ReplicationInfo {
            container: c.name.clone(),
            target: r.target.clone(),
            state: state.into(),
            limit_bytes_per_s: r.limit_bytes_per_s,
            encryption: r.encryption,
            streams_replicated: r.sent.len() as u64,
            bytes_sent: last.as_ref().map_or(0, |l| l.bytes_sent),
            logical_bytes: last.as_ref().map_or(0, |l| l.logical_bytes),
            last,
        }
    }

    /// Sets up the replication of `container` to the data directory `target` (created if
    /// missing), paced to `limit_bytes_per_s` if given. A `HOST:PORT` target needs the target's
    /// replication password: [`Engine::add_remote_replication`].
    pub fn add_replication(
        &self,
        container: &str,
        target: &str,
        limit_bytes_per_s: Option<u64>,
    ) -> Result<ReplicationInfo> {
        if is_host_port(target) {
            return Err(Error::invalid(
                "replication target",
                target,
                "a HOST:PORT target needs the target's replication password",
            ));
        }
        if target.is_empty() {
            return Err(Error::invalid("replication target", target, "give a data directory"));
        }
        let here = std::fs::canonicalize(self.dir()).map_err(|e| Error::io("resolve", self.dir(), e))?;
        if std::fs::canonicalize(target).is_ok_and(|t| t == here) {
            return Err(Error::invalid("replication target", target, "it is this data directory"));
        }
        self.insert_replication(
            container,
            ReplicationRecord { target: target.into(), limit_bytes_per_s, ..Default::default() },
        )
    }

    /// Sets up the replication of `container` to another qorestor's replication listener at
    /// `target` (`HOST:PORT`, `qorestor serve --replication-listen`), which admits sources
    /// that know its replication password (set there with
    /// [`Engine::set_replication_password`]). The password is kept in this catalog, for later
    /// passes.
    pub fn add_remote_replication(
        &self,
        container: &str,
        target: &str,
        limit_bytes_per_s: Option<u64>,
        encryption: WireEncryption,
        password: &Passphrase,
    ) -> Result<ReplicationInfo> {
        if !is_host_port(target) {
            return Err(Error::invalid("replication target", target, "expected HOST:PORT"));
        }
        let r = ReplicationRecord {
            target: target.into(),
            limit_bytes_per_s,
            password: Some(crate::crypto::hex(password.as_bytes())),
            encryption,
            ..Default::default()
        };
        self.insert_replication(container, r)
    }

    fn insert_replication(&self, container: &str, r: ReplicationRecord) -> Result<ReplicationInfo> {
        let c = self.container_record(container)?;
        if c.replica_of.is_some() {
            return Err(Error::Conflict(format!("container {container:?} is itself a replica")));
        }
        if self.catalog().meta::<ReplicationRecord>(&key(&c))?.is_some() {
            return Err(Error::AlreadyExists { what: "replication of container", name: container.into() });
        }
        self.catalog().put_meta(&key(&c), &r)?;
        Ok(self.replication_info(&c, &r))
    }

    /// The replication of `container`.
    pub fn replication(&self, container: &str) -> Result<ReplicationInfo> {
        let c = self.container_record(container)?;
        Ok(self.replication_info(&c, &self.replication_record(&c)?))
    }

    /// Marks a replication stopped (`true`) or not; the next [`Engine::run_replication`] clears
    /// the mark. (A daemon running scheduled passes will skip stopped replications.)
    pub fn set_replication_stopped(&self, container: &str, stopped: bool) -> Result<ReplicationInfo> {
        let c = self.container_record(container)?;
        let mut r = self.replication_record(&c)?;
        r.stopped = stopped;
        self.catalog().put_meta(&key(&c), &r)?;
        Ok(self.replication_info(&c, &r))
    }

    /// Removes a container's replication (the replica stays as it is).
    pub fn delete_replication(&self, container: &str) -> Result<()> {
        let c = self.container_record(container)?;
        self.replication_record(&c)?;
        self.catalog().remove_meta(&key(&c))?;
        Ok(())
    }

    /// Runs one replication pass of `container` (see the module documentation). With
    /// `resync`, what the source knows the replica holds is forgotten first, so every stream
    /// is compared again (chunks the target has are still not sent).
    pub fn run_replication(&self, container: &str, resync: bool, progress: &dyn Progress) -> Result<ReplicationInfo> {
        let c = self.container_record(container)?;
        let mut r = self.replication_record(&c)?;
        r.stopped = false;
        if resync {
            r.sent.clear();
        }
        r.running = true;
        let mut run = ReplicationRun { started: now_secs(), ..Default::default() };
        r.last = Some(run.clone());
        self.catalog().put_meta(&key(&c), &r)?;
        let result = self.replicate(&c, &mut r, &mut run, progress);
        run.finished = Some(now_secs());
        if let Err(e) = &result {
            run.error = Some(e.to_string());
        }
        r.running = false;
        r.last = Some(run);
        self.catalog().put_meta(&key(&c), &r)?;
        progress.finish();
        result?;
        Ok(self.replication_info(&c, &r))
    }

    fn replicate(
        &self,
        c: &ContainerRecord,
        r: &mut ReplicationRecord,
        run: &mut ReplicationRun,
        progress: &dyn Progress,
    ) -> Result<()> {
        let (mut target, origin): (Box<dyn ReplicaTarget>, String) = if is_host_port(&r.target) {
            let password = r.password.as_deref().and_then(crate::crypto::unhex);
            let remote = remote::RemoteReplica::connect(&r.target, password.as_deref(), r.encryption)?;
            (Box::new(remote), format!("{}:{}", self.system_name()?, self.dir().display()))
        } else {
            (Box::new(local::LocalReplica::open(Path::new(&r.target))?), self.dir().display().to_string())
        };
        let result = self.replicate_to(&mut *target, &origin, c, r, run, progress);
        run.bytes_sent = target.bytes_sent();
        result
    }

    fn replicate_to(
        &self,
        target: &mut dyn ReplicaTarget,
        origin: &str,
        c: &ContainerRecord,
        r: &mut ReplicationRecord,
        run: &mut ReplicationRun,
        progress: &dyn Progress,
    ) -> Result<()> {
        let group = self.group_by_id(c.group_id)?;
        target.prepare(&group, c, origin)?;
        let src_store = self.inner.group_store(&group)?;
        let streams = self.catalog().streams(c.id)?;
        let mut present: std::collections::HashSet<String> = target.stream_names()?.into_iter().collect();
        // Streams gone at the source go from the replica first: on a full target that is what
        // makes room (with a cleaner run there) for the streams still to come.
        let live: std::collections::HashSet<&str> = streams.iter().map(|s| s.name.as_str()).collect();
        let gone: Vec<String> = present.iter().filter(|n| !live.contains(n.as_str())).cloned().collect();
        for name in gone {
            target.delete_stream(&name)?;
            r.sent.remove(&name);
            present.remove(&name);
            run.streams_deleted += 1;
        }
        let todo: Vec<&StreamRecord> =
            streams.iter().filter(|s| r.sent.get(&s.name) != Some(&s.id) || !present.contains(&s.name)).collect();
        run.streams_up_to_date = (streams.len() - todo.len()) as u64;
        progress.set_length(todo.iter().map(|s| s.logical_len).sum());
        let limiter = Limiter { rate: r.limit_bytes_per_s, started: Instant::now() };
        for s in todo {
            if progress.stop_requested() {
                return Err(crate::progress::stopped("replication"));
            }
            let sender = StreamSender { src: &src_store, limiter: &limiter };
            sender.send(target, s, run, progress)?;
            r.sent.insert(s.name.clone(), s.id);
            self.catalog().put_meta(&key(c), &*r)?;
        }
        Ok(())
    }

    /// The target's copy of a source group: created with the source's policy and encryption
    /// record; an existing one must hold the same keys (new rotated keys are added).
    pub(crate) fn replica_group(&self, g: &GroupRecord) -> Result<GroupRecord> {
        let _guard = self.inner.group_update.lock();
        let Some(mut t) = self.catalog().group(&g.name)? else {
            let opts = GroupOptions { compression: g.compression, chunking: g.chunking };
            return self.insert_group(&g.name, opts, g.encryption.clone());
        };
        match (&mut t.encryption, &g.encryption) {
            (None, None) => {}
            (Some(a), Some(b)) if a.master == b.master && a.kdf == b.kdf => {
                if a.keys != b.keys {
                    *a = b.clone();
                    self.catalog().replace_group(&t)?;
                }
            }
            _ => {
                return Err(Error::Conflict(format!(
                    "storage group {:?} on the target does not hold the source's keys (or encryption differs)",
                    g.name
                )))
            }
        }
        Ok(t)
    }

    /// The target's read-only copy of a source container.
    pub(crate) fn replica_container(
        &self,
        c: &ContainerRecord,
        group: &GroupRecord,
        source: &str,
    ) -> Result<ContainerRecord> {
        let origin = format!("{source}/{}", c.name);
        if let Some(t) = self.catalog().container(&c.name)? {
            if t.replica_of.as_deref() != Some(origin.as_str()) || t.group_id != group.id {
                return Err(Error::Conflict(format!(
                    "container {:?} on the target exists and is not the replica of {origin}",
                    c.name
                )));
            }
            return Ok(t);
        }
        self.add_container(&c.name, &group.name, c.kind)?;
        let mut t = self.container_record(&c.name)?;
        t.replica_of = Some(origin);
        self.catalog().replace_container(&t)?;
        Ok(t)
    }

    pub(crate) fn delete_replica_stream(
        &self,
        c: &ContainerRecord,
        store: &GroupStore,
        s: &StreamRecord,
    ) -> Result<()> {
        self.delete_with_recipe(store, s.id, || self.catalog().remove_stream_id(c.id, &s.name, s.id).map(|_| ()))
    }
}

/// Sends one stream.
struct StreamSender<'a> {
    src: &'a Arc<GroupStore>,
    limiter: &'a Limiter,
}

impl StreamSender<'_> {
    fn send(
        &self,
        target: &mut dyn ReplicaTarget,
        s: &StreamRecord,
        run: &mut ReplicationRun,
        progress: &dyn Progress,
    ) -> Result<()> {
        let path = recipe_path(self.src.recipes_dir(), s.id);
        let image = read_recipe_header(&path)?.image;
        target.begin_stream(&s.name, s.created, image.as_ref())?;
        let mut batch = Vec::with_capacity(BATCH);
        let mut batch_bytes = 0;
        let most_bytes = self.limiter.batch_bytes();
        let mut failed = None;
        visit_recipe(&path, |e| {
            if failed.is_none() {
                batch.push(*e);
                batch_bytes += e.loc.record_len();
                if batch.len() == BATCH || batch_bytes >= most_bytes {
                    failed = self.send_batch(target, &mut batch, run, progress).err();
                    batch_bytes = 0;
                }
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if !batch.is_empty() {
            self.send_batch(target, &mut batch, run, progress)?;
        }
        let logical_len = target.end_stream()?;
        run.streams_sent += 1;
        run.logical_bytes += logical_len;
        Ok(())
    }

    /// One exchange: ask which chunks the target lacks, then send those records as stored.
    fn send_batch(
        &self,
        target: &mut dyn ReplicaTarget,
        batch: &mut Vec<RecipeEntry>,
        run: &mut ReplicationRun,
        progress: &dyn Progress,
    ) -> Result<()> {
        let asked: Vec<(Fingerprint, u32)> = batch.iter().map(|e| (e.fp, e.raw_len)).collect();
        let wanted = target.missing(&asked)?;
        if wanted.len() != batch.len() {
            return Err(Error::protocol(
                "the replication target",
                format!("it answered {} of {} fingerprints", wanted.len(), batch.len()),
            ));
        }
        let mut records = Vec::new();
        for (e, want) in batch.iter().zip(&wanted) {
            if *want {
                records.push(self.read_source_record(e)?);
                run.chunks_sent += 1;
            } else {
                run.chunks_present += 1;
            }
        }
        let refs: Vec<&[u8]> = records.iter().map(|r| r.as_slice()).collect();
        target.store(&refs)?;
        progress.inc(batch.iter().map(|e| e.raw_len as u64).sum());
        // The pause that keeps the pass to its rate comes after the records arrived.
        self.limiter.pace(target.bytes_sent());
        batch.clear();
        Ok(())
    }

    /// A chunk's record as the source stores it, checked (header, fingerprint, CRC); found again
    /// through the index if the cleaner moved it.
    fn read_source_record(&self, e: &RecipeEntry) -> Result<Vec<u8>> {
        let read = |loc: ChunkLoc| -> Option<Vec<u8>> {
            let mut rec = vec![0u8; loc.record_len() as usize];
            self.src.read_at(loc.pack, loc.offset as u64, &mut rec).ok()?;
            let h = decode_record_header(&rec).ok()?;
            (h.fp == e.fp && check_record_payload(&rec, &h, &rec[RECORD_HEADER_LEN..]).is_ok()).then_some(rec)
        };
        read(e.loc).or_else(|| self.src.locate(&e.fp).filter(|l| *l != e.loc).and_then(read)).ok_or_else(|| {
            Error::corrupt(
                "chunk record",
                PathBuf::from(self.src.recipes_dir()),
                format!("chunk {} is missing or damaged at the source; run qorestor verify", e.fp.to_hex()),
            )
        })
    }
}
