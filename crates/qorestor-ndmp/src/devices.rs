//! Device names: what CONFIG_GET_TAPE_INFO and CONFIG_GET_SCSI_INFO list, TAPE_OPEN and
//! SCSI_OPEN take, and `qorestor ndmp show` prints. Drive `i` of library `LIB` (index in
//! element address order) is the tape device `LIB/tapeI`; its changer is `LIB/changer`.

use std::sync::Arc;

use qorestor_vtl::{Libraries, Vtl};
use serde::Serialize;

/// What a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A tape drive.
    Tape,
    /// A media changer.
    Changer,
}

/// A device as `ndmp show` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// The NDMP device name.
    pub name: String,
    /// Tape or changer.
    pub kind: Kind,
    /// The library (vtl container).
    pub library: String,
    /// The drive's data transfer element address (tape drives).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element_address: Option<u16>,
    /// Vendor and product.
    #[serde(skip)]
    pub model: String,
    /// The drive index (tape drives).
    #[serde(skip)]
    pub drive: u16,
}

/// The tape device name of drive `drive` of `library`.
pub fn tape_name(library: &str, drive: u16) -> String {
    format!("{library}/tape{drive}")
}

/// The changer device name of `library`.
pub fn changer_name(library: &str) -> String {
    format!("{library}/changer")
}

/// Every device of `vtl`: the changer, then its drives by element address.
pub fn of_library(vtl: &Vtl) -> qorestor_vtl::Result<Vec<Device>> {
    let info = vtl.info()?;
    let mut out = vec![Device {
        name: changer_name(&info.name),
        kind: Kind::Changer,
        library: info.name.clone(),
        element_address: None,
        model: format!("{} {}", info.library.vendor, info.library.product),
        drive: 0,
    }];
    for d in &info.drives {
        out.push(Device {
            name: tape_name(&info.name, d.index),
            kind: Kind::Tape,
            library: info.name.clone(),
            element_address: Some(d.element_address),
            model: "IBM ULT3580-TD5".into(),
            drive: d.index,
        });
    }
    Ok(out)
}

/// Every device of every library.
pub fn all(libraries: &Libraries) -> qorestor_vtl::Result<Vec<Device>> {
    let mut out = Vec::new();
    for l in libraries.list().iter() {
        out.extend(of_library(l)?);
    }
    Ok(out)
}

/// The library and device named `name`.
pub fn find(libraries: &Libraries, name: &str) -> Option<(Arc<Vtl>, Device)> {
    let (lib, _) = name.rsplit_once('/')?;
    let vtl = libraries.get(lib)?;
    let d = of_library(&vtl).ok()?.into_iter().find(|d| d.name == name)?;
    Some((vtl, d))
}
