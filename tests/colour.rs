//! Colour as a user sees it: the human timeline on a real terminal (a pty made by
//! util-linux `script`) and into a pipe, under TERM, NO_COLOR, CLICOLOR and
//! CLICOLOR_FORCE.

mod common;

use std::process::{Command, Stdio};

use common::bin;

const VARS: [&str; 5] = ["TERM", "NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "CI"];

/// A connection refused at once: a timeline whose `end` line is coloured.
fn refused_args() -> Vec<String> {
    ["connect", "127.0.0.1:1", "--connect-timeout", "2s"]
        .map(String::from)
        .to_vec()
}

/// The output of the refused connect, on a pty when `terminal`, else into a pipe.
fn output(terminal: bool, vars: &[(&str, &str)]) -> String {
    let mut cmd = if terminal {
        let line = std::iter::once(bin().to_string())
            .chain(refused_args())
            .collect::<Vec<_>>()
            .join(" ");
        let mut c = Command::new("script");
        c.args(["-q", "-e", "-c", &line, "/dev/null"]);
        c
    } else {
        let mut c = Command::new(bin());
        c.args(refused_args());
        c
    };
    for v in VARS {
        cmd.env_remove(v);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("run (script is util-linux)");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("connect-failed"), "{text:?}");
    text
}

fn coloured(text: &str) -> bool {
    text.contains("\x1b[")
}

#[test]
fn colour_follows_the_conventions() {
    assert!(coloured(&output(true, &[("TERM", "xterm-256color")])));
    assert!(!coloured(&output(true, &[("TERM", "dumb")])), "TERM=dumb");
    assert!(!coloured(&output(true, &[])), "no TERM");
    assert!(!coloured(&output(
        true,
        &[("TERM", "xterm"), ("NO_COLOR", "1")]
    )));
    assert!(!coloured(&output(
        true,
        &[("TERM", "xterm"), ("CLICOLOR", "0")]
    )));
    assert!(coloured(&output(
        true,
        &[("TERM", "dumb"), ("CLICOLOR_FORCE", "1")]
    )));
    assert!(!coloured(&output(false, &[("TERM", "xterm")])), "a pipe");
    assert!(
        coloured(&output(false, &[("CLICOLOR_FORCE", "1")])),
        "forced into a pipe"
    );
    assert!(!coloured(&output(
        false,
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]
    )));
}
