//! `watch` and this host's conntrack, in the lab: namespace a tracks its own
//! connections (an nftables `ct state invalid drop` rule in input and output,
//! `nf_conntrack_tcp_loose` 0) with `nf_conntrack_tcp_timeout_established`
//! lowered to 6 s; `tcpalive listen` runs in namespace b. Two connections from a:
//! one whose keepalive idle (20 s) exceeds the entry's timeout, one whose
//! keepalive (idle 2 s) refreshes it. `watch` in a shows each entry's timeout and
//! warns for the first only. Then the warning is proved: both send at 10 s; the
//! first connection's entry expired at 6 s, so its send is INVALID and dropped
//! without a trace (no reset, no answer) and it ends in its user timeout, while
//! the second one, kept tracked by its probes, stays alive.

mod common;

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use common::netns::Pair;
use common::{Proc, bin};

const CT_TIMEOUT_S: u64 = 6;

fn sh_in(ns: &str, args: &[&str], input: Option<&str>) -> Result<(), String> {
    let mut cmd = Pair::exec(ns, args[0]);
    cmd.args(&args[1..])
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", args[0]))?;
    if let Some(text) = input {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .map_err(|e| format!("{}: {e}", args[0]))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Namespace a tracks its connections and drops INVALID packets both ways.
fn track(ns: &str) -> Result<(), String> {
    sh_in(
        ns,
        &["nft", "-f", "-"],
        Some(
            "table inet tca_ct {\n\
             chain in { type filter hook input priority filter; policy accept; ct state invalid drop; }\n\
             chain out { type filter hook output priority filter; policy accept; ct state invalid drop; }\n\
             }\n",
        ),
    )?;
    sh_in(
        ns,
        &[
            "sysctl",
            "-qw",
            &format!("net.netfilter.nf_conntrack_tcp_timeout_established={CT_TIMEOUT_S}"),
            "net.netfilter.nf_conntrack_tcp_loose=0",
        ],
        None,
    )
}

#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs root, network namespaces and nftables (cargo test --features lab)"
)]
fn watch_warns_when_keepalive_outlives_the_conntrack_entry_and_the_entry_expires_silently() {
    let pair = match Pair::new("ct") {
        Ok(p) => p,
        Err(why) => return common::lab_skipped("watch_conntrack", "the conntrack lab", &why),
    };
    if let Err(why) = track(&pair.a) {
        panic!("the lab cannot run: {why}");
    }
    let port = 7000;
    let target = format!("{}:{port}", pair.addr_b);
    let _server = Proc::spawn_with(Pair::exec(&pair.b, bin()).args(["listen", &target, "--json"]));
    // watch in a, before the connections: each joins at the first dump after it.
    let port_s = port.to_string();
    let watch = Proc::spawn_with(Pair::exec(&pair.a, bin()).args([
        "watch",
        "--port",
        &port_s,
        "--interval",
        "200ms",
        "--for",
        "8s",
        "--json",
    ]));
    std::thread::sleep(Duration::from_millis(500));
    let connect = |idle: &str, intvl: &str| {
        Proc::spawn_with(Pair::exec(&pair.a, bin()).args([
            "connect",
            &target,
            "--idle",
            idle,
            "--intvl",
            intvl,
            "--user-timeout",
            "3s",
            "--send-every",
            "10s",
            "--for",
            "17s",
            "--json",
        ]))
    };
    let long = connect("20", "5");
    let short = connect("2", "1");
    let local = |p: &Proc| -> String {
        let seen = p.until(Duration::from_secs(10), "connected", |e| {
            e["event"] == "connected"
        });
        seen.last().unwrap()["local"]
            .as_str()
            .expect("local")
            .to_string()
    };
    let long_local = local(&long);
    let short_local = local(&short);

    let events = watch.until(Duration::from_secs(20), "watch's end", |e| {
        e["event"] == "end" && e["conn"] == 0
    });
    let watched = |local: &str| -> Value {
        events
            .iter()
            .find(|e| e["event"] == "watched" && e["local"] == local)
            .unwrap_or_else(|| panic!("{local} not watched: {events:?}"))
            .clone()
    };
    let warnings = |conn: &Value| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["event"] == "warning" && &e["conn"] == conn)
            .filter_map(|e| e["message"].as_str().map(str::to_string))
            .filter(|m| m.contains("conntrack"))
            .collect()
    };
    let long_w = watched(&long_local);
    let short_w = watched(&short_local);
    for (w, after) in [(&long_w, true), (&short_w, false)] {
        let ct = &w["conntrack"];
        assert_eq!(ct["state"], "ESTABLISHED", "{w}");
        assert_eq!(ct["established_timeout_s"], CT_TIMEOUT_S, "{w}");
        let left = ct["timeout_s"].as_u64().expect("timeout_s");
        assert!(left <= CT_TIMEOUT_S, "{w}");
        assert_eq!(ct["keepalive_after_expiry"], after, "{w}");
        assert_eq!(w["settings_read"], true, "root reads the settings: {w}");
    }
    let long_warn = warnings(&long_w["conn"]);
    assert_eq!(long_warn.len(), 1, "{long_warn:?}");
    assert!(
        long_warn[0].starts_with(&format!(
            "this host's conntrack entry expires {CT_TIMEOUT_S}s after the last packet"
        )) && long_warn[0].contains("keepalive traffic comes every 20s")
            && long_warn[0].contains("nf_conntrack_tcp_loose is 0 here"),
        "{long_warn:?}"
    );
    assert_eq!(warnings(&short_w["conn"]), Vec::<String>::new());

    // The proof: the send at 10 s on the first connection is dropped (its entry
    // expired at 6 s): no answer, no reset, the user timeout ends it. The second
    // one's probes kept its entry: alive until --for.
    let is_end = |e: &Value| e["event"] == "end";
    let long_events = long.until(Duration::from_secs(25), "the end", is_end);
    let long_end = long_events.last().expect("end");
    assert_eq!(long_end["event"], "end", "{long_events:?}");
    assert_eq!(long_end["outcome"], "timeout", "{long_end}");
    assert_eq!(long_end["errno"], "ETIMEDOUT", "{long_end}");
    let t = long_end["t"].as_f64().expect("t");
    assert!(
        (13.0..15.5).contains(&t),
        "ended {t}s in: the 10 s send plus the 3 s user timeout: {long_end}"
    );
    assert!(
        !long_events.iter().any(|e| e["event"] == "data"),
        "nothing came back after the entry expired: {long_events:?}"
    );
    let short_events = short.until(Duration::from_secs(25), "the end", is_end);
    let short_end = short_events.last().expect("end");
    assert_eq!(short_end["outcome"], "alive", "{short_events:?}");
}
