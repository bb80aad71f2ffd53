//! `idle-limit`: runs the measurement of [`crate::engine::idle_limit`] with the
//! reporter and signals `cmd::run` built.

use crate::config::idle_limit::IdleLimitConfig;
use crate::engine::event_loop::Signals;
use crate::engine::idle_limit;
use crate::engine::run::{Reporter, RunError};
use crate::model::event::EndFacts;

pub fn run(
    cfg: &IdleLimitConfig,
    rep: &mut Reporter,
    signals: &Signals,
) -> Result<EndFacts, RunError> {
    idle_limit::run(cfg, rep, signals)
}
