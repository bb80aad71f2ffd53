//! Application heartbeats, `--expect`/`--within` and the reconnecting monitor, end
//! to end on loopback.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use common::{count, end_of, listen, run_json};

#[test]
fn hung_application_is_a_heartbeat_timeout() {
    let (_l, l_addr) = listen(&["--once", "--mute"]);
    let target = l_addr.to_string();
    let (code, events, _) = run_json(&[
        "connect",
        &target,
        "--heartbeat",
        "300ms",
        "--heartbeat-timeout",
        "1s",
        "--json",
    ]);
    assert_eq!(code, 8, "{events:?}");
    let end = end_of(&events);
    assert_eq!(end["outcome"], "heartbeat-timeout");
    assert_eq!(end["exit_code"], 8);
    assert_eq!(count(&events, "heartbeat-reply"), 0);
    // The first heartbeat went unanswered: detection is its send time + the timeout.
    let first = events
        .iter()
        .find(|e| e["event"] == "heartbeat")
        .expect("a heartbeat");
    assert_eq!(first["seq"], 1);
    let waited = end["t"].as_f64().expect("t") - first["t"].as_f64().expect("t");
    assert!(
        (waited - 1.0).abs() < 0.1,
        "detected {waited}s after the heartbeat"
    );
    assert!(
        end["message"]
            .as_str()
            .expect("message")
            .contains("still acknowledges")
    );
    let predicted = end["predicted_detect_s"].as_f64().expect("prediction");
    let detect = end["detect_s"].as_f64().expect("detect");
    assert!((detect - predicted).abs() < 0.1, "{detect} vs {predicted}");
}

#[test]
fn listen_answers_heartbeats() {
    let (_l, l_addr) = listen(&["--once"]);
    let target = l_addr.to_string();
    let (code, events, _) = run_json(&[
        "connect",
        &target,
        "--heartbeat",
        "200ms",
        "--for",
        "1100ms",
        "--json",
    ]);
    assert_eq!(code, 0);
    let replies: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "heartbeat-reply")
        .collect();
    assert!(replies.len() >= 4, "{} replies", replies.len());
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r["seq"], i as u64 + 1);
        assert!(r["rtt_ms"].as_f64().expect("rtt") < 100.0);
    }
}

/// A server that is not tcpalive: answers each read with the same bytes.
fn echo_server() -> u16 {
    let server = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = server.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = server.accept() {
            let mut buf = [0u8; 256];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    });
    port
}

#[test]
fn raw_payload_heartbeat_against_another_server_stays_alive() {
    let port = echo_server();
    let (code, events, _) = run_json(&[
        "connect",
        &format!("127.0.0.1:{port}"),
        "--heartbeat",
        "200ms",
        "--heartbeat-timeout",
        "500ms",
        "--heartbeat-payload",
        "PING\\r\\n",
        "--for",
        "1100ms",
        "--json",
    ]);
    assert_eq!(code, 0, "{events:?}");
    assert!(count(&events, "heartbeat-reply") >= 4);
    assert_eq!(end_of(&events)["outcome"], "alive");
}

#[test]
fn expect_met_and_not_met() {
    let (_l, l_addr) = listen(&["--close-after", "200ms", "--for", "20s"]);
    let target = l_addr.to_string();
    let (code, events, stderr) = run_json(&[
        "connect", &target, "--expect", "eof", "--within", "..1s", "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let end = end_of(&events);
    assert_eq!(end["expect_met"], true);
    assert_eq!(end["outcome"], "eof");

    let (code, events, stderr) = run_json(&["connect", &target, "--expect", "timeout", "--json"]);
    assert_eq!(code, 9);
    let end = end_of(&events);
    assert_eq!(end["expect_met"], false);
    assert_eq!(end["exit_code"], 9);
    assert_eq!(end["outcome"], "eof");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("tcpalive: expected timeout, got eof after "),
        "{stderr}"
    );

    let (code, _, stderr) = run_json(&["connect", &target, "--within", "5s..", "--json"]);
    assert_eq!(code, 9);
    assert!(
        stderr.contains("expected any outcome within 5s.., got eof after"),
        "{stderr}"
    );

    let (code, events, _) = run_json(&[
        "connect",
        "127.0.0.1:1",
        "--expect",
        "connect-failed",
        "--json",
    ]);
    assert_eq!(code, 0);
    assert_eq!(end_of(&events)["outcome"], "connect-failed");
}

#[test]
fn reconnect_logs_each_outage_and_summarises() {
    let (l, l_addr) = listen(&["--close-after", "400ms", "--for", "20s"]);
    let target = l_addr.to_string();
    let (code, events, _) = run_json(&[
        "connect",
        &target,
        "--reconnect",
        "--count",
        "3",
        "--expect",
        "eof",
        "--json",
    ]);
    assert_eq!(code, 0, "{events:?}");
    let downs: Vec<_> = events.iter().filter(|e| e["event"] == "down").collect();
    let ups: Vec<_> = events.iter().filter(|e| e["event"] == "up").collect();
    assert_eq!(downs.len(), 3);
    assert_eq!(ups.len(), 2, "no reconnect after the last counted outage");
    for (i, d) in downs.iter().enumerate() {
        assert_eq!(d["n"], i as u64 + 1);
        assert_eq!(d["outcome"], "eof");
        assert_eq!(d["conn"], i as u64 + 1);
    }
    let end = end_of(&events);
    assert_eq!(end["outcome"], "alive");
    assert_eq!(end["outages"], 3);
    assert_eq!(end["expect_met"], true);
    assert!(end["availability"].as_f64().expect("availability") > 0.9);
    let theirs = l.until_end(3, Duration::from_secs(5));
    assert!(!theirs.is_empty());
}
