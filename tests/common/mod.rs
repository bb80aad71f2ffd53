//! The one harness for tests that run the built binary. [`Proc`] is every
//! long-running child: it is killed and reaped if a test fails half-way, its
//! stdout lines are read as JSON events on the test's own thread (a line that is
//! not JSON fails the test with the line), its stderr is collected as it comes,
//! and it can be signalled, measured and waited for within a bound. [`listen`]
//! starts `tcpalive listen` on a free loopback port, [`run_json`] runs a command
//! to its end, and [`Reaped`] guards a child that is not tcpalive (a real server).

#![allow(dead_code)]

pub mod netns;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tcpalive")
}

/// Runs a command to completion; returns the exit code and the parsed JSON lines.
pub fn run_json(args: &[&str]) -> (i32, Vec<Value>, String) {
    let out = Command::new(bin())
        .args(args)
        .output()
        .expect("run tcpalive");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn names(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("?").to_string())
        .collect()
}

pub fn count(events: &[Value], name: &str) -> usize {
    events.iter().filter(|e| e["event"] == name).count()
}

/// The last line is the `end` object; returns it.
pub fn end_of(events: &[Value]) -> &Value {
    let last = events.last().expect("at least one line");
    assert_eq!(last["event"], "end", "last line must be end: {last}");
    last
}

/// A child process that is killed if the test fails half-way. Its stdout lines
/// arrive in `lines`; read them as JSON events with [`Proc::recv`],
/// [`Proc::next_event`], [`Proc::until`] or [`Proc::until_end`].
pub struct Proc {
    pub child: Child,
    pub lines: Receiver<String>,
    stderr: Arc<Collected>,
}

/// stderr as it arrives, and whether the child closed it.
#[derive(Default)]
struct Collected {
    text: Mutex<(String, bool)>,
    changed: Condvar,
}

impl Proc {
    /// `tcpalive ARGS`.
    pub fn spawn(args: &[&str]) -> Proc {
        Proc::spawn_with(Command::new(bin()).args(args))
    }

    /// A whole command line, e.g. `ip netns exec NS tcpalive ...`.
    pub fn spawn_argv(argv: &[&str]) -> Proc {
        Proc::spawn_with(Command::new(argv[0]).args(&argv[1..]))
    }

    pub fn spawn_with(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tcpalive");
        let stdout = child.stdout.take().expect("stdout");
        let lines = forward_lines(stdout);
        let stderr = Arc::new(Collected::default());
        let err_pipe = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(err_pipe);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = reader.read_until(b'\n', &mut line).unwrap_or(0);
                let Ok(mut text) = sink.text.lock() else {
                    break;
                };
                if n == 0 {
                    text.1 = true;
                    sink.changed.notify_all();
                    break;
                }
                text.0.push_str(&String::from_utf8_lossy(&line));
                sink.changed.notify_all();
            }
        });
        Proc {
            child,
            lines,
            stderr,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The next JSON event, or `None` when none came within `within` or stdout
    /// closed. A line that is not JSON fails the test.
    pub fn recv(&self, within: Duration) -> Option<Value> {
        let line = self.lines.recv_timeout(within).ok()?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}")))
    }

    /// The next JSON event, or a panic naming what was waited for.
    pub fn next_event(&self, within: Duration, what: &str) -> Value {
        self.recv(within).unwrap_or_else(|| {
            panic!(
                "no event within {within:?} while waiting for {what}; stderr: {}",
                self.stderr()
            )
        })
    }

    /// Reads events until one matches, returning all read so far (the match last).
    pub fn until(&self, within: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = self.next_event(left, what);
            let hit = pred(&ev);
            seen.push(ev);
            if hit {
                return seen;
            }
        }
    }

    /// Events until the `end` of connection `conn` (included), or all that came
    /// within `within` when it did not: the caller's assertions say what is missing.
    pub fn until_end(&self, conn: u64, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some(v) = self.recv(left) else { break };
            let done = v["event"] == "end" && v["conn"] == conn;
            got.push(v);
            if done {
                break;
            }
        }
        got
    }

    /// Every remaining stdout line (until EOF) and the exit status.
    pub fn finish(&mut self, within: Duration) -> (Vec<String>, ExitStatus) {
        let deadline = Instant::now() + within;
        let mut rest = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => rest.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("stdout still open after {within:?}")
                }
            }
        }
        (
            rest,
            self.wait(deadline.saturating_duration_since(Instant::now())),
        )
    }

    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "tcpalive still running after {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the child wrote to stderr so far; all of it once the child has closed
    /// stderr (waited for up to 100 ms, for a child that just exited).
    pub fn stderr(&self) -> String {
        let Ok(guard) = self.stderr.text.lock() else {
            return String::new();
        };
        let (guard, _) = self
            .stderr
            .changed
            .wait_timeout_while(guard, Duration::from_millis(100), |t| !t.1)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.0.clone()
    }

    /// Waits for a stderr line that `pred` accepts and returns it (without its
    /// newline); a panic naming `what` when none came within `within`.
    pub fn stderr_line(&self, within: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        let mut guard = self.stderr.text.lock().expect("stderr");
        loop {
            // Only whole lines: a line still being written is not matched early.
            let complete = guard.0.rfind('\n').map_or(0, |i| i + 1);
            if let Some(line) = guard.0[..complete].lines().find(|l| pred(l)) {
                return line.to_string();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero() && !guard.1,
                "no stderr line for {what} within {within:?}: {:?}",
                guard.0
            );
            guard = self
                .stderr
                .changed
                .wait_timeout(guard, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child that is not tcpalive (a real server: redis-server, postgres,
/// prometheus), killed and reaped when the test ends, passing or not.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn forward_lines(stdout: ChildStdout) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

pub fn event_is(ev: &Value, name: &str) -> bool {
    ev["event"] == name
}

/// `tcpalive listen 127.0.0.1:0 --json ARGS`, once its `listening` line says
/// which address it bound.
pub fn listen(args: &[&str]) -> (Proc, SocketAddr) {
    let mut all = vec!["listen", "127.0.0.1:0", "--json"];
    all.extend_from_slice(args);
    let p = Proc::spawn(&all);
    let addr = listening_addr(&p);
    (p, addr)
}

pub fn listening_addr(p: &Proc) -> SocketAddr {
    let ev = p.next_event(Duration::from_secs(10), "listening");
    assert!(event_is(&ev, "listening"), "first event: {ev}");
    ev["local"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("local address")
}

pub fn parse_all(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid JSON line ({e}): {l:?}"))
        })
        .collect()
}

/// Lowers RLIMIT_NOFILE in the child before exec (like `ulimit -n`).
pub fn with_nofile(cmd: &mut Command, limit: u64) -> &mut Command {
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the pre-exec hook.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// A root-only lab test that cannot run here (not root, no `ip`): under
/// TCPALIVE_REQUIRE_LAB=1 (.ci/run) a failure; otherwise reported as skipped
/// with the command that runs it, and the test returns. A newcomer's
/// `cargo test --release --features lab` then passes without root; the rootless
/// lab tests (`tests/lab_scenarios.rs`, `demo`) still run.
pub fn lab_skipped(test_file: &str, what: &str, why: &str) {
    skipped(test_file, what, why, &["TCPALIVE_REQUIRE_LAB"]);
}

/// As [`lab_skipped`], for a test that needs root or a package (redis-server,
/// postgres): a failure when any variable of `require` is 1 (.ci/run sets them
/// all), else one SKIPPED line with the command that runs it.
pub fn skipped(test_file: &str, what: &str, why: &str, require: &[&str]) {
    for var in require {
        assert!(
            std::env::var(var).as_deref() != Ok("1"),
            "{what} cannot run: {why} ({var}=1)"
        );
    }
    let how = if is_root() {
        "install what it needs, then: cargo test --release --features lab --test"
    } else {
        "run it as root: sudo -E cargo test --release --features lab --test"
    };
    // Straight to the stderr descriptor, not through eprintln!: the test
    // harness captures the print macros of a test that passes, and a skip must
    // be seen in `cargo test`'s output.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED: {what}: {why}; {how} {test_file}"
    );
}

/// Whether this process is root (the network-namespace lab needs it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
