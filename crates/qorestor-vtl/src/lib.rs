//! `qorestor-vtl`: the virtual tape library.
//!
//! This crate will hold the tape library model (a `vtl` container's changer, storage slots,
//! import/export slots, drives and barcoded cartridges, persisted in the engine's catalog) and
//! the transport-independent SCSI emulation (SPC common commands, SSC tape drives, SMC medium
//! changer) behind `execute(lun, cdb, data_out) -> (status, sense, data_in)`, shared by the
//! iSCSI target and the NDMP server. A cartridge is stored as deduplicated engine streams, one
//! per tape file, plus a block/filemark map. Nothing is implemented yet (see the VTL issue).
