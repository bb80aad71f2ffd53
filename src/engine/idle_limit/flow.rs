//! One test flow of `idle-limit`: its connection, its hold, its check, and how
//! the check ended (the path kept the flow, dropped it silently, or reset it).

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::engine::event_loop::EventLoop;
use crate::engine::run::RunError;
use crate::model::event::{EndFacts, Outcome};
use crate::model::heartbeat::{LineReader, Message};
use crate::model::idle_limit::{self as model, Direction, Seen};
use crate::model::outcome::errno_text;
use crate::model::tune::KeepaliveRequest as KeepaliveConfig;

use super::*;

pub(super) enum Phase {
    Connecting {
        deadline: Duration,
    },
    /// `HOLD` sent, waiting for `HELD`.
    Holding {
        sent: Duration,
        deadline: Duration,
    },
    /// Idle since `since` (the `HELD`), until the check.
    Idle {
        since: Duration,
    },
    /// The check's `PING` is out (`follow_up`: after an `in` check got nothing),
    /// `idle` after the flow went idle: for `out`, the idle time the check stands
    /// for (the PING leaves when the loop gets to it, a little after its due time).
    Checking {
        deadline: Duration,
        follow_up: bool,
        idle: Duration,
    },
}

pub(super) struct Flow {
    pub(super) id: u64,
    pub(super) dir: Direction,
    pub(super) idle: Duration,
    /// `--verify`: the keepalive idle this flow holds.
    pub(super) keepalive_idle_s: Option<u32>,
    pub(super) sock: Socket,
    pub(super) phase: Phase,
    /// The round trip of this flow's set-up (HOLD sent to HELD read).
    pub(super) rtt: Duration,
    /// The round trip a check allows for, from the control flow's latest ones
    /// (Control::path_rtt): a flow's own set-up round trip is inflated by the
    /// burst of set-ups (every flow connects at once), which would only slow the
    /// checks down.
    pub(super) path_rtt: Option<Duration>,
    pub(super) lines: LineReader,
    /// The run (its control flow) this flow belongs to.
    pub(super) run: u64,
    /// `--verify` behind a proxy: send a `PING` this often while idle, and when
    /// the next one is due.
    pub(super) refresh: Option<Duration>,
    next_refresh: Option<Duration>,
}

/// A PING on an `in` flow may come this much before the idle time it was asked
/// to wait (plus the set-up round trip): the two ends' clocks tick alike, only
/// the one-way delays differ. Earlier is a listener that does not wait.
const EARLY_PING: Duration = Duration::from_millis(250);

/// What a step of a flow came to.
pub(super) enum Step {
    Pending,
    /// Checked: `None` survived, else what this side saw end it; and the idle
    /// time it stands for (shorter than planned when the flow died while idle).
    Done(Option<Seen>, Duration),
    /// The measurement cannot go on (the far side is not a tcpalive listener...).
    Fatal(Box<EndFacts>),
}

pub(super) fn fatal_end(outcome: Outcome, errno: Option<i32>, message: String) -> Box<EndFacts> {
    Box::new(EndFacts::new(
        outcome,
        errno.map(crate::model::outcome::errno_name),
        message,
        None,
        None,
    ))
}

pub(super) fn fatal(outcome: Outcome, errno: Option<i32>, message: String) -> Step {
    Step::Fatal(fatal_end(outcome, errno, message))
}

/// How a failed read or write of an established test flow counts.
pub(super) fn seen(e: &std::io::Error) -> Seen {
    model::seen_of(e.raw_os_error())
}

impl Flow {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open(
        run: u64,
        id: u64,
        dir: Direction,
        idle: Duration,
        addr: SocketAddr,
        keepalive: Option<&KeepaliveConfig>,
        now: Duration,
        connect_timeout: Duration,
    ) -> Result<Result<Flow, Box<EndFacts>>, RunError> {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(RunError::socket("open a socket for", addr))?;
        match keepalive {
            Some(k) => crate::sys::apply(&sock, k),
            None => sock.set_keepalive(false),
        }
        .and_then(|_| sock.set_tcp_nodelay(true))
        .and_then(|_| sock.set_nonblocking(true))
        .map_err(RunError::socket("apply settings for", addr))?;
        match sock.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Ok(Err(connect_failed_end(addr, &e))),
        }
        Ok(Ok(Flow {
            id,
            dir,
            idle,
            keepalive_idle_s: keepalive.and_then(|k| k.idle_s),
            sock,
            phase: Phase::Connecting {
                deadline: now.saturating_add(connect_timeout),
            },
            rtt: Duration::ZERO,
            path_rtt: None,
            lines: LineReader::default(),
            run,
            refresh: None,
            next_refresh: None,
        }))
    }

    pub(super) fn connecting(&self) -> bool {
        matches!(self.phase, Phase::Connecting { .. })
    }

    /// `HELD` arrived: the set-up round trip is known.
    pub(super) fn held(&self) -> bool {
        matches!(self.phase, Phase::Idle { .. } | Phase::Checking { .. })
    }

    pub(super) fn check_timeout(&self) -> Duration {
        model::check_timeout(self.path_rtt.unwrap_or(self.rtt))
    }

    /// The refresh `PING`s carry their own seq, so their `PONG`s never answer
    /// the check.
    fn refresh_seq(&self) -> u64 {
        u64::MAX - self.id
    }

    pub(super) fn deadline(&self) -> Duration {
        let check = self.check_deadline();
        match (self.phase_is_idle(), self.next_refresh) {
            (true, Some(r)) => r.min(check),
            _ => check,
        }
    }

    fn phase_is_idle(&self) -> bool {
        matches!(self.phase, Phase::Idle { .. })
    }

    fn check_deadline(&self) -> Duration {
        match self.phase {
            Phase::Connecting { deadline } | Phase::Holding { deadline, .. } => deadline,
            Phase::Idle { since } => match self.dir {
                Direction::Out => since.saturating_add(self.idle),
                // the listener's PING is due at `idle`; it may take a check time
                Direction::In => since
                    .saturating_add(self.idle)
                    .saturating_add(self.check_timeout())
                    .saturating_add(CHECK_SLACK),
            },
            Phase::Checking { deadline, .. } => deadline,
        }
    }

    pub(super) fn write(&mut self, bytes: &[u8], sent: &mut u64) -> std::io::Result<()> {
        let n = (&self.sock).write(bytes)?;
        *sent += n as u64;
        if n < bytes.len() {
            return Err(std::io::Error::new(
                ErrorKind::WriteZero,
                "the send buffer of a fresh flow is full",
            ));
        }
        Ok(())
    }

    /// The established flow failed: dropped if it was holding or being checked.
    pub(super) fn failed(&self, now: Duration, e: &std::io::Error, addr: SocketAddr) -> Step {
        match self.phase {
            Phase::Idle { since } => Step::Done(Some(seen(e)), now.saturating_sub(since)),
            Phase::Checking { .. } => Step::Done(Some(seen(e)), self.checked_idle()),
            _ => fatal(
                Outcome::ConnectFailed,
                e.raw_os_error(),
                format!(
                    "test flow {} to {addr} failed before it was held: {e} (more flows than \
                     the listener's --max-conns? see --parallel)",
                    self.id
                ),
            ),
        }
    }

    pub(super) fn on_ready(&mut self, now: Duration, addr: SocketAddr, sent: &mut u64) -> Step {
        if let Phase::Connecting { .. } = self.phase {
            // SO_ERROR before the flow's run starts, as engine::connection does.
            match self.sock.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return connect_failed(addr, &e),
            }
            let wake_ms = match self.dir {
                Direction::In => u32::try_from(self.idle.as_millis()).unwrap_or(u32::MAX),
                Direction::Out => 0,
            };
            let uto_ms = model::check_timeout(Duration::ZERO).as_millis() as u32;
            let hold = Message::Hold {
                seq: self.id,
                wake_ms,
                uto_ms,
                run: self.run,
            };
            if let Err(e) = self.write(&hold.encode(), sent) {
                return fatal(
                    Outcome::ConnectFailed,
                    e.raw_os_error(),
                    format!("cannot send HOLD on test flow {} to {addr}: {e}", self.id),
                );
            }
            let deadline = match self.phase {
                Phase::Connecting { deadline } => deadline,
                _ => now,
            };
            self.phase = Phase::Holding {
                sent: now,
                deadline,
            };
            return Step::Pending;
        }
        let mut buf = [0u8; 512];
        // Bounded per turn: a flooding listener cannot stall the other flows.
        for _ in 0..16 {
            match (&self.sock).read(&mut buf) {
                // A FIN on a held flow: the path closed it (a proxy's idle
                // timeout). The listener never closes a flow of a live run.
                Ok(0) => match self.phase {
                    Phase::Idle { since } => {
                        return Step::Done(Some(Seen::Fin), now.saturating_sub(since));
                    }
                    Phase::Checking { .. } => {
                        return Step::Done(Some(Seen::Fin), self.checked_idle());
                    }
                    _ => {
                        return fatal(
                            Outcome::Eof,
                            None,
                            format!(
                                "the listener closed test flow {} before answering HOLD (was \
                                 it stopped, or is it not tcpalive listen?)",
                                self.id
                            ),
                        );
                    }
                },
                Ok(n) => {
                    for msg in self.lines.feed(&buf[..n]) {
                        if let Some(step) = self.on_message(now, msg, addr) {
                            return step;
                        }
                    }
                    if self.lines.ignored() > 0 {
                        return self.broken(addr, "a line that is not a protocol message");
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Pending,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return self.failed(now, &e, addr),
            }
        }
        Step::Pending
    }

    /// The listener broke the protocol on this flow: the run ends, no limit.
    fn broken(&self, addr: SocketAddr, why: &str) -> Step {
        fatal(
            Outcome::Error,
            None,
            format!(
                "the listener at {addr} broke the protocol on test flow {} ({why}): it is not \
                 a working `tcpalive listen`, so no limit can be trusted",
                self.id
            ),
        )
    }

    /// A message on this flow. Only the one each phase expects is valid: any other
    /// byte from the listener during the idle period would refresh the path's
    /// state, and an answer that comes too early or to the wrong seq is a lie.
    pub(super) fn on_message(
        &mut self,
        now: Duration,
        msg: Message,
        addr: SocketAddr,
    ) -> Option<Step> {
        let id = self.id;
        match (&self.phase, msg) {
            (Phase::Holding { sent, .. }, Message::Held(seq)) if seq == id => {
                // The flow went idle when HELD arrived, which is when the path saw
                // its last packet (our ACK of it), not when this loop read it: with
                // hundreds of flows set up at once that can be a second later, and
                // every idle time would be counted short by as much. The kernel
                // says how long ago the last data came (TCP_INFO, in jiffies).
                let ago = crate::sys::sample(self.sock.as_fd())
                    .ok()
                    .flatten()
                    .map_or(Duration::ZERO, |s| {
                        Duration::from_millis(s.last_data_recv_ms.into())
                    });
                let since = now.saturating_sub(ago).max(*sent);
                self.rtt = since.saturating_sub(*sent);
                self.phase = Phase::Idle { since };
                self.next_refresh = self.refresh.map(|r| since.saturating_add(r));
                None
            }
            (Phase::Idle { .. } | Phase::Checking { .. }, Message::Pong(seq))
                if self.refresh.is_some() && seq == self.refresh_seq() =>
            {
                None
            }
            (Phase::Holding { .. }, Message::Refused(seq)) if seq == id => Some(fatal(
                Outcome::Error,
                None,
                format!(
                    "the listener at {addr} refused HOLD on test flow {id} (its log says why: \
                     too many test flows for one run, or the control flow is gone)"
                ),
            )),
            (Phase::Checking { follow_up, .. }, Message::Pong(seq))
                if seq == id && (self.dir == Direction::Out || *follow_up) =>
            {
                // After a missing `in` PING, our own answered PING means the path
                // lets this side's packets through but dropped the listener's.
                let check = match follow_up {
                    false => None,
                    true => Some(Seen::Answered),
                };
                Some(Step::Done(check, self.checked_idle()))
            }
            (Phase::Idle { since }, Message::Ping(seq))
                if seq == id && self.dir == Direction::In =>
            {
                let waited = now.saturating_sub(*since);
                // This flow's own set-up round trip, not the path's best: a HELD
                // that was slow to arrive (a loaded proxy) shortens the wait seen.
                let earliest = self
                    .idle
                    .saturating_sub(EARLY_PING)
                    .saturating_sub(self.rtt.max(self.path_rtt.unwrap_or(self.rtt)));
                if waited < earliest {
                    return Some(self.broken(
                        addr,
                        &format!(
                            "its PING came {} after HELD, before the {} it was asked to wait",
                            crate::model::units::secs_text(waited),
                            crate::model::units::secs_text(self.idle)
                        ),
                    ));
                }
                Some(Step::Done(None, self.idle))
            }
            // The listener's PING came after our follow-up went out: it was late,
            // but the flow carried it.
            (
                Phase::Checking {
                    follow_up: true, ..
                },
                Message::Ping(seq),
            ) if seq == id => Some(Step::Done(None, self.idle)),
            (_, other) => Some(self.broken(
                addr,
                &format!(
                    "it sent {} {}",
                    other.encode().escape_ascii().to_string().trim_end_matches("\\n"),
                    match self.phase {
                        Phase::Connecting { .. } | Phase::Holding { .. } => "instead of HELD",
                        Phase::Idle { .. } => "during the idle period",
                        Phase::Checking { .. } => "instead of the check's answer",
                    }
                ),
            )),
        }
    }

    pub(super) fn on_deadline(&mut self, now: Duration, addr: SocketAddr, sent: &mut u64) -> Step {
        match self.phase {
            Phase::Connecting { .. } => fatal(
                Outcome::ConnectFailed,
                Some(libc::ETIMEDOUT),
                format!("connect to {addr} timed out (test flow {})", self.id),
            ),
            Phase::Holding { .. } => fatal(
                Outcome::Error,
                None,
                format!(
                    "{addr} did not answer HOLD on test flow {}: the far side must be \
                     `tcpalive listen` (a version that knows HOLD)",
                    self.id
                ),
            ),
            Phase::Idle { .. }
                if self.next_refresh.is_some_and(|r| r <= now) && now < self.check_deadline() =>
            {
                self.next_refresh = self
                    .refresh
                    .zip(self.next_refresh)
                    .map(|(every, at)| at.saturating_add(every));
                if let Err(e) = self.write(&Message::Ping(self.refresh_seq()).encode(), sent) {
                    return self.failed(now, &e, addr);
                }
                Step::Pending
            }
            Phase::Idle { since } => {
                let follow_up = self.dir == Direction::In;
                let timeout = self.check_timeout();
                if let Err(e) = self.sock.set_tcp_user_timeout(Some(timeout)) {
                    return fatal(
                        Outcome::Error,
                        e.raw_os_error(),
                        format!("cannot set TCP_USER_TIMEOUT on test flow {}: {e}", self.id),
                    );
                }
                if let Err(e) = self.write(&Message::Ping(self.id).encode(), sent) {
                    return self.failed(now, &e, addr);
                }
                self.phase = Phase::Checking {
                    deadline: now.saturating_add(timeout).saturating_add(CHECK_SLACK),
                    follow_up,
                    idle: now.saturating_sub(since),
                };
                Step::Pending
            }
            Phase::Checking { .. } => Step::Done(Some(Seen::Timeout), self.checked_idle()),
        }
    }

    /// The idle time a check stands for: for `out`, from the flow going idle to
    /// our PING; for `in`, the time the listener was asked to wait (its PING, or
    /// its silence, decides; our follow-up comes after that).
    fn checked_idle(&self) -> Duration {
        match (self.dir, &self.phase) {
            (Direction::Out, Phase::Checking { idle, .. }) => *idle,
            _ => self.idle,
        }
    }

    /// Closes the flow: a dropped one with a reset (nothing lingers in FIN-WAIT
    /// behind a path that forgot it).
    pub(super) fn close(self, lp: &mut EventLoop<'_>, dropped: bool) {
        lp.unwatch(self.sock.as_fd());
        if dropped {
            let _ = self.sock.set_linger(Some(Duration::ZERO));
        }
    }
}

pub(super) fn connect_failed_end(addr: SocketAddr, e: &std::io::Error) -> Box<EndFacts> {
    let text = e.raw_os_error().map_or_else(|| e.to_string(), errno_text);
    Box::new(EndFacts::new(
        Outcome::ConnectFailed,
        e.raw_os_error().map(crate::model::outcome::errno_name),
        format!("connect to {addr} failed: {text}"),
        None,
        None,
    ))
}

pub(super) fn connect_failed(addr: SocketAddr, e: &std::io::Error) -> Step {
    Step::Fatal(connect_failed_end(addr, e))
}
