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
use crate::model::idle_limit::{self as model, Check, Direction, DropMode};
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
    /// The check's `PING` is out (`follow_up`: after an `in` check got nothing).
    Checking {
        deadline: Duration,
        follow_up: bool,
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
    /// The path's round trip as the check uses it: the shortest set-up round trip
    /// of the run. A flow's own can be inflated by the burst of set-ups (every
    /// flow of a round connects at once), which would only slow the checks down.
    pub(super) path_rtt: Option<Duration>,
    pub(super) lines: LineReader,
}

/// What a step of a flow came to.
pub(super) enum Step {
    Pending,
    /// Checked: the result, and the idle time it stands for (shorter than planned
    /// when the flow died while idle).
    Done(Check, Duration),
    /// The measurement cannot go on (the far side is not a tcpalive listener...).
    Fatal(Box<EndFacts>),
}

pub(super) fn fatal(outcome: Outcome, errno: Option<i32>, message: String) -> Step {
    Step::Fatal(Box::new(EndFacts::new(
        outcome,
        errno.map(crate::model::outcome::errno_name),
        message,
        None,
        None,
    )))
}

/// How a failed read or write of an established test flow counts.
pub(super) fn drop_mode(e: &std::io::Error) -> DropMode {
    model::drop_mode_of(e.raw_os_error())
}

impl Flow {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open(
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

    pub(super) fn deadline(&self) -> Duration {
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
            Phase::Idle { since } => {
                Step::Done(Check::Dropped(drop_mode(e)), now.saturating_sub(since))
            }
            Phase::Checking { .. } => Step::Done(Check::Dropped(drop_mode(e)), self.idle),
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
        loop {
            match (&self.sock).read(&mut buf) {
                Ok(0) => {
                    return fatal(
                        Outcome::Eof,
                        None,
                        format!(
                            "the listener closed test flow {} (was it stopped, or is it \
                             not tcpalive listen?)",
                            self.id
                        ),
                    );
                }
                Ok(n) => {
                    for msg in self.lines.feed(&buf[..n]) {
                        if let Some(step) = self.on_message(now, msg) {
                            return step;
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Pending,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return self.failed(now, &e, addr),
            }
        }
    }

    pub(super) fn on_message(&mut self, now: Duration, msg: Message) -> Option<Step> {
        let id = self.id;
        match (&self.phase, msg) {
            (Phase::Holding { sent, .. }, Message::Held(seq)) if seq == id => {
                self.rtt = now.saturating_sub(*sent);
                self.phase = Phase::Idle { since: now };
                None
            }
            (Phase::Checking { follow_up, .. }, Message::Pong(seq)) if seq == id => {
                // After a missing `in` PING, our own answered PING means the path
                // lets this side's packets through but dropped the listener's.
                let check = match follow_up {
                    false => Check::Survived,
                    true => Check::Dropped(DropMode::Silent),
                };
                Some(Step::Done(check, self.idle))
            }
            (Phase::Idle { .. } | Phase::Checking { .. }, Message::Ping(seq))
                if seq == id && self.dir == Direction::In =>
            {
                Some(Step::Done(Check::Survived, self.idle))
            }
            _ => None,
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
            Phase::Idle { .. } => {
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
                };
                Step::Pending
            }
            Phase::Checking { .. } => Step::Done(Check::Dropped(DropMode::Silent), self.idle),
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
