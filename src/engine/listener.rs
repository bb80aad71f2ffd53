//! The listening side that `listen` and the lab share: bind, accept connections,
//! apply the settings to each and follow every timeline in one thread (the event
//! loop and a timer queue, no thread per connection), with accept back-off under
//! EMFILE, rate-limited warnings and an orderly stop (listening socket first).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Fault;
use crate::engine::event_loop::{EventLoop, Woke};
use crate::engine::run::{Reporter, RunError, Throttle, stop_message};
use crate::engine::session::{Events, Plan, Request, Role, Session};
use crate::model::event::{EndFacts, EventKind, Outcome};
use crate::model::expect::Tally;
use crate::model::heartbeat::HeartbeatConfig;
use crate::model::heartbeat::Message;
use crate::model::outcome::errno_text;
use crate::model::tune::KeepaliveRequest;
use crate::sys;
use crate::sys::Ready;

const LISTENER: u64 = 0;
/// The run-level events (`listening`, the summary `end`) carry connection id 0.
pub const RUN: u64 = 0;
/// Accepts per readiness of the listening socket before the loop serves the
/// connections it holds (their EOFs, timers, signals): a client that connects and
/// closes as fast as it can must not starve them.
const ACCEPTS_PER_WAKE: usize = 64;
/// Accept pauses under EMFILE with no descriptor to spare: doubling, capped.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(50);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Test flows one idle-limit run may hold at once (its `--parallel` is at most
/// 1000, plus the `--verify` flow), and runs one client address may have open:
/// a client cannot pin more than this many connections through HOLD.
const HOLDS_PER_RUN: usize = 1024;
const RUNS_PER_PEER: usize = 4;
/// At most one `cannot follow the connection` warning this often.
const FOLLOW_WARN_EVERY: Duration = Duration::from_secs(10);

/// What serving a listening socket takes: built from `listen`'s flags by
/// `cmd::listen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenOptions {
    /// Applied to each accepted connection.
    pub keepalive: KeepaliveRequest,
    /// Stop listening after the first connection, and end with it.
    pub once: bool,
    /// Connections followed at once; more are reset.
    pub max_conns: usize,
    /// How each accepted connection misbehaves (`--fault`).
    pub fault: Option<Fault>,
    pub heartbeat: Option<HeartbeatConfig>,
    /// Answer a peer's `PING` (off with `--mute`).
    pub answer_pings: bool,
    /// Never read accepted connections.
    pub no_read: bool,
    /// SO_RCVBUF for accepted connections.
    pub rcvbuf: Option<usize>,
    /// `--for`.
    pub run_for: Option<Duration>,
}

pub fn first_address(
    mut addrs: impl Iterator<Item = SocketAddr>,
    shown: &str,
) -> Result<SocketAddr, RunError> {
    addrs.next().ok_or_else(|| RunError::Socket {
        op: "resolve",
        addr: shown.to_string(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
    })
}

/// Binds the listening socket to a resolved address (port 0 picks a free port,
/// shown in `listening`), with `rcvbuf` as SO_RCVBUF for what it accepts.
pub fn bind_to(addr: SocketAddr, rcvbuf: Option<usize>) -> Result<Socket, RunError> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(RunError::socket("create a socket for", addr))?;
    sock.set_reuse_address(true)
        .map_err(RunError::socket("set SO_REUSEADDR on", addr))?;
    if let Some(bytes) = rcvbuf {
        // Before listen(): accepted sockets inherit it, and the window scale they
        // announce in the handshake is chosen from it.
        sock.set_recv_buffer_size(bytes)
            .map_err(RunError::socket("set SO_RCVBUF on", addr))?;
    }
    sock.bind(&addr.into())
        .map_err(RunError::socket("bind", addr))?;
    sock.listen(1024)
        .map_err(RunError::socket("listen on", addr))?;
    sock.set_nonblocking(true)
        .map_err(RunError::socket("make non-blocking", addr))?;
    Ok(sock)
}

/// An idle-limit run: its control flow and its test flows (seq -> connection).
/// The listener owns them too: they end with the control flow, or on `DONE`.
struct IdleRun {
    control: u64,
    peer: IpAddr,
    holds: HashMap<u64, u64>,
}

/// The connections being followed, with their wake-ups in a timer queue. Stale
/// queue entries (a connection rescheduled or gone) are skipped when popped.
struct Table<'s> {
    sessions: HashMap<u64, Session>,
    timers: BinaryHeap<Reverse<(Duration, u64)>>,
    runs: HashMap<u64, IdleRun>,
    lp: EventLoop<'s>,
    tally: Tally,
    /// `cannot follow` warnings, rate-limited.
    follow_warning: Throttle,
    /// Under EMFILE with no reserve descriptor, the listening socket is not
    /// watched until this run time (else accept4 fails in a busy loop).
    accept_resume: Option<Duration>,
    accept_backoff: Duration,
    /// At --max-conns, accepting waits one pass of the loop before refusing, so
    /// connections whose peer already left (their EOF is reported by the next wait)
    /// are removed first.
    deferred_at_limit: bool,
}

impl Table<'_> {
    fn schedule(&mut self, id: u64, now: Duration) {
        if let Some(s) = self.sessions.get_mut(&id) {
            let wake = s.next_wake(now);
            if wake != s.scheduled {
                s.scheduled = wake;
                if let Some(w) = wake {
                    self.timers.push(Reverse((w, id)));
                }
            }
        }
    }

    fn next_timer(&mut self) -> Option<Duration> {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            match self.sessions.get(&id) {
                Some(s) if s.scheduled == Some(at) => return Some(at),
                _ => {
                    self.timers.pop();
                }
            }
        }
        None
    }

    fn remove(&mut self, id: u64, end: &EndFacts) {
        if let Some(s) = self.sessions.remove(&id) {
            self.lp.unwatch(s.fd());
        }
        // A departed connection's wake-up stays queued until it reaches the front,
        // which behind a live one can be hours (idle 7200 s): drop stale entries once
        // they outnumber the live ones, so churn cannot grow the queue (amortised O(1)).
        if self.timers.len() > 2 * self.sessions.len() + 64 {
            let sessions = &self.sessions;
            self.timers.retain(|Reverse((at, id))| {
                sessions.get(id).is_some_and(|s| s.scheduled == Some(*at))
            });
        }
        self.tally.record(end);
    }
}

/// Accepting under EMFILE would spin: one descriptor is kept in reserve, freed to
/// accept and drop the waiting connection, then taken back. When there is none
/// (the table was full from the start), accepting pauses instead.
struct Reserve(Option<std::fs::File>);

impl Reserve {
    fn take() -> Reserve {
        Reserve(std::fs::File::open("/dev/null").ok())
    }

    /// Refuses one waiting connection with the reserve descriptor; false when
    /// there was no reserve to spend.
    fn shed(&mut self, listener: &Socket) -> bool {
        let had = self.0.take().is_some();
        if had && let Ok((conn, _)) = listener.accept() {
            let _ = conn.set_linger(Some(Duration::ZERO));
        }
        *self = Reserve::take();
        had
    }
}

/// Serves on a bound listening socket until `--once` is satisfied, `--for`
/// elapses or a signal arrives.
pub fn serve(
    listener: Socket,
    cfg: &ListenOptions,
    rep: &mut Reporter,
    lp: EventLoop<'_>,
) -> Result<EndFacts, RunError> {
    let plan = Plan {
        send: None,
        fault: cfg.fault,
        heartbeat: cfg.heartbeat.clone(),
        answer_pings: cfg.answer_pings,
        no_read: cfg.no_read,
    };
    let local = listener
        .local_addr()
        .map_err(RunError::io("read the listening address"))?
        .as_socket()
        .ok_or_else(|| {
            RunError::io("read the listening address")(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not an internet socket address",
            ))
        })?;
    rep.emit(
        RUN,
        EventKind::Listening {
            local,
            max_conns: cfg.max_conns,
        },
    )?;
    let mut table = Table {
        sessions: HashMap::new(),
        timers: BinaryHeap::new(),
        runs: HashMap::new(),
        lp,
        tally: Tally::default(),
        deferred_at_limit: false,
        follow_warning: Throttle::new(FOLLOW_WARN_EVERY),
        accept_resume: None,
        accept_backoff: ACCEPT_BACKOFF_MIN,
    };
    table
        .lp
        .watch(std::os::fd::AsFd::as_fd(&listener), LISTENER, false)?;
    let stop_at = cfg.run_for.map(|d| rep.clock.now().saturating_add(d));
    let mut reserve = Reserve::take();
    let mut emfile_reported = false;
    // Dropped after --once accepted its connection, so later ones are refused by
    // the kernel instead of queued.
    let mut listener = Some(listener);
    let mut next_id: u64 = 1;
    let mut ready: Vec<Ready> = Vec::new();
    loop {
        if let Some(at) = table.accept_resume
            && rep.clock.now() >= at
        {
            table.accept_resume = None;
            if let Some(sock) = &listener {
                table
                    .lp
                    .watch(std::os::fd::AsFd::as_fd(sock), LISTENER, false)?;
            }
        }
        let wake = [table.next_timer(), stop_at, table.accept_resume]
            .into_iter()
            .flatten()
            .min();
        let woke = table.lp.wait(&rep.clock, wake)?;
        let now = rep.clock.now();
        ready.clear();
        if woke == Woke::Ready {
            ready.extend_from_slice(table.lp.ready());
        }

        let stop = woke
            .signal()
            .or_else(|| stop_at.filter(|&s| now >= s).map(|_| Outcome::Alive));
        if let Some(outcome) = stop {
            // The listening socket closes first, so a client reconnecting meanwhile
            // is refused by the kernel rather than queued in the backlog and reset.
            if let Some(sock) = listener.take() {
                table.lp.unwatch(std::os::fd::AsFd::as_fd(&sock));
            }
            let message = stop_message(outcome, cfg.run_for);
            let ids: Vec<u64> = table.sessions.keys().copied().collect();
            for id in ids {
                let mut events = Events::new();
                if let Some(s) = table.sessions.get_mut(&id) {
                    let end = s.finish(now, outcome, message.clone(), &mut events);
                    events.emit(rep, id)?;
                    let end = rep.end(id, end)?;
                    table.remove(id, &end);
                }
            }
            let summary = format!(
                "{}; {}",
                message,
                table.tally.summary("served", next_id - 1)
            );
            let end = table.tally.run_end(outcome, summary);
            rep.emit(RUN, EventKind::End(end.clone()))?;
            return Ok(end);
        }

        // The connections held first: their EOFs free table slots for new ones.
        for r in ready.iter().filter(|r| r.token != LISTENER) {
            let id = r.token;
            let mut events = Events::new();
            // Each connection's own time: its sample dates contacts from it, and
            // the connections before it in this wake-up took time.
            let now = rep.clock.now();
            let end = match table.sessions.get_mut(&id) {
                Some(s) => s.on_ready(now, &mut events),
                None => continue,
            };
            if let Some(done) = finish_step(rep, &mut table, id, events, end, cfg.once, now)? {
                return Ok(done);
            }
        }
        if ready.iter().any(|r| r.token == LISTENER)
            && let Some(sock) = &listener
        {
            accept_all(
                sock,
                cfg,
                &plan,
                rep,
                &mut table,
                &mut next_id,
                &mut reserve,
                &mut emfile_reported,
            )?;
            if cfg.once && next_id > 1 {
                table.lp.unwatch(std::os::fd::AsFd::as_fd(sock));
                listener = None;
            }
        }

        while let Some(at) = table.next_timer() {
            if at > now {
                break;
            }
            let Some(Reverse((_, id))) = table.timers.pop() else {
                break;
            };
            let mut events = Events::new();
            let now = rep.clock.now();
            let end = match table.sessions.get_mut(&id) {
                Some(s) => {
                    s.scheduled = None;
                    s.on_wake(now, &mut events)
                }
                None => continue,
            };
            if let Some(done) = finish_step(rep, &mut table, id, events, end, cfg.once, now)? {
                return Ok(done);
            }
        }
    }
}

/// Emits a session's events; removes it when it ended, else serves its idle-limit
/// requests. Returns the run's outcome when `--once` is done.
fn finish_step(
    rep: &mut Reporter,
    table: &mut Table,
    id: u64,
    events: Events,
    end: Option<EndFacts>,
    once: bool,
    now: Duration,
) -> Result<Option<EndFacts>, RunError> {
    events.emit(rep, id)?;
    match end {
        Some(end) => {
            let end = end_session(rep, table, id, end, now)?;
            Ok(once.then_some(end))
        }
        None => {
            serve_requests(rep, table, id, now)?;
            table.schedule(id, now);
            Ok(None)
        }
    }
}

/// Reports a session's end and removes it. An idle-limit test flow that ended
/// on its own is reported to its run's control flow (`SAW`); a control flow's
/// end closes the run's test flows.
fn end_session(
    rep: &mut Reporter,
    table: &mut Table,
    id: u64,
    end: EndFacts,
    now: Duration,
) -> Result<EndFacts, RunError> {
    let end = rep.end(id, end)?;
    let role = table.sessions.get(&id).map(|s| s.role);
    table.remove(id, &end);
    match role {
        Some(Role::Test { run, seq }) => {
            let control = table.runs.get_mut(&run).and_then(|r| {
                (r.holds.get(&seq) == Some(&id)).then(|| {
                    r.holds.remove(&seq);
                    r.control
                })
            });
            if let Some(control) = control {
                let what = Session::saw(&end);
                let ended = table
                    .sessions
                    .get_mut(&control)
                    .and_then(|c| c.tell(now, Message::Saw { seq, what }));
                if let Some(cend) = ended {
                    end_session(rep, table, control, cend, now)?;
                }
            }
        }
        Some(Role::Control { run }) => {
            if let Some(r) = table.runs.remove(&run) {
                for conn in r.holds.into_values() {
                    close_session(
                        rep,
                        table,
                        conn,
                        now,
                        &format!("closed (reset): the control flow of idle-limit run {run} ended"),
                    )?;
                }
            }
        }
        Some(Role::Plain) | None => {}
    }
    Ok(end)
}

/// Closes a session with a reset (nothing lingers behind a path that forgot it).
fn close_session(
    rep: &mut Reporter,
    table: &mut Table,
    id: u64,
    now: Duration,
    message: &str,
) -> Result<(), RunError> {
    let Some(s) = table.sessions.get_mut(&id) else {
        return Ok(());
    };
    let end = s.close_now(now, Fault::Reset(Duration::ZERO), message);
    end_session(rep, table, id, end, now)?;
    Ok(())
}

/// idle-limit's requests: a control flow registers its run; a test flow is
/// held only for a run whose control flow is open from the same address, and
/// within the bounds; `DONE` closes a test flow.
fn serve_requests(
    rep: &mut Reporter,
    table: &mut Table,
    id: u64,
    now: Duration,
) -> Result<(), RunError> {
    let Some(s) = table.sessions.get_mut(&id) else {
        return Ok(());
    };
    let requests = s.take_requests();
    let peer = s.peer().ip();
    for req in requests {
        let mut events = Events::new();
        let ended = match req {
            Request::Watch(run) => {
                let runs_of_peer = table.runs.values().filter(|r| r.peer == peer).count();
                let why = if run == 0 || table.runs.contains_key(&run) {
                    Some(format!(
                        "WATCH {run}: no such run may be started (0 or in use)"
                    ))
                } else if runs_of_peer >= RUNS_PER_PEER {
                    Some(format!(
                        "WATCH {run}: {peer} has {RUNS_PER_PEER} idle-limit runs open already"
                    ))
                } else {
                    None
                };
                match (why, table.sessions.get_mut(&id)) {
                    (Some(why), Some(s)) => {
                        Some(s.close_now(now, Fault::Close(Duration::ZERO), &why))
                    }
                    (None, Some(s)) => {
                        table.runs.insert(
                            run,
                            IdleRun {
                                control: id,
                                peer,
                                holds: HashMap::new(),
                            },
                        );
                        s.watching(now, run)
                    }
                    (_, None) => None,
                }
            }
            Request::Hold {
                seq,
                wake_ms,
                uto_ms,
                run,
            } => {
                let why = match table.runs.get(&run) {
                    None => Some(format!("HOLD {seq}: no control flow for run {run}")),
                    Some(r) if r.peer != peer => Some(format!(
                        "HOLD {seq}: run {run}'s control flow is from another address"
                    )),
                    Some(r) if r.holds.contains_key(&seq) => {
                        Some(format!("HOLD {seq}: run {run} holds that flow already"))
                    }
                    Some(r) if r.holds.len() >= HOLDS_PER_RUN => Some(format!(
                        "HOLD {seq}: run {run} holds {HOLDS_PER_RUN} test flows already"
                    )),
                    Some(_) => None,
                };
                match (why, table.sessions.get_mut(&id)) {
                    (Some(why), Some(s)) => Some(s.refuse(now, seq, &why)),
                    (None, Some(s)) => {
                        if let Some(r) = table.runs.get_mut(&run) {
                            r.holds.insert(seq, id);
                        }
                        s.accept_hold(now, run, seq, wake_ms, uto_ms, &mut events)
                    }
                    (_, None) => None,
                }
            }
            Request::Done(seq) => {
                let target = match table.sessions.get(&id).map(|s| s.role) {
                    Some(Role::Control { run }) => table
                        .runs
                        .get_mut(&run)
                        .and_then(|r| r.holds.remove(&seq).map(|conn| (run, conn))),
                    _ => None,
                };
                if let Some((run, conn)) = target {
                    close_session(
                        rep,
                        table,
                        conn,
                        now,
                        &format!(
                            "closed (reset): idle-limit run {run} is done with test flow {seq}"
                        ),
                    )?;
                }
                None
            }
        };
        events.emit(rep, id)?;
        if let Some(end) = ended {
            end_session(rep, table, id, end, now)?;
            return Ok(());
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn accept_all(
    listener: &Socket,
    cfg: &ListenOptions,
    plan: &Plan,
    rep: &mut Reporter,
    table: &mut Table,
    next_id: &mut u64,
    reserve: &mut Reserve,
    emfile_reported: &mut bool,
) -> Result<(), RunError> {
    for _ in 0..ACCEPTS_PER_WAKE {
        if cfg.once && *next_id > 1 {
            return Ok(());
        }
        if table.sessions.len() < cfg.max_conns {
            table.deferred_at_limit = false;
        } else if !table.deferred_at_limit {
            table.deferred_at_limit = true;
            return Ok(());
        }
        let (sock, peer) = match listener.accept() {
            Ok(pair) => {
                table.accept_backoff = ACCEPT_BACKOFF_MIN;
                pair
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                if !*emfile_reported {
                    *emfile_reported = true;
                    rep.emit(
                        RUN,
                        EventKind::Warning {
                            message: format!(
                                "accept: {e}; connections are refused until descriptors free up \
                                 (raise ulimit -n); reported once"
                            ),
                        },
                    )?;
                }
                if !reserve.shed(listener) {
                    let now = rep.clock.now();
                    table.lp.unwatch(std::os::fd::AsFd::as_fd(listener));
                    table.accept_resume = Some(now.saturating_add(table.accept_backoff));
                    table.accept_backoff = table
                        .accept_backoff
                        .saturating_mul(2)
                        .min(ACCEPT_BACKOFF_MAX);
                }
                return Ok(());
            }
            // ECONNABORTED and friends: that one connection is gone, keep serving.
            Err(_) => continue,
        };
        let peer = peer.as_socket();
        if table.sessions.len() >= cfg.max_conns {
            let _ = sock.set_linger(Some(Duration::ZERO));
            if let Some(peer) = peer {
                rep.emit(
                    RUN,
                    EventKind::Refused {
                        peer,
                        reason: format!("--max-conns {} reached; reset", cfg.max_conns),
                    },
                )?;
            }
            continue;
        }
        let now = rep.clock.now();
        let started =
            match sys::apply(&sock, &cfg.keepalive).and_then(|_| sock.set_nonblocking(true)) {
                Ok(()) => Session::start(sock, now, plan).map_err(|(e, _)| e),
                Err(e) => Err(e),
            };
        let (session, events) = match started {
            Ok(pair) => pair,
            // The peer left between accept and the first look (ENOTCONN): that
            // connection is not counted, so `--once` still waits for one to follow.
            // A peer resetting every connection would repeat this without end: it
            // is reported at most once per FOLLOW_WARN_EVERY, with a count.
            Err(e) => {
                if let Some(held) = table.follow_warning.due(now) {
                    let from = peer.map_or("a peer".to_string(), |p| p.to_string());
                    let why = e.raw_os_error().map_or(e.to_string(), errno_text);
                    rep.emit(
                        RUN,
                        EventKind::Warning {
                            message: format!(
                                "cannot follow the connection from {from}: {why}{}",
                                Throttle::held_text(held)
                            ),
                        },
                    )?;
                }
                continue;
            }
        };
        let id = *next_id;
        *next_id += 1;
        if cfg.no_read {
            table.lp.watch_hangups(session.fd(), id)?;
        } else {
            table.lp.watch(session.fd(), id, false)?;
        }
        table.sessions.insert(id, session);
        events.emit(rep, id)?;
        table.schedule(id, now);
    }
    // More may be pending: the listening socket stays readable and comes back in
    // the next wait, after the connections held have been served.
    Ok(())
}
