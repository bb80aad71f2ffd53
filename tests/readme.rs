//! The sample output of README.md and docs/*.md stays true: every block marked
//! `<!-- sample: NAME -->` is rerun with this build (scripts/readme-samples.sh
//! --print NAME) and compared with the block, numbers normalised. Times, ports,
//! PIDs and counts vary from run to run; the lines, their order, their events and
//! their words may not. `scripts/readme-samples.sh` regenerates the blocks.

mod common;

use std::process::Command;

use common::bin;

/// Lines that depend on what else the host is doing, not on tcpalive: left out of
/// the comparison on both sides.
const HOST_DEPENDENT: [&str; 2] = [
    // watch subscribes to every socket's destroy notification; a busy host (other
    // test binaries, other users) can overflow the buffer at any moment.
    "destroy notifications were lost",
    // watch stretches its discovery period to what a dump costs in CPU, which a
    // loaded host raises (and says so).
    "discovery: one dump of",
];

/// Events whose number and place among the others depend on when the kernel was
/// sampled, per sample: left out of its comparison. The heartbeat sample is about
/// its heartbeats, warnings and end; the counters' `data`, `idle` and
/// `prediction` lines come with whichever sample saw the reply first.
fn timing_dependent(sample: &str) -> &'static [&'static str] {
    match sample {
        "heartbeat-expect" => &["data", "idle", "prediction"],
        _ => &[],
    }
}

/// The event name of a human line (`+1.234s [1] probe ...`), if it has one.
fn event_of(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace().skip(1);
    let word = words.next()?;
    if word.starts_with('[') {
        words.next()
    } else {
        Some(word)
    }
}

/// humantime writes `1s 1ms` or `1s`: after the numbers went, a run of duration
/// words is one duration.
fn merge_durations(line: &str) -> String {
    let is_duration = |w: &str| {
        let core = w.trim_end_matches([',', ';', ':', ')']);
        core.strip_prefix('#')
            .is_some_and(|unit| ["ns", "us", "ms", "s", "m", "h", "d"].contains(&unit))
    };
    let mut out: Vec<String> = Vec::new();
    let mut in_duration = false;
    for w in line.split(' ') {
        if is_duration(w) {
            if in_duration {
                let tail: String = w
                    .chars()
                    .rev()
                    .take_while(|c| ",;:)".contains(*c))
                    .collect();
                let last = out.last_mut().expect("a duration word before");
                *last = format!("#d{}", tail.chars().rev().collect::<String>());
                continue;
            }
            in_duration = true;
            let tail: String = w
                .chars()
                .rev()
                .take_while(|c| ",;:)".contains(*c))
                .collect();
            out.push(format!("#d{}", tail.chars().rev().collect::<String>()));
        } else {
            in_duration = false;
            out.push(w.to_string());
        }
    }
    out.join(" ")
}

/// The default view wraps a line wider than 160 columns under its text column;
/// where it wraps depends on how many digits the numbers had. Each event's line
/// is joined back into one here (a time column has at most 8 leading spaces, a
/// continuation over 12).
fn unwrap_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        match lines.last_mut() {
            Some(last) if indent > 12 => {
                last.push(' ');
                last.push_str(line.trim());
            }
            _ => lines.push(line.to_string()),
        }
    }
    lines
}

/// The lines of `sample` as compared.
fn normalise_sample(sample: &str, text: &str) -> Vec<String> {
    let skip = timing_dependent(sample);
    let kept: Vec<String> = unwrap_lines(text)
        .into_iter()
        .filter(|l| !event_of(l).is_some_and(|e| skip.contains(&e)))
        .collect();
    normalise(&kept.join("\n"))
}

/// Numbers become `#`, runs of spaces one space (the time column is right-aligned),
/// a humantime duration one `#d`.
fn normalise(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !HOST_DEPENDENT.iter().any(|h| l.contains(h)))
        .collect();
    lines
        .into_iter()
        .map(|line| {
            let mut out = String::new();
            let mut in_number = false;
            let mut last_space = false;
            for c in line.chars() {
                if c.is_ascii_digit() {
                    if !in_number {
                        out.push('#');
                    }
                    in_number = true;
                    last_space = false;
                    continue;
                }
                in_number = false;
                if c == ' ' {
                    if !last_space {
                        out.push(' ');
                    }
                    last_space = true;
                } else {
                    out.push(c);
                    last_space = false;
                }
            }
            merge_durations(out.trim_start())
        })
        .collect()
}

/// (name, block text) of every marked block.
fn blocks(readme: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = readme;
    // A marker is a line of its own (prose may quote one inside backquotes).
    while let Some(start) = rest.find("\n<!-- sample: ") {
        let after = &rest[start + "\n<!-- sample: ".len()..];
        let name_end = after.find(" -->").expect("marker closes");
        let name = after[..name_end].to_string();
        let body = &after[name_end + " -->".len()..];
        let body = body
            .strip_prefix("\n```text\n")
            .unwrap_or_else(|| panic!("sample {name}: a ```text fence follows the marker"));
        let end = body
            .find("\n```\n<!-- /sample -->")
            .unwrap_or_else(|| panic!("sample {name}: ``` then <!-- /sample --> ends it"));
        out.push((name, body[..end].to_string()));
        rest = &body[end..];
    }
    out
}

/// README.md and every docs/*.md, as (path, text).
fn documents() -> Vec<(std::path::PathBuf, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, text)
        })
        .collect()
}

fn run_sample(name: &str) -> String {
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/readme-samples.sh"
        ))
        .args(["--print", name])
        .env("TCPALIVE_BIN", bin())
        .output()
        .expect("run scripts/readme-samples.sh");
    assert!(
        out.status.success(),
        "sample {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn first_difference(want: &[String], got: &[String]) -> String {
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        if w != g {
            return format!("line {}:\n  README: {w}\n  run:    {g}", i + 1);
        }
    }
    format!(
        "README has {} lines, the run {}:\n  README: {:?}\n  run:    {:?}",
        want.len(),
        got.len(),
        want.get(got.len()),
        got.get(want.len())
    )
}

/// Samples whose run differs without root (they are taken as root, as CI runs).
const ROOT_SAMPLES: [&str; 1] = ["watch"];

#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs root and network namespaces (cargo test --features lab)"
)]
fn readme_samples_match_a_fresh_run() {
    let samples: Vec<(String, String)> = documents()
        .iter()
        .flat_map(|(_, text)| blocks(text))
        .collect();
    let names: Vec<&str> = samples.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        ["demo", "watch", "metrics", "heartbeat-expect"]
            .iter()
            .all(|n| names.contains(n)),
        "{names:?}"
    );
    // One at a time: the samples time things, and compete for the CPU otherwise.
    for (name, block) in &samples {
        if ROOT_SAMPLES.contains(&name.as_str()) && !common::is_root() {
            common::lab_skipped(
                "readme",
                &format!("README sample {name}"),
                "taken as root: watch reads this host's conntrack table (CAP_NET_ADMIN); \
                 a user's run adds the warning that it cannot",
            );
            continue;
        }
        let want = normalise_sample(name, block);
        assert!(!want.is_empty(), "sample {name} is empty");
        // A second run only when the first differs: a loaded machine can delay a
        // timer past the point a run's shape depends on; a changed text differs
        // twice.
        let mut got = normalise_sample(name, &run_sample(name));
        if got != want {
            let first = first_difference(&want, &got);
            eprintln!("sample {name} differed once ({first}); running it again");
            got = normalise_sample(name, &run_sample(name));
        }
        assert!(
            got == want,
            "README sample {name} is no longer what tcpalive prints ({}); run \
             scripts/readme-samples.sh {name} and review the diff",
            first_difference(&want, &got)
        );
    }
}

#[test]
fn normalising_keeps_words_and_drops_numbers() {
    assert_eq!(
        normalise("  +1.034s probe        #1 sent (due at +0.999s)"),
        ["+#.#s probe ## sent (due at +#.#s)"]
    );
    assert_eq!(
        normalise("+12.5s end   exit 6\n warning destroy notifications were lost (x)"),
        ["+#.#s end exit #"]
    );
    assert_ne!(normalise("probe #1 sent"), normalise("probe #1 answered"));
    assert_eq!(
        normalise("unanswered for 1s 1ms; x"),
        normalise("unanswered for 1s; x")
    );
    assert_eq!(
        normalise("(--for 1s 500ms elapsed)"),
        ["(--for #d elapsed)"]
    );
    assert_ne!(normalise("after 1s"), normalise("after 1 s"));
    assert_eq!(
        normalise_sample(
            "demo",
            "  +1.0s watched      a b c\n                       d e\n  +2.0s end x"
        ),
        normalise_sample(
            "demo",
            "  +1.0s watched      a b\n                       c d e\n  +2.0s end x"
        )
    );
    assert_eq!(
        normalise_sample(
            "heartbeat-expect",
            "  +1.0s heartbeat    #2 sent\n  +1.0s data         34 bytes in\n  +1.1s end x"
        ),
        ["+#.#s heartbeat ## sent", "+#.#s end x"]
    );
}

/// The README is a front page: short, every link into docs/ resolves, and no user
/// document names the tracker's issue numbers.
#[test]
fn the_readme_is_a_front_page_and_its_links_resolve() {
    let docs = documents();
    let (_, readme) = &docs[0];
    let lines = readme.lines().count();
    assert!(lines <= 350, "README.md has {lines} lines (at most 350)");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (path, text) in &docs {
        let dir = path.parent().expect("a parent");
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').expect("a link closes");
            let target = after[..end].split('#').next().unwrap_or("");
            if !target.is_empty() && !target.contains("://") {
                assert!(
                    dir.join(target).exists(),
                    "{}: link to {target}, which does not exist",
                    path.display()
                );
            }
            rest = &after[end..];
        }
        let name = path
            .strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string();
        // The architecture notes are for contributors, who may cite the tracker.
        if name.ends_with("ARCHITECTURE.md") || name.ends_with("kernel-facts.md") {
            continue;
        }
        let lower = text.to_lowercase();
        for (i, _) in lower.match_indices("issue ") {
            let next = lower[i + "issue ".len()..].chars().next();
            assert!(
                !next.is_some_and(|c| c.is_ascii_digit()),
                "{name} names an issue number: {}",
                &text[i..(i + 12).min(text.len())]
            );
        }
    }
}
