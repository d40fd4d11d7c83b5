//! `qorestor-ndmp`: the NDMP version 4 tape, mover and robot server.
//!
//! It will be built in three layers: a pure XDR codec with record marking, the session state
//! machine (CONNECT, CONFIG, SCSI, TAPE, MOVER, NOTIFY interfaces), and the TCP server, with tape
//! and changer operations delegated to `qorestor-vtl`. Nothing is implemented yet (see the NDMP
//! issue).
