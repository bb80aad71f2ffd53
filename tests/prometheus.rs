//! `watch --metrics` scraped by a real Prometheus server (the Debian package), and
//! `watch --metrics-file` read by a real node_exporter textfile collector.
//!
//! The servers run on loopback only, with a configuration that has one scrape
//! target and nothing else: no rule files, no alerting, no remote write. The test
//! checks through Prometheus' HTTP query API that the series appear with the values
//! the settings predict, and that the ends it counts are the ends watch reported on
//! its own timeline. A missing server binary is reported as SKIPPED on stderr;
//! under `TCPALIVE_REQUIRE_TOOLCHAINS=1` (set by .ci/run) it is a failure.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{Proc, Reaped, bin};

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "tcpalive-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn required() -> bool {
    std::env::var("TCPALIVE_REQUIRE_TOOLCHAINS").is_ok_and(|v| v == "1")
}

/// Whether `tool` is installed; when not, SKIPPED on stderr or a failure.
fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if required() {
            panic!(
                "{tool} is not installed and TCPALIVE_REQUIRE_TOOLCHAINS=1 (.ci/run installs it)"
            );
        }
        let _ = writeln!(std::io::stderr(), "SKIPPED: {tool} is not installed");
    }
    found
}

/// A loopback port nobody listens on now (the kernel's pick, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `net.ipv4.ip_local_port_range`: ports inside it are labelled `ephemeral`.
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let v: Vec<u16> = s
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() == 2).then(|| (v[0], v[1]))
        })
        .unwrap_or((32768, 60999))
}

/// `tcpalive listen` on a port below the ephemeral range (so the metrics name it),
/// trying ports until one is free.
fn listen_on_service_port(args: &[&str]) -> (Proc, u16) {
    let (lo, _) = ephemeral_range();
    let base = 20000u32.min(u32::from(lo).saturating_sub(2000));
    for i in 0..200u32 {
        let port = (base + (std::process::id() * 7 + i * 13) % 1900) as u16;
        let addr = format!("127.0.0.1:{port}");
        let mut all = vec!["listen", addr.as_str(), "--json"];
        all.extend_from_slice(args);
        let listener = Proc::spawn(&all);
        match listener.recv(Duration::from_secs(10)) {
            Some(first) if first["event"] == "listening" => return (listener, port),
            _ => drop(listener),
        }
    }
    panic!("no free service port for listen");
}

/// Starts `watch ... --metrics 127.0.0.1:0` and reads the port it serves on.
fn watch_with_metrics(args: &[&str]) -> (Proc, u16) {
    let mut all = vec![
        "watch",
        "--json",
        "--interval",
        "100ms",
        "--metrics",
        "127.0.0.1:0",
    ];
    all.extend_from_slice(args);
    let watch = Proc::spawn(&all);
    let line = watch.stderr_line(Duration::from_secs(10), "where watch serves", |l| {
        l.trim().ends_with("/metrics")
    });
    let port = line
        .trim()
        .strip_suffix("/metrics")
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("watch did not say where it serves: {line:?}"));
    (watch, port)
}

/// A plain HTTP/1.0 GET on loopback (no chunked encoding to undo); the body.
fn http_get(port: u16, target: &str, accept: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {target} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).map_err(|e| e.to_string())?;
    let (head, body) = reply.split_once("\r\n\r\n").ok_or("no HTTP head")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!("{head}\n{body}"));
    }
    Ok(body.to_string())
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An instant query through Prometheus' HTTP API: (labels, value) per series.
fn query(prom: u16, q: &str) -> Vec<(Value, f64)> {
    let body = match http_get(
        prom,
        &format!("/api/v1/query?query={}", percent_encode(q)),
        "*/*",
    ) {
        Ok(b) => b,
        Err(_) => return Vec::new(),
    };
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
    assert_eq!(v["status"], "success", "{body}");
    v["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let value = r["value"][1].as_str().unwrap_or("NaN");
            let value = match value {
                "+Inf" => f64::INFINITY,
                other => other.parse().unwrap_or(f64::NAN),
            };
            (r["metric"].clone(), value)
        })
        .collect()
}

/// Polls a query until `ok` holds (Prometheus scrapes every 500 ms); the last
/// answer, or a failure naming what was seen.
fn until(
    prom: u16,
    q: &str,
    what: &str,
    ok: impl Fn(&[(Value, f64)]) -> bool,
) -> Vec<(Value, f64)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = query(prom, q);
        if ok(&r) {
            return r;
        }
        if Instant::now() > deadline {
            panic!("{what}: query {q} gave {r:?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn single(r: &[(Value, f64)]) -> Option<f64> {
    (r.len() == 1).then(|| r[0].1)
}

fn start_prometheus(dir: &Path, target_port: u16) -> (Reaped, u16) {
    let web = free_port();
    // One target on loopback; no rule_files, alerting or remote_write sections, so
    // Prometheus sends nothing anywhere but to that target.
    let config = format!(
        "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\n  evaluation_interval: 1h\n\
         scrape_configs:\n  - job_name: tcpalive\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
    );
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).expect("write prometheus.yml");
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    let child = Reaped(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(web, "/-/ready", "*/*").is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
            panic!("prometheus did not become ready:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    (child, web)
}

#[test]
fn prometheus_scrapes_watch_and_sees_the_predicted_values() {
    if !have("prometheus") {
        return;
    }
    let dir = TempDir::new("prom");
    // Accepted sockets: idle 1 + 3 x intvl 1 = 4 s.
    let (_listener, port) =
        listen_on_service_port(&["--idle", "1", "--intvl", "1", "--cnt", "3", "--for", "60"]);
    let (watch, metrics_port) = watch_with_metrics(&["--port", &port.to_string(), "--for", "60"]);
    let target = format!("127.0.0.1:{port}");
    // A client with idle 2 + 3 x intvl 1 = 5 s that stays, and one without
    // keepalive (never detects) that is stopped (SIGTERM) once both were seen.
    let (_prometheus, prom) = start_prometheus(&dir.0, metrics_port);
    let _stays = Proc::spawn(&[
        "connect", &target, "--json", "--idle", "2", "--intvl", "1", "--cnt", "3", "--for", "60",
    ]);
    let mut leaves = Proc::spawn(&[
        "connect",
        &target,
        "--json",
        "--no-keepalive",
        "--for",
        "60",
    ]);
    let p = port.to_string();

    // Nothing but our one target (once discovery has run), and no alertmanager.
    let deadline = Instant::now() + Duration::from_secs(30);
    let targets = loop {
        let targets = http_get(prom, "/api/v1/targets", "*/*").expect("targets");
        let targets: Value = serde_json::from_str(&targets).expect("targets JSON");
        let n = targets["data"]["activeTargets"]
            .as_array()
            .map_or(0, Vec::len);
        if n > 0 || Instant::now() > deadline {
            break targets;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let active = targets["data"]["activeTargets"]
        .as_array()
        .expect("active targets");
    assert_eq!(active.len(), 1, "{targets}");
    assert_eq!(
        active[0]["scrapeUrl"],
        format!("http://127.0.0.1:{metrics_port}/metrics")
    );
    let am = http_get(prom, "/api/v1/alertmanagers", "*/*").expect("alertmanagers");
    let am: Value = serde_json::from_str(&am).expect("alertmanagers JSON");
    assert_eq!(
        am["data"]["activeAlertmanagers"],
        Value::Array(vec![]),
        "{am}"
    );

    // While all three are up: the listener's two accepted sockets, the client with
    // keepalive, the client without.
    let q = format!("sum by (keepalive) (tcpalive_connections{{local_port=\"{p}\"}})");
    until(prom, &q, "two accepted sockets with keepalive on", |r| {
        r.len() == 1 && r[0].0["keepalive"] == "on" && r[0].1 == 2.0
    });
    let q = format!("tcpalive_connections{{peer_port=\"{p}\",keepalive=\"off\"}}");
    let r = until(prom, &q, "the client without keepalive", |r| {
        single(r) == Some(1.0)
    });
    assert_eq!(r[0].0["local_port"], "ephemeral", "{r:?}");
    assert_eq!(r[0].0["process"], "tcpalive", "{r:?}");
    // Root reads every setting exactly through pidfd_getfd.
    if nix_is_root() {
        assert_eq!(r[0].0["settings_source"], "read-back", "{r:?}");
    }
    let q = format!("tcpalive_predicted_detect_seconds{{local_port=\"{p}\"}}");
    until(prom, &q, "accepted sockets predict 4 s", |r| {
        single(r) == Some(4.0)
    });
    let q = format!("tcpalive_predicted_detect_seconds{{peer_port=\"{p}\",keepalive=\"on\"}}");
    until(prom, &q, "the keepalive client predicts 5 s", |r| {
        single(r) == Some(5.0)
    });
    let q = format!("tcpalive_predicted_detect_seconds{{peer_port=\"{p}\",keepalive=\"off\"}}");
    until(prom, &q, "no keepalive never detects", |r| {
        single(r).is_some_and(f64::is_infinite)
    });
    // Probes every second on the accepted sockets (idle 1).
    let q = format!("tcpalive_keepalive_probes_total{{local_port=\"{p}\"}}");
    until(prom, &q, "probes counted", |r| {
        single(r).is_some_and(|v| v >= 2.0)
    });

    // The short client leaves: its two sockets end, and the gauges follow.
    leaves.signal(libc::SIGTERM);
    let status = leaves.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(143), "SIGTERM's exit code");
    let q = format!("sum(tcpalive_connections{{local_port=\"{p}\"}})");
    until(prom, &q, "one accepted socket left", |r| {
        single(r) == Some(1.0)
    });
    let q = format!("tcpalive_connections{{peer_port=\"{p}\",keepalive=\"off\"}}");
    until(
        prom,
        &q,
        "the series of the client that left goes stale",
        |r| r.is_empty(),
    );

    // Prometheus counts the ends watch reported on its timeline, by outcome.
    let q = "sum by (outcome) (tcpalive_connection_ends_total)";
    let r = until(prom, q, "two ends", |r| {
        r.iter().map(|x| x.1).sum::<f64>() == 2.0
    });
    let mut seen: Vec<(String, f64)> = r
        .iter()
        .map(|(m, v)| (m["outcome"].as_str().unwrap_or("").to_string(), *v))
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    let mut reported: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while reported.len() < 2 && Instant::now() < deadline {
        if let Some(v) = watch.recv(Duration::from_millis(200))
            && v["event"] == "end"
            && v["conn"] != 0
        {
            reported.push(v["outcome"].as_str().unwrap_or("").to_string());
        }
    }
    let mut counted: Vec<(String, f64)> = Vec::new();
    for o in reported {
        match counted.iter_mut().find(|(n, _)| *n == o) {
            Some(c) => c.1 += 1.0,
            None => counted.push((o, 1.0)),
        }
    }
    counted.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen, counted,
        "Prometheus' ends against watch's own end events"
    );

    drop(watch);
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

#[test]
fn plain_scrapers_get_the_text_format_and_node_exporter_reads_the_textfile() {
    if !have("prometheus-node-exporter") {
        return;
    }
    let dir = TempDir::new("textfile");
    let (_listener, port) =
        listen_on_service_port(&["--idle", "1", "--intvl", "1", "--cnt", "3", "--for", "30"]);
    let file = dir.0.join("tcpalive.prom");
    let mut watch = Proc::spawn_with(
        Command::new(bin())
            .args([
                "watch",
                "--interval",
                "100ms",
                "--for",
                "30",
                "--port",
                &port.to_string(),
            ])
            .arg("--metrics-file")
            .arg(&file),
    );
    let target = format!("127.0.0.1:{port}");
    let _client = Proc::spawn(&[
        "connect",
        &target,
        "--json",
        "--no-keepalive",
        "--for",
        "30",
    ]);
    let web = free_port();
    let log = std::fs::File::create(dir.0.join("node-exporter.log")).expect("log");
    let _exporter = Reaped(
        Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{web}"))
            .arg("--collector.disable-defaults")
            .arg("--collector.textfile")
            .arg(format!(
                "--collector.textfile.directory={}",
                dir.0.display()
            ))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start node exporter"),
    );
    let p = port.to_string();
    let want = [
        format!(
            "tcpalive_connections{{keepalive=\"off\",local_port=\"ephemeral\",peer_port=\"{p}\""
        ),
        format!(
            "tcpalive_connections{{keepalive=\"on\",local_port=\"{p}\",peer_port=\"ephemeral\""
        ),
        format!("tcpalive_keepalive_probes_total{{local_port=\"{p}\""),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = http_get(web, "/metrics", "text/plain").unwrap_or_default();
        if want.iter().all(|w| text.contains(w.as_str())) {
            break text;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.0.join("node-exporter.log")).unwrap_or_default();
            panic!("node_exporter never showed {want:?}:\n{text}\n{log}");
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        text.contains("\nnode_textfile_scrape_error 0\n"),
        "node_exporter could not read the textfile:\n{text}"
    );
    assert!(
        text.contains("# TYPE tcpalive_keepalive_probes_total counter"),
        "{text}"
    );
    // No temporary file is left where the collector reads.
    let names: Vec<String> = std::fs::read_dir(&dir.0)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(
        names.is_empty() || names.iter().all(|n| n.starts_with('.')),
        "{names:?}"
    );
    // Stopping the watch leaves the file with no connection in it.
    watch.signal(libc::SIGTERM);
    watch.wait(Duration::from_secs(10));
    let last = std::fs::read_to_string(&file).expect("textfile");
    assert!(!last.contains("tcpalive_connections{"), "{last}");
    assert!(
        last.contains("# TYPE tcpalive_keepalive_probes_total counter"),
        "counters stay: {last}"
    );
}

/// The exporter's HTTP side on its own: the format follows Accept, other paths
/// are 404, HEAD gets GET's head.
#[test]
fn metrics_endpoint_negotiates_the_format() {
    let (_watch, port) = watch_with_metrics(&["--for", "30", "--port", "1"]);
    let text = http_get(port, "/metrics", "*/*").expect("GET /metrics");
    assert!(
        text.contains("# TYPE tcpalive_label_sets_folded_total counter\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
    let om = http_get(
        port,
        "/metrics",
        "application/openmetrics-text;version=1.0.0",
    )
    .expect("GET /metrics (OpenMetrics)");
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("# TYPE tcpalive_label_sets_folded counter\n"),
        "{om}"
    );
    let missing = http_get(port, "/nope", "*/*").expect_err("404");
    // An HTTP/1.0 request gets an HTTP/1.0 status line.
    assert!(missing.starts_with("HTTP/1.0 404"), "{missing}");
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(s, "HEAD /metrics HTTP/1.0\r\n\r\n").expect("HEAD");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("read");
    let (head, body) = reply.split_once("\r\n\r\n").expect("head");
    assert!(body.is_empty(), "{reply}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {}", text.len())),
        "{head} vs a {} byte body",
        text.len()
    );
}
