//! The kernel's timers, replayed forward: when the next probes go out and when the
//! kernel gives up, on each path a connection can be on, assuming the peer answers
//! nothing more. Each function follows one kernel code path (net/ipv4/tcp_timer.c,
//! Linux 6.x) and says which; the timeline calls them again whenever what they start
//! from changes (an answer, data, a window change), which is what makes a new
//! `prediction` event.
//!
//! Times are run times (since the start of the run). Every schedule also carries the
//! sum of the timer-wheel lateness bounds of the timers on its path ([`Wheel`]): the
//! kernel may act that much later than the nominal time, never earlier.

use std::time::Duration;

use crate::model::predict::Effective;
use crate::model::wheel::Wheel;

/// TCP_TIMEOUT_INIT: the SYN's first retransmission timeout.
pub const TIMEOUT_INIT: Duration = Duration::from_secs(1);
/// TCP_RTO_MIN: the smallest retransmission (and window-probe) base.
pub const RTO_MIN: Duration = Duration::from_millis(200);
/// TCP_RTO_MAX default (net.ipv4.tcp_rto_max_ms since 6.15).
pub const RTO_MAX: Duration = Duration::from_secs(120);
/// TCP_TIMEOUT_MIN: 2 jiffies, the shortest window-probe timer with a user timeout
/// (8 ms at HZ=250; the model uses 8 ms whatever HZ is, a rounding error at most).
const TIMEOUT_MIN: Duration = Duration::from_millis(8);
/// Bounds the replay: no kernel path has more timer firings than this.
const MAX_FIRINGS: usize = 512;

/// What the kernel does besides the keepalive tuple: sysctls and constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelParams {
    /// net.ipv4.tcp_retries2: unanswered window probes (and retransmissions) before
    /// the kernel gives up, and the cap of the window-probe backoff.
    pub retries2: u32,
    /// The largest retransmission / window-probe interval (tcp_rto_max).
    pub rto_max: Duration,
    /// TCP_SYNCNT of the socket, or net.ipv4.tcp_syn_retries.
    pub syn_retries: u32,
    /// net.ipv4.tcp_syn_linear_timeouts (0 before Linux 6.5, where the sysctl is
    /// missing): SYN retransmissions at a fixed 1 s before the backoff starts.
    pub syn_linear_timeouts: u32,
    pub wheel: Wheel,
}

impl Default for KernelParams {
    fn default() -> Self {
        KernelParams {
            retries2: 15,
            rto_max: RTO_MAX,
            syn_retries: 6,
            syn_linear_timeouts: 4,
            wheel: Wheel::new(Some(250)),
        }
    }
}

/// The keepalive timer as the kernel holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepaliveTimer {
    /// Last data or ACK received (max of lrcvtime and rcv_tstamp).
    pub last_rx: Duration,
    /// When the timer is set to fire.
    pub fires_at: Duration,
    /// When it was armed (its duration decides the wheel granularity).
    pub armed_at: Duration,
    /// icsk_probes_out: probes sent since the last answer.
    pub probes_out: u32,
}

impl KeepaliveTimer {
    /// The timer of a connection just established (or just given its settings),
    /// with keepalive on: armed idle from `now` (tcp_finish_connect,
    /// tcp_create_openreq_child, SO_KEEPALIVE).
    pub fn fresh(eff: &Effective, now: Duration) -> KeepaliveTimer {
        KeepaliveTimer {
            last_rx: now,
            fires_at: now.saturating_add(secs(eff.idle_s)),
            armed_at: now,
            probes_out: 0,
        }
    }

    /// When the next probe goes out if nothing arrives: the timer fires at
    /// `fires_at`; a firing before last_rx + idle re-arms for the rest of idle.
    pub fn next_probe(&self, eff: &Effective) -> Duration {
        self.fires_at
            .max(self.last_rx.saturating_add(secs(eff.idle_s)))
    }

    /// When the firing that sends the next probe was armed: its duration decides
    /// how late the wheel may fire it.
    pub fn next_probe_armed_at(&self, eff: &Effective) -> Duration {
        if self.fires_at >= self.last_rx.saturating_add(secs(eff.idle_s)) {
            self.armed_at
        } else {
            self.fires_at
        }
    }
}

/// A replayed schedule: the probes still to come and the end.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Nominal times of the probes still to go out before the end.
    pub probes: Vec<Duration>,
    /// When the kernel gives up (nominal); `None` when nothing ever ends it.
    pub dead_at: Option<Duration>,
    /// Sum of the wheel lateness bounds along the path: the end comes in
    /// `dead_at ..= dead_at + late_by_up_to`.
    pub late_by_up_to: Duration,
    /// What ends it.
    pub bound: Bound,
}

/// What decides an end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// TCP_KEEPCNT unanswered keepalive probes.
    KeepaliveCount,
    /// TCP_USER_TIMEOUT.
    UserTimeout,
    /// net.ipv4.tcp_retries2 unanswered window probes.
    Retries2,
    /// SYN retransmissions (TCP_SYNCNT / net.ipv4.tcp_syn_retries) ran out.
    SynRetries,
    /// The application's own connect timeout (`--connect-timeout`).
    ConnectTimeout,
    /// Nothing: keepalive off.
    Never,
}

impl Bound {
    pub fn name(self) -> &'static str {
        match self {
            Bound::KeepaliveCount => "keepalive-count",
            Bound::UserTimeout => "user-timeout",
            Bound::Retries2 => "tcp-retries2",
            Bound::SynRetries => "syn-retries",
            Bound::ConnectTimeout => "connect-timeout",
            Bound::Never => "none",
        }
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(s.into())
}

/// Keepalive on an idle connection (tcp_keepalive_timer): at each firing,
/// `elapsed` = now - last receive; if elapsed >= idle the kernel gives up when
/// `(uto && elapsed >= uto && probes_out > 0) || (!uto && probes_out >= cnt)`, else
/// sends a probe and re-arms intvl from now; if elapsed < idle it re-arms for
/// idle - elapsed. An answer (tcp_ack) resets probes_out and the last receive but
/// does not touch the timer: after an answered probe at P the next one is at
/// max(P + intvl, last receive + idle).
pub fn keepalive(eff: &Effective, timer: KeepaliveTimer, wheel: Wheel) -> Forecast {
    if !eff.keepalive {
        return Forecast {
            probes: Vec::new(),
            dead_at: None,
            late_by_up_to: Duration::ZERO,
            bound: Bound::Never,
        };
    }
    let idle = secs(eff.idle_s);
    let intvl = secs(eff.intvl_s);
    let uto = Duration::from_millis(eff.user_timeout_ms.into());
    let mut at = timer.fires_at;
    let mut armed = timer.armed_at;
    let mut out = timer.probes_out;
    let mut probes = Vec::new();
    let mut late = Duration::ZERO;
    for _ in 0..MAX_FIRINGS {
        late = late.saturating_add(wheel.late_bound(at.saturating_sub(armed)));
        let elapsed = at.saturating_sub(timer.last_rx);
        if elapsed >= idle {
            let uto_ends = !uto.is_zero() && elapsed >= uto && out > 0;
            let cnt_ends = uto.is_zero() && out >= eff.cnt;
            if uto_ends || cnt_ends {
                return Forecast {
                    probes,
                    dead_at: Some(at),
                    late_by_up_to: late,
                    bound: if uto_ends {
                        Bound::UserTimeout
                    } else {
                        Bound::KeepaliveCount
                    },
                };
            }
            probes.push(at);
            out += 1;
            armed = at;
            at = at.saturating_add(intvl);
        } else {
            armed = at;
            at = timer.last_rx.saturating_add(idle);
        }
    }
    // Unreachable with validated settings (cnt <= 127, a user timeout ends it
    // within uto / intvl + 2 firings of at least 1 s); said as "never", not guessed.
    Forecast {
        probes,
        dead_at: None,
        late_by_up_to: late,
        bound: Bound::Never,
    }
}

/// The zero-window-probe (persist) timer's state (tcp_probe_timer, tcp_send_probe0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowProbes {
    /// icsk_probes_tstamp: when the probe timer first fired in this zero-window
    /// episode (`None` before the first probe). Answers do not reset it.
    pub first_probe_at: Option<Duration>,
    /// When the probe timer fires next, and when it was armed.
    pub fires_at: Duration,
    pub armed_at: Duration,
    /// icsk_backoff after the last probe (capped at tcp_retries2).
    pub backoff: u32,
    /// icsk_probes_out: window probes sent since the last answer.
    pub unanswered: u32,
    /// tcp_probe0_base: max(RTO, TCP_RTO_MIN).
    pub base: Duration,
}

/// The window-probe interval after a probe with backoff `backoff`
/// (tcp_probe0_when), clamped to what is left of the user timeout
/// (tcp_clamp_probe0_to_user_timeout).
pub fn window_probe_interval(
    base: Duration,
    backoff: u32,
    rto_max: Duration,
    uto: Duration,
    first_probe_at: Option<Duration>,
    now: Duration,
) -> Duration {
    let when = base
        .checked_mul(1u32.checked_shl(backoff).unwrap_or(u32::MAX))
        .unwrap_or(rto_max)
        .min(rto_max);
    match first_probe_at {
        Some(first) if !uto.is_zero() => {
            let remaining = uto.saturating_sub(now.saturating_sub(first));
            when.min(remaining.max(TIMEOUT_MIN))
        }
        _ => when,
    }
}

/// Zero window (tcp_probe_timer): while the peer advertises a zero window and data
/// waits, keepalive does not run; the persist timer sends window probes with an
/// exponential backoff (icsk_backoff, capped at tcp_retries2, interval capped at
/// rto_max) that answers do not undo. The kernel gives up (ETIMEDOUT, no RST) at a
/// firing where `probes_out >= tcp_retries2`, or, with a user timeout, where the
/// user timeout has passed since the *first* window probe, answered or not
/// (RFC 1122 4.2.2.17 keeps it open forever otherwise).
pub fn zero_window(uto_ms: u32, params: &KernelParams, state: WindowProbes) -> Forecast {
    let uto = Duration::from_millis(uto_ms.into());
    let mut at = state.fires_at;
    let mut armed = state.armed_at;
    let mut first = state.first_probe_at;
    let mut backoff = state.backoff;
    let mut probes = Vec::new();
    let mut late = Duration::ZERO;
    // `out` is icsk_probes_out at each firing.
    for (out, _) in (state.unanswered..).zip(0..MAX_FIRINGS) {
        late = late.saturating_add(params.wheel.late_bound(at.saturating_sub(armed)));
        match first {
            None => first = Some(at),
            Some(f) if !uto.is_zero() && at.saturating_sub(f) >= uto => {
                return Forecast {
                    probes,
                    dead_at: Some(at),
                    late_by_up_to: late,
                    bound: Bound::UserTimeout,
                };
            }
            Some(_) => {}
        }
        if out >= params.retries2 {
            return Forecast {
                probes,
                dead_at: Some(at),
                late_by_up_to: late,
                bound: Bound::Retries2,
            };
        }
        probes.push(at);
        if backoff < params.retries2 {
            backoff += 1;
        }
        armed = at;
        at = at.saturating_add(window_probe_interval(
            state.base,
            backoff,
            params.rto_max,
            uto,
            first,
            at,
        ));
    }
    Forecast {
        probes,
        dead_at: None,
        late_by_up_to: late,
        bound: Bound::Never,
    }
}

/// The connect phase against a silent peer (tcp_retransmit_timer and
/// tcp_write_timeout in SYN-SENT), from the first SYN at `start`.
#[derive(Debug, Clone, PartialEq)]
pub struct SynForecast {
    /// Nominal times of the SYN retransmissions.
    pub retransmits: Vec<Duration>,
    /// When the attempt ends, and what ends it.
    pub deadline: Duration,
    pub bound: Bound,
    pub late_by_up_to: Duration,
}

/// tcp_model_timeout: the time `boundary` exponentially backed-off retransmissions
/// from `rto_base` take (the time budget of tcp_write_timeout).
pub fn model_timeout(boundary: u32, rto_base: Duration, rto_max: Duration) -> Duration {
    let ratio = (rto_max.as_nanos() / rto_base.as_nanos().max(1)).max(1) as u64;
    let thresh = ratio.ilog2();
    if boundary <= thresh {
        rto_base.saturating_mul(((2u64 << boundary) - 1) as u32)
    } else {
        rto_base.saturating_mul(((2u64 << thresh) - 1) as u32)
            + rto_max.saturating_mul(boundary - thresh)
    }
}

/// SYN-SENT: the first retransmission timer is TCP_TIMEOUT_INIT (1 s); the first
/// `syn_linear_timeouts` retransmissions keep it (Linux 6.5+), later ones double
/// it (up to rto_max). At each firing tcp_write_timeout ends the attempt when
/// `retransmits >= syn_retries + syn_linear_timeouts`, or when the time since the
/// first SYN reaches the budget: the user timeout if set (each timer then clamped
/// to what is left of it), else tcp_model_timeout(syn_retries, 1 s). The time check
/// needs one retransmission first, so a user timeout under 1 s ends at ~1 s. The
/// application's connect timeout may come first.
pub fn syn_sent(
    params: &KernelParams,
    uto_ms: u32,
    connect_timeout: Duration,
    start: Duration,
) -> SynForecast {
    let uto = Duration::from_millis(uto_ms.into());
    let budget = if uto.is_zero() {
        model_timeout(params.syn_retries, TIMEOUT_INIT, params.rto_max)
    } else {
        uto
    };
    let max_retransmits = params
        .syn_retries
        .saturating_add(params.syn_linear_timeouts);
    let mut rto = TIMEOUT_INIT;
    let mut at = start.saturating_add(rto);
    let mut armed = start;
    let mut k = 0u32;
    let mut retransmits = Vec::new();
    let mut late = Duration::ZERO;
    let mut kernel_end = None;
    for _ in 0..MAX_FIRINGS {
        late = late.saturating_add(params.wheel.late_bound(at.saturating_sub(armed)));
        let elapsed = at.saturating_sub(start);
        if k >= max_retransmits {
            kernel_end = Some((at, Bound::SynRetries));
            break;
        }
        if k >= 1 && elapsed >= budget {
            let bound = if uto.is_zero() {
                Bound::SynRetries
            } else {
                Bound::UserTimeout
            };
            kernel_end = Some((at, bound));
            break;
        }
        retransmits.push(at);
        k += 1;
        if k > params.syn_linear_timeouts {
            rto = rto.saturating_mul(2).min(params.rto_max);
        }
        let mut next = rto;
        if !uto.is_zero() {
            // tcp_clamp_rto_to_user_timeout; 1 jiffy when it has passed.
            let remaining = uto.saturating_sub(elapsed);
            next = if remaining.is_zero() {
                Duration::from_millis(4)
            } else {
                next.min(remaining)
            };
        }
        armed = at;
        at = at.saturating_add(next);
    }
    let app_deadline = start.saturating_add(connect_timeout);
    match kernel_end {
        Some((end, bound)) if end <= app_deadline => SynForecast {
            retransmits,
            deadline: end,
            bound,
            late_by_up_to: late,
        },
        _ => SynForecast {
            retransmits: retransmits
                .into_iter()
                .filter(|&t| t < app_deadline)
                .collect(),
            deadline: app_deadline,
            bound: Bound::ConnectTimeout,
            late_by_up_to: Duration::ZERO,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: f64) -> Duration {
        Duration::from_secs_f64(v)
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn eff(idle: u32, intvl: u32, cnt: u32, uto: u32) -> Effective {
        Effective {
            keepalive: true,
            idle_s: idle,
            intvl_s: intvl,
            cnt,
            user_timeout_ms: uto,
        }
    }

    fn fresh(e: &Effective) -> Forecast {
        keepalive(
            e,
            KeepaliveTimer::fresh(e, Duration::ZERO),
            Wheel::new(Some(250)),
        )
    }

    #[test]
    fn published_reference_idle_case() {
        // Cloudflare 2019, "When TCP sockets refuse to die": idle 5, intvl 3, cnt 3,
        // peer silent: probes at 5, 8, 11 s, ETIMEDOUT at 14 s.
        let f = fresh(&eff(5, 3, 3, 0));
        assert_eq!(f.probes, vec![s(5.0), s(8.0), s(11.0)]);
        assert_eq!(f.dead_at, Some(s(14.0)));
        assert_eq!(f.bound, Bound::KeepaliveCount);
        // Four level-2 timers (5 s, 3 s x 3) at HZ=250: up to 4 x 260 ms late.
        assert_eq!(f.late_by_up_to, ms(1040));
    }

    #[test]
    fn published_reference_user_timeout_cases() {
        // idle 1, intvl 11, cnt 3, user timeout 5 s, no answer: one probe, dead at 12.
        let f = fresh(&eff(1, 11, 3, 5000));
        assert_eq!(f.probes, vec![s(1.0)]);
        assert_eq!(f.dead_at, Some(s(12.0)));
        assert_eq!(f.bound, Bound::UserTimeout);
        // With 12.5 s: two probes, dead at 23 s.
        let f = fresh(&eff(1, 11, 3, 12_500));
        assert_eq!(f.probes, vec![s(1.0), s(12.0)]);
        assert_eq!(f.dead_at, Some(s(23.0)));
    }

    #[test]
    fn after_an_answered_probe_the_timer_stays_at_probe_plus_intvl() {
        // Measured here: idle 1, intvl 11, UTO 5 s, probe 1 at 1.020 answered, then
        // silence: probe 2 at 12.156, ETIMEDOUT 23.168 (22.148 s after the answer).
        let e = eff(1, 11, 3, 5000);
        let timer = KeepaliveTimer {
            last_rx: s(1.0),
            fires_at: s(12.0),
            armed_at: s(1.0),
            probes_out: 0,
        };
        assert_eq!(timer.next_probe(&e), s(12.0));
        let f = keepalive(&e, timer, Wheel::new(Some(250)));
        assert_eq!(f.probes, vec![s(12.0)]);
        assert_eq!(f.dead_at, Some(s(23.0)));
        // intvl shorter than idle: the firing at P + intvl re-arms to answer + idle.
        let e = eff(5, 1, 3, 0);
        let timer = KeepaliveTimer {
            last_rx: s(5.0),
            fires_at: s(6.0),
            armed_at: s(5.0),
            probes_out: 0,
        };
        assert_eq!(timer.next_probe(&e), s(10.0));
        assert_eq!(timer.next_probe_armed_at(&e), s(6.0));
        let f = keepalive(&e, timer, Wheel::new(Some(250)));
        assert_eq!(f.probes, vec![s(10.0), s(11.0), s(12.0)]);
        assert_eq!(f.dead_at, Some(s(13.0)));
    }

    #[test]
    fn user_timeout_measured_cases() {
        // DESIGN.md: UTO 6.5 s with idle 2, intvl 1: five probes, ETIMEDOUT at 7.1 s.
        let f = fresh(&eff(2, 1, 3, 6500));
        assert_eq!(f.probes.len(), 5);
        assert_eq!(f.dead_at, Some(s(7.0)));
        // Lab: idle 1, intvl 2, cnt 2, probe 1 answered at 1: probes 3, 5, dead 7.
        let e = eff(1, 2, 2, 0);
        let timer = KeepaliveTimer {
            last_rx: s(1.0),
            fires_at: s(3.0),
            armed_at: s(1.0),
            probes_out: 0,
        };
        let f = keepalive(&e, timer, Wheel::new(Some(250)));
        assert_eq!(f.probes, vec![s(3.0), s(5.0)]);
        assert_eq!(f.dead_at, Some(s(7.0)));
    }

    #[test]
    fn keepalive_off_never_ends() {
        let mut e = eff(1, 1, 3, 0);
        e.keepalive = false;
        assert_eq!(fresh(&e).dead_at, None);
        assert_eq!(fresh(&e).bound, Bound::Never);
    }

    fn window(first: Option<u64>, fires: u64, armed: u64, backoff: u32, out: u32) -> WindowProbes {
        WindowProbes {
            first_probe_at: first.map(ms),
            fires_at: ms(fires),
            armed_at: ms(armed),
            backoff,
            unanswered: out,
            base: ms(208),
        }
    }

    #[test]
    fn zero_window_with_user_timeout_ends_after_it_since_the_first_probe() {
        // Measured: UTO 4 s, peer answering every probe: first probe 0.212 s after the
        // window closed, ETIMEDOUT at 4.254 (first probe + 4 s + wheel).
        let params = KernelParams::default();
        let f = zero_window(4000, &params, window(None, 212, 4, 0, 0));
        assert_eq!(f.dead_at, Some(ms(4212)));
        assert_eq!(f.bound, Bound::UserTimeout);
        // The same later on, after answers: the first probe still counts.
        let f = zero_window(4000, &params, window(Some(212), 3212, 1516, 4, 0));
        assert_eq!(f.dead_at, Some(ms(4212)));
        assert_eq!(f.probes, vec![ms(3212)]);
    }

    #[test]
    fn zero_window_without_user_timeout_needs_retries2_unanswered_probes() {
        // Measured with tcp_retries2 = 4: after the answer at ~1.57 (backoff 3), probes
        // at base << 3, then base << 4 = 3.328 s apart; the fifth firing ends it.
        let params = KernelParams {
            retries2: 4,
            ..KernelParams::default()
        };
        let f = zero_window(0, &params, window(Some(212), 1570 + 1664, 1570, 3, 0));
        assert_eq!(f.bound, Bound::Retries2);
        assert_eq!(f.probes.len(), 4);
        assert_eq!(f.dead_at, Some(ms(3234 + 4 * 3328)));
        // Default tcp_retries2 15 with a 208 ms base: the interval reaches rto_max.
        let f = zero_window(
            0,
            &KernelParams::default(),
            window(Some(200), 600, 200, 1, 0),
        );
        assert_eq!(f.probes.len(), 15);
        let last_gap = f.dead_at.expect("ends") - *f.probes.last().expect("probes");
        assert_eq!(last_gap, RTO_MAX);
    }

    #[test]
    fn window_probe_interval_backs_off_and_clamps() {
        let none = Duration::ZERO;
        assert_eq!(
            window_probe_interval(ms(208), 2, RTO_MAX, none, None, s(1.0)),
            ms(832)
        );
        assert_eq!(
            window_probe_interval(ms(208), 15, RTO_MAX, none, None, s(1.0)),
            RTO_MAX
        );
        assert_eq!(
            window_probe_interval(ms(208), 40, RTO_MAX, none, None, s(1.0)),
            RTO_MAX
        );
        // Clamped to the rest of the user timeout (measured: 988 ms left of 4 s).
        let clamped = window_probe_interval(ms(208), 5, RTO_MAX, s(4.0), Some(s(0.2)), s(3.2));
        assert_eq!(clamped, s(1.0));
    }

    #[test]
    fn syn_schedule_with_linear_timeouts() {
        // Measured (syn_retries 6, linear 4): SYNs at 1, 2, 3, 4, 5, 7, 11, 19, 35, 67;
        // ETIMEDOUT at 131 s nominal (133.7 measured: the 64 s timer is level 3).
        let f = syn_sent(&KernelParams::default(), 0, s(1000.0), Duration::ZERO);
        let want: Vec<Duration> = [1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 11.0, 19.0, 35.0, 67.0]
            .into_iter()
            .map(s)
            .collect();
        assert_eq!(f.retransmits, want);
        assert_eq!(f.deadline, s(131.0));
        assert_eq!(f.bound, Bound::SynRetries);
        // TCP_SYNCNT 2: the 7 s budget ends it after 5 linear retransmissions.
        let p = KernelParams {
            syn_retries: 2,
            ..KernelParams::default()
        };
        let f = syn_sent(&p, 0, s(1000.0), Duration::ZERO);
        assert_eq!(f.retransmits.len(), 5);
        assert_eq!(f.deadline, s(7.0));
        assert_eq!(f.bound, Bound::SynRetries);
    }

    #[test]
    fn syn_schedule_before_linear_timeouts_existed() {
        // Pre-6.5: 1, 3, 7, 15, 31, 63 s, dead at 127 s.
        let p = KernelParams {
            syn_linear_timeouts: 0,
            ..KernelParams::default()
        };
        let f = syn_sent(&p, 0, s(1000.0), Duration::ZERO);
        let want: Vec<Duration> = [1.0, 3.0, 7.0, 15.0, 31.0, 63.0]
            .into_iter()
            .map(s)
            .collect();
        assert_eq!(f.retransmits, want);
        assert_eq!(f.deadline, s(127.0));
    }

    #[test]
    fn user_timeout_and_connect_timeout_bound_the_connect() {
        // Measured: --user-timeout 3s: SYNs at 1 and 2, ETIMEDOUT at 3.03.
        let f = syn_sent(&KernelParams::default(), 3000, s(10.0), Duration::ZERO);
        assert_eq!(f.retransmits, vec![s(1.0), s(2.0)]);
        assert_eq!(f.deadline, s(3.0));
        assert_eq!(f.bound, Bound::UserTimeout);
        // Under 1 s the time check waits for the first retransmission.
        let f = syn_sent(&KernelParams::default(), 500, s(10.0), Duration::ZERO);
        assert_eq!(f.bound, Bound::UserTimeout);
        assert_eq!(f.deadline, s(1.004));
        // The default --connect-timeout 10s comes before syn-retries' 131 s.
        let f = syn_sent(&KernelParams::default(), 0, s(10.0), s(0.5));
        assert_eq!(f.bound, Bound::ConnectTimeout);
        assert_eq!(f.deadline, s(10.5));
        assert_eq!(f.retransmits.len(), 6);
    }

    #[test]
    fn model_timeout_matches_the_kernel() {
        assert_eq!(model_timeout(6, TIMEOUT_INIT, RTO_MAX), s(127.0));
        assert_eq!(model_timeout(2, TIMEOUT_INIT, RTO_MAX), s(7.0));
        assert_eq!(model_timeout(8, TIMEOUT_INIT, RTO_MAX), s(367.0));
        assert_eq!(model_timeout(15, RTO_MIN, RTO_MAX), ms(924_600));
    }
}
