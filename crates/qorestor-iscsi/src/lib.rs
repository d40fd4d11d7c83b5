//! `qorestor-iscsi`: the iSCSI target (RFC 7143) exposing each `vtl` container as a target.
//!
//! Three layers:
//! - the codec, pure functions: [`frame`] (BHS, AHS, CRC32C header and data digests, padding),
//!   [`pdu`] (typed PDUs), [`text`] (key=value segments);
//! - state machines without I/O: [`login`] (security with [`chap`], operational negotiation
//!   with [`params`]), [`session`] (full feature phase), [`connection`] (both, plus framing
//!   errors and timers), sharing a [`portal::Portal`] (targets, CHAP, limits);
//! - [`server`]: a TCP listener with one thread per connection.
//!
//! One target per virtual tape library, named by [`portal::target_name`]; LUN 0 is the changer
//! and LUNs 1..M the drives in drive element address order; SCSI commands go unchanged to
//! [`qorestor_vtl::Vtl::execute`].
//!
//! ```
//! use qorestor_iscsi::frame::{decode, encode, Digests};
//! use qorestor_iscsi::pdu::{Pdu, RESERVED_TAG};
//!
//! let ping = Pdu::NopOut { immediate: true, lun: 0, itt: 7, ttt: RESERVED_TAG, cmd_sn: 1, exp_stat_sn: 1, data: b"hi".to_vec() };
//! let mut wire = Vec::new();
//! let digests = Digests { header: true, data: true };
//! encode(&ping.to_frame(), digests, &mut wire);
//! let (frame, used) = decode(&wire, digests, 8192).unwrap().unwrap();
//! assert_eq!(used, wire.len());
//! assert_eq!(Pdu::from_frame(frame).unwrap(), ping);
//! ```

pub mod chap;
pub mod config;
pub mod connection;
pub mod error;
pub mod frame;
pub mod login;
pub mod params;
pub mod pdu;
pub mod portal;
pub mod server;
pub mod session;
pub mod text;

pub use error::{CodecError, Error, ErrorKind, Result};
pub use portal::{target_name, Portal, Target};
pub use server::Server;
