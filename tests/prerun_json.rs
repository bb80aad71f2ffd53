//! With `--json`, a run that tcpalive refuses or cannot start still ends its
//! timeline with one `end` line on stdout (outcome `error`, the exit code of the
//! table: 1 for a failure of its own, 2 for a value validation refused), beside
//! the one line on stderr that says why. One test per way a run fails before it
//! starts, for every command with a JSON timeline.

mod common;

use std::net::TcpListener;
use std::process::Command;

use serde_json::Value;

use common::bin;

/// What a refused run printed: exit code, stdout's JSON lines, stderr's lines.
struct Refused {
    code: i32,
    events: Vec<Value>,
    stderr: Vec<String>,
}

fn refused(cmd: &mut Command) -> Refused {
    let out = cmd.output().expect("run tcpalive");
    let stdout = String::from_utf8_lossy(&out.stdout);
    Refused {
        code: out.status.code().unwrap_or(-1),
        events: stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect(),
        stderr: String::from_utf8_lossy(&out.stderr)
            .lines()
            .map(str::to_string)
            .collect(),
    }
}

/// One JSON line, the `end`, with `code` as its exit code and outcome `error`;
/// one stderr line carrying the end's message, which contains `says`.
fn assert_one_end(r: &Refused, code: i32, says: &str) -> Value {
    assert_eq!(r.code, code, "exit code; stderr: {:?}", r.stderr);
    assert_eq!(r.events.len(), 1, "one JSON line: {:?}", r.events);
    let end = &r.events[0];
    assert_eq!(end["event"], "end", "{end}");
    assert_eq!(end["outcome"], "error", "{end}");
    assert_eq!(end["exit_code"], code, "{end}");
    assert_eq!(end["conn"], 0, "{end}");
    assert_eq!(r.stderr.len(), 1, "one stderr line: {:?}", r.stderr);
    let message = end["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(says),
        "message {message:?} should say {says:?}"
    );
    assert_eq!(
        r.stderr[0],
        format!("tcpalive: {message}"),
        "stderr says what the end says"
    );
    end.clone()
}

fn tcpalive(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args);
    c
}

/// A loopback port something else holds (the listener lives as long as the value).
fn taken_port() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = l.local_addr().expect("its address").to_string();
    (l, addr)
}

#[test]
fn listen_on_a_port_in_use() {
    let (_held, addr) = taken_port();
    let r = refused(&mut tcpalive(&["listen", &addr, "--json"]));
    let end = assert_one_end(&r, 1, &format!("cannot bind {addr}"));
    assert_eq!(end["errno"], "EADDRINUSE", "{end}");
}

#[test]
fn watch_metrics_on_a_port_in_use() {
    let (_held, addr) = taken_port();
    let r = refused(&mut tcpalive(&[
        "watch",
        "--metrics",
        &addr,
        "--for",
        "5s",
        "--json",
    ]));
    let end = assert_one_end(&r, 1, "--metrics");
    assert_eq!(end["errno"], "EADDRINUSE", "{end}");
}

#[test]
fn watch_metrics_file_in_a_directory_it_cannot_write() {
    // /proc exists (validation takes it) but holds no new files.
    let r = refused(&mut tcpalive(&[
        "watch",
        "--metrics-file",
        "/proc/tcpalive-test.prom",
        "--for",
        "5s",
        "--json",
    ]));
    assert_one_end(
        &r,
        1,
        "cannot write --metrics-file /proc/tcpalive-test.prom",
    );
}

/// `demo` and `lab SCENARIO` where no network namespace can be made: inside a
/// user namespace of the test's own whose network-namespace limit is 0 (so
/// unshare(CLONE_NEWNET) fails with ENOSPC, as on a host that disables them).
fn without_network_namespaces(args: &[&str]) -> Option<Command> {
    let probe = Command::new("unshare")
        .args(["--user", "--map-root-user", "true"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        common::lab_skipped(
            "prerun_json",
            "a lab that cannot start",
            "unshare --user --map-root-user (util-linux, user namespaces) is not available",
        );
        return None;
    }
    let mut c = Command::new("unshare");
    c.args(["--user", "--map-root-user", "sh", "-c"])
        .arg("echo 0 > /proc/sys/user/max_net_namespaces && exec \"$0\" \"$@\"")
        .arg(bin())
        .args(args);
    Some(c)
}

#[test]
fn demo_where_the_lab_cannot_start() {
    let Some(mut cmd) = without_network_namespaces(&["demo", "--json"]) else {
        return;
    };
    let r = refused(&mut cmd);
    let end = assert_one_end(&r, 1, "the lab cannot create its private network");
    assert_eq!(end["errno"], "ENOSPC", "{end}");
}

#[test]
fn lab_scenario_where_the_lab_cannot_start() {
    let Some(mut cmd) = without_network_namespaces(&["lab", "cable-pull", "--json", "--quiet"])
    else {
        return;
    };
    let r = refused(&mut cmd);
    assert_one_end(&r, 1, "user.max_net_namespaces is 0");
}

#[test]
fn connect_refused_by_validation() {
    let r = refused(&mut tcpalive(&["connect", "127.0.0.1:0", "--json"]));
    assert_one_end(&r, 2, "invalid HOST:PORT '127.0.0.1:0'");
}

#[test]
fn listen_refused_by_validation() {
    let r = refused(&mut tcpalive(&[
        "listen",
        "0",
        "--json",
        "--max-conns",
        "0",
    ]));
    assert_one_end(&r, 2, "invalid --max-conns '0'");
}

#[test]
fn watch_of_no_process() {
    // PIDs go up to 4194303; 4194303 itself is about never in use.
    let r = refused(&mut tcpalive(&["watch", "--pid", "4194303", "--json"]));
    assert_one_end(&r, 2, "invalid --pid '4194303': no such process");
}

#[test]
fn tune_of_no_process() {
    let r = refused(&mut tcpalive(&[
        "tune", "--pid", "4194303", "--idle", "5", "--json",
    ]));
    assert_one_end(&r, 2, "invalid --pid '4194303': no such process");
}

#[test]
fn idle_limit_refused_by_validation() {
    let r = refused(&mut tcpalive(&[
        "idle-limit",
        "127.0.0.1:7",
        "--max",
        "1s",
        "--json",
    ]));
    assert_one_end(&r, 2, "invalid --max '1s'");
}

#[test]
fn lab_refused_by_validation() {
    let r = refused(&mut tcpalive(&["lab", "cable", "--json"]));
    assert_one_end(&r, 2, "invalid SCENARIO 'cable'");
}

#[test]
fn explain_of_a_missing_capture() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("missing.pcap");
    let path = path.to_string_lossy();
    let r = refused(&mut tcpalive(&["explain", &path, "--json"]));
    assert_one_end(&r, 2, "cannot open capture");
}

#[test]
fn explain_of_a_file_that_is_no_capture() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notes.pcap");
    std::fs::write(&path, "not a capture\n").expect("write");
    let path = path.to_string_lossy();
    let r = refused(&mut tcpalive(&["explain", &path, "--json"]));
    assert_one_end(&r, 2, "is not a pcap or pcapng capture");
}

/// Refusals that are the run's own outcome already end in one `end` (not a second).
#[test]
fn connect_and_idle_limit_refused_by_the_peer_end_once() {
    let (held, addr) = taken_port();
    drop(held); // nothing listens there now: the kernel answers RST
    for args in [
        vec!["connect", addr.as_str(), "--json"],
        vec!["idle-limit", addr.as_str(), "--max", "2s", "--json"],
    ] {
        let r = refused(&mut tcpalive(&args));
        assert_eq!(r.code, 3, "{args:?}: {:?}", r.stderr);
        let ends: Vec<&Value> = r.events.iter().filter(|e| e["event"] == "end").collect();
        assert_eq!(ends.len(), 1, "{args:?}: {:?}", r.events);
        assert_eq!(
            r.events.last().map(|e| &e["event"]),
            Some(&Value::from("end"))
        );
        assert_eq!(ends[0]["outcome"], "connect-failed", "{args:?}");
        assert_eq!(ends[0]["errno"], "ECONNREFUSED", "{args:?}");
    }
}

/// Without --json nothing goes to stdout: the stderr line is the whole report.
#[test]
fn human_refusals_print_only_the_stderr_line() {
    let (_held, addr) = taken_port();
    let out = tcpalive(&["listen", &addr]).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = tcpalive(&["connect", "127.0.0.1:0"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
