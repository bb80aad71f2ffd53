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
    assert!(
        std::env::var("TCPALIVE_REQUIRE_LAB").as_deref() != Ok("1"),
        "the {tag} lab cannot run: {why} (TCPALIVE_REQUIRE_LAB=1)"
    );
    eprintln!("SKIPPED: the {tag} lab: {why}");
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
    let end_at = epoch_of(end["time"].as_str().expect("time"));
    assert!(
        (end_at - socat_at).abs() <= 0.150,
        "watch ended at {end_at:.3}, socat's read failed at {socat_at:.3}: {events:#?}"
    );
    let late: Vec<&&Value> = events
        .iter()
        .filter(|e| {
            e["event"] == "warning" && e["message"].to_string().contains("after it was due")
        })
        .collect();
    assert!(late.is_empty(), "no false late warning: {late:#?}");
    eprintln!(
        "socat re-tuned: watch's end {:.3}s from socat's ETIMEDOUT; changed: {}",
        end_at - socat_at,
        changed["changed"]
    );
}
