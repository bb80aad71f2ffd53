//! What every command shares while it runs: the run clock, the reporter that stamps
//! and hands events to the sink, and the typed errors of a run.

use std::time::{Duration, Instant, SystemTime};

use thiserror::Error;

use crate::config::RunConfig;
use crate::engine::output::{Delivery, MAX_QUEUED, Output};
use crate::model::event::{EndFacts, Event, EventKind, Outcome, Sink};
use crate::model::expect::Expectation;

/// Failures of tcpalive itself (exit code 1), each naming the operation and address.
#[derive(Debug, Error)]
pub enum RunError {
    #[error("cannot {op} {addr}")]
    Socket {
        op: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {op}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// `lab`: no private network namespace (the error names the setting).
    #[error(transparent)]
    Namespace(#[from] crate::sys::netns::NamespaceError),
    /// stdout went away (`| head -1`): stop quietly.
    #[error("output closed")]
    OutputClosed,
}

impl RunError {
    /// The errno behind the failure, when the system gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            RunError::Socket { source, .. } | RunError::Io { source, .. } => source.raw_os_error(),
            RunError::Namespace(e) => Some(e.errno as i32),
            RunError::OutputClosed => None,
        }
    }

    pub fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> RunError {
        move |source| RunError::Io { op, source }
    }

    /// A failed write to stdout: a reader that went away (`| head -1`) ends the run
    /// quietly, anything else is an error of ours.
    pub fn output(op: &'static str) -> impl FnOnce(std::io::Error) -> RunError {
        move |e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => RunError::OutputClosed,
            _ => RunError::Io { op, source: e },
        }
    }

    pub fn socket(
        op: &'static str,
        addr: impl ToString,
    ) -> impl FnOnce(std::io::Error) -> RunError {
        move |source| RunError::Socket {
            op,
            addr: addr.to_string(),
            source,
        }
    }
}

/// Why a run stopped from outside: `--for` elapsed, or a signal.
pub fn stop_message(outcome: Outcome, run_for: Option<Duration>) -> String {
    match (outcome, run_for) {
        (Outcome::Alive, Some(d)) => format!("--for {} elapsed", crate::model::units::typed(d)),
        (Outcome::Alive, None) => "stopped".to_string(),
        (Outcome::Terminated, _) => "interrupted by SIGTERM".to_string(),
        (Outcome::HungUp, _) => "interrupted by SIGHUP".to_string(),
        _ => "interrupted by SIGINT".to_string(),
    }
}

/// Run time since start, with the wall clock read once so the two never disagree.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    wall: SystemTime,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            start: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

/// Stamps events and hands them to the sink; judges `end`s against `--expect`.
/// It owns its handle on the stdout queue and says, per event, whether what the
/// sink wrote may be dropped for a reader that does not read.
pub struct Reporter {
    pub clock: Clock,
    sink: Box<dyn Sink>,
    pub expect: Expectation,
    output: Output,
}

impl Reporter {
    /// A reporter whose sink writes to [`crate::engine::output::stdout`] (or
    /// anywhere else: with nothing staged, committing does nothing).
    pub fn new(clock: Clock, sink: Box<dyn Sink>, expect: Expectation) -> Reporter {
        Reporter {
            clock,
            sink,
            expect,
            output: Output::current(),
        }
    }

    /// The reporter a command's run options ask for: their sink, their expectation.
    pub fn for_run(clock: Clock, run: &RunConfig, tag_conns: bool) -> Reporter {
        Reporter::new(
            clock,
            crate::report::sink_for(run, tag_conns, crate::engine::output::stdout()),
            run.expect.clone(),
        )
    }

    /// The run's `end` when tcpalive itself failed (cannot bind, no lab, an I/O
    /// error of its own), before or during the run: outcome `error`, exit 1, the
    /// message of the stderr line. Not judged against `--expect`: the connection's
    /// end was never seen.
    pub fn error_end(&mut self, e: &RunError, message: String) -> Result<(), RunError> {
        let errno = e
            .errno()
            .filter(|&n| n != 0)
            .map(crate::model::outcome::errno_name);
        let facts = EndFacts::new(Outcome::Error, errno, message, None, None);
        self.emit(0, EventKind::End(facts))
    }

    /// Judges a connection's `end` against the expectation, emits it, returns it.
    pub fn end(&mut self, conn: u64, mut facts: EndFacts) -> Result<EndFacts, RunError> {
        self.expect.judge(&mut facts);
        self.emit(conn, EventKind::End(facts.clone()))?;
        Ok(facts)
    }

    /// Emits one event stamped `at` (run time).
    pub fn emit_at(&mut self, at: Duration, conn: u64, kind: EventKind) -> Result<(), RunError> {
        // Events the unread stdout could not hold are said once it has room, and
        // before an end in any case (delivered like the end itself).
        let delivery = match kind {
            EventKind::End(_) => Delivery::Always,
            _ => Delivery::Droppable,
        };
        let written = self.write_with_dropped(at, conn, kind, delivery);
        self.output.commit(delivery);
        written
    }

    fn write_with_dropped(
        &mut self,
        at: Duration,
        conn: u64,
        kind: EventKind,
        delivery: Delivery,
    ) -> Result<(), RunError> {
        if let Some(dropped) = self.output.take_dropped(delivery) {
            self.write(
                at,
                0,
                EventKind::Warning {
                    message: format!(
                        "stdout is not being read: {dropped} event(s) were dropped (at most {} \
                         KiB is held for a slow reader; the last end line is always kept)",
                        MAX_QUEUED / 1024
                    ),
                },
            )?;
        }
        self.write(at, conn, kind)
    }

    fn write(&mut self, at: Duration, conn: u64, kind: EventKind) -> Result<(), RunError> {
        let event = Event {
            at,
            // A wall clock at the end of SystemTime's range keeps the start's
            // reading rather than panicking; the renderers handle any year.
            wall: self.clock.wall.checked_add(at).unwrap_or(self.clock.wall),
            conn,
            kind,
        };
        self.sink
            .emit(&event)
            .map_err(RunError::output("write the timeline"))
    }

    pub fn emit(&mut self, conn: u64, kind: EventKind) -> Result<(), RunError> {
        self.emit_at(self.clock.now(), conn, kind)
    }

    pub fn emit_all(&mut self, conn: u64, kinds: Vec<EventKind>) -> Result<(), RunError> {
        kinds.into_iter().try_for_each(|k| self.emit(conn, k))
    }
}

/// A warning that can repeat without bound (a peer that resets every connection
/// it opens): the first is reported, then at most one per period, each saying how
/// many were held back since the one before.
#[derive(Debug, Clone)]
pub struct Throttle {
    every: Duration,
    last: Option<Duration>,
    held: u64,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: None,
            held: 0,
        }
    }

    /// `Some(held back since the last report)` when a report is due at run time
    /// `now`; `None` (and one more held back) otherwise.
    pub fn due(&mut self, now: Duration) -> Option<u64> {
        if self
            .last
            .is_some_and(|last| now.saturating_sub(last) < self.every)
        {
            self.held = self.held.saturating_add(1);
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }

    /// The tail of a throttled warning: how many like it were not reported.
    pub fn held_text(held: u64) -> String {
        match held {
            0 => String::new(),
            n => format!(" ({n} more like this since the last report)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_reports_the_first_then_one_per_period_with_a_count() {
        let mut t = Throttle::new(Duration::from_secs(10));
        let at = Duration::from_millis;
        assert_eq!(t.due(at(0)), Some(0));
        for ms in 1..1000 {
            assert_eq!(t.due(at(ms)), None);
        }
        assert_eq!(t.due(at(10_000)), Some(999));
        assert_eq!(t.due(at(10_001)), None);
        assert_eq!(t.due(at(25_000)), Some(1));
    }
}
