//! `tcpalive completions SHELL`: the completion script, generated from the clap
//! definitions (clap_complete) after two adjustments that the generators do not make
//! themselves: hidden flags (`--dump-once`) are left out (the zsh and fish
//! generators would offer them), and a value with no fixed set and no path meaning
//! (a duration, a count, an address) completes to nothing rather than to file names.
//! Values with a fixed set (`--timestamps`, `--expect`, `--platform`, `--runtime`,
//! lab scenarios, shells) come from the arguments' own possible values.

use clap::builder::ValueHint;
use clap::{Command, CommandFactory};
use clap_complete::Shell;

use crate::cli;

/// The completion script for `shell`.
pub fn script(shell: Shell) -> Vec<u8> {
    let mut cmd = for_completion(&built());
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "tcpalive", &mut out);
    out
}

fn built() -> Command {
    let mut cmd = cli::Cli::command();
    cmd.build();
    cmd
}

/// A copy of the command line definition as completions should see it: visible
/// arguments and subcommands only, free-form values marked as such.
fn for_completion(cmd: &Command) -> Command {
    let mut out = Command::new(cmd.get_name().to_string())
        .disable_help_flag(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true);
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        out = out.version(version.to_string());
    }
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let mut arg = arg.clone();
        let free_form = arg.get_num_args().is_some_and(|n| n.takes_values())
            && arg.get_possible_values().is_empty()
            && arg.get_value_hint() == ValueHint::Unknown;
        if free_form {
            arg = arg.value_hint(ValueHint::Other);
        }
        out = out.arg(arg);
    }
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        out = out.subcommand(for_completion(sub));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(shell: Shell) -> String {
        String::from_utf8(script(shell)).expect("UTF-8")
    }

    #[test]
    fn hidden_flags_are_not_offered() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Elvish,
            Shell::PowerShell,
        ] {
            let t = text(shell);
            assert!(!t.contains("dump-once"), "{shell}");
            assert!(t.contains("metrics-file"), "{shell}");
        }
        // The definition still has it: only completions leave it out.
        assert!(
            built()
                .find_subcommand("watch")
                .is_some_and(|w| w.get_arguments().any(|a| a.get_id() == "dump_once"))
        );
    }

    #[test]
    fn fixed_values_are_offered() {
        let zsh = text(Shell::Zsh);
        assert!(zsh.contains(":rel|abs:(rel abs)"), "--timestamps");
        assert!(
            zsh.contains("(alive eof reset timeout unreachable heartbeat-timeout"),
            "--expect"
        );
        assert!(zsh.contains("(linux macos freebsd windows)"), "--platform");
        let fish = text(Shell::Fish);
        let ts = fish
            .lines()
            .find(|l| l.contains("-l timestamps"))
            .expect("fish --timestamps");
        assert!(ts.contains("-f -a \"rel\\t"), "{ts}");
    }

    #[test]
    fn durations_do_not_complete_to_file_names() {
        let zsh = text(Shell::Zsh);
        let idle = zsh
            .lines()
            .find(|l| l.starts_with("'--idle="))
            .expect("--idle");
        assert!(!idle.ends_with(":_default' \\"), "{idle}");
        let file = zsh
            .lines()
            .find(|l| l.starts_with("'--metrics-file="))
            .expect("--metrics-file");
        assert!(file.contains("_files"), "{file}");
    }
}
