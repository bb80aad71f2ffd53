//! The bash completion script, loaded into a real bash and asked what it offers
//! (COMP_WORDS/COMP_CWORD as bash's programmable completion sets them).

mod common;

use std::process::Command;

use common::bin;

/// What `_tcpalive` puts in COMPREPLY for the words typed so far (the last word is
/// the one being completed).
fn offered(words: &[&str]) -> Vec<String> {
    let script = Command::new(bin())
        .args(["completions", "bash"])
        .output()
        .expect("tcpalive completions bash");
    assert!(script.status.success());
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tcpalive-compl-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("tcpalive.bash");
    std::fs::write(&path, &script.stdout).expect("write script");
    // bash calls the function with the command, the word being completed and the
    // word before it.
    // A file the current directory holds: offered only where a path is wanted.
    std::fs::write(dir.join("a-file.prom"), "").expect("file");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}; \
         _tcpalive tcpalive '{}' '{}' 2>/dev/null; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display(),
        quoted.join(" "),
        words.len() - 1,
        words.join(" "),
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .current_dir(&dir)
        .output()
        .expect("bash");
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn values_are_offered() {
    assert_eq!(
        offered(&["tcpalive", "connect", "h:1", "--timestamps", ""]),
        ["rel", "abs"]
    );
    assert_eq!(
        offered(&["tcpalive", "connect", "h:1", "--timestamps", "a"]),
        ["abs"]
    );
    let outcomes = offered(&["tcpalive", "connect", "h:1", "--expect", ""]);
    for o in ["alive", "eof", "reset", "timeout", "heartbeat-timeout"] {
        assert!(outcomes.iter().any(|x| x == o), "{o} in {outcomes:?}");
    }
    assert!(offered(&["tcpalive", "completions", ""]).contains(&"zsh".to_string()));
    assert!(offered(&["tcpalive", "plan", "--runtime", "py"]) == ["python"]);
    assert!(offered(&["tcpalive", "lab", "cab"]) == ["cable-pull"]);
}

#[test]
fn file_names_only_where_a_path_is_wanted() {
    assert!(
        offered(&["tcpalive", "connect", "h:1", "--idle", "a"])
            .iter()
            .all(|o| o != "a-file.prom")
    );
    assert!(
        offered(&["tcpalive", "connect", "h:1", "--expect", "a"])
            .iter()
            .all(|o| o != "a-file.prom")
    );
    assert_eq!(
        offered(&["tcpalive", "watch", "--metrics-file", "a"]),
        ["a-file.prom"],
        "--metrics-file takes a path"
    );
}

#[test]
fn hidden_flags_are_not_offered() {
    let flags = offered(&["tcpalive", "watch", "--"]);
    assert!(flags.iter().any(|f| f == "--metrics"), "{flags:?}");
    assert!(!flags.iter().any(|f| f == "--dump-once"), "{flags:?}");
}
