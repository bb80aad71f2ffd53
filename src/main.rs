//! tcpalive: parse, validate, run, and map the outcome to an exit code.

mod cli;
mod cmd;
mod config;
#[cfg(test)]
mod config_props;
mod event;
mod expect;
mod heartbeat;
#[cfg(test)]
mod heartbeat_props;
mod keepalive;
mod observe;
mod poller;
mod report;
mod run;
mod session;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};
use crate::config::{ConnectConfig, ListenConfig, WatchConfig};
use crate::event::{EndFacts, Outcome};
use crate::run::{Clock, Reporter, RunError, Signals};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let code = match run(&cli.command) {
        Ok(end) => {
            if let Some(why) = &end.expect_failure {
                eprintln!("tcpalive: {why}");
            }
            end.exit_code
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("tcpalive: {msg}");
            Outcome::Usage.exit_code()
        }
        // stdout went away (`| head -1`): nobody is left to tell; end quietly.
        Err(Failure::Run(RunError::OutputClosed)) => 0,
        Err(Failure::Run(e)) => {
            eprintln!("tcpalive: {:#}", anyhow::Error::from(e));
            Outcome::Error.exit_code()
        }
    };
    ExitCode::from(code)
}

enum Failure {
    Usage(config::ConfigError),
    Run(RunError),
}

impl From<RunError> for Failure {
    fn from(e: RunError) -> Failure {
        Failure::Run(e)
    }
}

/// Runs a command to its final `end`, whose exit code (the outcome's, or 0/9 under
/// --expect) is the process's.
fn run(command: &Command) -> Result<EndFacts, Failure> {
    let clock = Clock::start();
    match command {
        Command::Connect(args) => {
            let cfg = ConnectConfig::from_args(args).map_err(Failure::Usage)?;
            let signals = Signals::install()?;
            let mut rep = Reporter::for_run(clock, &cfg.run, false);
            Ok(cmd::connect::run(&cfg, &mut rep, &signals)?)
        }
        Command::Listen(args) => {
            let cfg = ListenConfig::from_args(args).map_err(Failure::Usage)?;
            let signals = Signals::install()?;
            let mut rep = Reporter::for_run(clock, &cfg.run, true);
            Ok(cmd::listen::run(&cfg, &mut rep, &signals)?)
        }
        Command::Watch(args) => {
            let cfg = WatchConfig::from_args(args).map_err(Failure::Usage)?;
            let signals = Signals::install()?;
            let mut rep = Reporter::for_run(clock, &cfg.run, true);
            Ok(cmd::watch::run(&cfg, &mut rep, &signals)?)
        }
        Command::Demo(args) => {
            let signals = Signals::install()?;
            Ok(cmd::demo::run(args, clock, &signals)?)
        }
        Command::Completions(args) => Ok(print_generated(|out| {
            clap_complete::generate(args.shell, &mut cli::Cli::command(), "tcpalive", out);
            Ok(())
        })?),
        Command::Man => Ok(print_generated(|out| {
            clap_mangen::Man::new(cli::Cli::command()).render(out)
        })?),
    }
}

/// Writes generated text (completions, man page) to stdout; a closed pipe ends
/// quietly. The text is built in memory first: clap_complete panics on a failed write.
fn print_generated(
    generate: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
) -> Result<EndFacts, RunError> {
    use std::io::Write;
    let mut text = Vec::new();
    generate(&mut text).map_err(RunError::io("generate the text"))?;
    let mut out = std::io::stdout().lock();
    out.write_all(&text)
        .and_then(|_| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => RunError::OutputClosed,
            _ => RunError::Io {
                op: "write to stdout",
                source: e,
            },
        })?;
    Ok(EndFacts::new(
        Outcome::Alive,
        None,
        String::new(),
        None,
        None,
    ))
}

/// clap's own errors (unknown flag, missing value) as one line, exit 2; help and
/// version go to stdout with exit 0.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(Outcome::Usage.exit_code())
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("tcpalive: {first} (see --help)");
            ExitCode::from(Outcome::Usage.exit_code())
        }
    }
}
