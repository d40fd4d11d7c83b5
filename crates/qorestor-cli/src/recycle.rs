//! `qorestor recycle-bin ls|restore`.

use anyhow::Result;
use clap::Subcommand;
use qorestor_core::RecycledInfo;

use crate::context::Ctx;
use crate::output::{self, Align, Table};
use crate::values::StreamAddr;

/// `recycle-bin` subcommands.
#[derive(Debug, Subcommand)]
#[command(
    about = "List and restore deleted streams kept in a container's recycle bin",
    long_about = "List and restore deleted streams kept in a container's recycle bin.\n\n\
        Turn a container's bin on with `qorestor container update C --recycle-bin on --retention \
        DAYS`. A deleted stream, and a stream replaced with `put --replace`, stays in the bin \
        until its retention has passed; the next cleaner run then deletes it for good and \
        reclaims its space. Every version is kept, each under its own id.",
    after_help = "Examples:\n  qorestor recycle-bin ls nightly\n  qorestor recycle-bin restore nightly/mon.tar\n  \
        qorestor recycle-bin restore nightly/mon.tar --id 42"
)]
pub enum RecycleCommand {
    /// List a container's recycle bin.
    #[command(long_about = "List a container's recycle bin: one row per kept version.\n\nJSON: an array \
                      of {id, container, name, logical_bytes, deleted, expires} (times in seconds since \
                      the Unix epoch), oldest version first.")]
    Ls {
        /// The container.
        container: String,
    },
    /// Bring a stream back from the recycle bin (fails if a live stream has its name).
    #[command(long_about = "Bring a stream back from the recycle bin: the version --id names, else the \
                      most recently binned one. Fails, naming the stream, if a live stream has the \
                      same name (delete that one first: with the bin on, it goes to the bin too).\n\n\
                      JSON: the restored stream object.")]
    Restore {
        /// The stream, CONTAINER/STREAM.
        stream: StreamAddr,
        /// The version to restore (its id in `recycle-bin ls`).
        #[arg(long, value_name = "N")]
        id: Option<u64>,
    },
}

/// Runs a `recycle-bin` subcommand.
pub fn run(ctx: &Ctx, cmd: RecycleCommand) -> Result<()> {
    let engine = ctx.open("qorestor recycle-bin")?;
    match cmd {
        RecycleCommand::Ls { container } => {
            let list = engine.recycle_bin(&container)?;
            ctx.emit(&list, || table(&list))
        }
        RecycleCommand::Restore { stream, id } => {
            let info = engine.restore_stream(&stream.container, &stream.stream, id)?;
            ctx.emit(&info, || format!("restored {stream} ({})\n", output::bytes(info.logical_bytes)))
        }
    }
}

fn table(list: &[RecycledInfo]) -> String {
    if list.is_empty() {
        return "the recycle bin is empty\n".into();
    }
    let mut t = Table::new(&[
        ("ID", Align::Right),
        ("NAME", Align::Left),
        ("LOGICAL", Align::Right),
        ("DELETED (UTC)", Align::Left),
        ("EXPIRES (UTC)", Align::Left),
    ]);
    for r in list {
        t.row(vec![
            r.id.to_string(),
            output::name(&r.name).into_owned(),
            output::bytes(r.logical_bytes),
            output::time(r.deleted),
            output::time(r.expires),
        ]);
    }
    t.render()
}
