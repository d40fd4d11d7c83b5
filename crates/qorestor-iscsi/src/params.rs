//! Operational parameter negotiation (RFC 7143 §13): what the target answers to each key an
//! initiator offers, and the values in force once login ends. Pure functions.

use crate::text::number;

/// The target's own limits, offered in negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// MaxRecvDataSegmentLength the target declares (largest data segment it accepts).
    pub max_recv_data_segment: u32,
    /// Largest MaxBurstLength the target accepts.
    pub max_burst: u32,
    /// Largest FirstBurstLength the target accepts.
    pub first_burst: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_recv_data_segment: 262_144, max_burst: 16_776_192, first_burst: 262_144 }
    }
}

/// The negotiated parameters of a connection and its session. Defaults are RFC 7143's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// HeaderDigest=CRC32C.
    pub header_digest: bool,
    /// DataDigest=CRC32C.
    pub data_digest: bool,
    /// Largest data segment the target may send (the initiator's declaration).
    pub max_send_data_segment: u32,
    /// Largest data segment the target accepts (its own declaration).
    pub max_recv_data_segment: u32,
    /// MaxBurstLength.
    pub max_burst: u32,
    /// FirstBurstLength.
    pub first_burst: u32,
    /// ImmediateData.
    pub immediate_data: bool,
    /// InitialR2T.
    pub initial_r2t: bool,
    /// MaxOutstandingR2T.
    pub max_outstanding_r2t: u32,
    /// DataPDUInOrder.
    pub data_pdu_in_order: bool,
    /// DataSequenceInOrder.
    pub data_sequence_in_order: bool,
    /// DefaultTime2Wait (seconds).
    pub time2wait: u16,
    /// DefaultTime2Retain (seconds).
    pub time2retain: u16,
}

impl Params {
    /// RFC 7143's defaults, with the target's declared receive limit.
    pub fn new(limits: &Limits) -> Params {
        Params {
            header_digest: false,
            data_digest: false,
            max_send_data_segment: 8192,
            max_recv_data_segment: limits.max_recv_data_segment,
            max_burst: 262_144.min(limits.max_burst),
            first_burst: 65_536.min(limits.first_burst),
            immediate_data: true,
            initial_r2t: true,
            max_outstanding_r2t: 1,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            time2wait: 2,
            time2retain: 20,
        }
    }
}

/// What the target answers to one offered key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Reply `key=value`.
    Value(String),
    /// Nothing to reply (a declaration).
    Silent,
    /// Reply `key=NotUnderstood`.
    NotUnderstood,
    /// Reply `key=Reject` (a value out of range or not a valid value).
    Reject,
    /// Reply `key=Irrelevant`.
    Irrelevant,
}

fn boolean(v: &str) -> Option<bool> {
    match v {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

fn yes_no(b: bool) -> String {
    if b { "Yes" } else { "No" }.to_string()
}

fn ranged(v: &str, lo: u64, hi: u64) -> Option<u32> {
    number(v).filter(|n| (lo..=hi).contains(n)).map(|n| n as u32)
}

/// Digest choice: the first of the initiator's list the target supports.
fn digest(v: &str) -> Option<bool> {
    v.split(',').find_map(|d| match d {
        "None" => Some(false),
        "CRC32C" => Some(true),
        _ => None,
    })
}

/// Negotiates one operational key offered by the initiator, updating `p`. Keys that are not
/// operational (security keys, names, SessionType) are not handled here.
pub fn negotiate(key: &str, value: &str, p: &mut Params, limits: &Limits) -> Answer {
    match key {
        "HeaderDigest" | "DataDigest" => match digest(value) {
            Some(on) => {
                if key == "HeaderDigest" {
                    p.header_digest = on;
                } else {
                    p.data_digest = on;
                }
                Answer::Value(if on { "CRC32C" } else { "None" }.into())
            }
            None => Answer::Reject,
        },
        "MaxRecvDataSegmentLength" => match ranged(value, 512, (1 << 24) - 1) {
            Some(n) => {
                p.max_send_data_segment = n;
                Answer::Silent
            }
            None => Answer::Reject,
        },
        "MaxBurstLength" => match ranged(value, 512, (1 << 24) - 1) {
            Some(n) => {
                p.max_burst = n.min(limits.max_burst);
                p.first_burst = p.first_burst.min(p.max_burst);
                Answer::Value(p.max_burst.to_string())
            }
            None => Answer::Reject,
        },
        "FirstBurstLength" => match ranged(value, 512, (1 << 24) - 1) {
            Some(n) => {
                p.first_burst = n.min(limits.first_burst).min(p.max_burst);
                Answer::Value(p.first_burst.to_string())
            }
            None => Answer::Reject,
        },
        "ImmediateData" => match boolean(value) {
            // AND: the target accepts immediate data.
            Some(b) => {
                p.immediate_data = b;
                Answer::Value(yes_no(b))
            }
            None => Answer::Reject,
        },
        "InitialR2T" => match boolean(value) {
            // OR: the target accepts unsolicited data.
            Some(b) => {
                p.initial_r2t = b;
                Answer::Value(yes_no(b))
            }
            None => Answer::Reject,
        },
        "MaxOutstandingR2T" => match ranged(value, 1, 65535) {
            Some(_) => {
                p.max_outstanding_r2t = 1;
                Answer::Value("1".into())
            }
            None => Answer::Reject,
        },
        "DataPDUInOrder" | "DataSequenceInOrder" => match boolean(value) {
            // OR with the target's Yes: data arrives in order.
            Some(_) => Answer::Value("Yes".into()),
            None => Answer::Reject,
        },
        "DefaultTime2Wait" => match ranged(value, 0, 3600) {
            Some(n) => {
                p.time2wait = (n as u16).max(p.time2wait);
                Answer::Value(p.time2wait.to_string())
            }
            None => Answer::Reject,
        },
        "DefaultTime2Retain" => match ranged(value, 0, 3600) {
            // No connection recovery at ErrorRecoveryLevel 0: nothing is retained.
            Some(_) => {
                p.time2retain = 0;
                Answer::Value("0".into())
            }
            None => Answer::Reject,
        },
        "ErrorRecoveryLevel" => match ranged(value, 0, 2) {
            Some(_) => Answer::Value("0".into()),
            None => Answer::Reject,
        },
        "MaxConnections" => match ranged(value, 1, 65535) {
            Some(_) => Answer::Value("1".into()),
            None => Answer::Reject,
        },
        "IFMarker" | "OFMarker" => match boolean(value) {
            Some(_) => Answer::Value("No".into()),
            None => Answer::Reject,
        },
        "OFMarkInt" | "IFMarkInt" => Answer::Irrelevant,
        _ => Answer::NotUnderstood,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_rfc_functions() {
        let l = Limits::default();
        let mut p = Params::new(&l);
        assert_eq!(negotiate("HeaderDigest", "None,CRC32C", &mut p, &l), Answer::Value("None".into()));
        assert_eq!(negotiate("DataDigest", "CRC32C,None", &mut p, &l), Answer::Value("CRC32C".into()));
        assert!(p.data_digest && !p.header_digest);
        assert_eq!(negotiate("MaxRecvDataSegmentLength", "65536", &mut p, &l), Answer::Silent);
        assert_eq!(p.max_send_data_segment, 65536);
        assert_eq!(negotiate("MaxRecvDataSegmentLength", "100", &mut p, &l), Answer::Reject);
        assert_eq!(negotiate("MaxBurstLength", "99999999", &mut p, &l), Answer::Reject);
        assert_eq!(negotiate("MaxBurstLength", "1048576", &mut p, &l), Answer::Value("1048576".into()));
        assert_eq!(negotiate("FirstBurstLength", "16777215", &mut p, &l), Answer::Value("262144".into()));
        assert_eq!(negotiate("InitialR2T", "No", &mut p, &l), Answer::Value("No".into()));
        assert_eq!(negotiate("ErrorRecoveryLevel", "2", &mut p, &l), Answer::Value("0".into()));
        assert_eq!(negotiate("MaxConnections", "8", &mut p, &l), Answer::Value("1".into()));
        assert_eq!(negotiate("X-com.example.Foo", "1", &mut p, &l), Answer::NotUnderstood);
        assert_eq!(negotiate("ImmediateData", "maybe", &mut p, &l), Answer::Reject);
    }
}
