//! `idle-limit` on loopback (no root, no middlebox): the listener side of the HOLD
//! protocol (keepalive off, the `in` check's PING), a path that keeps every flow up
//! to --max, a far side that is not tcpalive, a refused target, and the progress
//! line only on a terminal. The NAT measurements are lab tests (tests/lab.rs).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Proc, bin, count, end_of, listen, parse_all, run_json};
use serde_json::Value;

/// Everything the listener printed until it has been quiet for a moment.
fn drain(listener: &Proc) -> Vec<Value> {
    let mut got = Vec::new();
    while let Some(v) = listener.recv(Duration::from_millis(500)) {
        got.push(v);
    }
    got
}

#[test]
fn loopback_keeps_every_flow_up_to_max() {
    let (l, l_addr) = listen(&[]);
    let target = l_addr.to_string();
    let (code, lines, stderr) = run_json(&["idle-limit", &target, "--max", "3", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let end = end_of(&lines);
    assert_eq!(end["idle_limit_s"], Value::Null, "{end}");
    assert_eq!(end["drop_mode"], Value::Null, "{end}");
    assert_eq!(end["directions_tested"], "both", "{end}");
    assert_eq!(end["rounds"], 1, "{end}");
    // the grid 1.8 s, 3 s in each direction, every flow survived its idle time
    let checks: Vec<&Value> = lines
        .iter()
        .filter(|e| e["event"] == "idle-check")
        .collect();
    assert_eq!(checks.len(), 4, "{lines:?}");
    for c in &checks {
        assert_eq!(c["result"], "survived", "{c}");
        // (an `out` check stands for the idle time up to its PING, which leaves
        // when the loop gets to it: a few milliseconds past the planned time)
        let idle = c["idle_s"].as_f64().expect("idle_s");
        assert!(
            [1.8, 3.0].iter().any(|&d| (d..d + 0.1).contains(&idle)),
            "{c}"
        );
        // a check comes when its idle time is over, not before
        assert!(c["t"].as_f64().expect("t") >= idle, "{c}");
    }
    assert_eq!(end["flows"], 4);
    // the listener turned its keepalive off on each flow (HOLD), and sent the
    // `in` flows their PING itself
    let heard = drain(&l);
    let off = heard
        .iter()
        .filter(|e| e["event"] == "config" && e["keepalive"] == false)
        .count();
    assert_eq!(off, 4, "{heard:?}");
    assert_eq!(count(&heard, "heartbeat"), 2, "{heard:?}");
    // every test flow ended on the listener (by DONE on the control flow, or the
    // client's own close), and the control flow with them
    assert_eq!(count(&heard, "end"), 5, "each flow closed: {heard:?}");
}

#[test]
fn a_far_side_that_is_not_tcpalive_is_an_error() {
    // accepts and stays silent: WATCH (the control flow's first line) is never
    // answered
    let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = server.local_addr().expect("addr").to_string();
    let hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in server.incoming().take(1) {
            held.push(c);
        }
        std::thread::sleep(Duration::from_secs(3));
    });
    let (code, lines, _) = run_json(&[
        "idle-limit",
        &target,
        "--max",
        "3",
        "--connect-timeout",
        "1s",
        "--json",
    ]);
    let end = end_of(&lines);
    assert_eq!(code, 1, "{end}");
    assert_eq!(end["outcome"], "error");
    assert!(
        end["message"]
            .as_str()
            .is_some_and(|m| m.contains("did not answer WATCH")),
        "{end}"
    );
    let _ = hold.join();
}

#[test]
fn a_refused_target_is_connect_failed() {
    let (code, lines, _) = run_json(&["idle-limit", "127.0.0.1:1", "--json"]);
    let end = end_of(&lines);
    assert_eq!(code, 3, "{end}");
    assert_eq!(end["outcome"], "connect-failed");
    assert_eq!(end["errno"], "ECONNREFUSED");
}

/// The progress line goes to stderr on a terminal only (a pty made by util-linux
/// `script`, 60 columns wide), never into a pipe; it says the measurement is one
/// round, and is never wider than the terminal (a wrapped line is not erased
/// whole by `\r\x1b[K`: its first part stayed on the screen).
#[test]
fn progress_only_on_a_terminal() {
    let (_l, l_addr) = listen(&[]);
    let args = format!(
        "idle-limit 127.0.0.1:{} --max 6 --direction both",
        l_addr.port()
    );
    let on_pty = Command::new("script")
        .args([
            "-q",
            "-e",
            "-c",
            &format!("stty rows 24 cols 60 && {} {args}", bin()),
            "/dev/null",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run script (util-linux)");
    assert_eq!(on_pty.status.code(), Some(0), "{on_pty:?}");
    let text = String::from_utf8_lossy(&on_pty.stdout);
    assert!(text.contains("\r\x1b[Kidle-limit: one round, "), "{text:?}");
    for piece in text
        .split("\r\x1b[K")
        .filter(|p| p.starts_with("idle-limit:"))
    {
        let line = piece.split(['\r', '\n']).next().unwrap_or_default();
        assert!(
            line.chars().count() < 60,
            "a progress line wider than the 60-column terminal: {line:?}"
        );
    }
    // every timeline line comes after the progress line was erased: a progress
    // line (between two erases) never runs into one (before, stdout's writer
    // thread wrote them after the line was drawn again)
    for piece in text.split("\r\x1b[K") {
        assert!(
            !(piece.starts_with("idle-limit:") && piece.contains('\n')),
            "a timeline line behind an unerased progress line: {piece:?}"
        );
    }
    let piped = Command::new(bin())
        .args(args.split(' '))
        .output()
        .expect("run");
    assert_eq!(piped.status.code(), Some(0), "{piped:?}");
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(err.is_empty(), "no progress into a pipe: {err:?}");
}

/// SIGINT mid-measurement: the end says interrupted (exit 130) and carries what
/// was measured so far.
#[test]
fn an_interrupted_measurement_ends_with_what_it_has() {
    let (_l, l_addr) = listen(&[]);
    let target = l_addr.to_string();
    let mut client = Proc::spawn(&[
        "idle-limit",
        &target,
        "--max",
        "30",
        "--direction",
        "out",
        "--json",
    ]);
    // the first check (1.8 s) has come back
    let first = loop {
        let v = client.next_event(Duration::from_secs(10), "an idle-check");
        if v["event"] == "idle-check" {
            break v;
        }
    };
    assert_eq!(first["result"], "survived", "{first}");
    client.signal(libc::SIGINT);
    let (rest, status) = client.finish(Duration::from_secs(10));
    assert_eq!(status.code(), Some(130));
    let rest = parse_all(&rest);
    let end = end_of(&rest);
    assert_eq!(end["outcome"], "interrupted", "{end}");
    assert_eq!(end["idle_limit_s"], Value::Null, "{end}");
    assert!(end["flows"].as_u64().is_some_and(|n| n > 1), "{end}");
}

/// A `listen --mute` (a hung application for heartbeats) still answers a test
/// flow's check: its silence would read as the path dropping the flow.
#[test]
fn a_muted_listener_still_answers_test_flows() {
    let (_l, l_addr) = listen(&["--mute"]);
    let target = l_addr.to_string();
    let (code, lines, stderr) = run_json(&[
        "idle-limit",
        &target,
        "--max",
        "2",
        "--direction",
        "out",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(end_of(&lines)["idle_limit_s"], Value::Null);
    assert!(
        lines
            .iter()
            .filter(|e| e["event"] == "idle-check")
            .all(|c| c["result"] == "survived"),
        "{lines:?}"
    );
}

/// How a fake listener lies.
#[derive(Clone, Copy, PartialEq)]
enum Lie {
    /// Answers WATCH and HOLD, never a PING (neither on the control flow nor on
    /// a test flow).
    NoPong,
    /// Answers the control flow's PINGs, holds flows, never answers a test flow.
    NoTestPong,
    /// Sends the `in` check's PING right after HELD instead of waiting.
    EarlyPing,
}

/// A small hostile server: speaks just enough of the protocol to be believed,
/// and lies as `lie` says. Its threads end with their connections.
fn fake_listener(lie: Lie) -> String {
    use std::io::{BufRead, BufReader, Write};
    let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = server.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for conn in server.incoming() {
            let Ok(conn) = conn else { return };
            std::thread::spawn(move || {
                let mut out = conn.try_clone().expect("clone");
                let mut control = false;
                for line in BufReader::new(conn).lines() {
                    let Ok(line) = line else { return };
                    let words: Vec<&str> = line.split(' ').collect();
                    let reply = match words.as_slice() {
                        ["WATCH", run] => {
                            control = true;
                            Some(format!("WATCHING {run}\n"))
                        }
                        ["HOLD", seq, wake, _, _] => {
                            let mut r = format!("HELD {seq}\n");
                            if lie == Lie::EarlyPing && *wake != "0" {
                                r.push_str(&format!("PING {seq}\n"));
                            }
                            Some(r)
                        }
                        ["PING", seq] => match (lie, control) {
                            (Lie::NoPong, _) | (Lie::NoTestPong, false) => None,
                            _ => Some(format!("PONG {seq}\n")),
                        },
                        _ => None,
                    };
                    if let Some(r) = reply
                        && out.write_all(r.as_bytes()).is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    target
}

/// A listener that lies is never believed: each lie ends the run with an error
/// that names the broken protocol, and no limit (before: "idle limit 0.9s
/// +-0.9s ... dropped silently", exit 0, and a PING right after HELD counted as
/// a survived idle period).
#[test]
fn a_lying_listener_never_yields_a_limit() {
    for (lie, direction, says) in [
        // whichever shows first: the control flow's PING or every check unanswered
        (Lie::NoPong, "out", "PING|every test flow was dropped"),
        (Lie::NoTestPong, "out", "every test flow was dropped"),
        (Lie::EarlyPing, "in", "broke the protocol on test flow"),
    ] {
        let target = fake_listener(lie);
        let (code, lines, stderr) = run_json(&[
            "idle-limit",
            &target,
            "--max",
            "8",
            "--direction",
            direction,
            "--json",
        ]);
        let end = end_of(&lines);
        assert_eq!(code, 1, "{says}: {end} {stderr}");
        assert_eq!(end["outcome"], "error", "{end}");
        assert_eq!(end["idle_limit_s"], Value::Null, "{end}");
        assert!(
            end["message"]
                .as_str()
                .is_some_and(|m| says.split('|').any(|s| m.contains(s))),
            "{says}: {end}"
        );
    }
}

/// A flood of HOLD lines on a held test flow costs the listener nothing: one
/// HOLD per connection is served (one `config` event), the rest are skipped, and
/// another client's PINGs stay answered at once. Before, each HOLD line became a
/// ~550-byte `config` event (14.5 MB of input gave 399 MB of output) and PONGs to
/// other clients came seconds late.
#[test]
fn a_hold_flood_does_not_stall_listen() {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;
    use std::time::Instant;
    let l = common::Proc::spawn(&["listen", "127.0.0.1:0", "--json"]);
    let addr = common::listening_addr(&l);
    let line = |r: &mut BufReader<TcpStream>| {
        let mut s = String::new();
        r.read_line(&mut s).expect("read a line");
        s
    };
    let mut control = TcpStream::connect(addr).expect("control");
    // a listener that does not answer fails the test instead of hanging it
    control
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    control.write_all(b"WATCH 42\n").expect("WATCH");
    let mut control_in = BufReader::new(control.try_clone().expect("clone"));
    assert_eq!(line(&mut control_in), "WATCHING 42\n");
    let mut flood = TcpStream::connect(addr).expect("flood");
    flood
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    flood.write_all(b"HOLD 1 0 0 42\n").expect("HOLD");
    assert_eq!(
        line(&mut BufReader::new(flood.try_clone().expect("clone"))),
        "HELD 1\n"
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooding = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let chunk = b"HOLD 1 0 0 42\n".repeat(4096);
            let mut sent = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match flood.write(&chunk) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            sent
        })
    };
    let mut worst = Duration::ZERO;
    let started = Instant::now();
    let mut seq = 0;
    while started.elapsed() < Duration::from_secs(3) {
        seq += 1;
        let sent = Instant::now();
        control
            .write_all(format!("PING {seq}\n").as_bytes())
            .expect("PING");
        assert_eq!(line(&mut control_in), format!("PONG {seq}\n"));
        worst = worst.max(sent.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let bytes = flooding.join().expect("flood thread");
    assert!(bytes > 1_000_000, "the flood sent only {bytes} bytes");
    assert!(worst < Duration::from_millis(300), "a PONG took {worst:?}");
    let mut events = Vec::new();
    while let Some(ev) = l.recv(Duration::from_millis(300)) {
        events.push(ev);
    }
    // connected/config/idle/prediction per connection, one more config for the
    // HOLD: a handful, not one per HOLD line
    assert!(
        events.len() < 40,
        "{} events for {bytes} bytes of HOLD",
        events.len()
    );
}

/// A listener that dies mid-measurement (SIGKILL: its kernel closes every flow
/// with a FIN, as a proxy would) is never read as a path that closes idle flows:
/// the control flow's end ends the run as an error naming it, with no limit.
#[test]
fn a_listener_that_dies_mid_run_yields_no_limit() {
    let l = Proc::spawn(&["listen", "127.0.0.1:0", "--json"]);
    let addr = common::listening_addr(&l).to_string();
    let mut client = Proc::spawn(&[
        "idle-limit",
        &addr,
        "--max",
        "20",
        "--direction",
        "out",
        "--json",
    ]);
    // the first check (1.8 s) survived: the flows are held, the run is going
    loop {
        let v = client.next_event(Duration::from_secs(10), "an idle-check");
        if v["event"] == "idle-check" {
            assert_eq!(v["result"], "survived", "{v}");
            break;
        }
    }
    l.signal(libc::SIGKILL);
    let (rest, status) = client.finish(Duration::from_secs(15));
    let rest = parse_all(&rest);
    let end = end_of(&rest);
    assert_ne!(status.code(), Some(0), "{end}");
    assert_ne!(end["outcome"], "limit-found", "{end}");
    assert_eq!(end["idle_limit_s"], Value::Null, "{end}");
    assert!(
        end["message"]
            .as_str()
            .is_some_and(|m| m.contains("control flow")),
        "{end}"
    );
}
