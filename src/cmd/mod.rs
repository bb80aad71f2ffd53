//! The subcommands: each wires sockets, the observer and the reporter together.
//! [`dispatch`] validates a parsed command line and runs the command to its end.

pub mod connect;
pub mod demo;
pub mod listen;
pub mod reconnect;
pub mod watch;

use clap::CommandFactory;

use crate::cli::{self, Command};
use crate::config::{self, ConnectConfig, ListenConfig, WatchConfig};
use crate::engine::run::{Clock, Reporter, RunError, Signals};
use crate::model::event::{EndFacts, Outcome};

/// Why a command did not reach its `end`.
pub enum Failure {
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
pub fn dispatch(command: &Command) -> Result<EndFacts, Failure> {
    let clock = Clock::start();
    match command {
        Command::Connect(args) => {
            let cfg = ConnectConfig::from_args(args).map_err(Failure::Usage)?;
            let signals = Signals::install()?;
            let mut rep = Reporter::for_run(clock, &cfg.run, false);
            Ok(connect::run(&cfg, &mut rep, &signals)?)
        }
        Command::Listen(args) => {
            let cfg = ListenConfig::from_args(args).map_err(Failure::Usage)?;
            let signals = Signals::install()?;
            let mut rep = Reporter::for_run(clock, &cfg.run, true);
            Ok(listen::run(&cfg, &mut rep, &signals)?)
        }
        Command::Watch(args) => {
            let cfg = WatchConfig::from_args(args).map_err(Failure::Usage)?;
            let signals = Signals::install()?;
            let mut rep = Reporter::for_run(clock, &cfg.run, true);
            Ok(watch::run(&cfg, &mut rep, &signals)?)
        }
        Command::Demo(args) => {
            let signals = Signals::install()?;
            Ok(demo::run(args, clock, &signals)?)
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
