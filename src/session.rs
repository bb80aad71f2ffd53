//! One monitored connection, driven by an outside event loop: it reads what the
//! peer sends, samples the kernel when its timeline asks, writes when a send plan
//! says so, injects a `listen` fault when due, and decides the outcome when the
//! connection ends.
//!
//! The final errno comes from the failing read or write, never from `SO_ERROR`
//! (DESIGN.md: reading it consumes the soft error that says EHOSTUNREACH).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use socket2::Socket;

use crate::config::{Fault, SendPlan};
use crate::event::{EndFacts, EventKind, Outcome, classify_errno, errno_name};
use crate::keepalive;
use crate::observe::{self, timeline::Timeline};

/// Reads per readiness before yielding to other connections.
const READS_PER_WAKE: usize = 16;
const READ_BUF: usize = 16 * 1024;

pub struct Session {
    pub id: u64,
    sock: Socket,
    timeline: Timeline,
    send: Option<(SendPlan, Duration)>,
    fault: Option<(Fault, Duration)>,
    /// The wake-up time last handed to the event loop's timer queue.
    pub scheduled: Option<Duration>,
}

/// The text of an errno without Rust's " (os error N)" suffix.
pub fn errno_text(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn addr_of(addr: std::io::Result<socket2::SockAddr>) -> std::io::Result<SocketAddr> {
    addr?.as_socket().ok_or_else(|| {
        std::io::Error::new(ErrorKind::InvalidData, "not an internet socket address")
    })
}

impl Session {
    /// Starts following an established, non-blocking socket: `connected`, `config`
    /// (the settings read back from the kernel) and idle-start.
    pub fn start(
        id: u64,
        sock: Socket,
        now: Duration,
        send: Option<SendPlan>,
        fault: Option<Fault>,
    ) -> std::io::Result<(Session, Vec<EventKind>)> {
        let local = addr_of(sock.local_addr())?;
        let peer = addr_of(sock.peer_addr())?;
        let eff = keepalive::read_back(&sock)?;
        let facts = eff.facts(keepalive::system_retries2());
        let timeline = Timeline::new(eff, &facts, now);
        let mut events = vec![
            EventKind::Connected { local, peer },
            EventKind::Config(facts),
        ];
        let fault = fault.map(|f| {
            let after = match f {
                Fault::Close(d) | Fault::Reset(d) => d,
            };
            (f, now + after)
        });
        let send = send.map(|plan| {
            let first = now + plan.every;
            (plan, first)
        });
        let mut session = Session {
            id,
            sock,
            timeline,
            send,
            fault,
            scheduled: None,
        };
        session.sample(now, &mut events);
        Ok((session, events))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    fn sample(&mut self, now: Duration, out: &mut Vec<EventKind>) {
        // A failed TCP_INFO read only costs detail; the outcome comes from read().
        if let Ok(Some(s)) = observe::sample(self.sock.as_fd()) {
            out.extend(self.timeline.observe(now, &s));
        }
    }

    fn end(&self, now: Duration, outcome: Outcome, errno: Option<i32>, message: String) -> EndFacts {
        self.timeline
            .end(now, outcome, errno.map(errno_name), message)
    }

    fn end_with_errno(&self, now: Duration, errno: i32) -> EndFacts {
        self.end(now, classify_errno(errno), Some(errno), errno_text(errno))
    }

    /// The socket is readable or reported an error: sample, then read.
    pub fn on_ready(&mut self, now: Duration, out: &mut Vec<EventKind>) -> Option<EndFacts> {
        self.sample(now, out);
        let mut buf = [0u8; READ_BUF];
        for _ in 0..READS_PER_WAKE {
            match (&self.sock).read(&mut buf) {
                Ok(0) => {
                    return Some(self.end(
                        now,
                        Outcome::Eof,
                        None,
                        "the peer closed the connection (FIN)".to_string(),
                    ));
                }
                // What the peer sends is counted by the kernel (TCP_INFO) and dropped.
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Some(self.end_with_errno(now, e.raw_os_error().unwrap_or(0))),
            }
        }
        None
    }

    /// A timer fired: sample the kernel, inject a due fault, write a due send.
    pub fn on_wake(&mut self, now: Duration, out: &mut Vec<EventKind>) -> Option<EndFacts> {
        self.sample(now, out);
        if let Some((fault, at)) = self.fault
            && now >= at
        {
            return Some(self.inject(now, fault));
        }
        if let Some((plan, at)) = &mut self.send
            && now >= *at
        {
            *at = now + plan.every;
            let payload = vec![b'.'; plan.size];
            self.timeline.note_send(now);
            match (&self.sock).write(&payload) {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => return Some(self.end_with_errno(now, e.raw_os_error().unwrap_or(0))),
            }
        }
        None
    }

    fn inject(&mut self, now: Duration, fault: Fault) -> EndFacts {
        let (result, message) = match fault {
            Fault::Close(_) => (
                self.sock.shutdown(Shutdown::Write),
                "closed by --close-after: FIN sent to the peer",
            ),
            Fault::Reset(_) => (
                self.sock.set_linger(Some(Duration::ZERO)),
                "aborted by --reset-after: RST sent to the peer",
            ),
        };
        match result {
            Ok(()) => self.end(now, Outcome::Alive, None, message.to_string()),
            Err(e) => self.end_with_errno(now, e.raw_os_error().unwrap_or(0)),
        }
    }

    /// When the event loop should call `on_wake` next.
    pub fn next_wake(&self, now: Duration) -> Option<Duration> {
        [
            self.timeline.next_wake(now),
            self.send.as_ref().map(|(_, at)| *at),
            self.fault.map(|(_, at)| at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Ends the session from outside (interrupted, `--for` elapsed).
    pub fn finish(&mut self, now: Duration, outcome: Outcome, message: String, out: &mut Vec<EventKind>) -> EndFacts {
        self.sample(now, out);
        self.end(now, outcome, None, message)
    }
}
