//! The one harness for tests that run the built binary: spawn `listen`, run
//! `connect`, collect and parse JSON Lines; [`Proc`] drives a long-running child
//! (signals, RSS, exit within a bound) and is killed if a test fails half-way.

#![allow(dead_code)]

pub mod netns;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tcpalive")
}

/// A running `tcpalive listen ... --json` with its parsed output lines.
pub struct Listener {
    pub child: Child,
    pub port: u16,
    pub lines: Receiver<Value>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns a child whose stdout is JSON Lines; every line must parse.
pub fn spawn_json(args: &[&str]) -> (Child, Receiver<Value>) {
    let mut argv = vec![bin()];
    argv.extend_from_slice(args);
    spawn_json_argv(&argv)
}

/// As [`spawn_json`], for a whole command line (e.g. `ip netns exec NS tcpalive ...`).
pub fn spawn_json_argv(argv: &[&str]) -> (Child, Receiver<Value>) {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tcpalive");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// `tcpalive listen 127.0.0.1:0 --json ARGS`, waiting for its `listening` line.
pub fn listen(args: &[&str]) -> Listener {
    let mut all = vec!["listen", "127.0.0.1:0", "--json"];
    all.extend_from_slice(args);
    let (child, lines) = spawn_json(&all);
    let first = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("listen prints a listening line");
    assert_eq!(first["event"], "listening", "{first}");
    let local = first["local"].as_str().expect("local address");
    let port = local
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    Listener { child, port, lines }
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

/// Collects lines until an `end` for `conn` arrives (or the timeout passes).
pub fn until_end(rx: &Receiver<Value>, conn: u64, timeout: Duration) -> Vec<Value> {
    let deadline = std::time::Instant::now() + timeout;
    let mut got = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(v) => {
                let done = v["event"] == "end" && v["conn"] == conn;
                got.push(v);
                if done {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    got
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

/// A child process that is killed if the test fails half-way.
pub struct Proc {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    pub fn spawn(args: &[&str]) -> Proc {
        Proc::spawn_with(Command::new(bin()).args(args))
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
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err_pipe.read_to_string(&mut text);
            if let Ok(mut s) = sink.lock() {
                s.push_str(&text);
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

    /// The next JSON event, or a panic naming what was waited for.
    pub fn next_event(&self, within: Duration, what: &str) -> Value {
        let line = self.lines.recv_timeout(within).unwrap_or_else(|_| {
            panic!(
                "no event within {within:?} while waiting for {what}; stderr: {}",
                self.stderr()
            )
        });
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
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

    pub fn stderr(&self) -> String {
        // Give the reader thread a moment to collect what was written.
        std::thread::sleep(Duration::from_millis(50));
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
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

pub fn forward_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
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

/// `listen 127.0.0.1:0 --json ARGS`, and the address it bound.
pub fn listen_proc(args: &[&str]) -> (Proc, SocketAddr) {
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
