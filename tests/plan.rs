//! `plan` end to end: the CLI's figures and usage errors, and the code it prints.
//!
//! Every snippet whose toolchain is on this machine is compiled (C for Linux with
//! gcc, C for Windows with mingw-w64, Python, Node.js, Java, Rust against the very
//! socket2 this crate builds). The Linux C, Python, Node.js, Java and Rust snippets
//! are also run: each connects to `tcpalive listen` on loopback, applies the plan,
//! and the test reads the settings back from outside the process — exactly, by
//! duplicating the socket with pidfd_getfd(2) — and checks with `ss -tino` that the
//! kernel armed the keepalive timer. A missing toolchain is reported as SKIPPED on
//! stderr; under `TCPALIVE_REQUIRE_TOOLCHAINS=1` (set by .ci/run) it is a failure.
//! C# (no .NET SDK in Debian) and Go (KeepAliveConfig needs Go 1.23; Debian 12 has
//! 1.19) are always reported as skipped unless their toolchains are found.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use socket2::Socket;

use common::{bin, listen};

fn plan_json(args: &[&str]) -> Value {
    let out = Command::new(bin())
        .arg("plan")
        .args(args)
        .arg("--json")
        .output()
        .expect("run tcpalive plan");
    assert_eq!(
        out.status.code(),
        Some(0),
        "plan {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert_eq!(text.lines().count(), 1, "one JSON object: {text}");
    serde_json::from_str(&text).expect("JSON")
}

fn snippet(plan: &Value, lang: &str) -> String {
    plan["code"]
        .as_array()
        .expect("code array")
        .iter()
        .find(|s| s["lang"] == lang)
        .unwrap_or_else(|| panic!("no {lang} snippet in {plan}"))["code"]
        .as_str()
        .expect("code text")
        .to_string()
}

// ---------------------------------------------------------------- CLI figures

#[test]
fn figures_of_each_stack_through_the_cli() {
    let rows: [(&[&str], f64); 6] = [
        (&[], 7875.0),
        (&["--platform", "windows"], 7210.0),
        (&["--platform", "macos"], 7800.0),
        (&["--runtime", "node", "--idle", "5"], 15.0),
        (&["--runtime", "go"], 150.0),
        (
            &[
                "--platform",
                "macos",
                "--idle",
                "15",
                "--intvl",
                "15",
                "--cnt",
                "4",
            ],
            75.0,
        ),
    ];
    for (args, want) in rows {
        let p = plan_json(args);
        assert_eq!(p["event"], "plan");
        assert_eq!(
            p["predicted_detect_s"].as_f64(),
            Some(want),
            "{args:?}: {p}"
        );
        for field in ["idle_s", "intvl_s", "cnt", "user_timeout_ms"] {
            assert!(p[field].is_u64(), "{field} in {p}");
            assert!(p["sources"][field]["source"].is_string(), "{field} in {p}");
        }
    }
    let linux = plan_json(&[]);
    assert_eq!(linux["predicted_busy_detect_s"].as_f64(), Some(924.6));
    assert!(linux["predicted_busy_detect_max_s"].as_f64().unwrap_or(0.0) > 924.6);
    assert_eq!(linux["sources"]["idle_s"]["source"], "platform-default");
    let node = plan_json(&["--runtime", "node", "--idle", "5"]);
    assert_eq!(node["sources"]["cnt"]["source"], "fixed");
    assert_eq!(node["sources"]["user_timeout_ms"]["source"], "not-settable");
}

#[test]
fn recommendation_meets_its_target() {
    let p = plan_json(&[
        "--detect-within",
        "60s",
        "--idle-limit",
        "30s",
        "--rtt",
        "50ms",
    ]);
    let (idle, intvl, cnt) = (
        p["idle_s"].as_u64().unwrap_or(0),
        p["intvl_s"].as_u64().unwrap_or(0),
        p["cnt"].as_u64().unwrap_or(0),
    );
    assert!(idle + cnt * intvl <= 60, "{p}");
    assert!(idle.max(intvl) < 30, "{p}");
    assert!(cnt >= 2, "RFC 1122: {p}");
    assert_eq!(
        p["user_timeout_ms"].as_u64(),
        Some((idle + cnt * intvl) * 1000)
    );
    assert!(
        p["predicted_detect_s"].as_f64().unwrap_or(f64::MAX) <= 60.0,
        "{p}"
    );
    assert_eq!(p["sources"]["idle_s"]["source"], "recommended");
    let langs: Vec<&str> = p["code"]
        .as_array()
        .expect("code")
        .iter()
        .filter_map(|s| s["lang"].as_str())
        .collect();
    assert_eq!(
        langs,
        ["c-linux", "csharp", "java", "go", "node", "python", "rust"]
    );
}

#[test]
fn human_output_names_sources_and_prints_code() {
    let out = Command::new(bin())
        .args(["plan", "--platform", "windows", "--detect-within", "60"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("recommended"), "{text}");
    assert!(text.contains("SIO_KEEPALIVE_VALS"), "{text}");
    assert!(
        text.contains("--- C (Windows, SIO_KEEPALIVE_VALS) ---"),
        "{text}"
    );
    // Defaults only: nothing to apply, no code.
    let out = Command::new(bin()).arg("plan").output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("7875s"), "{text}");
    assert!(!text.contains("---"), "{text}");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let rows: [(&[&str], &str); 6] = [
        (&["--platform", "beos"], "invalid --platform 'beos'"),
        (&["--detect-within", "2s"], "invalid --detect-within '2s'"),
        (
            &["--detect-within", "30", "--cnt", "3"],
            "--detect-within conflicts with --cnt",
        ),
        (
            &["--runtime", "node", "--user-timeout", "5s"],
            "invalid --user-timeout '5s': Node.js cannot set a user timeout",
        ),
        (&["--idle-limit", "1s"], "invalid --idle-limit '1s'"),
        (
            &["--path", "aws-elb"],
            "invalid --path 'aws-elb': not a known middlebox",
        ),
    ];
    for (args, want) in rows {
        let out = Command::new(bin())
            .arg("plan")
            .args(args)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

// ------------------------------------------------------- middlebox presets

/// The issue's example: an AWS NLB forgets a flow after 350 s. The JSON names the
/// limit and its preset; the defaults (7200 s) are warned about; the recommender
/// keeps idle + intvl (a lost probe's retry) below the limit.
#[test]
fn path_aws_nlb_limits_the_plan() {
    let p = plan_json(&["--path", "aws-nlb"]);
    assert_eq!(p["idle_limit_s"], 350.0, "{p}");
    assert_eq!(p["idle_limit_by"], "aws-nlb", "{p}");
    assert_eq!(p["drop_mode"], Value::Null, "{p}");
    assert_eq!(p["paths"][0]["name"], "aws-nlb", "{p}");
    assert!(
        p["paths"][0]["source"]
            .as_str()
            .unwrap()
            .contains("350 seconds"),
        "{p}"
    );
    assert!(
        p["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("350s (aws-nlb) but keepalive traffic comes every 7200s")),
        "{p}"
    );
    let k = &p["path_keepalive"];
    assert!(
        k["idle_s"].as_u64().unwrap() + k["intvl_s"].as_u64().unwrap() < 350,
        "{p}"
    );
    for within in ["60", "5m", "30m", "2h"] {
        let r = plan_json(&["--path", "aws-nlb", "--detect-within", within]);
        assert_eq!(r["idle_limit_s"], 350.0, "{r}");
        let (idle, intvl) = (
            r["idle_s"].as_u64().unwrap(),
            r["intvl_s"].as_u64().unwrap(),
        );
        assert!(idle + intvl < 350, "within {within}: {r}");
        assert!(
            !r["warnings"].to_string().contains("idle limit"),
            "within {within}: {r}"
        );
    }
}

/// Several --path values and --idle-limit: the shortest wins, every preset given
/// is listed with its source, and the limiting one's drop mode is the plan's.
#[test]
fn several_paths_shortest_wins() {
    let p = plan_json(&[
        "--path",
        "linux-conntrack",
        "--path",
        "azure-lb",
        "--path",
        "aws-nlb",
    ]);
    assert_eq!(p["idle_limit_s"], 240.0, "{p}");
    assert_eq!(p["idle_limit_by"], "azure-lb", "{p}");
    assert_eq!(p["drop_mode"], "silent", "{p}");
    assert_eq!(p["paths"].as_array().unwrap().len(), 3, "{p}");
    let p = plan_json(&["--path", "azure-lb", "--idle-limit", "100s"]);
    assert_eq!(p["idle_limit_s"], 100.0, "{p}");
    assert_eq!(p["idle_limit_by"], "--idle-limit", "{p}");
    assert_eq!(p["drop_mode"], Value::Null, "{p}");
}

/// `plan --path list`: every preset, each with its figure, drop mode (or "not
/// stated") and source, in text and in JSON Lines.
#[test]
fn path_list_prints_every_source() {
    let out = Command::new(bin())
        .args(["plan", "--path", "list"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let names = [
        "aws-nlb",
        "aws-alb",
        "aws-nat-gateway",
        "gcp-cloud-nat",
        "azure-lb",
        "azure-nat-gateway",
        "linux-conntrack",
        "kube-proxy",
        "docker-swarm",
        "rfc5382",
    ];
    assert_eq!(text.lines().count(), names.len(), "{text}");
    for name in names {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name} (")))
            .unwrap_or_else(|| panic!("{name} missing: {text}"));
        assert!(line.contains("[source: "), "{line}");
        assert!(line.contains("at expiry: "), "{line}");
    }
    let out = Command::new(bin())
        .args(["plan", "--path", "list", "--json"])
        .output()
        .expect("run");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), names.len());
    for v in &lines {
        assert!(v["idle_limit_s"].as_f64().unwrap() > 0.0, "{v}");
        assert!(!v["source"].as_str().unwrap().is_empty(), "{v}");
    }
    let nlb = lines.iter().find(|v| v["name"] == "aws-nlb").unwrap();
    assert_eq!(nlb["idle_limit_s"], 350.0);
}

// ------------------------------------------------------------- toolchains

fn require_toolchains() -> bool {
    std::env::var("TCPALIVE_REQUIRE_TOOLCHAINS").is_ok_and(|v| v == "1")
}

/// A toolchain that is not here: loud on stderr, a failure when required.
fn skip(what: &str, why: &str) {
    if require_toolchains() {
        panic!("{what} cannot be checked and TCPALIVE_REQUIRE_TOOLCHAINS=1: {why}");
    }
    // Written to the stderr handle, not with eprintln!: the test harness captures
    // the macros' output of passing tests, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "SKIPPED {what}: {why}");
}

fn have(tool: &str, version_arg: &str) -> bool {
    Command::new(tool)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A scratch directory removed when dropped, also when the test fails.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("tcpalive-plan-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, text).expect("write scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn must_succeed(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ------------------------------------------------- read-back from outside

/// What the kernel holds for one socket.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    keepalive: bool,
    idle_s: u64,
    intvl_s: u64,
    cnt: u64,
    user_timeout_ms: u64,
}

/// Duplicates every socket of `pid` with pidfd_getfd(2) and reads the options of
/// the one connected to `port`.
fn read_back(pid: u32, port: u16) -> Result<Held, String> {
    // SAFETY: plain syscalls with integer arguments; the results are checked.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_long, 0) };
    if pidfd < 0 {
        return Err(format!("pidfd_open: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_err(|e| e.to_string())?;
    for entry in fds.flatten() {
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"));
        let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if !is_socket {
            continue;
        }
        use std::os::fd::AsRawFd;
        // SAFETY: as above.
        let dup = unsafe {
            libc::syscall(
                libc::SYS_pidfd_getfd,
                pidfd.as_raw_fd() as libc::c_long,
                n as libc::c_long,
                0,
            )
        };
        if dup < 0 {
            continue;
        }
        // SAFETY: pidfd_getfd returned a new descriptor that we own.
        let s = unsafe { Socket::from_raw_fd(dup as i32) };
        let peer = s.peer_addr().ok().and_then(|a| a.as_socket());
        if peer.is_none_or(|p| p.port() != port) {
            continue;
        }
        let err = |what: &'static str| move |e: std::io::Error| format!("{what}: {e}");
        return Ok(Held {
            keepalive: s.keepalive().map_err(err("SO_KEEPALIVE"))?,
            idle_s: s
                .tcp_keepalive_time()
                .map_err(err("TCP_KEEPIDLE"))?
                .as_secs(),
            intvl_s: s
                .tcp_keepalive_interval()
                .map_err(err("TCP_KEEPINTVL"))?
                .as_secs(),
            cnt: u64::from(s.tcp_keepalive_retries().map_err(err("TCP_KEEPCNT"))?),
            user_timeout_ms: s
                .tcp_user_timeout()
                .map_err(err("TCP_USER_TIMEOUT"))?
                .map_or(0, |d| d.as_millis() as u64),
        });
    }
    Err(format!(
        "process {pid} holds no socket connected to port {port}"
    ))
}

/// `ss -tino` for the connection to `port`: the kernel's timer on it.
fn ss_timer(port: u16) -> String {
    let out = Command::new("ss")
        .args([
            "-tino",
            "state",
            "established",
            "dport",
            "=",
            &format!(":{port}"),
        ])
        .output()
        .expect("run ss");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A snippet program connected to `tcpalive listen`: runs `cmd PORT`, waits for its
/// "ready" line, reads its socket back, then closes its stdin to end it.
fn run_against_listen(what: &str, mut cmd: Command) -> (Held, String) {
    run_connected(
        what,
        move |port| {
            cmd.arg(port.to_string());
            cmd
        },
        true,
    )
}

/// Like [`run_against_listen`] for a program that takes the port its own way and
/// may print nothing (`ready_line` false): its socket is read back once it exists.
fn run_connected(
    what: &str,
    build: impl FnOnce(u16) -> Command,
    ready_line: bool,
) -> (Held, String) {
    let (_listener, listener_addr) = listen(&[]);
    let mut cmd = build(listener_addr.port());
    let mut child: Child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: spawn: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut child = common::Reaped(child);
    let ready = if ready_line {
        lines.next().and_then(Result::ok).unwrap_or_default()
    } else {
        "ready".to_string()
    };
    if ready.trim() != "ready" {
        let _ = child.0.kill();
        let out = child.0.wait_with_output_lossy();
        panic!("{what}: no ready line (got {ready:?}); stderr: {out}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let held = loop {
        match read_back(child.0.id(), listener_addr.port()) {
            Ok(h) => break h,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let ss = ss_timer(listener_addr.port());
    if let Some(mut stdin) = child.0.stdin.take() {
        let _ = stdin.write_all(b"\n");
    }
    (held, ss)
}

trait WaitLossy {
    fn wait_with_output_lossy(&mut self) -> String;
}

impl WaitLossy for Child {
    fn wait_with_output_lossy(&mut self) -> String {
        let _ = self.wait();
        let mut text = String::new();
        if let Some(mut err) = self.stderr.take() {
            use std::io::Read;
            let _ = err.read_to_string(&mut text);
        }
        text
    }
}

fn expected(plan: &Value) -> Held {
    let n = |f: &str| plan[f].as_u64().unwrap_or_else(|| panic!("{f} in {plan}"));
    Held {
        keepalive: true,
        idle_s: n("idle_s"),
        intvl_s: n("intvl_s"),
        cnt: n("cnt"),
        user_timeout_ms: n("user_timeout_ms"),
    }
}

fn check(what: &str, held: Held, ss: &str, want: Held) {
    assert_eq!(
        held, want,
        "{what}: the kernel holds other settings than the plan"
    );
    assert!(
        ss.contains("timer:(keepalive,"),
        "{what}: ss shows no keepalive timer on the connection:\n{ss}"
    );
}

// ------------------------------------------------------------ the snippets

/// The plans whose code is checked: explicit values with a user timeout, and a
/// recommendation.
fn plans() -> Vec<Value> {
    vec![
        plan_json(&[
            "--idle",
            "13",
            "--intvl",
            "4",
            "--cnt",
            "6",
            "--user-timeout",
            "7000ms",
        ]),
        plan_json(&["--detect-within", "45s", "--idle-limit", "20s"]),
    ]
}

#[test]
fn c_linux_snippet_sets_what_the_plan_says() {
    if !have("gcc", "--version") {
        return skip("C (Linux) snippet", "gcc not found");
    }
    for (i, plan) in plans().iter().enumerate() {
        let dir = Scratch::new(&format!("c{i}"));
        let driver = r#"
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct sockaddr_in a = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char c;

    if (argc < 2 || fd < 0)
        return 2;
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(argv[1]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        return 1;
    }
    if (tcpalive_keepalive(fd) != 0) {
        perror("tcpalive_keepalive");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    return read(0, &c, 1) < 0;
}
"#;
        let src = dir.write("plan.c", &format!("{}{driver}", snippet(plan, "c-linux")));
        let exe = dir.0.join("plan");
        must_succeed(
            Command::new("gcc")
                .args([
                    "-std=c11",
                    "-D_DEFAULT_SOURCE",
                    "-Wall",
                    "-Wextra",
                    "-Werror",
                    "-o",
                ])
                .arg(&exe)
                .arg(&src),
            "gcc",
        );
        let (held, ss) = run_against_listen("C (Linux)", Command::new(&exe));
        check("C (Linux)", held, &ss, expected(plan));
    }
}

#[test]
fn c_windows_snippet_compiles_with_mingw() {
    let cc = "x86_64-w64-mingw32-gcc";
    if !have(cc, "--version") {
        return skip(
            "C (Windows) snippet",
            "x86_64-w64-mingw32-gcc (mingw-w64) not found",
        );
    }
    // The three shapes: SIO_KEEPALIVE_VALS alone, plus TCP_KEEPCNT, plus TCP_MAXRT.
    let plans = [
        plan_json(&["--platform", "windows", "--idle", "30", "--intvl", "3"]),
        plan_json(&[
            "--platform",
            "windows",
            "--idle",
            "30",
            "--intvl",
            "3",
            "--cnt",
            "4",
        ]),
        plan_json(&["--platform", "windows", "--detect-within", "60"]),
    ];
    for (i, plan) in plans.iter().enumerate() {
        let dir = Scratch::new(&format!("win{i}"));
        let src = dir.write("plan.c", &snippet(plan, "c-windows"));
        must_succeed(
            Command::new(cc)
                .args(["-Wall", "-Wextra", "-Werror", "-c", "-o"])
                .arg(dir.0.join("plan.o"))
                .arg(&src),
            "mingw-w64 gcc",
        );
    }
}

#[test]
fn python_snippet_sets_what_the_plan_says() {
    if !have("python3", "--version") {
        return skip("Python snippet", "python3 not found");
    }
    for (i, plan) in plans().iter().enumerate() {
        let dir = Scratch::new(&format!("py{i}"));
        let driver = "\nimport sys\n\
                      s = socket.create_connection((\"127.0.0.1\", int(sys.argv[1])))\n\
                      apply_keepalive(s)\n\
                      print(\"ready\", flush=True)\n\
                      sys.stdin.readline()\n";
        let src = dir.write("plan.py", &format!("{}{driver}", snippet(plan, "python")));
        let mut cmd = Command::new("python3");
        cmd.arg(&src);
        let (held, ss) = run_against_listen("Python", cmd);
        check("Python", held, &ss, expected(plan));
    }
}

#[test]
fn node_snippet_sets_what_libuv_gives() {
    if !have("node", "--version") {
        return skip("Node.js snippet", "node not found");
    }
    // --runtime node: the plan itself says intvl 1 and cnt 10; the snippet from a
    // plain plan sets only idle and says so. Both must match what libuv does.
    let node_plan = plan_json(&["--runtime", "node", "--idle", "5"]);
    let plain = plan_json(&["--idle", "13", "--intvl", "4", "--cnt", "6"]);
    let cases = [
        (snippet(&node_plan, "node"), expected(&node_plan)),
        (
            snippet(&plain, "node"),
            Held {
                keepalive: true,
                idle_s: 13,
                intvl_s: 1,
                cnt: 10,
                user_timeout_ms: 0,
            },
        ),
    ];
    // setKeepAlive(true) without a delay: the OS idle, libuv's interval and count,
    // as `plan --runtime node` says.
    let bare = plan_json(&["--runtime", "node"]);
    let os_idle = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_keepalive_time")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(7200);
    assert_eq!(bare["sources"]["idle_s"]["source"], "platform-default");
    let cases = [
        cases[0].clone(),
        cases[1].clone(),
        (
            "function applyKeepalive(socket) {\n  socket.setKeepAlive(true);\n}\n".to_string(),
            Held {
                idle_s: os_idle,
                ..expected(&bare)
            },
        ),
    ];
    for (i, (code, want)) in cases.into_iter().enumerate() {
        let dir = Scratch::new(&format!("node{i}"));
        let driver = "\nconst net = require('net');\n\
                      const s = net.connect(Number(process.argv[2]), '127.0.0.1', () => {\n  \
                        applyKeepalive(s);\n  \
                        console.log('ready');\n\
                      });\n\
                      process.stdin.on('data', () => process.exit(0));\n";
        let src = dir.write("plan.js", &format!("{code}{driver}"));
        let mut cmd = Command::new("node");
        cmd.arg(&src);
        let (held, ss) = run_against_listen("Node.js", cmd);
        check("Node.js", held, &ss, want);
    }
}

#[test]
fn java_snippet_sets_what_the_plan_says() {
    if !have("javac", "-version") || !have("java", "-version") {
        return skip("Java snippet", "javac/java not found");
    }
    for (i, plan) in plans().iter().enumerate() {
        let dir = Scratch::new(&format!("java{i}"));
        dir.write("TcpaliveKeepalive.java", &snippet(plan, "java"));
        dir.write(
            "Driver.java",
            "import java.net.Socket;\n\
             public class Driver {\n    \
                 public static void main(String[] args) throws Exception {\n        \
                     Socket s = new Socket(\"127.0.0.1\", Integer.parseInt(args[0]));\n        \
                     TcpaliveKeepalive.apply(s);\n        \
                     System.out.println(\"ready\");\n        \
                     System.in.read();\n    \
                 }\n\
             }\n",
        );
        must_succeed(
            Command::new("javac")
                .args(["-Werror", "-d"])
                .arg(&dir.0)
                .arg(dir.0.join("TcpaliveKeepalive.java"))
                .arg(dir.0.join("Driver.java")),
            "javac",
        );
        let mut cmd = Command::new("java");
        cmd.arg("-cp").arg(&dir.0).arg("Driver");
        let (held, ss) = run_against_listen("Java", cmd);
        // Java has no user-timeout option: the snippet says so and leaves it off.
        let want = Held {
            user_timeout_ms: 0,
            ..expected(plan)
        };
        check("Java", held, &ss, want);
    }
}

/// The socket2 this crate was built with, from the test binary's deps directory.
fn socket2_rlib() -> Option<(PathBuf, PathBuf)> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?.to_path_buf();
    let newest = std::fs::read_dir(&deps)
        .ok()?
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.starts_with("libsocket2-") && name.ends_with(".rlib")
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())?;
    Some((deps, newest.path()))
}

#[test]
fn rust_snippet_sets_what_the_plan_says() {
    let Some((deps, rlib)) = socket2_rlib() else {
        return skip("Rust snippet", "no socket2 rlib next to the test binary");
    };
    if !have("rustc", "--version") {
        return skip("Rust snippet", "rustc not found");
    }
    for (i, plan) in plans().iter().enumerate() {
        let dir = Scratch::new(&format!("rust{i}"));
        let driver = r#"
fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).expect("port");
    let s = Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into()).expect("connect");
    apply_keepalive(&s).expect("apply");
    println!("ready");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}
"#;
        let src = dir.write("plan.rs", &format!("{}{driver}", snippet(plan, "rust")));
        let exe = dir.0.join("plan");
        must_succeed(
            Command::new("rustc")
                .args(["--edition", "2021", "-D", "warnings", "-L"])
                .arg(format!("dependency={}", deps.display()))
                .arg("--extern")
                .arg(format!("socket2={}", rlib.display()))
                .arg("-o")
                .arg(&exe)
                .arg(&src),
            "rustc",
        );
        let (held, ss) = run_against_listen("Rust (socket2)", Command::new(&exe));
        check("Rust (socket2)", held, &ss, expected(plan));
    }
}

#[test]
fn csharp_and_go_snippets_need_their_toolchains() {
    let p = plan_json(&["--detect-within", "30"]);
    // Always checked: the values are in the text.
    let idle = p["idle_s"].as_u64().expect("idle").to_string();
    for lang in ["csharp", "go"] {
        assert!(snippet(&p, lang).contains(&idle), "{lang}");
    }
    // Neither toolchain is in Debian 12 (no .NET SDK; golang-go is 1.19 and
    // KeepAliveConfig needs 1.23), so .ci/run cannot install them: always reported.
    let mut err = std::io::stderr();
    let _ = writeln!(
        err,
        "SKIPPED C# snippet: not compiled (no .NET SDK on this machine)"
    );
    let _ = writeln!(
        err,
        "SKIPPED Go snippet: not compiled (needs Go 1.23+ and golang.org/x/sys)"
    );
}

/// curl itself, run against `tcpalive listen` (it sends a request and waits for
/// an answer that never comes): its socket holds idle = intvl = --keepalive-time.
#[test]
fn curl_command_line_sets_what_the_plan_says() {
    if !have("curl", "--version") {
        return skip("curl command line", "curl not found");
    }
    let p = plan_json(&["--runtime", "curl", "--detect-within", "40s"]);
    let mut args: Vec<String> = snippet(&p, "curl")
        .lines()
        .find(|l| l.starts_with("curl "))
        .expect("curl line")
        .split_whitespace()
        .skip(1)
        .filter(|a| *a != "URL")
        .map(str::to_string)
        .collect();
    let mut want = expected(&p);
    let help = Command::new("curl")
        .args(["--help", "all"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    if !help.contains("--keepalive-cnt") {
        // curl before 8.9.0: the OS count applies, as the plan's note says.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED curl --keepalive-cnt: this curl predates 8.9.0; checking idle and \
             interval with the OS count"
        );
        if let Some(i) = args.iter().position(|a| a == "--keepalive-cnt") {
            args.drain(i..=i + 1);
        }
        want.cnt = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_keepalive_probes")
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(9);
    }
    want.user_timeout_ms = 0;
    let (held, ss) = run_connected(
        "curl",
        |port| {
            let mut cmd = Command::new("curl");
            cmd.args(&args)
                .args(["--silent", "--max-time", "30"])
                .arg(format!("http://127.0.0.1:{port}/"));
            cmd
        },
        false,
    );
    check("curl", held, &ss, want);
}

#[test]
fn curl_plan_is_a_command_line() {
    let p = plan_json(&["--runtime", "curl", "--detect-within", "2m"]);
    let code = snippet(&p, "curl");
    let t = p["idle_s"].as_u64().expect("idle");
    assert_eq!(p["intvl_s"].as_u64(), Some(t), "curl: idle = intvl: {p}");
    assert!(
        code.contains(&format!(
            "curl --keepalive-time {t} --keepalive-cnt {}",
            p["cnt"]
        )),
        "{code}"
    );
}

// --------------------------------------------- the kernel keeps the promise

/// A recommendation, applied by its Python snippet to a connection to
/// `tcpalive listen` in a private network namespace whose loopback then goes
/// down (the peer vanishes): the kernel must end it with ETIMEDOUT at the
/// predicted time, give or take the timer wheel's lateness.
#[test]
fn recommended_plan_detects_within_its_target() {
    let what = "plan --detect-within 5 in a namespace";
    if !have("python3", "--version") {
        return skip(what, "python3 not found");
    }
    let plan = plan_json(&["--detect-within", "5s"]);
    let predicted = plan["predicted_detect_s"].as_f64().expect("prediction");
    assert!(predicted <= 5.0, "{plan}");
    let dir = Scratch::new("netns");
    let driver = "\nimport errno, sys, time\n\
                  s = socket.create_connection((\"127.0.0.1\", int(sys.argv[1])))\n\
                  t0 = time.monotonic()\n\
                  apply_keepalive(s)\n\
                  print(\"ready\", flush=True)\n\
                  try:\n    \
                      s.recv(1)\n    \
                      print(\"END eof\", round(time.monotonic() - t0, 3), flush=True)\n\
                  except OSError as e:\n    \
                      print(\"END\", errno.errorcode.get(e.errno), round(time.monotonic() - t0, 3), flush=True)\n";
    let client = dir.write(
        "client.py",
        &format!("{}{driver}", snippet(&plan, "python")),
    );
    let out = dir.0.join("client.out");
    let script = format!(
        "set -e\n\
         ip link set lo up\n\
         '{bin}' listen 127.0.0.1:7000 --no-keepalive --json > /dev/null 2>&1 &\n\
         lpid=$!\n\
         for i in $(seq 100); do ss -ltn | grep -q '127.0.0.1:7000 ' && break; sleep 0.05; done\n\
         timeout 30 python3 '{client}' 7000 > '{out}' 2>&1 &\n\
         cpid=$!\n\
         for i in $(seq 100); do grep -q ready '{out}' && break; sleep 0.05; done\n\
         ip link set lo down\n\
         wait $cpid || true\n\
         kill $lpid 2>/dev/null || true\n",
        bin = bin(),
        client = client.display(),
        out = out.display()
    );
    // Root needs only the network namespace; anyone else gets one inside a user
    // namespace of their own, where they may set its loopback up and down.
    let unshare: &[&str] = if common::is_root() {
        &["--net"]
    } else {
        &["--user", "--map-root-user", "--net"]
    };
    let run = Command::new("unshare")
        .args(unshare)
        .args(["bash", "-c", &script])
        .output();
    let run = match run {
        Ok(r) if r.status.success() => r,
        Ok(r) => {
            let why = format!(
                "cannot run in a private network namespace: {}",
                String::from_utf8_lossy(&r.stderr).trim()
            );
            return common::lab_skipped("plan", what, &why);
        }
        Err(e) => {
            return common::lab_skipped("plan", what, &format!("cannot run unshare: {e}"));
        }
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let end = text
        .lines()
        .find(|l| l.starts_with("END "))
        .unwrap_or_else(|| panic!("{what}: no END line: {text}\n{run:?}"));
    let fields: Vec<&str> = end.split_whitespace().collect();
    assert_eq!(fields.get(1), Some(&"ETIMEDOUT"), "{what}: {end}");
    let after: f64 = fields.get(2).and_then(|t| t.parse().ok()).expect("elapsed");
    let _ = writeln!(
        std::io::stderr(),
        "{what}: ETIMEDOUT after {after}s, predicted {predicted}s"
    );
    // Keepalive timers fire up to ~256 ms late on this kernel (HZ 250 timer wheel),
    // and a probe the down device refuses is retried 0.5 s later.
    assert!(
        after >= predicted - 0.05 && after <= predicted + 0.8,
        "{what}: ETIMEDOUT after {after}s, predicted {predicted}s"
    );
}
