//! One connection from login to logout, without I/O: frames in, actions out. It owns the
//! [`Login`] state until the login ends, then the [`Session`]; it turns undecodable PDUs into
//! Rejects (or closes the connection when the header itself cannot be trusted) and says which
//! framing limits and digests apply.

use std::sync::Arc;
use std::time::Instant;

use crate::chap::CHALLENGE_LEN;
use crate::error::CodecError;
use crate::frame::{Digests, Frame};
use crate::login::{Login, Step};
use crate::pdu::Pdu;
use crate::portal::Portal;
use crate::session::{reject, Action, Session};

/// Largest data segment accepted during login (RFC 7143's default MaxRecvDataSegmentLength).
pub const LOGIN_MAX_DATA: u32 = 8192;

enum Phase {
    Login(Box<Login>),
    Full(Box<Session>),
    Closed,
}

/// Framing settings in force for what follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// Digests on PDUs in both directions.
    pub digests: Digests,
    /// Largest data segment accepted from the initiator.
    pub max_recv: u32,
}

/// What the driver does: the session's actions, plus the change of framing when the login
/// ends (it applies to every PDU after the final Login Response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send, or close.
    Act(Action),
    /// From here on, frame with these settings.
    Reframe(Framing),
}

/// A connection's state.
pub struct Connection {
    portal: Arc<Portal>,
    phase: Phase,
    portal_address: String,
    started: Instant,
}

impl Connection {
    /// A new connection to `portal`, reached at `portal_address` (`host:port`, IPv6 in
    /// brackets); `entropy` feeds the CHAP challenge.
    pub fn new(
        portal: Arc<Portal>,
        portal_address: String,
        entropy: [u8; 1 + CHALLENGE_LEN],
        now: Instant,
    ) -> Connection {
        let login = Login::new(portal.clone(), entropy);
        Connection { portal, phase: Phase::Login(Box::new(login)), portal_address, started: now }
    }

    /// Framing at the start (login): no digests, 8 KiB data segments.
    pub fn initial_framing() -> Framing {
        Framing { digests: Digests::default(), max_recv: LOGIN_MAX_DATA }
    }

    /// The session, once in full feature phase.
    pub fn session(&self) -> Option<&Session> {
        match &self.phase {
            Phase::Full(s) => Some(s),
            _ => None,
        }
    }

    /// Handles one received frame.
    pub fn receive(&mut self, frame: Frame, now: Instant) -> Vec<Output> {
        let header = frame.bhs;
        let pdu = Pdu::from_frame(frame);
        match (&mut self.phase, pdu) {
            (Phase::Closed, _) => vec![Output::Act(Action::Close)],
            (Phase::Login(login), Ok(pdu)) => match login.receive(pdu) {
                Step::Continue(r) => vec![Output::Act(Action::Send(r))],
                Step::Fail(r) => {
                    self.phase = Phase::Closed;
                    vec![Output::Act(Action::Send(r)), Output::Act(Action::Close)]
                }
                Step::Done(r, est) => {
                    let framing = Framing {
                        digests: Digests { header: est.params.header_digest, data: est.params.data_digest },
                        max_recv: est.params.max_recv_data_segment,
                    };
                    let session = Session::new(self.portal.clone(), *est, self.portal_address.clone(), now);
                    self.phase = Phase::Full(Box::new(session));
                    vec![Output::Act(Action::Send(r)), Output::Reframe(framing)]
                }
            },
            // Nothing is understood before login ends: drop the connection.
            (Phase::Login(_), Err(_)) => {
                self.phase = Phase::Closed;
                vec![Output::Act(Action::Close)]
            }
            (Phase::Full(s), Ok(pdu)) => s.receive(pdu, now).into_iter().map(Output::Act).collect(),
            (Phase::Full(s), Err(e)) => {
                let reason = match e {
                    CodecError::UnknownOpcode(_) => reject::NOT_SUPPORTED,
                    _ => reject::INVALID_FIELD,
                };
                vec![Output::Act(s.reject(reason, header))]
            }
        }
    }

    /// Handles a framing error (length beyond the limit, digest mismatch): at
    /// ErrorRecoveryLevel 0 the connection is dropped, since what follows cannot be framed.
    pub fn framing_error(&mut self, _error: &CodecError) -> Vec<Output> {
        self.phase = Phase::Closed;
        vec![Output::Act(Action::Close)]
    }

    /// Timers: the login timeout and the keep-alive ping.
    pub fn tick(&mut self, now: Instant) -> Vec<Output> {
        match &mut self.phase {
            Phase::Login(_) if now.duration_since(self.started) >= self.portal.timeouts.login => {
                self.phase = Phase::Closed;
                vec![Output::Act(Action::Close)]
            }
            Phase::Full(s) => s.tick(now).into_iter().map(Output::Act).collect(),
            _ => Vec::new(),
        }
    }
}
