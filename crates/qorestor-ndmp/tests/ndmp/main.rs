//! Integration tests of qorestor-ndmp: the codec (property tests), and the server driven by
//! the crate's minimal DMA over loopback against a real virtual tape library.

mod codec;
mod fixture;
mod live;
mod mover;
mod server;
mod session;
mod tape;
