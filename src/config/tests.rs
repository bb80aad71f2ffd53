//! In-process tests of every validation rule.

use std::time::Duration;

use super::*;

fn err_text<T: std::fmt::Debug>(r: Result<T, ConfigError>) -> String {
    r.expect_err("should be rejected").to_string()
}

#[test]
fn watch_port_messages() {
    assert_eq!(validate_watch_port("5432"), Ok(5432));
    let table = [
        ("0", "invalid --port '0': port 0 is out of range 1..=65535"),
        (
            "70000",
            "invalid --port '70000': port 70000 is out of range 1..=65535",
        ),
        ("http", "invalid --port 'http': port 'http' is not a number"),
        ("", "invalid --port '': missing port (expected HOST:PORT)"),
    ];
    for (input, want) in table {
        assert_eq!(err_text(validate_watch_port(input)), want, "{input}");
    }
}

#[test]
fn watch_peer_forms() {
    let peer = |host: &str, port: Option<u16>| PeerFilter {
        host: host.to_string(),
        port,
    };
    let table = [
        ("db.example", Ok(peer("db.example", None))),
        ("10.0.0.5:5432", Ok(peer("10.0.0.5", Some(5432)))),
        ("[::1]:80", Ok(peer("::1", Some(80)))),
        ("[::1]", Ok(peer("::1", None))),
        ("fe80::1", Ok(peer("fe80::1", None))),
        (
            "",
            Err("invalid --peer '': missing host (expected HOST or HOST:PORT)"),
        ),
        (
            "10.0.0.5:0",
            Err("invalid --peer '10.0.0.5:0': port 0 is out of range 1..=65535"),
        ),
        (
            "10.0.0.5:x",
            Err("invalid --peer '10.0.0.5:x': port 'x' is not a number"),
        ),
        (
            ":80",
            Err("invalid --peer ':80': missing host (expected HOST:PORT)"),
        ),
        (
            "[::1",
            Err("invalid --peer '[::1': missing ']' after the IPv6 address"),
        ),
    ];
    for (input, want) in table {
        let got = validate_peer_filter(input).map_err(|e| e.to_string());
        assert_eq!(got, want.map_err(str::to_string), "{input}");
    }
}

#[test]
fn watch_interval_and_pid_messages() {
    assert_eq!(
        validate_watch_interval("200ms"),
        Ok(Duration::from_millis(200))
    );
    let table = [
        (
            "1ms",
            "invalid --interval '1ms': must be at least 10ms (shorter would busy-poll the kernel)",
        ),
        ("2m", "invalid --interval '2m': must be at most 60s"),
        (
            "soon",
            "invalid --interval 'soon': not a duration (use 5, 5s, 1500ms, 2m)",
        ),
    ];
    for (input, want) in table {
        assert_eq!(err_text(validate_watch_interval(input)), want, "{input}");
    }
    assert_eq!(
        err_text(validate_count("--pid", "0", 1, MAX_PID)),
        "invalid --pid '0': must be from 1 to 4194303"
    );
    assert_eq!(
        err_text(validate_count("--pid", "self", 1, MAX_PID)),
        "invalid --pid 'self': not a whole number"
    );
}

#[test]
fn durations() {
    let table = [
        ("5", Ok(Duration::from_secs(5))),
        ("5s", Ok(Duration::from_secs(5))),
        ("1500ms", Ok(Duration::from_millis(1500))),
        ("2m", Ok(Duration::from_secs(120))),
        ("1.5", Ok(Duration::from_millis(1500))),
        ("1.5s", Ok(Duration::from_millis(1500))),
        ("-5", Err(())),
        ("abc", Err(())),
        ("", Err(())),
        ("1..5", Err(())),
    ];
    for (input, want) in table {
        assert_eq!(parse_duration(input).map_err(|_| ()), want, "{input}");
    }
}
