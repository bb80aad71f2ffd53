//! `listen`: converts the flags into the engine's [`ListenOptions`], resolves and
//! binds the listening address (in the event loop, so a signal during a slow
//! lookup is answered), then serves it ([`crate::engine::listener`]).

use crate::config::ListenConfig;
use crate::engine::connection::interrupted_end;
use crate::engine::event_loop::{EventLoop, Resolved, Signals};
use crate::engine::listener::{ListenOptions, RUN, bind_to, first_address, serve};
use crate::engine::run::{Reporter, RunError};
use crate::model::event::{EndFacts, EventKind};

/// What the engine needs of `listen`'s flags (the rest is the reporter's).
pub fn options(cfg: &ListenConfig) -> ListenOptions {
    ListenOptions {
        keepalive: cfg.keepalive.clone(),
        once: cfg.once,
        max_conns: cfg.max_conns,
        fault: cfg.fault,
        heartbeat: cfg.heartbeat.clone(),
        answer_pings: !cfg.mute,
        no_read: cfg.no_read,
        rcvbuf: cfg.rcvbuf,
        run_for: cfg.run.run_for,
    }
}

pub fn run(
    cfg: &ListenConfig,
    rep: &mut Reporter,
    signals: &Signals,
) -> Result<EndFacts, RunError> {
    let opts = options(cfg);
    // Resolved in the event loop, so a signal during a slow lookup still ends
    // the run at once, with its `end`.
    let mut lp = EventLoop::new(Some(signals))?;
    let shown = cfg.bind.to_string();
    let addr = match lp.resolve(&rep.clock, &cfg.bind.host, cfg.bind.port)? {
        Resolved::Addrs(addrs) => first_address(addrs.into_iter(), &shown)?,
        Resolved::Failed(e) => return Err(RunError::socket("resolve", &shown)(e)),
        Resolved::Interrupted(outcome) => {
            let end = interrupted_end(outcome);
            rep.emit(RUN, EventKind::End(end.clone()))?;
            return Ok(end);
        }
    };
    let listener = bind_to(addr, opts.rcvbuf)?;
    serve(listener, &opts, rep, lp)
}
