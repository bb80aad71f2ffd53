//! One monitored connection, driven by an outside event loop: it reads what the
//! peer sends, samples the kernel when its timeline asks, writes when a send plan
//! says so, injects a `listen` fault when due, and decides the outcome when the
//! connection ends.
//!
//! The final errno comes from the failing read or write, never from `SO_ERROR`
//! (reading it consumes the soft error that says EHOSTUNREACH: docs/kernel-facts.md,
//! "Reading SO_ERROR consumes the soft error").

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use socket2::Socket;

use crate::config::{Fault, SendPlan};
use crate::engine::run::{Reporter, RunError};
use crate::model::event::{EndFacts, EventKind, Outcome};
pub use crate::model::heartbeat::Saw;
use crate::model::heartbeat::{Due, Heartbeat, HeartbeatConfig, LineReader, Message, RawReply};
use crate::model::outcome::{classify_errno, errno_name, errno_text};
use crate::model::sample::TCP_ESTABLISHED;
use crate::model::timeline::Timeline;
use crate::sys;
use crate::sys::{sockopt, sysctl};

/// Reads per readiness before yielding to other connections.
const READS_PER_WAKE: usize = 16;
const READ_BUF: usize = 16 * 1024;
/// Protocol bytes waiting for send-buffer room; beyond this, new replies are
/// dropped rather than queued, so a peer that never reads cannot grow memory.
const OUTBOX_MAX: usize = 4096;
/// Retry a pending outbox this often (the socket is not watched for writability).
const OUTBOX_RETRY: Duration = Duration::from_millis(10);

/// How long an idle-limit control flow may carry nothing (its client pings it
/// every second) before the listener counts its client as gone and closes the
/// run's test flows.
pub const CONTROL_SILENCE: Duration = Duration::from_secs(5);

/// What an idle-limit connection is to the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Plain,
    /// The control flow of idle-limit run `run` (`WATCH`).
    Control {
        run: u64,
    },
    /// Test flow `seq` of run `run` (`HOLD`, accepted).
    Test {
        run: u64,
        seq: u64,
    },
}

/// What a session asks of the table that holds every session: idle-limit's
/// messages that concern other connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Watch(u64),
    Hold {
        seq: u64,
        wake_ms: u32,
        uto_ms: u32,
        run: u64,
    },
    Done(u64),
}

/// What a session does besides observing.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Write bytes periodically, so data is in flight when the peer dies.
    pub send: Option<SendPlan>,
    /// `listen` fault modes.
    pub fault: Option<Fault>,
    /// Send heartbeats and expect replies.
    pub heartbeat: Option<HeartbeatConfig>,
    /// Answer the peer's `PING`s (`listen --mute` turns this off).
    pub answer_pings: bool,
    /// Never read (`listen --no-read`): the receive window fills and closes, the
    /// peer sees a zero window. Only hang-ups and errors end the session.
    pub no_read: bool,
}

/// `--send-every`'s bytes: dots ending in a newline, so a heartbeat line queued
/// after them starts a line of its own at the peer (a line the peer's reader
/// does not know is dropped, newline included).
fn filler_line(size: usize) -> Vec<u8> {
    let mut bytes = vec![b'.'; size.max(1)];
    if let Some(last) = bytes.last_mut() {
        *last = b'\n';
    }
    bytes
}

/// The events of one wake-up, in order. Those a kernel fact dates before the
/// wake-up (an answered keepalive probe, its answer and the new idle start: the
/// answer's arrival, tcpi_last_ack_recv) are stamped with that run time; the others
/// with the time they are emitted.
#[derive(Debug, Default)]
pub struct Events {
    kinds: Vec<EventKind>,
    /// (index in `kinds`, run time), ascending by index.
    dated: Vec<(usize, Duration)>,
}

impl Events {
    pub fn new() -> Events {
        Events::default()
    }

    pub fn push(&mut self, kind: EventKind) {
        self.kinds.push(kind);
    }

    fn push_dated(&mut self, at: Option<Duration>, kind: EventKind) {
        if let Some(at) = at {
            self.dated.push((self.kinds.len(), at));
        }
        self.kinds.push(kind);
    }

    /// Emits them all, each with its stamp, with one clock reading for the rest.
    pub fn emit(self, rep: &mut Reporter, conn: u64) -> Result<(), RunError> {
        if self.kinds.is_empty() {
            return Ok(());
        }
        let now = rep.clock.now();
        let mut dated = self.dated.into_iter().peekable();
        for (i, kind) in self.kinds.into_iter().enumerate() {
            let at = match dated.next_if(|&(j, _)| j == i) {
                Some((_, at)) => at.min(now),
                None => now,
            };
            rep.emit_at(at, conn, kind)?;
        }
        Ok(())
    }
}

impl std::ops::Deref for Events {
    type Target = [EventKind];

    fn deref(&self) -> &[EventKind] {
        &self.kinds
    }
}

pub struct Session {
    sock: Socket,
    peer: SocketAddr,
    pub role: Role,
    /// idle-limit messages for the table, taken after each step.
    requests: Vec<Request>,
    /// A HOLD or WATCH was asked already: later ones on this connection are
    /// ignored (a flood of them costs nothing).
    asked: bool,
    /// Control flow: silent until this time means its client is gone.
    silent_at: Option<Duration>,
    timeline: Timeline,
    send: Option<(SendPlan, Duration)>,
    fault: Option<(Fault, Duration)>,
    heartbeat: Option<Heartbeat>,
    answer_pings: bool,
    no_read: bool,
    lines: LineReader,
    outbox: Vec<u8>,
    /// `HOLD` (idle-limit's `in` check): send `PING seq` at this time, with this
    /// user timeout (0: unchanged).
    wake: Option<(u64, Duration, u32)>,
    /// The wake-up time last handed to the event loop's timer queue.
    pub scheduled: Option<Duration>,
}

fn addr_of(addr: std::io::Result<socket2::SockAddr>) -> std::io::Result<SocketAddr> {
    addr?.as_socket().ok_or_else(|| {
        std::io::Error::new(ErrorKind::InvalidData, "not an internet socket address")
    })
}

impl Session {
    /// Starts following an established, non-blocking socket: `connected`, `config`
    /// (the settings read back from the kernel) and idle-start. On failure the
    /// socket comes back with the error, so the caller can ask it why.
    pub fn start(
        sock: Socket,
        now: Duration,
        plan: &Plan,
    ) -> Result<(Session, Events), (std::io::Error, Socket)> {
        let looked = addr_of(sock.local_addr()).and_then(|local| {
            let peer = addr_of(sock.peer_addr())?;
            Ok((local, peer, sockopt::read_back(&sock)?))
        });
        let (local, peer, eff) = match looked {
            Ok(found) => found,
            Err(e) => return Err((e, sock)),
        };
        let params = sysctl::kernel_params();
        let mut facts = eff.facts(params.retries2);
        if let Some(h) = &plan.heartbeat {
            h.include_in(&mut facts);
        }
        let timeline = Timeline::new(eff, params, now);
        let mut events = Events::new();
        events.push(EventKind::Connected { local, peer });
        events.push(EventKind::Config(facts));
        let fault = plan.fault.map(|f| {
            let after = match f {
                Fault::Close(d) | Fault::Reset(d) => d,
            };
            (f, now.saturating_add(after))
        });
        let send = plan.send.clone().map(|p| {
            let first = now.saturating_add(p.every);
            (p, first)
        });
        let mut session = Session {
            sock,
            peer,
            role: Role::Plain,
            requests: Vec::new(),
            asked: false,
            silent_at: None,
            timeline,
            send,
            fault,
            heartbeat: plan.heartbeat.clone().map(|h| Heartbeat::new(h, now)),
            answer_pings: plan.answer_pings,
            no_read: plan.no_read,
            lines: LineReader::default(),
            outbox: Vec::new(),
            wake: None,
            scheduled: None,
        };
        session.sample(now, &mut events);
        Ok((session, events))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The idle-limit requests since the last call.
    pub fn take_requests(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.requests)
    }

    /// What the listener saw end this connection, for `SAW` (by the end's outcome).
    pub fn saw(end: &EndFacts) -> Saw {
        match end.outcome {
            Outcome::Eof => Saw::Fin,
            Outcome::Reset => Saw::Rst,
            Outcome::Timeout => Saw::Timeout,
            _ => Saw::Error,
        }
    }

    fn sample(&mut self, now: Duration, out: &mut Events) {
        // A failed TCP_INFO read only costs detail; the outcome comes from read().
        if let Ok(Some(s)) = sys::sample(self.sock.as_fd()) {
            self.timeline
                .observe_dated(now, &s, |at, kind| out.push_dated(at, kind));
        }
    }

    fn end(
        &self,
        now: Duration,
        outcome: Outcome,
        errno: Option<i32>,
        message: String,
    ) -> EndFacts {
        self.timeline
            .end(now, outcome, errno.map(errno_name), message)
    }

    /// The end a failed read or write means: classified by its errno, or an
    /// error of our own when it carries none.
    fn end_with_io_error(&self, now: Duration, e: std::io::Error) -> EndFacts {
        match e.raw_os_error() {
            Some(errno) => self.end(now, classify_errno(errno), Some(errno), errno_text(errno)),
            None => self.end(now, Outcome::Error, None, e.to_string()),
        }
    }

    /// The socket is readable or reported an error: sample, then read.
    pub fn on_ready(&mut self, now: Duration, out: &mut Events) -> Option<EndFacts> {
        self.sample(now, out);
        if self.no_read {
            return self.on_hangup(now);
        }
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
                Ok(n) => self.on_data(now, &buf[..n], out),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Some(self.end_with_io_error(now, e)),
            }
        }
        self.flush(now)
    }

    /// `--no-read`: the socket hung up or failed without being read. The errno is
    /// taken once, here at the end (SO_ERROR), since no read will report it; a
    /// peer's FIN leaves it in CLOSE_WAIT (the unread bytes are dropped with it).
    fn on_hangup(&mut self, now: Duration) -> Option<EndFacts> {
        match self.sock.take_error() {
            Ok(Some(e)) | Err(e) => return Some(self.end_with_io_error(now, e)),
            Ok(None) => {}
        }
        let state = sys::sample(self.sock.as_fd())
            .ok()
            .flatten()
            .map(|s| s.state);
        match state {
            Some(s) if s == TCP_ESTABLISHED => None,
            _ => Some(
                self.end(
                    now,
                    Outcome::Eof,
                    None,
                    "the peer closed the connection (FIN); its data was never read (--no-read)"
                        .to_string(),
                ),
            ),
        }
    }

    /// Bytes from the peer: heartbeat replies and `PING`s to answer; everything
    /// else is counted by the kernel (TCP_INFO) and dropped.
    fn on_data(&mut self, now: Duration, bytes: &[u8], out: &mut Events) {
        if let Some(hb) = self.heartbeat.as_mut().filter(|h| h.raw()) {
            for reply in hb.on_raw_bytes(bytes, now) {
                out.push(match reply {
                    RawReply::Answer { seq, rtt, shown } => EventKind::HeartbeatReply {
                        seq,
                        rtt,
                        reply: Some(shown),
                    },
                    RawReply::Mismatch { shown } => EventKind::Warning {
                        message: format!(
                            "heartbeat reply \"{shown}\" does not start with --heartbeat-expect: \
                             it answers nothing"
                        ),
                    },
                });
            }
            return;
        }
        if let Role::Control { .. } = self.role {
            self.silent_at = Some(now.saturating_add(CONTROL_SILENCE));
        }
        for msg in self.lines.feed(bytes) {
            match msg {
                Message::Ping(seq) if self.answer_pings => self.queue(&Message::Pong(seq).encode()),
                Message::Ping(_) => {}
                Message::Pong(seq) => {
                    if let Some((seq, rtt)) =
                        self.heartbeat.as_mut().and_then(|h| h.on_pong(seq, now))
                    {
                        out.push(EventKind::HeartbeatReply {
                            seq,
                            rtt,
                            reply: None,
                        });
                    }
                }
                Message::Hold {
                    seq,
                    wake_ms,
                    uto_ms,
                    run,
                } if !self.asked => {
                    self.asked = true;
                    self.requests.push(Request::Hold {
                        seq,
                        wake_ms,
                        uto_ms,
                        run,
                    });
                }
                Message::Watch(run) if !self.asked => {
                    self.asked = true;
                    self.requests.push(Request::Watch(run));
                }
                Message::Done(seq) if matches!(self.role, Role::Control { .. }) => {
                    self.requests.push(Request::Done(seq));
                }
                // Only one HOLD or WATCH per connection; the listener's own
                // messages mean nothing coming from a peer.
                Message::Hold { .. }
                | Message::Watch(_)
                | Message::Done(_)
                | Message::Held(_)
                | Message::Refused(_)
                | Message::Watching(_)
                | Message::Saw { .. } => {}
            }
        }
    }

    /// `WATCH` accepted: this is the control flow of `run`.
    pub fn watching(&mut self, now: Duration, run: u64) -> Option<EndFacts> {
        self.role = Role::Control { run };
        self.silent_at = Some(now.saturating_add(CONTROL_SILENCE));
        // Its client's PINGs are answered whatever --mute says: they are the
        // measurement's, not the application's.
        self.answer_pings = true;
        self.heartbeat = None;
        self.queue(&Message::Watching(run).encode());
        self.flush(now)
    }

    /// A line for the control flow (`SAW`).
    pub fn tell(&mut self, now: Duration, msg: Message) -> Option<EndFacts> {
        self.queue(&msg.encode());
        self.flush(now)
    }

    /// `HOLD` refused: `REFUSED`, then FIN (the caller ends the session).
    pub fn refuse(&mut self, now: Duration, seq: u64, why: &str) -> EndFacts {
        self.queue(&Message::Refused(seq).encode());
        if let Some(end) = self.flush(now) {
            return end;
        }
        self.close_now(now, Fault::Close(Duration::ZERO), why)
    }

    /// `HOLD` accepted by the table.
    pub fn accept_hold(
        &mut self,
        now: Duration,
        run: u64,
        seq: u64,
        wake_ms: u32,
        uto_ms: u32,
        out: &mut Events,
    ) -> Option<EndFacts> {
        self.role = Role::Test { run, seq };
        self.hold(now, seq, wake_ms, uto_ms, out);
        self.flush(now)
    }

    /// `HOLD`: this connection is an idle-limit test flow. Nothing of ours may
    /// refresh the path's state: keepalive and heartbeats go off (the new settings
    /// are reported), then `HELD` confirms; the `in` check's `PING` is scheduled.
    fn hold(&mut self, now: Duration, seq: u64, wake_ms: u32, uto_ms: u32, out: &mut Events) {
        if let Err(e) = self.sock.set_keepalive(false) {
            out.push(EventKind::Warning {
                message: format!("HOLD {seq}: cannot turn keepalive off ({e}); not held"),
            });
            return;
        }
        self.heartbeat = None;
        // The check's PING is answered even by a `--mute` listener: silence on a
        // test flow would read as the path dropping it.
        self.answer_pings = true;
        if let Ok(eff) = sockopt::read_back(&self.sock) {
            let retries2 = sysctl::system_retries2();
            self.timeline.set_settings(eff, retries2);
            out.push(EventKind::Config(eff.facts(retries2)));
        }
        self.wake = (wake_ms > 0).then(|| {
            (
                seq,
                now.saturating_add(Duration::from_millis(wake_ms.into())),
                uto_ms,
            )
        });
        self.queue(&Message::Held(seq).encode());
    }

    fn queue(&mut self, bytes: &[u8]) {
        if self.outbox.len().saturating_add(bytes.len()) <= OUTBOX_MAX {
            self.outbox.extend_from_slice(bytes);
        }
    }

    /// `--send-every` bytes go through the outbox like protocol lines, so a
    /// partial write can never split a heartbeat line. A filler larger than the
    /// outbox's cap is queued whole when the outbox is empty (data stays in flight
    /// however small the send buffer), and skipped while earlier bytes still wait.
    fn queue_filler(&mut self, filler: &[u8]) {
        if self.outbox.is_empty() {
            self.outbox.extend_from_slice(filler);
        } else {
            self.queue(filler);
        }
    }

    /// Writes what the outbox holds, as far as the send buffer allows.
    fn flush(&mut self, now: Duration) -> Option<EndFacts> {
        while !self.outbox.is_empty() {
            self.timeline.note_send(now);
            match (&self.sock).write(&self.outbox) {
                Ok(n) => {
                    self.outbox.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Some(self.end_with_io_error(now, e)),
            }
        }
        None
    }

    /// The heartbeat schedule's due actions: send, or give up on a hung peer.
    fn heartbeats(&mut self, now: Duration, out: &mut Events) -> Option<EndFacts> {
        while let Some(due) = self.heartbeat.as_mut().and_then(|h| h.poll(now)) {
            match due {
                Due::Send { seq, bytes } => {
                    self.queue(&bytes);
                    out.push(EventKind::Heartbeat { seq });
                }
                Due::TimedOut { seq, sent } => return Some(self.heartbeat_timeout(now, seq, sent)),
            }
        }
        None
    }

    fn heartbeat_timeout(&self, now: Duration, seq: u64, sent: Duration) -> EndFacts {
        let hb = self.heartbeat.as_ref();
        let since_reply = hb.map(|h| now.saturating_sub(h.last_reply()));
        let waited = humantime::format_duration(Duration::from_millis(
            now.saturating_sub(sent).as_millis() as u64,
        ));
        let kernel_alive = self.timeline.last_contact() > sent;
        let mut message = format!("heartbeat #{seq} unanswered for {waited}");
        let mismatch = hb.and_then(Heartbeat::last_mismatch);
        if let Some(shown) = mismatch {
            // Its application answers, just not as expected (Redis's -NOAUTH).
            message.push_str(&format!(
                "; the peer answers, but the last reply did not match --heartbeat-expect: \
                 \"{shown}\""
            ));
        } else if kernel_alive {
            message.push_str(
                "; the peer's kernel still acknowledges: its application is not answering",
            );
        }
        EndFacts::new(
            Outcome::HeartbeatTimeout,
            None,
            message,
            since_reply.map(|d| d.as_secs_f64()),
            hb.map(|h| h.predicted_detect().as_secs_f64()),
        )
    }

    /// A timer fired: sample the kernel, inject a due fault, write a due send.
    pub fn on_wake(&mut self, now: Duration, out: &mut Events) -> Option<EndFacts> {
        self.sample(now, out);
        if let (Role::Control { run }, Some(at)) = (self.role, self.silent_at)
            && now >= at
        {
            return Some(self.end(
                now,
                Outcome::HeartbeatTimeout,
                None,
                format!(
                    "the control flow of idle-limit run {run} carried nothing for {}: its \
                     client is gone",
                    crate::model::units::secs_text(CONTROL_SILENCE)
                ),
            ));
        }
        if let Some((fault, at)) = self.fault
            && now >= at
        {
            return Some(self.inject(now, fault));
        }
        if let Some(end) = self.heartbeats(now, out) {
            return Some(end);
        }
        if let Some((seq, at, uto_ms)) = self.wake
            && now >= at
        {
            self.wake = None;
            if uto_ms > 0 {
                // Only bounds how long a send into a forgotten flow lingers.
                let _ = self
                    .sock
                    .set_tcp_user_timeout(Some(Duration::from_millis(uto_ms.into())));
            }
            self.queue(&Message::Ping(seq).encode());
            out.push(EventKind::Heartbeat { seq });
        }
        if let Some((plan, at)) = &mut self.send
            && now >= *at
        {
            *at = now.saturating_add(plan.every);
            let filler = filler_line(plan.size);
            self.queue_filler(&filler);
        }
        self.flush(now)
    }

    fn inject(&mut self, now: Duration, fault: Fault) -> EndFacts {
        let message = match fault {
            Fault::Close(_) => "closed by --close-after: FIN sent to the peer",
            Fault::Reset(_) => "aborted by --reset-after: RST sent to the peer",
        };
        self.close_now(now, fault, message)
    }

    /// Ends the session with a fault now: FIN at once, or RST when the session is
    /// dropped (SO_LINGER 0). `message` says who asked. The caller drops the session.
    pub fn close_now(&mut self, now: Duration, fault: Fault, message: &str) -> EndFacts {
        let result = match fault {
            Fault::Close(_) => self.sock.shutdown(Shutdown::Write),
            Fault::Reset(_) => self.sock.set_linger(Some(Duration::ZERO)),
        };
        match result {
            Ok(()) => self.end(now, Outcome::Alive, None, message.to_string()),
            Err(e) => self.end_with_io_error(now, e),
        }
    }

    /// Stops answering the peer's heartbeats from now on; the kernel keeps ACKing
    /// (`lab hung`: a hung application).
    pub fn mute(&mut self) {
        self.answer_pings = false;
    }

    /// Starts writing by `plan`, the first write at `now` (`lab busy`, `not-reading`).
    pub fn start_sending(&mut self, plan: SendPlan, now: Duration) {
        self.send = Some((plan, now));
    }

    /// Run time of the last data or ACK received from the peer.
    pub fn last_contact(&self) -> Duration {
        self.timeline.last_contact()
    }

    /// When the next keepalive probe is due as the kernel arms it.
    pub fn next_probe_due(&self) -> Duration {
        self.timeline.next_probe_due()
    }

    /// When the event loop should call `on_wake` next.
    pub fn next_wake(&self, now: Duration) -> Option<Duration> {
        [
            self.timeline.next_wake(now),
            self.send.as_ref().map(|(_, at)| *at),
            self.fault.map(|(_, at)| at),
            self.heartbeat.as_ref().map(Heartbeat::next_deadline),
            self.wake.map(|(_, at, _)| at),
            self.silent_at,
            (!self.outbox.is_empty()).then(|| now.saturating_add(OUTBOX_RETRY)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Ends the session from outside (interrupted, `--for` elapsed).
    pub fn finish(
        &mut self,
        now: Duration,
        outcome: Outcome,
        message: String,
        out: &mut Events,
    ) -> EndFacts {
        self.sample(now, out);
        self.end(now, outcome, None, message)
    }
}
