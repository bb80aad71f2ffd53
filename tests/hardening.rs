//! Hardening: tcpalive runs for hours and `listen` faces whatever connects. Each
//! test drives the real binary on loopback (port 0, so tests run in parallel) and
//! asserts on its JSON events and exit code. None needs root.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{Proc, event_is, listen, listening_addr, parse_all, with_nofile};

const BIN: &str = env!("CARGO_BIN_EXE_tcpalive");

/// Sends harmless signals for `dur`: SIGWINCH and SIGCHLD (ignored by default) every
/// millisecond, and every 50 ms a SIGSTOP/SIGCONT pair, which is what makes a blocked
/// epoll_wait(2) or read(2) actually fail with EINTR on Linux even without a handler
/// (signal(7), "Interruption of system calls ... by stop signals").
fn signal_storm(pids: Vec<i32>, dur: Duration) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let end = Instant::now() + dur;
        let (mut sent, mut stops) = (0u64, 0u64);
        let mut i = 0u64;
        while Instant::now() < end {
            for &pid in &pids {
                // SAFETY: kill(2) on pids of our own children.
                unsafe {
                    libc::kill(pid, libc::SIGWINCH);
                    libc::kill(pid, libc::SIGCHLD);
                    if i.is_multiple_of(50) {
                        libc::kill(pid, libc::SIGSTOP);
                    }
                }
                sent += 2;
            }
            if i.is_multiple_of(50) {
                std::thread::sleep(Duration::from_micros(500));
                for &pid in &pids {
                    // SAFETY: as above.
                    unsafe {
                        libc::kill(pid, libc::SIGCONT);
                    }
                }
                stops += 1;
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        (sent, stops)
    })
}

#[test]
fn signal_storm_never_ends_or_misclassifies_the_connection() {
    let (mut server, addr) = listen(&["--idle", "1", "--intvl", "1", "--cnt", "3"]);
    let target = addr.to_string();
    let mut client = Proc::spawn(&[
        "connect", &target, "--json", "--idle", "1", "--intvl", "1", "--cnt", "3", "--for", "4",
    ]);
    client.until(Duration::from_secs(5), "connect's connected", |e| {
        event_is(e, "connected")
    });
    server.until(Duration::from_secs(5), "listen's connected", |e| {
        event_is(e, "connected")
    });

    let storm = signal_storm(
        vec![client.pid(), server.pid()],
        Duration::from_millis(3500),
    );
    let (rest, status) = client.finish(Duration::from_secs(15));
    let (sent, stops) = storm.join().expect("storm");
    assert!(
        sent > 1000 && stops > 20,
        "storm too weak: {sent} signals, {stops} stops"
    );

    let events = parse_all(&rest);
    let end = events.last().expect("an end event");
    assert_eq!(end["event"], "end", "{end}");
    assert_eq!(
        end["outcome"], "alive",
        "the storm ended or misclassified the connection: {end}"
    );
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        events.iter().any(|e| event_is(e, "probe-acked")),
        "no answered probe seen during the storm: {rest:?}"
    );
    // The listening side saw the client leave cleanly, not an error.
    let seen = server.until(Duration::from_secs(5), "listen's end of conn 1", |e| {
        event_is(e, "end") && e["conn"] == 1
    });
    let end = seen.last().expect("end");
    assert_eq!(end["outcome"], "eof", "{end}");
    server.signal(libc::SIGTERM);
    let (_, status) = server.finish(Duration::from_secs(5));
    assert_eq!(status.code(), Some(143));
}

/// `tcpalive ... | head -1`: the pipe closes; the next write fails with EPIPE
/// (Rust ignores SIGPIPE) and tcpalive must stop quietly, exit 0, no panic.
fn assert_ends_quietly_when_stdout_closes(mut cmd: Command, poke: impl FnOnce(&str)) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("first line");
    assert!(!first.is_empty());
    drop(out);
    poke(&first);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running 10 s after stdout closed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err);
    assert!(!err.contains("panicked"), "panic on closed stdout: {err}");
    assert!(err.is_empty(), "expected a quiet exit, stderr: {err}");
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?} (signal {:?})",
        status.signal()
    );
}

#[test]
fn stdout_closed_early_ends_quietly() {
    let (_server, addr) = listen(&[]);
    let target = addr.to_string();
    for json in [false, true] {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "connect", &target, "--idle", "1", "--intvl", "1", "--for", "30",
        ]);
        if json {
            cmd.arg("--json");
        }
        assert_ends_quietly_when_stdout_closes(cmd, |_| {});
    }
    // listen: the first line is `listening`; the next event (a connection) hits the
    // closed pipe.
    let mut cmd = Command::new(BIN);
    cmd.args(["listen", "127.0.0.1:0", "--json"]);
    assert_ends_quietly_when_stdout_closes(cmd, |first| {
        let ev: Value = serde_json::from_str(first).expect("listening event");
        let addr: SocketAddr = ev["local"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("local");
        let _c = TcpStream::connect(addr).expect("connect to listen");
        std::thread::sleep(Duration::from_millis(200));
    });
    // Generated text too.
    let mut cmd = Command::new(BIN);
    cmd.args(["completions", "bash"]);
    assert_ends_quietly_when_stdout_closes(cmd, |_| {});
}

#[test]
fn listen_under_emfile_keeps_serving_reports_once_and_recovers() {
    let mut cmd = Command::new(BIN);
    cmd.args(["listen", "127.0.0.1:0", "--json", "--idle", "30"]);
    let mut server = Proc::spawn_with(with_nofile(&mut cmd, 16));
    let addr = listening_addr(&server);

    // Far more clients than descriptors, in two bursts.
    let mut clients = Vec::new();
    for _ in 0..2 {
        for _ in 0..20 {
            clients.push(
                TcpStream::connect(addr).expect("connect (the kernel completes the handshake)"),
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut connected = 0;
    let mut warnings = Vec::new();
    while let Ok(line) = server.lines.recv_timeout(Duration::from_millis(500)) {
        let ev: Value = serde_json::from_str(&line).expect("JSON");
        if event_is(&ev, "connected") {
            connected += 1;
        }
        if event_is(&ev, "warning") {
            warnings.push(ev);
        }
    }
    assert!(
        (1..40).contains(&connected),
        "{connected} connections followed under a limit of 16 fds"
    );
    assert_eq!(
        warnings.len(),
        1,
        "EMFILE must be reported exactly once: {warnings:?}"
    );
    let msg = warnings[0]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("accept") && msg.contains("ulimit"), "{msg}");
    assert!(
        server.child.try_wait().expect("wait").is_none(),
        "listen died under EMFILE"
    );

    // Recovery: drop every client; listen ends those sessions and serves a new one.
    drop(clients);
    server.until(Duration::from_secs(5), "ends after the clients left", |e| {
        event_is(e, "end")
    });
    std::thread::sleep(Duration::from_millis(300));
    let fresh = TcpStream::connect(addr).expect("connect after recovery");
    let seen = server.until(Duration::from_secs(5), "a connection after recovery", |e| {
        event_is(e, "connected")
            && e["peer"]
                == fresh
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default()
    });
    assert!(
        !seen.iter().any(|e| event_is(e, "warning")),
        "a second EMFILE warning while recovering: {seen:?}"
    );
    server.signal(libc::SIGTERM);
    let (rest, status) = server.finish(Duration::from_secs(5));
    assert_eq!(status.code(), Some(143));
    let events = parse_all(&rest);
    assert_eq!(
        events.last().map(|e| e["event"].clone()),
        Some("end".into())
    );
}

#[test]
fn clients_sending_garbage_endless_lines_or_nothing_cannot_grow_listen() {
    let (mut server, addr) = listen(&["--idle", "30", "--max-conns", "10000"]);
    // Warm up: one connection, so allocations made once are counted in the baseline.
    {
        let _c = TcpStream::connect(addr).expect("connect");
        server.until(Duration::from_secs(5), "warm-up connected", |e| {
            event_is(e, "connected")
        });
    }
    server.until(Duration::from_secs(5), "warm-up end", |e| {
        event_is(e, "end")
    });
    let before = server.rss_kib();

    const MIB: usize = 1 << 20;
    // 200 silent clients.
    let silent: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    // Garbage (binary, no newline), one endless line, and many short lines: 32 MiB each.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = [
        |i: usize| -> u8 { (i.wrapping_mul(2654435761) >> 13) as u8 },
        |_: usize| -> u8 { b'x' },
        |i: usize| -> u8 { if i % 80 == 79 { b'\n' } else { b'a' } },
    ]
    .into_iter()
    .map(|byte| {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).expect("connect");
            let chunk: Vec<u8> = (0..64 * 1024).map(byte).collect();
            let mut sent = 0;
            while sent < 32 * MIB && !stop.load(Ordering::Relaxed) {
                c.write_all(&chunk).expect("listen must keep reading");
                sent += chunk.len();
            }
            sent
        })
    })
    .collect();
    let sent: usize = writers.into_iter().map(|w| w.join().expect("writer")).sum();
    assert_eq!(sent, 96 * MIB);
    std::thread::sleep(Duration::from_millis(500));
    let after = server.rss_kib();
    let grown = after.saturating_sub(before);
    eprintln!("listen RSS {before} KiB -> {after} KiB after 96 MiB of input and 203 clients");
    // 203 sessions cost well under 1 MiB; the input itself must not be kept.
    assert!(
        grown < 8 * 1024,
        "listen grew by {grown} KiB ({before} -> {after})"
    );
    assert!(
        server.child.try_wait().expect("wait").is_none(),
        "listen died"
    );
    drop(silent);
    server.signal(libc::SIGTERM);
    let (rest, status) = server.finish(Duration::from_secs(10));
    assert_eq!(status.code(), Some(143));
    parse_all(&rest);
}

#[test]
fn sigterm_mid_json_output_leaves_valid_json_lines_ending_with_end() {
    let (mut server, addr) = listen(&["--idle", "1", "--intvl", "1", "--max-conns", "100000"]);
    let mut client = Proc::spawn(&[
        "connect",
        &addr.to_string(),
        "--json",
        "--idle",
        "1",
        "--intvl",
        "1",
    ]);
    client.until(Duration::from_secs(5), "connected", |e| {
        event_is(e, "connected")
    });
    // Keep listen writing: connections opening and closing as fast as they can.
    let stop = Arc::new(AtomicBool::new(false));
    let churners: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(mut c) = TcpStream::connect(addr) {
                        let _ = c.write_all(b"hello\n");
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    // The client first: signalled second, it could see the server's FIN (EOF)
    // before its own SIGTERM arrived, which is a different, correct outcome.
    client.signal(libc::SIGTERM);
    server.signal(libc::SIGTERM);
    let (rest, status) = server.finish(Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    let cycles: u64 = churners
        .into_iter()
        .map(|c| c.join().expect("churner"))
        .sum();
    assert!(cycles > 50, "only {cycles} connections churned");
    let events = parse_all(&rest);
    let last = events.last().expect("events after SIGTERM");
    assert_eq!(last["event"], "end", "{last}");
    assert_eq!(last["conn"], 0);
    assert_eq!(last["outcome"], "interrupted");
    assert_eq!(last["exit_code"], 143);
    assert_eq!(status.code(), Some(143));
    for ev in &events {
        assert!(
            ev["event"].is_string() && ev["t"].is_number() && ev["conn"].is_u64(),
            "{ev}"
        );
    }
    // Every connection that was connected also ended.
    let connected = events.iter().filter(|e| event_is(e, "connected")).count();
    let ended = events
        .iter()
        .filter(|e| event_is(e, "end") && e["conn"] != 0)
        .count();
    assert!(
        ended >= connected,
        "{connected} connected after the first line, {ended} ended"
    );

    let (rest, status) = client.finish(Duration::from_secs(10));
    let events = parse_all(&rest);
    let last = events.last().expect("client events after SIGTERM");
    assert_eq!(last["event"], "end");
    assert_eq!(last["outcome"], "interrupted", "{events:#?}");
    assert_eq!(last["exit_code"], 143);
    assert_eq!(status.code(), Some(143));
}

/// Found by scripts/bench-churn.sh: `listen` drained its whole accept backlog before
/// reading the EOFs of the connections it held, so a client that connects and closes
/// in a loop filled the table with departed peers and got most of its connections
/// refused ("--max-conns reached") while almost none were open, and the loop starved
/// timers and signals meanwhile. Accepts are now batched and, at the limit, wait one
/// pass before refusing.
#[test]
fn churn_below_max_conns_is_never_refused_and_the_limit_still_holds() {
    let (mut server, addr) = listen(&["--max-conns", "8"]);
    let clients: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..1500 {
                    drop(TcpStream::connect(addr).expect("connect"));
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    let seen = server.until(Duration::from_secs(20), "3000 ends", {
        let n = std::cell::Cell::new(0);
        move |e| {
            if event_is(e, "end") {
                n.set(n.get() + 1);
            }
            n.get() == 3000
        }
    });
    let refused: Vec<_> = seen.iter().filter(|e| event_is(e, "refused")).collect();
    assert!(
        refused.is_empty(),
        "{} of 3000 short-lived connections refused: {:?}",
        refused.len(),
        refused.first()
    );
    assert!(
        seen.iter()
            .filter(|e| event_is(e, "end"))
            .all(|e| e["outcome"] == "eof")
    );

    // Ten held connections: eight followed, two refused (reset).
    let held: Vec<_> = (0..10)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    let mut connected = 0;
    let mut refused = 0;
    while connected + refused < 10 {
        let ev = server.next_event(Duration::from_secs(5), "connected or refused");
        connected += usize::from(event_is(&ev, "connected"));
        refused += usize::from(event_is(&ev, "refused"));
    }
    assert_eq!((connected, refused), (8, 2));
    drop(held);
    server.signal(libc::SIGTERM);
    let (_, status) = server.finish(Duration::from_secs(5));
    assert_eq!(status.code(), Some(143));
}
