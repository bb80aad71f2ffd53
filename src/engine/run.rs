//! What every command shares while it runs: the run clock, the reporter that stamps
//! and hands events to the sink, and the SIGINT/SIGTERM self-pipes that wake the
//! event loop.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant, SystemTime};

use thiserror::Error;

use crate::config::RunConfig;
use crate::model::event::{EndFacts, Event, EventKind, Outcome, Sink};
use crate::model::expect::Expectation;
use crate::sys::{Poller, Ready};

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
    /// stdout went away (`| head -1`): stop quietly.
    #[error("output closed")]
    OutputClosed,
}

impl RunError {
    pub fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> RunError {
        move |source| RunError::Io { op, source }
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
        (Outcome::Alive, Some(d)) => format!("--for {} elapsed", humantime::format_duration(d)),
        (Outcome::Alive, None) => "stopped".to_string(),
        (Outcome::Terminated, _) => "interrupted by SIGTERM".to_string(),
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
pub struct Reporter {
    pub clock: Clock,
    sink: Box<dyn Sink>,
    pub expect: Expectation,
}

impl Reporter {
    pub fn new(clock: Clock, sink: Box<dyn Sink>, expect: Expectation) -> Reporter {
        Reporter {
            clock,
            sink,
            expect,
        }
    }

    /// The reporter a command's run options ask for: their sink, their expectation.
    pub fn for_run(clock: Clock, run: &RunConfig, tag_conns: bool) -> Reporter {
        Reporter::new(
            clock,
            crate::report::sink_for(run, tag_conns),
            run.expect.clone(),
        )
    }

    /// Judges a connection's `end` against the expectation, emits it, returns it.
    pub fn end(&mut self, conn: u64, mut facts: EndFacts) -> Result<EndFacts, RunError> {
        self.expect.judge(&mut facts);
        self.emit(conn, EventKind::End(facts.clone()))?;
        Ok(facts)
    }

    /// Emits one event stamped `at` (run time).
    pub fn emit_at(&mut self, at: Duration, conn: u64, kind: EventKind) -> Result<(), RunError> {
        let event = Event {
            at,
            wall: self.clock.wall + at,
            conn,
            kind,
        };
        self.sink.emit(&event).map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => RunError::OutputClosed,
            _ => RunError::Io {
                op: "write the timeline",
                source: e,
            },
        })
    }

    pub fn emit(&mut self, conn: u64, kind: EventKind) -> Result<(), RunError> {
        self.emit_at(self.clock.now(), conn, kind)
    }

    pub fn emit_all(&mut self, conn: u64, kinds: Vec<EventKind>) -> Result<(), RunError> {
        kinds.into_iter().try_for_each(|k| self.emit(conn, k))
    }
}

/// SIGINT and SIGTERM delivered through self-pipes, so a signal wakes the poll loop
/// without a race and without touching the socket. Other signals are left alone.
pub struct Signals {
    int: UnixStream,
    term: UnixStream,
    // The write ends stay registered with signal-hook for the life of the process.
    _writers: [UnixStream; 2],
}

impl Signals {
    pub fn install() -> Result<Signals, RunError> {
        let (int, int_w) = UnixStream::pair().map_err(RunError::io("create the signal pipe"))?;
        let (term, term_w) = UnixStream::pair().map_err(RunError::io("create the signal pipe"))?;
        for s in [&int, &term, &int_w, &term_w] {
            s.set_nonblocking(true)
                .map_err(RunError::io("create the signal pipe"))?;
        }
        let reg = |sig, w: &UnixStream| -> Result<(), RunError> {
            let w = w
                .try_clone()
                .map_err(RunError::io("create the signal pipe"))?;
            signal_hook::low_level::pipe::register(sig, w)
                .map(|_| ())
                .map_err(RunError::io("install the signal handler"))
        };
        reg(signal_hook::consts::SIGINT, &int_w)?;
        reg(signal_hook::consts::SIGTERM, &term_w)?;
        Ok(Signals {
            int,
            term,
            _writers: [int_w, term_w],
        })
    }

    /// Makes a poller wake (with `token`) when either signal arrives.
    pub fn register(&self, poller: &mut Poller, token: u64) -> Result<(), RunError> {
        for fd in [self.int.as_fd(), self.term.as_fd()] {
            poller
                .add(fd, token, false)
                .map_err(RunError::io("watch signals"))?;
        }
        Ok(())
    }

    /// The interruption that arrived, if the poller reported anything ready. A
    /// wake-up with nothing ready (a timer) skips the two reads; any readiness
    /// checks, so a signal that arrived with the peer's FIN still wins, as it was
    /// sent first.
    pub fn pending_after(&self, ready: &[Ready]) -> Option<Outcome> {
        if ready.is_empty() {
            None
        } else {
            self.pending()
        }
    }

    /// The interruption that arrived, if any (SIGTERM wins when both did).
    pub fn pending(&self) -> Option<Outcome> {
        let drain = |mut s: &UnixStream| {
            let mut buf = [0u8; 16];
            let mut got = false;
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got = true;
            }
            got
        };
        let int = drain(&self.int);
        let term = drain(&self.term);
        if term {
            Some(Outcome::Terminated)
        } else if int {
            Some(Outcome::Interrupted)
        } else {
            None
        }
    }
}
