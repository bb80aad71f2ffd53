//! The README's sample output stays true: every block marked
//! `<!-- sample: NAME -->` is rerun with this build (scripts/readme-samples.sh
//! --print NAME) and compared with the block, numbers normalised. Times, ports,
//! PIDs and counts vary from run to run; the lines, their order, their events and
//! their words may not. `scripts/readme-samples.sh` regenerates the blocks.

mod common;

use std::process::Command;

use common::bin;

/// Lines that depend on what else the host is doing, not on tcpalive: left out of
/// the comparison on both sides.
const HOST_DEPENDENT: [&str; 1] = [
    // watch subscribes to every socket's destroy notification; a busy host (other
    // test binaries, other users) can overflow the buffer at any moment.
    "destroy notifications were lost",
];

/// `watch` sometimes restates, on its second dump, a last contact from before it
/// started as an `idle` event "at +0.000s" with the prediction after it (the
/// kernel's last-receive time is in jiffies; reported to the team): the pair is
/// timing, not output, and is left out on both sides.
fn drop_restated_contact(lines: Vec<&str>) -> Vec<&str> {
    let mut out = Vec::new();
    let mut skip_prediction = false;
    for line in lines {
        if line.contains(" idle ") && line.ends_with("last contact with the peer at +0.000s") {
            skip_prediction = true;
            continue;
        }
        if skip_prediction && line.contains(" prediction ") {
            skip_prediction = false;
            continue;
        }
        skip_prediction = false;
        out.push(line);
    }
    out
}

/// Numbers become `#`, runs of spaces one space (the time column is right-aligned).
fn normalise(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !HOST_DEPENDENT.iter().any(|h| l.contains(h)))
        .collect();
    drop_restated_contact(lines)
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
            out.trim_start().to_string()
        })
        .collect()
}

/// (name, block text) of every marked block.
fn blocks(readme: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = readme;
    while let Some(start) = rest.find("<!-- sample: ") {
        let after = &rest[start + "<!-- sample: ".len()..];
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

#[test]
#[cfg_attr(
    not(feature = "lab"),
    ignore = "lab: needs root and network namespaces (cargo test --features lab)"
)]
fn readme_samples_match_a_fresh_run() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let samples = blocks(&readme);
    let names: Vec<&str> = samples.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        ["demo", "watch", "metrics", "heartbeat-expect"]
            .iter()
            .all(|n| names.contains(n)),
        "{names:?}"
    );
    // One at a time: the samples time things, and compete for the CPU otherwise.
    for (name, block) in &samples {
        let want = normalise(block);
        assert!(!want.is_empty(), "sample {name} is empty");
        // A second run only when the first differs: a loaded machine can delay a
        // timer past the point a run's shape depends on; a changed text differs
        // twice.
        let mut got = normalise(&run_sample(name));
        if got != want {
            let first = first_difference(&want, &got);
            eprintln!("sample {name} differed once ({first}); running it again");
            got = normalise(&run_sample(name));
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
        normalise(
            "  +0.1s [1] watched x\n  +0.2s [1] idle         last contact with the peer at +0.000s\n  \
             +0.2s [1] prediction   keepalive-off path\n  +1.5s [1] end y"
        ),
        ["+#.#s [#] watched x", "+#.#s [#] end y"]
    );
    assert_eq!(
        normalise("  +0.2s [1] idle         last contact with the peer at +0.700s").len(),
        1
    );
}
