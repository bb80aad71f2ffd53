//! tcpalive: a TCP connection liveness probe. See when a dead peer is noticed, and
//! prove it.
//!
//! The crate is laid out by responsibility: `cli` (clap types) and `config`
//! (validated settings) are the two argument stages; `model` is the pure domain
//! (outcomes and the exit table, events, prediction, timeline, heartbeat protocol,
//! watch inference, expectations); `sys` is the one platform boundary; `engine`
//! runs connections (clock, reporter, signals, sessions); `report` renders events;
//! `cmd` wires each subcommand. `main.rs` only parses, runs and exits.

pub mod cli;
pub mod cmd;
pub mod config;
pub mod engine;
pub mod model;
pub mod report;
pub mod sys;

use crate::cmd::Failure;
use crate::engine::run::RunError;
use crate::model::outcome::Exit;

/// Runs a parsed command line to its end and says how the process exits. Errors
/// of tcpalive itself and `--expect` misses get their one stderr line here.
pub fn run(command: &cli::Command) -> u8 {
    match cmd::dispatch(command) {
        Ok(end) => {
            if let Some(why) = &end.expect_failure {
                report::diagnostic(why);
            }
            end.exit_code
        }
        Err(Failure::Usage(msg)) => {
            report::diagnostic(&msg);
            Exit::Usage.code()
        }
        Err(Failure::Run(RunError::OutputClosed)) => Exit::OutputClosed.code(),
        Err(Failure::Run(e)) => {
            report::diagnostic(&error_chain(&e));
            Exit::Error.code()
        }
    }
}

/// An error and its causes on one line ("cannot bind 1.2.3.4:80: Address in use").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// clap's own errors (unknown flag, missing value) as one line, exit 2; help and
/// version go to stdout with exit 0.
pub fn usage_error(e: clap::Error) -> u8 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                Exit::Usage.code()
            } else {
                Exit::Outcome(model::outcome::Outcome::Alive).code()
            }
        }
        _ => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            report::diagnostic(&format!("{first} (see --help)"));
            Exit::Usage.code()
        }
    }
}
