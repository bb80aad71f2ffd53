//! `connect`: converts the flags into the engine's [`ConnectOptions`], then dials
//! and follows the one connection until it ends, `--for` elapses or a signal
//! arrives. With `--reconnect` the run is a monitor across deaths
//! ([`crate::engine::monitor`]).

use crate::config::ConnectConfig;
use crate::engine::connection::{CONN, ConnectOptions, Dialed, dial, follow, interrupted_end};
use crate::engine::event_loop::{EventLoop, Signals};
use crate::engine::run::{Reporter, RunError};
use crate::model::event::EndFacts;

/// What the engine needs of `connect`'s flags (the rest is the reporter's).
pub fn options(cfg: &ConnectConfig) -> ConnectOptions {
    ConnectOptions {
        target: cfg.target.clone(),
        keepalive: cfg.keepalive.clone(),
        connect_timeout: cfg.connect_timeout,
        send: cfg.send.clone(),
        heartbeat: cfg.heartbeat.clone(),
        run_for: cfg.run.run_for,
    }
}

pub fn run(
    cfg: &ConnectConfig,
    rep: &mut Reporter,
    signals: &Signals,
) -> Result<EndFacts, RunError> {
    let opts = options(cfg);
    let mut lp = EventLoop::new(Some(signals))?;
    if let Some(reconnect) = &cfg.reconnect {
        return crate::engine::monitor::run(&opts, reconnect.count, rep, &mut lp);
    }
    let sock = match dial(&opts, rep, &mut lp)? {
        Dialed::Connected(sock) => sock,
        Dialed::Failed(end) | Dialed::Died(end) => return rep.end(CONN, *end),
        Dialed::Interrupted(outcome) => return rep.end(CONN, interrupted_end(outcome)),
    };
    let stop_at = opts.run_for.map(|d| rep.clock.now().saturating_add(d));
    let end = follow(CONN, sock, &opts, rep, &mut lp, stop_at)?;
    rep.end(CONN, end)
}
