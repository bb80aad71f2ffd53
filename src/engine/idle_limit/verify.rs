//! `idle-limit --verify`: one keepalive connection held idle past the limit, to
//! show the chosen keepalive keeps the flow.

use super::*;
use crate::engine::event_loop::EventLoop;
use crate::engine::run::{Reporter, RunError};
use crate::model::event::EndFacts;
use crate::model::idle_limit::{self as model, Check, Direction, Verdict};
use std::net::SocketAddr;
use std::time::Duration;

pub(super) enum Verified {
    Checked {
        check: Check,
        idle_s: u32,
        hold: Duration,
        /// The idle time the check stands for (shorter when the flow died idle).
        reached: Duration,
    },
    Skipped(String),
    Stopped(Box<EndFacts>),
}

/// `--verify`: one flow with keepalive on, held idle past the limit's upper edge,
/// then checked in the direction that was affected.
#[allow(clippy::too_many_arguments)]
pub(super) fn verify(
    vcfg: &VerifyOptions,
    v: &Verdict,
    cfg: &IdleLimitOptions,
    addr: SocketAddr,
    m: &mut Measure,
    rep: &mut Reporter,
    lp: &mut EventLoop<'_>,
) -> Result<Verified, RunError> {
    let (Some((t, r)), Some(dir)) = (v.limit, v.direction) else {
        return Ok(Verified::Skipped(
            "no limit was found, nothing to verify".to_string(),
        ));
    };
    let Some(plan) = model::verify_plan(
        vcfg.idle_s,
        vcfg.intvl_s,
        vcfg.cnt,
        v.recommended,
        t.saturating_add(r),
        v.drop_mode,
    ) else {
        return Ok(Verified::Skipped(
            "the limit is too short for a recommendation: give --idle".to_string(),
        ));
    };
    let (keepalive, idle_s, hold) = (plan.keepalive, plan.idle_s, plan.hold);
    m.refresh = plan.refresh;
    let check_dir = if dir == "in" {
        Direction::In
    } else {
        Direction::Out
    };
    // The verify flow's result is kept apart from the measurement's checks (round 0).
    let end = run_round(
        0,
        &[(check_dir, hold)],
        Some(&keepalive),
        cfg,
        addr,
        m,
        rep,
        lp,
    )?;
    m.refresh = None;
    let result = m.records.iter().rfind(|r| r.round == 0).map(|r| {
        let check = match m.classify(r) {
            Some((mode, _)) => Check::Dropped(mode),
            None => Check::Survived,
        };
        (r.idle, check)
    });
    if let RoundEnd::Stopped(end) = end {
        return Ok(Verified::Stopped(end));
    }
    Ok(match result {
        Some((reached, check)) => Verified::Checked {
            check,
            idle_s,
            hold,
            reached,
        },
        None => Verified::Skipped("the verify flow ended without a check".to_string()),
    })
}
