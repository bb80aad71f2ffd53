//! The manual pages, rendered from the program's clap definition (clap_mangen)
//! plus the sections clap does not know: exit status (from the one exit table,
//! `model::outcome::Exit`), the JSON events, examples, and SEE ALSO. The caller
//! passes the clap `Command` (`cmd::man` gives `cli::Cli`'s) and writes the
//! pages where `tcpalive man` was asked to.

use clap::Command;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use crate::model::outcome::{Exit, Outcome};

/// The subcommands that get a page of their own (every visible one).
pub fn page_names(top: &Command) -> Vec<String> {
    let mut cmd = top.clone();
    cmd.build();
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .map(|s| s.get_name().to_string())
        .collect()
}

/// Every page: (file name, roff text). The top page comes first.
pub fn all_pages(top: &Command) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut pages = vec![("tcpalive.1".to_string(), page(top, None)?)];
    for name in page_names(top) {
        pages.push((format!("tcpalive-{name}.1"), page(top, Some(&name))?));
    }
    Ok(pages)
}

/// One page of the program `top` describes: the top page (`None`) or a
/// subcommand's.
pub fn page(top: &Command, sub: Option<&str>) -> std::io::Result<Vec<u8>> {
    let mut top = top.clone().disable_help_subcommand(true);
    top.build();
    let cmd = match sub {
        None => top.clone(),
        Some(name) => top
            .find_subcommand(name)
            .cloned()
            .ok_or_else(|| std::io::Error::other(format!("no page '{name}'")))?
            // Subcommands carry no version of their own; the page footer and the
            // VERSION section show the program's.
            .version(env!("CARGO_PKG_VERSION")),
    };
    let man = Man::new(cmd.clone()).manual("tcpalive manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if sub.is_none() {
        man.render_subcommands_section(&mut out)?;
    }
    let mut roff = Roff::default();
    if sub.is_none() || sub.is_some_and(|s| !matches!(s, "completions" | "man" | "plan")) {
        exit_status(&mut roff);
    }
    if sub.is_some_and(runs_connections) {
        json_events(&mut roff, sub.unwrap_or_default());
    }
    examples(&mut roff, sub);
    see_also(&mut roff, &page_names(&top), sub);
    out.extend_from_slice(roff.render().as_bytes());
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// The subcommands whose exit code is a connection's outcome.
fn runs_connections(name: &str) -> bool {
    matches!(
        name,
        "connect" | "listen" | "watch" | "lab" | "demo" | "tune"
    )
}

fn exit_status(roff: &mut Roff) {
    roff.control("SH", ["EXIT STATUS"]);
    roff.text([roman(
        "One exit code per outcome, the same for every command (the end line and the \
         JSON end event carry it too):",
    )]);
    let rows = Exit::HELP
        .iter()
        .map(|(e, n, m)| (e.code(), *n, *m))
        .chain([(
            Exit::Outcome(Outcome::Terminated).code(),
            "interrupted",
            "SIGTERM; the summary is still printed",
        )]);
    for (code, name, meaning) in rows {
        roff.control("TP", []);
        roff.text([bold(code.to_string()), roman(" "), italic(name)]);
        roff.text([roman(meaning)]);
    }
}

fn json_events(roff: &mut Roff, sub: &str) {
    roff.control("SH", ["JSON OUTPUT"]);
    roff.text([
        roman("With "),
        bold("--json"),
        roman(
            ", the timeline is JSON Lines on stdout, one object per event, flushed per \
             event; the last line is always the end event. Diagnostics go to stderr. \
             Every event has ",
        ),
        bold("event"),
        roman(", "),
        bold("t"),
        roman(" (seconds since start), "),
        bold("time"),
        roman(" (RFC 3339, UTC) and "),
        bold("conn"),
        roman(" (1 for connect; the accept order for listen; 0 for the run itself)."),
    ]);
    let mut rows: Vec<(&str, &str)> = vec![
        (
            "config",
            "keepalive, idle_s, intvl_s, cnt, user_timeout_ms (0 = off), sources (where each \
             value comes from), predicted_detect_s (null: nothing would detect a dead peer)",
        ),
        ("connected", "local, peer"),
        ("idle", "since: the last contact with the peer"),
        (
            "probe",
            "n (1-based, counting from the last answered contact), due",
        ),
        ("probe-acked", "n: the probe that was answered"),
        ("retransmit", "n, unacked"),
        (
            "heartbeat, heartbeat-reply",
            "seq; rtt_ms and the reply bytes",
        ),
        (
            "end",
            "outcome, errno, message, exit_code, detect_s (from the last contact), \
             predicted_detect_s",
        ),
    ];
    if sub == "watch" {
        rows.push((
            "watched",
            "local, peer, pid, process, timer, the settings with their sources, \
             settings_read",
        ));
    }
    for (event, fields) in rows {
        roff.control("TP", []);
        roff.text([bold(event)]);
        roff.text([roman(fields)]);
    }
}

/// (command line, what it shows) per page.
fn example_rows(sub: Option<&str>) -> Vec<(&'static str, &'static str)> {
    match sub {
        None => vec![
            (
                "tcpalive listen 7000",
                "on host B: accept connections and answer heartbeats",
            ),
            (
                "tcpalive connect hostb:7000 --idle 5 --intvl 5 --cnt 3",
                "on host A: a pulled cable is detected 20 s after the last contact (exit 6)",
            ),
            (
                "tcpalive watch --port 6379",
                "is keepalive on for Redis's connections?",
            ),
        ],
        Some("connect") => vec![
            (
                "tcpalive connect db:5432 --idle 5 --intvl 5 --cnt 3 --expect timeout --within 19s..21s",
                "assert from a script that a dead peer is noticed within 19 to 21 s",
            ),
            (
                "tcpalive connect redis:6379 --heartbeat 2s --heartbeat-payload 'PING\\r\\n' --heartbeat-expect +PONG",
                "heartbeats to a server that is not tcpalive; only a +PONG line answers",
            ),
            (
                "tcpalive connect hostb:7000 --heartbeat 1s --reconnect --json",
                "a monitor: every outage with its detection time and downtime, as JSON",
            ),
        ],
        Some("listen") => vec![
            (
                "tcpalive listen 0.0.0.0:7000 --idle 5 --intvl 5 --cnt 3",
                "a peer for connect",
            ),
            (
                "tcpalive listen 7000 --mute",
                "a hung application: the kernel ACKs, nobody answers",
            ),
            (
                "tcpalive listen 7000 --reset-after 10s --once",
                "abort the connection after 10 s",
            ),
        ],
        Some("watch") => vec![
            (
                "tcpalive watch --port 6379",
                "the timelines of every connection on port 6379",
            ),
            (
                "tcpalive watch --pid 1234 --json",
                "the sockets of process 1234 and its children",
            ),
            (
                "tcpalive watch --metrics 127.0.0.1:9464",
                "Prometheus metrics: connections by keepalive state, predicted detection, probes, ends",
            ),
            (
                "tcpalive watch --metrics-file /var/lib/node_exporter/textfile/tcpalive.prom",
                "the same for node_exporter's textfile collector",
            ),
        ],
        Some("plan") => vec![
            (
                "tcpalive plan --runtime node",
                "what Node.js's setKeepAlive(true) detects, and when",
            ),
            (
                "tcpalive plan --detect-within 30s --idle-limit 5m",
                "settings and the code that applies them",
            ),
        ],
        Some("tune") => vec![(
            "tcpalive tune --pid 1234 --idle 30 --intvl 10 --cnt 3 --dry-run",
            "what would change on process 1234's sockets",
        )],
        Some("lab") => vec![
            ("tcpalive lab list", "the scenarios"),
            (
                "tcpalive lab cable-pull --idle 1 --intvl 1 --cnt 3",
                "a pulled cable, in a private namespace",
            ),
        ],
        Some("idle-limit") => vec![(
            "tcpalive idle-limit hostb:7000 --max 10m --verify",
            "how long the path keeps an idle flow, and whether the recommended keepalive beats it",
        )],
        Some("demo") => vec![("tcpalive demo", "answered probes, then a pulled cable")],
        Some("completions") => vec![(
            "tcpalive completions bash > /etc/bash_completion.d/tcpalive",
            "bash completion (also zsh, fish, elvish, powershell)",
        )],
        Some("man") => vec![
            ("tcpalive man connect | man -l -", "read one page"),
            (
                "tcpalive man --dir /usr/local/share/man/man1",
                "install every page",
            ),
        ],
        Some(_) => vec![],
    }
}

fn examples(roff: &mut Roff, sub: Option<&str>) {
    let rows = example_rows(sub);
    if rows.is_empty() {
        return;
    }
    roff.control("SH", ["EXAMPLES"]);
    for (command, what) in rows {
        roff.control("TP", []);
        roff.text([bold(command)]);
        roff.text([roman(what)]);
    }
}

fn see_also(roff: &mut Roff, names: &[String], sub: Option<&str>) {
    roff.control("SH", ["SEE ALSO"]);
    // Page names are not hyphenated across lines.
    roff.control("nh", []);
    let mut refs: Vec<String> = Vec::new();
    if sub.is_some() {
        refs.push("tcpalive(1)".to_string());
    }
    refs.extend(
        names
            .iter()
            .filter(|n| Some(n.as_str()) != sub)
            .map(|n| format!("tcpalive-{n}(1)")),
    );
    refs.extend(["tcp(7)", "socket(7)", "ss(8)"].map(String::from));
    roff.text([roman(refs.join(", "))]);
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn top() -> Command {
        crate::cli::Cli::command()
    }

    #[test]
    fn every_page_the_top_page_lists_exists() {
        let pages = all_pages(&top()).expect("pages");
        let text = String::from_utf8(pages[0].1.clone()).expect("UTF-8");
        for name in page_names(&top()) {
            let file = format!("tcpalive-{name}.1");
            assert!(pages.iter().any(|(f, _)| *f == file), "{file}");
            assert!(
                text.contains(&format!("tcpalive\\-{}(1)", name.replace('-', "\\-"))),
                "{name} not listed"
            );
        }
        assert!(!page_names(&top()).iter().any(|n| n == "help"));
    }

    #[test]
    fn outcome_pages_carry_the_exit_table() {
        let text = String::from_utf8(page(&top(), Some("connect")).expect("page")).expect("UTF-8");
        assert!(text.contains("EXIT STATUS"), "{text}");
        for (exit, name, _) in Exit::HELP {
            assert!(text.contains(&format!("\\fB{}\\fR", exit.code())), "{name}");
        }
        assert!(text.contains("JSON OUTPUT"));
        assert!(text.contains("EXAMPLES"));
    }
}
