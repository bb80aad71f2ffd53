//! The two detection paths of a stack: the idle path (keepalive probes) and the
//! busy path (retransmissions of unacknowledged data, bounded by a user timeout
//! where the stack has one), with the warnings each can raise.

use std::time::Duration;

use super::*;
use crate::model::predict::{Effective, retransmission_budget};

pub(super) fn linux_effective(
    keepalive: bool,
    idle: &Knob,
    intvl: &Knob,
    cnt: &Knob,
    user_timeout: &Knob,
) -> Effective {
    Effective {
        keepalive,
        idle_s: idle.value,
        intvl_s: intvl.value,
        cnt: cnt.value,
        user_timeout_ms: user_timeout.value,
    }
}

/// The idle path: Linux through the live model (user timeout replaces cnt); the
/// others give up once `cnt` probes went unanswered, whatever their retransmission
/// timeout option says (it bounds retransmissions, not keepalive).
pub(super) fn idle_path(
    platform: Platform,
    keepalive: bool,
    idle: &Knob,
    intvl: &Knob,
    cnt: &Knob,
    user_timeout: &Knob,
) -> (Option<Duration>, Option<u32>, String) {
    if !keepalive {
        return (
            None,
            None,
            "an idle dead peer is never detected (keepalive off)".to_string(),
        );
    }
    if platform == Platform::Linux {
        let e = linux_effective(keepalive, idle, intvl, cnt, user_timeout);
        let f = e.facts(15);
        let s = e.idle_schedule();
        return (s.map(|s| s.detect_after), s.map(|s| s.probes), f.explain);
    }
    let after = Duration::from_secs(
        u64::from(idle.value).saturating_add(u64::from(cnt.value) * u64::from(intvl.value)),
    );
    (
        Some(after),
        Some(cnt.value),
        format!(
            "dead peer detected {} after last contact (idle {}s + {} x intvl {}s)",
            secs_text(after),
            idle.value,
            cnt.value,
            intvl.value
        ),
    )
}

/// A retransmission timeout of `rto0` backed off `firings` times: the time of each
/// timer firing from the first unacknowledged send.
pub(super) fn firing_times(pf: &PlatformFacts, rto0: Duration, firings: u32) -> Vec<Duration> {
    let mut t = Duration::ZERO;
    let mut mult: u32 = 1;
    (0..firings)
        .map(|_| {
            t = t.saturating_add(rto0.saturating_mul(mult).min(pf.rto_max));
            mult = mult.saturating_mul(2).min(pf.backoff_max);
            t
        })
        .collect()
}

/// When the busy path gives up for an initial retransmission timeout `rto0`.
pub(super) fn busy_give_up(pf: &PlatformFacts, rto0: Duration) -> Duration {
    match pf.retransmission {
        Retransmission::LinuxRetries2 { retries2 } => {
            // retransmits_timed_out(): checked at each firing against the model
            // computed with TCP_RTO_MIN, whatever the real RTO is.
            let budget = retransmission_budget(retries2);
            let mut t = Duration::ZERO;
            let mut rto = rto0;
            loop {
                t = t.saturating_add(rto);
                if t >= budget {
                    return t;
                }
                rto = rto.saturating_mul(2).min(pf.rto_max);
            }
        }
        Retransmission::Count { retransmissions } => {
            // Timer firings 1..=n retransmit; firing n+1 drops the connection.
            firing_times(pf, rto0, retransmissions + 1)
                .last()
                .copied()
                .unwrap_or_default()
        }
    }
}

/// The range of initial RTOs assumed: from the RTT when known (RTO = RTT + 200 ms,
/// up to 2 x RTT + 200 ms for jitter), else the stack's whole range.
pub(super) fn rto_range(pf: &PlatformFacts, rtt: Option<Duration>) -> (Duration, Duration, String) {
    match rtt {
        Some(rtt) => {
            let lo = (rtt + Duration::from_millis(200)).clamp(pf.rto_min, pf.rto_max);
            let hi = (rtt * 2 + Duration::from_millis(200)).clamp(pf.rto_min, pf.rto_max);
            (
                lo,
                hi,
                format!(
                    "RTO assumed {}..{} from --rtt {}",
                    secs_text(lo),
                    secs_text(hi),
                    secs_text(rtt)
                ),
            )
        }
        None => (
            pf.rto_min,
            pf.rto_max,
            format!(
                "RTT unknown: RTO anywhere from {} to {} (give --rtt to narrow)",
                secs_text(pf.rto_min),
                secs_text(pf.rto_max)
            ),
        ),
    }
}

/// The busy path's range: the user timeout when set, else the stack's
/// retransmission budget over the assumed RTO range.
pub(super) fn busy_path(
    pf: &PlatformFacts,
    user_timeout: u32,
    rtt: Option<Duration>,
) -> BusyPrediction {
    if user_timeout != 0 {
        let uto = match pf.user_timeout {
            Some(UserTimeoutKnob { seconds: true, .. }) => {
                Duration::from_secs(u64::from(user_timeout) / 1000)
            }
            _ => Duration::from_millis(u64::from(user_timeout)),
        };
        return match pf.platform {
            Platform::Macos => {
                // Measured from the first retransmission, checked at timer firings.
                let (lo, hi, why) = rto_range(pf, rtt);
                BusyPrediction {
                    low: uto + lo,
                    high: uto + hi + pf.rto_max,
                    explain: format!(
                        "TCP_RXT_CONNDROPTIME {} counts from the first retransmission and is \
                         checked when the retransmission timer fires; {why}",
                        secs_text(uto)
                    ),
                }
            }
            Platform::Windows => BusyPrediction {
                low: uto,
                high: uto,
                explain: format!("TCP_MAXRT {} (assumed exact)", secs_text(uto)),
            },
            _ => BusyPrediction {
                low: uto,
                high: uto,
                explain: format!(
                    "the user timeout {} bounds unacknowledged data",
                    secs_text(uto)
                ),
            },
        };
    }
    let (lo, hi, why) = rto_range(pf, rtt);
    // The give-up time is not monotonic in the RTO (a firing can land just past
    // the budget): scan the range in 10 ms steps.
    let mut low = Duration::MAX;
    let mut high = Duration::ZERO;
    let mut rto = lo;
    loop {
        let t = busy_give_up(pf, rto);
        low = low.min(t);
        high = high.max(t);
        if rto >= hi {
            break;
        }
        rto = (rto + Duration::from_millis(10)).min(hi);
    }
    let rule = match pf.retransmission {
        Retransmission::LinuxRetries2 { retries2 } => format!(
            "tcp_retries2 {retries2}: gives up at the first retransmission at least {} after \
             the send (the budget modelled with RTO min 200 ms)",
            secs_text(retransmission_budget(retries2))
        ),
        Retransmission::Count { retransmissions } => format!(
            "{retransmissions} retransmissions, the timeout doubling up to {}",
            secs_text(pf.rto_max)
        ),
    };
    BusyPrediction {
        low,
        high,
        explain: format!("{rule}; {why}"),
    }
}

pub(super) fn idle_limit_warning(
    keepalive: bool,
    idle: &Knob,
    intvl: &Knob,
    path: &presets::PathLimit,
) -> Option<String> {
    let limit = path.limit;
    let label = path.label();
    // What the application meets when the path forgot the flow.
    let then = match path.drop_mode {
        Some(presets::PathDrop::Silent) => "the next send vanishes (silently dropped)",
        Some(presets::PathDrop::Reset) => "the next send is answered with a reset",
        Some(presets::PathDrop::Close) => "the path closes the connection",
        None => "the next send is dropped or reset",
    };
    if !keepalive {
        return Some(format!(
            "keepalive is off: the path forgets an idle flow after {label}, and {then}"
        ));
    }
    // Between answered probes the gap is max(idle, intvl): the timer is re-armed
    // intvl after an answered probe, and never fires before idle since the answer.
    let gap = idle.value.max(intvl.value);
    let gap_d = Duration::from_secs(u64::from(gap));
    if gap_d >= limit {
        Some(format!(
            "the path's idle limit is {label} but keepalive traffic comes every {gap}s (max of \
             idle {}s and intvl {}s): the NAT/firewall forgets the flow first, and {then}",
            idle.value, intvl.value
        ))
    } else if Duration::from_secs(u64::from(idle.value) + u64::from(intvl.value)) >= limit {
        Some(format!(
            "one lost probe lets the path forget the flow: the next probe comes idle {}s + \
             intvl {}s after the last contact, at or past the path's idle limit {label}",
            idle.value, intvl.value
        ))
    } else if gap_d > limit.mul_f64(0.9) {
        Some(format!(
            "keepalive traffic every {gap}s leaves less than 10% margin under the path's idle \
             limit {label}: timer lateness (up to a quarter second) or one lost probe can let \
             it expire"
        ))
    } else {
        None
    }
}

/// A user timeout that leaves room for fewer than 3 retransmissions kills healthy
/// connections on a brief loss burst.
pub(super) fn user_timeout_warning(
    pf: &PlatformFacts,
    uto_ms: u32,
    rtt: Option<Duration>,
) -> Option<String> {
    let uto = Duration::from_millis(u64::from(uto_ms));
    let rto0 = rtt.map_or(pf.rto_min, |r| {
        (r + Duration::from_millis(200)).clamp(pf.rto_min, pf.rto_max)
    });
    let fits = firing_times(pf, rto0, 64)
        .iter()
        .take_while(|t| **t < uto)
        .count();
    (fits < 3).then(|| {
        format!(
            "user timeout {} leaves room for only {fits} retransmission(s) at RTO {}: a brief \
             loss burst will end a healthy busy connection",
            secs_text(uto),
            secs_text(rto0)
        )
    })
}
