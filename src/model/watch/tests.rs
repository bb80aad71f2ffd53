//! Tests of `model::watch`.

use super::*;
use crate::model::event::Outcome;
use crate::model::predict::Effective;
use crate::model::schedule::KernelParams;
use crate::model::settings::Source;
use crate::model::verdict::Certainty;

fn read_3_1_3() -> Knowledge {
    Knowledge::read(Effective {
        keepalive: true,
        idle_s: 3,
        intvl_s: 1,
        cnt: 3,
        user_timeout_ms: 0,
    })
}

fn defaults(keepalive: Option<bool>) -> Knowledge {
    let mut k = Knowledge::from_defaults(7200, 75, 9);
    k.first(keepalive);
    k
}

#[test]
fn settings_read_are_stated_as_read_without_range_or_warning() {
    let know = read_3_1_3();
    let facts = config_facts(&know, 15);
    assert_eq!(facts.sources.idle_s, Source::ReadBack);
    assert_eq!(facts.sources.user_timeout_ms, Source::ReadBack);
    assert_eq!((facts.idle_s, facts.intvl_s, facts.cnt), (3, 1, 3));
    assert_eq!(facts.explain, know.effective().facts(15).explain);
    assert!(!facts.explain.contains("as assumed"), "{}", facts.explain);
    assert_eq!(facts.predicted_detect_min_s, None);
    assert!(facts.warnings.is_empty(), "{:?}", facts.warnings);
}

#[test]
fn unread_settings_name_the_assumptions_and_give_the_range() {
    let facts = config_facts(&defaults(Some(true)), 15);
    assert_eq!(facts.sources.idle_s, Source::SystemDefault);
    assert_eq!(facts.sources.keepalive, Source::KernelTimer);
    assert!(
        facts.explain.ends_with(
            ", if idle, intvl, cnt, user timeout are as assumed (not read from the socket)"
        ),
        "{}",
        facts.explain
    );
    // Each unknown over the kernel's range: 1 s idle + 1 probe of 1 s at the least,
    // 32767 s idle + 127 probes of 32767 s at the most.
    assert_eq!(facts.predicted_detect_min_s, Some(2.0));
    assert_eq!(
        facts.predicted_detect_max_s,
        Some(32767.0 + 32767.0 * 127.0)
    );
    let own = defaults(Some(true)).effective().facts(15).warnings.len();
    assert_eq!(facts.warnings.len(), own + 1);
    assert!(facts.warnings[own].contains("TCP_USER_TIMEOUT cannot be seen"));
}

#[test]
fn unread_keepalive_unknown_gives_no_range_but_still_warns() {
    let know = defaults(None);
    let facts = config_facts(&know, 15);
    assert!(!facts.explain.contains("as assumed"), "{}", facts.explain);
    assert_eq!(facts.predicted_detect_max_s, None);
    // The prediction's own warnings (keepalive taken as off), then the watch's.
    let own = know.effective().facts(15).warnings;
    assert_eq!(facts.warnings[..own.len()], own[..]);
    assert_eq!(facts.warnings.len(), own.len() + 1);
    assert!(facts.warnings[own.len()].contains("TCP_USER_TIMEOUT cannot be seen"));
}

fn sample(bytes_sent: u64, bytes_acked: u64, unacked: u32) -> TcpSample {
    TcpSample {
        bytes_sent,
        bytes_acked,
        unacked,
        ..TcpSample::default()
    }
}

#[test]
fn the_syn_is_learned_only_with_nothing_in_flight() {
    // Connecting side: the SYN counts one byte acked beyond the data.
    assert_eq!(syn_bytes(&sample(6, 7, 0), 0), Some(1));
    // Accepting side: none.
    assert_eq!(syn_bytes(&sample(6, 6, 0), 0), Some(0));
    // Data in flight or queued: the counters prove nothing.
    assert_eq!(syn_bytes(&sample(6, 5, 1), 0), None);
    assert_eq!(syn_bytes(&sample(6, 7, 0), 4), None);
    // SYN and FIN both acked (2 beyond): not a dump of an open connection's SYN.
    assert_eq!(syn_bytes(&sample(6, 8, 0), 0), None);
}

#[test]
fn only_a_closing_state_on_either_side_decides_a_vanished_socket() {
    assert!(decided_by_lookup(Some(TCP_TIME_WAIT), None));
    assert!(decided_by_lookup(None, Some(TCP_FIN_WAIT2)));
    assert!(decided_by_lookup(Some(TCP_CLOSING), Some(1)));
    assert!(decided_by_lookup(Some(TCP_FIN_WAIT1), None));
    // The peer's socket still ESTABLISHED, or in CLOSE_WAIT, or nothing found.
    assert!(!decided_by_lookup(None, Some(1)));
    assert!(!decided_by_lookup(Some(8), None));
    assert!(!decided_by_lookup(None, None));
}

#[test]
fn an_abort_is_a_zero_peer_port_with_zeroed_counters() {
    let zeroed = TcpSample::default();
    let counted = TcpSample {
        bytes_received: 1,
        ..TcpSample::default()
    };
    assert!(destroyed(zeroed, 0, 0).aborted_by_owner);
    assert!(!destroyed(counted, 0, 0).aborted_by_owner);
    assert!(!destroyed(zeroed, 6379, 0).aborted_by_owner);
    let d = destroyed(counted, 6379, 12);
    assert_eq!((d.info, d.unread), (counted, 12));
}

#[test]
fn a_switch_is_seen_only_on_read_settings_and_a_visible_timer() {
    let read = read_3_1_3();
    assert!(keepalive_switched(&read, Some(false)));
    assert!(!keepalive_switched(&read, Some(true)));
    // Another timer hides keepalive's: nothing to compare.
    assert!(!keepalive_switched(&read, None));
    // Not read: inference follows the timer, nothing to read again.
    assert!(!keepalive_switched(&defaults(Some(true)), Some(false)));
}

#[test]
fn a_hidden_keepalive_timer_says_what_detects_instead() {
    let w = HiddenTimer::Retransmit.warning(3, 15);
    assert!(w.contains("(3 unacknowledged segment(s))"), "{w}");
    // tcp_retries2 15 with RTO min 200 ms: the kernel's documented 924.6 s.
    assert!(w.contains("(924.6s, tcp_retries2 15)"), "{w}");
    let w = HiddenTimer::ZeroWindow.warning(0, 15);
    assert!(w.contains("zero-window probe timer"), "{w}");
}

fn verdict(outcome: Outcome, certainty: Certainty, possible: Vec<Outcome>) -> Verdict {
    Verdict {
        outcome,
        errno: Some("ECONNRESET"),
        message: "reset by the peer".to_string(),
        evidence: "vanished without FIN".to_string(),
        certainty,
        possible,
    }
}

#[test]
fn a_judged_end_is_marked_inferred_with_its_evidence() {
    let timeline = Timeline::new(
        read_3_1_3().effective(),
        KernelParams::default(),
        Duration::ZERO,
    );
    let at = Duration::from_secs(5);
    let end = judged_end(
        &timeline,
        at,
        verdict(Outcome::Reset, Certainty::Certain, Vec::new()),
    );
    assert_eq!(end.outcome, Outcome::Reset);
    assert_eq!(end.errno.as_deref(), Some("ECONNRESET"));
    assert_eq!(end.message, "reset by the peer");
    assert_eq!(end.inferred, Some(true));
    assert_eq!(end.evidence.as_deref(), Some("vanished without FIN"));
    assert_eq!(end.certainty, Some(Certainty::Certain));
    assert_eq!(end.possible, None);
    let possible = vec![Outcome::Eof, Outcome::Reset];
    let end = judged_end(
        &timeline,
        at,
        verdict(Outcome::Ambiguous, Certainty::Ambiguous, possible.clone()),
    );
    assert_eq!(end.certainty, Some(Certainty::Ambiguous));
    assert_eq!(end.possible, Some(possible));
}

#[test]
fn descendants_are_named_up_to_ten_and_the_rest_counted() {
    assert_eq!(descendants_note("7 (nginx)", &[], 0, 0), None);
    let two = ["8 (nginx)".to_string(), "9 (nginx)".to_string()];
    assert_eq!(
        descendants_note("7 (nginx)", &two, 2, 3).as_deref(),
        Some(
            "--pid 7 (nginx): its descendants are watched with it (2 process(es), holding 3 \
             socket(s) of any kind now): 8 (nginx), 9 (nginx)"
        )
    );
    let many: Vec<String> = (0..12).map(|p| p.to_string()).collect();
    let note = descendants_note("7", &many, 12, 0).expect("note");
    assert!(
        note.ends_with(": 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 2 more"),
        "{note}"
    );
    // Named fewer than there are (the caller named only ten).
    let note = descendants_note("7", &many[..10], 40, 0).expect("note");
    assert!(note.ends_with(", 9 and 30 more"), "{note}");
}

#[test]
fn nothing_matched_says_what_the_process_holds() {
    let note = nothing_matched_note(7, false, 2, 5);
    assert!(
        note.starts_with("--pid 7: no established TCP connection yet: the process and its 2 descendant(s) hold 5 socket(s)"),
        "{note}"
    );
    let note = nothing_matched_note(7, true, 0, 1);
    assert!(
        note.starts_with("--pid 7: no established TCP connection matching --port/--peer yet"),
        "{note}"
    );
}

#[test]
fn clues_keep_the_last_established_counters_and_the_first_proven_syn() {
    let mut clues = EndClues::default();
    // In flight: the SYN is not provable yet, the counters are kept.
    clues.established(&sample(6, 5, 1), 0);
    assert_eq!(clues.syn_bytes, None);
    assert_eq!(clues.last_established, sample(6, 5, 1));
    clues.established(&sample(6, 7, 0), 0);
    assert_eq!(clues.syn_bytes, Some(1));
    // Later our FIN is acked too (2 beyond): the SYN learned stays.
    clues.established(&sample(6, 8, 0), 0);
    assert_eq!(clues.syn_bytes, Some(1));
    assert_eq!(clues.last_established, sample(6, 8, 0));
    clues.left(8);
    clues.looked_up(None, Some(TCP_FIN_WAIT2));
    assert!(clues.decided());
    let ev = clues.evidence(None, Some(true), true, read_3_1_3());
    assert_eq!(ev.states_seen, vec![8]);
    assert_eq!(ev.last, sample(6, 8, 0));
    assert_eq!(ev.syn_bytes, Some(1));
    assert_eq!(
        (ev.tuple_state, ev.reverse_state),
        (None, Some(TCP_FIN_WAIT2))
    );
    assert_eq!((ev.owner_holds, ev.destroy_listening), (Some(true), true));
    assert_eq!(ev.settings, read_3_1_3());
    clues.looked_up(None, Some(1));
    assert!(!clues.decided());
}

#[test]
fn keepalive_against_the_conntrack_entry() {
    let s = Duration::from_secs;
    let est = ConntrackEntry {
        left: s(25),
        established: true,
        state: "ESTABLISHED",
    };
    // Rows: sysctl, keepalive, idle, intvl -> refreshed-to timeout, after expiry.
    type Row = (Option<u64>, Option<bool>, u32, u32, Option<u64>, bool);
    let rows: [Row; 8] = [
        (Some(30), Some(true), 60, 10, Some(30), true),
        (Some(30), Some(true), 10, 5, Some(30), false),
        // At the timeout exactly: the entry is gone when the probe comes.
        (Some(30), Some(true), 30, 5, Some(30), true),
        // intvl past the timeout: after an answered probe the gap is intvl.
        (Some(30), Some(true), 10, 40, Some(30), true),
        (Some(30), Some(false), 10, 5, Some(30), true),
        // Hidden keepalive: nothing claimed.
        (Some(30), None, 60, 5, Some(30), false),
        // The sysctl unreadable: what the entry has left is the lower bound.
        (None, Some(true), 20, 5, Some(25), false),
        // A timeout policy longer than the sysctl: the entry's own.
        (Some(10), Some(true), 20, 5, Some(25), false),
    ];
    for (sysctl, ka, idle, intvl, want_t, want_after) in rows {
        let f = conntrack_facts(est, sysctl.map(s), ka, idle, intvl);
        assert_eq!(f.timeout_s, 25);
        assert_eq!(f.established_timeout_s, want_t, "{sysctl:?} {ka:?} {idle}");
        assert_eq!(
            f.keepalive_after_expiry, want_after,
            "{sysctl:?} {ka:?} {idle}"
        );
        let w = conntrack_warning(&f, ka, idle, intvl, false, Some(0));
        assert_eq!(w.is_some(), want_after, "{w:?}");
    }
    // Not ESTABLISHED (closing): other timeouts apply, no judgement.
    let closing = ConntrackEntry {
        established: false,
        state: "TIME_WAIT",
        ..est
    };
    let f = conntrack_facts(closing, Some(s(30)), Some(false), 10, 5);
    assert_eq!(
        (f.established_timeout_s, f.keepalive_after_expiry),
        (None, false)
    );
    // The texts.
    let f = conntrack_facts(est, Some(s(30)), Some(true), 60, 10);
    let w = conntrack_warning(&f, Some(true), 60, 10, true, Some(0)).unwrap();
    assert_eq!(
        w,
        "this host's conntrack entry expires 30s after the last packet \
         (nf_conntrack_tcp_timeout_established) but keepalive traffic comes every 60s (idle \
         60s, intvl 10s, assumed: not read): an idle connection outlives its entry; \
         nf_conntrack_tcp_loose is 0 here: the first packet after that is INVALID, and a `ct \
         state invalid drop` rule drops it silently"
    );
    let w = conntrack_warning(&f, Some(true), 60, 10, false, Some(1)).unwrap();
    assert!(w.contains("nf_conntrack_tcp_loose is 1 here: the first packet after that is picked up as a new flow"), "{w}");
    let off = conntrack_facts(est, Some(s(30)), Some(false), 60, 10);
    let w = conntrack_warning(&off, Some(false), 60, 10, false, None).unwrap();
    assert!(w.contains("but keepalive is off:"), "{w}");
}
