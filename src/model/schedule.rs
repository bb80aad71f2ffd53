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

use crate::model::settings::Effective;
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

/// What decides an end (serialized as its [`Bound::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bound {
    /// TCP_KEEPCNT unanswered keepalive probes.
    KeepaliveCount,
    /// TCP_USER_TIMEOUT.
    UserTimeout,
    /// net.ipv4.tcp_retries2 unanswered window probes.
    #[serde(rename = "tcp-retries2")]
    Retries2,
    /// SYN retransmissions (TCP_SYNCNT / net.ipv4.tcp_syn_retries) ran out.
    SynRetries,
    /// The application's own connect timeout (`--connect-timeout`).
    ConnectTimeout,
    /// Nothing: keepalive off.
    #[serde(rename = "none")]
    Never,
}

/// The path a connection is on, which decides which kernel timer detects a dead
/// peer (serialized as its [`Path::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Path {
    /// Nothing in flight: keepalive probes.
    Idle,
    /// The peer's window is closed: window (persist) probes.
    ZeroWindow,
    /// Data in flight: retransmissions.
    Busy,
    /// Idle with keepalive off: nothing detects a dead peer.
    KeepaliveOff,
}

impl Path {
    pub fn name(self) -> &'static str {
        match self {
            Path::Idle => "idle",
            Path::ZeroWindow => "zero-window",
            Path::Busy => "busy",
            Path::KeepaliveOff => "keepalive-off",
        }
    }
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
/// The busy path without a user timeout: when the kernel gives up, after the
/// original send of the oldest unacknowledged segment. It checks tcp_retries2's
/// budget (`budget`, tcp_model_timeout with a 200 ms base) only when the
/// retransmission timer fires, and that timer runs on the socket's own RTO
/// (`base`, before backoff; never below 200 ms, often above), doubling up to
/// `rto_max`: the end is the first firing at or past the budget. Returns that
/// firing's nominal time and how much later the timer wheel may make it (each
/// firing may be late, and the next one is armed from it).
pub fn busy_give_up(
    base: Duration,
    budget: Duration,
    rto_max: Duration,
    wheel: crate::model::wheel::Wheel,
) -> (Duration, Duration) {
    let base = base.max(RTO_MIN);
    let (mut at, mut late, mut interval) = (Duration::ZERO, Duration::ZERO, base);
    // tcp_retries2 is at most 255 in practice; the loop ends at the budget.
    for _ in 0..1024 {
        at = at.saturating_add(interval);
        late = late.saturating_add(wheel.late_bound(interval));
        if at >= budget {
            break;
        }
        interval = interval.saturating_mul(2).min(rto_max);
    }
    (at, late)
}

/// What the samples showed of the retransmission timer on the busy path: its
/// latest firing, read from `tcpi_last_data_sent` at the sample that first showed
/// it (after a timeout only the head segment is sent, so the latest data
/// transmission is that firing's retransmission).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Firing {
    /// Run time of the `n`-th firing, as read: the kernel's stamp is one jiffy
    /// coarse and the sample's own time uncertain by `uncertainty`.
    pub at: Duration,
    pub uncertainty: Duration,
    /// tcpi_retransmits: firings so far in this episode.
    pub n: u32,
    /// tcpi_rto now: what the timer was re-armed for at that firing.
    pub rto: Duration,
    /// tcpi_rto >> tcpi_backoff: the RTO the backoff doubles.
    pub base: Duration,
}

/// The busy path without a user timeout, from the timer's latest firing seen
/// (`firing`): the range `(earliest, latest)` of run times at which the kernel
/// gives up. The firings still to come are `rto`, then doubling up to `rto_max`,
/// each up to the wheel's bound late, never early. The budget counts from the
/// original send of the head segment: at the latest one base before the first
/// firing, which lies the nominal intervals before this one; earlier by up to one
/// base more (a tail-loss probe re-arms the first timeout from its own time) and
/// by the lateness of the firings before. An earlier send moves the end only when
/// it makes an earlier firing cross the budget, and the range says so.
pub fn busy_give_up_after(
    firing: Firing,
    budget: Duration,
    rto_max: Duration,
    wheel: crate::model::wheel::Wheel,
) -> (Duration, Duration) {
    let base = firing.base.max(RTO_MIN);
    // From the send to the first firing, then between firings up to this one.
    let mut back = base;
    let mut past_late = wheel.late_bound(base);
    let mut interval = base;
    for _ in 1..firing.n.min(64) {
        interval = interval.saturating_mul(2).min(rto_max);
        back = back.saturating_add(interval);
        past_late = past_late.saturating_add(wheel.late_bound(interval));
    }
    let send_hi = firing.at.saturating_sub(back);
    let send_lo = send_hi
        .saturating_sub(base)
        .saturating_sub(past_late)
        .saturating_sub(firing.uncertainty);
    // Nominal time of each firing to come, and the most it may be late by then.
    let (mut nominal, mut late) = (firing.at, firing.uncertainty);
    let mut interval = firing.rto.max(RTO_MIN).min(rto_max);
    let mut earliest = None;
    for _ in 0..1024 {
        nominal = nominal.saturating_add(interval);
        late = late.saturating_add(wheel.late_bound(interval));
        let low = nominal.saturating_sub(firing.uncertainty);
        if earliest.is_none() && nominal.saturating_add(late) >= send_lo.saturating_add(budget) {
            earliest = Some(low.max(send_lo.saturating_add(budget)));
        }
        if low >= send_hi.saturating_add(budget) {
            return (earliest.unwrap_or(low), nominal.saturating_add(late));
        }
        interval = interval.saturating_mul(2).min(rto_max);
    }
    let end = nominal.saturating_add(late);
    (earliest.unwrap_or(end), end)
}

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
mod tests;
