//! `explain CAPTURE`: reads the capture (engine), selects connections (`--conn`),
//! renders each one's timeline, and exits with the selected connection's outcome
//! (several: the worst, with a line saying which).

use std::time::{Duration, UNIX_EPOCH};

use crate::config::RunConfig;
use crate::config::explain::ExplainConfig;
use crate::engine::output::{Delivery, Output};
use crate::engine::run::RunError;
use crate::model::capture::{self, Explained};
use crate::model::event::{EndFacts, Event, EventKind, Outcome};
use crate::model::outcome::Exit;
use crate::report;

pub fn run(cfg: &ExplainConfig) -> Result<EndFacts, RunError> {
    let capture = match crate::engine::capture::read(&cfg.capture) {
        Ok(c) => c,
        Err(e) => return refused(cfg, &e),
    };
    let selected: Vec<&Explained> = capture
        .conns
        .iter()
        .filter(|c| {
            cfg.conn
                .as_ref()
                .is_none_or(|f| f.matches(c.id, c.local, c.peer))
        })
        .collect();
    if selected.is_empty() {
        let why = match &cfg.conn {
            Some(_) if !capture.conns.is_empty() => format!(
                "--conn matches none of the {} connection(s) in {}: {}",
                capture.conns.len(),
                cfg.capture.display(),
                listing(&capture.conns)
            ),
            _ => format!(
                "{} holds no TCP connection ({} frame(s), {} TCP segment(s))",
                cfg.capture.display(),
                capture.frames,
                capture.segments
            ),
        };
        return refused(cfg, &why);
    }
    let mut run = RunConfig::once(cfg.format);
    run.quiet = cfg.quiet;
    run.timestamps = cfg.timestamps;
    let mut sink = report::sink_for(&run, selected.len() > 1, crate::engine::output::stdout());
    // The queue takes what the sink flushed once it is committed: an end always.
    let output = Output::current();
    let mut emit = |event: &Event| -> Result<(), RunError> {
        sink.emit(event)
            .map_err(RunError::output("write the timeline"))?;
        output.commit(match event.kind {
            EventKind::End(_) => Delivery::Always,
            _ => Delivery::Droppable,
        });
        Ok(())
    };
    for note in &capture.notes {
        let event = Event {
            at: Duration::ZERO,
            wall: UNIX_EPOCH.checked_add(capture.start).unwrap_or(UNIX_EPOCH),
            conn: 0,
            kind: EventKind::Warning {
                message: note.clone(),
            },
        };
        emit(&event)?;
    }
    for conn in &selected {
        for event in &conn.events {
            emit(event)?;
        }
    }
    let Some(worst) = capture::worst(&selected) else {
        return refused(cfg, &"no connection selected");
    };
    if selected.len() > 1 {
        report::diagnostic(&format!(
            "{} connections; the exit code is the worst end (connection {}: {}); select one \
             with --conn N or --conn ADDR:PORT",
            selected.len(),
            selected[worst].id,
            selected[worst].end.outcome.name()
        ));
    }
    Ok(selected[worst].end.clone())
}

/// Up to five connections as "1 A -> B, 2 ...", for the error that lists them.
fn listing(conns: &[Explained]) -> String {
    let mut parts: Vec<String> = conns
        .iter()
        .take(5)
        .map(|c| format!("{} {} -> {}", c.id, c.local, c.peer))
        .collect();
    if conns.len() > 5 {
        parts.push(format!("... ({} more)", conns.len() - 5));
    }
    parts.join(", ")
}

/// A capture that cannot be explained (missing, not a capture, no connection
/// `--conn` selects): the stderr line, and with `--json` the timeline's one
/// `end` (outcome error, the usage exit code).
fn refused(cfg: &ExplainConfig, why: &dyn std::fmt::Display) -> Result<EndFacts, RunError> {
    report::diagnostic(why);
    let mut end = EndFacts::new(Outcome::Error, None, why.to_string(), None, None);
    end.exit_code = Exit::Usage.code();
    if cfg.format == crate::config::Format::Json {
        let mut sink = report::sink_for(
            &RunConfig::once(cfg.format),
            false,
            crate::engine::output::stdout(),
        );
        let event = Event {
            at: Duration::ZERO,
            wall: std::time::SystemTime::now(),
            conn: 0,
            kind: EventKind::End(end.clone()),
        };
        sink.emit(&event)
            .map_err(RunError::output("write the timeline"))?;
        Output::current().commit(Delivery::Always);
    }
    Ok(end)
}
