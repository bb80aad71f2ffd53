//! `tune`: installs the signals (a signal ends the run between two sockets, with
//! an end saying what was changed and what was not), builds the reporter, and
//! runs [`engine::tune`].

use crate::config::{RunConfig, TuneConfig};
use crate::engine;
use crate::engine::event_loop::Signals;
use crate::engine::run::{Clock, Reporter, RunError};
use crate::model::event::EndFacts;

pub fn run(cfg: &TuneConfig, clock: Clock) -> Result<EndFacts, RunError> {
    let signals = Signals::install()?;
    let run = RunConfig::once(cfg.format);
    let mut rep = Reporter::for_run(clock, &run, true);
    engine::tune::run(cfg, &mut rep, &signals)
}
