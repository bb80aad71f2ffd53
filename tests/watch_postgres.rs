//! `watch` against a second real server, PostgreSQL (Debian's postgresql), with
//! keepalive and a user timeout set by the server (`tcp_keepalives_idle 3`,
//! `_interval 2`, `_count 4`, `tcp_user_timeout 5000`). `--pid` of the postmaster
//! must find the connection in its backend (a descendant) and say so, and read the
//! settings exactly: with the user timeout, cnt 4 is ignored and the prediction is
//! 5 s (idle 3 + one probe every 2 s until 5 s have passed), not the 21 s the
//! settings without the user timeout would give.
//!
//! Needs root (PostgreSQL runs as its own user) and the server binaries; without
//! them the test fails under TCPALIVE_REQUIRE_POSTGRES=1 (.ci/run) and says
//! SKIPPED otherwise.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::run_json;

/// The newest `/usr/lib/postgresql/*/bin` with initdb and postgres.
fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("postgres").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

struct Server {
    child: Child,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGQUIT: the postmaster's immediate shutdown, which ends its children.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill has no memory preconditions; the pid is our child's.
            unsafe { libc::kill(pid, libc::SIGQUIT) };
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn postgres_backend_found_through_the_postmaster_with_its_user_timeout_read() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let bin = pg_bin();
    let have_user = Command::new("id")
        .arg("postgres")
        .output()
        .is_ok_and(|o| o.status.success());
    let (Some(bin), true, true) = (bin, root, have_user) else {
        let why =
            "the PostgreSQL watch test needs root, the postgres user and /usr/lib/postgresql/*/bin";
        let require: &[&str] = if root {
            &["TCPALIVE_REQUIRE_POSTGRES"]
        } else {
            &["TCPALIVE_REQUIRE_POSTGRES", "TCPALIVE_REQUIRE_LAB"]
        };
        return common::skipped("watch_postgres", "the PostgreSQL watch", why, require);
    };
    let dir = std::env::temp_dir().join(format!("tcpalive-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("data directory");
    let chown = Command::new("chown")
        .args(["postgres:postgres", dir.to_str().unwrap_or("")])
        .status()
        .expect("chown");
    assert!(chown.success());
    let data = dir.join("data");
    let initdb = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join("initdb"))
        .args(["-A", "trust", "-U", "postgres", "-D"])
        .arg(&data)
        .output()
        .expect("initdb");
    assert!(
        initdb.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&initdb.stderr)
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    // setpriv execs postgres itself (runuser would fork it): the child is the
    // postmaster, which Drop shuts down.
    let child = Command::new("setpriv")
        .args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
        .arg(bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.display()))
        .args([
            "-c",
            "tcp_keepalives_idle=3",
            "-c",
            "tcp_keepalives_interval=2",
        ])
        .args([
            "-c",
            "tcp_keepalives_count=4",
            "-c",
            "tcp_user_timeout=5000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start postgres");
    let server = Server { child, dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        if let Ok(c) = TcpStream::connect(("127.0.0.1", port)) {
            break c;
        }
        assert!(Instant::now() < deadline, "postgres did not start");
        std::thread::sleep(Duration::from_millis(100));
    };
    let postmaster = server.child.id();
    // The backend forked for this connection holds the socket, not the postmaster.
    std::thread::sleep(Duration::from_millis(300));
    let (code, events, stderr) = run_json(&[
        "watch",
        "--pid",
        &postmaster.to_string(),
        "--port",
        &port.to_string(),
        "--json",
        "--for",
        "500ms",
    ]);
    drop(client);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        events.iter().any(|e| e["event"] == "warning"
            && e["message"].as_str().unwrap_or("").contains("descendants")),
        "a note naming the descendants: {events:#?}"
    );
    let w = events
        .iter()
        .find(|e| e["event"] == "watched")
        .unwrap_or_else(|| panic!("the backend's socket: {events:#?}"));
    assert_eq!(w["process"], "postgres", "{w}");
    assert_ne!(w["pid"], postmaster, "held by a backend: {w}");
    assert_eq!(w["settings_read"], true, "{w}");
    let config = events
        .iter()
        .find(|e| e["event"] == "config" && e["conn"] == w["conn"])
        .expect("config");
    for (field, value) in [
        ("idle_s", 3),
        ("intvl_s", 2),
        ("cnt", 4),
        ("user_timeout_ms", 5000),
    ] {
        assert_eq!(config[field], value, "{field}: {config}");
        assert_eq!(config["sources"][field], "read-back", "{field}: {config}");
    }
    assert_eq!(config["predicted_detect_s"], 5.0, "{config}");
    drop(server);
}
