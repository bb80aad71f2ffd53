//! tcpalive: a TCP connection liveness probe. See when a dead peer is noticed, and
//! prove it.
//!
//! The crate is laid out by responsibility: `cli` (clap types) and `config`
//! (validated settings) are the two argument stages; `model` is the pure domain
//! (outcomes and the exit table, events, prediction, timeline, heartbeat protocol,
//! watch inference, expectations); `sys` is the one platform boundary; `engine`
//! runs connections (clock, reporter, signals, sessions); `report` renders events;
//! `cmd` wires each subcommand. `main.rs` only parses, runs and exits.
//!
//! The public surface is the two stages and the run: [`parse`], [`run`], and the
//! `cli` and `config` types (tests check argument vectors and manifests through
//! them). Everything else is private to the crate, so the compiler names code that
//! nothing uses.

pub mod cli;
mod cmd;
pub mod config;
mod engine;
mod model;
mod report;
mod sys;

use crate::config::Config;
use crate::engine::run::RunError;
use crate::model::event::Finished;
use crate::model::outcome::Exit;

/// The second stage and the run: validates the command line, runs it to its end,
/// and says how the process exits. Usage errors, errors of tcpalive itself and
/// `--expect` misses get their one stderr line here.
pub fn run(command: &cli::Command) -> u8 {
    let config = match Config::from_command(command) {
        Ok(config) => config,
        Err(e) => {
            report::diagnostic(&e);
            if config::timeline_json(command) {
                usage_end(e.to_string());
            }
            return Exit::Usage.code();
        }
    };
    let json = config.timeline_format() == Some(config::Format::Json);
    // The stdout writer starts before the run clock does, so its thread costs
    // the timeline nothing; what needs a single-threaded process comes first.
    let mut clock = engine::run::Clock::start();
    let result = cmd::prepare(&config).and_then(|()| {
        engine::output::init();
        if !cmd::catches_signals(&config) {
            engine::event_loop::release_signals();
        }
        clock = engine::run::Clock::start();
        cmd::run(config, clock)
    });
    // Whatever happened, nothing stays held (a failed preparation included).
    engine::event_loop::release_signals();
    // A JSON timeline ends with an `end` line also when tcpalive itself failed,
    // before the run started (port in use, no lab) or during it; stderr still
    // gets the one line below.
    let failure = match &result {
        Err(RunError::OutputClosed) | Ok(_) => None,
        Err(e) => Some(error_chain(e)),
    };
    if json && let (Some(message), Err(e)) = (&failure, &result) {
        let run = config::RunConfig::once(config::Format::Json);
        let mut rep = engine::run::Reporter::for_run(clock, &run, false);
        // A stdout that cannot take it has nobody to tell but stderr, below.
        let _ = rep.error_end(e, message.clone());
    }
    // Queued timeline lines go out before the process exits (a signal cuts the
    // wait short when nobody reads them; a command that caught no signals is
    // ended by one anyway).
    let signals = engine::event_loop::Signals::installed();
    engine::output::drain(
        matches!(&result, Ok(Finished::Ended(end)) if end.outcome.is_signal()),
        || signals.is_some_and(|s| s.pending().is_some()),
    );
    match result {
        Ok(Finished::Printed) => Exit::Done.code(),
        Ok(Finished::Ended(end)) => {
            if let Some(why) = &end.expect_failure {
                report::diagnostic(why);
            }
            end.exit_code
        }
        Err(RunError::OutputClosed) => Exit::OutputClosed.code(),
        Err(_) => {
            report::diagnostic(&failure.unwrap_or_default());
            Exit::Error.code()
        }
    }
}

/// A JSON timeline refused before it started (a value the command line parser
/// took but validation did not: `--pid` of no process): its one `end`, outcome
/// `error` with the usage exit code, straight to stdout (nothing else was
/// written, and no writer thread runs yet).
fn usage_end(message: String) {
    let mut facts =
        model::event::EndFacts::new(model::event::Outcome::Error, None, message, None, None);
    facts.exit_code = Exit::Usage.code();
    let run = config::RunConfig::once(config::Format::Json);
    let mut sink = report::sink_for(&run, false, Box::new(std::io::stdout()));
    let event = model::event::Event {
        at: std::time::Duration::ZERO,
        wall: std::time::SystemTime::now(),
        conn: 0,
        kind: model::event::EventKind::End(facts),
    };
    // A stdout that cannot take it: the stderr line already said it all.
    let _ = sink.emit(&event);
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

/// The first stage: the command line into clap's types. Any failure has already
/// printed its one line (or the help text), and the value is the exit code.
pub fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<cli::Cli, u8> {
    use clap::Parser;
    // Before anything else: a signal from now until the command installs its
    // handlers waits for them (or for `release_signals`) instead of killing the
    // process without its end line.
    engine::event_loop::hold_signals();
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    if let Err(line) = check_utf8(&args) {
        engine::event_loop::release_signals();
        report::diagnostic(&line);
        return Err(Exit::Usage.code());
    }
    cli::Cli::try_parse_from(args).map_err(|e| {
        // Help, version and usage errors print and exit with the default actions.
        engine::event_loop::release_signals();
        usage_error(e)
    })
}

/// Arguments must be UTF-8; the error names the flag the bad value was given to
/// (clap's own message names neither).
pub fn check_utf8(args: &[std::ffi::OsString]) -> Result<(), String> {
    for (i, arg) in args.iter().enumerate().skip(1) {
        if arg.to_str().is_some() {
            continue;
        }
        let shown = config::printable(&arg.to_string_lossy());
        let bytes = arg.as_encoded_bytes();
        if bytes.starts_with(b"--")
            && let Some(eq) = bytes.iter().position(|&b| b == b'=')
        {
            let shown = arg.to_string_lossy();
            let (flag, value) = shown.split_at(eq);
            let value = config::printable(value);
            return Err(format!("invalid {flag} '{}': not UTF-8", &value[1..]));
        }
        let flag = args[i - 1].to_str().filter(|p| p.starts_with('-') && i > 1);
        return Err(match flag {
            Some(flag) => format!("invalid {flag} '{shown}': not UTF-8"),
            None => format!("invalid argument '{shown}': not UTF-8"),
        });
    }
    Ok(())
}

/// clap's own outcomes: help and version go to stdout with exit 0 (exit 1 when
/// stdout cannot take them); errors (unknown flag, missing value) are one line on
/// stderr and exit 2.
pub fn usage_error(e: clap::Error) -> u8 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => match print_clap(&e) {
            Ok(()) => Exit::Done.code(),
            Err(why) => {
                report::diagnostic(&format!("cannot write the help text: {why}"));
                Exit::Error.code()
            }
        },
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = print_clap(&e);
            Exit::Usage.code()
        }
        _ => {
            report::diagnostic(&usage_line(&e));
            Exit::Usage.code()
        }
    }
}

/// clap's `print` ignores a failed write; this reports it (`--help >/dev/full`).
fn print_clap(e: &clap::Error) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", e.render())?;
    out.flush()
}

/// A clap error as the one line tcpalive prints: its message (all of it: clap puts
/// the names of missing arguments on the lines after the first), the argument it
/// concerns when clap says which, and a pointer to --help.
pub fn usage_line(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let text = e.render().to_string();
    let message: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:"))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect();
    let mut line = message.join(" ");
    if let Some(rest) = line.strip_prefix("error: ") {
        line = rest.to_string();
    }
    if line.is_empty() {
        line = "invalid arguments".to_string();
    }
    if e.kind() == clap::error::ErrorKind::InvalidUtf8
        && let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg)
    {
        line.push_str(&format!(" (in {arg})"));
    }
    format!("{line} (see --help)")
}
