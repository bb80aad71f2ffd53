//! Issue 23 regressions: the surfaces added last (the metrics endpoint, the
//! metrics file, `tune`, `watch --pid`) under a hostile run. Each test is one
//! failure that run found, kept as a test that failed before its fix (as
//! tests/hostile.rs does). They drive the real binary on loopback through the one
//! harness (tests/common).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{Proc, bin, end_of, parse_all};

/// A directory of its own, removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("tcpalive-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o666) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

/// `watch --json --metrics-file FILE ARGS`, started through `sh` so that `plant`
/// (a shell command, `$$` being the pid watch will have) runs just before the
/// exec: what a local attacker can prepare at the name the old code derived
/// from the pid (`.NAME.PID.tmp`).
fn watch_file_planted(file: &Path, plant: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{plant}\nexec \"$@\""))
        .arg("sh")
        .arg(bin())
        .args(["watch", "--json", "--port", "1", "--interval", "100ms"])
        .args(args)
        .arg("--metrics-file")
        .arg(file);
    Proc::spawn_with(&mut cmd)
}

fn wait_for(what: &str, within: Duration, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Ends a watch with `sig`: it must exit within 3 s with the end line's code.
fn ends_on(p: &mut Proc, sig: i32) -> (Value, i32) {
    p.signal(sig);
    let (rest, status) = p.finish(Duration::from_secs(3));
    let events = parse_all(&rest);
    let end = end_of(&events).clone();
    (end, status.code().unwrap_or(-1))
}

/// Item 1: a symlink planted at the temporary name pointed a root watch at a
/// file it then truncated and overwrote.
#[test]
fn metrics_file_never_writes_through_a_planted_symlink() {
    let dir = TempDir::new("mf-symlink");
    let victim = dir.path("victim");
    std::fs::write(&victim, "precious\n").expect("victim");
    let file = dir.path("t.prom");
    let plant = format!(
        "ln -s '{}' '{}/.t.prom.'$$'.tmp'",
        victim.display(),
        dir.0.display()
    );
    let mut p = watch_file_planted(&file, &plant, &["--for", "30"]);
    wait_for("the textfile", Duration::from_secs(10), || file.exists());
    let (end, code) = ends_on(&mut p, libc::SIGTERM);
    assert_eq!((end["exit_code"].as_i64(), code), (Some(143), 143));
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "precious\n"
    );
    assert!(
        std::fs::read_to_string(&file)
            .expect("textfile")
            .contains("# TYPE"),
        "the textfile itself is written"
    );
    // No temporary file is left behind.
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") && !n.ends_with(&format!(".{}.tmp", p.pid())))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Item 1: an existing target that is not a regular file (here a symlink to the
/// victim) is refused at once, with one line naming the flag, and not replaced.
#[test]
fn metrics_file_refuses_a_target_that_is_not_a_regular_file() {
    let dir = TempDir::new("mf-target");
    let victim = dir.path("victim");
    std::fs::write(&victim, "precious\n").expect("victim");
    let file = dir.path("t.prom");
    std::os::unix::fs::symlink(&victim, &file).expect("symlink");
    let mut p = watch_file_planted(&file, ":", &["--for", "30"]);
    let status = p.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(1));
    let err = p.stderr();
    assert!(
        err.contains("--metrics-file") && err.contains("a symbolic link, not a regular file"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "precious\n"
    );
    assert!(
        std::fs::symlink_metadata(&file)
            .expect("link")
            .file_type()
            .is_symlink()
    );

    // A FIFO at the target: refused as quickly, not opened (which would block).
    let fifo = dir.path("f.prom");
    mkfifo(&fifo);
    let started = Instant::now();
    let mut p = watch_file_planted(&fifo, ":", &["--for", "30"]);
    assert_eq!(p.wait(Duration::from_secs(5)).code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(p.stderr().contains("a FIFO, not a regular file"));
}

/// Item 2: a FIFO at the temporary name blocked the first write (opened for
/// writing with no reader): SIGTERM and SIGINT were not answered at start-up.
#[test]
fn a_fifo_at_the_temporary_name_does_not_delay_signals_at_start() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let dir = TempDir::new("mf-fifo-start");
        let file = dir.path("t.prom");
        let plant = format!("mkfifo '{}/.t.prom.'$$'.tmp'", dir.0.display());
        let mut p = watch_file_planted(&file, &plant, &["--for", "30"]);
        wait_for("the textfile", Duration::from_secs(10), || file.exists());
        let (end, code) = ends_on(&mut p, sig);
        let want = 128 + sig;
        assert_eq!((end["exit_code"].as_i64(), code), (Some(want.into()), want));
    }
}

/// Item 2: a FIFO planted at the temporary name mid-run made the final write
/// block: the end line was printed, the process never exited.
#[test]
fn a_fifo_planted_mid_run_does_not_keep_watch_from_exiting() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let dir = TempDir::new("mf-fifo-mid");
        let file = dir.path("t.prom");
        let mut p = watch_file_planted(&file, ":", &["--for", "30"]);
        wait_for("the textfile", Duration::from_secs(10), || file.exists());
        mkfifo(&dir.path(&format!(".t.prom.{}.tmp", p.pid())));
        let (end, code) = ends_on(&mut p, sig);
        let want = 128 + sig;
        assert_eq!((end["exit_code"].as_i64(), code), (Some(want.into()), want));
    }
    // A FIFO put in place of the target mid-run: the final write refuses it
    // (one stderr line saying why), the exit code stays the end's.
    let dir = TempDir::new("mf-fifo-target");
    let file = dir.path("t.prom");
    let mut p = watch_file_planted(&file, ":", &["--for", "30"]);
    wait_for("the textfile", Duration::from_secs(10), || file.exists());
    std::fs::remove_file(&file).expect("remove");
    mkfifo(&file);
    let (end, code) = ends_on(&mut p, libc::SIGTERM);
    assert_eq!((end["exit_code"].as_i64(), code), (Some(143), 143));
    assert!(p.stderr().contains("a FIFO, not a regular file"));
}

/// Item 11: the textfile's directory removed, then SIGTERM: the end said 143, the
/// process exited 1 and blamed the timeline.
#[test]
fn a_removed_metrics_directory_keeps_the_exit_code_and_names_the_file() {
    let dir = TempDir::new("mf-gone");
    let sub = dir.path("sub");
    std::fs::create_dir(&sub).expect("sub");
    let file = sub.join("t.prom");
    let mut p = watch_file_planted(&file, ":", &["--for", "30"]);
    wait_for("the textfile", Duration::from_secs(10), || file.exists());
    std::fs::remove_dir_all(&sub).expect("remove the directory");
    let (end, code) = ends_on(&mut p, libc::SIGTERM);
    assert_eq!((end["exit_code"].as_i64(), code), (Some(143), 143));
    let err = p.stderr();
    assert!(
        err.contains(&format!("cannot write --metrics-file {}", file.display()))
            && !err.contains("timeline"),
        "{err}"
    );
}
