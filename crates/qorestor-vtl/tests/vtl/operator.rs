//! The operator's operations and `info` (the `vtl show` document).

use qorestor_core::{ContainerKind, Engine, DEFAULT_GROUP};
use qorestor_vtl::{ErrorKind, LibraryConfig, Vtl};

use super::Lib;

const CAP: u64 = 100_000_000_000;

#[test]
fn info_has_the_shape_cli_md_fixes() {
    let l = Lib::small(CAP);
    l.vtl().load("QS0002L5", 1).unwrap();
    let v = serde_json::to_value(l.vtl().info().unwrap()).unwrap();
    assert_eq!(v["name"], "lib");
    assert_eq!(v["storage_group"], DEFAULT_GROUP);
    assert_eq!(v["library"]["vendor"], "STK");
    assert_eq!(v["library"]["product"], "L700");
    assert!(v["library"]["serial"].as_str().unwrap().len() >= 8);
    let drives = v["drives"].as_array().unwrap();
    assert_eq!(drives.len(), 2);
    assert_eq!(drives[0]["index"], 0);
    assert_eq!(drives[0]["element_address"], 500);
    assert_eq!(drives[0]["barcode"], serde_json::Value::Null);
    assert_eq!(drives[1]["barcode"], "QS0002L5");
    assert!(drives[1]["serial"].is_string());
    assert_eq!(v["slots"].as_array().unwrap().len(), 4);
    assert_eq!(v["slots"][0]["element_address"], 1000);
    assert_eq!(v["slots"][0]["barcode"], "QS0001L5");
    assert_eq!(v["slots"][1]["barcode"], serde_json::Value::Null);
    assert_eq!(v["ie_slots"].as_array().unwrap().len(), 2);
    let carts = v["cartridges"].as_array().unwrap();
    assert_eq!(carts.len(), 3);
    assert_eq!(carts[1]["barcode"], "QS0002L5");
    assert_eq!(carts[1]["location"]["kind"], "drive");
    assert_eq!(carts[1]["location"]["element_address"], 501);
    assert_eq!(carts[0]["location"]["kind"], "slot");
    assert_eq!(carts[0]["capacity_bytes"], CAP);
    assert_eq!(carts[0]["used_bytes"], 0);
    assert_eq!(carts[0]["write_protected"], false);
    assert_eq!(carts[0]["worm"], false);
}

#[test]
fn cartridges_fill_the_lowest_free_slots() {
    let l = Lib::small(CAP);
    l.vtl().load("QS0001L5", 0).unwrap();
    let added = l.vtl().add_cartridges(2, 2_000_000_000_000).unwrap();
    assert_eq!(added, vec!["QS0004L6", "QS0005L6"]);
    let info = l.vtl().info().unwrap();
    let slots: Vec<Option<&str>> = info.slots.iter().map(|s| s.barcode.as_deref()).collect();
    assert_eq!(slots, vec![Some("QS0004L6"), Some("QS0002L5"), Some("QS0003L5"), Some("QS0005L6")]);
    assert_eq!(l.vtl().add_cartridges(1, CAP).unwrap_err().kind(), ErrorKind::Conflict);
    assert_eq!(l.vtl().add_cartridges(0, 10).unwrap_err().kind(), ErrorKind::InvalidInput);
}

#[test]
fn load_unload_import_export_rules() {
    let l = Lib::small(CAP);
    let v = l.vtl();
    v.load("QS0002L5", 0).unwrap();
    assert_eq!(v.load("QS0003L5", 0).unwrap_err().kind(), ErrorKind::Conflict);
    assert_eq!(v.load("QS0002L5", 1).unwrap_err().kind(), ErrorKind::Conflict);
    assert_eq!(v.load("QS0003L5", 9).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(v.load("NOPE0001", 1).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(v.export("QS0002L5").unwrap_err().kind(), ErrorKind::Conflict);
    // Unload returns the cartridge to the slot it came from.
    assert_eq!(v.unload(0).unwrap(), "QS0002L5");
    assert_eq!(v.info().unwrap().slots[1].barcode.as_deref(), Some("QS0002L5"));
    assert_eq!(v.unload(0).unwrap_err().kind(), ErrorKind::Conflict);
    // Export to the vault, import into the mail slots.
    v.export("QS0001L5").unwrap();
    v.export("QS0002L5").unwrap();
    v.export("QS0003L5").unwrap();
    assert_eq!(v.export("QS0003L5").unwrap_err().kind(), ErrorKind::Conflict);
    assert_eq!(v.load("QS0003L5", 0).unwrap_err().kind(), ErrorKind::Conflict);
    let info = v.info().unwrap();
    assert_eq!(info.cartridges[0].location.kind, "vault");
    assert_eq!(info.cartridges[0].location.element_address, None);
    assert_eq!(v.import("QS0001L5").unwrap(), 10);
    assert_eq!(v.import("QS0002L5").unwrap(), 11);
    assert_eq!(v.import("QS0003L5").unwrap_err().kind(), ErrorKind::Conflict);
    // Loading from a mail slot and unloading goes back there.
    v.load("QS0001L5", 1).unwrap();
    v.unload(1).unwrap();
    assert_eq!(v.info().unwrap().ie_slots[0].barcode.as_deref(), Some("QS0001L5"));
    v.set_write_protect("QS0001L5", true).unwrap();
    assert!(v.info().unwrap().cartridges[0].write_protected);
    assert_eq!(v.set_write_protect("NOPE", true).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn library_state_survives_a_restart() {
    let mut l = Lib::small(CAP);
    l.vtl().export("QS0003L5").unwrap();
    l.vtl().set_write_protect("QS0001L5", true).unwrap();
    l.vtl().load("QS0002L5", 1).unwrap();
    let before = l.vtl().info().unwrap();
    l.crash_and_reopen();
    assert_eq!(l.vtl().info().unwrap(), before);
}

#[test]
fn container_add_type_vtl_gets_the_default_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open_or_create(dir.path()).unwrap();
    e.add_container("plain", DEFAULT_GROUP, ContainerKind::Vtl).unwrap();
    let v = Vtl::open(&e, "plain").unwrap();
    let info = v.info().unwrap();
    let d = LibraryConfig::default();
    assert_eq!(info.slots.len(), d.slots as usize);
    assert_eq!(info.drives.len(), d.drives as usize);
    assert_eq!(info.ie_slots.len(), d.ie_slots as usize);
    assert_eq!(info.cartridges.len(), d.tapes as usize);
    drop(v);
    // The same library on the next open.
    assert_eq!(Vtl::open(&e, "plain").unwrap().info().unwrap(), info);
    e.add_container("obj", DEFAULT_GROUP, ContainerKind::Object).unwrap();
    assert_eq!(Vtl::open(&e, "obj").err().unwrap().kind(), ErrorKind::InvalidInput);
    assert_eq!(Vtl::open(&e, "none").err().unwrap().kind(), ErrorKind::NotFound);
    let bad = LibraryConfig { slots: 2, tapes: 3, ..LibraryConfig::default() };
    assert_eq!(Vtl::create(&e, "x", DEFAULT_GROUP, &bad).err().unwrap().kind(), ErrorKind::InvalidInput);
    let bad = LibraryConfig { drives: 0, ..LibraryConfig::default() };
    assert_eq!(Vtl::create(&e, "x", DEFAULT_GROUP, &bad).err().unwrap().kind(), ErrorKind::InvalidInput);
}
