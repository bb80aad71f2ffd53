//! Tests of `timeline`.

use super::*;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn timeline() -> Timeline {
    let eff = Effective {
        keepalive: true,
        idle_s: 1,
        intvl_s: 1,
        cnt: 3,
        user_timeout_ms: 0,
    };
    let mut t = Timeline::new(eff, KernelParams::default(), ms(0));
    let first = t.observe(ms(0), &TcpSample::default());
    assert_eq!(names(&first), ["idle", "prediction"]);
    assert_eq!(first[0], EventKind::Idle { since: ms(0) });
    t
}

/// A sample at `now` whose last contact was at run time `contact`.
fn at(now: u64, contact: u64, probes: u8) -> TcpSample {
    TcpSample {
        state: 1,
        probes,
        last_ack_recv_ms: (now - contact) as u32,
        last_data_recv_ms: now as u32,
        ..TcpSample::default()
    }
}

fn names(events: &[EventKind]) -> Vec<&'static str> {
    events.iter().map(|e| e.name()).collect()
}

#[test]
fn wakes_once_just_after_the_latest_time_the_wheel_allows_for_the_probe() {
    // The first probe's timer was armed at the handshake, at a jiffy this process
    // cannot see: at HZ=250 the wheel fires the 1 s timer 0-36 ms after its due
    // time (calc_index rounds up to 8 jiffies, plus the jiffy TCP arms from). The
    // probe is expected to be answered, and the answer (tcpi_last_ack_recv) dates
    // it: one look after the window, not looks stepping through it.
    let t = timeline();
    assert_eq!(t.next_wake(ms(10)), Some(ms(1039)));
    // With HZ unknown the window is the worst over common HZ (90 ms at HZ=100):
    // too wide for one look, the looks start at the due time.
    let eff = Effective {
        keepalive: true,
        idle_s: 1,
        intvl_s: 1,
        cnt: 3,
        user_timeout_ms: 0,
    };
    let params = KernelParams {
        wheel: crate::model::wheel::Wheel::new(None),
        ..KernelParams::default()
    };
    let mut t = Timeline::new(eff, params, ms(0));
    t.observe(ms(0), &TcpSample::default());
    assert_eq!(t.next_wake(ms(10)), Some(ms(1003)));
}

#[test]
fn unanswered_probes_then_schedule_moves_by_intvl() {
    let mut t = timeline();
    let ev = t.observe(ms(1005), &at(1005, 0, 1));
    assert_eq!(names(&ev), ["probe-window", "probe"]);
    assert_eq!(
        ev[0],
        EventKind::ProbeWindow {
            due: ms(1000),
            dead_at: Some(ms(4000))
        }
    );
    // The kernel re-armed the timer for intvl from the firing that sent probe 1,
    // which the samples put between 1.000 s (the due time) and 1.005 s; the wheel
    // rounds that re-arm to exactly 256 jiffies (1.024 s, measured: probes 1.024 s
    // apart at HZ=250). No answer will date probe 2, so the looks start at the
    // earliest time it can go out, plus the slack.
    assert_eq!(t.next_wake(ms(1006)), Some(ms(2027)));
    assert_eq!(t.next_wake(ms(2027)), Some(ms(2037)));
    let ev = t.observe(ms(2030), &at(2030, 0, 2));
    assert_eq!(
        ev,
        vec![EventKind::Probe {
            n: 2,
            due: ms(2005),
            answered: false,
        }]
    );
}

#[test]
fn a_new_bound_or_path_is_news_not_a_restatement() {
    let mut t = timeline();
    // Data in flight: the busy path, a different promise.
    t.note_send(ms(500));
    let mut s = at(600, 0, 0);
    s.unacked = 1;
    let ev = t.observe(ms(600), &s);
    let p = ev.iter().find_map(|k| match k {
        EventKind::Prediction(p) => Some(p),
        _ => None,
    });
    assert!(
        p.is_some_and(|p| p.path == crate::model::schedule::Path::Busy && !p.restated),
        "{ev:?}"
    );
}

#[test]
fn answered_probe_restarts_idle() {
    let mut t = timeline();
    let ev = t.observe(ms(1010), &at(1010, 1002, 0));
    assert_eq!(
        names(&ev),
        ["probe-window", "probe", "probe-acked", "idle", "prediction"]
    );
    assert_eq!(ev[2], EventKind::ProbeAcked { n: 1 });
    assert_eq!(ev[3], EventKind::Idle { since: ms(1002) });
    // Seen out and answered in one sample; the same promise from a newer contact.
    assert!(
        matches!(ev[1], EventKind::Probe { answered: true, .. }),
        "{ev:?}"
    );
    assert!(
        matches!(&ev[4], EventKind::Prediction(p) if p.restated),
        "{ev:?}"
    );
    // The timer stays where the probe left it: re-armed for 1 s at its firing,
    // which the answer at 1.002 s (read in 4 ms jiffies) puts between 1.000 and
    // 1.002 s; the wheel fires that re-arm 1.024 s later. One look, after it.
    assert_eq!(t.next_wake(ms(1011)), Some(ms(2029)));
}

#[test]
fn an_answered_probe_is_dated_by_its_answer_not_by_the_sample() {
    let mut t = timeline();
    let mut dated = Vec::new();
    // The look at 1.039 s finds probe 1 answered at 1.026 s (tcpi_last_ack_recv).
    t.observe_dated(ms(1039), &at(1039, 1026, 0), |at, k| {
        dated.push((at, k.name()))
    });
    assert_eq!(
        dated,
        [
            (Some(ms(1026)), "probe-window"),
            (Some(ms(1026)), "probe"),
            (Some(ms(1026)), "probe-acked"),
            (Some(ms(1026)), "idle"),
            (None, "prediction"),
        ]
    );
    // Steady state: each probe 1.024 s after the previous firing, one look each.
    assert_eq!(t.next_wake(ms(1040)), Some(ms(2053)));
    let ev = t.observe(ms(2053), &at(2053, 2050, 0));
    assert_eq!(
        names(&ev),
        ["probe-window", "probe", "probe-acked", "idle", "prediction"]
    );
    assert_eq!(t.next_wake(ms(2054)), Some(ms(3077)));
    // Undated events (a probe nobody answered) are the sample's.
    let mut dated = Vec::new();
    t.observe_dated(ms(3077), &at(3077, 2050, 1), |at, k| {
        dated.push((at, k.name()))
    });
    assert_eq!(dated, [(None, "probe-window"), (None, "probe")]);
}

#[test]
fn a_look_that_misses_the_planned_firing_steps_on() {
    // The firing is not where the wheel model put it (the softirq ran late, a
    // probe could not be sent): the looks step from the window's opening, growing
    // with the lateness, and the late warning still needs a sample to prove it.
    let mut t = timeline();
    t.observe(ms(1039), &at(1039, 1026, 0));
    assert_eq!(t.next_wake(ms(1040)), Some(ms(2053)));
    let ev = t.observe(ms(2053), &at(2053, 1026, 0));
    assert_eq!(names(&ev), ["probe-window"]);
    assert_eq!(t.next_wake(ms(2053)), Some(ms(2063)));
    let ev = t.observe(ms(2063), &at(2063, 2060, 0));
    assert_eq!(names(&ev), ["probe", "probe-acked", "idle", "prediction"]);
    assert!(warnings(&ev).is_empty(), "{ev:?}");
}

#[test]
fn uncertain_sample_times_neither_invent_contacts_nor_hide_answers() {
    // watch on a loaded host: the time given with a sample can be up to 150 ms
    // earlier than when the kernel read it.
    let mut t = timeline();
    t.set_uncertainty(ms(150));
    // The same contact (at 0) read late, then on time: no new contact.
    let ev = t.observe(ms(500), &at(620, 0, 0));
    assert!(names(&ev).iter().all(|n| *n != "idle"), "{ev:?}");
    let ev = t.observe(ms(700), &at(700, 0, 0));
    assert!(names(&ev).iter().all(|n| *n != "idle"), "{ev:?}");
    // The probe at 1.0 s answered at once, read 100 ms late: the contact seems
    // to be at 0.9 s, before the probe was due; it is still its answer.
    let ev = t.observe(ms(1100), &at(1200, 1000, 0));
    assert_eq!(
        names(&ev)[..3],
        ["probe-window", "probe", "probe-acked"],
        "{ev:?}"
    );
}

#[test]
fn a_probe_known_from_the_timer_is_reported_before_idle_is_known() {
    // watch without the settings: idle assumed 7200 s, yet the keepalive timer
    // proved a probe went out and was answered at 2.745 s.
    let eff = Effective {
        keepalive: true,
        idle_s: 7200,
        intvl_s: 1,
        cnt: 9,
        user_timeout_ms: 0,
    };
    let mut t = Timeline::new(eff, KernelParams::default(), ms(0));
    t.observe(ms(0), &TcpSample::default());
    let ev = t.observe(ms(2804), &at(2804, 2745, 0));
    assert_eq!(
        names(&ev),
        ["idle", "prediction"],
        "without the proof it is just a contact"
    );
    let mut t = Timeline::new(eff, KernelParams::default(), ms(0));
    t.observe(ms(0), &TcpSample::default());
    let ev = t.observe_answered_probe(ms(2804), &at(2804, 2745, 0));
    assert_eq!(names(&ev), ["probe", "probe-acked", "idle", "prediction"]);
    assert_eq!(
        ev[0],
        EventKind::Probe {
            n: 1,
            due: ms(2745),
            answered: true,
        }
    );
}

#[test]
fn a_probe_seen_out_then_answered() {
    let mut t = timeline();
    let ev = t.observe(ms(1005), &at(1005, 0, 1));
    assert_eq!(names(&ev), ["probe-window", "probe"]);
    let ev = t.observe(ms(1015), &at(1015, 1006, 0));
    assert_eq!(names(&ev), ["probe-acked", "idle", "prediction"], "{ev:?}");
    assert_eq!(ev[0], EventKind::ProbeAcked { n: 1 });
}

#[test]
fn a_probe_sent_half_a_second_late_is_explained() {
    let mut t = timeline();
    t.observe(ms(1005), &at(1005, 0, 1));
    // The observer samples in steps past the due time (2.005 s): the one at
    // 2.420 s does not show probe 2 yet, which proves it late.
    t.observe(ms(2420), &at(2420, 0, 1));
    let ev = t.observe(ms(2520), &at(2520, 0, 2));
    assert_eq!(names(&ev), ["probe", "warning", "prediction"]);
    match &ev[1] {
        EventKind::Warning { message } => {
            assert!(
                message.contains("beyond the 0.036s the timer wheel allows"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn late_kernel_timer_is_sampled_in_short_steps() {
    let mut t = timeline();
    let ev = t.observe(ms(1004), &at(1004, 0, 0));
    assert_eq!(names(&ev), ["probe-window"]);
    // Inside the wheel's 36 ms: the one look after it.
    assert_eq!(t.next_wake(ms(1004)), Some(ms(1039)));
    // Beyond it: steps of an eighth of the lateness, at least 10 ms.
    assert_eq!(t.next_wake(ms(1039)), Some(ms(1049)));
    assert_eq!(t.next_wake(ms(1803)), Some(ms(1903)));
}

#[test]
fn jitter_in_the_contact_reading_is_not_a_contact() {
    let mut t = timeline();
    assert!(t.observe(ms(500), &at(500, 4, 0)).is_empty());
}

#[test]
fn busy_prediction_counts_from_the_first_retransmission() {
    let eff = Effective {
        keepalive: true,
        idle_s: 1,
        intvl_s: 1,
        cnt: 3,
        user_timeout_ms: 4000,
    };
    let mut t = Timeline::new(eff, KernelParams::default(), ms(0));
    t.observe(
        ms(0),
        &TcpSample {
            state: 1,
            ..TcpSample::default()
        },
    );
    t.note_send(ms(600));
    let mut s = at(1050, 400, 0);
    s.unacked = 2;
    s.retransmits = 1;
    s.last_data_sent_ms = 40;
    t.observe(ms(1050), &s);
    // The kernel purges the queues when it gives up; the busy view stands.
    let dead = TcpSample {
        state: 7,
        last_ack_recv_ms: 4600,
        last_data_recv_ms: 5000,
        ..s
    };
    t.observe(ms(5000), &dead);
    let end = t.end(ms(5000), Outcome::Timeout, None, String::new());
    let predicted = end.predicted_detect_s.expect("busy prediction");
    assert!((predicted - 4.61).abs() < 1e-9, "{predicted}");
}

#[test]
fn retransmissions_are_reported_once_each() {
    let mut t = timeline();
    let mut s = at(300, 0, 0);
    s.unacked = 2;
    s.retransmits = 2;
    let ev = t.observe(ms(300), &s);
    assert_eq!(
        ev[..2],
        [
            EventKind::Retransmit { n: 1, unacked: 2 },
            EventKind::Retransmit { n: 2, unacked: 2 }
        ]
    );
    // The busy path takes over the prediction.
    match &ev[2] {
        EventKind::Prediction(p) => assert_eq!(p.path, Path::Busy),
        other => panic!("{other:?}"),
    }
    assert!(t.observe(ms(310), &s).is_empty());
}

#[test]
fn traffic_is_coalesced() {
    let mut t = timeline();
    let mut s = at(1500, 1400, 0);
    s.bytes_received = 10;
    let ev = t.observe(ms(1500), &s);
    // The idle start is stated once the connection is quiet, and the prediction
    // (4 s after the last contact) did not change.
    assert_eq!(names(&ev), ["data"]);
    let mut s = at(1700, 1650, 0);
    s.bytes_received = 30;
    assert!(t.observe(ms(1700), &s).is_empty());
    assert_eq!(t.next_wake(ms(1700)), Some(ms(2500)));
    let ev = t.observe(ms(2500), &at(2500, 1650, 0));
    assert_eq!(
        ev[0],
        EventKind::Data {
            bytes_in: 20,
            bytes_out: 0
        }
    );
    assert!(!names(&ev).contains(&"idle"), "quiet 0.85 s only: {ev:?}");
    let ev = t.observe(ms(2700), &at(2700, 1650, 0));
    assert!(ev.contains(&EventKind::Idle { since: ms(1650) }), "{ev:?}");
}

#[test]
fn a_busy_connection_restates_idle_and_prediction_only_when_they_change() {
    // Data every 200 ms for 5 s, sampled every 50 ms (watch --interval 50ms).
    let mut t = timeline_with(2, 1, 2, 0);
    let mut all = Vec::new();
    let mut bytes = 0;
    for k in 1..=100u64 {
        let now = 1000 + k * 50;
        let contact = now - now % 200;
        if now % 200 == 0 {
            bytes += 10;
        }
        let mut s = at(now, contact, 0);
        s.bytes_received = bytes;
        all.extend(t.observe(ms(now), &s));
    }
    let n = names(&all);
    let count = |name: &str| n.iter().filter(|x| **x == name).count();
    assert!(count("data") >= 4, "{n:?}");
    assert_eq!(count("idle"), 1, "the first sample only: {all:?}");
    assert!(count("prediction") <= 1, "{all:?}");
    // Then it goes quiet: the idle start is stated once.
    let ev = t.observe(ms(7300), &at(7300, 6000, 0));
    assert_eq!(names(&ev), ["data", "idle"], "{ev:?}");
    assert_eq!(ev[1], EventKind::Idle { since: ms(6000) });
}

#[test]
fn the_peers_fin_is_not_a_byte_of_data() {
    let mut t = timeline();
    let mut s = at(1500, 1400, 0);
    s.bytes_received = 11;
    s.state = 8;
    let ev = t.observe(ms(1500), &s);
    assert_eq!(
        ev[0],
        EventKind::Data {
            bytes_in: 10,
            bytes_out: 0
        }
    );
}

#[test]
fn detection_latency_counts_from_last_contact() {
    let mut t = timeline();
    t.observe(ms(1010), &at(1010, 1002, 0));
    let end = t.end(
        ms(5010),
        Outcome::Timeout,
        Some("ETIMEDOUT".into()),
        String::new(),
    );
    assert_eq!(end.exit_code, 6);
    assert!((end.detect_s.expect("observed") - 4.008).abs() < 1e-9);
    assert_eq!(end.predicted_detect_s, Some(4.0));
}

fn timeline_with(idle: u32, intvl: u32, cnt: u32, uto: u32) -> Timeline {
    let eff = Effective {
        keepalive: true,
        idle_s: idle,
        intvl_s: intvl,
        cnt,
        user_timeout_ms: uto,
    };
    let mut t = Timeline::new(eff, KernelParams::default(), ms(0));
    t.observe(ms(0), &TcpSample::default());
    t
}

fn prediction_of(events: &[EventKind]) -> Option<&Prediction> {
    events.iter().rev().find_map(|e| match e {
        EventKind::Prediction(p) => Some(p),
        _ => None,
    })
}

#[test]
fn intvl_longer_than_idle_after_an_answered_probe() {
    // idle 1, intvl 11, user timeout 5 s; probe 1 answered at 1.001, then silence.
    // Measured: probe 2 at P1 + 11, ETIMEDOUT at P1 + 22 (22.148 s after contact).
    let mut t = timeline_with(1, 11, 3, 5000);
    let ev = t.observe(ms(1005), &at(1005, 1001, 0));
    assert_eq!(
        names(&ev),
        ["probe-window", "probe", "probe-acked", "idle", "prediction"]
    );
    let p = prediction_of(&ev).expect("a new prediction after the answer");
    assert_eq!(p.dead_at, Some(ms(23_001)));
    assert_eq!(p.since, ms(1001));
    // The next probe is due at P1 + intvl, not at the answer + idle.
    assert_eq!(t.next_wake(ms(1006)), Some(ms(12_004)));
    let ev = t.observe(ms(12_140), &at(12_140, 1001, 1));
    assert_eq!(names(&ev), ["probe-window", "probe"]);
    assert_eq!(
        ev[1],
        EventKind::Probe {
            n: 1,
            due: ms(12_001),
            answered: false,
        }
    );
    let dead = TcpSample {
        state: 7,
        ..at(23_170, 1001, 1)
    };
    t.observe(ms(23_170), &dead);
    let end = t.end(ms(23_170), Outcome::Timeout, None, String::new());
    // The prediction in force at the last contact: 23.001 - 1.001.
    let predicted = end.predicted_detect_s.expect("prediction");
    assert!((predicted - 22.0).abs() < 1e-9, "{predicted}");
    assert!((end.detect_s.expect("detected") - 22.169).abs() < 1e-9);
    assert_eq!(end.bound, Some(Bound::UserTimeout));
    assert_eq!(end.path, Some(Path::Idle));
}

#[test]
fn a_long_timer_late_within_the_wheel_granularity_is_not_a_fault() {
    // A 12 s timer fires up to 260 ms late at HZ=250 (the issue: 259 ms).
    let mut t = timeline_with(12, 1, 1, 0);
    assert!(t.observe(ms(12_003), &at(12_003, 0, 0)).len() == 1); // probe-window
    assert_eq!(t.next_wake(ms(12_003)), Some(ms(12_013)));
    let ev = t.observe(ms(12_262), &at(12_262, 0, 1));
    // No warning, and no new prediction: the first said "up to 0.296 s later".
    assert_eq!(names(&ev), ["probe"], "{ev:?}");
    // The same lateness for a 1 s timer is beyond its 36 ms granularity.
    let mut t = timeline_with(1, 1, 3, 0);
    t.observe(ms(1_003), &at(1_003, 0, 1));
    t.observe(ms(2_240), &at(2_240, 0, 1));
    let ev = t.observe(ms(2_262), &at(2_262, 0, 2));
    assert_eq!(names(&ev), ["probe", "warning", "prediction"], "{ev:?}");
}

/// A sample in the zero-window state: `backoff` window probes so far,
/// `unanswered` of them since the last answer, last contact at `contact`.
fn zw(now: u64, contact: u64, backoff: u8, unanswered: u8) -> TcpSample {
    TcpSample {
        backoff,
        rto_us: 208_000,
        snd_wnd: Some(0),
        notsent_bytes: 43_440,
        ..at(now, contact, unanswered)
    }
}

#[test]
fn zero_window_is_its_own_path_with_window_probes() {
    // Measured: UTO 4 s, the peer stops reading and answers every window probe;
    // ETIMEDOUT 4 s after the first window probe.
    let mut t = timeline_with(1, 1, 3, 4000);
    let ev = t.observe(ms(50), &zw(50, 46, 0, 0));
    assert_eq!(names(&ev), ["zero-window", "prediction"], "{ev:?}");
    assert_eq!(
        ev[0],
        EventKind::ZeroWindow {
            unsent: Some(43_440),
            probe_due: ms(254)
        }
    );
    assert_eq!(t.next_wake(ms(60)), Some(ms(257)));
    // Probe 1 went out and was answered; keepalive probes are not reported.
    let ev = t.observe(ms(262), &zw(262, 258, 1, 0));
    assert_eq!(
        names(&ev),
        ["window-probe", "window-probe-acked", "prediction"],
        "{ev:?}"
    );
    let p = prediction_of(&ev).expect("prediction");
    assert_eq!(p.path, Path::ZeroWindow);
    assert_eq!(p.bound, Bound::UserTimeout);
    assert_eq!(p.dead_at, Some(ms(4262)));
    // Probe 2 unanswered (the peer's tcp_invalid_ratelimit).
    let ev = t.observe(ms(700), &zw(700, 258, 2, 1));
    assert_eq!(
        ev[0],
        EventKind::WindowProbe {
            n: 2,
            // Re-armed from the answer (tcp_ack_probe), backoff 1.
            due: ms(258 + 416),
            unanswered: 1
        }
    );
    let dead = TcpSample {
        state: 7,
        ..zw(4_300, 3_300, 4, 0)
    };
    t.observe(ms(3_300), &zw(3_300, 3_296, 4, 0));
    t.observe(ms(4_300), &dead);
    let end = t.end(
        ms(4_300),
        Outcome::Timeout,
        Some("ETIMEDOUT".into()),
        "Connection timed out".into(),
    );
    assert!(
        end.message.contains(
            "the peer stopped reading (zero window, 4 window probe(s)): the user timeout ended it"
        ),
        "{}",
        end.message
    );
    assert_eq!(end.path, Some(Path::ZeroWindow));
    let predicted = end.predicted_detect_s.expect("prediction");
    assert!((predicted - (4.262 - 3.296)).abs() < 1e-9, "{predicted}");
}

#[test]
fn the_window_opens_again() {
    let mut t = timeline_with(1, 1, 3, 0);
    t.observe(ms(50), &zw(50, 46, 0, 0));
    let open = TcpSample {
        snd_wnd: Some(65_000),
        bytes_acked: 43_440,
        ..at(900, 890, 0)
    };
    let ev = t.observe(ms(900), &open);
    assert_eq!(
        ev[0],
        EventKind::WindowOpen {
            after: ms(850),
            probes: 0
        }
    );
    // Without a user timeout a zero window ends only by tcp_retries2 probes.
    let mut t = timeline_with(1, 1, 3, 0);
    let ev = t.observe(ms(50), &zw(50, 46, 0, 0));
    let p = prediction_of(&ev).expect("prediction");
    assert_eq!(p.bound, Bound::Retries2);
    assert!(p.explain.contains("RFC 1122"), "{}", p.explain);
}

/// Idle 1, intvl 1, cnt 3 on a kernel with HZ=250 (a 1 s timer fires up to 36 ms
/// late), sampled by `watch --interval 50ms`.
fn timeline_hz250() -> Timeline {
    let eff = Effective {
        keepalive: true,
        idle_s: 1,
        intvl_s: 1,
        cnt: 3,
        user_timeout_ms: 0,
    };
    let params = KernelParams {
        wheel: crate::model::wheel::Wheel::new(Some(250)),
        ..KernelParams::default()
    };
    let mut t = Timeline::new(eff, params, ms(0));
    t.observe(ms(0), &TcpSample::default());
    t
}

fn warnings(events: &[EventKind]) -> Vec<&EventKind> {
    events
        .iter()
        .filter(|e| matches!(e, EventKind::Warning { .. }))
        .collect()
}

#[test]
fn a_probe_seen_late_by_the_sampling_delay_is_not_late() {
    // Measured with watch --interval 50ms: the sample that first shows a probe
    // comes up to 50 ms after it went out; tcpdump had each within 2-35 ms of due.
    let mut t = timeline_hz250();
    assert!(warnings(&t.observe(ms(999), &at(999, 0, 0))).is_empty());
    let ev = t.observe(ms(1055), &at(1055, 0, 1));
    assert_eq!(names(&ev), ["probe-window", "probe"], "{ev:?}");
    assert!(
        warnings(&ev).is_empty(),
        "the sample at 0.999 s brackets it: {ev:?}"
    );
    // Probe 2 (due 2.055 s: the model places probe 1 when it saw it) shown at
    // 2.105 s, the sample at 2.050 s without it: nothing proves it late.
    assert!(warnings(&t.observe(ms(2050), &at(2050, 0, 1))).is_empty());
    let ev = t.observe(ms(2105), &at(2105, 0, 2));
    assert!(warnings(&ev).is_empty(), "{ev:?}");
}

#[test]
fn a_probe_the_samples_prove_late_is_warned_about() {
    // Carrier down: the kernel could not send probe 1 at 1.0 s and retried 0.5 s
    // later; a sample at 1.400 s still shows none.
    let mut t = timeline_hz250();
    assert!(warnings(&t.observe(ms(1400), &at(1400, 0, 0))).is_empty());
    let ev = t.observe(ms(1550), &at(1550, 0, 1));
    let w = warnings(&ev);
    assert_eq!(w.len(), 1, "{ev:?}");
    let EventKind::Warning { message } = w[0] else {
        unreachable!()
    };
    assert!(
        message.starts_with("probe #1 went out at least 0.400s after it was due"),
        "{message}"
    );
}

#[test]
fn the_end_cites_the_prediction_made_with_settings_changed_since_the_contact() {
    // watch read 7200/75/9 at join; at 1.2 s the owner's settings became 2/1/2
    // (re-armed by the kernel for last contact + 2 s); it died at 4 s.
    let eff = Effective {
        keepalive: true,
        idle_s: 7200,
        intvl_s: 75,
        cnt: 9,
        user_timeout_ms: 0,
    };
    let mut t = Timeline::new(eff, KernelParams::default(), ms(0));
    t.observe(ms(0), &TcpSample::default());
    t.observe(ms(1200), &at(1200, 0, 0));
    t.set_settings(
        Effective {
            idle_s: 2,
            intvl_s: 1,
            cnt: 2,
            ..eff
        },
        15,
    );
    t.kernel_timer_at(ms(2000), ms(0));
    let ev = t.observe(ms(1250), &at(1250, 0, 0));
    let p = prediction_of(&ev).expect("the new prediction is stated");
    assert_eq!(p.detect_s, Some(4.0), "{p:?}");
    t.observe(ms(2010), &at(2010, 0, 1));
    t.observe(ms(3010), &at(3010, 0, 2));
    let end = t.end(ms(4010), Outcome::Timeout, None, String::new());
    assert_eq!(end.predicted_detect_s, Some(4.0), "not 7200 + 9 x 75");
}

/// Issue 27: `watch` joins a connection whose first probe already went out (its
/// dump read it 5 s after the time it is stamped with). The probe predates the
/// join: it is counted as already out, never reported later as a late probe #1,
/// and the next probe's due time allows for when the first really went.
#[test]
fn probes_out_at_the_join_predate_it_and_are_never_late_probes() {
    let joined = |uncertainty: u64, contact: u64| {
        let eff = Effective {
            keepalive: true,
            idle_s: 1,
            intvl_s: 1,
            cnt: 9,
            user_timeout_ms: 0,
        };
        let mut t = Timeline::new(eff, KernelParams::default(), ms(10_000));
        t.set_uncertainty(ms(uncertainty));
        // Joined at run time 10 s with one probe out.
        let first = t.observe(ms(10_000), &at(10_000, contact, 1));
        assert!(!names(&first).contains(&"probe"), "{first:?}");
        assert_eq!(t.probes_at_join(), 1);
        t
    };
    let no_warning = |ev: &[EventKind]| !names(ev).contains(&"warning");
    // The dump read it up to 5 s after the time it is stamped with.
    let mut t = joined(5_000, 7_500);
    let ev = t.observe(ms(10_500), &at(10_500, 7_500, 1));
    assert!(!names(&ev).contains(&"probe") && no_warning(&ev), "{ev:?}");
    let ev = t.observe(ms(11_000), &at(11_000, 7_500, 2));
    assert_eq!(
        ev[0],
        EventKind::Probe {
            n: 2,
            due: ms(9_500),
            answered: false,
        },
        "{ev:?}"
    );
    assert!(no_warning(&ev), "{ev:?}");
    // Probe 1 went out between 9 s and the join (10 s): probe 2 was due between
    // 10 and 11 s. Still not out at 11.2 s, it is proven late.
    let mut t = joined(0, 8_000);
    let ev = t.observe(ms(11_200), &at(11_200, 8_000, 1));
    assert!(no_warning(&ev), "{ev:?}");
    let ev = t.observe(ms(11_300), &at(11_300, 8_000, 2));
    assert_eq!(names(&ev)[..2], ["probe", "warning"], "{ev:?}");
}

/// The busy path with tcp_retries2 5 (budget 12.6 s), RTO 0.204 s: the kernel
/// gives up at the sixth firing, 12.648 s after the first plus the wheel's
/// lateness. Read from the firing a sample shows (tcpi_last_data_sent), the range
/// holds that whether the sample shows the first firing or, at a sparse
/// interval, the second (before, the second was taken for the first and the
/// range started 0.408 s too late), and it carries no slack for the send time
/// the firings already bound.
#[test]
fn busy_range_counts_from_the_firing_the_sample_shows() {
    let eff = Effective {
        keepalive: true,
        idle_s: 2,
        intvl_s: 1,
        cnt: 2,
        user_timeout_ms: 0,
    };
    let params = KernelParams {
        retries2: 5,
        wheel: crate::model::wheel::Wheel::new(Some(250)),
        ..KernelParams::default()
    };
    // The first firing at 0.970 s; the kernel's end no earlier than 13.618 s.
    let earliest_real = ms(970 + 12_648);
    for (now, n, rto, sent_ago) in [(1_000, 1, 408, 30), (1_400, 2, 816, 22)] {
        let mut t = Timeline::new(eff, params, ms(0));
        t.observe(ms(0), &TcpSample::default());
        let mut s = at(now, 760, 0);
        s.unacked = 1;
        s.retransmits = n;
        s.backoff = n;
        s.rto_us = rto * 1000;
        s.last_data_sent_ms = sent_ago;
        let ev = t.observe(ms(now), &s);
        let p = prediction_of(&ev).expect("a busy prediction");
        assert_eq!(p.path, Path::Busy, "{p:?}");
        let lo = p.dead_at.expect("an end");
        let hi = lo + p.late_by_up_to;
        assert!(lo <= earliest_real, "sample at {now}: {lo:?}");
        // The lab's ends (socat's ETIMEDOUT) came 12.864..13.113 s after the first firing.
        for real in [12_864, 13_113] {
            assert!(ms(970 + real) <= hi, "sample at {now}: {lo:?}..{hi:?}");
        }
        assert!(p.late_by_up_to < ms(700), "sample at {now}: {p:?}");
    }
}

/// Settings re-tuned to 2/1/2 after idle had already passed (socat watched late
/// under load, then `tune --pid`): TCP_KEEPIDLE fires the timer at once, so the
/// sample that reads the change already shows the first probe and the timer
/// re-armed for intvl. The end cites the prediction in force (dead 1 s after the
/// second probe), not the one made before the probe was folded in (which took the
/// re-armed timer for the first probe: 1 s later; the lab's end said 5.031 s
/// against a real 4.077 s).
#[test]
fn the_end_cites_the_prediction_made_after_a_change_not_before_its_probe() {
    let mut t = timeline_with(7200, 75, 9, 0);
    let eff = Effective {
        keepalive: true,
        idle_s: 2,
        intvl_s: 1,
        cnt: 2,
        user_timeout_ms: 0,
    };
    t.set_settings(eff, 15);
    t.kernel_timer_at(ms(3_030), ms(5));
    t.observe(ms(2_300), &at(2_300, 0, 1));
    t.observe(ms(3_100), &at(3_100, 0, 2));
    let end = t.end(ms(4_100), Outcome::Timeout, None, String::new());
    let predicted = end.predicted_detect_s.expect("a prediction");
    assert!((predicted - 4.03).abs() < 0.1, "{predicted}");
}
