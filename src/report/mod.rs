//! Renderers: the only code that prints the timeline. Each is a [`Sink`] of events.

mod human;
mod json;
pub mod plan;

pub use human::Human;
pub use json::Json;

use std::io::Write;

use crate::config::{Format, RunConfig};
use crate::model::event::{Event, EventKind, Sink};

/// Builds the sink a run asked for. `tag_conns` prefixes human lines with the
/// connection id (for `listen`, where timelines interleave).
pub fn sink_for(run: &RunConfig, tag_conns: bool) -> Box<dyn Sink> {
    let out: Box<dyn Write> = Box::new(std::io::stdout());
    let sink: Box<dyn Sink> = match run.format {
        Format::Json => Box::new(Json::new(out)),
        Format::Human => Box::new(Human::new(out, run.timestamps, tag_conns)),
    };
    if run.quiet {
        Box::new(OnlyEnd(sink))
    } else {
        sink
    }
}

/// `--quiet`: passes only `end` events.
pub struct OnlyEnd(pub Box<dyn Sink>);

impl Sink for OnlyEnd {
    fn emit(&mut self, event: &Event) -> std::io::Result<()> {
        match event.kind {
            EventKind::End(_) => self.0.emit(event),
            _ => Ok(()),
        }
    }
}

/// Discards everything (the demo's listener side).
pub struct Discard;

impl Sink for Discard {
    fn emit(&mut self, _event: &Event) -> std::io::Result<()> {
        Ok(())
    }
}

/// One diagnostic line on stderr ("tcpalive: ..."). A closed or full stderr is
/// ignored: `eprintln!` would panic there, and there is nobody left to tell.
pub fn diagnostic(message: &dyn std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "tcpalive: {message}");
}
