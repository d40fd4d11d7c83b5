//! A virtual tape library: the operator's view (cartridges, slots, drives) and the SCSI
//! entry point [`Vtl::execute`] for the changer (LUN 0) and the drives (LUN 1...).
//!
//! Locks: the changer's unit state, then the library record, then a drive; a drive command
//! takes only its drive's lock, so drives stream in parallel. Every change of the library
//! record (cartridge added, moved, imported, exported, write protection) is written to the
//! catalog before the call returns. Dropping a [`Vtl`] does not flush buffered tape writes,
//! exactly like a crash: call [`Vtl::flush_all`] on a clean shutdown. A library taken out of
//! a server's registry ([`crate::Libraries`]) is retired first ([`Vtl::retire`]), so that
//! the sessions still holding it cannot touch its tapes afterwards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

use qorestor_core::{ContainerKind, Engine};

use crate::cdb::{parse_cdb, parse_mode_select, Command, DeviceKind};
use crate::clock::{Clock, SystemClock};
use crate::drive::{load_map, segment_name, Drive, DriveCtx, Mounted};
use crate::error::{Error, Result};
use crate::failure::{self, Place};
use crate::model::*;
use crate::sense::{respond, Outcome, ScsiResponse, Sense, ILLEGAL_REQUEST};
use crate::spc::{self, cut, Identity, UnitState};

/// The catalog key of the library record.
const LIBRARY_KEY: &str = "library";

/// Geometry and cartridges of a new library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LibraryConfig {
    /// Storage slots.
    pub slots: u16,
    /// Tape drives.
    pub drives: u16,
    /// Import/export slots.
    pub ie_slots: u16,
    /// Cartridges created in the lowest storage slots.
    pub tapes: u16,
    /// Capacity of each cartridge, bytes.
    pub tape_size: u64,
}

impl Default for LibraryConfig {
    /// 20 slots, 2 drives, 4 import/export slots, 10 cartridges of 100 GB.
    fn default() -> Self {
        LibraryConfig { slots: 20, drives: 2, ie_slots: 4, tapes: 10, tape_size: 100_000_000_000 }
    }
}

/// Default flush interval: bytes of buffered writes.
pub const DEFAULT_FLUSH_BYTES: u64 = 512 << 20;
/// Default flush interval: seconds since the first buffered write.
pub const DEFAULT_FLUSH_SECS: u64 = 10;

/// Identity strings as INQUIRY reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityInfo {
    /// Vendor.
    pub vendor: String,
    /// Product.
    pub product: String,
    /// Serial number.
    pub serial: String,
}

/// A drive in [`LibraryInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriveInfo {
    /// Index (0 = lowest element address).
    pub index: u16,
    /// Data transfer element address.
    pub element_address: u16,
    /// SCSI LUN.
    pub lun: u64,
    /// Serial number.
    pub serial: String,
    /// The cartridge in it.
    pub barcode: Option<String>,
}

/// A slot in [`LibraryInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotInfo {
    /// Element address.
    pub element_address: u16,
    /// The cartridge in it.
    pub barcode: Option<String>,
}

/// Where a cartridge is, in [`LibraryInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocationInfo {
    /// `slot`, `drive`, `ie` or `vault` (exported, outside the library).
    pub kind: &'static str,
    /// Element address (none in the vault).
    pub element_address: Option<u16>,
}

/// A cartridge in [`LibraryInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CartridgeInfo {
    /// Barcode.
    pub barcode: String,
    /// Where it is.
    pub location: LocationInfo,
    /// Capacity.
    pub capacity_bytes: u64,
    /// Bytes written (durable, plus buffered writes of a loaded cartridge).
    pub used_bytes: u64,
    /// Write protected.
    pub write_protected: bool,
    /// WORM medium.
    pub worm: bool,
}

/// A library as `vtl show` reports it (the JSON shape is fixed by `CLI.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LibraryInfo {
    /// The container's name.
    pub name: String,
    /// Its storage group.
    pub storage_group: String,
    /// The changer's identity.
    pub library: IdentityInfo,
    /// Drives by element address.
    pub drives: Vec<DriveInfo>,
    /// Storage slots by element address.
    pub slots: Vec<SlotInfo>,
    /// Import/export slots by element address.
    pub ie_slots: Vec<SlotInfo>,
    /// Cartridges by barcode.
    pub cartridges: Vec<CartridgeInfo>,
}

/// Where a drive's cartridge is positioned, and its write protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapePosition {
    /// File number (filemarks before the position).
    pub file: u64,
    /// Block number within the file.
    pub block: u64,
    /// Capacity, bytes.
    pub capacity: u64,
    /// Bytes written.
    pub used: u64,
    /// Write protected.
    pub write_protected: bool,
}

/// An open virtual tape library. `Send + Sync`; share it with `Arc`.
pub struct Vtl {
    engine: Engine,
    name: String,
    changer: Mutex<UnitState>,
    record: Mutex<LibraryRecord>,
    drives: Vec<Mutex<Drive>>,
    flush_bytes: u64,
    flush_after: Duration,
    clock: Arc<dyn Clock>,
    /// Set by [`Vtl::retire`] (with every unit held): every command and operation is refused.
    retired: AtomicBool,
}

fn fnv(b: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn check_config(c: &LibraryConfig) -> Result<()> {
    if c.slots == 0 || c.slots > MAX_SLOTS {
        return Err(Error::invalid("slot count", c.slots, format!("use 1 to {MAX_SLOTS}")));
    }
    if c.drives == 0 || c.drives > MAX_DRIVES {
        return Err(Error::invalid("drive count", c.drives, format!("use 1 to {MAX_DRIVES}")));
    }
    if c.ie_slots > MAX_IE_SLOTS {
        return Err(Error::invalid("import/export slot count", c.ie_slots, format!("use 0 to {MAX_IE_SLOTS}")));
    }
    if c.tapes > c.slots {
        return Err(Error::invalid("tape count", c.tapes, format!("the library has only {} slots", c.slots)));
    }
    check_capacity(c.tape_size)
}

fn new_record(name: &str, c: &LibraryConfig) -> LibraryRecord {
    let seed = format!("{name}/{:?}", std::time::SystemTime::now());
    let h = fnv(seed.as_bytes());
    LibraryRecord {
        version: LIBRARY_VERSION,
        vendor: "STK".into(),
        product: "L700".into(),
        serial: format!("QS{:08X}", h as u32),
        drive_vendor: "IBM".into(),
        drive_product: "ULT3580-TD5".into(),
        drive_serials: (0..c.drives).map(|i| format!("QD{:06X}{:02}", (h >> 32) as u32 & 0xFF_FFFF, i + 1)).collect(),
        slots: c.slots,
        ie_slots: c.ie_slots,
        cartridges: Vec::new(),
        next_barcode: 1,
        flush_bytes: DEFAULT_FLUSH_BYTES,
        flush_secs: DEFAULT_FLUSH_SECS,
    }
}

/// Adds `count` cartridges of `capacity` in the lowest free slots; returns their barcodes.
fn add_to_record(rec: &mut LibraryRecord, count: u16, capacity: u64) -> Result<Vec<String>> {
    check_capacity(capacity)?;
    let free = (0..rec.slots).filter(|&i| rec.at(Location::Slot(i)).is_none()).count();
    if count as usize > free {
        return Err(Error::Conflict(format!("the library has {free} free slots, {count} cartridges asked for")));
    }
    let mut added = Vec::new();
    for _ in 0..count {
        let barcode = loop {
            if rec.next_barcode > 9999 {
                return Err(Error::Conflict("the library's barcodes QS0001 to QS9999 are used up".into()));
            }
            let b = format!("QS{:04}L{}", rec.next_barcode, generation(capacity));
            rec.next_barcode += 1;
            if rec.cartridge(&b).is_err() {
                break b;
            }
        };
        let slot = rec.free_slot().expect("counted above");
        rec.cartridges.push(CartridgeRecord {
            barcode: barcode.clone(),
            capacity,
            write_protected: false,
            worm: false,
            location: Location::Slot(slot),
            source: None,
        });
        added.push(barcode);
    }
    rec.cartridges.sort_by(|a, b| a.barcode.cmp(&b.barcode));
    Ok(added)
}

impl Vtl {
    /// Creates a `vtl` container named `name` in storage group `group` with its library.
    pub fn create(engine: &Engine, name: &str, group: &str, config: &LibraryConfig) -> Result<Vtl> {
        check_config(config)?;
        engine.add_container(name, group, ContainerKind::Vtl)?;
        let mut rec = new_record(name, config);
        add_to_record(&mut rec, config.tapes, config.tape_size)?;
        engine.put_container_meta(name, LIBRARY_KEY, &rec)?;
        Vtl::open(engine, name)
    }

    /// Opens the library of a `vtl` container (one created with `container add --type vtl`
    /// gets the default geometry on first open). Cartridges in drives are mounted and loaded,
    /// as after a real library's power cycle: every unit reports a power-on unit attention
    /// first. Streams of a cartridge that its durable map does not name (left by a crash) are
    /// deleted.
    pub fn open(engine: &Engine, name: &str) -> Result<Vtl> {
        Vtl::open_with_clock(engine, name, Arc::new(SystemClock))
    }

    /// [`Vtl::open`] with the flush interval counted on `clock` instead of the system's (a
    /// test advances its own clock rather than sleeping).
    pub fn open_with_clock(engine: &Engine, name: &str, clock: Arc<dyn Clock>) -> Result<Vtl> {
        let info = engine.container(name)?;
        if info.kind != ContainerKind::Vtl {
            return Err(Error::invalid("library", name, format!("container is of type {}", info.kind.as_str())));
        }
        let rec = match library_record(engine, name)? {
            Some(r) => r,
            None => {
                let c = LibraryConfig::default();
                let mut r = new_record(name, &c);
                add_to_record(&mut r, c.tapes, c.tape_size)?;
                engine.put_container_meta(name, LIBRARY_KEY, &r)?;
                r
            }
        };
        rec.validate().map_err(|detail| Error::Corrupt {
            what: "library record",
            library: name.to_string(),
            detail,
        })?;
        let flush_after = Duration::from_secs(rec.flush_secs);
        let ctx =
            DriveCtx { engine, library: name, flush_bytes: rec.flush_bytes, flush_after, clock: &*clock, drive: None };
        let mut drives = Vec::new();
        for (i, serial) in rec.drive_serials.iter().enumerate() {
            let mut d = Drive::new(drive_identity(&rec, serial));
            if let Some(c) = rec.at(Location::Drive(i as u16)) {
                d.mounted = Some(Mounted::open(&ctx, &c.barcode, c.capacity, c.write_protected, c.worm)?);
            }
            drives.push(Mutex::new(d));
        }
        sweep_orphans(engine, name, &rec)?;
        Ok(Vtl {
            engine: engine.clone(),
            name: name.to_string(),
            changer: Mutex::new(UnitState { attention: Some(Sense::power_on()), ..UnitState::default() }),
            flush_bytes: rec.flush_bytes,
            flush_after,
            clock,
            record: Mutex::new(rec),
            drives,
            retired: AtomicBool::new(false),
        })
    }

    /// The library's (container's) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of LUNs: the changer and one per drive.
    pub fn lun_count(&self) -> u64 {
        1 + self.drives.len() as u64
    }

    /// What a drive's commands need; `drive` names the drive in log lines.
    fn ctx(&self, drive: Option<u16>) -> DriveCtx<'_> {
        DriveCtx {
            engine: &self.engine,
            library: &self.name,
            flush_bytes: self.flush_bytes,
            flush_after: self.flush_after,
            clock: &*self.clock,
            drive,
        }
    }

    fn save(&self, rec: &LibraryRecord) -> Result<()> {
        Ok(self.engine.put_container_meta(&self.name, LIBRARY_KEY, rec)?)
    }

    /// The library as `vtl show` reports it.
    pub fn info(&self) -> Result<LibraryInfo> {
        let rec = self.record.lock().clone();
        let mut live: Vec<(String, u64)> = Vec::new();
        for d in &self.drives {
            if let Some(m) = &d.lock().mounted {
                live.push((m.barcode.clone(), m.used_bytes()));
            }
        }
        self.info_of(&rec, &live)
    }

    /// The library as `vtl show` reports it, from its record and the bytes on the cartridges
    /// mounted in drives (`(barcode, used bytes)`).
    fn info_of(&self, rec: &LibraryRecord, live: &[(String, u64)]) -> Result<LibraryInfo> {
        let barcode_at = |l: Location| rec.at(l).map(|c| c.barcode.clone());
        let mut cartridges = Vec::new();
        for c in &rec.cartridges {
            let used = match live.iter().find(|(b, _)| *b == c.barcode) {
                Some((_, u)) => *u,
                None => load_map(&self.engine, &self.name, &c.barcode)?.segments.iter().map(|s| s.len).sum(),
            };
            let kind = match c.location {
                Location::Slot(_) => "slot",
                Location::Drive(_) => "drive",
                Location::Ie(_) => "ie",
                Location::Vault => "vault",
            };
            cartridges.push(CartridgeInfo {
                barcode: c.barcode.clone(),
                location: LocationInfo { kind, element_address: rec.address(c.location) },
                capacity_bytes: c.capacity,
                used_bytes: used,
                write_protected: c.write_protected,
                worm: c.worm,
            });
        }
        Ok(LibraryInfo {
            name: self.name.clone(),
            storage_group: self.engine.container(&self.name)?.storage_group,
            library: IdentityInfo {
                vendor: rec.vendor.clone(),
                product: rec.product.clone(),
                serial: rec.serial.clone(),
            },
            drives: (0..rec.drives())
                .map(|i| DriveInfo {
                    index: i,
                    element_address: FIRST_DRIVE_ADDRESS + i,
                    lun: i as u64 + 1,
                    serial: rec.drive_serials[i as usize].clone(),
                    barcode: barcode_at(Location::Drive(i)),
                })
                .collect(),
            slots: (0..rec.slots)
                .map(|i| SlotInfo { element_address: FIRST_SLOT_ADDRESS + i, barcode: barcode_at(Location::Slot(i)) })
                .collect(),
            ie_slots: (0..rec.ie_slots)
                .map(|i| SlotInfo { element_address: FIRST_IE_ADDRESS + i, barcode: barcode_at(Location::Ie(i)) })
                .collect(),
            cartridges,
        })
    }

    /// Adds `count` cartridges of `capacity` bytes in the lowest free storage slots; returns
    /// their barcodes.
    pub fn add_cartridges(&self, count: u16, capacity: u64) -> Result<Vec<String>> {
        let mut rec = self.record.lock();
        self.check_in_service()?;
        let mut new = rec.clone();
        let added = add_to_record(&mut new, count, capacity)?;
        self.save(&new)?;
        *rec = new;
        Ok(added)
    }

    /// Marks a cartridge WORM (write once: written data is never overwritten).
    pub fn set_worm(&self, barcode: &str, worm: bool) -> Result<()> {
        self.update_cartridge(barcode, |c| c.worm = worm, |m| m.worm = worm)
    }

    /// Sets or clears a cartridge's write protection (`vtl set-rw ... off` protects it).
    pub fn set_write_protect(&self, barcode: &str, protect: bool) -> Result<()> {
        self.update_cartridge(barcode, |c| c.write_protected = protect, |m| m.write_protected = protect)
    }

    fn update_cartridge(
        &self,
        barcode: &str,
        change: impl Fn(&mut CartridgeRecord),
        mounted: impl Fn(&mut Mounted),
    ) -> Result<()> {
        let mut rec = self.record.lock();
        self.check_in_service()?;
        let mut new = rec.clone();
        change(new.cartridge_mut(barcode)?);
        self.save(&new)?;
        if let Location::Drive(i) = new.cartridge(barcode)?.location {
            if let Some(m) = self.drives[i as usize].lock().mounted.as_mut() {
                mounted(m);
            }
        }
        *rec = new;
        Ok(())
    }

    /// Puts an exported cartridge into the lowest free import/export slot (the operator
    /// opening the mail slot: the changer reports IMPORT OR EXPORT ELEMENT ACCESSED).
    pub fn import(&self, barcode: &str) -> Result<u16> {
        let mut changer = self.changer.lock();
        self.check_in_service()?;
        self.operator_may_open(&changer)?;
        let mut rec = self.record.lock();
        let mut new = rec.clone();
        let slot = new
            .free_ie_slot()
            .ok_or_else(|| Error::Conflict(format!("library {}: no free import/export slot", self.name)))?;
        let c = new.cartridge_mut(barcode)?;
        if c.location != Location::Vault {
            return Err(Error::Conflict(format!("cartridge {barcode} is already in library {}", self.name)));
        }
        c.location = Location::Ie(slot);
        c.source = None;
        self.save(&new)?;
        *rec = new;
        changer.attention = Some(Sense::ie_accessed());
        Ok(FIRST_IE_ADDRESS + slot)
    }

    /// Takes a cartridge out of the library (from an import/export or storage slot) into the
    /// vault.
    pub fn export(&self, barcode: &str) -> Result<()> {
        let mut changer = self.changer.lock();
        self.check_in_service()?;
        self.operator_may_open(&changer)?;
        let mut rec = self.record.lock();
        let mut new = rec.clone();
        let c = new.cartridge_mut(barcode)?;
        match c.location {
            Location::Drive(i) => {
                return Err(Error::Conflict(format!("cartridge {barcode} is in drive {i}; unload it first")))
            }
            Location::Vault => return Err(Error::Conflict(format!("cartridge {barcode} is already exported"))),
            Location::Slot(_) | Location::Ie(_) => {}
        }
        c.source = Some(c.location);
        c.location = Location::Vault;
        self.save(&new)?;
        *rec = new;
        changer.attention = Some(Sense::ie_accessed());
        Ok(())
    }

    fn operator_may_open(&self, changer: &UnitState) -> Result<()> {
        if changer.prevent {
            return Err(Error::Conflict(format!(
                "library {}: the application prevents medium removal (PREVENT ALLOW MEDIUM REMOVAL)",
                self.name
            )));
        }
        Ok(())
    }

    fn drive_index(&self, drive: u16) -> Result<usize> {
        let i = drive as usize;
        if i >= self.drives.len() {
            return Err(Error::not_found("drive", drive));
        }
        Ok(i)
    }

    /// Loads a cartridge (from a storage or import/export slot) into a drive, as an operator
    /// at the library's panel would. The drive reports a medium-changed unit attention.
    pub fn load(&self, barcode: &str, drive: u16) -> Result<()> {
        let i = self.drive_index(drive)?;
        let mut rec = self.record.lock();
        self.check_in_service()?;
        let mut new = rec.clone();
        if let Some(c) = new.at(Location::Drive(drive)) {
            return Err(Error::Conflict(format!("drive {drive} already holds cartridge {}", c.barcode)));
        }
        let c = new.cartridge_mut(barcode)?;
        match c.location {
            Location::Slot(_) | Location::Ie(_) => {}
            Location::Drive(d) => return Err(Error::Conflict(format!("cartridge {barcode} is already in drive {d}"))),
            Location::Vault => {
                return Err(Error::Conflict(format!("cartridge {barcode} is exported; import it first")))
            }
        }
        c.source = Some(c.location);
        c.location = Location::Drive(drive);
        let c = c.clone();
        let mounted = Mounted::open(&self.ctx(None), &c.barcode, c.capacity, c.write_protected, c.worm)?;
        self.save(&new)?;
        let mut d = self.drives[i].lock();
        d.mounted = Some(mounted);
        d.unit.attention = Some(Sense::medium_changed());
        *rec = new;
        Ok(())
    }

    /// Unloads a drive: buffered writes are made durable and the cartridge goes back to the
    /// slot it came from (or the lowest free storage slot). Returns its barcode.
    pub fn unload(&self, drive: u16) -> Result<String> {
        let i = self.drive_index(drive)?;
        let mut rec = self.record.lock();
        let mut d = self.drives[i].lock();
        self.check_in_service()?;
        let barcode = match rec.at(Location::Drive(drive)) {
            Some(c) => c.barcode.clone(),
            None => return Err(Error::Conflict(format!("drive {drive} of library {} is empty", self.name))),
        };
        if let Some(m) = d.mounted.as_mut() {
            m.make_durable(&self.ctx(None))?;
        }
        let mut new = rec.clone();
        let home = new
            .cartridge(&barcode)?
            .source
            .filter(|&l| matches!(l, Location::Slot(_) | Location::Ie(_)) && new.at(l).is_none());
        let dest = match home.or_else(|| new.free_slot().map(Location::Slot)) {
            Some(l) => l,
            None => return Err(Error::Conflict(format!("library {} has no free slot", self.name))),
        };
        let c = new.cartridge_mut(&barcode)?;
        c.location = dest;
        c.source = Some(Location::Drive(drive));
        self.save(&new)?;
        d.mounted = None;
        *rec = new;
        Ok(barcode)
    }

    /// The tape position of a drive's cartridge (NDMP's TAPE_GET_STATE): `None` when the
    /// drive is empty.
    pub fn drive_position(&self, drive: u16) -> Result<Option<TapePosition>> {
        let i = self.drive_index(drive)?;
        let d = self.drives[i].lock();
        self.check_in_service()?;
        Ok(d.mounted.as_ref().map(|m| {
            let (file, block) = m.file_position();
            TapePosition { file, block, capacity: m.capacity, used: m.used_bytes(), write_protected: m.write_protected }
        }))
    }

    /// Takes the library out of service for good, as its deletion or its replacement by a
    /// fresh copy needs. Waits for the commands and operations running on it (it holds every
    /// unit), then lets `allow` look at the library as it is (an error from `allow` leaves it
    /// in service and is returned). Then the drives' buffered writes are made durable when
    /// `durable` (else dropped: the library is being deleted), every cartridge is unmounted,
    /// and from then on every SCSI command is refused (CHECK CONDITION, ILLEGAL REQUEST,
    /// LOGICAL UNIT NOT SUPPORTED) and every operation fails naming the library. Only the first
    /// retirement acts; a later one is a conflict. The error of a drive that could not be made
    /// durable is returned after the library is retired all the same (what its initiator had
    /// not seen made durable was never acknowledged as such).
    pub fn retire(&self, durable: bool, allow: impl FnOnce(&LibraryInfo) -> Result<()>) -> Result<()> {
        let _changer = self.changer.lock();
        let rec = self.record.lock();
        let mut drives: Vec<_> = self.drives.iter().map(|d| d.lock()).collect();
        self.check_in_service()?;
        let live: Vec<(String, u64)> =
            drives.iter().filter_map(|d| d.mounted.as_ref().map(|m| (m.barcode.clone(), m.used_bytes()))).collect();
        allow(&self.info_of(&rec, &live)?)?;
        let ctx = self.ctx(None);
        let mut first: Result<()> = Ok(());
        for d in &mut drives {
            if let Some(mut m) = d.mounted.take() {
                if durable {
                    if let Err(e) = m.make_durable(&ctx) {
                        first = first.and(Err(e.into()));
                    }
                }
            }
        }
        self.retired.store(true, Ordering::Release);
        first
    }

    /// Whether [`Vtl::retire`] took the library out of service.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// An error once the library is retired. Called with one of its units held, so that a
    /// retirement (which holds them all) either waited for the caller or is seen by it.
    fn check_in_service(&self) -> Result<()> {
        if self.is_retired() {
            return Err(Error::Conflict(format!(
                "library {} is no longer in service (it was deleted or reopened)",
                self.name
            )));
        }
        Ok(())
    }

    /// Makes every drive's buffered writes durable (clean shutdown).
    pub fn flush_all(&self) -> Result<()> {
        let ctx = self.ctx(None);
        for d in &self.drives {
            if let Some(m) = d.lock().mounted.as_mut() {
                m.make_durable(&ctx)?;
            }
        }
        Ok(())
    }

    /// Makes buffered writes durable on drives whose flush interval has passed on the library's
    /// clock; a server calls this every second or so, so that idle drives are flushed too.
    pub fn tick(&self) -> Result<()> {
        let ctx = self.ctx(None);
        for d in &self.drives {
            if let Some(m) = d.lock().mounted.as_mut() {
                if m.flush_due(&ctx) {
                    m.make_durable(&ctx)?;
                }
            }
        }
        Ok(())
    }

    /// Runs one SCSI command on a LUN: LUN 0 is the changer, LUN `i + 1` drive `i`.
    /// Never panics on any bytes; errors are CHECK CONDITION with sense data.
    pub fn execute(&self, lun: u64, cdb: &[u8], data_out: &[u8]) -> ScsiResponse {
        if lun == 0 {
            self.execute_changer(cdb, data_out)
        } else if let Some(d) = self.drives.get(lun as usize - 1) {
            let mut d = d.lock();
            if self.is_retired() {
                return ScsiResponse::check(Sense::lun_not_supported(), Vec::new());
            }
            self.execute_drive(&mut d, lun as u16 - 1, cdb, data_out)
        } else {
            unknown_lun(self.lun_count(), cdb)
        }
    }

    fn execute_drive(&self, d: &mut Drive, index: u16, cdb: &[u8], data_out: &[u8]) -> ScsiResponse {
        let cmd = match parse_cdb(DeviceKind::Drive, cdb) {
            Ok(c) => c,
            Err(s) => return refuse(&mut d.unit, cdb, s),
        };
        let idle = d.idle_sense();
        if let Some(r) = common(&mut d.unit, &d.ident, self.lun_count(), cmd, idle) {
            return r;
        }
        respond(d.execute(&self.ctx(Some(index)), cmd, data_out))
    }

    fn execute_changer(&self, cdb: &[u8], data_out: &[u8]) -> ScsiResponse {
        let mut unit = self.changer.lock();
        if self.is_retired() {
            return ScsiResponse::check(Sense::lun_not_supported(), Vec::new());
        }
        let cmd = match parse_cdb(DeviceKind::Changer, cdb) {
            Ok(c) => c,
            Err(s) => return refuse(&mut unit, cdb, s),
        };
        let ident = {
            let rec = self.record.lock();
            Identity {
                kind: DeviceKind::Changer,
                vendor: rec.vendor.clone(),
                product: rec.product.clone(),
                revision: "0107".into(),
                serial: rec.serial.clone(),
            }
        };
        if let Some(r) = common(&mut unit, &ident, self.lun_count(), cmd, Sense::default()) {
            return r;
        }
        respond(self.changer_command(cmd, data_out))
    }

    fn changer_command(&self, cmd: Command, data_out: &[u8]) -> Outcome {
        let none = |s: Sense| (s, Vec::new());
        match cmd {
            Command::TestUnitReady | Command::InitElementStatus => Ok(Vec::new()),
            Command::InitElementStatusRange { range, start, count } => {
                let rec = self.record.lock();
                if range {
                    let end = start as u32 + count.max(1) as u32 - 1;
                    if rec.location_at(start).is_none() && start != TRANSPORT_ADDRESS || end > u16::MAX as u32 {
                        return Err(none(Sense::invalid_element()));
                    }
                }
                Ok(Vec::new())
            }
            Command::PositionToElement { transport, dest } => {
                let rec = self.record.lock();
                if !(transport == 0 || transport == TRANSPORT_ADDRESS) || rec.location_at(dest).is_none() {
                    return Err(none(Sense::invalid_element()));
                }
                Ok(Vec::new())
            }
            Command::ModeSense { ten, dbd: _, pc, page, subpage, alloc } => {
                let rec = self.record.lock();
                let pages = spc::select_pages(pc, page, subpage, &changer_pages(&rec)).map_err(none)?;
                Ok(spc::mode_data(ten, 0, None, &pages, alloc))
            }
            Command::ModeSelect { ten, len } => {
                if data_out.len() < len as usize {
                    return Err(none(Sense::new(ILLEGAL_REQUEST, 0x1A, 0x00)));
                }
                let list = parse_mode_select(ten, &data_out[..len as usize]).map_err(none)?;
                if list.block_len.is_some() {
                    return Err(none(Sense::invalid_param_field(if ten { 6 } else { 3 })));
                }
                for p in &list.pages {
                    match (p.code, p.body.len()) {
                        (0x1D, 18) | (0x1E, 2) | (0x1F, 18) => {}
                        _ => return Err(none(Sense::invalid_param_field(0))),
                    }
                }
                Ok(Vec::new())
            }
            Command::ReadElementStatus { voltag, element_type, start, count, dvcid, alloc } => {
                let rec = self.record.lock();
                read_element_status(&rec, voltag, element_type, start, count, dvcid, alloc)
            }
            Command::MoveMedium { transport, source, dest } => self.move_medium(transport, source, dest),
            _ => Err(none(Sense::invalid_opcode())),
        }
    }

    fn move_medium(&self, transport: u16, source: u16, dest: u16) -> Outcome {
        let none = |s: Sense| (s, Vec::new());
        let mut rec = self.record.lock();
        let (Some(src), Some(dst)) = (rec.location_at(source), rec.location_at(dest)) else {
            return Err(none(Sense::invalid_element()));
        };
        if !(transport == 0 || transport == TRANSPORT_ADDRESS) {
            return Err(none(Sense::invalid_element()));
        }
        let Some(cart) = rec.at(src).cloned() else {
            return Err(none(Sense::new(ILLEGAL_REQUEST, 0x3B, 0x0E)));
        };
        if src == dst {
            return Ok(Vec::new());
        }
        if rec.at(dst).is_some() {
            return Err(none(Sense::new(ILLEGAL_REQUEST, 0x3B, 0x0D)));
        }
        let drive = match (src, dst) {
            (Location::Drive(i), _) | (_, Location::Drive(i)) => Some(i),
            _ => None,
        };
        let ctx = self.ctx(drive);
        // The changer has no medium of its own: an engine failure is a HARDWARE ERROR, logged.
        let failed = |e: Error| {
            let sense = Sense::internal_failure();
            let at = Place { library: &self.name, barcode: &cart.barcode, drive, operation: "MOVE MEDIUM" };
            failure::log(&at, &sense, &e);
            none(sense)
        };
        let mut src_drive = match src {
            Location::Drive(i) => Some(self.drives[i as usize].lock()),
            _ => None,
        };
        if let Some(d) = src_drive.as_mut() {
            if d.unit.prevent {
                return Err(none(Sense::new(ILLEGAL_REQUEST, 0x53, 0x02)));
            }
            if let Some(m) = d.mounted.as_mut() {
                m.make_durable(&ctx).map_err(|e| failed(e.into()))?;
            }
        }
        let mounted = match dst {
            Location::Drive(_) => Some(
                Mounted::open(&ctx, &cart.barcode, cart.capacity, cart.write_protected, cart.worm).map_err(failed)?,
            ),
            _ => None,
        };
        let mut new = rec.clone();
        if let Ok(c) = new.cartridge_mut(&cart.barcode) {
            c.location = dst;
            c.source = Some(src);
        }
        self.save(&new).map_err(failed)?;
        *rec = new;
        if let Some(mut d) = src_drive {
            d.mounted = None;
        }
        if let (Location::Drive(j), Some(m)) = (dst, mounted) {
            let mut d = self.drives[j as usize].lock();
            d.mounted = Some(m);
            d.unit.attention = Some(Sense::medium_changed());
        }
        Ok(Vec::new())
    }
}

fn drive_identity(rec: &LibraryRecord, serial: &str) -> Identity {
    Identity {
        kind: DeviceKind::Drive,
        vendor: rec.drive_vendor.clone(),
        product: rec.drive_product.clone(),
        revision: "G9N1".into(),
        serial: serial.to_string(),
    }
}

/// The stored record of library `name`, if it has one yet.
pub(crate) fn library_record(engine: &Engine, name: &str) -> Result<Option<LibraryRecord>> {
    Ok(engine.container_meta::<LibraryRecord>(name, LIBRARY_KEY)?)
}

/// Deletes the segment streams (`BARCODE/NNNNNNNNNN` of a cartridge of the library) that the
/// cartridges' durable maps do not name; other streams are left alone.
fn sweep_orphans(engine: &Engine, name: &str, rec: &LibraryRecord) -> Result<()> {
    let mut live = std::collections::HashSet::new();
    for c in &rec.cartridges {
        for s in load_map(engine, name, &c.barcode)?.segments {
            live.insert(segment_name(&c.barcode, s.id));
        }
    }
    let segments = engine.owned_streams(name, ContainerKind::Vtl)?;
    for s in engine.streams(name)? {
        let ours = s.name.split_once('/').is_some_and(|(barcode, id)| {
            id.len() == 10 && id.bytes().all(|b| b.is_ascii_digit()) && rec.cartridge(barcode).is_ok()
        });
        if ours && !live.contains(&s.name) {
            segments.delete_stream(&s.name)?;
        }
    }
    Ok(())
}

/// A CDB that did not decode: a pending unit attention is reported first (unless the opcode
/// is one that passes attentions), else the decoding error.
fn refuse(unit: &mut UnitState, cdb: &[u8], sense: Sense) -> ScsiResponse {
    let passes = matches!(cdb.first(), Some(0x12 | 0xA0 | 0x03));
    match unit.attention.take_if(|_| !passes) {
        Some(ua) => ScsiResponse::check(ua, Vec::new()),
        None => ScsiResponse::check(sense, Vec::new()),
    }
}

/// Answers the SPC commands every unit shares, and unit attentions; `None` for the unit's
/// own commands.
fn common(unit: &mut UnitState, id: &Identity, luns: u64, cmd: Command, idle: Sense) -> Option<ScsiResponse> {
    let passes_attention =
        matches!(cmd, Command::Inquiry { .. } | Command::ReportLuns { .. } | Command::RequestSense { .. });
    if !passes_attention {
        if let Some(s) = unit.attention.take() {
            return Some(ScsiResponse::check(s, Vec::new()));
        }
    }
    let outcome = match cmd {
        Command::Inquiry { evpd, page, alloc } => spc::inquiry(id, evpd, page, alloc),
        Command::ReportLuns { alloc } => spc::report_luns(luns, alloc),
        Command::ReportOpcodes { options, opcode, service_action, alloc } => {
            spc::report_opcodes(id.kind, options, opcode, service_action, alloc)
        }
        Command::RequestSense { alloc } => {
            let s = unit.attention.take().unwrap_or(idle);
            Ok(cut(s.to_fixed().to_vec(), alloc))
        }
        Command::LogSense { pc, page, subpage, alloc } => spc::log_sense(pc, page, subpage, alloc),
        Command::Reserve => {
            unit.reserved = true;
            Ok(Vec::new())
        }
        Command::Release => {
            unit.reserved = false;
            Ok(Vec::new())
        }
        Command::PreventAllow { prevent } => {
            unit.prevent = prevent;
            Ok(Vec::new())
        }
        _ => return None,
    };
    Some(respond(outcome))
}

/// A LUN that does not exist: INQUIRY says "no device here", REPORT LUNS lists the real ones.
fn unknown_lun(luns: u64, cdb: &[u8]) -> ScsiResponse {
    match parse_cdb(DeviceKind::Changer, cdb) {
        Ok(Command::Inquiry { evpd: false, alloc, .. }) => {
            let mut d = vec![0u8; 36];
            d[0] = 0x7F;
            d[2] = 0x06;
            d[3] = 0x02;
            d[4] = 31;
            ScsiResponse::good(cut(d, alloc))
        }
        Ok(Command::ReportLuns { alloc }) => respond(spc::report_luns(luns, alloc)),
        Ok(Command::RequestSense { alloc }) => {
            ScsiResponse::good(cut(Sense::lun_not_supported().to_fixed().to_vec(), alloc))
        }
        _ => ScsiResponse::check(Sense::lun_not_supported(), Vec::new()),
    }
}

fn changer_pages(rec: &LibraryRecord) -> Vec<(u8, Vec<u8>, Vec<u8>)> {
    let mut eaa = vec![0x1D, 0x12];
    for (first, n) in [
        (TRANSPORT_ADDRESS, 1),
        (FIRST_SLOT_ADDRESS, rec.slots),
        (FIRST_IE_ADDRESS, rec.ie_slots),
        (FIRST_DRIVE_ADDRESS, rec.drives()),
    ] {
        eaa.extend_from_slice(&first.to_be_bytes());
        eaa.extend_from_slice(&n.to_be_bytes());
    }
    eaa.extend_from_slice(&[0, 0]);
    let geometry = vec![0x1E, 0x02, 0x00, 0x00];
    let mut caps = vec![0u8; 20];
    caps[0] = 0x1F;
    caps[1] = 0x12;
    caps[2] = 0x0E; // StorDT, StorI/E, StorST
    caps[4..8].copy_from_slice(&[0x0E; 4]); // MT, ST, I/E, DT -> ST, I/E, DT
    let blank = |p: &Vec<u8>| {
        let mut c = vec![0u8; p.len()];
        c[..2].copy_from_slice(&p[..2]);
        c
    };
    vec![
        (0x1D, eaa.clone(), blank(&eaa)),
        (0x1E, geometry.clone(), blank(&geometry)),
        (0x1F, caps.clone(), blank(&caps)),
    ]
}

/// Element type codes.
const MT: u8 = 1;
const ST: u8 = 2;
const IE: u8 = 3;
const DT: u8 = 4;

/// READ ELEMENT STATUS data: elements at or above `start` of the type asked for (0: all), in
/// element address order, at most `count`, one element status page per run of a type.
pub(crate) fn read_element_status(
    rec: &LibraryRecord,
    voltag: bool,
    element_type: u8,
    start: u16,
    count: u16,
    dvcid: bool,
    alloc: u32,
) -> Outcome {
    let mut all: Vec<(u8, u16, Option<Location>)> = vec![(MT, TRANSPORT_ADDRESS, None)];
    all.extend((0..rec.ie_slots).map(|i| (IE, FIRST_IE_ADDRESS + i, Some(Location::Ie(i)))));
    all.extend((0..rec.drives()).map(|i| (DT, FIRST_DRIVE_ADDRESS + i, Some(Location::Drive(i)))));
    all.extend((0..rec.slots).map(|i| (ST, FIRST_SLOT_ADDRESS + i, Some(Location::Slot(i)))));
    let of_type: Vec<_> = all.into_iter().filter(|e| element_type == 0 || e.0 == element_type).collect();
    if !of_type.iter().any(|e| e.1 >= start) {
        return Err((Sense::invalid_element(), Vec::new()));
    }
    let chosen: Vec<_> = of_type.into_iter().filter(|e| e.1 >= start).take(count as usize).collect();
    let id_len = 34usize;
    let mut pages = Vec::new();
    let mut i = 0;
    while i < chosen.len() {
        let t = chosen[i].0;
        let mut j = i;
        while j < chosen.len() && chosen[j].0 == t {
            j += 1;
        }
        let with_id = dvcid && t == DT;
        let desc_len = 12 + if voltag { 36 } else { 0 } + if with_id { 4 + id_len } else { 0 };
        let mut body = Vec::with_capacity(desc_len * (j - i));
        for &(_, addr, loc) in &chosen[i..j] {
            let cart = loc.and_then(|l| rec.at(l));
            let mut d = vec![0u8; 12];
            d[0..2].copy_from_slice(&addr.to_be_bytes());
            let mut flags = if cart.is_some() { 0x01 } else { 0 };
            if t != MT {
                flags |= 0x08; // ACCESS
            }
            if t == IE {
                flags |= 0x30; // INENAB, EXENAB
                if cart.is_some_and(|c| c.source.is_none()) {
                    flags |= 0x02; // IMPEXP: placed by the operator
                }
            }
            d[2] = flags;
            if let Some(src) = cart.and_then(|c| c.source).and_then(|s| rec.address(s)) {
                d[9] = 0x80; // SVALID
                d[10..12].copy_from_slice(&src.to_be_bytes());
            }
            if voltag {
                let mut tag = vec![0u8; 36];
                if let Some(c) = cart {
                    tag[..32].copy_from_slice(&spc::padded(&c.barcode, 32));
                }
                d.extend_from_slice(&tag);
            }
            if with_id {
                let serial = loc
                    .and_then(|l| match l {
                        Location::Drive(k) => rec.drive_serials.get(k as usize),
                        _ => None,
                    })
                    .cloned()
                    .unwrap_or_default();
                let mut ident = spc::padded(&rec.drive_vendor, 8);
                ident.extend_from_slice(&spc::padded(&rec.drive_product, 16));
                ident.extend_from_slice(&spc::padded(&serial, 10));
                d.extend_from_slice(&[0x02, 0x01, 0x00, id_len as u8]);
                d.extend_from_slice(&ident);
            }
            body.extend_from_slice(&d);
        }
        let mut page = vec![t, if voltag { 0x80 } else { 0 }];
        page.extend_from_slice(&(desc_len as u16).to_be_bytes());
        page.push(0);
        page.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        page.extend_from_slice(&body);
        pages.extend_from_slice(&page);
        i = j;
    }
    let first = chosen.first().map_or(start, |e| e.1);
    let mut d = Vec::with_capacity(8 + pages.len());
    d.extend_from_slice(&first.to_be_bytes());
    d.extend_from_slice(&(chosen.len() as u16).to_be_bytes());
    d.push(0);
    d.extend_from_slice(&(pages.len() as u32).to_be_bytes()[1..]);
    d.extend_from_slice(&pages);
    Ok(cut(d, alloc))
}
