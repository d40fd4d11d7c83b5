//! Progress bars on stderr: an indicatif implementation of [`qorestor_core::Progress`].
//!
//! Bars are shown only when the command's stderr is a terminal and the output is not JSON;
//! otherwise the commands pass [`NoProgress`] and nothing is drawn. They are drawn on the
//! command's own stderr (a client's, when the daemon runs the command).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use qorestor_core::{NoProgress, Progress, WriteCounters};

use crate::cmdio::Io;
use crate::context::Ctx;

/// Whether progress bars may be drawn: the command's stderr is a terminal and `--json` was not
/// given.
pub fn enabled(ctx: &Ctx) -> bool {
    !ctx.json && ctx.io.stderr_is_terminal()
}

/// A byte-transfer progress bar on stderr.
#[derive(Debug)]
pub struct Bar {
    bar: ProgressBar,
}

impl Progress for Bar {
    fn set_length(&self, len: u64) {
        self.bar.set_length(len);
    }

    fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A progress display that asks the operation to stop once the command's client is gone
/// (inside the daemon; see [`crate::cmdio::Io::cancel_flag`]): verify and replication stop at
/// their next cancel point.
struct Watched {
    shown: Box<dyn Progress>,
    io: Io,
}

impl Progress for Watched {
    fn set_length(&self, len: u64) {
        self.shown.set_length(len);
    }

    fn inc(&self, n: u64) {
        self.shown.inc(n);
    }

    fn finish(&self) {
        self.shown.finish();
    }

    fn stop_requested(&self) -> bool {
        self.io.cancel_flag().load(Ordering::Relaxed)
    }
}

/// Writes the live dedup and compression reduction of a stream being written.
fn reduction_key(
    counters: Arc<WriteCounters>,
) -> impl Fn(&ProgressState, &mut dyn std::fmt::Write) + Send + Sync + Clone + 'static {
    move |_state, w| {
        let processed = counters.processed_bytes.load(Ordering::Relaxed);
        let stored = counters.new_stored_bytes.load(Ordering::Relaxed);
        let _ = match (processed, stored) {
            (0, _) => write!(w, "reduction -"),
            (_, 0) => write!(w, "all duplicate"),
            _ => write!(w, "reduction {:.1}x", counters.reduction_so_far()),
        };
    }
}

/// A progress display for a transfer of `len` bytes (when known); with `counters`, the
/// reduction of the stream being written is shown too. Draws nothing unless `show`, on
/// `ctx`'s stderr.
pub fn transfer(ctx: &Ctx, show: bool, len: Option<u64>, counters: Option<Arc<WriteCounters>>) -> Box<dyn Progress> {
    let shown: Box<dyn Progress> = match ctx.io.stderr_term() {
        Ok(term) if show => Box::new(bar(term, len, counters)),
        _ => Box::new(NoProgress),
    };
    Box::new(Watched { shown, io: ctx.io.clone() })
}

/// A bar drawn on `term`.
fn bar(term: console::Term, len: Option<u64>, counters: Option<Arc<WriteCounters>>) -> Bar {
    let extra = if counters.is_some() { " {reduction}" } else { "" };
    let template = if len.is_some() {
        format!(
            "{{spinner}} [{{wide_bar}}] {{decimal_bytes}}/{{decimal_total_bytes}} \
             {{decimal_bytes_per_sec}}{extra} eta {{eta}}"
        )
    } else {
        format!("{{spinner}} {{elapsed}} {{decimal_bytes}} {{decimal_bytes_per_sec}}{extra}")
    };
    let mut style =
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ");
    if let Some(c) = counters {
        style = style.with_key("reduction", reduction_key(c));
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::term(term, 20)).with_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    Bar { bar }
}
