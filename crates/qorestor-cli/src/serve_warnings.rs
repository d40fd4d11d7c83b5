//! What `serve` warns about on stderr once its listeners are bound: a configuration that runs
//! but serves nobody, or serves anybody (stdout stays the `listening` lines).

use std::net::SocketAddr;

use anyhow::Result;
use qorestor_core::Engine;
use qorestor_vtl::Libraries;

/// The warnings for a daemon with these bound listeners (`(frontend, address)` as in the
/// `listening` lines), each a complete sentence saying what to do about it.
pub fn warnings(engine: &Engine, libraries: &Libraries, listening: &[(&str, SocketAddr)]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if listening.is_empty() {
        out.push(
            "no listener asked for: serve runs scheduled cleaner windows only and serves no client \
             (give --iscsi-listen, --ndmp-listen, --ost-listen or --replication-listen ADDR:PORT)"
                .to_string(),
        );
    }
    for &(frontend, addr) in listening {
        match frontend {
            "iscsi" => {
                if libraries.is_empty() {
                    out.push(format!(
                        "iSCSI on {addr} serves no target: there is no vtl container \
                         (run `qorestor vtl add NAME --storage-group SG`: served from the next discovery, \
                         no restart needed)"
                    ));
                }
                if !addr.ip().is_loopback() && qorestor_iscsi::config::load_chap(engine)?.is_none() {
                    out.push(format!(
                        "iSCSI listens on {addr}, beyond loopback, with CHAP off: any initiator that reaches \
                         it can read and write the tapes (run `qorestor iscsi set-password --user U \
                         --password-stdin`: required from the next login, no restart needed)"
                    ));
                }
            }
            "ndmp" if qorestor_ndmp::config::load(engine)?.is_none() => out.push(format!(
                "NDMP on {addr} has no user: it refuses every client's authentication \
                 (run `qorestor ndmp update --user U --password-stdin`: accepted from the next \
                 authentication, no restart needed)"
            )),
            "ost" => {
                use qorestor_core::users::Role;
                let users = engine.users()?;
                if !users.iter().any(|u| matches!(u.role, Role::Ost | Role::Administrator)) {
                    out.push(format!(
                        "OST on {addr} has no user with role ost or administrator: it refuses every client \
                         (run `qorestor user add NAME --role ost --password-stdin`: accepted from the next \
                         login, no restart needed)"
                    ));
                }
                if !engine.containers(None)?.iter().any(|c| c.kind == qorestor_core::ContainerKind::Ost) {
                    out.push(format!(
                        "OST on {addr} has no storage unit: there is no ost container \
                         (run `qorestor container add NAME --storage-group SG --type ost`: listed from the \
                         next request, no restart needed)"
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}
