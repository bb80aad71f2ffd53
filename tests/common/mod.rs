//! Helpers for tests that run the built binary: spawn `listen`, run `connect`,
//! collect and parse JSON Lines.

#![allow(dead_code)]

pub mod netns;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

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
