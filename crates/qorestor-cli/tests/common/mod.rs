//! Shared by the CLI test binaries: running `qorestor serve` as a real daemon process.

#![allow(dead_code)] // each test binary uses its own part

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// `qorestor --data DIR` with a clean environment.
pub fn qorestor(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_qorestor"));
    c.env_remove("QORESTOR_DATA").env_remove("QORESTOR_PASSPHRASE").arg("--data").arg(data);
    c
}

/// Initialises the data directory `data` with `qorestor init` (no other command creates one).
pub fn init(data: &Path) {
    let out = qorestor(data).arg("init").stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "init {}: {}", data.display(), String::from_utf8_lossy(&out.stderr));
}

/// Runs `qorestor --data DATA ARGS`, feeding `stdin` (or nothing), and asserts it succeeded.
pub fn run_ok(data: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let out = run(qorestor(data).args(args), stdin);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs `command`, feeding `stdin` (or nothing), collecting its output.
pub fn run(command: &mut Command, stdin: Option<&[u8]>) -> Output {
    let mut child = command
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Lists the iSCSI targets on `portal` with the real libiscsi client: `iscsi-ls -s`'s stdout,
/// or `None` (the check is skipped) when the client is not installed.
pub fn iscsi_ls(portal: &str) -> Option<String> {
    if !installed("iscsi-ls") {
        return None;
    }
    let out = Command::new("iscsi-ls").args(["-s", &format!("iscsi://{portal}")]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "iscsi-ls: {text} {}", String::from_utf8_lossy(&out.stderr));
    Some(text)
}

/// Lists the iSCSI target on `portal` with the real libiscsi client (when installed) and
/// requires library lib1's changer in the list.
pub fn iscsi_ls_lib1(portal: &str) {
    if let Some(text) = iscsi_ls(portal) {
        assert!(text.contains("lib1") && text.contains("Lun:0"), "iscsi-ls lists lib1's changer: {text}");
    }
}

/// Runs a shell script as a user would from `cwd` (`bash BASH_ARGS...`, set up further by
/// `configure`), without the caller's QORESTOR_DATA or QORESTOR_PASSPHRASE; asserts it
/// succeeded and returns its stdout.
pub fn run_script(bash_args: &[&std::ffi::OsStr], cwd: &Path, configure: impl FnOnce(&mut Command)) -> String {
    let mut bash = Command::new("bash");
    bash.args(bash_args).env_remove("QORESTOR_DATA").env_remove("QORESTOR_PASSPHRASE").current_dir(cwd);
    configure(&mut bash);
    let out = bash.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bash {bash_args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A running `qorestor serve`, stopped with SIGTERM (and killed if it does not stop) on drop.
pub struct Server {
    child: Option<Child>,
    /// Bound address of each frontend, from the `listening <frontend> <addr>` lines.
    pub listening: HashMap<String, String>,
    /// What the daemon printed on stderr so far is collected here by a thread.
    stderr: mpsc::Receiver<String>,
}

/// How long a server gets to print its `listening` lines or to stop.
const PATIENCE: Duration = Duration::from_secs(30);

impl Server {
    /// Starts `qorestor --data DATA serve ARGS...` and waits until it printed one `listening`
    /// line per `--*-listen` flag in `args`.
    pub fn start(data: &Path, args: &[&str]) -> Server {
        Self::start_with_env(data, args, &[])
    }

    /// Like [`Server::start`], with environment variables set for the daemon.
    pub fn start_with_env(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let expected = args.iter().filter(|a| a.starts_with("--") && a.ends_with("-listen")).count();
        let mut child = qorestor(data)
            .arg("serve")
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start qorestor serve");
        let (err_tx, stderr) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[serve] {line}");
                let _ = err_tx.send(line);
            }
        });
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut listening = HashMap::new();
        let deadline = Instant::now() + PATIENCE;
        while listening.len() < expected {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let parts: Vec<&str> = line.split_whitespace().collect();
                    assert!(parts.len() == 3 && parts[0] == "listening", "unexpected serve output: {line}");
                    listening.insert(parts[1].to_string(), parts[2].to_string());
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().unwrap();
                    let errs: Vec<String> = stderr.try_iter().collect();
                    panic!(
                        "serve printed {} of {expected} listening lines ({status}): {}",
                        listening.len(),
                        errs.join("\n")
                    );
                }
            }
        }
        Server { child: Some(child), listening, stderr }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends `signal` (a `kill -s` name such as `TERM`) and waits for the exit.
    pub fn stop_with(mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let sent = Command::new("kill").args(["-s", signal, &child.id().to_string()]).status().unwrap();
        assert!(sent.success(), "kill -s {signal} failed");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("serve did not stop within {PATIENCE:?} of SIG{signal}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops with SIGTERM and requires exit code 0.
    pub fn stop(self) {
        let status = self.stop_with("TERM");
        assert!(status.success(), "serve exited with {status} on SIGTERM");
    }

    /// Stops with SIGTERM (exit 0 required) and returns the stderr lines not read yet, up to
    /// the end of the daemon's stderr.
    pub fn stop_and_read_stderr(mut self) -> Vec<String> {
        let stderr = std::mem::replace(&mut self.stderr, mpsc::channel().1);
        self.stop();
        stderr.iter().collect()
    }

    /// Lines the daemon printed on stderr since the last call.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    /// Waits for a stderr line containing `what` (reading the lines as they come; the
    /// timeout only bounds a hang); returns the lines seen since the last call, that one last.
    pub fn wait_for_stderr(&self, what: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(what);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(e) => panic!("serve never printed {what:?} ({e}); it printed {seen:?}"),
            }
        }
    }
}

impl Server {
    /// Waits until every process writing the daemon's stderr (the supervisor and its serving
    /// process) has ended (the pipe closes); returns the lines not read yet.
    pub fn wait_for_stderr_end(&self) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            match self.stderr.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return seen,
                Err(e) => panic!("serve's stderr stayed open ({e}); it printed {seen:?}"),
            }
        }
    }

    /// The serving process the supervisor runs now (its only child).
    pub fn serving_pid(&self) -> u32 {
        let pid = self.pid();
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
        let pids: Vec<u32> = children.split_whitespace().map(|p| p.parse().unwrap()).collect();
        assert_eq!(pids.len(), 1, "serve (pid {pid}) runs one serving process: {pids:?}");
        pids[0]
    }
}

/// Whether the client program `tool` is installed; with `CI=true` a missing one is a failure.
pub fn installed(tool: &str) -> bool {
    let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).stdout(Stdio::null()).status();
    if found.is_ok_and(|s| s.success()) {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: {tool} is missing");
    eprintln!("skipped the {tool} client: not installed");
    false
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Pseudo-random bytes (xorshift64*), reproducible from `seed`.
pub fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}
