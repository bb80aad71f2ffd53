//! main's contract for bad input, through the real binary: exactly one line on
//! stderr naming the flag and the value, nothing on stdout, exit code 2, never a
//! panic. Every rule itself is tested in process, one case per row, in
//! src/config/argv_tests.rs; these few rows prove the wiring from argv to exit.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};

fn run(args: &[&OsStr]) -> (Option<i32>, String, String) {
    let out = Command::new(common::bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tcpalive");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_usage(args: &[&OsStr], want: &str) {
    let (code, stdout, stderr) = run(args);
    assert_eq!(code, Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr, format!("tcpalive: {want}\n"), "{args:?}");
    assert!(stdout.is_empty(), "{args:?} printed on stdout: {stdout}");
}

fn os(args: &[&'static str]) -> Vec<&'static OsStr> {
    args.iter().map(|a| OsStr::new(*a)).collect()
}

#[test]
fn a_rule_of_validation_exits_2_with_one_line() {
    assert_usage(
        &os(&["connect", "h:1", "--idle", "1.5s"]),
        "invalid --idle '1.5s': Linux keepalive takes whole seconds (e.g. 1s, 5s)",
    );
}

#[test]
fn a_huge_duration_is_a_usage_error_not_a_crash() {
    assert_usage(
        &os(&[
            "listen",
            "127.0.0.1:0",
            "--heartbeat",
            "18446744073709551615s",
        ]),
        "invalid --heartbeat '18446744073709551615s': must be at most 365 days",
    );
}

#[test]
fn clap_errors_are_one_line_with_the_missing_name() {
    assert_usage(
        &os(&["connect"]),
        "the following required arguments were not provided: <HOST:PORT> (see --help)",
    );
    assert_usage(
        &os(&["connect", "h:1", "--bogus"]),
        "unexpected argument '--bogus' found (see --help)",
    );
}

#[test]
fn a_non_utf8_value_names_its_flag() {
    let bad = OsStr::from_bytes(b"5\xff");
    assert_usage(
        &[
            OsStr::new("connect"),
            OsStr::new("h:1"),
            OsStr::new("--idle"),
            bad,
        ],
        "invalid --idle '5\u{fffd}': not UTF-8",
    );
    let joined = OsStr::from_bytes(b"--cnt=\xff");
    assert_usage(
        &[OsStr::new("connect"), OsStr::new("h:1"), joined],
        "invalid --cnt '\u{fffd}': not UTF-8",
    );
}

#[test]
fn help_lists_every_exit_code_from_the_one_table() {
    let (code, stdout, _) = run(&os(&["--help"]));
    assert_eq!(code, Some(0));
    for line in [
        "0    alive",
        "2    usage",
        "4    eof",
        "6    timeout",
        "9    expect-failed",
        "130  interrupted",
        "143  interrupted",
    ] {
        assert!(stdout.contains(line), "help lacks {line:?}:\n{stdout}");
    }
}

#[test]
fn help_into_a_full_device_fails_loudly() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    let out = Command::new(common::bin())
        .arg("--help")
        .stdout(full)
        .output()
        .expect("run tcpalive");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("tcpalive: cannot write the help text"),
        "{stderr}"
    );
}

#[test]
fn the_readme_lists_every_exit_code_of_the_help_table() {
    let (_, help, _) = run(&os(&["--help"]));
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let rows: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Exit codes:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert!(rows.len() >= 12, "{help}");
    for row in rows {
        let mut words = row.split_whitespace();
        let (code, name) = (words.next().expect("code"), words.next().expect("name"));
        let listed = readme.lines().any(|l| {
            l.starts_with('|')
                && l.contains(&format!("| {name} |"))
                && l.split('|').nth(1).is_some_and(|c| c.contains(code))
        });
        assert!(listed, "README's exit-code table lacks {code} {name}");
    }
}
