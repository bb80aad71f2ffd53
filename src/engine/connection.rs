//! What `connect` and `connect --reconnect` share: dialing the target (resolve,
//! non-blocking connect with the settings applied, timeout, signals) and following
//! one established connection until it ends, `--for` elapses or a signal arrives.
//! Both run in the caller's [`EventLoop`].

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::{Endpoint, SendPlan};
use crate::engine::event_loop::{EventLoop, Resolved, Woke};
use crate::engine::run::{Reporter, RunError, stop_message};
use crate::engine::session::{Events, Plan, Session};
use crate::model::event::{EndFacts, EventKind, Outcome};
use crate::model::heartbeat::HeartbeatConfig;
use crate::model::outcome::{classify_errno, errno_name, errno_text};
use crate::model::sample::TCP_SYN_SENT;
use crate::model::schedule::{self, Bound};
use crate::model::tune::KeepaliveRequest;
use crate::sys;
use crate::sys::{sockopt, sysctl};

/// The connection id of `connect`'s first (or only) connection.
pub const CONN: u64 = 1;
/// The token of the socket being dialed or followed.
const SOCK: u64 = 1;
/// Sample this long after a SYN retransmission is due, so the timer has fired.
const SYN_SLACK: Duration = Duration::from_millis(3);
/// The shortest step between samples while a SYN retransmission is late.
const SYN_STEP: Duration = Duration::from_millis(10);

/// What dialing and following one target take: built from `connect`'s flags by
/// `cmd::connect`, or by the lab for its connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Resolved in the event loop when dialing.
    pub target: Endpoint,
    /// Applied to the socket before connect().
    pub keepalive: KeepaliveRequest,
    pub connect_timeout: Duration,
    /// Writes while following (`--send-every`).
    pub send: Option<SendPlan>,
    pub heartbeat: Option<HeartbeatConfig>,
    /// `--for`: named in the message of a run that reached it.
    pub run_for: Option<Duration>,
}

/// How dialing ended.
pub enum Dialed {
    Connected(Socket),
    /// The handshake completed, then the peer reset the connection before it
    /// could be followed (a server that accepts and aborts at once): a death of
    /// an established connection, never a failed connect.
    Died(Box<EndFacts>),
    Failed(Box<EndFacts>),
    Interrupted(Outcome),
}

/// The end of a connection that the peer aborted before it could be followed.
fn died_at_once(errno: i32, target: &str) -> EndFacts {
    EndFacts::new(
        classify_errno(errno),
        Some(errno_name(errno)),
        format!(
            "the connection to {target} was established, then ended before it could be \
             followed: {}",
            errno_text(errno)
        ),
        None,
        None,
    )
}

fn failed(errno: Option<i32>, message: String) -> Dialed {
    Dialed::Failed(Box::new(EndFacts::new(
        Outcome::ConnectFailed,
        errno.map(errno_name),
        message,
        None,
        None,
    )))
}

/// The end of a run a signal stopped before any connection was followed.
pub fn interrupted_end(outcome: Outcome) -> EndFacts {
    EndFacts::new(outcome, None, stop_message(outcome, None), None, None)
}

/// What a `connect` session does besides observing.
pub fn plan(cfg: &ConnectOptions) -> Plan {
    Plan {
        send: cfg.send.clone(),
        fault: None,
        heartbeat: cfg.heartbeat.clone(),
        answer_pings: true,
        no_read: false,
    }
}

/// Follows one established connection until it ends, `stop_at` passes (outcome
/// alive) or a signal arrives. Emits every event but the `end`, which it returns.
pub fn follow(
    conn: u64,
    sock: Socket,
    cfg: &ConnectOptions,
    rep: &mut Reporter,
    lp: &mut EventLoop<'_>,
    stop_at: Option<Duration>,
) -> Result<EndFacts, RunError> {
    let target = cfg.target.to_string();
    let (mut session, events) = match Session::start(sock, rep.clock.now(), &plan(cfg)) {
        Ok(started) => started,
        Err((e, sock)) => {
            // The peer aborted between the handshake and the first look (getpeername
            // says ENOTCONN): the reset is in SO_ERROR, which the run has not
            // started reading, so reading it here costs nothing.
            let errno = match sock.take_error() {
                Ok(Some(pending)) => pending.raw_os_error(),
                _ => None,
            }
            .or(e.raw_os_error())
            .map(|errno| {
                if errno == libc::ENOTCONN {
                    libc::ECONNRESET
                } else {
                    errno
                }
            });
            return match errno {
                Some(errno) => Ok(died_at_once(errno, &target)),
                None => Err(RunError::socket(
                    "read the settings of the connection to",
                    &target,
                )(e)),
            };
        }
    };
    events.emit(rep, conn)?;
    lp.watch(session.fd(), SOCK, false)?;
    let end = follow_session(conn, &mut session, cfg, rep, lp, stop_at);
    lp.unwatch(session.fd());
    end
}

fn follow_session(
    conn: u64,
    session: &mut Session,
    cfg: &ConnectOptions,
    rep: &mut Reporter,
    lp: &mut EventLoop<'_>,
    stop_at: Option<Duration>,
) -> Result<EndFacts, RunError> {
    loop {
        let now = rep.clock.now();
        let wake = [session.next_wake(now), stop_at]
            .into_iter()
            .flatten()
            .min();
        let woke = lp.wait(&rep.clock, wake)?;
        let now = rep.clock.now();
        let mut events = Events::new();
        let end = match woke {
            Woke::Signal(outcome) => {
                Some(session.finish(now, outcome, stop_message(outcome, None), &mut events))
            }
            Woke::Ready => session.on_ready(now, &mut events),
            Woke::Deadline => None,
        };
        let end = end.or_else(|| {
            wake.filter(|&w| now >= w)
                .and_then(|_| session.on_wake(now, &mut events))
        });
        let end = end.or_else(|| {
            stop_at.filter(|&s| now >= s).map(|_| {
                let message = format!(
                    "{} with the peer alive",
                    stop_message(Outcome::Alive, cfg.run_for)
                );
                session.finish(now, Outcome::Alive, message, &mut events)
            })
        });
        events.emit(rep, conn)?;
        if let Some(end) = end {
            return Ok(end);
        }
    }
}

/// Resolves the target and tries each address until one connects.
pub fn dial(
    cfg: &ConnectOptions,
    rep: &mut Reporter,
    lp: &mut EventLoop<'_>,
) -> Result<Dialed, RunError> {
    let addrs = match lp.resolve(&rep.clock, &cfg.target.host, cfg.target.port)? {
        Resolved::Addrs(addrs) => addrs,
        Resolved::Failed(e) => {
            return Ok(failed(
                None,
                format!("cannot resolve '{}': {e}", cfg.target.host),
            ));
        }
        Resolved::Interrupted(outcome) => return Ok(Dialed::Interrupted(outcome)),
    };
    let mut last = failed(
        None,
        format!("'{}' resolved to no address", cfg.target.host),
    );
    for addr in addrs {
        // A family this host cannot use (IPv6 off, say) fails this address only.
        let sock = match Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)) {
            Ok(sock) => sock,
            Err(e) => {
                last = failed(
                    e.raw_os_error(),
                    format!("cannot open a socket for {addr}: {e}"),
                );
                continue;
            }
        };
        sys::apply(&sock, &cfg.keepalive).map_err(RunError::socket("apply settings for", addr))?;
        sock.set_nonblocking(true)
            .map_err(RunError::socket("make non-blocking the socket for", addr))?;
        let uto_ms = cfg
            .keepalive
            .user_timeout
            .map_or(0, |d| d.as_millis().min(u32::MAX as u128) as u32);
        last = connect_one(sock, addr, cfg.connect_timeout, uto_ms, rep, lp)?;
        if !matches!(last, Dialed::Failed(_)) {
            break;
        }
    }
    Ok(last)
}

/// What ended a connect attempt, as the end's message says it.
fn bound_message(bound: Bound, retransmits: u32, syn_retries: u32, uto_ms: u32) -> String {
    match bound {
        Bound::UserTimeout => format!(
            "the user timeout ({uto_ms}ms) ended the attempt after {retransmits} SYN \
             retransmission(s)"
        ),
        Bound::ConnectTimeout => {
            format!("--connect-timeout ended the attempt after {retransmits} SYN retransmission(s)")
        }
        _ => format!(
            "the SYN retransmissions ran out (syn_retries {syn_retries}) after \
             {retransmits} of them"
        ),
    }
}

/// A failed attempt whose end names its bound.
fn timed_out(message: String, bound: Bound) -> Dialed {
    let mut end = EndFacts::new(
        Outcome::ConnectFailed,
        Some(errno_name(libc::ETIMEDOUT)),
        message,
        None,
        None,
    );
    end.bound = Some(bound);
    Dialed::Failed(Box::new(end))
}

/// Non-blocking connect, waiting for the handshake, the timeout or a signal.
/// `SO_ERROR` is read here, before the run starts, where it is harmless.
///
/// The timeline shows the attempt: `connecting` with the deadline and the bound that
/// sets it (the user timeout, the SYN retransmissions or `--connect-timeout`,
/// whichever ends first: [`schedule::syn_sent`]), and a `syn-retransmit` event each
/// time the kernel resends the SYN (TCP_INFO works in SYN-SENT: tcpi_total_retrans),
/// sampled just after each is due.
fn connect_one(
    sock: Socket,
    addr: SocketAddr,
    timeout: Duration,
    uto_ms: u32,
    rep: &mut Reporter,
    lp: &mut EventLoop<'_>,
) -> Result<Dialed, RunError> {
    let refused = |errno: Option<i32>| {
        let text = errno.map_or("unknown error".to_string(), errno_text);
        failed(errno, format!("connect to {addr} failed: {text}"))
    };
    // Read before the SYN leaves (the first call reads sysctls and the kernel's
    // config), so the `connecting` event follows the SYN at once.
    let mut params = sysctl::kernel_params();
    if let Ok(n) = sockopt::syn_retries(&sock) {
        params.syn_retries = n;
    }
    let start = rep.clock.now();
    match sock.connect(&addr.into()) {
        Ok(()) => return Ok(Dialed::Connected(sock)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Ok(refused(e.raw_os_error())),
    }
    let plan = schedule::syn_sent(&params, uto_ms, timeout, start);
    rep.emit(
        CONN,
        EventKind::Connecting {
            peer: addr,
            deadline: plan.deadline,
            bound: plan.bound,
            syn_retries: params.syn_retries,
            retransmits: plan.retransmits.len() as u32,
        },
    )?;
    let deadline = start.saturating_add(timeout);
    lp.watch(sock.as_fd(), SOCK, true)?;
    // The SYN retransmissions seen, and when the next is due: the plan's gaps,
    // re-anchored on each one seen (the kernel arms each timer when the previous
    // fired, so lateness adds up).
    let mut seen = 0u32;
    let mut next_due = plan.retransmits.first().copied();
    let result = loop {
        let now = rep.clock.now();
        let wake = match next_due.map(|d| d.saturating_add(SYN_SLACK)) {
            Some(due) if due > now => due,
            Some(due) => {
                now.saturating_add(((now - due) / 8).clamp(SYN_STEP, Duration::from_secs(1)))
            }
            None => deadline,
        }
        .min(deadline);
        let woke = lp.wait(&rep.clock, Some(wake))?;
        let now = rep.clock.now();
        if let Ok(Some(s)) = sys::sample(sock.as_fd())
            && s.state == TCP_SYN_SENT
        {
            for n in seen + 1..=s.total_retrans {
                let due = next_due.unwrap_or(now);
                rep.emit(CONN, EventKind::SynRetransmit { n, due })?;
                // Taken as when we saw it, as for keepalive probes.
                let gap = match (
                    plan.retransmits.get(n as usize - 1),
                    plan.retransmits.get(n as usize),
                ) {
                    (Some(a), Some(b)) => Some(b.saturating_sub(*a)),
                    _ => None,
                };
                next_due = gap.map(|g| now.saturating_add(g));
                seen = n;
            }
        }
        match woke {
            Woke::Signal(outcome) => {
                lp.unwatch(sock.as_fd());
                break Dialed::Interrupted(outcome);
            }
            Woke::Deadline if now >= deadline => {
                lp.unwatch(sock.as_fd());
                break timed_out(
                    format!(
                        "connect to {addr} timed out after {}: {}",
                        humantime::format_duration(timeout),
                        bound_message(Bound::ConnectTimeout, seen, params.syn_retries, uto_ms)
                    ),
                    Bound::ConnectTimeout,
                );
            }
            Woke::Deadline => {}
            Woke::Ready => {
                let error = sock.take_error();
                lp.unwatch(sock.as_fd());
                break match error {
                    Ok(None) => Dialed::Connected(sock),
                    Ok(Some(e)) if e.raw_os_error() == Some(libc::ETIMEDOUT) => {
                        // The kernel ended it: its own bound, even where the plan
                        // expected --connect-timeout first.
                        let bound = match plan.bound {
                            Bound::ConnectTimeout if uto_ms > 0 => Bound::UserTimeout,
                            Bound::ConnectTimeout => Bound::SynRetries,
                            b => b,
                        };
                        timed_out(
                            format!(
                                "connect to {addr} failed: {}: {}",
                                errno_text(libc::ETIMEDOUT),
                                bound_message(bound, seen, params.syn_retries, uto_ms)
                            ),
                            bound,
                        )
                    }
                    // A refused SYN says ECONNREFUSED; a reset means the handshake
                    // had completed and the peer then aborted.
                    Ok(Some(e))
                        if matches!(e.raw_os_error(), Some(libc::ECONNRESET | libc::EPIPE)) =>
                    {
                        let errno = e.raw_os_error().unwrap_or(libc::ECONNRESET);
                        Dialed::Died(Box::new(died_at_once(errno, &addr.to_string())))
                    }
                    Ok(Some(e)) => refused(e.raw_os_error()),
                    Err(e) => refused(e.raw_os_error()),
                };
            }
        }
    };
    Ok(result)
}
