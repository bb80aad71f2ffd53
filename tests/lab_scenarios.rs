//! `tcpalive lab SCENARIO` and `demo`, run as an unprivileged user: the binary
//! makes its own user + network namespace, so each run's network is private to
//! its process and disappears with it, also when a test fails.
//!
//! Run as root, each test drops to nobody with `setpriv` (util-linux) so the
//! unprivileged path is the one tested; run as anyone else, the binary is already
//! unprivileged. Like every lab test these run only with the `lab` feature
//! (`cargo test --features lab`, as .ci/run does): without it they are reported as
//! ignored, never as passed; with it, a lab that cannot run (no user namespaces,
//! no setpriv, nobody cannot execute the binary) is a failure that says why.
//!
//! Every scenario asserts the outcome, the exit code and, where the model states
//! one, a detection within 150 ms of the prediction.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::{bin, count, end_of, names};

/// How far the measured detection may be from the prediction.
const TOLERANCE_S: f64 = 0.150;
const UNAVAILABLE: &str = "the lab cannot create its private network";

/// The lab was asked for (the `lab` feature) and cannot run: a failure.
fn skip(what: &str, reason: &str) -> Option<Run> {
    panic!("lab {what} cannot run: {reason}");
}

struct Run {
    code: i32,
    events: Vec<Value>,
    stderr: String,
}

/// Whether others (nobody) may execute `path`: o+x on the file and on every
/// directory above it.
fn others_can_execute(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.ancestors().all(|p| {
        p.as_os_str().is_empty()
            || std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
    })
}

/// A copy of the binary nobody may execute, in a directory of its own, removed
/// when dropped (also when the test fails).
struct Copy(PathBuf);

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The command that runs tcpalive unprivileged: via setpriv as nobody when root.
/// A checkout nobody cannot reach (under /root, say) is run from a copy.
fn unprivileged(what: &str) -> (Command, Option<Copy>) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return (Command::new(bin()), None);
    }
    let built = PathBuf::from(bin());
    let (path, copy) = if others_can_execute(&built) {
        (built, None)
    } else {
        use std::os::unix::fs::PermissionsExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "tcpalive-labbin-{}-{what}-{nanos}",
            std::process::id()
        ));
        let path = dir.join("tcpalive");
        let guard = Copy(dir.clone());
        std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)))
            .and_then(|_| std::fs::copy(&built, &path))
            .and_then(|_| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)))
            .unwrap_or_else(|e| {
                panic!(
                    "cannot copy the binary for nobody to {}: {e}",
                    dir.display()
                )
            });
        (path, Some(guard))
    };
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(path);
    (cmd, copy)
}

/// Runs `tcpalive ARGS` (JSON expected on stdout) as an unprivileged user.
fn run_as_nobody(what: &str, args: &[&str]) -> Option<Run> {
    let (mut cmd, _copy) = unprivileged(what);
    let out = match cmd.args(args).output() {
        Ok(o) => o,
        Err(e) => return skip(what, &format!("cannot run setpriv (util-linux): {e}")),
    };
    let code = out.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // setpriv: 126/127 when nobody cannot execute the binary or setpriv fails.
    if code == 126 || code == 127 || stderr.starts_with("setpriv:") {
        return skip(what, stderr.trim());
    }
    if code == 1 && stderr.contains(UNAVAILABLE) {
        return skip(what, stderr.trim());
    }
    eprintln!("--- lab {what} (exit {code})\n{stderr}{stdout}");
    let events = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    Some(Run {
        code,
        events,
        stderr,
    })
}

fn lab(scenario: &str, extra: &[&str]) -> Option<Run> {
    let mut args = vec!["lab", scenario, "--json"];
    args.extend_from_slice(extra);
    run_as_nobody(scenario, &args)
}

fn f64_of(v: &Value, field: &str) -> f64 {
    v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} missing in {v}"))
}

/// The connector's (conn 1) events only.
fn conn1(events: &[Value]) -> Vec<Value> {
    events.iter().filter(|e| e["conn"] == 1).cloned().collect()
}

/// Index of the `fault` event; every scenario but `alive` has one.
fn fault_index(events: &[Value]) -> usize {
    events
        .iter()
        .position(|e| e["event"] == "fault")
        .unwrap_or_else(|| panic!("no fault event: {:?}", names(events)))
}

/// Asserts outcome, errno, exit code and detection within the tolerance.
fn assert_end(run: &Run, outcome: &str, errno: Option<&str>, code: i32) -> (f64, f64) {
    let end = end_of(&run.events);
    assert_eq!(end["conn"], 1, "{end}");
    assert_eq!(end["outcome"], outcome, "{end}\n{}", run.stderr);
    match errno {
        Some(e) => assert_eq!(end["errno"], e, "{end}"),
        None => assert!(end["errno"].is_null(), "{end}"),
    }
    assert_eq!(end["exit_code"], code, "{end}");
    assert_eq!(run.code, code, "{end}");
    let detect = f64_of(end, "detect_s");
    let predicted = f64_of(end, "predicted_detect_s");
    assert!(
        (detect - predicted).abs() <= TOLERANCE_S,
        "detected {detect:.3}s, predicted {predicted:.3}s: more than {TOLERANCE_S}s apart"
    );
    (detect, predicted)
}

/// The default fault comes just after the first answered probe.
fn assert_fault_after_first_answer(events: &[Value]) -> usize {
    let fault = fault_index(events);
    let first_ack = events
        .iter()
        .position(|e| e["event"] == "probe-acked")
        .expect("a probe was answered");
    assert!(first_ack < fault, "{:?}", names(events));
    let gap = f64_of(&events[fault], "t") - f64_of(&events[first_ack], "t");
    assert!(gap < 0.05, "fault {gap:.3}s after the answer");
    fault
}

#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs user and network namespaces (cargo test --features lab)"
)]
fn cable_pull_times_out_at_idle_plus_cnt_intervals() {
    let Some(run) = lab("cable-pull", &[]) else {
        return;
    };
    let ev = conn1(&run.events);
    assert_eq!(ev[0]["event"], "scenario", "{:?}", names(&ev));
    let (_, predicted) = assert_end(&run, "timeout", Some("ETIMEDOUT"), 6);
    assert_eq!(predicted, 4.0);
    let fault = assert_fault_after_first_answer(&ev);
    // After the fault: three unanswered probes, none acked. The third goes out
    // one intvl before the end; an observer starved by a loaded machine may see
    // the connection die before it samples that probe, so 2 is accepted (the
    // detection time above is what proves the schedule).
    let after = &ev[fault..];
    assert!(
        (2..=3).contains(&count(after, "probe")),
        "{:?}",
        names(after)
    );
    assert_eq!(count(after, "probe-acked"), 0, "{:?}", names(after));
}

#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs user and network namespaces (cargo test --features lab)"
)]
fn flap_shorter_than_cnt_intervals_is_survived() {
    let Some(run) = lab("flap", &[]) else {
        return;
    };
    let end = end_of(&run.events);
    assert_eq!(end["outcome"], "alive", "{end}");
    assert_eq!(run.code, 0);
    let ev = conn1(&run.events);
    let down = assert_fault_after_first_answer(&ev);
    let up = down
        + 1
        + ev[down + 1..]
            .iter()
            .position(|e| e["event"] == "fault")
            .expect("the link comes back");
    let link_down = f64_of(&ev[up], "t") - f64_of(&ev[down], "t");
    assert!(
        (1.49..1.6).contains(&link_down),
        "link down {link_down:.3}s"
    );
    // While down: a probe, unanswered. After: the next probe is answered, and it
    // is not the first of its window (the kernel kept counting).
    assert!(count(&ev[down..up], "probe") >= 1, "{:?}", names(&ev));
    assert_eq!(count(&ev[down..up], "probe-acked"), 0, "{:?}", names(&ev));
    let acked = ev[up..]
        .iter()
        .find(|e| e["event"] == "probe-acked")
        .expect("a probe answered after the flap");
    assert!(acked["n"].as_u64() >= Some(2), "{acked}");
}

#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs user and network namespaces (cargo test --features lab)"
)]
fn reboot_meets_a_reset_at_the_next_probe() {
    let Some(run) = lab("reboot", &[]) else {
        return;
    };
    let (_, predicted) = assert_end(&run, "reset", Some("ECONNRESET"), 5);
    // The next probe is intvl (1 s) after the answered one.
    assert!((predicted - 1.0).abs() < 0.05, "predicted {predicted}");
    let ev = conn1(&run.events);
    let fault = assert_fault_after_first_answer(&ev);
    // The probe that met the RST, when a sample caught it before the reset.
    assert!(count(&ev[fault..], "probe") <= 1, "{:?}", names(&ev));
}

#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs user and network namespaces (cargo test --features lab)"
)]
fn exits_ends_with_eof_at_the_fault() {
    let Some(run) = lab("exits", &[]) else {
        return;
    };
    assert_end(&run, "eof", None, 4);
    assert_fault_after_first_answer(&conn1(&run.events));
}

#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs user and network namespaces (cargo test --features lab)"
)]
fn aborts_ends_with_a_reset_at_the_fault() {
    let Some(run) = lab("aborts", &[]) else {
        return;
    };
    assert_end(&run, "reset", Some("ECONNRESET"), 5);
    assert_fault_after_first_answer(&conn1(&run.events));
}

#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs user and network namespaces (cargo test --features lab)"
)]
fn hung_is_caught_by_the_heartbeat_only() {
    let Some(run) = lab("hung", &[]) else {
        return;
    };
    let (_, predicted) = assert_end(&run, "heartbeat-timeout", None, 8);
    // Heartbeat every 1 s, timeout 3 x 1 s, from the last reply.
    assert_eq!(predicted, 4.0);
    let ev = conn1(&run.events);
    let fault = fault_index(&ev);
    assert!(count(&ev[..fault], "heartbeat-reply") >= 1);
    assert_eq!(count(&ev[fault..], "heartbeat-reply"), 0);
    let end = end_of(&run.events);
    let message = end["message"].as_str().unwrap_or("");
    assert!(message.contains("kernel still acknowledges"), "{message}");
}

#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs user and network namespaces (cargo test --features lab)"
)]
fn busy_ends_at_the_user_timeout_after_the_first_retransmission() {
    let Some(run) = lab("busy", &[]) else {
        return;
    };
    let ev = conn1(&run.events);
    let config = ev.iter().find(|e| e["event"] == "config").expect("config");
    assert_eq!(config["user_timeout_ms"], 3000);
    assert_end(&run, "timeout", Some("ETIMEDOUT"), 6);
    let fault = assert_fault_after_first_answer(&ev);
    assert!(count(&ev[fault..], "retransmit") >= 2, "{:?}", names(&ev));
}

/// The zero-window path (the model's window-probe schedule): the peer's kernel
/// answers every window probe, and the user timeout, counted from the first
/// window probe, aborts the connection anyway.
#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs user and network namespaces (cargo test --features lab)"
)]
fn not_reading_is_aborted_by_the_user_timeout() {
    let Some(run) = lab("not-reading", &[]) else {
        return;
    };
    assert_end(&run, "timeout", Some("ETIMEDOUT"), 6);
    let ev = conn1(&run.events);
    let fault = assert_fault_after_first_answer(&ev);
    let after = &ev[fault..];
    assert_eq!(count(after, "zero-window"), 1, "{:?}", names(after));
    assert!(
        count(after, "window-probe-acked") >= 1,
        "{:?}",
        names(after)
    );
    // Ended by the user timeout (3 s) after the first window probe.
    let end = end_of(&run.events);
    let first = after
        .iter()
        .find(|e| e["event"] == "window-probe")
        .expect("a window probe");
    let ended = f64_of(end, "t") - f64_of(first, "t");
    assert!(
        (2.9..3.3).contains(&ended),
        "ended {ended:.3}s after the first window probe"
    );
}

#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs user and network namespaces (cargo test --features lab)"
)]
fn alive_answers_every_probe() {
    let Some(run) = lab("alive", &[]) else {
        return;
    };
    let end = end_of(&run.events);
    assert_eq!(end["outcome"], "alive", "{end}");
    assert_eq!(run.code, 0);
    assert!(
        count(&run.events, "probe-acked") >= 3,
        "{:?}",
        names(&run.events)
    );
    assert_eq!(count(&run.events, "fault"), 0);
}

#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs user and network namespaces (cargo test --features lab)"
)]
fn expect_and_within_judge_the_lab_like_connect() {
    let Some(run) = lab(
        "cable-pull",
        &["--expect", "timeout", "--within", "3.85s..4.15s"],
    ) else {
        return;
    };
    assert_eq!(run.code, 0, "{}", end_of(&run.events));
    assert_eq!(end_of(&run.events)["expect_met"], true);
    let Some(run) = lab("exits", &["--expect", "reset"]) else {
        return;
    };
    assert_eq!(run.code, 9);
    assert!(
        run.stderr.contains("expected reset, got eof"),
        "{}",
        run.stderr
    );
}

#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs user and network namespaces (cargo test --features lab)"
)]
fn fault_at_overrides_the_trigger() {
    let Some(run) = lab("aborts", &["--fault-at", "2500ms"]) else {
        return;
    };
    assert_end(&run, "reset", Some("ECONNRESET"), 5);
    let ev = conn1(&run.events);
    let fault = fault_index(&ev);
    let t = f64_of(&ev[fault], "t");
    assert!((2.5..2.6).contains(&t), "fault at {t}");
    // Two probes went out before the fault and both were answered (an answer may
    // be sampled just after the fault when its probe was caught in flight).
    assert!(count(&ev[..fault], "probe") >= 2, "{:?}", names(&ev));
    assert!(count(&ev, "probe-acked") >= 2, "{:?}", names(&ev));
}

#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs user and network namespaces (cargo test --features lab)"
)]
fn both_shows_the_peer_timeline_tagged_conn_2() {
    let Some(run) = lab("exits", &["--both"]) else {
        return;
    };
    let peer: Vec<&Value> = run.events.iter().filter(|e| e["conn"] == 2).collect();
    assert!(
        peer.iter().any(|e| e["event"] == "connected"),
        "{:?}",
        names(&run.events)
    );
    assert!(peer.iter().any(|e| e["event"] == "end"), "{peer:?}");
    // The last line is still the connection under test's end.
    assert_eq!(end_of(&run.events)["conn"], 1);
    assert_eq!(run.code, 4);
}

#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs user and network namespaces (cargo test --features lab)"
)]
fn demo_tours_answered_then_unanswered_probes_and_exits_0() {
    let Some(run) = run_as_nobody("demo", &["demo", "--json"]) else {
        return;
    };
    assert_eq!(run.code, 0, "{}", run.stderr);
    let end = end_of(&run.events);
    assert_eq!(end["outcome"], "timeout");
    assert_eq!(end["expect_met"], true);
    let fault = fault_index(&run.events);
    assert!(count(&run.events[..fault], "probe-acked") >= 2);
    assert_eq!(count(&run.events[fault..], "probe"), 3);
    assert_eq!(count(&run.events[fault..], "probe-acked"), 0);
}

#[test]
fn lab_list_names_every_scenario_without_a_namespace() {
    let out = Command::new(bin())
        .args(["lab", "list", "--json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let names: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["scenario"].to_string())
        .collect();
    for s in [
        "alive",
        "cable-pull",
        "flap",
        "reboot",
        "exits",
        "aborts",
        "hung",
        "not-reading",
        "busy",
    ] {
        assert!(
            names.contains(&format!("\"{s}\"")),
            "{s} missing: {names:?}"
        );
    }
}

#[test]
fn unknown_scenario_is_a_usage_error() {
    let out = Command::new(bin())
        .args(["lab", "cable-cut"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid SCENARIO 'cable-cut'"), "{err}");
    assert!(err.contains("cable-pull"), "{err}");
}

/// A namespace limit set to 0 inside a throw-away user namespace (the host's
/// sysctls are not touched): the error names the sysctl and exits 1.
#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs user and network namespaces (cargo test --features lab)"
)]
fn a_forbidding_sysctl_is_named() {
    let script = format!(
        "echo 0 > /proc/sys/user/max_net_namespaces && exec {} lab cable-pull",
        bin()
    );
    let out = match Command::new("unshare")
        .args(["--user", "--map-root-user", "sh", "-c", &script])
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            skip(
                "sysctl error",
                &format!("cannot run unshare (util-linux): {e}"),
            );
            return;
        }
    };
    let err = String::from_utf8_lossy(&out.stderr);
    if err.starts_with("unshare:") || err.contains("sh:") {
        skip("sysctl error", err.trim());
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(UNAVAILABLE), "{err}");
    assert!(err.contains("user.max_net_namespaces is 0"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

/// Root skips the user namespace (a network namespace is enough): the same run
/// works without setpriv. Like tests/lab.rs, this one needs root.
#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs root and network namespaces (cargo test --features lab)"
)]
fn as_root_the_lab_needs_only_a_network_namespace() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return common::lab_skipped(
            "lab_scenarios",
            "the lab as root",
            "not root (root needs only a network namespace)",
        );
    }
    let out = Command::new(bin())
        .args(["lab", "aborts", "--json"])
        .output()
        .expect("run tcpalive");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}{stdout}");
    let end: Value = serde_json::from_str(stdout.lines().last().expect("end")).expect("JSON");
    assert_eq!(end["outcome"], "reset");
}
