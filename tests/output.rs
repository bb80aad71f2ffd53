//! The output path under a burst (issue 27): `watch --json` joining 50,000
//! connections at once, written to a file and to a pipe whose reader is slow
//! but steady, loses no event. Before, the 1 MiB queue in front of stdout
//! filled faster than the writer drained it and the policy meant for a stuck
//! reader (drop and count) threw `watched` lines away ("stdout is not being
//! read: 4190 event(s) were dropped"). The connections are made by this test
//! inside a network namespace of its own (loopback only), which is removed on
//! drop, also when the test fails.

mod common;

use std::collections::HashSet;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::bin;

/// Sockets watch joins: both ends of SOCKETS / 2 loopback connections.
const SOCKETS: usize = 50_000;
/// Listening ports the connections spread over (each its own 4-tuple space).
const PORTS: usize = 8;

fn require_lab() -> bool {
    std::env::var("TCPALIVE_REQUIRE_LAB").is_ok_and(|v| v == "1")
}

fn skip(what: &str, why: &str) {
    if require_lab() {
        panic!("{what}: {why} (TCPALIVE_REQUIRE_LAB=1)");
    }
    eprintln!("SKIPPED {what}: {why}");
}

/// A network namespace of this test's own, removed on drop.
struct Namespace(String);

impl Namespace {
    fn new() -> Result<Namespace, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root (network namespaces need root)".into());
        }
        let name = format!("tca-out-{}", std::process::id());
        common::netns::ip(&["netns", "add", &name])?;
        let ns = Namespace(name);
        common::netns::ip(&["-n", &ns.0, "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = common::netns::ip(&["netns", "del", &self.0]);
    }
}

/// Raises this process's descriptor limit (both ends of every connection).
fn raise_nofile(limit: u64) -> Result<(), String> {
    let lim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: setrlimit reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(format!(
            "cannot raise RLIMIT_NOFILE to {limit}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Both ends of `SOCKETS / 2` established connections on the namespace's
/// loopback, made by a thread that entered it (setns moves only that thread;
/// the sockets stay in the namespace they were made in).
fn connections(ns: &Namespace) -> Result<(Vec<TcpListener>, Vec<TcpStream>), String> {
    let path = format!("/run/netns/{}", ns.0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let netns = std::fs::File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
            // SAFETY: setns on a descriptor we own, for this thread only.
            if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
            }
            let listeners: Vec<TcpListener> = (0..PORTS)
                .map(|_| TcpListener::bind("127.0.0.1:0"))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("bind: {e}"))?;
            let addrs: Vec<SocketAddr> = listeners
                .iter()
                .map(|l| l.local_addr().map_err(|e| format!("local_addr: {e}")))
                .collect::<Result<_, _>>()?;
            let mut socks = Vec::with_capacity(SOCKETS);
            for k in 0..SOCKETS / 2 {
                let c = TcpStream::connect(addrs[k % PORTS])
                    .map_err(|e| format!("connection {k}: {e}"))?;
                let (a, _) = listeners[k % PORTS]
                    .accept()
                    .map_err(|e| format!("accept {k}: {e}"))?;
                socks.push(c);
                socks.push(a);
            }
            Ok((listeners, socks))
        })
        .join()
        .map_err(|_| "the connecting thread panicked".to_string())?
    })
}

/// `watch --json --for 1s` in the namespace, stdout to `stdout`.
fn watch(ns: &Namespace, stdout: Stdio) -> std::process::Child {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            bin(),
            "watch",
            "--json",
            "--for",
            "1s",
        ])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watch")
}

/// Every socket has its `watched` line and its `end`, nothing was dropped,
/// and the run's end is the last line.
fn check(how: &str, text: &str, socks: &[TcpStream]) {
    let mut watched = HashSet::new();
    let mut ended = HashSet::new();
    let mut last = Value::Null;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{how}: invalid JSON line ({e}): {line:?}"));
        match v["event"].as_str() {
            Some("watched") => {
                watched.insert(format!("{} {}", v["local"], v["peer"]).replace('"', ""));
            }
            Some("end") if v["conn"] != 0 => {
                ended.insert(v["conn"].as_u64());
            }
            Some("warning") => {
                let m = v["message"].as_str().unwrap_or("");
                assert!(!m.contains("dropped"), "{how}: {m}");
            }
            _ => {}
        }
        last = v;
    }
    let missing: Vec<String> = socks
        .iter()
        .filter_map(|s| {
            let key = format!("{} {}", s.local_addr().ok()?, s.peer_addr().ok()?);
            (!watched.contains(&key)).then_some(key)
        })
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && watched.len() == SOCKETS,
        "{how}: {} `watched` lines for {SOCKETS} sockets; missing e.g. {missing:?}",
        watched.len()
    );
    assert_eq!(ended.len(), SOCKETS, "{how}: ends");
    assert_eq!(
        (last["event"].as_str(), last["conn"].as_u64()),
        (Some("end"), Some(0)),
        "{how}: the last line is the run's end"
    );
}

#[test]
fn watch_json_joining_50000_connections_loses_no_event_to_a_file_or_a_steady_reader() {
    let what = "watch --json over 50,000 joining connections";
    let ns = match Namespace::new() {
        Ok(ns) => ns,
        Err(why) => return skip(what, &why),
    };
    if let Err(why) = raise_nofile(SOCKETS as u64 + 10_000) {
        return skip(what, &why);
    }
    let started = Instant::now();
    let (_listeners, socks) = connections(&ns).unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!("{SOCKETS} sockets in {:.1?}", started.elapsed());

    // A regular file never stops being read.
    let path = std::env::temp_dir().join(format!(
        "tcpalive-output-{}-{}.jsonl",
        std::process::id(),
        started.elapsed().as_nanos()
    ));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("create the output file");
    let t = Instant::now();
    let status = watch(&ns, Stdio::from(file)).wait().expect("wait");
    let text = std::fs::read_to_string(&path).expect("read the output file");
    let _ = std::fs::remove_file(&path);
    eprintln!("to a file: {} bytes in {:.1?}", text.len(), t.elapsed());
    assert_eq!(status.code(), Some(0), "watch to a file");
    check("to a file", &text, &socks);

    // A pipe read in 16 KiB steps with a pause after each: slower than watch
    // writes, but never stopped.
    let t = Instant::now();
    let mut child = watch(&ns, Stdio::piped());
    let mut out = child.stdout.take().expect("stdout");
    let mut text = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("read watch's stdout: {e}"),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = child.wait().expect("wait");
    eprintln!(
        "to a slow reader: {} bytes in {:.1?}",
        text.len(),
        t.elapsed()
    );
    assert_eq!(status.code(), Some(0), "watch to a slow reader");
    check(
        "to a slow reader",
        &String::from_utf8(text).expect("UTF-8"),
        &socks,
    );
}
