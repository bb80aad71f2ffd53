//! `idle-limit`: converts the flags into the engine's [`IdleLimitOptions`] and runs
//! the measurement of [`crate::engine::idle_limit`] with the reporter and signals
//! `cmd::run` built.

use crate::config::idle_limit::IdleLimitConfig;
use crate::engine::event_loop::Signals;
use crate::engine::idle_limit::{self, IdleLimitOptions, VerifyOptions};
use crate::engine::run::{Reporter, RunError};
use crate::model::event::EndFacts;

/// What the engine needs of `idle-limit`'s flags (the rest is the reporter's).
pub fn options(cfg: &IdleLimitConfig) -> IdleLimitOptions {
    IdleLimitOptions {
        target: cfg.target.clone(),
        max: cfg.max,
        resolution: cfg.resolution,
        directions: cfg.directions.clone(),
        parallel: cfg.parallel,
        verify: cfg.verify.as_ref().map(|v| VerifyOptions {
            idle_s: v.idle_s,
            intvl_s: v.intvl_s,
            cnt: v.cnt,
        }),
        connect_timeout: cfg.connect_timeout,
    }
}

pub fn run(
    cfg: &IdleLimitConfig,
    rep: &mut Reporter,
    signals: &Signals,
) -> Result<EndFacts, RunError> {
    idle_limit::run(&options(cfg), rep, signals)
}
