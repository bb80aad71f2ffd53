//! What `connect` and `connect --reconnect` share: dialing the target (resolve,
//! non-blocking connect with the settings applied, timeout, signals) and following
//! one established connection until it ends, `--for` elapses or a signal arrives.
//! Both run in the caller's [`EventLoop`].

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsFd;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::ConnectConfig;
use crate::engine::event_loop::{EventLoop, Woke};
use crate::engine::run::{Reporter, RunError, stop_message};
use crate::engine::session::{Plan, Session};
use crate::model::event::{EndFacts, Outcome};
use crate::model::outcome::{errno_name, errno_text};
use crate::sys::sockopt;

/// The connection id of `connect`'s first (or only) connection.
pub const CONN: u64 = 1;
/// The token of the socket being dialed or followed.
const SOCK: u64 = 1;

/// How dialing ended.
pub enum Dialed {
    Connected(Socket),
    Failed(Box<EndFacts>),
    Interrupted(Outcome),
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
pub fn plan(cfg: &ConnectConfig) -> Plan {
    Plan {
        send: cfg.send.clone(),
        fault: None,
        heartbeat: cfg.heartbeat.clone(),
        answer_pings: true,
    }
}

/// Follows one established connection until it ends, `stop_at` passes (outcome
/// alive) or a signal arrives. Emits every event but the `end`, which it returns.
pub fn follow(
    conn: u64,
    sock: Socket,
    cfg: &ConnectConfig,
    rep: &mut Reporter,
    lp: &mut EventLoop<'_>,
    stop_at: Option<Duration>,
) -> Result<EndFacts, RunError> {
    let target = cfg.target.to_string();
    let (mut session, events) = Session::start(sock, rep.clock.now(), &plan(cfg)).map_err(
        RunError::socket("read the settings of the connection to", &target),
    )?;
    rep.emit_all(conn, events)?;
    lp.watch(session.fd(), SOCK, false)?;
    let end = follow_session(conn, &mut session, cfg, rep, lp, stop_at);
    lp.unwatch(session.fd());
    end
}

fn follow_session(
    conn: u64,
    session: &mut Session,
    cfg: &ConnectConfig,
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
        let mut events = Vec::new();
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
                    stop_message(Outcome::Alive, cfg.run.run_for)
                );
                session.finish(now, Outcome::Alive, message, &mut events)
            })
        });
        rep.emit_all(conn, events)?;
        if let Some(end) = end {
            return Ok(end);
        }
    }
}

/// Resolves the target and tries each address until one connects.
pub fn dial(
    cfg: &ConnectConfig,
    rep: &mut Reporter,
    lp: &mut EventLoop<'_>,
) -> Result<Dialed, RunError> {
    let addrs: Vec<SocketAddr> = match (cfg.target.host.as_str(), cfg.target.port).to_socket_addrs()
    {
        Ok(a) => a.collect(),
        Err(e) => {
            return Ok(failed(
                None,
                format!("cannot resolve '{}': {e}", cfg.target.host),
            ));
        }
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
        sockopt::apply(&sock, &cfg.keepalive)
            .map_err(RunError::socket("apply settings for", addr))?;
        sock.set_nonblocking(true)
            .map_err(RunError::socket("make non-blocking the socket for", addr))?;
        last = connect_one(sock, addr, cfg.connect_timeout, rep, lp)?;
        if !matches!(last, Dialed::Failed(_)) {
            break;
        }
    }
    Ok(last)
}

/// Non-blocking connect, waiting for the handshake, the timeout or a signal.
/// `SO_ERROR` is read here, before the run starts, where it is harmless.
fn connect_one(
    sock: Socket,
    addr: SocketAddr,
    timeout: Duration,
    rep: &Reporter,
    lp: &mut EventLoop<'_>,
) -> Result<Dialed, RunError> {
    let refused = |errno: Option<i32>| {
        let text = errno.map_or("unknown error".to_string(), errno_text);
        failed(errno, format!("connect to {addr} failed: {text}"))
    };
    match sock.connect(&addr.into()) {
        Ok(()) => return Ok(Dialed::Connected(sock)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Ok(refused(e.raw_os_error())),
    }
    let deadline = rep.clock.now().saturating_add(timeout);
    lp.watch(sock.as_fd(), SOCK, true)?;
    let woke = lp.wait(&rep.clock, Some(deadline));
    lp.unwatch(sock.as_fd());
    Ok(match woke? {
        Woke::Signal(outcome) => Dialed::Interrupted(outcome),
        Woke::Deadline => failed(
            Some(libc::ETIMEDOUT),
            format!(
                "connect to {addr} timed out after {}",
                humantime::format_duration(timeout)
            ),
        ),
        Woke::Ready => match sock.take_error() {
            Ok(None) => Dialed::Connected(sock),
            Ok(Some(e)) => refused(e.raw_os_error()),
            Err(e) => refused(e.raw_os_error()),
        },
    })
}
