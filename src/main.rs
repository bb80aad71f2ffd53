//! tcpalive: parse, run, exit. Validation, the run and the exit-code table live in
//! the library (`tcpalive::run`, `model::outcome::Exit`).

use std::process::ExitCode;

use clap::Parser;
use tcpalive::cli::Cli;

fn main() -> ExitCode {
    let code = match Cli::try_parse() {
        Ok(cli) => tcpalive::run(&cli.command),
        Err(e) => tcpalive::usage_error(e),
    };
    ExitCode::from(code)
}
