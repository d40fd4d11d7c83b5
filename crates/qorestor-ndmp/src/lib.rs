//! `qorestor-ndmp`: the NDMP version 4 (and 3) tape, mover and robot server over the virtual
//! tape library.
//!
//! Three layers:
//! - the codec, pure and bounded: [`xdr`] primitives, [`record`] marking, the [`message`]
//!   header and codes, [`request`] decoding and [`reply`] encoding;
//! - the session: [`session::Session`] (authentication, CONFIG, SCSI, TAPE, MOVER), the
//!   [`tape`] service on a VTL drive (SSC commands through `Vtl::execute`), the
//!   [`mover`] state machine and its data [`pump`];
//! - the [`server`]: a TCP listener with one thread per connection.
//!
//! Device names are in [`devices`], which session has which open in [`claims`], the user and password in [`config`]; [`client`] is a
//! minimal DMA for tests and tools. `docs/NDMP.md`
//! lists the protocol coverage.
//!
//! ```
//! use qorestor_ndmp::record::{decode_record, encode_record, MAX_RECORD};
//! use qorestor_ndmp::request::{decode_request, Request};
//! use qorestor_ndmp::message::code;
//!
//! let framed = encode_record(&[0, 0, 0, 4]);
//! let (body, used) = decode_record(&framed, MAX_RECORD).unwrap().unwrap();
//! assert_eq!(used, framed.len());
//! assert_eq!(decode_request(4, code::CONNECT_OPEN, &body).unwrap(), Request::ConnectOpen { version: 4 });
//! ```

pub mod claims;
pub mod client;
pub mod config;
pub mod devices;
pub mod error;
pub mod message;
pub mod mover;
pub mod pump;
pub mod record;
pub mod reply;
pub mod request;
pub mod server;
pub mod session;
pub mod tape;
pub mod xdr;

pub use config::Credentials;
pub use error::{DecodeError, Error, ErrorKind, Result};
pub use session::Shared;
