//! `watch` against real applications whose settings change while it watches,
//! with a real cable pull in a namespace pair and the application's own error as
//! ground truth: socat (Debian's socat; .ci/run installs it) with keepalive on at
//! the system defaults, re-tuned to 2/1/2 by `tcpalive tune --pid` from another
//! process. watch read 7200/75/9 at join; it must see from the kernel's timer that
//! they changed, read them again, and end as socat's own read failed
//! (ETIMEDOUT), within 150 ms, `certain`.
//!
//! Without root, `ip` or socat the tests fail when TCPALIVE_REQUIRE_LAB=1 (set by
//! .ci/run) and say SKIPPED otherwise.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::netns::Pair;
use common::{Proc, Reaped};
use serde_json::Value;

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The namespace pair, or `None` (SKIPPED) when the lab cannot run here.
fn lab(tag: &str, needs: &[&str]) -> Option<Pair> {
    let missing: Vec<&str> = needs.iter().copied().filter(|c| !have(c)).collect();
    let why = if missing.is_empty() {
        match Pair::new(tag) {
            Ok(p) => return Some(p),
            Err(why) => why,
        }
    } else {
        format!("needs {}", missing.join(", "))
    };
    common::lab_skipped("watch_apps", &format!("the {tag} lab"), &why);
    None
}

/// Seconds since the epoch of an RFC 3339 time (watch's `time`).
fn epoch_of(rfc3339: &str) -> f64 {
    humantime::parse_rfc3339(rfc3339)
        .expect("an RFC 3339 time")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs_f64()
}

/// When watch placed a connection's end (the dump that no longer showed it: the
/// last contact plus `detect_s`) and when it said so (the `end` line's time), as
/// epoch seconds. On a loaded host the line can come later than the dump.
fn end_times(events: &[&Value]) -> (f64, f64) {
    let end = events.iter().find(|e| e["event"] == "end").expect("end");
    let said_at = epoch_of(end["time"].as_str().expect("time"));
    let run_start = said_at - end["t"].as_f64().expect("t");
    let since = events
        .iter()
        .rev()
        .find_map(|e| {
            (e["event"] == "prediction" || e["event"] == "idle")
                .then(|| e["since"].as_f64())
                .flatten()
        })
        .expect("the last contact");
    let detect = end["detect_s"].as_f64().expect("detect_s");
    (run_start + since + detect, said_at)
}

/// The time and text of socat's error line (`-lu`, TZ=UTC:
/// `2026/12/03 13:21:39.123456 socat[77] E read(5, ...): Connection timed out`).
fn socat_error(stderr: &str) -> Option<(f64, String)> {
    stderr.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (date, time) = (f.next()?, f.next()?);
        let _who = f.next()?;
        (f.next()? == "E").then_some(())?;
        let at = epoch_of(&format!("{}T{time}Z", date.replace('/', "-")));
        Some((at, l.to_string()))
    })
}

#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs root, network namespaces and socat (cargo test --features lab)"
)]
fn lab_socat_retuned_at_run_time_ends_as_socat_does() {
    let Some(pair) = lab("wsoc", &["socat", "ip"]) else {
        return;
    };
    let bin = common::bin();
    // The peer: keepalive off, sends nothing.
    let _peer = Reaped(
        Pair::exec(&pair.b, bin)
            .args(["listen", &format!("{}:7000", pair.addr_b), "--no-keepalive"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start listen"),
    );
    let watch = Proc::spawn_argv(&[
        "ip",
        "netns",
        "exec",
        &pair.a,
        bin,
        "watch",
        "--port",
        "7000",
        "--interval",
        "50ms",
        "--json",
        "--for",
        "30s",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    // socat with keepalive on at the namespace's defaults (7200/75/9); stdin a
    // pipe held open, so socat only reads the socket.
    let mut socat = Pair::exec(&pair.a, "socat")
        .env("TZ", "UTC")
        .args(["-lu", &format!("TCP:{}:7000,keepalive", pair.addr_b), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start socat");
    let socat_pid = socat.id();
    let mut seen = watch.until(Duration::from_secs(10), "socat's socket", |e| {
        e["event"] == "watched" && e["process"] == "socat"
    });
    let w = seen
        .iter()
        .find(|e| e["event"] == "watched" && e["process"] == "socat")
        .expect("watched")
        .clone();
    assert_eq!(w["settings_read"], true, "{w}");
    assert_eq!(
        (w["idle_s"].as_u64(), w["cnt"].as_u64()),
        (Some(7200), Some(9))
    );
    // Another process re-tunes socat's socket, then the cable goes.
    let out = Command::new(bin)
        .args(["tune", "--pid", &socat_pid.to_string(), "--json"])
        .args(["--idle", "2", "--intvl", "1", "--cnt", "2"])
        .output()
        .expect("run tune");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    pair.pull_b().expect("pull the cable");
    let conn = w["conn"].clone();
    seen.extend(watch.until(Duration::from_secs(15), "the end", |e| {
        e["event"] == "end" && e["conn"] == conn
    }));
    let status = socat.wait().expect("socat exits");
    let mut stderr = String::new();
    use std::io::Read;
    socat
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("socat's stderr");
    let (socat_at, socat_line) = socat_error(&stderr).expect("socat's error line");
    assert!(
        socat_line.contains("Connection timed out"),
        "socat: {socat_line} ({status})"
    );
    let events: Vec<&Value> = seen.iter().filter(|e| e["conn"] == conn).collect();
    let changed = events
        .iter()
        .find(|e| e["event"] == "config" && !e["changed"].is_null())
        .unwrap_or_else(|| panic!("a config saying the settings changed: {events:#?}"));
    for (field, value) in [("idle_s", 2), ("intvl_s", 1), ("cnt", 2)] {
        assert_eq!(changed[field], value, "{field}: {changed}");
        assert_eq!(changed["sources"][field], "read-back", "{changed}");
    }
    assert_eq!(changed["predicted_detect_s"], 4.0, "{changed}");
    let end = events.iter().find(|e| e["event"] == "end").expect("end");
    assert_eq!(end["outcome"], "timeout", "{end}");
    assert_eq!(end["errno"], "ETIMEDOUT", "{end}");
    assert_eq!(end["certainty"], "certain", "{end}");
    let predicted = end["predicted_detect_s"].as_f64().expect("predicted");
    assert!((predicted - 4.0).abs() < 0.05, "{end}");
    let (end_at, said_at) = end_times(&events);
    assert!(
        (end_at - socat_at).abs() <= 0.150,
        "watch placed the end at {end_at:.3}, socat's read failed at {socat_at:.3}: {events:#?}"
    );
    assert!(
        said_at - socat_at <= 0.500,
        "watch said it at {said_at:.3}, socat's read failed at {socat_at:.3}"
    );
    let late: Vec<&&Value> = events
        .iter()
        .filter(|e| {
            e["event"] == "warning" && e["message"].to_string().contains("after it was due")
        })
        .collect();
    assert!(late.is_empty(), "no false late warning: {late:#?}");
    eprintln!(
        "socat re-tuned: watch's end {:.3}s from socat's ETIMEDOUT (said {:.3}s after it); \
         changed: {}",
        end_at - socat_at,
        said_at - socat_at,
        changed["changed"]
    );
}

/// Node.js (a real runtime): the client connects with keepalive off and calls
/// `setKeepAlive(true, 1000)` 150 ms later, as sshd sets SO_KEEPALIVE about
/// 100 ms after accept. watch sees it in its first moments: it must not judge it
/// "keepalive OFF" nor warn, then follow the owner's change (libuv sets idle 1,
/// intvl 1, cnt 10), and end as Node's own socket error does after the cable pull.
#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs root, network namespaces and node (cargo test --features lab)"
)]
fn lab_node_sets_keepalive_after_connect_and_is_judged_only_then() {
    let Some(pair) = lab("wnod", &["node", "ip"]) else {
        return;
    };
    let bin = common::bin();
    let _peer = Reaped(
        Pair::exec(&pair.b, bin)
            .args(["listen", &format!("{}:7000", pair.addr_b), "--no-keepalive"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start listen"),
    );
    let watch = Proc::spawn_argv(&[
        "ip",
        "netns",
        "exec",
        &pair.a,
        bin,
        "watch",
        "--port",
        "7000",
        "--interval",
        "50ms",
        "--json",
        "--for",
        "30s",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    // Prints the epoch time of its socket's error, then exits.
    let script = format!(
        "const s = require('net').connect(7000, '{}', () => \
         setTimeout(() => s.setKeepAlive(true, 1000), 150)); \
         s.on('data', () => {{}}); \
         s.on('error', e => {{ console.log(e.code, Date.now() / 1000); process.exit(0); }});",
        pair.addr_b
    );
    let node = Pair::exec(&pair.a, "node")
        .args(["-e", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start node");
    let mut node = Reaped(node);
    let mut seen = watch.until(Duration::from_secs(10), "node's socket", |e| {
        e["event"] == "watched" && e["process"] == "node"
    });
    let w = seen.last().expect("watched").clone();
    let conn = w["conn"].clone();
    seen.extend(
        watch.until(Duration::from_secs(5), "the owner's keepalive", |e| {
            e["event"] == "config" && e["conn"] == conn && e["keepalive"] == true
        }),
    );
    std::thread::sleep(Duration::from_millis(300));
    pair.pull_b().expect("pull the cable");
    seen.extend(watch.until(Duration::from_secs(20), "the end", |e| {
        e["event"] == "end" && e["conn"] == conn
    }));
    let mut out = String::new();
    use std::io::Read;
    node.0
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("node's output");
    let events: Vec<&Value> = seen.iter().filter(|e| e["conn"] == conn).collect();
    if w["keepalive"] == false {
        // Seen before the owner set it: held back, not judged.
        assert!(w["settle_s"].is_number(), "{w}");
    }
    for e in &events {
        // A probe the kernel itself sent late (a host starved of CPU) may be
        // warned about; nothing else may be, before or after keepalive went on.
        let late_probe = e["message"].to_string().contains("after it was due");
        assert!(
            e["event"] != "warning" || late_probe,
            "no false warning: {events:#?}"
        );
        assert_ne!(e["path"], "keepalive-off", "not judged off: {events:#?}");
    }
    let config = events
        .iter()
        .find(|e| e["event"] == "config")
        .expect("config");
    for (field, value) in [("idle_s", 1), ("intvl_s", 1), ("cnt", 10)] {
        assert_eq!(config[field], value, "{field}: {config}");
    }
    let mut words = out.split_whitespace();
    assert_eq!(words.next(), Some("ETIMEDOUT"), "node: {out}");
    let node_at: f64 = words.next().and_then(|t| t.parse().ok()).expect("time");
    let end = events.iter().find(|e| e["event"] == "end").expect("end");
    assert_eq!(end["outcome"], "timeout", "{end}");
    assert_eq!(end["certainty"], "certain", "{end}");
    let (end_at, said_at) = end_times(&events);
    assert!(
        (end_at - node_at).abs() <= 0.150,
        "watch placed the end at {end_at:.3}, node's socket failed at {node_at:.3}: {events:#?}"
    );
    assert!(
        said_at - node_at <= 0.500,
        "watch said it at {said_at:.3}, node's socket failed at {node_at:.3}"
    );
    eprintln!(
        "node: watch's end {:.3}s from node's ETIMEDOUT (said {:.3}s after it); joined \
         with keepalive {}",
        end_at - node_at,
        said_at - node_at,
        w["keepalive"]
    );
}
