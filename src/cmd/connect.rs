//! `connect`: resolve, connect with the settings applied, then follow the one
//! connection until it ends, `--for` elapses or a signal arrives. With
//! `--reconnect` the run is a monitor across deaths ([`crate::engine::monitor`]).

use crate::config::ConnectConfig;
use crate::engine::connection::{CONN, Dialed, dial, follow, interrupted_end};
use crate::engine::event_loop::{EventLoop, Signals};
use crate::engine::run::{Reporter, RunError};
use crate::model::event::EndFacts;

pub fn run(
    cfg: &ConnectConfig,
    rep: &mut Reporter,
    signals: &Signals,
) -> Result<EndFacts, RunError> {
    let mut lp = EventLoop::new(Some(signals))?;
    if cfg.reconnect.is_some() {
        return crate::engine::monitor::run(cfg, rep, &mut lp);
    }
    let sock = match dial(cfg, rep, &mut lp)? {
        Dialed::Connected(sock) => sock,
        Dialed::Failed(end) | Dialed::Died(end) => return rep.end(CONN, *end),
        Dialed::Interrupted(outcome) => return rep.end(CONN, interrupted_end(outcome)),
    };
    let stop_at = cfg.run.run_for.map(|d| rep.clock.now().saturating_add(d));
    let end = follow(CONN, sock, cfg, rep, &mut lp, stop_at)?;
    rep.end(CONN, end)
}
