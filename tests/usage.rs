//! Every bad input gets exactly one line on stderr naming the flag and the value,
//! and exit code 2 — never a panic, never a usage dump.

mod common;

use std::process::Command;

#[test]
fn bad_inputs_name_the_flag_and_the_value() {
    let table: &[(&[&str], &str)] = &[
        (
            &["connect", "127.0.0.1:0"],
            "invalid HOST:PORT '127.0.0.1:0': port 0 is out of range 1..=65535",
        ),
        (
            &["connect", "127.0.0.1:70000"],
            "invalid HOST:PORT '127.0.0.1:70000': port 70000 is out of range 1..=65535",
        ),
        (
            &["connect", "127.0.0.1"],
            "invalid HOST:PORT '127.0.0.1': missing port (expected HOST:PORT)",
        ),
        (
            &["connect", "127.0.0.1:"],
            "invalid HOST:PORT '127.0.0.1:': missing port (expected HOST:PORT)",
        ),
        (
            &["connect", ":7000"],
            "invalid HOST:PORT ':7000': missing host (expected HOST:PORT)",
        ),
        (
            &["connect", "localhost:http"],
            "invalid HOST:PORT 'localhost:http': port 'http' is not a number",
        ),
        (
            &["connect", "::1:7000"],
            "invalid HOST:PORT '::1:7000': IPv6 address needs brackets, as in [::1]:7000",
        ),
        (
            &["connect", "[::1:7000"],
            "invalid HOST:PORT '[::1:7000': missing ']' after the IPv6 address",
        ),
        (
            &["connect", "[::1]"],
            "invalid HOST:PORT '[::1]': missing port (expected [IPv6]:PORT)",
        ),
        (
            &["connect", "h:1", "--idle", "0"],
            "invalid --idle '0': must be from 1 to 32767 seconds",
        ),
        (
            &["connect", "h:1", "--idle", "40000"],
            "invalid --idle '40000': must be from 1 to 32767 seconds",
        ),
        (
            &["connect", "h:1", "--idle", "1.5s"],
            "invalid --idle '1.5s': Linux keepalive takes whole seconds (e.g. 1s, 5s)",
        ),
        (
            &["connect", "h:1", "--idle", "500ms"],
            "invalid --idle '500ms': Linux keepalive takes whole seconds (e.g. 1s, 5s)",
        ),
        (
            &["connect", "h:1", "--idle", "-5"],
            "invalid --idle '-5': not a duration (use 5, 5s, 1500ms, 2m)",
        ),
        (
            &["connect", "h:1", "--idle", "soon"],
            "invalid --idle 'soon': not a duration (use 5, 5s, 1500ms, 2m)",
        ),
        (
            &["connect", "h:1", "--intvl", "0"],
            "invalid --intvl '0': must be from 1 to 32767 seconds",
        ),
        (
            &["connect", "h:1", "--intvl", "2.5"],
            "invalid --intvl '2.5': Linux keepalive takes whole seconds (e.g. 1s, 5s)",
        ),
        (
            &["connect", "h:1", "--cnt", "0"],
            "invalid --cnt '0': must be from 1 to 127",
        ),
        (
            &["connect", "h:1", "--cnt", "200"],
            "invalid --cnt '200': must be from 1 to 127",
        ),
        (
            &["connect", "h:1", "--cnt", "-1"],
            "invalid --cnt '-1': not a whole number",
        ),
        (
            &["connect", "h:1", "--cnt", "three"],
            "invalid --cnt 'three': not a whole number",
        ),
        (
            &["connect", "h:1", "--user-timeout", "0"],
            "invalid --user-timeout '0': must be longer than zero (leave it out for off)",
        ),
        (
            &["connect", "h:1", "--user-timeout", "1500us"],
            "invalid --user-timeout '1500us': has millisecond resolution",
        ),
        (
            &["connect", "h:1", "--for", "-1s"],
            "invalid --for '-1s': not a duration (use 5, 5s, 1500ms, 2m)",
        ),
        (
            &["connect", "h:1", "--for", "0"],
            "invalid --for '0': must be longer than zero",
        ),
        (
            &["connect", "h:1", "--connect-timeout", "x"],
            "invalid --connect-timeout 'x': not a duration (use 5, 5s, 1500ms, 2m)",
        ),
        (
            &["connect", "h:1", "--timestamps", "utc"],
            "invalid --timestamps 'utc': must be rel or abs",
        ),
        (
            &["connect", "h:1", "--no-keepalive", "--idle", "5"],
            "--no-keepalive conflicts with --idle: keepalive settings need keepalive on",
        ),
        (
            &["connect", "h:1", "--no-keepalive", "--cnt", "3"],
            "--no-keepalive conflicts with --cnt: keepalive settings need keepalive on",
        ),
        (
            &["listen", "70000"],
            "invalid [HOST:]PORT '70000': port 70000 is out of range 0..=65535",
        ),
        (
            &["listen", "127.0.0.1"],
            "invalid [HOST:]PORT '127.0.0.1': missing port (expected HOST:PORT)",
        ),
        (
            &["listen", "::1:7000"],
            "invalid [HOST:]PORT '::1:7000': IPv6 address needs brackets, as in [::1]:7000",
        ),
        (
            &[
                "listen",
                "7000",
                "--close-after",
                "1s",
                "--reset-after",
                "1s",
            ],
            "--close-after conflicts with --reset-after: choose one fault",
        ),
        (
            &["listen", "7000", "--close-after", "never"],
            "invalid --close-after 'never': not a duration (use 5, 5s, 1500ms, 2m)",
        ),
        (
            &["listen", "7000", "--max-conns", "0"],
            "invalid --max-conns '0': must be from 1 to 1000000",
        ),
        (
            &["connect", "h:1", "--bogus"],
            "unexpected argument '--bogus' found (see --help)",
        ),
    ];
    for (args, want) in table {
        let out = Command::new(common::bin())
            .args(*args)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr, format!("tcpalive: {want}\n"), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
    }
}

#[test]
fn help_lists_the_exit_codes() {
    let out = Command::new(common::bin())
        .arg("--help")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "4    eof",
        "6    timeout",
        "9    expect-failed",
        "130  interrupted",
    ] {
        assert!(text.contains(line), "help lacks {line:?}");
    }
}
