//! The full feature phase of a session (RFC 7143 §3 and §11): CmdSN ordering and windowing,
//! SCSI commands with immediate, unsolicited and solicited (R2T) data, Data-In with the status
//! in the last PDU, residuals, NOP-Out/NOP-In both ways with a keep-alive timeout, task
//! management, SendTargets and Logout. A state machine without I/O: [`Session::receive`] takes
//! one PDU and returns the PDUs to send; [`Session::tick`] pings an idle initiator.
//!
//! Commands run one after the other in CmdSN order on the calling thread; a write runs once
//! all its data is in. Solicited data is asked for one burst at a time and one task at a time,
//! so a session buffers at most one write command's data plus the unsolicited first bursts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use qorestor_vtl::{ScsiResponse, GOOD};

use crate::login::{Established, SessionKind, COMMAND_WINDOW, MAX_LOGIN_TEXT};
use crate::pdu::{Pdu, Residual, Sn, RESERVED_TAG};
use crate::portal::{lun_number, Portal};
use crate::text::{self, Pairs};

/// Largest write (expected data transfer length) accepted: the VTL's largest transfer.
pub const MAX_WRITE: u32 = qorestor_vtl::MAX_TRANSFER as u32;

/// Reject reasons (RFC 7143 §11.17.1).
pub mod reject {
    /// SNACK Reject.
    pub const SNACK: u8 = 0x03;
    /// Protocol error.
    pub const PROTOCOL_ERROR: u8 = 0x04;
    /// Command not supported.
    pub const NOT_SUPPORTED: u8 = 0x05;
    /// Invalid PDU field.
    pub const INVALID_FIELD: u8 = 0x09;
}

/// Task management functions and responses (RFC 7143 §11.5 and §11.6).
pub mod tmf {
    /// ABORT TASK.
    pub const ABORT_TASK: u8 = 1;
    /// ABORT TASK SET.
    pub const ABORT_TASK_SET: u8 = 2;
    /// CLEAR TASK SET.
    pub const CLEAR_TASK_SET: u8 = 4;
    /// LOGICAL UNIT RESET.
    pub const LUN_RESET: u8 = 5;
    /// TARGET WARM RESET.
    pub const TARGET_WARM_RESET: u8 = 6;
    /// TASK REASSIGN.
    pub const TASK_REASSIGN: u8 = 8;
    /// Response: function complete.
    pub const COMPLETE: u8 = 0;
    /// Response: task does not exist.
    pub const NO_TASK: u8 = 1;
    /// Response: LUN does not exist.
    pub const NO_LUN: u8 = 2;
    /// Response: task allegiance reassignment not supported.
    pub const NO_REASSIGN: u8 = 4;
    /// Response: function not supported.
    pub const NOT_SUPPORTED: u8 = 5;
    /// Response: function rejected.
    pub const REJECTED: u8 = 255;
}

/// What the I/O driver does after a PDU or a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this PDU.
    Send(Pdu),
    /// Close the connection (after sending what precedes).
    Close,
}

/// A write waiting for its data.
struct WriteTask {
    itt: u32,
    lun_field: u64,
    cdb: Vec<u8>,
    expected: u32,
    data: Vec<u8>,
    unsolicited_end: u32,
    r2t_sn: u32,
    /// The outstanding R2T: its tag and the offset where its burst ends.
    r2t: Option<(u32, u32)>,
}

impl WriteTask {
    fn received(&self) -> u32 {
        self.data.len() as u32
    }
}

/// A text response too long for one PDU, sent in parts.
struct PendingText {
    itt: u32,
    ttt: u32,
    rest: Vec<u8>,
}

/// One session in full feature phase (one connection: MaxConnections=1).
pub struct Session {
    portal: Arc<Portal>,
    est: Established,
    /// TargetAddress for SendTargets: the address the initiator connected to.
    portal_address: String,
    stat_sn: u32,
    exp_cmd_sn: u32,
    /// Commands received ahead of ExpCmdSN, by CmdSN; `None` marks a CmdSN an ABORT TASK
    /// declared received.
    queued: HashMap<u32, Option<Pdu>>,
    writes: Vec<WriteTask>,
    next_ttt: u32,
    text_in: Vec<u8>,
    text_out: Option<PendingText>,
    last_heard: Instant,
    ping: Option<(u32, Instant)>,
}

/// Whether `a` comes before `b` in serial number arithmetic (RFC 1982).
fn sn_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 1 << 31
}

impl Session {
    /// The session a finished login established; `portal_address` is `host:port` as the
    /// initiator reached it.
    pub fn new(portal: Arc<Portal>, est: Established, portal_address: String, now: Instant) -> Session {
        Session {
            portal,
            stat_sn: est.stat_sn,
            exp_cmd_sn: est.exp_cmd_sn,
            est,
            portal_address,
            queued: HashMap::new(),
            writes: Vec::new(),
            next_ttt: 1,
            text_in: Vec::new(),
            text_out: None,
            last_heard: now,
            ping: None,
        }
    }

    /// The login's outcome (parameters, names).
    pub fn established(&self) -> &Established {
        &self.est
    }

    fn max_cmd_sn(&self) -> u32 {
        self.exp_cmd_sn.wrapping_add(COMMAND_WINDOW - 1)
    }

    /// Sequence numbers for a PDU that carries no status (StatSN is not advanced).
    fn sn(&self) -> Sn {
        Sn { stat_sn: self.stat_sn, exp_cmd_sn: self.exp_cmd_sn, max_cmd_sn: self.max_cmd_sn() }
    }

    /// Sequence numbers for a status-carrying PDU (StatSN advances).
    fn status_sn(&mut self) -> Sn {
        let sn = self.sn();
        self.stat_sn = self.stat_sn.wrapping_add(1);
        sn
    }

    fn ttt(&mut self) -> u32 {
        let t = self.next_ttt;
        self.next_ttt = self.next_ttt.wrapping_add(1);
        if self.next_ttt == RESERVED_TAG {
            self.next_ttt = 1;
        }
        t
    }

    /// A Reject of the PDU whose header is `header`.
    pub fn reject(&mut self, reason: u8, header: [u8; 48]) -> Action {
        Action::Send(Pdu::Reject { reason, sn: self.status_sn(), data_sn: 0, header })
    }

    /// Handles one PDU from the initiator.
    pub fn receive(&mut self, pdu: Pdu, now: Instant) -> Vec<Action> {
        self.last_heard = now;
        let mut out = Vec::new();
        let ordered = match &pdu {
            Pdu::NopOut { immediate, cmd_sn, itt, .. } if *itt != RESERVED_TAG => Some((*immediate, *cmd_sn)),
            Pdu::ScsiCommand { immediate, cmd_sn, .. }
            | Pdu::TaskMgmt { immediate, cmd_sn, .. }
            | Pdu::Text { immediate, cmd_sn, .. }
            | Pdu::Logout { immediate, cmd_sn, .. } => Some((*immediate, *cmd_sn)),
            _ => None,
        };
        match ordered {
            None | Some((true, _)) => self.process(pdu, &mut out),
            Some((false, sn)) if sn == self.exp_cmd_sn => {
                self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
                self.process(pdu, &mut out);
                self.drain(&mut out);
            }
            Some((false, sn)) => {
                // Ahead within the window: keep until its turn. Outside it: ignored (§4.2.2.1).
                if sn_lt(self.exp_cmd_sn, sn) && !sn_lt(self.max_cmd_sn(), sn) && !self.queued.contains_key(&sn) {
                    self.queued.insert(sn, Some(pdu));
                }
            }
        }
        out
    }

    fn drain(&mut self, out: &mut Vec<Action>) {
        while let Some(next) = self.queued.remove(&self.exp_cmd_sn) {
            self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
            if let Some(pdu) = next {
                self.process(pdu, out);
            }
            if out.last() == Some(&Action::Close) {
                return;
            }
        }
    }

    /// Pings an initiator that has been quiet for the keep-alive interval; closes the
    /// connection when a ping stays unanswered past the timeout.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let t = self.portal.timeouts;
        match self.ping {
            Some((_, sent)) if now.duration_since(sent) >= t.nop_timeout => vec![Action::Close],
            Some(_) => Vec::new(),
            None if now.duration_since(self.last_heard) >= t.nop_interval => {
                let ttt = self.ttt();
                self.ping = Some((ttt, now));
                vec![Action::Send(Pdu::NopIn { lun: 0, itt: RESERVED_TAG, ttt, sn: self.sn(), data: Vec::new() })]
            }
            None => Vec::new(),
        }
    }

    fn process(&mut self, pdu: Pdu, out: &mut Vec<Action>) {
        match pdu {
            Pdu::NopOut { lun, itt, ttt, mut data, .. } => {
                if ttt != RESERVED_TAG {
                    if self.ping.is_some_and(|(t, _)| t == ttt) {
                        self.ping = None;
                    }
                } else if itt != RESERVED_TAG {
                    // The echo stays within what the initiator accepts.
                    data.truncate(self.est.params.max_send_data_segment as usize);
                    let sn = self.status_sn();
                    out.push(Action::Send(Pdu::NopIn { lun, itt, ttt: RESERVED_TAG, sn, data }));
                }
            }
            Pdu::ScsiCommand { .. } if self.est.kind == SessionKind::Discovery => {
                out.push(self.reject(reject::NOT_SUPPORTED, pdu.to_frame().bhs));
            }
            Pdu::ScsiCommand { final_, read, write, lun, itt, expected_len, cdb, data, .. } => {
                self.command(out, Command { final_, read, write, lun, itt, expected_len, cdb, data });
            }
            Pdu::DataOut { itt, ttt, offset, data, .. } => self.data_out(out, itt, ttt, offset, data),
            Pdu::TaskMgmt { function, lun, ref_itt, ref_cmd_sn, itt, cmd_sn, .. } => {
                let response = self.task_management(function, lun, ref_itt, ref_cmd_sn, cmd_sn);
                let sn = self.status_sn();
                out.push(Action::Send(Pdu::TaskMgmtResponse { response, itt, sn }));
                self.solicit(out);
            }
            Pdu::Text { final_, cont, lun, itt, ttt, data, .. } => self.text(out, final_ && !cont, lun, itt, ttt, data),
            Pdu::Logout { reason, itt, .. } => {
                self.writes.clear();
                self.queued.clear();
                // 0 close the session, 1 close the connection (the same here); 2 (remove the
                // connection for recovery) needs ErrorRecoveryLevel 2.
                let response = if reason == 2 { 2 } else { 0 };
                let sn = self.status_sn();
                let time2wait = self.est.params.time2wait;
                out.push(Action::Send(Pdu::LogoutResponse { response, itt, sn, time2wait, time2retain: 0 }));
                if response == 0 {
                    out.push(Action::Close);
                }
            }
            Pdu::Snack { header, .. } => out.push(self.reject(reject::SNACK, header)),
            other => {
                // A target PDU or a login request in full feature phase.
                out.push(self.reject(reject::PROTOCOL_ERROR, other.to_frame().bhs));
            }
        }
    }

    fn command(&mut self, out: &mut Vec<Action>, c: Command) {
        if !c.write || c.expected_len == 0 {
            let data_out = if c.write { c.data.as_slice() } else { &[] };
            let resp = self.execute(c.lun, &c.cdb, data_out);
            self.respond(out, c.itt, c.lun, c.read, c.expected_len, resp, 0);
            return;
        }
        let imm = c.data.len() as u32;
        let p = self.est.params;
        if imm > c.expected_len || imm > p.first_burst || (imm > 0 && !p.immediate_data) || c.expected_len > MAX_WRITE {
            let reason = if c.expected_len > MAX_WRITE { reject::NOT_SUPPORTED } else { reject::PROTOCOL_ERROR };
            out.push(self.reject(reason, c.header()));
            return;
        }
        let unsolicited_end = if c.final_ || p.initial_r2t { imm } else { p.first_burst.min(c.expected_len) };
        let mut data = Vec::with_capacity(unsolicited_end as usize);
        data.extend_from_slice(&c.data);
        self.writes.push(WriteTask {
            itt: c.itt,
            lun_field: c.lun,
            cdb: c.cdb,
            expected: c.expected_len,
            data,
            unsolicited_end,
            r2t_sn: 0,
            r2t: None,
        });
        self.progress(out, self.writes.len() - 1);
    }

    /// Runs a write whose data is complete, or asks for more.
    fn progress(&mut self, out: &mut Vec<Action>, i: usize) {
        let t = &self.writes[i];
        if t.received() == t.expected {
            let t = self.writes.remove(i);
            let resp = self.execute(t.lun_field, &t.cdb, &t.data);
            self.respond(out, t.itt, t.lun_field, false, t.expected, resp, t.r2t_sn);
        }
        self.solicit(out);
    }

    /// Sends the next R2T if no burst is outstanding: to the oldest write whose unsolicited
    /// data is in.
    fn solicit(&mut self, out: &mut Vec<Action>) {
        if self.writes.iter().any(|t| t.r2t.is_some()) {
            return;
        }
        let Some(i) = self.writes.iter().position(|t| t.received() >= t.unsolicited_end && t.received() < t.expected)
        else {
            return;
        };
        let ttt = self.ttt();
        let sn = self.sn();
        let burst = self.est.params.max_burst;
        let t = &mut self.writes[i];
        let offset = t.received();
        let length = (t.expected - offset).min(burst);
        // Room for this burst only: the buffer grows with what was asked for.
        t.data.reserve_exact(length as usize);
        t.r2t = Some((ttt, offset + length));
        let r2t_sn = t.r2t_sn;
        t.r2t_sn += 1;
        out.push(Action::Send(Pdu::R2t { lun: t.lun_field, itt: t.itt, ttt, sn, r2t_sn, offset, length }));
    }

    fn data_out(&mut self, out: &mut Vec<Action>, itt: u32, ttt: u32, offset: u32, data: Vec<u8>) {
        // Data for a task that is gone (aborted, refused) is dropped.
        let Some(i) = self.writes.iter().position(|t| t.itt == itt) else { return };
        let t = &mut self.writes[i];
        let end = offset as u64 + data.len() as u64;
        let limit = match (ttt, t.r2t) {
            (RESERVED_TAG, _) => t.unsolicited_end,
            (tag, Some((want, burst_end))) if tag == want => burst_end,
            _ => 0,
        };
        if offset != t.received() || end > limit as u64 {
            let header = Pdu::DataOut {
                final_: false,
                lun: t.lun_field,
                itt,
                ttt,
                exp_stat_sn: 0,
                data_sn: 0,
                offset,
                data: Vec::new(),
            }
            .to_frame()
            .bhs;
            out.push(self.reject(reject::INVALID_FIELD, header));
            return;
        }
        t.data.extend_from_slice(&data);
        if t.r2t.is_some_and(|(_, burst_end)| t.received() == burst_end) {
            t.r2t = None;
        }
        self.progress(out, i);
    }

    fn execute(&self, lun_field: u64, cdb: &[u8], data_out: &[u8]) -> ScsiResponse {
        let target = self.est.target.as_ref().expect("normal sessions have a target");
        target.units.execute(lun_number(lun_field).unwrap_or(u64::MAX), cdb, data_out)
    }

    /// Data-In PDUs (status in the last one when GOOD) or a SCSI Response.
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        out: &mut Vec<Action>,
        itt: u32,
        lun: u64,
        read: bool,
        expected: u32,
        mut resp: ScsiResponse,
        r2ts: u32,
    ) {
        let have = resp.data_in.len() as u64;
        let want = if read { expected as u64 } else { 0 };
        let send = have.min(want) as usize;
        let residual = match have.cmp(&(expected as u64)) {
            _ if !read && expected > 0 => Residual::None,
            std::cmp::Ordering::Greater => Residual::Overflow((have - expected as u64).min(u32::MAX as u64) as u32),
            std::cmp::Ordering::Less if read => Residual::Underflow(expected - have as u32),
            _ => Residual::None,
        };
        let p = self.est.params;
        let seg = p.max_send_data_segment.max(512) as usize;
        let burst = p.max_burst.max(512) as usize;
        let status_in_data = resp.status == GOOD && resp.sense.is_empty() && send > 0;
        let mut data_sn = 0;
        let mut offset = 0;
        while offset < send {
            let burst_end = (offset / burst + 1) * burst;
            let end = (offset + seg).min(send).min(burst_end);
            let last = end == send;
            let status = (last && status_in_data).then_some(resp.status);
            let sn = if status.is_some() { self.status_sn() } else { self.sn() };
            out.push(Action::Send(Pdu::DataIn {
                final_: last || end == burst_end,
                status,
                residual: if status.is_some() { residual } else { Residual::None },
                lun,
                itt,
                ttt: RESERVED_TAG,
                sn,
                data_sn,
                offset: offset as u32,
                // One PDU for all the data (the usual tape read): moved, not copied.
                data: if offset == 0 && end == resp.data_in.len() {
                    std::mem::take(&mut resp.data_in)
                } else {
                    resp.data_in[offset..end].to_vec()
                },
            }));
            data_sn += 1;
            offset = end;
        }
        if !status_in_data {
            let sn = self.status_sn();
            out.push(Action::Send(Pdu::ScsiResponse {
                response: 0,
                status: resp.status,
                itt,
                sn,
                exp_data_sn: if read { data_sn } else { r2ts },
                residual,
                sense: resp.sense,
            }));
        }
    }

    fn task_management(&mut self, function: u8, lun: u64, ref_itt: u32, ref_cmd_sn: u32, cmd_sn: u32) -> u8 {
        let Some(target) = self.est.target.clone() else { return tmf::REJECTED };
        let lun_ok = lun_number(lun).is_some_and(|n| n < target.units.lun_count());
        match function {
            tmf::ABORT_TASK => {
                let before = self.writes.len();
                self.writes.retain(|t| t.itt != ref_itt);
                let queued = self.queued.iter().find_map(|(sn, p)| match p {
                    Some(Pdu::ScsiCommand { itt, .. }) if *itt == ref_itt => Some(*sn),
                    _ => None,
                });
                if let Some(sn) = queued {
                    self.queued.insert(sn, None);
                }
                if self.writes.len() < before || queued.is_some() {
                    return tmf::COMPLETE;
                }
                // Not received yet but within the window: consider it received (§11.5.1).
                let in_window = !sn_lt(ref_cmd_sn, self.exp_cmd_sn) && !sn_lt(self.max_cmd_sn(), ref_cmd_sn);
                if in_window && ref_cmd_sn != cmd_sn {
                    if ref_cmd_sn == self.exp_cmd_sn {
                        self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
                    } else {
                        self.queued.entry(ref_cmd_sn).or_insert(None);
                    }
                    return tmf::COMPLETE;
                }
                tmf::NO_TASK
            }
            tmf::ABORT_TASK_SET | tmf::CLEAR_TASK_SET | tmf::LUN_RESET => {
                if !lun_ok {
                    return tmf::NO_LUN;
                }
                self.writes.retain(|t| t.lun_field != lun);
                for p in self.queued.values_mut() {
                    if matches!(p, Some(Pdu::ScsiCommand { lun: l, .. }) if *l == lun) {
                        *p = None;
                    }
                }
                tmf::COMPLETE
            }
            tmf::TARGET_WARM_RESET => {
                self.writes.clear();
                for p in self.queued.values_mut() {
                    if matches!(p, Some(Pdu::ScsiCommand { .. })) {
                        *p = None;
                    }
                }
                tmf::COMPLETE
            }
            tmf::TASK_REASSIGN => tmf::NO_REASSIGN,
            _ => tmf::NOT_SUPPORTED,
        }
    }

    fn text(&mut self, out: &mut Vec<Action>, last: bool, lun: u64, itt: u32, ttt: u32, data: Vec<u8>) {
        if ttt != RESERVED_TAG {
            // The initiator asks for the next part of a long response.
            match self.text_out.take() {
                Some(p) if p.ttt == ttt && p.itt == itt => self.send_text(out, lun, itt, p.rest),
                _ => out.push(self.reject(reject::INVALID_FIELD, text_header(lun, itt, ttt))),
            }
            return;
        }
        if self.text_in.len() + data.len() > MAX_LOGIN_TEXT {
            self.text_in.clear();
            out.push(self.reject(reject::PROTOCOL_ERROR, text_header(lun, itt, ttt)));
            return;
        }
        self.text_in.extend_from_slice(&data);
        if !last {
            let sn = self.status_sn();
            let ttt = self.ttt();
            out.push(Action::Send(Pdu::TextResponse {
                final_: false,
                cont: false,
                lun,
                itt,
                ttt,
                sn,
                data: Vec::new(),
            }));
            return;
        }
        let raw = std::mem::take(&mut self.text_in);
        let Ok(pairs) = text::parse(&raw) else {
            out.push(self.reject(reject::PROTOCOL_ERROR, text_header(lun, itt, ttt)));
            return;
        };
        let mut reply = Pairs::default();
        for (k, v) in &pairs.0 {
            match k.as_str() {
                "SendTargets" => self.send_targets(v, &mut reply),
                "MaxRecvDataSegmentLength" => match text::number(v).filter(|n| (512..1 << 24).contains(n)) {
                    Some(n) => self.est.params.max_send_data_segment = n as u32,
                    None => reply.push(k, "Reject"),
                },
                _ => reply.push(k, "NotUnderstood"),
            }
        }
        self.send_text(out, lun, itt, text::format(&reply));
    }

    /// SendTargets: the portal's targets as they are now (a discovery session lists a library
    /// added since it logged in; one deleted is gone).
    fn send_targets(&self, which: &str, reply: &mut Pairs) {
        let own = self.est.target.as_ref().map(|t| t.name.as_str());
        let targets = self.portal.targets().unwrap_or_else(|e| {
            eprintln!("iscsi: SendTargets answered with no target: cannot read the target configuration: {e}");
            Vec::new()
        });
        for t in &targets {
            let listed = match (self.est.kind, which) {
                (SessionKind::Discovery, "All") => true,
                (SessionKind::Normal, "All" | "") => own == Some(t.name.as_str()),
                (_, name) => name == t.name,
            };
            if listed {
                reply.push("TargetName", t.name.clone());
                reply.push("TargetAddress", format!("{},{}", self.portal_address, self.portal.portal_group_tag));
            }
        }
    }

    fn send_text(&mut self, out: &mut Vec<Action>, lun: u64, itt: u32, mut data: Vec<u8>) {
        let max = self.est.params.max_send_data_segment as usize;
        let sn = self.status_sn();
        if data.len() <= max {
            out.push(Action::Send(Pdu::TextResponse {
                final_: true,
                cont: false,
                lun,
                itt,
                ttt: RESERVED_TAG,
                sn,
                data,
            }));
            return;
        }
        let rest = data.split_off(max);
        let ttt = self.ttt();
        self.text_out = Some(PendingText { itt, ttt, rest });
        out.push(Action::Send(Pdu::TextResponse { final_: false, cont: true, lun, itt, ttt, sn, data }));
    }
}

/// The header of a Text Request, for a Reject.
fn text_header(lun: u64, itt: u32, ttt: u32) -> [u8; 48] {
    let p = Pdu::Text {
        immediate: false,
        final_: true,
        cont: false,
        lun,
        itt,
        ttt,
        cmd_sn: 0,
        exp_stat_sn: 0,
        data: Vec::new(),
    };
    p.to_frame().bhs
}

/// The fields of a SCSI Command the session uses.
struct Command {
    final_: bool,
    read: bool,
    write: bool,
    lun: u64,
    itt: u32,
    expected_len: u32,
    cdb: Vec<u8>,
    data: Vec<u8>,
}

impl Command {
    /// Its header (without the data), for a Reject.
    fn header(&self) -> [u8; 48] {
        Pdu::ScsiCommand {
            immediate: false,
            final_: self.final_,
            read: self.read,
            write: self.write,
            attr: 0,
            lun: self.lun,
            itt: self.itt,
            expected_len: self.expected_len,
            cmd_sn: 0,
            exp_stat_sn: 0,
            cdb: self.cdb.clone(),
            data: Vec::new(),
        }
        .to_frame()
        .bhs
    }
}
