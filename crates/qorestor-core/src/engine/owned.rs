//! Containers whose streams belong to a frontend: a `vtl` container's streams are its tape
//! library's segments, an `ost` container's those of the OST server.
//!
//! The engine's general calls ([`Engine::create_stream`], [`Engine::delete_stream`],
//! [`Engine::restore_stream`]; [`Engine::delete_container`] for a `vtl` container, whose
//! library is deleted with `qorestor vtl delete`) refuse such a container, so every
//! caller that is not the owner (the CLI, later REST) is held to it; the owning frontend goes
//! through [`OwnedStreams`], which it gets with [`Engine::owned_streams`]. A `vtl` container's
//! recycle bin cannot be turned on (a tape's segments are never binned).

use super::{check_stream_name, check_writable, Engine};
use crate::catalog::{ContainerKind, ContainerRecord};
use crate::engine::StreamInfo;
use crate::error::{Error, Result};
use crate::recipe::{read_recipe_header, recipe_path, ImageMeta};
use crate::writer::StreamWriter;

/// Refuses a change, by anyone but its owner, to a container whose streams a frontend owns.
pub(crate) fn check_not_owned(c: &ContainerRecord) -> Result<()> {
    match c.kind {
        ContainerKind::Vtl => Err(Error::Conflict(format!(
            "container {:?} is a virtual tape library: its streams are tape segments that only the library \
             writes or deletes (use the qorestor vtl commands: vtl show, vtl delete)",
            c.name
        ))),
        ContainerKind::Ost => Err(Error::Conflict(format!(
            "container {:?} is an OST storage unit: its streams are images that only the OST server writes or deletes",
            c.name
        ))),
        _ => Ok(()),
    }
}

/// The recycle bin retention of a container, if its deleted and replaced streams are binned
/// (never for a tape library's segments).
pub(crate) fn bin_retention(c: &ContainerRecord) -> Option<u64> {
    c.recycle_retention.filter(|_| c.kind != ContainerKind::Vtl)
}

/// A frontend's hold on the streams of a container it owns (see the module documentation).
pub struct OwnedStreams {
    pub(super) engine: Engine,
    pub(super) container: String,
}

impl Engine {
    /// The streams of `container`, for the frontend that owns it: its type must be `kind`
    /// (`vtl` for a tape library, `ost` for the OST server). Only that frontend calls this.
    pub fn owned_streams(&self, container: &str, kind: ContainerKind) -> Result<OwnedStreams> {
        let c = self.container_record(container)?;
        if c.kind != kind {
            return Err(Error::Conflict(format!(
                "container {container:?} is of type {}, not {}",
                c.kind.as_str(),
                kind.as_str()
            )));
        }
        Ok(OwnedStreams { engine: self.clone(), container: container.to_string() })
    }
}

impl OwnedStreams {
    /// Starts writing a stream, as [`Engine::create_stream`].
    pub fn create_stream(&self, name: &str) -> Result<StreamWriter> {
        check_stream_name(name)?;
        let c = self.engine.container_record(&self.container)?;
        check_writable(&c)?;
        self.engine.start_stream(c, name)
    }

    /// Starts a stream from a prefix of another, as [`Engine::create_stream_from_prefix`].
    pub fn create_stream_from_prefix(&self, name: &str, source: &str, len: u64) -> Result<StreamWriter> {
        self.engine.stream_from_prefix(&self.container, name, source, len)
    }

    /// The container's name.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// Starts writing image `name` of an OST storage unit from raw bytes (a passthrough write:
    /// the engine cuts the chunks), its metadata written with its recipe. Refused when a stream
    /// of that name exists (images are never replaced).
    pub fn create_image(&self, name: &str, meta: &ImageMeta) -> Result<StreamWriter> {
        check_stream_name(name)?;
        super::ingest::check_image_meta(meta)?;
        let c = self.engine.container_record(&self.container)?;
        check_writable(&c)?;
        if self.engine.catalog().stream(c.id, name)?.is_some() {
            return Err(Error::AlreadyExists { what: "image", name: format!("{}/{name}", c.name) });
        }
        let store = self.engine.writable_store_for(&c)?;
        StreamWriter::start(self.engine.inner.clone(), store, c, name.to_string(), &[], Some(meta.clone()))
    }

    /// The metadata written with a stream's recipe (`None` for a stream that is not an image).
    pub fn image_meta(&self, name: &str) -> Result<Option<ImageMeta>> {
        let c = self.engine.container_record(&self.container)?;
        let s = self.engine.stream_record(&c, name)?;
        let store = self.engine.store_for(&c)?;
        Ok(read_recipe_header(&recipe_path(store.recipes_dir(), s.id))?.image)
    }

    /// Deletes a stream, as [`Engine::delete_stream`].
    pub fn delete_stream(&self, name: &str) -> Result<StreamInfo> {
        let c = self.engine.container_record(&self.container)?;
        self.engine.remove_stream(&c, name)
    }

    /// Deletes the container, its streams and its metadata, as [`Engine::delete_container`].
    pub fn delete_container(self, force: bool) -> Result<()> {
        let c = self.engine.container_record(&self.container)?;
        self.engine.remove_container(&c, force)
    }
}
