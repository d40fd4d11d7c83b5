//! A tape drive (SSC) and the cartridge mounted in it.
//!
//! The mounted cartridge's data lives in engine streams ("segments", see [`crate::map`]); the
//! drive keeps the cartridge map in memory and at most one open [`StreamWriter`] for the
//! segment being appended. Durability rules:
//! - WRITE returns GOOD once the data is in the writer (buffered mode 1, as real drives do);
//! - WRITE FILEMARKS, REWIND, LOAD UNLOAD, SPACE, LOCATE, READ, ERASE, a move of the cartridge
//!   out of the drive, and the flush interval (bytes or seconds of buffered writes, whichever
//!   comes first) make everything written so far durable: the open segment is finished (packs,
//!   recipe, catalog entry durable) and the cartridge map is written to the catalog;
//! - a cartridge therefore reads back, after a crash, exactly up to its last durable point,
//!   with end of data there.
//!
//! Writing anywhere but at end of data discards what follows, as on a real tape: the map is
//! cut, and the segment the cut falls in is continued by a new stream that starts from a
//! prefix of it ([`Engine::create_stream_from_prefix`], no data copied). Segments dropped
//! from the map are deleted once the new map is durable.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use qorestor_core::{ContainerKind, Engine, OwnedStreams, StreamReader, StreamWriter};

use crate::cdb::{Command, LocateTo, PositionForm, SpaceCode};
use crate::clock::Clock;
use crate::failure::{self, Place};
use crate::map::{CartMap, Object, Segment, TapeMap};
use crate::model::{density_code, generation};
use crate::sense::{Outcome, Sense, BLANK_CHECK, NO_SENSE, VOLUME_OVERFLOW};
use crate::spc::{cut, mode_data, select_pages, Identity, UnitState};
use crate::{MAX_BLOCK_LEN, MAX_TRANSFER};

/// The catalog key of a cartridge's map.
pub(crate) fn map_key(barcode: &str) -> String {
    format!("cart/{barcode}")
}

/// The engine stream name of a segment.
pub(crate) fn segment_name(barcode: &str, id: u64) -> String {
    format!("{barcode}/{id:010}")
}

/// Size of the early-warning zone before the end of a cartridge.
pub(crate) fn early_warning_margin(capacity: u64) -> u64 {
    (capacity / 100).min(4 << 30)
}

/// What the drive needs from its library to run a command.
pub(crate) struct DriveCtx<'a> {
    /// The engine.
    pub engine: &'a Engine,
    /// The library's container name.
    pub library: &'a str,
    /// Flush after this many buffered bytes.
    pub flush_bytes: u64,
    /// Flush after buffered writes this old.
    pub flush_after: Duration,
    /// What the flush interval counts on.
    pub clock: &'a dyn Clock,
    /// The drive's index in the library (none for library-wide work).
    pub drive: Option<u16>,
}

impl DriveCtx<'_> {
    /// The sense for an engine failure of `operation` on the cartridge `barcode`, logged with
    /// the engine's message.
    fn failed(&self, barcode: &str, operation: &'static str, e: impl Into<crate::Error>) -> (Sense, Vec<u8>) {
        let e = e.into();
        let sense = failure::drive_sense(&e);
        failure::log(&Place { library: self.library, barcode, drive: self.drive, operation }, &sense, &e);
        (sense, Vec::new())
    }
}

impl DriveCtx<'_> {
    /// The library's segment streams (only the library writes or deletes them).
    fn segments(&self) -> qorestor_core::Result<OwnedStreams> {
        self.engine.owned_streams(self.library, ContainerKind::Vtl)
    }
}

struct OpenSegment {
    writer: StreamWriter,
    id: u64,
    len: u64,
}

struct SegmentReader {
    index: usize,
    reader: StreamReader,
    pos: u64,
}

/// A cartridge in a drive.
pub(crate) struct Mounted {
    pub barcode: String,
    pub capacity: u64,
    pub write_protected: bool,
    pub worm: bool,
    /// Threaded (LOAD); an UNLOAD leaves the cartridge in the drive for the robot.
    pub loaded: bool,
    map: TapeMap,
    pos: u64,
    writer: Option<OpenSegment>,
    reader: Option<SegmentReader>,
    /// Segments no longer in the map, deleted once the map is durable.
    pending_delete: Vec<u64>,
    dirty: bool,
    unflushed: u64,
    since: Instant,
}

fn residue(n: i64) -> i32 {
    n.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

impl Mounted {
    /// Mounts a cartridge from its durable map (or an empty tape).
    pub fn open(
        ctx: &DriveCtx<'_>,
        barcode: &str,
        capacity: u64,
        write_protected: bool,
        worm: bool,
    ) -> crate::Result<Mounted> {
        let map = load_map(ctx.engine, ctx.library, barcode)?;
        Ok(Mounted {
            barcode: barcode.to_string(),
            capacity,
            write_protected,
            worm,
            loaded: true,
            map: TapeMap::from_map(&map),
            pos: 0,
            writer: None,
            reader: None,
            pending_delete: Vec::new(),
            dirty: false,
            unflushed: 0,
            since: ctx.clock.now(),
        })
    }

    /// The position as (file number, block number within the file): filemarks before the
    /// position, and objects since the last of them.
    pub fn file_position(&self) -> (u64, u64) {
        let file = self.map.filemarks_before(self.pos);
        let start = if file == 0 { 0 } else { self.map.filemark_position(file - 1) + 1 };
        (file, self.pos - start)
    }

    /// Bytes of data on the tape (buffered writes included).
    pub fn used_bytes(&self) -> u64 {
        self.map.data_bytes()
    }

    fn name(&self, id: u64) -> String {
        segment_name(&self.barcode, id)
    }

    /// Whether buffered writes wait for a durable point.
    pub fn has_buffered(&self) -> bool {
        self.writer.is_some() || self.dirty
    }

    /// Whether the flush interval has passed.
    pub fn flush_due(&self, ctx: &DriveCtx<'_>) -> bool {
        self.has_buffered()
            && (self.unflushed >= ctx.flush_bytes
                || ctx.clock.now().saturating_duration_since(self.since) >= ctx.flush_after)
    }

    /// Makes everything written so far durable. On failure the cartridge goes back to its
    /// last durable state (as after a crash).
    pub fn make_durable(&mut self, ctx: &DriveCtx<'_>) -> qorestor_core::Result<()> {
        let result = self.try_make_durable(ctx);
        if result.is_err() {
            self.writer = None;
            self.reader = None;
            self.pending_delete.clear();
            self.dirty = false;
            if let Ok(m) = load_map(ctx.engine, ctx.library, &self.barcode) {
                self.map = TapeMap::from_map(&m);
            }
            self.pos = self.pos.min(self.map.objects());
        }
        result
    }

    fn try_make_durable(&mut self, ctx: &DriveCtx<'_>) -> qorestor_core::Result<()> {
        if let Some(open) = self.writer.take() {
            if open.len > 0 {
                open.writer.finish()?;
                self.map.add_segment(Segment { id: open.id, len: open.len });
            }
        }
        if self.dirty {
            ctx.engine.put_container_meta(ctx.library, &map_key(&self.barcode), &self.map.to_map())?;
            self.dirty = false;
            for id in std::mem::take(&mut self.pending_delete) {
                // Already gone is fine (a crash between the map and the deletion).
                let _ = ctx.segments().and_then(|s| s.delete_stream(&self.name(id)));
            }
        }
        self.unflushed = 0;
        self.since = ctx.clock.now();
        Ok(())
    }

    /// Discards everything from the current position on.
    fn truncate_here(&mut self, ctx: &DriveCtx<'_>) -> qorestor_core::Result<()> {
        if self.pos >= self.map.objects() {
            return Ok(());
        }
        if self.writer.is_some() {
            self.make_durable(ctx)?;
        }
        let keep = self.map.truncate_objects(self.pos);
        let (partial, removed) = self.map.truncate_segments(keep);
        self.reader = None;
        self.dirty = true;
        self.pending_delete.extend(removed.iter().map(|s| s.id));
        if let Some((seg, len)) = partial {
            let id = self.map.new_segment_id();
            let writer = ctx.segments()?.create_stream_from_prefix(&self.name(id), &self.name(seg.id), len)?;
            self.writer = Some(OpenSegment { writer, id, len });
        }
        Ok(())
    }

    /// Appends `len` bytes of data from `offset` to `out`. After a failure the segment reader
    /// is dropped (its position is unknown).
    fn read_data(&mut self, ctx: &DriveCtx<'_>, offset: u64, out: &mut Vec<u8>, len: usize) -> crate::Result<()> {
        let result = self.try_read_data(ctx, offset, out, len);
        if result.is_err() {
            self.reader = None;
        }
        result
    }

    fn try_read_data(&mut self, ctx: &DriveCtx<'_>, offset: u64, out: &mut Vec<u8>, len: usize) -> crate::Result<()> {
        let mut off = offset;
        let mut left = len;
        while left > 0 {
            let (index, in_seg) = self.map.segment_at(off).ok_or_else(|| crate::Error::Corrupt {
                what: "cartridge map",
                library: ctx.library.to_string(),
                detail: format!("{}: no data at byte {off}", self.barcode),
            })?;
            let seg = self.map.segments()[index];
            if self.reader.as_ref().is_none_or(|r| r.index != index) {
                let reader = ctx.engine.open_stream(ctx.library, &self.name(seg.id))?;
                self.reader = Some(SegmentReader { index, reader, pos: 0 });
            }
            let r = self.reader.as_mut().expect("opened above");
            if r.pos != in_seg {
                r.reader.seek(SeekFrom::Start(in_seg)).map_err(|e| io_err(&self.barcode, e))?;
                r.pos = in_seg;
            }
            let n = left.min((seg.len - in_seg) as usize);
            let start = out.len();
            out.resize(start + n, 0);
            r.reader.read_exact(&mut out[start..]).map_err(|e| io_err(&self.barcode, e))?;
            r.pos += n as u64;
            off += n as u64;
            left -= n;
        }
        Ok(())
    }
}

/// The engine's error behind a failed read of a segment.
fn io_err(barcode: &str, e: std::io::Error) -> qorestor_core::Error {
    qorestor_core::Error::from_stream_io(e, "read", format!("cartridge {barcode}"))
}

/// Reads and validates a cartridge's durable map (an empty tape if it has none).
pub(crate) fn load_map(engine: &Engine, library: &str, barcode: &str) -> crate::Result<CartMap> {
    let map: CartMap = engine.container_meta(library, &map_key(barcode))?.unwrap_or_default();
    map.validate().map_err(|detail| crate::Error::Corrupt {
        what: "cartridge map",
        library: library.to_string(),
        detail: format!("{barcode}: {detail}"),
    })?;
    Ok(map)
}

/// A tape drive.
pub(crate) struct Drive {
    pub ident: Identity,
    pub unit: UnitState,
    /// Block length for fixed-block mode (0: variable).
    pub block_len: u32,
    /// Data compression enabled (reported; the engine compresses anyway).
    pub compression: bool,
    pub mounted: Option<Mounted>,
}

impl Drive {
    /// A drive without cartridge.
    pub fn new(ident: Identity) -> Drive {
        Drive {
            ident,
            unit: UnitState { attention: Some(Sense::power_on()), ..UnitState::default() },
            block_len: 0,
            compression: true,
            mounted: None,
        }
    }

    /// The cartridge, if present and loaded.
    fn ready(&mut self) -> Result<&mut Mounted, (Sense, Vec<u8>)> {
        match self.mounted.as_mut() {
            Some(m) if m.loaded => Ok(m),
            _ => Err((Sense::no_medium(), Vec::new())),
        }
    }

    /// Sense data REQUEST SENSE reports when nothing is pending.
    pub fn idle_sense(&self) -> Sense {
        match &self.mounted {
            Some(m) if m.loaded => Sense::default(),
            _ => Sense::no_medium(),
        }
    }

    /// Runs a drive-specific command.
    pub fn execute(&mut self, ctx: &DriveCtx<'_>, cmd: Command, data_out: &[u8]) -> Outcome {
        match cmd {
            Command::TestUnitReady => self.ready().map(|_| Vec::new()),
            Command::ModeSense { ten, dbd, pc, page, subpage, alloc } => {
                let pages = select_pages(pc, page, subpage, &self.mode_pages()).map_err(|s| (s, Vec::new()))?;
                let wp = self.mounted.as_ref().is_some_and(|m| m.write_protected);
                let dev = 0x10 | if wp { 0x80 } else { 0 };
                let block = (!dbd).then(|| self.block_descriptor(pc == 1));
                Ok(mode_data(ten, dev, block, &pages, alloc))
            }
            Command::ModeSelect { ten, len } => self.mode_select(ten, len, data_out),
            Command::ReadBlockLimits => {
                let mut d = vec![0u8; 6];
                d[1..4].copy_from_slice(&MAX_BLOCK_LEN.to_be_bytes()[1..]);
                d[4..6].copy_from_slice(&1u16.to_be_bytes());
                Ok(d)
            }
            Command::ReportDensity { media, alloc } => self.report_density(media, alloc),
            Command::Rewind => {
                let m = self.ready()?;
                m.make_durable(ctx).map_err(|e| ctx.failed(&m.barcode, "REWIND", e))?;
                m.pos = 0;
                Ok(Vec::new())
            }
            Command::LoadUnload { load } => {
                let Some(m) = self.mounted.as_mut() else {
                    return Err((Sense::no_medium(), Vec::new()));
                };
                m.make_durable(ctx).map_err(|e| ctx.failed(&m.barcode, "LOAD UNLOAD", e))?;
                m.pos = 0;
                m.loaded = load;
                Ok(Vec::new())
            }
            Command::Read { fixed, sili, len } => {
                let block_len = self.block_len;
                let m = self.ready()?;
                if m.writer.is_some() {
                    m.make_durable(ctx).map_err(|e| ctx.failed(&m.barcode, "READ", e))?;
                }
                if fixed {
                    if block_len == 0 {
                        return Err((Sense::invalid_cdb_field(1, Some(0)), Vec::new()));
                    }
                    if len as u64 * block_len as u64 > MAX_TRANSFER {
                        return Err((Sense::invalid_cdb_field(2, None), Vec::new()));
                    }
                    read_fixed(m, ctx, len, block_len)
                } else {
                    read_variable(m, ctx, len, sili)
                }
            }
            Command::Write { fixed, len } => {
                let (size, count) = if fixed {
                    if self.block_len == 0 {
                        return Err((Sense::invalid_cdb_field(1, Some(0)), Vec::new()));
                    }
                    (self.block_len, len as u64)
                } else {
                    (len, u64::from(len > 0))
                };
                if size > MAX_BLOCK_LEN || size as u64 * count > MAX_TRANSFER {
                    return Err((Sense::invalid_cdb_field(2, None), Vec::new()));
                }
                if data_out.len() as u64 != size as u64 * count {
                    return Err((Sense::new(crate::sense::ILLEGAL_REQUEST, 0x1A, 0x00), Vec::new()));
                }
                let m = self.ready()?;
                write_blocks(m, ctx, size, count, data_out, fixed)
            }
            Command::WriteFilemarks { immed: _, count } => {
                let m = self.ready()?;
                if count == 0 {
                    m.make_durable(ctx).map_err(|e| ctx.failed(&m.barcode, "WRITE FILEMARKS", e))?;
                    return Ok(Vec::new());
                }
                check_writable(m)?;
                m.truncate_here(ctx).map_err(|e| ctx.failed(&m.barcode, "WRITE FILEMARKS", e))?;
                m.map.append(0, count as u64);
                m.pos = m.map.objects();
                m.dirty = true;
                m.make_durable(ctx).map_err(|e| ctx.failed(&m.barcode, "WRITE FILEMARKS", e))?;
                early_warning(m, 0)
            }
            Command::Erase => {
                let m = self.ready()?;
                check_writable(m)?;
                m.truncate_here(ctx).map_err(|e| ctx.failed(&m.barcode, "ERASE", e))?;
                m.make_durable(ctx).map_err(|e| ctx.failed(&m.barcode, "ERASE", e))?;
                Ok(Vec::new())
            }
            Command::Space { code, count } => {
                let m = self.ready()?;
                m.make_durable(ctx).map_err(|e| ctx.failed(&m.barcode, "SPACE", e))?;
                space(m, code, count)
            }
            Command::Locate { to } => {
                let m = self.ready()?;
                m.make_durable(ctx).map_err(|e| ctx.failed(&m.barcode, "LOCATE", e))?;
                locate(m, to)
            }
            Command::ReadAttribute { service_action, first, alloc } => {
                let m = self.ready()?;
                let view = crate::mam::MamView {
                    barcode: &m.barcode,
                    capacity: m.capacity,
                    used: m.map.data_bytes(),
                    density: density_code(generation(m.capacity)),
                    worm: m.worm,
                    host: &m.map.attributes,
                };
                crate::mam::read_attribute(service_action, first, alloc, &view)
            }
            Command::WriteAttribute { len } => {
                let m = self.ready()?;
                if m.write_protected {
                    return Err((Sense::write_protected(), Vec::new()));
                }
                if data_out.len() < len as usize {
                    return Err((Sense::new(crate::sense::ILLEGAL_REQUEST, 0x1A, 0x00), Vec::new()));
                }
                let writes =
                    crate::mam::parse_write_attribute(&data_out[..len as usize]).map_err(|s| (s, Vec::new()))?;
                crate::mam::apply(&writes, &mut m.map.attributes).map_err(|s| (s, Vec::new()))?;
                m.dirty = true;
                m.make_durable(ctx).map_err(|e| ctx.failed(&m.barcode, "WRITE ATTRIBUTE", e))?;
                Ok(Vec::new())
            }
            Command::ReadPosition { form, alloc } => {
                let m = self.ready()?;
                Ok(cut(read_position(m, form), alloc))
            }
            _ => Err((Sense::invalid_opcode(), Vec::new())),
        }
    }

    fn block_descriptor(&self, changeable: bool) -> [u8; 8] {
        let mut b = [0u8; 8];
        if changeable {
            b[5..8].copy_from_slice(&[0xFF; 3]);
            return b;
        }
        b[0] = self.mounted.as_ref().map_or(0, |m| density_code(generation(m.capacity)));
        b[5..8].copy_from_slice(&self.block_len.to_be_bytes()[1..]);
        b
    }

    /// (code, current, changeable) of each mode page.
    fn mode_pages(&self) -> Vec<(u8, Vec<u8>, Vec<u8>)> {
        let mut rw = vec![0u8; 12];
        rw[0] = 0x01;
        rw[1] = 10;
        let mut dr = vec![0u8; 16];
        dr[0] = 0x02;
        dr[1] = 14;
        let mut comp = vec![0u8; 16];
        comp[0] = 0x0F;
        comp[1] = 14;
        comp[2] = 0x40 | if self.compression { 0x80 } else { 0 }; // DCC, DCE
        comp[3] = 0x80; // DDE
        comp[4..8].copy_from_slice(&1u32.to_be_bytes());
        comp[8..12].copy_from_slice(&1u32.to_be_bytes());
        let mut comp_ch = vec![0u8; 16];
        comp_ch[0] = 0x0F;
        comp_ch[1] = 14;
        comp_ch[2] = 0x80;
        let mut dc = vec![0u8; 16];
        dc[0] = 0x10;
        dc[1] = 14;
        dc[8] = 0x40; // BIS: block identifiers supported
        dc[10] = 0x18; // EEG, SEW
        dc[14] = u8::from(self.compression);
        let mut dc_ch = vec![0u8; 16];
        dc_ch[0] = 0x10;
        dc_ch[1] = 14;
        dc_ch[14] = 0xFF;
        let mut ie = vec![0u8; 12];
        ie[0] = 0x1C;
        ie[1] = 10;
        let blank = |p: &Vec<u8>| {
            let mut c = vec![0u8; p.len()];
            c[0] = p[0];
            c[1] = p[1];
            c
        };
        vec![
            (0x01, rw.clone(), blank(&rw)),
            (0x02, dr.clone(), blank(&dr)),
            (0x0F, comp, comp_ch),
            (0x10, dc, dc_ch),
            (0x1C, ie.clone(), blank(&ie)),
        ]
    }

    fn mode_select(&mut self, ten: bool, len: u32, data_out: &[u8]) -> Outcome {
        if data_out.len() < len as usize {
            return Err((Sense::new(crate::sense::ILLEGAL_REQUEST, 0x1A, 0x00), Vec::new()));
        }
        let list = crate::cdb::parse_mode_select(ten, &data_out[..len as usize]).map_err(|s| (s, Vec::new()))?;
        let bd_at = if ten { 8 } else { 4 };
        if let Some(bl) = list.block_len {
            if bl > MAX_BLOCK_LEN {
                return Err((Sense::invalid_param_field(bd_at as u16 + 5), Vec::new()));
            }
        }
        let mut compression = self.compression;
        for p in &list.pages {
            match (p.code, p.body.len()) {
                (0x0F, 14) => compression = p.body[0] & 0x80 != 0,
                (0x10, 14) => compression = p.body[12] != 0,
                (0x01, 10) | (0x02, 14) | (0x1C, 10) => {}
                _ => return Err((Sense::invalid_param_field(0), Vec::new())),
            }
        }
        if let Some(bl) = list.block_len {
            self.block_len = bl;
        }
        self.compression = compression;
        Ok(Vec::new())
    }

    fn report_density(&self, media: bool, alloc: u32) -> Outcome {
        let gens: Vec<u8> = if media {
            match &self.mounted {
                Some(m) if m.loaded => vec![generation(m.capacity)],
                _ => return Err((Sense::no_medium(), Vec::new())),
            }
        } else {
            (5..=9).collect()
        };
        let mut d = vec![0u8; 4];
        for g in gens {
            let code = density_code(g);
            let mut e = vec![0u8; 52];
            e[0] = code;
            e[1] = code;
            e[2] = 0xA0; // WRTOK, DEFLT
            let cap_mb: u32 = match g {
                5 => 1_500_000,
                6 => 2_500_000,
                7 => 6_000_000,
                8 => 12_000_000,
                _ => 18_000_000,
            };
            e[6..8].copy_from_slice(&127u16.to_be_bytes()); // media width, 0.1 mm
            e[10..12].copy_from_slice(&((g as u16) * 1000).to_be_bytes()); // tracks (nominal)
            e[12..16].copy_from_slice(&cap_mb.to_be_bytes());
            e[16..24].copy_from_slice(&crate::spc::padded("LTO-CVE", 8));
            e[24..32].copy_from_slice(&crate::spc::padded(&format!("U-{}16", g), 8));
            e[32..52].copy_from_slice(&crate::spc::padded(&format!("Ultrium {g}/16T"), 20));
            d.extend_from_slice(&e);
        }
        let n = (d.len() - 2) as u16;
        d[0..2].copy_from_slice(&n.to_be_bytes());
        Ok(cut(d, alloc))
    }
}

fn check_writable(m: &Mounted) -> Result<(), (Sense, Vec<u8>)> {
    if m.write_protected {
        return Err((Sense::write_protected(), Vec::new()));
    }
    if m.worm && m.pos < m.map.objects() {
        return Err((Sense::worm_overwrite(), Vec::new()));
    }
    Ok(())
}

/// CHECK CONDITION with EOM (NO SENSE, 00/02) once the data reaches the early-warning zone.
fn early_warning(m: &Mounted, info: i32) -> Outcome {
    if m.map.data_bytes() >= m.capacity - early_warning_margin(m.capacity) {
        return Err((Sense::new(NO_SENSE, 0x00, 0x02).with_eom().with_info(info), Vec::new()));
    }
    Ok(Vec::new())
}

fn write_blocks(m: &mut Mounted, ctx: &DriveCtx<'_>, size: u32, count: u64, data: &[u8], fixed: bool) -> Outcome {
    if count == 0 {
        return Ok(Vec::new());
    }
    check_writable(m)?;
    // Nothing of the request is written when it fails: INFORMATION is the whole request.
    let asked = residue(if fixed { count as i64 } else { size as i64 });
    let failed = |m: &Mounted, e: crate::Error| {
        let (s, d) = ctx.failed(&m.barcode, "WRITE", e);
        (s.with_info(asked), d)
    };
    m.truncate_here(ctx).map_err(|e| failed(m, e.into()))?;
    let len = size as u64 * count;
    if m.map.data_bytes() + len > m.capacity {
        let s = Sense::new(VOLUME_OVERFLOW, 0x00, 0x02).with_eom().with_info(asked);
        return Err((s, Vec::new()));
    }
    if m.writer.is_none() {
        if !m.has_buffered() {
            // The flush interval counts from the first buffered write.
            m.since = ctx.clock.now();
        }
        let id = m.map.new_segment_id();
        let writer = ctx.segments().and_then(|s| s.create_stream(&m.name(id))).map_err(|e| failed(m, e.into()))?;
        m.writer = Some(OpenSegment { writer, id, len: 0 });
    }
    let open = m.writer.as_mut().expect("opened above");
    if let Err(e) = open.writer.write_all(data) {
        let e = qorestor_core::Error::from_stream_io(e, "write", format!("cartridge {}", m.barcode));
        // The stream failed: back to the last durable point.
        m.writer = None;
        let _ = m.make_durable(ctx);
        return Err(failed(m, e.into()));
    }
    open.len += len;
    m.map.append(size, count);
    m.pos = m.map.objects();
    m.dirty = true;
    m.unflushed += len;
    if m.flush_due(ctx) {
        // The blocks are in the map: a failed flush loses them with the rest since the last
        // durable point, so the whole request counts as not written.
        m.make_durable(ctx).map_err(|e| failed(m, e.into()))?;
    }
    early_warning(m, 0)
}

fn read_variable(m: &mut Mounted, ctx: &DriveCtx<'_>, len: u32, sili: bool) -> Outcome {
    if len == 0 {
        return Ok(Vec::new());
    }
    match m.map.object_at(m.pos) {
        None => Err((Sense::new(BLANK_CHECK, 0x00, 0x05).with_info(residue(len as i64)), Vec::new())),
        Some(Object::Filemark) => {
            m.pos += 1;
            Err((Sense::new(NO_SENSE, 0x00, 0x01).with_filemark().with_info(residue(len as i64)), Vec::new()))
        }
        Some(Object::Block { len: blen, offset }) => {
            let n = blen.min(len) as usize;
            let mut data = Vec::with_capacity(n);
            m.read_data(ctx, offset, &mut data, n).map_err(|e| {
                let (s, _) = ctx.failed(&m.barcode, "READ", e);
                (s.with_info(residue(len as i64)), Vec::new())
            })?;
            m.pos += 1;
            if blen == len || (blen < len && sili) {
                Ok(data)
            } else {
                let s = Sense::new(NO_SENSE, 0x00, 0x00).with_ili().with_info(residue(len as i64 - blen as i64));
                Err((s, data))
            }
        }
    }
}

fn read_fixed(m: &mut Mounted, ctx: &DriveCtx<'_>, count: u32, block_len: u32) -> Outcome {
    let mut data = Vec::with_capacity((count as u64 * block_len as u64) as usize);
    for i in 0..count {
        let left = residue((count - i) as i64);
        match m.map.object_at(m.pos) {
            None => return Err((Sense::new(BLANK_CHECK, 0x00, 0x05).with_info(left), data)),
            Some(Object::Filemark) => {
                m.pos += 1;
                return Err((Sense::new(NO_SENSE, 0x00, 0x01).with_filemark().with_info(left), data));
            }
            Some(Object::Block { len, .. }) if len != block_len => {
                m.pos += 1;
                return Err((Sense::new(NO_SENSE, 0x00, 0x00).with_ili().with_info(left), data));
            }
            Some(Object::Block { len, offset }) => {
                let whole_blocks = data.len();
                if let Err(e) = m.read_data(ctx, offset, &mut data, len as usize) {
                    // The blocks read before the failing one go to the initiator; INFORMATION
                    // counts the ones not transferred, as for any other condition.
                    data.truncate(whole_blocks);
                    let (s, _) = ctx.failed(&m.barcode, "READ", e);
                    return Err((s.with_info(left), data));
                }
                m.pos += 1;
            }
        }
    }
    Ok(data)
}

/// Beginning of partition: NO SENSE, EOM, 00/04.
fn at_bop(left: i64) -> (Sense, Vec<u8>) {
    (Sense::new(NO_SENSE, 0x00, 0x04).with_eom().with_info(residue(left)), Vec::new())
}

fn space(m: &mut Mounted, code: SpaceCode, count: i64) -> Outcome {
    let n = m.map.objects();
    let p = m.pos;
    match code {
        SpaceCode::EndOfData => {
            m.pos = n;
            Ok(Vec::new())
        }
        _ if count == 0 => Ok(Vec::new()),
        SpaceCode::Blocks if count > 0 => {
            let c = count as u64;
            let f = m.map.filemarks_before(p);
            let fm = if f < m.map.filemarks() { m.map.filemark_position(f) } else { n };
            let avail = fm - p;
            if c <= avail {
                m.pos = p + c;
                Ok(Vec::new())
            } else if fm < n {
                m.pos = fm + 1;
                Err((
                    Sense::new(NO_SENSE, 0x00, 0x01).with_filemark().with_info(residue((c - avail) as i64)),
                    Vec::new(),
                ))
            } else {
                m.pos = n;
                Err((Sense::new(BLANK_CHECK, 0x00, 0x05).with_info(residue((c - avail) as i64)), Vec::new()))
            }
        }
        SpaceCode::Blocks => {
            let c = count.unsigned_abs();
            let f = m.map.filemarks_before(p);
            let after_fm = if f > 0 { m.map.filemark_position(f - 1) + 1 } else { 0 };
            let avail = p - after_fm;
            if c <= avail {
                m.pos = p - c;
                Ok(Vec::new())
            } else if f > 0 {
                m.pos = after_fm - 1;
                let left = -((c - avail) as i64);
                Err((Sense::new(NO_SENSE, 0x00, 0x01).with_filemark().with_info(residue(left)), Vec::new()))
            } else {
                m.pos = 0;
                Err(at_bop(-((c - avail) as i64)))
            }
        }
        SpaceCode::Filemarks if count > 0 => {
            let c = count as u64;
            let f = m.map.filemarks_before(p);
            let total = m.map.filemarks();
            if f + c <= total {
                m.pos = m.map.filemark_position(f + c - 1) + 1;
                Ok(Vec::new())
            } else {
                m.pos = n;
                Err((Sense::new(BLANK_CHECK, 0x00, 0x05).with_info(residue((f + c - total) as i64)), Vec::new()))
            }
        }
        SpaceCode::Filemarks => {
            let c = count.unsigned_abs();
            let f = m.map.filemarks_before(p);
            if c <= f {
                m.pos = m.map.filemark_position(f - c);
                Ok(Vec::new())
            } else {
                m.pos = 0;
                Err(at_bop(-((c - f) as i64)))
            }
        }
    }
}

fn locate(m: &mut Mounted, to: LocateTo) -> Outcome {
    let n = m.map.objects();
    let target = match to {
        LocateTo::Object(x) => Some(x).filter(|&x| x <= n),
        LocateTo::EndOfData => Some(n),
        LocateTo::File(0) => Some(0),
        LocateTo::File(k) => (k <= m.map.filemarks()).then(|| m.map.filemark_position(k - 1) + 1),
    };
    match target {
        Some(t) => {
            m.pos = t;
            Ok(Vec::new())
        }
        None => {
            m.pos = n;
            Err((Sense::new(BLANK_CHECK, 0x00, 0x05), Vec::new()))
        }
    }
}

fn read_position(m: &Mounted, form: PositionForm) -> Vec<u8> {
    let bop = m.pos == 0;
    let eop = m.map.data_bytes() >= m.capacity;
    let flags = (if bop { 0x80 } else { 0 }) | (if eop { 0x40 } else { 0 });
    match form {
        PositionForm::Short => {
            let mut d = vec![0u8; 20];
            let at = m.pos.min(u32::MAX as u64) as u32;
            d[0] = flags | if m.pos > u32::MAX as u64 { 0x04 } else { 0 };
            d[4..8].copy_from_slice(&at.to_be_bytes());
            d[8..12].copy_from_slice(&at.to_be_bytes());
            d
        }
        PositionForm::Long => {
            let mut d = vec![0u8; 32];
            d[0] = flags;
            d[8..16].copy_from_slice(&m.pos.to_be_bytes());
            d[16..24].copy_from_slice(&m.map.filemarks_before(m.pos).to_be_bytes());
            d
        }
        PositionForm::Extended => {
            let mut d = vec![0u8; 32];
            d[0] = flags;
            d[2..4].copy_from_slice(&28u16.to_be_bytes());
            d[16..24].copy_from_slice(&m.pos.to_be_bytes());
            d[24..32].copy_from_slice(&m.pos.to_be_bytes());
            d
        }
    }
}
