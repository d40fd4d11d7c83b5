//! `qorestor user`: the users of the OST (and later REST) planes. Passwords are never kept:
//! only Argon2id-derived SCRAM keys (see `qorestor_core::users`). `user list` also shows the
//! iSCSI CHAP and NDMP users, marked as protocol secrets (they keep their own secrets, set with
//! `iscsi set-password` and `ndmp update`).

use anyhow::Result;
use clap::Subcommand;
use qorestor_core::users::Role;
use qorestor_core::Passphrase;
use serde::Serialize;

use crate::context::{Ctx, UsageError};
use crate::output;

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from stdin (one line).
    Add {
        /// The user name: 1 to 64 of A-Z a-z 0-9 . _ -
        name: String,
        /// administrator (everything), monitor (look only; no OST sessions) or ost (OST backups
        /// and restores).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Read the password from stdin (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List the users, and the iSCSI CHAP and NDMP users (protocol secrets).
    /// JSON: [{"name", "role", "kind": "user"|"protocol-secret", "created"}]
    List,
    /// Delete a user.
    Delete {
        /// The user name.
        name: String,
    },
    /// Set a user's password (read from stdin, one line).
    #[command(name = "set-password")]
    SetPassword {
        /// The user name.
        name: String,
        /// Read the password from stdin (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>().map_err(|e| e.to_string())
}

#[derive(Serialize)]
struct UserLine {
    name: String,
    role: String,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<u64>,
}

fn password(ctx: &Ctx) -> Result<Passphrase> {
    let line = crate::secret::read_stdin_line(&ctx.io, "password")?;
    Passphrase::new(line).map_err(|e| UsageError(e.to_string()).into())
}

/// Runs a `user` subcommand.
pub fn run(ctx: &Ctx, cmd: UserCommand) -> Result<()> {
    let engine = ctx.open("qorestor user")?;
    match cmd {
        UserCommand::Add { name, role, .. } => {
            let info = engine.add_user(&name, role, &password(ctx)?)?;
            ctx.emit(&info, || format!("user {} added with role {}", info.name, info.role))
        }
        UserCommand::Delete { name } => {
            engine.delete_user(&name)?;
            ctx.emit(&serde_json::json!({ "deleted": name }), || format!("user {name} deleted"))
        }
        UserCommand::SetPassword { name, .. } => {
            engine.set_user_password(&name, &password(ctx)?)?;
            ctx.emit(&serde_json::json!({ "name": name }), || format!("password of user {name} set"))
        }
        UserCommand::List => {
            let mut lines: Vec<UserLine> = engine
                .users()?
                .into_iter()
                .map(|u| UserLine { name: u.name, role: u.role.to_string(), kind: "user", created: Some(u.created) })
                .collect();
            if let Some(chap) = qorestor_iscsi::config::load_chap(&engine)? {
                let secret = |name: String, role: &str| UserLine {
                    name,
                    role: role.into(),
                    kind: "protocol-secret",
                    created: None,
                };
                lines.push(secret(chap.initiator.user, "iscsi-chap"));
                if let Some(m) = chap.mutual {
                    lines.push(secret(m.user, "iscsi-chap-mutual"));
                }
            }
            if let Some(c) = qorestor_ndmp::config::load(&engine)? {
                lines.push(UserLine { name: c.user, role: "ndmp".into(), kind: "protocol-secret", created: None });
            }
            ctx.emit(&lines, || {
                let mut t = output::Table::new(&[
                    ("NAME", output::Align::Left),
                    ("ROLE", output::Align::Left),
                    ("KIND", output::Align::Left),
                ]);
                for l in &lines {
                    t.row(vec![l.name.clone(), l.role.clone(), l.kind.into()]);
                }
                t.render()
            })
        }
    }
}
