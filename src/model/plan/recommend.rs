//! The recommender behind `--detect-within`: settings that detect a dead idle
//! peer in time, survive a path's idle limit, and do not kill a healthy peer on
//! brief loss (RFC 1122 4.2.3.6).

use std::time::Duration;

use super::*;

/// The probe shape a stack allows, for the recommender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// idle, intvl and cnt all settable.
    Free,
    /// Only idle is settable.
    FixedProbes { intvl: u32, cnt: u32 },
    /// idle and intvl settable, cnt fixed.
    FixedCount { cnt: u32 },
    /// One value sets idle and intvl; cnt settable.
    IdleIsIntvl,
}

impl Shape {
    pub fn of(stack: Stack) -> Shape {
        match stack.runtime {
            Some(Runtime::Node) => Shape::FixedProbes { intvl: 1, cnt: 10 },
            Some(Runtime::Curl) => Shape::IdleIsIntvl,
            // SIO_KEEPALIVE_VALS works on every Windows since 2000; TCP_KEEPCNT needs
            // 1703+, so plain C on Windows keeps the fixed 10.
            None if stack.platform == Platform::Windows => Shape::FixedCount { cnt: 10 },
            _ => Shape::Free,
        }
    }

    /// The shortest detection this shape can give while surviving one lost probe.
    pub fn min_detect_s(self) -> u32 {
        match self {
            Shape::Free | Shape::IdleIsIntvl => 3,
            Shape::FixedProbes { intvl, cnt } => 1 + intvl * cnt,
            Shape::FixedCount { cnt } => 1 + cnt,
        }
    }
}

/// The largest idle/intvl that keeps a flow alive through a path that forgets it
/// after `limit`: 10% margin, at least one second below, never under 1 s.
pub fn idle_limit_ceiling(limit: Duration) -> Option<u32> {
    let ninety = (limit.as_secs_f64() * 0.9).floor();
    let below = limit.as_secs_f64().ceil() - 1.0;
    let ceiling = ninety.min(below);
    (ceiling >= 1.0).then_some(ceiling as u32)
}

/// idle lowered so that idle + intvl stays within the path's ceiling: when the
/// first probe is lost, the second (intvl later) still reaches the path before it
/// forgets the flow (RFC 1122 4.2.3.6: one lost probe must not kill a connection;
/// `idle-limit` recommends by the same rule).
pub(super) fn survive_a_lost_probe(idle: u32, intvl: u32, ceiling: Option<u32>) -> u32 {
    ceiling.map_or(idle, |c| idle.min(c.saturating_sub(intvl).max(1)))
}

/// The smallest probe interval that lets a probe's answer come back with room for
/// jitter: twice the RTO estimate (RTT + 200 ms), at least 1 s.
pub(super) fn min_intvl(rtt: Option<Duration>) -> u32 {
    rtt.map_or(1, |r| {
        let s = ((r + Duration::from_millis(200)) * 2).as_secs_f64().ceil();
        (s as u32).max(1)
    })
}

/// Recommends settings that detect a dead idle peer within `within`, keep the flow
/// alive through `idle_limit`, survive lost probes, and bound the busy path, on
/// `stack`. The caller validated `within` against [`Shape::min_detect_s`] and
/// the path's limit against [`idle_limit_ceiling`].
pub fn recommend(
    stack: Stack,
    within: Duration,
    path: Option<&presets::PathLimit>,
    rtt: Option<Duration>,
) -> Plan {
    let idle_limit = path.map(|p| p.limit);
    let shape = Shape::of(stack);
    let d = u32::try_from(within.as_secs())
        .unwrap_or(u32::MAX)
        .max(shape.min_detect_s());
    let ceiling = idle_limit.and_then(idle_limit_ceiling);
    // Linux's limit for idle and intvl (MAX_TCP_KEEPIDLE) bounds every stack's plan.
    let cap = |v: u32| ceiling.map_or(v, |c| v.min(c)).min(32767);
    let want_intvl = min_intvl(rtt);
    let mut notes = Vec::new();

    let (idle, intvl, cnt) = match shape {
        Shape::FixedProbes { intvl, cnt } => (
            survive_a_lost_probe(cap(d - intvl * cnt), intvl, ceiling),
            intvl,
            cnt,
        ),
        Shape::FixedCount { .. } | Shape::Free => {
            let mut cnt = match shape {
                Shape::FixedCount { cnt } => cnt,
                _ if d >= 4 => 3,
                _ => 2,
            };
            // Half the budget for probing, the rest idle.
            let mut intvl = cap((d / (2 * cnt)).max(want_intvl).max(1));
            // Under an idle limit, probes a third of it apart: idle + intvl (a lost
            // probe's retry) then fits with idle at least as long as intvl.
            intvl = ceiling.map_or(intvl, |c| intvl.min((c / 3).max(1)));
            if d.saturating_sub(cnt * intvl) < 1 {
                intvl = ((d - 1) / cnt).max(1);
            }
            let idle = survive_a_lost_probe(cap(d - cnt * intvl), intvl, ceiling);
            if shape == Shape::Free {
                // What the idle limit took from idle goes to more probes: the same
                // bound, more tolerance to loss (at most the Linux default of 9).
                cnt = cnt.max(((d - idle) / intvl).min(9));
            }
            (idle, intvl, cnt)
        }
        Shape::IdleIsIntvl => {
            let mut cnt = if d >= 4 { 3 } else { 2 };
            // idle = intvl = t: a lost first probe is retried 2t after the contact.
            let t = cap((d / (1 + cnt)).max(1));
            let t = ceiling.map_or(t, |c| t.min((c / 2).max(1)));
            cnt = cnt.max(((d - t) / t).min(9));
            (t, t, cnt)
        }
    };
    if intvl < want_intvl {
        notes.push(format!(
            "intvl {intvl}s is below twice the RTO estimate ({want_intvl}s for this RTT): a \
             slow answer counts as a lost probe"
        ));
    }
    let pf = stack.platform.facts();
    let runtime_uto = stack
        .runtime
        .map_or(RuntimeUserTimeout::Api, |r| r.facts().user_timeout);
    let detect_s = idle + cnt * intvl;
    let user_timeout_ms = match (pf.user_timeout, runtime_uto) {
        (Some(_), RuntimeUserTimeout::Api | RuntimeUserTimeout::Raw(_)) => {
            // Cloudflare's rule: user timeout = idle + cnt x intvl, so the busy path
            // is bounded by the same figure and the idle path keeps its count.
            Some(detect_s.saturating_mul(1000))
        }
        _ => None,
    };
    let req = PlanRequest {
        no_keepalive: false,
        idle_s: Some(idle),
        intvl_s: matches!(shape, Shape::Free | Shape::FixedCount { .. }).then_some(intvl),
        cnt: matches!(shape, Shape::Free | Shape::IdleIsIntvl).then_some(cnt),
        user_timeout_ms,
        path: path.cloned(),
        rtt,
    };
    let mut plan = evaluate(stack, &req, Source::Recommended);
    if plan.user_timeout.value == 0 {
        plan.warnings.push(format!(
            "the busy path (data in flight) cannot be bounded on this stack: it ends after {}..{}; \
             bound it with an application-level timeout or heartbeat",
            secs_text(plan.busy.low),
            secs_text(plan.busy.high)
        ));
    }
    if stack.platform == Platform::Windows && plan.cnt.value != pf.cnt {
        plan.warnings.push(format!(
            "cnt {} needs TCP_KEEPCNT (Windows 10 1703+); older Windows keep {} probes",
            plan.cnt.value, pf.cnt
        ));
    }
    plan.warnings.extend(notes);
    plan.detect_within = Some(within);
    plan
}
