//! The library model: geometry, element addresses, cartridges and their locations, as
//! persisted in the catalog (container metadata record `library` of the `vtl` container).
//!
//! Element addresses follow the StorageTek L700's layout style: the transport (robot) at 1,
//! import/export (mail) slots from 10, drives from 500, storage slots from 1000. Drive `i` is
//! LUN `i + 1` (LUN 0 is the changer), in element address order.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Element address of the (only) medium transport.
pub const TRANSPORT_ADDRESS: u16 = 1;
/// First import/export element address.
pub const FIRST_IE_ADDRESS: u16 = 10;
/// First data transfer (drive) element address.
pub const FIRST_DRIVE_ADDRESS: u16 = 500;
/// First storage element address.
pub const FIRST_SLOT_ADDRESS: u16 = 1000;
/// Most storage slots a library can have.
pub const MAX_SLOTS: u16 = 10_000;
/// Most drives a library can have.
pub const MAX_DRIVES: u16 = 64;
/// Most import/export slots a library can have.
pub const MAX_IE_SLOTS: u16 = 240;
/// Smallest cartridge capacity the library accepts (the CLI asks for 10 GB at least, as
/// QoreStor does; tests use small tapes to reach early warning).
pub const MIN_CAPACITY: u64 = 1 << 20;
/// Largest cartridge capacity (LTO-9 native).
pub const MAX_CAPACITY: u64 = 18_000_000_000_000;
/// Smallest cartridge capacity an operator may ask for (QoreStor's smallest `--tape_size`).
pub const MIN_OPERATOR_CAPACITY: u64 = 10_000_000_000;

/// Where a cartridge is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "index", rename_all = "lowercase")]
pub enum Location {
    /// Storage slot (index from 0).
    Slot(u16),
    /// Drive (index from 0).
    Drive(u16),
    /// Import/export slot (index from 0).
    Ie(u16),
    /// Outside the library (exported).
    Vault,
}

/// A cartridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartridgeRecord {
    /// Barcode (volume tag), 8 characters such as `QS0001L5`.
    pub barcode: String,
    /// Capacity in bytes.
    pub capacity: u64,
    /// Write protected (the tab on a real cartridge).
    pub write_protected: bool,
    /// WORM medium: written data is never overwritten.
    pub worm: bool,
    /// Where it is.
    pub location: Location,
    /// Where it was before it moved to a drive (reported as the source element).
    pub source: Option<Location>,
}

/// The persisted library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryRecord {
    /// Record layout version.
    pub version: u32,
    /// Changer vendor (INQUIRY, 8 characters).
    pub vendor: String,
    /// Changer product (16 characters).
    pub product: String,
    /// Changer serial number.
    pub serial: String,
    /// Drive vendor.
    pub drive_vendor: String,
    /// Drive product.
    pub drive_product: String,
    /// Drive serial numbers, one per drive.
    pub drive_serials: Vec<String>,
    /// Storage slots.
    pub slots: u16,
    /// Import/export slots.
    pub ie_slots: u16,
    /// Cartridges, by barcode.
    pub cartridges: Vec<CartridgeRecord>,
    /// Counter for generated barcodes.
    pub next_barcode: u32,
    /// Flush interval in bytes of buffered writes (see `docs/VTL.md`).
    pub flush_bytes: u64,
    /// Flush interval in seconds.
    pub flush_secs: u64,
}

/// The current [`LibraryRecord::version`].
pub const LIBRARY_VERSION: u32 = 1;

/// Checks a barcode: 1 to 16 of `A-Z 0-9` (generated ones have 8).
pub fn check_barcode(b: &str) -> Result<()> {
    let ok = !b.is_empty() && b.len() <= 16 && b.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("barcode", b, "use 1 to 16 of A-Z 0-9"))
    }
}

/// Checks a capacity.
pub fn check_capacity(c: u64) -> Result<()> {
    if (MIN_CAPACITY..=MAX_CAPACITY).contains(&c) {
        Ok(())
    } else {
        Err(Error::invalid("tape size", c, format!("use {MIN_CAPACITY} to {MAX_CAPACITY} bytes")))
    }
}

/// LTO generation of a capacity: the smallest of LTO-5 to LTO-9 whose native capacity holds
/// it (so a 100 GB tape is `L5`).
pub fn generation(capacity: u64) -> u8 {
    const NATIVE: [(u8, u64); 5] = [
        (5, 1_500_000_000_000),
        (6, 2_500_000_000_000),
        (7, 6_000_000_000_000),
        (8, 12_000_000_000_000),
        (9, 18_000_000_000_000),
    ];
    NATIVE.iter().find(|(_, n)| capacity <= *n).map_or(9, |(g, _)| *g)
}

/// Density code of an LTO generation (SSC REPORT DENSITY SUPPORT, block descriptor).
pub fn density_code(generation: u8) -> u8 {
    match generation {
        5 => 0x58,
        6 => 0x5A,
        7 => 0x5C,
        8 => 0x5E,
        _ => 0x60,
    }
}

impl LibraryRecord {
    /// Number of drives.
    pub fn drives(&self) -> u16 {
        self.drive_serials.len() as u16
    }

    /// The element address of a location (`None` for the vault).
    pub fn address(&self, l: Location) -> Option<u16> {
        match l {
            Location::Slot(i) => Some(FIRST_SLOT_ADDRESS + i),
            Location::Drive(i) => Some(FIRST_DRIVE_ADDRESS + i),
            Location::Ie(i) => Some(FIRST_IE_ADDRESS + i),
            Location::Vault => None,
        }
    }

    /// The location at an element address, if one is there.
    pub fn location_at(&self, addr: u16) -> Option<Location> {
        let within = |first: u16, n: u16| addr.checked_sub(first).filter(|&i| i < n);
        if let Some(i) = within(FIRST_SLOT_ADDRESS, self.slots) {
            Some(Location::Slot(i))
        } else if let Some(i) = within(FIRST_DRIVE_ADDRESS, self.drives()) {
            Some(Location::Drive(i))
        } else {
            within(FIRST_IE_ADDRESS, self.ie_slots).map(Location::Ie)
        }
    }

    /// The cartridge at a location.
    pub fn at(&self, l: Location) -> Option<&CartridgeRecord> {
        self.cartridges.iter().find(|c| c.location == l && l != Location::Vault)
    }

    /// A cartridge by barcode.
    pub fn cartridge(&self, barcode: &str) -> Result<&CartridgeRecord> {
        self.cartridges.iter().find(|c| c.barcode == barcode).ok_or_else(|| Error::not_found("cartridge", barcode))
    }

    /// A cartridge by barcode, to change it.
    pub fn cartridge_mut(&mut self, barcode: &str) -> Result<&mut CartridgeRecord> {
        self.cartridges.iter_mut().find(|c| c.barcode == barcode).ok_or_else(|| Error::not_found("cartridge", barcode))
    }

    /// The lowest free storage slot.
    pub fn free_slot(&self) -> Option<u16> {
        let mut used = vec![false; self.slots as usize];
        for c in &self.cartridges {
            if let Location::Slot(i) = c.location {
                used[i as usize] = true;
            }
        }
        used.iter().position(|u| !u).map(|i| i as u16)
    }

    /// The lowest free import/export slot.
    pub fn free_ie_slot(&self) -> Option<u16> {
        (0..self.ie_slots).find(|&i| self.at(Location::Ie(i)).is_none())
    }

    /// Checks a decoded record: limits, serials, barcodes unique and valid, capacities, and
    /// locations inside the geometry with at most one cartridge per element.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.version != LIBRARY_VERSION {
            return Err(format!("unsupported version {}", self.version));
        }
        if self.slots > MAX_SLOTS || self.drive_serials.len() > MAX_DRIVES as usize || self.ie_slots > MAX_IE_SLOTS {
            return Err(format!(
                "geometry {} slots, {} drives, {} ie slots exceeds the limits",
                self.slots,
                self.drive_serials.len(),
                self.ie_slots
            ));
        }
        for s in [&self.vendor, &self.product, &self.serial, &self.drive_vendor, &self.drive_product]
            .into_iter()
            .chain(&self.drive_serials)
        {
            if s.len() > 32 || !s.bytes().all(|b| (0x20..0x7F).contains(&b)) {
                return Err(format!("identity string {s:?} is not 1 to 32 printable ASCII characters"));
            }
        }
        if self.flush_bytes == 0 || self.flush_secs == 0 {
            return Err("flush interval is zero".into());
        }
        let mut barcodes: Vec<&str> = Vec::with_capacity(self.cartridges.len());
        let mut places: Vec<Location> = Vec::with_capacity(self.cartridges.len());
        for c in &self.cartridges {
            check_barcode(&c.barcode).map_err(|e| e.to_string())?;
            check_capacity(c.capacity).map_err(|e| e.to_string())?;
            let inside = match c.location {
                Location::Slot(i) => i < self.slots,
                Location::Drive(i) => i < self.drives(),
                Location::Ie(i) => i < self.ie_slots,
                Location::Vault => true,
            };
            if !inside {
                return Err(format!("cartridge {} is at {:?}, outside the library", c.barcode, c.location));
            }
            if c.location != Location::Vault {
                places.push(c.location);
            }
            barcodes.push(&c.barcode);
        }
        barcodes.sort_unstable();
        if barcodes.windows(2).any(|w| w[0] == w[1]) {
            return Err("a barcode repeats".into());
        }
        let n = places.len();
        places.sort_unstable_by_key(|l| format!("{l:?}"));
        places.dedup();
        if places.len() != n {
            return Err("two cartridges share an element".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LibraryRecord {
        LibraryRecord {
            version: LIBRARY_VERSION,
            vendor: "STK".into(),
            product: "L700".into(),
            serial: "QS12345678".into(),
            drive_vendor: "IBM".into(),
            drive_product: "ULT3580-TD5".into(),
            drive_serials: vec!["D1".into(), "D2".into()],
            slots: 4,
            ie_slots: 2,
            cartridges: vec![CartridgeRecord {
                barcode: "QS0001L5".into(),
                capacity: 100_000_000_000,
                write_protected: false,
                worm: false,
                location: Location::Slot(0),
                source: None,
            }],
            next_barcode: 2,
            flush_bytes: 1 << 29,
            flush_secs: 30,
        }
    }

    #[test]
    fn addresses_round_trip() {
        let r = sample();
        for l in [Location::Slot(0), Location::Slot(3), Location::Drive(1), Location::Ie(0), Location::Ie(1)] {
            assert_eq!(r.location_at(r.address(l).unwrap()), Some(l));
        }
        for bad in [0, 1, 9, 12, 502, 999, 1004, u16::MAX] {
            assert_eq!(r.location_at(bad), None, "{bad}");
        }
        assert_eq!(r.free_slot(), Some(1));
        assert_eq!(r.free_ie_slot(), Some(0));
        assert_eq!(generation(100_000_000_000), 5);
        assert_eq!(generation(18_000_000_000_000), 9);
    }

    #[test]
    fn validate_refuses_bad_records() {
        assert!(sample().validate().is_ok());
        let mut r = sample();
        r.cartridges.push(r.cartridges[0].clone());
        assert!(r.validate().is_err());
        let mut r = sample();
        r.cartridges[0].location = Location::Slot(4);
        assert!(r.validate().is_err());
        let mut r = sample();
        r.cartridges[0].barcode = "qs0001l5".into();
        assert!(r.validate().is_err());
        let mut r = sample();
        r.slots = MAX_SLOTS + 1;
        assert!(r.validate().is_err());
        let mut r = sample();
        let mut c = r.cartridges[0].clone();
        c.barcode = "QS0002L5".into();
        r.cartridges.push(c);
        assert!(r.validate().is_err());
    }
}
