//! `watch` against loopback connections the test makes itself: keepalive seen from
//! outside, probes and their answers, keepalive off, the end of a watched
//! connection with its exit code, and filters that select exactly the right sockets.

mod common;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use serde_json::Value;
use socket2::{SockRef, TcpKeepalive};

use common::{count, end_of, run_json, spawn_json, until_end};

/// A connected pair on loopback: (client, server side).
fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    (client, server)
}

fn listener(addr: &str) -> (TcpListener, u16) {
    let l = TcpListener::bind(addr).expect("bind loopback");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

fn keepalive_1s(s: &TcpStream) {
    let ka = TcpKeepalive::new()
        .with_time(Duration::from_secs(1))
        .with_interval(Duration::from_secs(1));
    let sock = SockRef::from(s);
    sock.set_keepalive(true).expect("SO_KEEPALIVE");
    sock.set_tcp_keepalive(&ka).expect("keepalive idle/intvl");
}

/// The `watched` line whose local address is `local`.
fn watched_for(events: &[Value], local: SocketAddr) -> &Value {
    events
        .iter()
        .find(|e| e["event"] == "watched" && e["local"] == local.to_string())
        .unwrap_or_else(|| panic!("no watched line for {local}: {events:#?}"))
}

fn of_conn(events: &[Value], conn: &Value) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["conn"] == *conn)
        .cloned()
        .collect()
}

/// The (local, peer) pairs that joined the watch.
fn watched_set(events: &[Value]) -> BTreeSet<(String, String)> {
    events
        .iter()
        .filter(|e| e["event"] == "watched")
        .map(|e| {
            (
                e["local"].as_str().unwrap_or("?").to_string(),
                e["peer"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

fn endpoints(s: &TcpStream) -> (String, String) {
    (
        s.local_addr().expect("local").to_string(),
        s.peer_addr().expect("peer").to_string(),
    )
}

/// `tcpalive watch --port PORT --json --for D`, run to completion.
fn watch_port(port: u16, run_for: &str) -> (i32, Vec<serde_json::Value>, String) {
    run_json(&[
        "watch",
        "--port",
        &port.to_string(),
        "--json",
        "--for",
        run_for,
    ])
}

#[test]
fn keepalive_probes_and_answers_are_seen_from_outside() {
    let (l, port) = listener("127.0.0.1:0");
    let (client, _server) = pair(&l);
    keepalive_1s(&client);
    let (code, events, stderr) = watch_port(port, "3500ms");
    assert_eq!(code, 0, "{stderr}\n{events:#?}");
    let w = watched_for(&events, client.local_addr().expect("addr"));
    assert_eq!(w["keepalive"], true, "{w}");
    assert_eq!(w["timer"], "keepalive", "{w}");
    assert_eq!(w["idle_s"], 1, "{w}");
    assert_eq!(w["idle_source"], "kernel-timer", "{w}");
    assert_eq!(w["pid"], std::process::id(), "{w}");
    let mine = of_conn(&events, &w["conn"]);
    assert!(count(&mine, "probe") >= 1, "{mine:#?}");
    assert!(count(&mine, "probe-acked") >= 1, "{mine:#?}");
    // The interval is learned from the timer after the first probe.
    let last_config = mine
        .iter()
        .rev()
        .find(|e| e["event"] == "config")
        .expect("config");
    assert_eq!(last_config["keepalive"], true);
    assert_eq!(last_config["intvl_s"], 1, "{last_config}");
    let conn_end = mine.last().expect("events");
    assert_eq!(conn_end["event"], "end");
    assert_eq!(conn_end["outcome"], "alive");
    let end = end_of(&events);
    assert_eq!(end["conn"], 0);
    assert_eq!(end["outcome"], "alive");
    assert_eq!(end["exit_code"], 0);
}

#[test]
fn a_connection_without_keepalive_is_reported_as_such() {
    let (l, port) = listener("127.0.0.1:0");
    let (client, _server) = pair(&l);
    let (code, events, stderr) = watch_port(port, "600ms");
    assert_eq!(code, 0, "{stderr}");
    let w = watched_for(&events, client.local_addr().expect("addr"));
    assert_eq!(w["keepalive"], false, "{w}");
    assert_eq!(w["timer"], "none", "{w}");
    assert_eq!(w["idle_source"], "system-default", "{w}");
    let config = of_conn(&events, &w["conn"])
        .into_iter()
        .find(|e| e["event"] == "config")
        .expect("config line");
    assert_eq!(config["keepalive"], false);
    assert_eq!(config["predicted_detect_s"], Value::Null);
    let warnings = config["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap_or("").starts_with("keepalive is off")),
        "{config}"
    );
}

/// Starts a watch on `port` and waits until it has announced `n` connections.
fn watch_until_joined(
    port: u16,
    n: usize,
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<Value>,
    Vec<Value>,
) {
    let (child, rx) = spawn_json(&[
        "watch",
        "--port",
        &port.to_string(),
        "--json",
        "--for",
        "20s",
    ]);
    let mut seen = Vec::new();
    while count(&seen, "watched") < n {
        let v = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("watch announces the connections");
        seen.push(v);
    }
    (child, rx, seen)
}

fn end_for(rx: &std::sync::mpsc::Receiver<Value>, conn: &Value) -> Value {
    let id = conn.as_u64().expect("conn id");
    let lines = until_end(rx, id, Duration::from_secs(10));
    lines
        .into_iter()
        .find(|e| e["event"] == "end" && e["conn"] == id)
        .unwrap_or_else(|| panic!("no end for conn {id}"))
}

#[test]
fn peer_fin_ends_the_watched_connection_with_eof() {
    let (l, port) = listener("127.0.0.1:0");
    let (client, server) = pair(&l);
    let (mut child, rx, seen) = watch_until_joined(port, 2);
    let conn = watched_for(&seen, client.local_addr().expect("addr"))["conn"].clone();
    drop(server); // FIN: the client socket goes to CLOSE_WAIT.
    let end = end_for(&rx, &conn);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(end["outcome"], "eof", "{end}");
    assert_eq!(end["exit_code"], 4, "{end}");
    assert_eq!(end["inferred"], true, "{end}");
    assert!(
        end["evidence"]
            .as_str()
            .unwrap_or("")
            .contains("CLOSE_WAIT"),
        "{end}"
    );
    drop(client);
}

#[test]
fn peer_reset_ends_the_watched_connection_with_reset() {
    let (l, port) = listener("127.0.0.1:0");
    let (client, server) = pair(&l);
    let (mut child, rx, seen) = watch_until_joined(port, 2);
    let conn = watched_for(&seen, client.local_addr().expect("addr"))["conn"].clone();
    SockRef::from(&server)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(server); // RST: the client socket vanishes while this process still holds it.
    let end = end_for(&rx, &conn);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(end["outcome"], "reset", "{end}");
    assert_eq!(end["exit_code"], 5, "{end}");
    assert_eq!(end["inferred"], true, "{end}");
    assert!(
        end["evidence"]
            .as_str()
            .unwrap_or("")
            .contains("still holds it"),
        "{end}"
    );
    drop(client);
}

#[test]
fn filters_select_exactly_the_right_sockets() {
    let (l1, p1) = listener("127.0.0.1:0");
    let (l2, p2) = listener("127.0.0.1:0");
    let (l6, p6) = listener("[::1]:0");
    let (a, a_srv) = pair(&l1);
    let (b, b_srv) = pair(&l2);
    let (c, c_srv) = pair(&l2);
    let (v6, v6_srv) = pair(&l6);

    // --port: local or remote port, so both ends of the one connection to l1.
    let (_, events, stderr) = watch_port(p1, "300ms");
    assert_eq!(
        watched_set(&events),
        BTreeSet::from([endpoints(&a), endpoints(&a_srv)]),
        "{stderr}"
    );

    // --peer HOST:PORT: the remote end must be l2, so only the client sides.
    let peer = format!("127.0.0.1:{p2}");
    let (_, events, _) = run_json(&["watch", "--peer", &peer, "--json", "--for", "300ms"]);
    assert_eq!(
        watched_set(&events),
        BTreeSet::from([endpoints(&b), endpoints(&c)])
    );

    // --peer with --port: the server sides of l2's connections have l2 as local
    // port and a peer of 127.0.0.1, and the client sides too: all four.
    let (_, events, _) = run_json(&[
        "watch",
        "--peer",
        "127.0.0.1",
        "--port",
        &p2.to_string(),
        "--json",
        "--for",
        "300ms",
    ]);
    assert_eq!(
        watched_set(&events),
        BTreeSet::from([
            endpoints(&b),
            endpoints(&c),
            endpoints(&b_srv),
            endpoints(&c_srv)
        ])
    );

    // IPv6.
    let (_, events, _) = watch_port(p6, "300ms");
    assert_eq!(
        watched_set(&events),
        BTreeSet::from([endpoints(&v6), endpoints(&v6_srv)])
    );
    let peer6 = format!("[::1]:{p6}");
    let (_, events, _) = run_json(&["watch", "--peer", &peer6, "--json", "--for", "300ms"]);
    assert_eq!(watched_set(&events), BTreeSet::from([endpoints(&v6)]));
}

#[test]
fn pid_filter_takes_only_that_process_sockets() {
    let (l, port) = listener("127.0.0.1:0");
    // Another process owns the client side: `tcpalive connect`.
    let target = format!("127.0.0.1:{port}");
    let (mut other, rx) = spawn_json(&["connect", &target, "--json", "--for", "20s"]);
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("connect announces itself");
    assert_eq!(first["event"], "connected", "{first}");
    let (server, _) = l.accept().expect("accept");
    let pid = other.id().to_string();
    let (code, events, stderr) = run_json(&[
        "watch",
        "--port",
        &port.to_string(),
        "--pid",
        &pid,
        "--json",
        "--for",
        "300ms",
    ]);
    let _ = other.kill();
    let _ = other.wait();
    assert_eq!(code, 0, "{stderr}");
    let set = watched_set(&events);
    let (s_local, s_peer) = endpoints(&server);
    assert_eq!(set, BTreeSet::from([(s_peer, s_local)]), "{events:#?}");
    let w = events
        .iter()
        .find(|e| e["event"] == "watched")
        .expect("watched");
    assert_eq!(w["pid"].to_string(), pid);
    assert_eq!(w["process"], "tcpalive");
}

#[test]
fn pid_filter_names_a_missing_process() {
    // A PID that is not running is a usage error (exit 2), named at once.
    let mut gone = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = gone.id().to_string();
    gone.wait().expect("reap");
    let (code, events, stderr) = run_json(&["watch", "--pid", &pid, "--json", "--for", "1s"]);
    assert_eq!(code, 2, "{events:?}");
    assert_eq!(
        stderr,
        format!("tcpalive: invalid --pid '{pid}': no such process\n")
    );
}
