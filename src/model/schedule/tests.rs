//! Tests of `schedule`.

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
    // docs/kernel-facts.md, "TCP_USER_TIMEOUT overrides TCP_KEEPCNT": UTO 6.5 s with idle 2,
    // intvl 1: five probes, ETIMEDOUT at 7.1 s.
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

#[test]
fn the_busy_path_ends_at_the_first_rto_firing_past_the_budget() {
    // The case: tcp_retries2 5 (budget 12.6 s), the socket's RTO 204 ms
    // (not the 200 ms minimum), HZ=250; measured end 12.992 s after the send.
    let wheel = crate::model::wheel::Wheel::new(Some(250));
    let budget = crate::model::predict::retransmission_budget(5);
    let (at, late) = busy_give_up(Duration::from_millis(204), budget, RTO_MAX, wheel);
    assert_eq!(at, Duration::from_millis(204 * 63));
    assert!(late > Duration::ZERO, "the wheel makes it later");
    let real = Duration::from_millis(12_992);
    assert!(at <= real && real <= at + late, "{at:?} + {late:?}");
    // At the minimum RTO the firings meet the budget exactly.
    let (at, _) = busy_give_up(RTO_MIN, budget, RTO_MAX, wheel);
    assert_eq!(at, budget);
}

/// The lab's busy sender (RTO 0.204 s, tcp_retries2 5, HZ=250): socat's own
/// ETIMEDOUT came 12.864 to 13.113 s after the first firing in 10 runs
/// (tests/watch_apps.rs, which read that firing from tcpi_last_data_sent).
#[test]
fn busy_range_from_the_first_firing_holds_the_lab_ends() {
    let wheel = crate::model::wheel::Wheel::new(Some(250));
    let budget = crate::model::predict::retransmission_budget(5);
    let first = Firing {
        at: Duration::from_secs(10),
        uncertainty: Duration::from_millis(5),
        n: 1,
        rto: Duration::from_millis(408),
        base: Duration::from_millis(204),
    };
    let (lo, hi) = busy_give_up_after(first, budget, RTO_MAX, wheel);
    // Five firings to come: 0.408 + 0.816 + 1.632 + 3.264 + 6.528 = 12.648 s.
    assert_eq!(lo, Duration::from_millis(10_000 + 12_648 - 5));
    for real in [12_864, 13_113] {
        let real = Duration::from_millis(10_000 + real);
        assert!(lo <= real && real <= hi, "{lo:?}..{hi:?}");
    }
    assert!(hi - lo < Duration::from_millis(700), "{lo:?}..{hi:?}");
    // Once the fifth firing is seen, only the last one's lateness is left.
    let fifth = Firing {
        at: Duration::from_millis(10_000 + 6_120),
        n: 5,
        rto: Duration::from_millis(6_528),
        ..first
    };
    let (lo5, hi5) = busy_give_up_after(fifth, budget, RTO_MAX, wheel);
    assert_eq!(lo5, lo);
    assert!(hi5 - lo5 <= Duration::from_millis(300), "{lo5:?}..{hi5:?}");
}

/// A send earlier than the latest the firings allow can make an earlier firing
/// cross the budget: the range then reaches back to it.
#[test]
fn busy_range_spans_two_firings_when_the_send_time_decides() {
    let wheel = crate::model::wheel::Wheel::new(Some(250));
    // A 1 s budget, RTO 200 ms, the first firing at 10.2 s (the send at 10.0 s
    // at the latest): the next ones at 10.6 and 11.4 s; the third ends it.
    let first = Firing {
        at: Duration::from_millis(10_200),
        uncertainty: Duration::ZERO,
        n: 1,
        rto: Duration::from_millis(400),
        base: Duration::from_millis(200),
    };
    let (lo, hi) = busy_give_up_after(first, Duration::from_secs(1), RTO_MAX, wheel);
    assert!(lo <= Duration::from_millis(11_400), "{lo:?}");
    assert!(hi >= Duration::from_millis(11_400), "{hi:?}");
    // With a budget of 0.7 s: the second firing (0.6 s after the latest send)
    // ends it only if the send was earlier; the third surely does.
    let (lo, hi) = busy_give_up_after(first, Duration::from_millis(700), RTO_MAX, wheel);
    assert_eq!(lo, Duration::from_millis(10_600), "{lo:?}");
    assert!(hi >= Duration::from_millis(11_400), "{hi:?}");
}
