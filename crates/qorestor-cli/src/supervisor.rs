//! `qorestor serve`'s supervisor: holds the data directory, binds the listeners once, prints
//! the `listening` lines once, and runs one serving process (this binary again, see
//! [`crate::handoff`]) that it hands the hold and the sockets to. A serving process that dies
//! abnormally is started again at once, then after a pause that doubles, and the supervisor
//! gives up (exit 1) after [`MAX_RESTARTS`] restarts within [`RESTART_WINDOW`]. SIGTERM or SIGINT
//! is passed on to the serving process; the supervisor exits 0 once it has ended. Start, stop,
//! restart and bind failures are recorded in the event log (`qorestor alerts list`).

use std::collections::VecDeque;
use std::io::Write;
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use qorestor_core::events::{Event, EventFile, Severity};
use qorestor_core::DirLock;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::context::{Ctx, UsageError};
use crate::handoff::{self, Frontend};
use crate::serve::ServeArgs;

/// Restarts of the serving process allowed within [`RESTART_WINDOW`]; one more death and the
/// supervisor gives up.
pub const MAX_RESTARTS: usize = 5;
/// The window [`MAX_RESTARTS`] counts restarts in.
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// The longest pause before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(16);
/// The source of the supervisor's events.
const SOURCE: &str = "serve";

/// What the supervisor waits for.
enum Note {
    /// SIGTERM or SIGINT.
    Signal(i32),
    /// The serving process of this generation serves.
    Ready(u64),
    /// The serving process of this generation ended.
    Exited(u64, ExitStatus),
}

/// The running serving process.
struct Serving {
    generation: u64,
    pid: u32,
}

/// The supervisor's state.
struct Supervisor {
    lock: DirLock,
    listeners: Vec<(Frontend, TcpListener)>,
    control: UnixListener,
    events: EventFile,
    notes: Sender<Note>,
    generation: u64,
}

/// Runs the supervisor until a signal stops it (Ok) or the serving process keeps dying (Err).
pub fn run(ctx: &Ctx, args: &ServeArgs) -> Result<()> {
    // Signals are caught from before the first listener is bound, so that a stop sent right
    // after the `listening` lines is never lost.
    let mut signals = Signals::new([SIGTERM, SIGINT]).context("cannot install the signal handlers")?;
    let (notes, inbox) = mpsc::channel();
    let forward = notes.clone();
    thread::Builder::new().name("signals".into()).spawn(move || {
        for signal in signals.forever() {
            if forward.send(Note::Signal(signal)).is_err() {
                break;
            }
        }
    })?;
    if let Some(addr) = args.http_listen {
        bail!("cannot serve HTTP on {addr}: the HTTP API is not built yet");
    }
    let lock = ctx.hold_dir("qorestor serve")?;
    let mut events = EventFile::open(ctx.data())?;
    // The control socket first: a command that finds the directory held by serve finds its
    // daemon too.
    let bound = crate::control_socket::bind(ctx.data()).and_then(|control| Ok((control, bind(args)?)));
    let (control, listeners) = match bound {
        Ok(b) => b,
        Err(e) => {
            crate::control_socket::remove(ctx.data());
            events.append(&Event::now(Severity::Error, SOURCE, format!("{e:#}")))?;
            return Err(e);
        }
    };
    let mut sup = Supervisor { lock, listeners, control, events, notes, generation: 0 };
    let result = sup.supervise(&inbox);
    crate::control_socket::remove(ctx.data());
    result
}

/// Binds every listener given, in the order iSCSI, NDMP, replication, OST.
fn bind(args: &ServeArgs) -> Result<Vec<(Frontend, TcpListener)>> {
    let wanted = [
        (Frontend::Iscsi, &args.iscsi_listen),
        (Frontend::Ndmp, &args.ndmp_listen),
        (Frontend::Replication, &args.replication_listen),
        (Frontend::Ost, &args.ost_listen),
    ];
    let mut bound = Vec::new();
    for (frontend, addr) in wanted {
        let Some(addr) = addr else { continue };
        let listener = addr.bind_first(|a| {
            TcpListener::bind(a).with_context(|| format!("cannot listen for {} on {a}", frontend.name()))
        })?;
        bound.push((frontend, listener));
    }
    Ok(bound)
}

impl Supervisor {
    fn supervise(&mut self, inbox: &Receiver<Note>) -> Result<()> {
        let mut serving = self.start()?;
        // The first serving process must come up: if it cannot, neither will the next.
        loop {
            match inbox.recv()? {
                Note::Ready(g) if g == serving.generation => break,
                Note::Exited(g, status) if g == serving.generation => return Err(first_start_failed(status)),
                Note::Signal(signal) => return self.stop(Some(&serving), inbox, signal),
                _ => {}
            }
        }
        let mut out = std::io::stdout().lock();
        let mut bound = Vec::new();
        for (frontend, listener) in &self.listeners {
            let addr = listener.local_addr()?;
            writeln!(out, "listening {} {addr}", frontend.name())?;
            bound.push(format!("{} {addr}", frontend.name()));
        }
        out.flush()?;
        drop(out);
        let listening = if bound.is_empty() { "no listener".to_string() } else { bound.join(", ") };
        self.record(Severity::Info, format!("serve started (pid {}): {listening}", std::process::id()))?;
        let mut restarts: VecDeque<Instant> = VecDeque::new();
        loop {
            match inbox.recv()? {
                Note::Signal(signal) => return self.stop(Some(&serving), inbox, signal),
                Note::Exited(g, status) if g == serving.generation => {
                    if status.success() {
                        self.record(
                            Severity::Info,
                            format!("serve stopped: the serving process (pid {}) ended", serving.pid),
                        )?;
                        return Ok(());
                    }
                    let now = Instant::now();
                    while restarts.front().is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW) {
                        restarts.pop_front();
                    }
                    let ended = format!("the serving process (pid {}) {}", serving.pid, describe(status));
                    if restarts.len() >= MAX_RESTARTS {
                        let why = format!(
                            "{ended}; giving up after {MAX_RESTARTS} restarts within {} s",
                            RESTART_WINDOW.as_secs()
                        );
                        self.record(Severity::Error, why.clone())?;
                        bail!(why);
                    }
                    let pause = backoff(restarts.len());
                    if let Some(signal) = wait_signal(inbox, pause) {
                        return self.stop(None, inbox, signal);
                    }
                    serving = self.start()?;
                    restarts.push_back(Instant::now());
                    let message = format!(
                        "{ended}; restarted as pid {} after {} s (restart {} within {} s)",
                        serving.pid,
                        pause.as_secs(),
                        restarts.len(),
                        RESTART_WINDOW.as_secs()
                    );
                    eprintln!("qorestor serve: {message}");
                    self.record(Severity::Warning, message)?;
                }
                _ => {}
            }
        }
    }

    /// Starts a serving process and hands it the hold and the sockets.
    fn start(&mut self) -> Result<Serving> {
        self.generation += 1;
        let generation = self.generation;
        let (ours, theirs) = handoff::channel()?;
        let exe = std::env::current_exe().context("cannot find this program to start the serving process")?;
        let mut child = Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(handoff::SUPERVISOR_ENV, std::process::id().to_string())
            .stdin(Stdio::from(theirs))
            .spawn()
            .context("cannot start the serving process")?;
        let pid = child.id();
        let sockets: Vec<(Frontend, &TcpListener)> = self.listeners.iter().map(|(f, l)| (*f, l)).collect();
        if let Err(e) = handoff::send(&ours, self.lock.as_fd(), &sockets, &self.control) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        let ready = self.notes.clone();
        thread::Builder::new().name("ready".into()).spawn(move || watch_ready(ours, ready, generation))?;
        let exited = self.notes.clone();
        thread::Builder::new().name("reaper".into()).spawn(move || reap(&mut child, exited, generation))?;
        Ok(Serving { generation, pid })
    }

    /// Stops: passes `signal` on to the serving process, if one runs, and waits for it.
    fn stop(&mut self, serving: Option<&Serving>, inbox: &Receiver<Note>, signal: i32) -> Result<()> {
        let name = if signal == SIGINT { "SIGINT" } else { "SIGTERM" };
        if let Some(s) = serving {
            eprintln!("qorestor serve: {name}: stopping the serving process (pid {})", s.pid);
            if let Some(pid) = rustix::process::Pid::from_raw(s.pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            loop {
                match inbox.recv()? {
                    Note::Exited(g, status) if g == s.generation => {
                        if !status.success() {
                            eprintln!("qorestor serve: the serving process {} while stopping", describe(status));
                        }
                        break;
                    }
                    _ => {}
                }
            }
        }
        self.record(Severity::Info, format!("serve stopped on {name}"))
    }

    fn record(&mut self, severity: Severity, message: String) -> Result<()> {
        self.events.append(&Event::now(severity, SOURCE, message)).context("cannot record a serve event")
    }
}

/// The error when the first serving process ends before serving (it said why on stderr).
fn first_start_failed(status: ExitStatus) -> anyhow::Error {
    if status.code() == Some(2) {
        return UsageError("serve cannot start (see above)".into()).into();
    }
    anyhow!("serve cannot start: the serving process {}", describe(status))
}

/// How a process ended, in words.
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}{}", signal_name(signal)),
        (None, None) => format!("ended ({status})"),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGBUS => " (SIGBUS)",
        _ => "",
    }
}

/// The pause before the restart that follows `recent` restarts within the window: none for the
/// first, then 1 s, doubling up to [`MAX_BACKOFF`].
fn backoff(recent: usize) -> Duration {
    match recent {
        0 => Duration::ZERO,
        n => Duration::from_secs(1u64 << (n - 1).min(4)).min(MAX_BACKOFF),
    }
}

/// Waits `pause` long for a stop signal; returns it if one comes.
fn wait_signal(inbox: &Receiver<Note>, pause: Duration) -> Option<i32> {
    let until = Instant::now() + pause;
    loop {
        match inbox.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(Note::Signal(signal)) => return Some(signal),
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
        }
    }
}

fn watch_ready(ours: UnixStream, notes: Sender<Note>, generation: u64) {
    if handoff::wait_ready(&ours) {
        let _ = notes.send(Note::Ready(generation));
    }
}

fn reap(child: &mut Child, notes: Sender<Note>, generation: u64) {
    if let Ok(status) = child.wait() {
        let _ = notes.send(Note::Exited(generation, status));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_pause_longer_each_time_up_to_the_limit() {
        let pauses: Vec<u64> = (0..7).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(pauses, [0, 1, 2, 4, 8, 16, 16]);
    }
}
