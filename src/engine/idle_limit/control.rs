//! The control flow of an `idle-limit` run: one connection to the listener,
//! kept busy (a `PING` every second, each answered), on which the run is
//! registered (`WATCH`), the listener reports how test flows ended on its side
//! (`SAW`) and this side says when a test is over (`DONE`), so the listener
//! closes that flow even when the path forgot it. Its `PONG`s also prove the far
//! side speaks the protocol: a listener that holds flows but answers nothing
//! never yields a limit.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::engine::event_loop::{EventLoop, Woke};
use crate::engine::run::{Reporter, RunError};
use crate::model::event::{EndFacts, Outcome};
use crate::model::heartbeat::{LineReader, Message, Saw};

use super::flow::{connect_failed_end, fatal_end};

/// The control flow's token in the event loop (the loop keeps `u64::MAX`).
pub(super) const CONTROL: u64 = u64::MAX - 1;
/// A `PING` on the control flow this often: the path keeps a busy flow.
const PING_EVERY: Duration = Duration::from_secs(1);
/// A `PING` unanswered this long: the listener is broken or gone.
const PONG_TIMEOUT: Duration = Duration::from_secs(5);
/// Unanswered `PING`s kept (more means the timeout fired long ago).
const OUTSTANDING_MAX: usize = 16;
/// `SAW` reports kept at most (one per test flow; the run opens fewer).
const SAW_MAX: usize = 65_536;
/// What this side has to send on the control flow and could not yet, at most:
/// past it the listener has stopped reading for long.
const OUTBOX_MAX: usize = 1 << 20;
/// A send the socket could not take yet is tried again this soon.
const FLUSH_RETRY: Duration = Duration::from_millis(10);
/// The control flow's latest round trips kept: the checks' timeouts use the
/// longest of them (see [`Control::path_rtt`]).
const RTTS_KEPT: usize = 3;

pub(super) struct Control {
    pub(super) sock: Socket,
    pub(super) run: u64,
    lines: LineReader,
    seq: u64,
    next_ping: Duration,
    outstanding: VecDeque<(u64, Duration)>,
    /// What the listener saw end test flows, by flow id.
    pub(super) saw: HashMap<u64, Saw>,
    /// The highest flow id opened so far (a `SAW` for a later one is a lie).
    pub(super) last_flow: u64,
    addr: SocketAddr,
    /// The latest round trips of `WATCH` and the `PING`s, newest last.
    rtts: VecDeque<Duration>,
    /// Lines not yet written, and when to try again. A round's flows end
    /// together (a proxy closes every flow past its timeout at once): hundreds of
    /// `DONE`s written one by one are hundreds of small segments, whose buffer
    /// overhead filled the socket's send buffer (EAGAIN ended a run behind
    /// haproxy); they are written together, once per loop turn.
    outbox: Vec<u8>,
    flush_at: Option<Duration>,
}

/// A run id nobody else uses: std's per-process random hash keys (seeded from
/// the OS), mixed with the pid and the time.
fn run_id() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish().max(1)
}

pub(super) enum Opened {
    Open(Box<Control>),
    Stopped(Box<EndFacts>),
}

impl Control {
    /// Connects, sends `WATCH` and waits for `WATCHING` (within `timeout`).
    pub(super) fn open(
        addr: SocketAddr,
        timeout: Duration,
        rep: &mut Reporter,
        lp: &mut EventLoop<'_>,
    ) -> Result<Opened, RunError> {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(RunError::socket("open a socket for", addr))?;
        sock.set_tcp_nodelay(true)
            .and_then(|_| sock.set_nonblocking(true))
            .map_err(RunError::socket("apply settings for", addr))?;
        match sock.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Ok(Opened::Stopped(connect_failed_end(addr, &e))),
        }
        let deadline = rep.clock.now().saturating_add(timeout);
        let mut c = Control {
            sock,
            run: run_id(),
            lines: LineReader::default(),
            seq: 0,
            next_ping: Duration::ZERO,
            outstanding: VecDeque::new(),
            saw: HashMap::new(),
            last_flow: 0,
            addr,
            rtts: VecDeque::new(),
            outbox: Vec::new(),
            flush_at: None,
        };
        let mut watch_sent = Duration::ZERO;
        lp.watch(c.sock.as_fd(), CONTROL, true)?;
        let mut connected = false;
        loop {
            match lp.wait(&rep.clock, Some(deadline))? {
                Woke::Signal(outcome) => {
                    lp.unwatch(c.sock.as_fd());
                    return Ok(Opened::Stopped(Box::new(
                        crate::engine::connection::interrupted_end(outcome),
                    )));
                }
                Woke::Deadline => {
                    lp.unwatch(c.sock.as_fd());
                    let end = if connected {
                        fatal_end(
                            Outcome::Error,
                            None,
                            format!(
                                "{addr} did not answer WATCH on the control flow: the far side \
                                 must be `tcpalive listen` (a version that knows WATCH and HOLD)"
                            ),
                        )
                    } else {
                        fatal_end(
                            Outcome::ConnectFailed,
                            Some(libc::ETIMEDOUT),
                            format!("connect to {addr} timed out (the control flow)"),
                        )
                    };
                    return Ok(Opened::Stopped(end));
                }
                Woke::Ready => {}
            }
            if !connected {
                match c.sock.take_error() {
                    Ok(None) => {}
                    Ok(Some(e)) | Err(e) => {
                        lp.unwatch(c.sock.as_fd());
                        return Ok(Opened::Stopped(connect_failed_end(addr, &e)));
                    }
                }
                if let Err(e) = c.send(&Message::Watch(c.run)) {
                    lp.unwatch(c.sock.as_fd());
                    return Ok(Opened::Stopped(connect_failed_end(addr, &e)));
                }
                watch_sent = rep.clock.now();
                connected = true;
                lp.unwatch(c.sock.as_fd());
                lp.watch(c.sock.as_fd(), CONTROL, false)?;
                continue;
            }
            let mut watching = false;
            let step = c.read(rep.clock.now(), |msg, run| match msg {
                Message::Watching(r) if r == run => {
                    watching = true;
                    Ok(())
                }
                other => Err(format!("answered WATCH with {other:?}")),
            });
            if let Err(end) = step {
                lp.unwatch(c.sock.as_fd());
                return Ok(Opened::Stopped(end));
            }
            if watching {
                c.note_rtt(rep.clock.now().saturating_sub(watch_sent));
                c.next_ping = rep.clock.now().saturating_add(PING_EVERY);
                return Ok(Opened::Open(Box::new(c)));
            }
        }
    }

    /// Queues a line and writes what the socket takes.
    fn send(&mut self, msg: &Message) -> std::io::Result<()> {
        self.queue(msg)?;
        self.write_out()
    }

    /// Queues a line, to be written with the others of this loop turn.
    fn queue(&mut self, msg: &Message) -> std::io::Result<()> {
        let bytes = msg.encode();
        if self.outbox.len().saturating_add(bytes.len()) > OUTBOX_MAX {
            return Err(std::io::Error::new(
                ErrorKind::WriteZero,
                "the listener has not read the control flow for long (1 MiB waits)",
            ));
        }
        self.outbox.extend_from_slice(&bytes);
        Ok(())
    }

    /// Writes what the socket takes now; the rest waits for the next try.
    fn write_out(&mut self) -> std::io::Result<()> {
        while !self.outbox.is_empty() {
            match (&self.sock).write(&self.outbox) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        ErrorKind::WriteZero,
                        "the control flow takes no more data",
                    ));
                }
                Ok(n) => {
                    self.outbox.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes the queued lines; a failure ends the run.
    fn flush(&mut self, now: Duration) -> Result<(), Box<EndFacts>> {
        if let Err(e) = self.write_out() {
            return Err(fatal_end(
                crate::model::outcome::classify_errno(e.raw_os_error().unwrap_or(0)),
                e.raw_os_error(),
                format!("the control flow to {} failed: {e}", self.addr),
            ));
        }
        self.flush_at = (!self.outbox.is_empty()).then(|| now.saturating_add(FLUSH_RETRY));
        Ok(())
    }

    fn broken(&self, why: &str) -> Box<EndFacts> {
        fatal_end(
            Outcome::Error,
            None,
            format!(
                "the listener at {} broke the protocol on the control flow ({why}): it is \
                 not a working `tcpalive listen`, so no limit can be trusted",
                self.addr
            ),
        )
    }

    /// Reads what arrived; `on` judges each message other than the ones every
    /// phase knows (PONG, SAW).
    fn read(
        &mut self,
        now: Duration,
        mut on: impl FnMut(Message, u64) -> Result<(), String>,
    ) -> Result<(), Box<EndFacts>> {
        let mut buf = [0u8; 4096];
        // Bounded per turn: a flooding listener cannot stall the measurement.
        for _ in 0..16 {
            match (&self.sock).read(&mut buf) {
                Ok(0) => {
                    return Err(fatal_end(
                        Outcome::Eof,
                        None,
                        format!(
                            "the control flow to {} was closed (the listener stopped, or the \
                             path closed a flow that carries a PING every second)",
                            self.addr
                        ),
                    ));
                }
                Ok(n) => {
                    for msg in self.lines.feed(&buf[..n]) {
                        match msg {
                            Message::Pong(seq) => {
                                let Some(&(_, sent)) =
                                    self.outstanding.iter().find(|&&(s, _)| s == seq)
                                else {
                                    return Err(self.broken(&format!("PONG {seq} for no PING")));
                                };
                                self.note_rtt(now.saturating_sub(sent));
                                self.outstanding.retain(|&(s, _)| s > seq);
                            }
                            Message::Saw { seq, what } => {
                                if seq == 0 || seq > self.last_flow {
                                    return Err(
                                        self.broken(&format!("SAW {seq} for a flow never opened"))
                                    );
                                }
                                if self.saw.len() < SAW_MAX {
                                    self.saw.entry(seq).or_insert(what);
                                }
                            }
                            other => {
                                if let Err(why) = on(other, self.run) {
                                    return Err(self.broken(&why));
                                }
                            }
                        }
                    }
                    if self.lines.ignored() > 0 {
                        return Err(self.broken("a line that is not a protocol message"));
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(fatal_end(
                        crate::model::outcome::classify_errno(e.raw_os_error().unwrap_or(0)),
                        e.raw_os_error(),
                        format!("the control flow to {} failed: {e}", self.addr),
                    ));
                }
            }
        }
        Ok(())
    }

    fn note_rtt(&mut self, rtt: Duration) {
        if self.rtts.len() >= RTTS_KEPT {
            self.rtts.pop_front();
        }
        self.rtts.push_back(rtt);
    }

    /// The round trip a check should allow for now: the longest of the control
    /// flow's latest ones, or the age of a `PING` still unanswered if that is
    /// longer. It includes the listener's time to answer, which is what a check
    /// waits for: while the run's flows are being set up (hundreds at once) that
    /// is far longer than the path's, and a check then must not mistake a slow
    /// answer for a drop. (Each flow's own set-up round trip is inflated by that
    /// same burst, and stays so long after it.)
    pub(super) fn path_rtt(&self, now: Duration) -> Duration {
        let waiting = self
            .outstanding
            .front()
            .map_or(Duration::ZERO, |&(_, sent)| now.saturating_sub(sent));
        self.rtts
            .iter()
            .copied()
            .max()
            .unwrap_or_default()
            .max(waiting)
    }

    /// One wake-up of the loop: reads the control flow if it is `ready`, then
    /// acts on its deadline if that has come (the measurement and `--verify`
    /// both step it so).
    pub(super) fn step(&mut self, ready: bool, now: Duration) -> Result<(), Box<EndFacts>> {
        if ready {
            self.on_ready(now)?;
        }
        if self.deadline() <= now {
            self.on_deadline(now)?;
        }
        self.flush(now)
    }

    /// The control flow is readable.
    pub(super) fn on_ready(&mut self, now: Duration) -> Result<(), Box<EndFacts>> {
        self.read(now, |msg, _| {
            Err(format!(
                "sent {msg:?}, which the control flow never carries"
            ))
        })
    }

    /// When [`Control::step`] is due next: the next `PING`, the timeout of one
    /// unanswered, or lines waiting to be written.
    pub(super) fn deadline(&self) -> Duration {
        let due = match self.outstanding.front() {
            Some(&(_, sent)) => self.next_ping.min(sent.saturating_add(PONG_TIMEOUT)),
            None => self.next_ping,
        };
        self.flush_at.map_or(due, |at| at.min(due))
    }

    /// Sends the next `PING`; a `PING` unanswered for [`PONG_TIMEOUT`] ends the run.
    pub(super) fn on_deadline(&mut self, now: Duration) -> Result<(), Box<EndFacts>> {
        if let Some(&(seq, sent)) = self.outstanding.front()
            && now >= sent.saturating_add(PONG_TIMEOUT)
        {
            return Err(fatal_end(
                Outcome::Error,
                None,
                format!(
                    "the listener at {} did not answer PING {seq} on the control flow within \
                     {}: it is not a working `tcpalive listen` (or the path lost a busy flow), \
                     so no limit can be trusted",
                    self.addr,
                    crate::model::units::secs_text(PONG_TIMEOUT)
                ),
            ));
        }
        if now >= self.next_ping {
            self.seq = self.seq.saturating_add(1);
            self.next_ping = now.saturating_add(PING_EVERY);
            if self.outstanding.len() < OUTSTANDING_MAX {
                self.outstanding.push_back((self.seq, now));
            }
            if let Err(e) = self.queue(&Message::Ping(self.seq)) {
                return Err(fatal_end(
                    crate::model::outcome::classify_errno(e.raw_os_error().unwrap_or(0)),
                    e.raw_os_error(),
                    format!("the control flow to {} failed: {e}", self.addr),
                ));
            }
        }
        Ok(())
    }

    /// Sends a `PING` now (the next is due a second later); its seq, for
    /// [`Control::answered`].
    pub(super) fn ping_now(&mut self, now: Duration) -> Result<u64, Box<EndFacts>> {
        self.next_ping = now;
        self.on_deadline(now)?;
        self.flush(now)?;
        Ok(self.seq)
    }

    /// The `PONG` to `PING` `seq` has come.
    pub(super) fn answered(&self, seq: u64) -> bool {
        !self.outstanding.iter().any(|&(s, _)| s == seq)
    }

    /// `DONE`: the listener closes test flow `seq`; written with the loop turn's
    /// other lines (a full queue shows at the next write).
    pub(super) fn done(&mut self, seq: u64, now: Duration) {
        if self.queue(&Message::Done(seq)).is_ok() && self.flush_at.is_none() {
            self.flush_at = Some(now);
        }
    }
}
