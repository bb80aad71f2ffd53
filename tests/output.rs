//! The output path under a burst (issue 27): `watch --json` joining 50,000
//! connections at once, written to a file and to a pipe whose reader is slow
//! but steady, loses no event. Before, the 1 MiB queue in front of stdout
//! filled faster than the writer drained it and the policy meant for a stuck
//! reader (drop and count) threw `watched` lines away ("stdout is not being
//! read: 4190 event(s) were dropped"). The connections are made by this test
//! by Python holders inside a network namespace of the test's own (loopback
//! only), which is removed on drop, also when the test fails.

mod common;

use std::collections::HashSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::bin;

/// Sockets watch joins: both ends of SOCKETS / 2 loopback connections.
const SOCKETS: usize = 50_000;

fn skip(what: &str, why: &str) {
    common::lab_skipped("output", what, why);
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

/// Holds both ends of its share of the connections on the namespace's loopback,
/// spread over 8 listening ports (each its own four-tuple space), says how many
/// sockets it holds, and keeps them until its stdin closes.
const HOLDER: &str = r#"
import resource, socket, sys
pairs = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
listeners = []
for i in range(8):
    l = socket.socket()
    l.bind(("127.0.0.1", 0))
    l.listen(4096)
    listeners.append(l)
addrs = [l.getsockname() for l in listeners]
held = []
for k in range(pairs):
    c = socket.create_connection(addrs[k % 8])
    s, _ = listeners[k % 8].accept()
    held += (c, s)
print(len(held), flush=True)
sys.stdin.read()
"#;

/// The descriptor limit a process may raise itself to (a container's hard limit
/// can be far below the sockets needed: the holders split them).
fn hard_nofile() -> u64 {
    // Root may raise it (CAP_SYS_RESOURCE): then one holder does.
    let want = libc::rlimit {
        rlim_cur: SOCKETS as u64 + 1000,
        rlim_max: SOCKETS as u64 + 1000,
    };
    // SAFETY: setrlimit reads the struct it is given; failing changes nothing.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) };
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    lim.rlim_max
}

/// `SOCKETS` sockets (both ends of `SOCKETS / 2` connections) held by as many
/// holder processes as the descriptor limit needs, each in the namespace.
fn connections(ns: &Namespace) -> Result<Vec<common::Reaped>, String> {
    let per = (hard_nofile().saturating_sub(100) / 2).clamp(1, SOCKETS as u64 / 2) as usize;
    let pairs = SOCKETS / 2;
    let count = pairs.div_ceil(per);
    let mut holders = Vec::new();
    for h in 0..count {
        let share = pairs / count + usize::from(h < pairs % count);
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.0, "python3", "-c", HOLDER])
            .arg(share.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run python3 in the namespace: {e}"))?;
        holders.push((common::Reaped(child), share));
    }
    let mut held = Vec::new();
    for (mut holder, share) in holders {
        let mut line = String::new();
        let out = holder.0.stdout.take().ok_or("no stdout")?;
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line)
            .map_err(|e| format!("read a holder: {e}"))?;
        if line.trim() != (2 * share).to_string() {
            return Err(format!(
                "a holder made {:?} sockets of {}",
                line.trim(),
                2 * share
            ));
        }
        held.push(holder);
    }
    Ok(held)
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
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn watch")
}

/// Every socket has its `watched` line and its `end`, nothing was dropped,
/// and the run's end is the last line.
fn check(how: &str, text: &str) {
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
    assert_eq!(
        watched.len(),
        SOCKETS,
        "{how}: `watched` lines for {SOCKETS} sockets"
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
    let started = Instant::now();
    let _holders = connections(&ns).unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!("{SOCKETS} sockets in {:.1?}", started.elapsed());

    // A regular file never stops being read; a pipe is read in 16 KiB steps
    // with a pause after each: slower than watch writes, but never stopped.
    // Both runs at once (the test's time is CI's).
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
    let mut to_file = watch(&ns, Stdio::from(file));
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
    let file_status = to_file.wait().expect("wait");
    let file_text = std::fs::read_to_string(&path).expect("read the output file");
    let _ = std::fs::remove_file(&path);
    eprintln!(
        "{} bytes to a file, {} to a slow reader, in {:.1?}",
        file_text.len(),
        text.len(),
        t.elapsed()
    );
    assert_eq!(file_status.code(), Some(0), "watch to a file");
    check("to a file", &file_text);
    assert_eq!(status.code(), Some(0), "watch to a slow reader");
    check("to a slow reader", &String::from_utf8(text).expect("UTF-8"));
}
