//! Renderers: the only code that prints the timeline. Each is a [`Sink`] of events.

mod human;
mod json;
pub mod man;
pub mod plan;
pub mod prometheus;

pub use human::Human;
pub use json::Json;

use std::io::Write;

use crate::config::{Format, RunConfig};
use crate::model::event::{Event, EventKind, Sink};

/// Builds the sink a run asked for. `tag_conns` prefixes human lines with the
/// connection id (for `listen`, where timelines interleave).
pub fn sink_for(run: &RunConfig, tag_conns: bool, out: Box<dyn Write>) -> Box<dyn Sink> {
    let sink: Box<dyn Sink> = match run.format {
        Format::Json => Box::new(Json::new(out)),
        Format::Human => Box::new(Human::new(out, run.timestamps, tag_conns).verbose(run.verbose)),
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

/// Hands every event to each sink in turn (the timeline and the metrics).
pub struct Tee(pub Vec<Box<dyn Sink>>);

impl Sink for Tee {
    fn emit(&mut self, event: &Event) -> std::io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.emit(event))
    }
}

/// Text that is not a timeline (a plan, a scenario list, completions) to stdout,
/// whole, flushed.
pub fn print_all(text: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text)?;
    out.flush()
}

/// One diagnostic line on stderr ("tcpalive: ..."). A closed or full stderr is
/// ignored: `eprintln!` would panic there, and there is nobody left to tell.
pub fn diagnostic(message: &dyn std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "tcpalive: {message}");
}

#[cfg(test)]
mod samples;

#[cfg(test)]
pub(crate) mod test_output {
    //! A `Write` a renderer test reads back after the renderer took ownership.

    use std::cell::RefCell;
    use std::io::Write;
    use std::rc::Rc;

    #[derive(Clone, Default)]
    pub struct Shared(pub Rc<RefCell<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

#[cfg(test)]
mod snapshot_tests {
    //! Both renderers over one event of every kind, snapshot-tested (insta): a
    //! change of the output is a reviewed change of its snapshot.

    use std::collections::BTreeSet;

    use super::samples::{KINDS, kind_name_is_covered, one_of_each};
    use super::*;
    use crate::config::Timestamps;

    use crate::report::test_output::Shared;

    fn render(mut sink: impl Sink, buf: &Shared) -> String {
        for event in one_of_each() {
            sink.emit(&event).expect("render");
        }
        String::from_utf8(buf.0.borrow().clone()).expect("UTF-8")
    }

    #[test]
    fn the_samples_cover_every_event_kind() {
        let names: BTreeSet<&str> = one_of_each()
            .iter()
            .map(|e| kind_name_is_covered(&e.kind))
            .collect();
        assert_eq!(names.len(), KINDS, "{names:?}");
    }

    /// `--verbose`: every event in full, one line each.
    #[test]
    fn human_renders_every_event_kind() {
        let buf = Shared::default();
        let text = render(
            Human::with_color(Box::new(buf.clone()), Timestamps::Relative, true, false)
                .verbose(true),
            &buf,
        );
        insta::assert_snapshot!(text);
    }

    /// The default view: details the core marks as such left out, short forms,
    /// no line wider than 160 columns.
    #[test]
    fn human_default_view_of_every_event_kind() {
        let buf = Shared::default();
        let text = render(
            Human::with_color(Box::new(buf.clone()), Timestamps::Relative, true, false),
            &buf,
        );
        for line in text.lines() {
            assert!(line.chars().count() <= human::WIDTH, "{line}");
        }
        insta::assert_snapshot!(text);
    }

    #[test]
    fn human_renders_absolute_timestamps() {
        let buf = Shared::default();
        let text = render(
            Human::with_color(Box::new(buf.clone()), Timestamps::Absolute, false, false),
            &buf,
        );
        insta::assert_snapshot!(text.lines().take(3).collect::<Vec<_>>().join("\n"));
    }

    #[test]
    fn absolute_timestamps_put_every_time_on_the_wall_clock() {
        let buf = Shared::default();
        let text = render(
            Human::with_color(Box::new(buf.clone()), Timestamps::Absolute, false, false)
                .verbose(true),
            &buf,
        );
        for line in text.lines() {
            let run_time = line
                .as_bytes()
                .windows(2)
                .any(|w| w[0] == b'+' && w[1].is_ascii_digit());
            assert!(!run_time, "a run time in an absolute line: {line}");
        }
        let buf = Shared::default();
        let rel = render(
            Human::with_color(Box::new(buf.clone()), Timestamps::Relative, false, false)
                .verbose(true),
            &buf,
        );
        assert!(rel.contains("last contact with the peer at +"), "{rel}");
        assert!(text.contains("last contact with the peer at 20"), "{text}");
    }

    #[test]
    fn json_renders_every_event_kind() {
        let buf = Shared::default();
        let text = render(Json::new(Box::new(buf.clone())), &buf);
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("one JSON object");
            assert!(v["event"].is_string() && v["t"].is_number(), "{line}");
        }
        insta::assert_snapshot!(text);
    }
}
