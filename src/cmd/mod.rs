//! The subcommands: each wires sockets, the observer and the reporter together.
//! [`run`] runs a validated command line (`config::Config`) to its end; [`prepare`]
//! does first what must happen while the process has one thread.

pub mod completions;
pub mod connect;
pub mod explain;
pub mod idle_limit;
pub mod lab;
pub mod listen;
pub mod man;
pub mod plan;
pub mod tune;
pub mod watch;

use crate::config::{Config, LabCommand};
use crate::engine::event_loop::Signals;
use crate::engine::run::{Clock, Reporter, RunError};
use crate::model::event::Finished;

/// What must happen while the process has one thread, before anything starts one
/// (the stdout writer, a resolver): `lab` and `demo` enter their private network
/// namespace, which unshare(2) of a user namespace refuses to a threaded process.
pub fn prepare(config: &Config) -> Result<(), RunError> {
    match config {
        Config::Lab(LabCommand::Run(_)) | Config::Demo(_) => {
            crate::sys::netns::enter_private_network()?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Runs a validated command line to its final `end`, whose exit code (the
/// outcome's, or the `--expect` verdict's) is the process's.
pub fn run(config: Config, clock: Clock) -> Result<Finished, RunError> {
    let end = match config {
        Config::Connect(cfg) => {
            let signals = Signals::install()?;
            let mut rep = Reporter::for_run(clock, &cfg.run, false);
            connect::run(&cfg, &mut rep, &signals)?
        }
        Config::Listen(cfg) => {
            let signals = Signals::install()?;
            let mut rep = Reporter::for_run(clock, &cfg.run, true);
            listen::run(&cfg, &mut rep, &signals)?
        }
        Config::Watch(cfg) => watch::run(&cfg, clock)?,
        Config::Lab(LabCommand::List { json }) => return lab::list(json),
        Config::Lab(LabCommand::Run(cfg)) => lab::run_private(&cfg, clock)?,
        Config::Demo(cfg) => lab::run_private(&cfg, clock)?,
        Config::Completions(shell) => {
            return print_generated(|out| {
                out.extend(completions::script(shell));
                Ok(())
            });
        }
        Config::Plan(cfg) => return plan::run(&cfg),
        Config::Tune(cfg) => tune::run(&cfg, clock)?,
        Config::IdleLimit(cfg) => {
            let signals = Signals::install()?;
            let mut rep = Reporter::for_run(clock, &cfg.run, false);
            idle_limit::run(&cfg, &mut rep, &signals)?
        }
        Config::Man(cfg) => return man::run(&cfg),
        Config::Explain(cfg) => explain::run(&cfg)?,
    };
    Ok(Finished::Ended(Box::new(end)))
}

/// Whether the command installs the signal handlers ([`Signals::install`]) and
/// ends with an `end` line on SIGINT/SIGTERM; the others keep the default actions.
pub fn catches_signals(config: &Config) -> bool {
    matches!(
        config,
        Config::Connect(_)
            | Config::Listen(_)
            | Config::Watch(_)
            | Config::Lab(LabCommand::Run(_))
            | Config::Demo(_)
            | Config::Tune(_)
            | Config::IdleLimit(_)
    )
}

/// Writes generated text (completions) to stdout; a closed pipe ends
/// quietly. The text is built in memory first: clap_complete panics on a failed write.
fn print_generated(
    generate: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
) -> Result<Finished, RunError> {
    let mut text = Vec::new();
    generate(&mut text).map_err(RunError::io("generate the text"))?;
    print_text(&text)
}

/// A command whose output is text, not a timeline (a listing, a page, a plan): the
/// text to stdout. It has no outcome, only that it was printed.
pub fn print_text(text: &[u8]) -> Result<Finished, RunError> {
    crate::report::print_all(text).map_err(RunError::output("write to stdout"))?;
    Ok(Finished::Printed)
}
