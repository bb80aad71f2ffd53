//! `listen`: resolve and bind the listening address (in the event loop, so a
//! signal during a slow lookup is answered), then serve it
//! ([`crate::engine::listener`]).

use crate::config::ListenConfig;
use crate::engine::connection::interrupted_end;
use crate::engine::event_loop::{EventLoop, Resolved, Signals};
use crate::engine::listener::{RUN, bind_to, first_address, serve};
use crate::engine::run::{Reporter, RunError};
use crate::model::event::{EndFacts, EventKind};

pub fn run(
    cfg: &ListenConfig,
    rep: &mut Reporter,
    signals: &Signals,
) -> Result<EndFacts, RunError> {
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
    let listener = bind_to(cfg, addr)?;
    serve(listener, cfg, rep, lp)
}
