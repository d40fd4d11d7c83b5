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
        DAYS`. A deleted stream stays in the bin until its retention has passed; the next cleaner \
        run then deletes it for good and reclaims its space.",
    after_help = "Examples:\n  qorestor recycle-bin ls nightly\n  qorestor recycle-bin restore nightly/mon.tar"
)]
pub enum RecycleCommand {
    /// List a container's recycle bin.
    #[command(long_about = "List a container's recycle bin.\n\nJSON: an array of {container, name, \
                      logical_bytes, deleted, expires} (times in seconds since the Unix epoch), by name.")]
    Ls {
        /// The container.
        container: String,
    },
    /// Bring a stream back from the recycle bin (fails if a live stream has its name).
    #[command(long_about = "Bring a stream back from the recycle bin. Fails, naming the stream, if a \
                      live stream has the same name (rename or delete that one first).\n\n\
                      JSON: the restored stream object.")]
    Restore {
        /// The stream, CONTAINER/STREAM.
        stream: StreamAddr,
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
        RecycleCommand::Restore { stream } => {
            let info = engine.restore_stream(&stream.container, &stream.stream)?;
            ctx.emit(&info, || format!("restored {stream} ({})\n", output::bytes(info.logical_bytes)))
        }
    }
}

fn table(list: &[RecycledInfo]) -> String {
    if list.is_empty() {
        return "the recycle bin is empty\n".into();
    }
    let mut t = Table::new(&[
        ("NAME", Align::Left),
        ("LOGICAL", Align::Right),
        ("DELETED (UTC)", Align::Left),
        ("EXPIRES (UTC)", Align::Left),
    ]);
    for r in list {
        t.row(vec![r.name.clone(), output::bytes(r.logical_bytes), output::time(r.deleted), output::time(r.expires)]);
    }
    t.render()
}
