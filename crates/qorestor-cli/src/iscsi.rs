//! `qorestor iscsi show|set-password|clear-password`: the iSCSI target's names and CHAP
//! credentials (the target itself is [`qorestor_iscsi`], run by `serve --iscsi-listen`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use qorestor_iscsi::chap::{ChapConfig, Credential, MICROSOFT_MAX_SECRET_LEN};
use qorestor_iscsi::config;
use serde::Serialize;

use crate::context::{Ctx, UsageError};
use crate::vtl::Place;

/// Long help of `iscsi show`.
const SHOW_ABOUT: &str = "\
Show the iSCSI targets: one per vtl container, named
iqn.2024-01.org.qorestor:SYSTEM:CONTAINER (system name and container name lower-cased, any \
character other than letters, digits, '-' and '.' replaced by '-'). LUN 0 is the changer, LUNs \
1..M the drives in drive element address order.

JSON: {\"system_name\", \"portal_group_tag\", \"chap\": null | {\"user\", \"mutual_user\" | null, \
\"discovery_auth\"}, \"targets\": [{\"name\", \"alias\", \"library\", \"luns\": [{\"lun\", \"kind\": \
\"changer\"|\"tape\", \"serial\", \"drive\" (tape: drive index), \"element_address\" (tape)}]}]}";

/// Long help of `iscsi set-password`.
const SET_ABOUT: &str = "\
Require CHAP for every normal iSCSI session: initiators log in as --user with the secret read \
from stdin (one line). With --mutual-user and --mutual-password-file the target also \
authenticates itself to initiators that ask (mutual CHAP; the secret must differ). Discovery \
sessions stay open unless --discovery-auth. A running serve applies it from the next login \
(sessions already logged in stay); a stopped one from its next start.

Secrets take 12 to 255 characters (RFC 3720 asks for at least 12 bytes); a secret longer than \
16 characters is accepted with a warning, since Microsoft's iSCSI initiator refuses it.

Example:
  printf 'initiator-secret\\n' | qorestor iscsi set-password --user backup01 --password-stdin";

/// `iscsi` subcommands.
#[derive(Debug, Subcommand)]
pub enum IscsiCommand {
    /// Show the targets, their IQNs and LUNs, and whether CHAP is on.
    #[command(long_about = SHOW_ABOUT)]
    Show,
    /// Set the CHAP credentials of normal sessions (and optionally mutual CHAP).
    #[command(name = "set-password", long_about = SET_ABOUT)]
    SetPassword(SetPasswordArgs),
    /// Remove the CHAP credentials: sessions need no authentication.
    #[command(name = "clear-password")]
    ClearPassword,
}

/// Arguments of `iscsi set-password`.
#[derive(Debug, Args)]
pub struct SetPasswordArgs {
    /// CHAP name initiators log in with.
    #[arg(long)]
    pub user: String,
    /// Read the initiators' CHAP secret from stdin (one line).
    #[arg(long, required = true)]
    pub password_stdin: bool,
    /// CHAP name the target presents to initiators asking for mutual CHAP.
    #[arg(long, requires = "mutual_password_file")]
    pub mutual_user: Option<String>,
    /// File whose first line is the target's mutual CHAP secret.
    #[arg(long, value_name = "FILE", requires = "mutual_user")]
    pub mutual_password_file: Option<PathBuf>,
    /// Require CHAP for discovery sessions too.
    #[arg(long)]
    pub discovery_auth: bool,
}

#[derive(Serialize)]
struct ChapReport {
    user: String,
    mutual_user: Option<String>,
    discovery_auth: bool,
}

#[derive(Serialize)]
struct LunReport {
    lun: u64,
    kind: &'static str,
    serial: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    drive: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    element_address: Option<u16>,
}

#[derive(Serialize)]
struct TargetReport {
    name: String,
    alias: String,
    library: String,
    luns: Vec<LunReport>,
}

#[derive(Serialize)]
struct ShowReport {
    system_name: String,
    portal_group_tag: u16,
    chap: Option<ChapReport>,
    targets: Vec<TargetReport>,
}

/// One line of a secret: a trailing `\n` or `\r\n` removed.
fn chap_report(c: &ChapConfig) -> ChapReport {
    ChapReport {
        user: c.initiator.user.clone(),
        mutual_user: c.mutual.as_ref().map(|m| m.user.clone()),
        discovery_auth: c.discovery_auth,
    }
}

/// Runs an `iscsi` subcommand.
pub fn run(ctx: &Ctx, cmd: IscsiCommand) -> Result<()> {
    let place = Place::open(ctx, "qorestor iscsi")?;
    let engine = place.engine();
    match cmd {
        IscsiCommand::Show => show(ctx, &place),
        IscsiCommand::SetPassword(a) => {
            let secret = crate::secret::read_stdin_text(&ctx.io, "CHAP secret")?;
            let mutual = match (a.mutual_user, a.mutual_password_file) {
                (Some(user), Some(file)) => {
                    let secret = crate::secret::read_file_text(&ctx.io, &file, "mutual CHAP secret")?;
                    Some(Credential { user, secret })
                }
                _ => None,
            };
            let cfg =
                ChapConfig { initiator: Credential { user: a.user, secret }, mutual, discovery_auth: a.discovery_auth };
            config::save_chap(engine, &cfg).map_err(|e| match e.kind() {
                qorestor_iscsi::ErrorKind::Config => anyhow::Error::new(UsageError(e.to_string())),
                _ => e.into(),
            })?;
            warn_if_too_long_for_microsoft(ctx, "CHAP secret", &cfg.initiator.secret);
            if let Some(m) = &cfg.mutual {
                warn_if_too_long_for_microsoft(ctx, "mutual CHAP secret", &m.secret);
            }
            let report = chap_report(&cfg);
            // A running serve reads CHAP at each login; a stopped one at its next start.
            let from = if ctx.live.is_some() { "the next login" } else { "the next serve" };
            ctx.emit(&report, || format!("CHAP set for user {} (applies from {from})", report.user))
        }
        IscsiCommand::ClearPassword => {
            let was = config::clear_chap(engine)?;
            let report = serde_json::json!({ "cleared": was });
            ctx.emit(&report, || if was { "CHAP cleared".into() } else { "CHAP was not set".into() })
        }
    }
}

/// Warns on stderr when a secret is longer than Microsoft's initiator accepts.
fn warn_if_too_long_for_microsoft(ctx: &Ctx, what: &str, secret: &str) {
    let chars = secret.chars().count();
    if chars > MICROSOFT_MAX_SECRET_LEN {
        ctx.io.eprintln(&format!(
            "qorestor: warning: the {what} has {chars} characters: Microsoft's iSCSI initiator refuses \
             secrets longer than {MICROSOFT_MAX_SECRET_LEN}"
        ));
    }
}

fn show(ctx: &Ctx, place: &Place) -> Result<()> {
    let engine = place.engine();
    let system_name = engine.system_name()?;
    let libraries = place.libraries()?;
    let (targets, _) = config::targets(&system_name, &libraries);
    let mut reports = Vec::new();
    for t in &targets {
        let lib = libraries.get(&t.alias).context("library vanished")?;
        let info = lib.info()?;
        let mut luns = vec![LunReport {
            lun: 0,
            kind: "changer",
            serial: info.library.serial.clone(),
            drive: None,
            element_address: None,
        }];
        for d in &info.drives {
            luns.push(LunReport {
                lun: d.lun,
                kind: "tape",
                serial: d.serial.clone(),
                drive: Some(d.index as usize),
                element_address: Some(d.element_address),
            });
        }
        reports.push(TargetReport { name: t.name.clone(), alias: t.alias.clone(), library: info.name.clone(), luns });
    }
    let chap = config::load_chap(engine)?;
    let report =
        ShowReport { system_name, portal_group_tag: 1, chap: chap.as_ref().map(chap_report), targets: reports };
    ctx.emit(&report, || {
        let mut s = String::new();
        match &report.chap {
            Some(c) => s.push_str(&format!(
                "CHAP: user {}{}{}\n",
                c.user,
                c.mutual_user.as_ref().map(|m| format!(", mutual as {m}")).unwrap_or_default(),
                if c.discovery_auth { ", discovery too" } else { "" }
            )),
            None => s.push_str("CHAP: off\n"),
        }
        if report.targets.is_empty() {
            s.push_str("no targets (no vtl container)\n");
        }
        for t in &report.targets {
            s.push_str(&format!("{}  ({})\n", t.name, t.alias));
            for l in &t.luns {
                s.push_str(&format!("  LUN {}  {:<7}  serial {}\n", l.lun, l.kind, l.serial));
            }
        }
        s
    })
}
