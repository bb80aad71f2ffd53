//! End-to-end runs on loopback: `connect` against `listen`, each outcome with its
//! exit code, its event sequence and JSON Lines that all parse.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Proc, count, end_of, listen, listening_addr, names, parse_all, run_json};

#[test]
fn alive_with_answered_probes() {
    let (_l, l_addr) = listen(&["--once"]);
    let target = l_addr.to_string();
    let (code, events, _) = run_json(&[
        "connect", &target, "--idle", "1", "--intvl", "1", "--cnt", "3", "--for", "2500ms",
        "--json",
    ]);
    assert_eq!(code, 0, "{events:?}");
    let seq = names(&events);
    // The connect phase first (issue 10): the SYN, its deadline and the bound.
    assert_eq!(
        &seq[..5],
        ["connecting", "connected", "config", "idle", "prediction"],
        "{seq:?}"
    );
    assert_eq!(events[0]["bound"], "connect-timeout");
    // --connect-timeout 10s from the connect() call, made just before the event.
    let deadline = events[0]["deadline"].as_f64().expect("deadline");
    let t = events[0]["t"].as_f64().expect("t");
    assert!((9.9..=10.0).contains(&(deadline - t)), "{}", events[0]);
    assert!(count(&events, "probe-acked") >= 2, "{seq:?}");
    let config = &events[2];
    assert_eq!(config["keepalive"], true);
    assert_eq!(config["idle_s"], 1);
    assert_eq!(config["intvl_s"], 1);
    assert_eq!(config["cnt"], 3);
    assert_eq!(config["user_timeout_ms"], 0);
    assert_eq!(config["predicted_detect_s"], 4.0);
    // Each answered probe is announced by its window and the probe itself.
    for (i, e) in events.iter().enumerate() {
        if e["event"] == "probe-acked" {
            assert_eq!(e["n"], 1);
            assert_eq!(events[i - 1]["event"], "probe");
        }
    }
    let end = end_of(&events);
    assert_eq!(end["outcome"], "alive");
    assert_eq!(end["exit_code"], 0);
    assert_eq!(end["conn"], 1);
    let first_ack = events
        .iter()
        .find(|e| e["event"] == "probe-acked")
        .expect("acked");
    let t = first_ack["t"].as_f64().expect("t");
    assert!((1.0..1.2).contains(&t), "first probe answered at {t}");
}

#[test]
fn eof_when_the_peer_closes() {
    let (l, l_addr) = listen(&["--once", "--close-after", "300ms"]);
    let target = l_addr.to_string();
    let (code, events, _) = run_json(&["connect", &target, "--idle", "5", "--json"]);
    assert_eq!(code, 4);
    let end = end_of(&events);
    assert_eq!(end["outcome"], "eof");
    assert_eq!(end["errno"], serde_json::Value::Null);
    assert_eq!(names(&events)[..3], ["connecting", "connected", "config"]);
    // The listener ended its side on purpose with the peer alive.
    let theirs = l.until_end(1, Duration::from_secs(5));
    assert_eq!(end_of(&theirs)["outcome"], "alive");
}

#[test]
fn reset_when_the_peer_aborts() {
    let (_l, l_addr) = listen(&["--once", "--reset-after", "300ms"]);
    let target = l_addr.to_string();
    let (code, events, _) = run_json(&["connect", &target, "--json"]);
    assert_eq!(code, 5);
    let end = end_of(&events);
    assert_eq!(end["outcome"], "reset");
    assert_eq!(end["errno"], "ECONNRESET");
    assert_eq!(end["exit_code"], 5);
    let detect = end["detect_s"].as_f64().expect("detect_s");
    assert!(detect < 1.0, "reset detected {detect}s after last contact");
}

#[test]
fn connect_failed_when_refused() {
    // A bound socket that never listens: its port refuses connections.
    let holder =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    holder
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .expect("addr")
                .into(),
        )
        .expect("bind");
    let port = holder
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("inet")
        .port();
    let (code, events, _) = run_json(&["connect", &format!("127.0.0.1:{port}"), "--json"]);
    assert_eq!(code, 3);
    assert_eq!(
        names(&events),
        ["connecting", "end"],
        "the attempt and its end: {events:?}"
    );
    let end = end_of(&events);
    assert_eq!(end["outcome"], "connect-failed");
    assert_eq!(end["errno"], "ECONNREFUSED");
    assert_eq!(
        end["message"],
        format!("connect to 127.0.0.1:{port} failed: Connection refused")
    );
}

fn interrupt(signal: i32, want_code: i32) {
    let (_l, l_addr) = listen(&[]);
    let target = l_addr.to_string();
    let mut client = Proc::spawn(&["connect", &target, "--idle", "1", "--intvl", "1", "--json"]);
    // Wait for the connection to be up before interrupting it.
    let first = client.next_event(Duration::from_secs(5), "connecting");
    assert_eq!(first["event"], "connecting");
    let second = client.next_event(Duration::from_secs(5), "connected");
    assert_eq!(second["event"], "connected");
    std::thread::sleep(Duration::from_millis(300));
    client.signal(signal);
    let (rest, status) = client.finish(Duration::from_secs(10));
    assert_eq!(status.code(), Some(want_code));
    let events = parse_all(&rest);
    let end = end_of(&events);
    assert_eq!(end["outcome"], "interrupted");
    assert_eq!(end["exit_code"], want_code);
}

#[test]
fn interrupted_by_sigint() {
    interrupt(libc::SIGINT, 130);
}

#[test]
fn interrupted_by_sigterm() {
    interrupt(libc::SIGTERM, 143);
}

#[test]
fn listen_follows_many_connections_and_tags_them() {
    let (l, l_addr) = listen(&["--for", "3s"]);
    let target = l_addr.to_string();
    let a = std::net::TcpStream::connect(&target).expect("first");
    let b = std::net::TcpStream::connect(&target).expect("second");
    drop(a);
    let first = l.until_end(1, Duration::from_secs(5));
    assert_eq!(end_of(&first)["outcome"], "eof");
    drop(b);
    let second = l.until_end(2, Duration::from_secs(5));
    assert_eq!(end_of(&second)["outcome"], "eof");
    let connected: Vec<_> = first
        .iter()
        .chain(&second)
        .filter(|e| e["event"] == "connected")
        .map(|e| e["conn"].as_u64())
        .collect();
    assert_eq!(connected, [Some(1), Some(2)]);
}

#[test]
fn max_conns_refuses_instead_of_queueing() {
    let (l, l_addr) = listen(&["--max-conns", "1", "--for", "3s"]);
    let target = l_addr.to_string();
    let _held = std::net::TcpStream::connect(&target).expect("first");
    let extra = std::net::TcpStream::connect(&target).expect("second handshake");
    extra
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut buf = [0u8; 1];
    let err = std::io::Read::read(&mut &extra, &mut buf).expect_err("reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    let seen = l.until(Duration::from_secs(5), "a refused event", |e| {
        e["event"] == "refused"
    });
    let refused = seen.last().expect("a refused event");
    assert_eq!(refused["conn"], 0);
}

#[test]
fn quiet_prints_only_the_end_line_and_abs_timestamps_are_wall_clock() {
    let (_l, l_addr) = listen(&["--once", "--close-after", "200ms"]);
    let out = Command::new(common::bin())
        .args([
            "connect",
            &l_addr.to_string(),
            "--quiet",
            "--timestamps",
            "abs",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(4));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    let line = text.lines().next().expect("one line");
    assert!(line.contains(" end ") && line.contains("eof"), "{line}");
    assert!(
        line.starts_with("20") && line.contains('T') && line.contains("Z "),
        "{line}"
    );
}

#[test]
fn ipv6_loopback() {
    let l = Proc::spawn(&["listen", "[::1]:0", "--once", "--json"]);
    let local = listening_addr(&l).to_string();
    assert!(local.starts_with("[::1]:"), "{local}");
    let (code, events, _) = run_json(&["connect", &local, "--for", "300ms", "--json"]);
    assert_eq!(code, 0);
    let connected = &events[1];
    assert_eq!(connected["event"], "connected");
    assert_eq!(connected["peer"], local);
}
