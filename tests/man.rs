//! Every man page `tcpalive man --dir` writes renders with `man -l` (groff) without
//! a warning, and every page the top page lists is there.

mod common;

use std::path::Path;
use std::process::Command;

use common::bin;

/// `man -l --warnings FILE`: the rendering's stderr (groff's warnings).
fn render_warnings(page: &Path) -> String {
    let out = Command::new("man")
        .args(["--warnings", "-E", "UTF-8", "-l"])
        .arg(page)
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "0")
        .output()
        .expect("run man (the man-db package; .ci/run installs it)");
    assert!(out.status.success(), "man -l {}: {:?}", page.display(), out);
    assert!(
        !out.stdout.is_empty(),
        "{} rendered nothing",
        page.display()
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_page_renders_without_warnings() {
    let dir = std::env::temp_dir().join(format!("tcpalive-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = Command::new(bin())
        .args(["man", "--dir"])
        .arg(&dir)
        .output()
        .expect("run tcpalive man --dir");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    let top = std::fs::read_to_string(dir.join("tcpalive.1")).expect("tcpalive.1");
    let mut names: Vec<String> = listed.lines().map(str::to_string).collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    for name in &names {
        let page = dir.join(name);
        assert!(page.is_file(), "{name} listed but not written");
        let warnings = render_warnings(&page);
        assert!(warnings.is_empty(), "{name}: {warnings}");
        if let Some(sub) = name
            .strip_prefix("tcpalive-")
            .and_then(|n| n.strip_suffix(".1"))
        {
            assert!(
                top.contains(&format!("tcpalive\\-{}(1)", sub.replace('-', "\\-"))),
                "tcpalive(1) does not list {sub}"
            );
            // `tcpalive man SUB` prints the same page.
            let one = Command::new(bin())
                .args(["man", sub])
                .output()
                .expect("tcpalive man SUB");
            assert_eq!(
                one.stdout,
                std::fs::read(&page).expect("page"),
                "tcpalive man {sub}"
            );
        }
    }
    // Every subcommand the top page lists has its page.
    for line in top.lines() {
        if let Some(rest) = line.strip_prefix("tcpalive\\-")
            && let Some((sub, _)) = rest.split_once("(1)")
        {
            let sub = sub.replace("\\-", "-");
            assert!(
                names.contains(&format!("tcpalive-{sub}.1")),
                "tcpalive(1) lists {sub}, which has no page"
            );
        }
    }
    // The check itself can fail: a page with an unknown request warns.
    let bad = dir.join("bad.1");
    std::fs::write(&bad, ".TH BAD 1\n.SH NAME\nbad\n.XYZZY\n").expect("bad page");
    assert!(
        !render_warnings(&bad).is_empty(),
        "man -l --warnings stays silent"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_page_is_a_usage_error() {
    let out = Command::new(bin())
        .args(["man", "nosuch"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("tcpalive: invalid PAGE 'nosuch': no such page (connect, listen"),
        "{err}"
    );
}

/// `man --dir DIR` creates DIR (and its parents), as `install -d` would: the man1
/// directory of a fresh prefix often does not exist yet.
#[test]
fn man_dir_creates_the_directory() {
    let base = tempfile::tempdir().expect("temp dir");
    let dir = base.path().join("share").join("man").join("man1");
    let out = std::process::Command::new(common::bin())
        .args(["man", "--dir"])
        .arg(&dir)
        .output()
        .expect("run tcpalive man --dir");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("tcpalive.1").is_file());
    assert!(dir.join("tcpalive-connect.1").is_file());
}
