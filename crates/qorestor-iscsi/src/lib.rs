//! `qorestor-iscsi`: the iSCSI target (RFC 7143) exposing each `vtl` container as a target.
//!
//! It will be built in three layers: a pure PDU codec (BHS, AHS, CRC32C digests), session and
//! connection state machines without I/O (login negotiation, CHAP, full-feature phase), and the
//! TCP server. LUN 0 is the changer and LUNs 1..M the drives; SCSI commands go unchanged to
//! `qorestor-vtl`. Nothing is implemented yet (see the iSCSI issue).
