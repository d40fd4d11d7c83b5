//! The login phase of a connection (RFC 7143 §6): security negotiation (AuthMethod None or
//! CHAP, one-way or mutual), operational negotiation ([`crate::params`]) and the move to full
//! feature phase. A state machine without I/O: [`Login::receive`] takes one Login Request and
//! returns what to answer.

use std::sync::Arc;

use crate::chap::{self, ChapConfig};
use crate::params::{negotiate, Answer, Params};
use crate::pdu::{stage, LoginHead, Pdu, Sn};
use crate::portal::{Portal, Target};
use crate::text::{self, Pairs};

/// How many commands the target accepts ahead of ExpCmdSN (MaxCmdSN − ExpCmdSN + 1).
pub const COMMAND_WINDOW: u32 = 32;
/// Largest login text accepted across Login Requests with the C bit.
pub const MAX_LOGIN_TEXT: usize = 65_536;

/// Login status classes and details (RFC 7143 §11.13.5).
pub mod status {
    /// Initiator error, no further detail.
    pub const INITIATOR_ERROR: (u8, u8) = (0x02, 0x00);
    /// Authentication failure.
    pub const AUTH_FAILURE: (u8, u8) = (0x02, 0x01);
    /// Not found: the target does not exist.
    pub const NOT_FOUND: (u8, u8) = (0x02, 0x03);
    /// Unsupported version.
    pub const UNSUPPORTED_VERSION: (u8, u8) = (0x02, 0x05);
    /// Missing parameter.
    pub const MISSING_PARAMETER: (u8, u8) = (0x02, 0x07);
    /// Session does not exist (adding connections is not supported).
    pub const SESSION_DOES_NOT_EXIST: (u8, u8) = (0x02, 0x0a);
    /// Target error: the target's configuration could not be read.
    pub const TARGET_ERROR: (u8, u8) = (0x03, 0x00);
}

/// Discovery or normal session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// SendTargets only.
    Discovery,
    /// SCSI commands to one target.
    Normal,
}

/// What a finished login leaves for the full feature phase.
#[derive(Clone)]
pub struct Established {
    /// Discovery or normal.
    pub kind: SessionKind,
    /// The target of a normal session.
    pub target: Option<Target>,
    /// InitiatorName.
    pub initiator: String,
    /// ISID.
    pub isid: [u8; 6],
    /// TSIH given to the session.
    pub tsih: u16,
    /// The negotiated parameters.
    pub params: Params,
    /// The next StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
}

/// The answer to one Login Request.
pub enum Step {
    /// Send this response and wait for the next request.
    Continue(Pdu),
    /// Send this final response; the full feature phase starts.
    Done(Pdu, Box<Established>),
    /// Send this response (a login failure) and close the connection.
    Fail(Pdu),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// No AuthMethod chosen yet.
    Pending,
    /// CHAP chosen; waiting for CHAP_A.
    AwaitAlgorithm,
    /// Challenge sent; waiting for CHAP_N and CHAP_R.
    AwaitResponse,
    /// Authenticated, or no authentication needed.
    Done,
}

/// The login state of one connection.
pub struct Login {
    portal: Arc<Portal>,
    entropy: [u8; 1 + chap::CHALLENGE_LEN],
    started: bool,
    isid: [u8; 6],
    initiator: String,
    kind: SessionKind,
    target: Option<Target>,
    /// The CHAP configuration, read from the portal at the login's first request.
    chap: Option<ChapConfig>,
    auth: Auth,
    params: Params,
    stage: u8,
    stat_sn: u32,
    exp_cmd_sn: u32,
    partial: Vec<u8>,
    declared: bool,
    first_response: bool,
}

fn offered(list: &str, what: &str) -> bool {
    list.split(',').any(|v| v == what)
}

impl Login {
    /// A login about to start. `entropy` gives the CHAP identifier and challenge.
    pub fn new(portal: Arc<Portal>, entropy: [u8; 1 + chap::CHALLENGE_LEN]) -> Login {
        let params = Params::new(&portal.limits);
        Login {
            portal,
            entropy,
            started: false,
            isid: [0; 6],
            initiator: String::new(),
            kind: SessionKind::Normal,
            target: None,
            chap: None,
            auth: Auth::Pending,
            params,
            stage: stage::SECURITY,
            stat_sn: 0,
            exp_cmd_sn: 0,
            partial: Vec::new(),
            declared: false,
            first_response: true,
        }
    }

    fn chap(&self) -> Option<&ChapConfig> {
        self.chap.as_ref()
    }

    fn auth_required(&self) -> bool {
        self.chap().is_some_and(|c| self.kind == SessionKind::Normal || c.discovery_auth)
    }

    #[allow(clippy::too_many_arguments)]
    fn response(&mut self, itt: u32, transit: bool, csg: u8, nsg: u8, tsih: u16, st: (u8, u8), pairs: &Pairs) -> Pdu {
        let sn = Sn {
            stat_sn: self.stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.exp_cmd_sn.wrapping_add(COMMAND_WINDOW - 1),
        };
        self.stat_sn = self.stat_sn.wrapping_add(1);
        let head = LoginHead {
            transit,
            cont: false,
            csg,
            nsg: if transit { nsg } else { 0 },
            version_max: 0,
            version: 0,
            isid: self.isid,
            tsih,
        };
        Pdu::LoginResponse { head, itt, sn, status_class: st.0, status_detail: st.1, data: text::format(pairs) }
    }

    fn fail(&mut self, itt: u32, csg: u8, st: (u8, u8)) -> Step {
        Step::Fail(self.response(itt, false, csg, 0, 0, st, &Pairs::default()))
    }

    /// Answers one PDU received during login (anything but a Login Request fails the login).
    pub fn receive(&mut self, pdu: Pdu) -> Step {
        let Pdu::Login { head, itt, cmd_sn, exp_stat_sn, data, .. } = pdu else {
            return self.fail(0, self.stage, status::INITIATOR_ERROR);
        };
        let LoginHead { transit, cont, csg, nsg, version: version_min, isid, tsih, .. } = head;
        if !self.started {
            self.started = true;
            self.isid = isid;
            self.exp_cmd_sn = cmd_sn;
            self.stat_sn = exp_stat_sn;
        }
        if version_min > 0 {
            return self.fail(itt, csg, status::UNSUPPORTED_VERSION);
        }
        if tsih != 0 {
            return self.fail(itt, csg, status::SESSION_DOES_NOT_EXIST);
        }
        if self.partial.len() + data.len() > MAX_LOGIN_TEXT {
            return self.fail(itt, csg, status::INITIATOR_ERROR);
        }
        self.partial.extend_from_slice(&data);
        if cont {
            // More text follows: acknowledge with an empty response.
            return Step::Continue(self.response(itt, false, csg, 0, 0, (0, 0), &Pairs::default()));
        }
        let raw = std::mem::take(&mut self.partial);
        let Ok(pairs) = text::parse(&raw) else {
            return self.fail(itt, csg, status::INITIATOR_ERROR);
        };
        if self.initiator.is_empty() {
            if let Err(st) = self.identify(&pairs) {
                return self.fail(itt, csg, st);
            }
        }
        if csg < self.stage || csg > stage::OPERATIONAL || (transit && (nsg <= csg || nsg == 2)) {
            return self.fail(itt, csg, status::INITIATOR_ERROR);
        }
        if csg == stage::OPERATIONAL && self.auth != Auth::Done {
            if self.auth_required() {
                return self.fail(itt, csg, status::AUTH_FAILURE);
            }
            self.auth = Auth::Done;
        }
        self.stage = csg;
        let mut reply = Pairs::default();
        if self.first_response && self.kind == SessionKind::Normal {
            let (tag, alias) = (self.portal.portal_group_tag, self.target.as_ref().map(|t| t.alias.clone()));
            reply.push("TargetPortalGroupTag", tag.to_string());
            if let Some(a) = alias {
                reply.push("TargetAlias", a);
            }
        }
        self.first_response = false;
        if csg == stage::SECURITY {
            if let Err(st) = self.security(&pairs, &mut reply) {
                return self.fail(itt, csg, st);
            }
        }
        let limits = self.portal.limits;
        for (k, v) in &pairs.0 {
            if matches!(k.as_str(), "InitiatorName" | "InitiatorAlias" | "TargetName" | "SessionType" | "AuthMethod")
                || k.starts_with("CHAP_")
            {
                continue;
            }
            match negotiate(k, v, &mut self.params, &limits) {
                Answer::Value(a) => reply.push(k, a),
                Answer::Silent => {}
                Answer::NotUnderstood => reply.push(k, "NotUnderstood"),
                Answer::Reject => reply.push(k, "Reject"),
                Answer::Irrelevant => reply.push(k, "Irrelevant"),
            }
        }
        let can_transit = transit && (csg != stage::SECURITY || self.auth == Auth::Done);
        if !self.declared && (csg == stage::OPERATIONAL || (can_transit && nsg == stage::FULL_FEATURE)) {
            self.declared = true;
            reply.push("MaxRecvDataSegmentLength", self.params.max_recv_data_segment.to_string());
        }
        if !can_transit {
            return Step::Continue(self.response(itt, false, csg, 0, 0, (0, 0), &reply));
        }
        self.stage = nsg;
        if nsg != stage::FULL_FEATURE {
            return Step::Continue(self.response(itt, true, csg, nsg, 0, (0, 0), &reply));
        }
        let tsih = self.portal.new_tsih();
        let resp = self.response(itt, true, csg, nsg, tsih, (0, 0), &reply);
        let est = Established {
            kind: self.kind,
            target: self.target.clone(),
            initiator: self.initiator.clone(),
            isid: self.isid,
            tsih,
            params: self.params,
            stat_sn: self.stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
        };
        Step::Done(resp, Box::new(est))
    }

    /// Reads the leading login's names: InitiatorName, SessionType, TargetName; and the
    /// portal's configuration as it is now (CHAP, the target), for the rest of the login.
    fn identify(&mut self, pairs: &Pairs) -> Result<(), (u8, u8)> {
        let unreadable = |e: crate::Error| {
            eprintln!("iscsi: login refused: cannot read the target configuration: {e}");
            status::TARGET_ERROR
        };
        self.chap = self.portal.chap().map_err(unreadable)?;
        let name = pairs.get("InitiatorName").filter(|n| !n.is_empty()).ok_or(status::MISSING_PARAMETER)?;
        self.kind = match pairs.get("SessionType").unwrap_or("Normal") {
            "Normal" => SessionKind::Normal,
            "Discovery" => SessionKind::Discovery,
            _ => return Err(status::INITIATOR_ERROR),
        };
        if self.kind == SessionKind::Discovery {
            // A discovery session stays within the login's budget: 8 KiB data segments.
            let login_max = crate::connection::LOGIN_MAX_DATA;
            self.params.max_recv_data_segment = self.params.max_recv_data_segment.min(login_max);
        }
        if self.kind == SessionKind::Normal {
            let t = pairs.get("TargetName").ok_or(status::MISSING_PARAMETER)?;
            self.target = Some(self.portal.target(t).map_err(unreadable)?.ok_or(status::NOT_FOUND)?);
        }
        self.initiator = name.to_string();
        Ok(())
    }

    /// Security stage keys: AuthMethod and the CHAP exchange.
    fn security(&mut self, pairs: &Pairs, reply: &mut Pairs) -> Result<(), (u8, u8)> {
        if self.auth == Auth::Pending {
            match pairs.get("AuthMethod") {
                Some(list) if self.auth_required() || (!offered(list, "None") && self.chap().is_some()) => {
                    if !offered(list, "CHAP") {
                        return Err(status::AUTH_FAILURE);
                    }
                    reply.push("AuthMethod", "CHAP");
                    self.auth = Auth::AwaitAlgorithm;
                    return Ok(());
                }
                Some(list) if offered(list, "None") => {
                    reply.push("AuthMethod", "None");
                    self.auth = Auth::Done;
                }
                Some(_) => return Err(status::AUTH_FAILURE),
                None if self.auth_required() => return Err(status::AUTH_FAILURE),
                None => self.auth = Auth::Done,
            }
        }
        match self.auth {
            Auth::AwaitAlgorithm => {
                let Some(algs) = pairs.get("CHAP_A") else { return Ok(()) };
                if !offered(algs, chap::ALGORITHM_MD5) {
                    return Err(status::AUTH_FAILURE);
                }
                reply.push("CHAP_A", chap::ALGORITHM_MD5);
                reply.push("CHAP_I", self.entropy[0].to_string());
                reply.push("CHAP_C", text::hex(&self.entropy[1..]));
                self.auth = Auth::AwaitResponse;
            }
            Auth::AwaitResponse => {
                self.check_chap(pairs, reply)?;
                self.auth = Auth::Done;
            }
            Auth::Pending | Auth::Done => {}
        }
        Ok(())
    }

    fn check_chap(&self, pairs: &Pairs, reply: &mut Pairs) -> Result<(), (u8, u8)> {
        let cfg = self.chap().ok_or(status::AUTH_FAILURE)?;
        let user = pairs.get("CHAP_N").ok_or(status::AUTH_FAILURE)?;
        let got = pairs.get("CHAP_R").and_then(|r| text::binary(r, 64)).ok_or(status::AUTH_FAILURE)?;
        let want = chap::response(self.entropy[0], cfg.initiator.secret.as_bytes(), &self.entropy[1..]);
        // Both checks are done before either result is looked at.
        let user_ok = chap::same(user.as_bytes(), cfg.initiator.user.as_bytes());
        if !(chap::same(&got, &want) & user_ok) {
            return Err(status::AUTH_FAILURE);
        }
        match (pairs.get("CHAP_I"), pairs.get("CHAP_C")) {
            (None, None) => Ok(()),
            (Some(id), Some(c)) => {
                let mutual = cfg.mutual.as_ref().ok_or(status::AUTH_FAILURE)?;
                let id = text::number(id).filter(|&i| i <= 255).ok_or(status::AUTH_FAILURE)? as u8;
                let challenge = text::binary(c, 1024).filter(|c| !c.is_empty()).ok_or(status::AUTH_FAILURE)?;
                // A reflected challenge would let an attacker get our own challenge answered.
                if challenge == self.entropy[1..] {
                    return Err(status::AUTH_FAILURE);
                }
                reply.push("CHAP_N", mutual.user.clone());
                reply.push("CHAP_R", text::hex(&chap::response(id, mutual.secret.as_bytes(), &challenge)));
                Ok(())
            }
            _ => Err(status::AUTH_FAILURE),
        }
    }
}
