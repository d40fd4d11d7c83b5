//! The NDMP mover: its state machine ([`MoverState`], pure) and the data pump threads that move
//! records between a TCP data connection and the open tape.
//!
//! States: IDLE → LISTEN (MOVER_LISTEN) or ACTIVE (MOVER_CONNECT) → ACTIVE once the data
//! connection is up → PAUSED (end of window, end of medium, filemark, seek) ⇄ ACTIVE
//! (MOVER_CONTINUE) → HALTED (connection closed, MOVER_ABORT, MOVER_CLOSE, error) → IDLE
//! (MOVER_STOP). Modes (NDMP v4): READ reads the network and writes the tape (a backup),
//! WRITE reads the tape and writes the network (a restore, driven by MOVER_READ).
//!
//! Lock order: the mover's state, then the tape.

use crate::message::{mover_mode, NdmpError};
use crate::reply::{MoverStateReply, Post};
use crate::request::TcpAddr;

/// Mover states.
pub mod state {
    #![allow(missing_docs)]
    pub const IDLE: u32 = 0;
    pub const LISTEN: u32 = 1;
    pub const ACTIVE: u32 = 2;
    pub const PAUSED: u32 = 3;
    pub const HALTED: u32 = 4;
}

/// Pause reasons.
pub mod pause {
    #![allow(missing_docs)]
    pub const NA: u32 = 0;
    pub const EOM: u32 = 1;
    pub const EOF: u32 = 2;
    pub const SEEK: u32 = 3;
    pub const EOW: u32 = 5;
}

/// Halt reasons.
pub mod halt {
    #![allow(missing_docs)]
    pub const NA: u32 = 0;
    pub const CONNECT_CLOSED: u32 = 1;
    pub const ABORTED: u32 = 2;
    pub const INTERNAL_ERROR: u32 = 3;
    pub const CONNECT_ERROR: u32 = 4;
    pub const MEDIA_ERROR: u32 = 5;
}

/// LOG_MESSAGE types.
const LOG_NORMAL: u32 = 0;
const LOG_ERROR: u32 = 2;

/// Default record size (10 KiB, as tar's default blocking).
pub const DEFAULT_RECORD_SIZE: u32 = 10240;
/// Largest record size.
pub const MAX_RECORD_SIZE: u32 = 4 << 20;

/// The mover's state, without I/O: every request and pump event is a method that returns the
/// NDMP error to reply with and the posts to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoverState {
    /// State.
    pub state: u32,
    /// Mode.
    pub mode: u32,
    /// Pause reason.
    pub pause_reason: u32,
    /// Halt reason.
    pub halt_reason: u32,
    /// Record size.
    pub record_size: u32,
    /// Record number of the tape position (window-relative stream records).
    pub record_num: u64,
    /// Bytes moved.
    pub bytes_moved: u64,
    /// Seek position of the last pause.
    pub seek_position: u64,
    /// The pending MOVER_READ: next stream offset and bytes left.
    pub read_offset: u64,
    /// Bytes left of the pending MOVER_READ.
    pub bytes_left_to_read: u64,
    /// Window.
    pub window_offset: u64,
    /// Window length.
    pub window_length: u64,
    /// Data connection.
    pub data_connection: Option<TcpAddr>,
    /// Counts the mover's starts (MOVER_LISTEN, MOVER_CONNECT): a pump thread serves only the
    /// start it was spawned for, and leaves a later one alone however late it wakes.
    pub activation: u64,
}

impl Default for MoverState {
    fn default() -> Self {
        MoverState {
            state: state::IDLE,
            mode: mover_mode::READ,
            pause_reason: pause::NA,
            halt_reason: halt::NA,
            record_size: DEFAULT_RECORD_SIZE,
            record_num: 0,
            bytes_moved: 0,
            seek_position: 0,
            read_offset: 0,
            bytes_left_to_read: 0,
            window_offset: 0,
            window_length: u64::MAX,
            data_connection: None,
            activation: 0,
        }
    }
}

/// `Ok` or the error to reply with.
pub type Check = Result<(), NdmpError>;

impl MoverState {
    /// MOVER_GET_STATE's reply.
    pub fn reply(&self) -> MoverStateReply {
        MoverStateReply {
            mode: self.mode,
            state: self.state,
            pause_reason: self.pause_reason,
            halt_reason: self.halt_reason,
            record_size: self.record_size,
            record_num: self.record_num.min(u32::MAX as u64) as u32,
            bytes_moved: self.bytes_moved,
            seek_position: self.seek_position,
            bytes_left_to_read: self.bytes_left_to_read,
            window_offset: self.window_offset,
            window_length: self.window_length,
            data_connection: self.data_connection,
        }
    }

    /// MOVER_SET_RECORD_SIZE.
    pub fn set_record_size(&mut self, len: u32) -> Check {
        if self.state != state::IDLE {
            return Err(NdmpError::IllegalState);
        }
        if len == 0 || len > MAX_RECORD_SIZE {
            return Err(NdmpError::IllegalArgs);
        }
        self.record_size = len;
        Ok(())
    }

    /// MOVER_SET_WINDOW: in IDLE or PAUSED, and in LISTEN if `in_listen` (version 3).
    pub fn set_window(&mut self, offset: u64, length: u64, in_listen: bool) -> Check {
        let listen_ok = in_listen && self.state == state::LISTEN;
        if self.state != state::IDLE && self.state != state::PAUSED && !listen_ok {
            return Err(NdmpError::IllegalState);
        }
        if !offset.is_multiple_of(self.record_size as u64) {
            return Err(NdmpError::IllegalArgs);
        }
        self.window_offset = offset;
        self.window_length = length;
        self.record_num = offset / self.record_size as u64;
        Ok(())
    }

    /// Checks a MOVER_LISTEN or MOVER_CONNECT's arguments and state; the caller then checks
    /// the tape and calls [`MoverState::listening`] or [`MoverState::connected`].
    pub fn check_start(&self, mode: u32, addr_type_ok: bool) -> Check {
        if mode != mover_mode::READ && mode != mover_mode::WRITE || !addr_type_ok {
            return Err(NdmpError::IllegalArgs);
        }
        if self.state != state::IDLE {
            return Err(NdmpError::IllegalState);
        }
        Ok(())
    }

    /// Now listening on `addr` (a new start).
    pub fn listening(&mut self, mode: u32, addr: TcpAddr) {
        self.activation += 1;
        self.state = state::LISTEN;
        self.mode = mode;
        self.data_connection = Some(addr);
        self.bytes_moved = 0;
    }

    /// The data connection is up: accepted while listening, or connected (a new start).
    pub fn connected(&mut self, mode: u32, peer: TcpAddr) {
        if self.state != state::LISTEN {
            self.activation += 1;
        }
        self.state = state::ACTIVE;
        self.mode = mode;
        self.data_connection = Some(peer);
    }

    /// MOVER_CONTINUE.
    pub fn resume(&mut self) -> Check {
        if self.state != state::PAUSED {
            return Err(NdmpError::IllegalState);
        }
        self.state = state::ACTIVE;
        self.pause_reason = pause::NA;
        Ok(())
    }

    /// MOVER_ABORT: halts from any state but IDLE and HALTED.
    pub fn abort(&mut self) -> Result<Vec<Post>, NdmpError> {
        if self.state == state::IDLE || self.state == state::HALTED {
            return Err(NdmpError::IllegalState);
        }
        Ok(self.halt(halt::ABORTED))
    }

    /// MOVER_STOP: HALTED → IDLE.
    pub fn stop(&mut self) -> Check {
        if self.state != state::HALTED {
            return Err(NdmpError::IllegalState);
        }
        *self = MoverState { record_size: self.record_size, activation: self.activation, ..MoverState::default() };
        Ok(())
    }

    /// MOVER_CLOSE: closes the data connection (PAUSED, or ACTIVE waiting for a MOVER_READ).
    pub fn close(&mut self) -> Result<Vec<Post>, NdmpError> {
        if self.state != state::PAUSED && self.state != state::ACTIVE {
            return Err(NdmpError::IllegalState);
        }
        Ok(self.halt(halt::CONNECT_CLOSED))
    }

    /// MOVER_READ (restore mode, ACTIVE, no read pending).
    pub fn read(&mut self, offset: u64, length: u64) -> Check {
        if self.state != state::ACTIVE || self.mode != mover_mode::WRITE {
            return Err(NdmpError::IllegalState);
        }
        if self.bytes_left_to_read > 0 {
            return Err(NdmpError::IllegalState);
        }
        self.read_offset = offset;
        self.bytes_left_to_read = length;
        Ok(())
    }

    /// Halts with `reason` (no-op once halted); returns the NOTIFY_MOVER_HALTED to send.
    pub fn halt(&mut self, reason: u32) -> Vec<Post> {
        if self.state == state::HALTED || self.state == state::IDLE {
            return Vec::new();
        }
        self.state = state::HALTED;
        self.halt_reason = reason;
        self.pause_reason = pause::NA;
        let why = match reason {
            halt::MEDIA_ERROR => "the tape failed a read or write",
            halt::INTERNAL_ERROR => "the tape server failed internally (see its log)",
            halt::CONNECT_ERROR => "the data connection failed",
            _ => return vec![Post::MoverHalted(reason)],
        };
        let text = format!("mover halted after {} bytes: {why}", self.bytes_moved);
        vec![Post::Log { log_type: LOG_ERROR, id: self.bytes_moved as u32, text }, Post::MoverHalted(reason)]
    }

    /// Pauses with `reason` at stream position `seek`; returns the NOTIFY_MOVER_PAUSED.
    pub fn pause(&mut self, reason: u32, seek: u64) -> Vec<Post> {
        self.state = state::PAUSED;
        self.pause_reason = reason;
        self.seek_position = seek;
        let paused = Post::MoverPaused { reason, seek_position: seek };
        if reason != pause::EOM {
            return vec![paused];
        }
        let text = format!("end of medium after {} bytes: load the next tape and continue the mover", self.bytes_moved);
        vec![Post::Log { log_type: LOG_NORMAL, id: self.bytes_moved as u32, text }, paused]
    }

    /// Stream offset of the tape position.
    pub fn position(&self) -> u64 {
        self.record_num * self.record_size as u64
    }

    /// Whether the tape position is at or past the end of the window.
    pub fn window_end(&self) -> bool {
        self.position() >= self.window_offset.saturating_add(self.window_length)
    }

    /// Whether stream offset `off` is inside the window.
    pub fn in_window(&self, off: u64) -> bool {
        off >= self.window_offset && off < self.window_offset.saturating_add(self.window_length)
    }
}
