//! tcpalive: parse, run, exit. Validation, the run and the exit-code table live in
//! the library (`tcpalive::run`, `model::outcome::Exit`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = match tcpalive::parse(std::env::args_os()) {
        Ok(cli) => tcpalive::run(&cli.command),
        Err(code) => code,
    };
    ExitCode::from(code)
}
