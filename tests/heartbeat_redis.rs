//! `--heartbeat-payload` against a real server, Redis (Debian's redis-server;
//! .ci/run installs it): `--heartbeat-expect +PONG` tells a healthy answer from
//! `-NOAUTH` (a password is required) and `-ERR`, and every reply's bytes are shown.

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{Reaped, end_of, run_json};

/// redis-server on a free loopback port, with a password when `password` is set.
fn start_redis(password: Option<&str>) -> (Reaped, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"]);
    if let Some(p) = password {
        cmd.args(["--requirepass", p]);
    }
    let child = Reaped(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (the Debian package; .ci/run installs it)"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

fn heartbeat_run(port: u16, extra: &[&str]) -> (i32, Vec<Value>) {
    let target = format!("127.0.0.1:{port}");
    let mut args = vec![
        "connect",
        &target,
        "--json",
        "--heartbeat",
        "200ms",
        "--heartbeat-timeout",
        "600ms",
        "--heartbeat-payload",
        "PING\\r\\n",
    ];
    args.extend_from_slice(extra);
    let (code, events, _) = run_json(&args);
    (code, events)
}

fn replies(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "heartbeat-reply")
        .map(|e| e["reply"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn noauth_is_not_a_healthy_answer() {
    let (_redis, port) = start_redis(Some("secret"));
    // Any bytes count without --heartbeat-expect: the replies show what they were.
    let (code, events) = heartbeat_run(port, &["--for", "1s"]);
    assert_eq!(code, 0, "{events:?}");
    let shown = replies(&events);
    assert!(!shown.is_empty(), "{events:?}");
    assert!(
        shown
            .iter()
            .all(|r| r.starts_with("-NOAUTH") && r.ends_with("\\r\\n")),
        "{shown:?}"
    );
    // With it, the same replies answer nothing: the peer is hung as far as the
    // application protocol goes.
    let (code, events) = heartbeat_run(port, &["--heartbeat-expect", "+PONG"]);
    assert_eq!(code, 8, "{events:?}");
    let end = end_of(&events);
    assert_eq!(end["outcome"], "heartbeat-timeout");
    let message = end["message"].as_str().unwrap_or("");
    assert!(
        message.contains(
            "the peer answers, but the last reply did not match --heartbeat-expect: \"-NOAUTH"
        ),
        "{message}"
    );
    assert!(replies(&events).is_empty(), "{events:?}");
    assert!(
        events.iter().any(|e| e["event"] == "warning"
            && e["message"]
                .as_str()
                .unwrap_or("")
                .contains("does not start with --heartbeat-expect")),
        "{events:?}"
    );
}

#[test]
fn pong_answers_and_is_shown() {
    let (_redis, port) = start_redis(None);
    let (code, events) = heartbeat_run(port, &["--heartbeat-expect", "+PONG", "--for", "1s"]);
    assert_eq!(code, 0, "{events:?}");
    let shown = replies(&events);
    assert!(shown.len() >= 3, "{events:?}");
    assert!(shown.iter().all(|r| r == "+PONG\\r\\n"), "{shown:?}");
    // The heartbeats (200 ms + 600 ms) detect first: the initial prediction says so.
    let config = events
        .iter()
        .find(|e| e["event"] == "config")
        .expect("config");
    assert_eq!(config["predicted_detect_s"], 0.8, "{config}");
}
