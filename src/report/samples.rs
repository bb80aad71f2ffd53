//! One event of every kind (and the variants a renderer treats differently), for
//! the renderers' snapshot tests. The `match` in [`kind_name_is_covered`] is
//! exhaustive: a new event kind does not compile until it is listed there, and
//! the test then fails until it has a sample here.

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use crate::model::event::{Bound, Certainty, Path};
use crate::model::event::{
    ConfigFacts, ConntrackFacts, EndFacts, Event, EventKind, IdleLimitFacts, OutageSummary,
    Outcome, Prediction, TuneFacts, WatchFacts,
};
use crate::model::predict::Effective;
use crate::model::settings::{Source, Sources};

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("sample address")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn read_back() -> ConfigFacts {
    Effective {
        keepalive: true,
        idle_s: 5,
        intvl_s: 3,
        cnt: 3,
        user_timeout_ms: 0,
    }
    .facts(15)
}

fn inferred() -> ConfigFacts {
    let mut f = Effective {
        keepalive: true,
        idle_s: 3,
        intvl_s: 1,
        cnt: 9,
        user_timeout_ms: 0,
    }
    .facts(15);
    f.sources = Sources {
        keepalive: Source::KernelTimer,
        idle_s: Source::KernelTimer,
        intvl_s: Source::KernelTimer,
        cnt: Source::SystemDefault,
        user_timeout_ms: Source::Assumed,
    };
    f
}

fn with_user_timeout() -> ConfigFacts {
    Effective {
        keepalive: true,
        idle_s: 2,
        intvl_s: 1,
        cnt: 3,
        user_timeout_ms: 6500,
    }
    .facts(15)
}

fn keepalive_off() -> ConfigFacts {
    Effective {
        keepalive: false,
        idle_s: 7200,
        intvl_s: 75,
        cnt: 9,
        user_timeout_ms: 0,
    }
    .facts(15)
}

fn timeout_end() -> EndFacts {
    EndFacts::new(
        Outcome::Timeout,
        Some("ETIMEDOUT".into()),
        "Connection timed out".into(),
        Some(14.303),
        Some(14.0),
    )
}

fn zero_window_end() -> EndFacts {
    let mut e = EndFacts::new(
        Outcome::Timeout,
        Some("ETIMEDOUT".into()),
        "Connection timed out; the peer stopped reading (zero window, 5 window probe(s)): \
         the user timeout ended it"
            .into(),
        Some(1.004),
        Some(0.966),
    );
    e.bound = Some(Bound::UserTimeout);
    e.path = Some(Path::ZeroWindow);
    e
}

fn syn_timeout_end() -> EndFacts {
    let mut e = EndFacts::new(
        Outcome::ConnectFailed,
        Some("ETIMEDOUT".into()),
        "connect to 198.18.0.2:7000 failed: Connection timed out: the user timeout (3000ms) \
         ended the attempt after 2 SYN retransmission(s)"
            .into(),
        None,
        None,
    );
    e.bound = Some(Bound::UserTimeout);
    e
}

fn expect_missed() -> EndFacts {
    let mut e = EndFacts::new(
        Outcome::Reset,
        Some("ECONNRESET".into()),
        "Connection reset by peer".into(),
        Some(0.2),
        Some(14.0),
    );
    e.expected = Some("timeout".into());
    e.set_verdict(Some("expected timeout, got reset".into()));
    e
}

fn watched_end() -> EndFacts {
    let mut e = EndFacts::new(Outcome::Eof, None, "the peer closed".into(), None, None);
    e.inferred = Some(true);
    e.evidence = Some("the socket was in CLOSE_WAIT at the last dump".into());
    e.certainty = Some(Certainty::Certain);
    e
}

fn ambiguous_end() -> EndFacts {
    let mut e = EndFacts::new(
        Outcome::Ambiguous,
        None,
        "ended between two dumps: a normal close or a reset".into(),
        Some(2.5),
        Some(6.0),
    );
    e.inferred = Some(true);
    e.evidence = Some("the socket vanished between two dumps".into());
    e.certainty = Some(Certainty::Ambiguous);
    e.possible = Some(vec![Outcome::Eof, Outcome::Alive, Outcome::Reset]);
    e
}

fn reconnect_summary() -> EndFacts {
    let mut e = EndFacts::new(Outcome::Alive, None, "--for 20s elapsed".into(), None, None);
    e.outages = Some(OutageSummary {
        outages: 2,
        detect_min_s: Some(4.07),
        detect_median_s: Some(4.085),
        detect_max_s: Some(4.1),
        downtime_s: 9.5,
        observed_s: 20.0,
        availability: 0.525,
    });
    e
}

fn idle_limit_end() -> EndFacts {
    let mut e = EndFacts::new(
        Outcome::LimitFound,
        None,
        "idle limit 11.1s +-0.9s".into(),
        None,
        None,
    );
    e.idle_limit = Some(IdleLimitFacts {
        idle_limit_s: Some(11.1),
        resolution_s: Some(0.9),
        direction: Some("both"),
        drop_mode: Some("silent"),
        drops: [(
            "out",
            crate::model::event::DropFacts {
                mode: "silent",
                by: "path",
                idle_s: 12.6,
                client_saw: "timeout",
                listener_saw: None,
            },
        )]
        .into_iter()
        .collect(),
        recommended_idle_s: Some(6),
        recommended_intvl_s: Some(3),
        recommended_cnt: Some(3),
        recommended_heartbeat_s: None,
        recommended_detect_s: Some(15.0),
        matches_paths: Vec::new(),
        below_rfc5382: Some(true),
        directions_tested: "both",
        max_s: 3600.0,
        rounds: 1,
        flows: 16,
        bytes_sent: 368,
        verified: Some(true),
        verify_idle_s: Some(6),
        verify_hold_s: Some(19.0),
    });
    e
}

/// Every event kind, each stamped on its own line of the run.
pub fn one_of_each() -> Vec<Event> {
    let kinds = vec![
        EventKind::Listening {
            local: addr("127.0.0.1:7000"),
            max_conns: 1024,
        },
        EventKind::Refused {
            peer: addr("127.0.0.1:40000"),
            reason: "--max-conns 1 reached".into(),
        },
        EventKind::Connected {
            local: addr("127.0.0.1:40001"),
            peer: addr("127.0.0.1:7000"),
        },
        EventKind::Config(read_back()),
        EventKind::Config(with_user_timeout()),
        EventKind::Config(keepalive_off()),
        EventKind::Config(inferred()),
        EventKind::Idle { since: ms(12) },
        EventKind::ProbeWindow {
            due: ms(5012),
            dead_at: Some(ms(14012)),
        },
        EventKind::Probe {
            n: 1,
            due: ms(5012),
            answered: false,
        },
        EventKind::Probe {
            n: 2,
            due: ms(6012),
            answered: false,
        },
        EventKind::Probe {
            n: 1,
            due: ms(8012),
            answered: true,
        },
        EventKind::ProbeAcked { n: 1 },
        EventKind::Retransmit { n: 2, unacked: 1 },
        EventKind::Prediction(
            Prediction {
                path: Path::Idle,
                since: ms(1020),
                dead_at: Some(ms(23_020)),
                detect_s: None,
                late_by_up_to: ms(520),
                bound: Bound::UserTimeout,
                probes: 1,
                explain: "1 keepalive probe(s) from 11.000s after the last contact, every 11s, then the user timeout \
                          (5000ms since the last contact) ends it at a firing"
                    .into(),
                restated: false,
            }
            .with_detect(),
        ),
        EventKind::Prediction(
            Prediction {
                path: Path::Idle,
                since: ms(2020),
                dead_at: Some(ms(24_020)),
                detect_s: None,
                late_by_up_to: ms(520),
                bound: Bound::UserTimeout,
                probes: 1,
                explain: "1 keepalive probe(s) from 11.000s after the last contact, every 11s, then the user timeout \
                          (5000ms since the last contact) ends it at a firing"
                    .into(),
                restated: true,
            }
            .with_detect(),
        ),
        EventKind::Prediction(
            Prediction {
                path: Path::ZeroWindow,
                since: ms(3296),
                dead_at: Some(ms(4262)),
                detect_s: None,
                late_by_up_to: ms(36),
                bound: Bound::UserTimeout,
                probes: 0,
                explain: "the peer stopped reading: the user timeout (4000ms) ends it, counted \
                          from the first window probe 3.034s before the last contact, answered or not"
                    .into(),
                restated: false,
            }
            .with_detect(),
        ),
        EventKind::ZeroWindow {
            unsent: Some(43_440),
            probe_due: ms(254),
        },
        EventKind::WindowProbe {
            n: 2,
            due: ms(674),
            unanswered: 1,
        },
        EventKind::WindowProbeAcked { n: 3 },
        EventKind::WindowOpen {
            after: ms(850),
            probes: 3,
        },
        EventKind::Connecting {
            peer: addr("198.18.0.2:7000"),
            deadline: ms(3001),
            bound: Bound::UserTimeout,
            syn_retries: 6,
            retransmits: 2,
        },
        EventKind::SynRetransmit {
            n: 1,
            due: ms(1001),
        },
        EventKind::Data {
            bytes_in: 5,
            bytes_out: 1024,
        },
        EventKind::Heartbeat { seq: 7 },
        EventKind::HeartbeatReply {
            seq: 7,
            rtt: Duration::from_micros(153),
            reply: None,
        },
        EventKind::HeartbeatReply {
            seq: 8,
            rtt: Duration::from_micros(201),
            reply: Some("+PONG\\r\\n".into()),
        },
        EventKind::Down {
            n: 1,
            outcome: Outcome::Timeout,
            errno: Some("ETIMEDOUT".into()),
            detect_s: Some(4.081),
        },
        EventKind::Up {
            n: 1,
            downtime: ms(5120),
        },
        EventKind::Warning {
            message: "probe #2 went out 0.5s after it was due".into(),
        },
        EventKind::Watched(WatchFacts {
            local: addr("127.0.0.1:6379"),
            peer: addr("127.0.0.1:40002"),
            pid: Some(4242),
            process: Some("redis-server".into()),
            uid: 0,
            inode: 123456,
            timer: "keepalive",
            timer_expires_ms: 2500,
            keepalive: Some(true),
            idle_s: 3,
            intvl_s: 1,
            cnt: 3,
            idle_source: Source::ReadBack.name(),
            intvl_source: Source::ReadBack.name(),
            cnt_source: Source::ReadBack.name(),
            user_timeout_ms: 0,
            user_timeout_source: Source::ReadBack.name(),
            keepalive_source: Source::ReadBack.name(),
            settings_read: true,
            settings_unread_reason: None,
            last_contact_ago_s: 0.4,
            probes_out: 0,
            settle_s: None,
            conntrack: Some(ConntrackFacts {
                state: "ESTABLISHED",
                timeout_s: 431_999,
                established_timeout_s: Some(432_000),
                keepalive_after_expiry: false,
            }),
            netns: None,
            owner_unknown: None,
        }),
        EventKind::Tuned(TuneFacts {
            pid: 4242,
            process: Some("python3".into()),
            state: "established",
            local: addr("127.0.0.1:40003"),
            peer: Some(addr("127.0.0.1:7000")),
            before: Some(keepalive_off()),
            after: Some(read_back()),
            changed: vec![
                "TCP_KEEPCNT",
                "TCP_KEEPINTVL",
                "TCP_KEEPIDLE",
                "SO_KEEPALIVE",
            ],
            dry_run: false,
            error: None,
            notes: vec![],
        }),
        EventKind::Tuned(TuneFacts {
            pid: 4243,
            process: None,
            state: "listening",
            local: addr("0.0.0.0:7001"),
            peer: None,
            before: None,
            after: None,
            changed: vec![],
            dry_run: true,
            error: Some("not permitted to open the sockets of PID 4243".into()),
            notes: vec![],
        }),
        EventKind::End(timeout_end()),
        EventKind::End(zero_window_end()),
        EventKind::End(syn_timeout_end()),
        EventKind::End(expect_missed()),
        EventKind::End(watched_end()),
        EventKind::End(ambiguous_end()),
        EventKind::End(reconnect_summary()),
        EventKind::Scenario {
            name: "cable-pull",
            stands_for: "the cable is pulled: nothing comes back",
            fault: "loopback link down",
            when: "just after the first answered keepalive probe".into(),
        },
        EventKind::Fault {
            scenario: "cable-pull",
            action: "loopback link down",
        },
        EventKind::IdleRound {
            round: 1,
            flows: 16,
            shortest: ms(1800),
            longest: ms(3_600_000),
        },
        EventKind::IdleCheck {
            round: 1,
            direction: "out",
            idle: ms(12600),
            result: "dropped",
            drop_mode: Some("silent"),
            by: Some("path"),
            client_saw: Some("timeout"),
            listener_saw: None,
            rtt: Duration::from_micros(85),
            keepalive_idle_s: None,
        },
        EventKind::End(idle_limit_end()),
        EventKind::Inferred {
            what: "idle",
            value: "1s".into(),
            exact: true,
            evidence: "1.027s from the last contact to probe 1".into(),
        },
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let at = ms(1000 * i as u64 + 1);
            Event {
                at,
                wall: UNIX_EPOCH + Duration::from_secs(1_795_000_000) + at,
                conn: 1,
                kind,
            }
        })
        .collect()
}

/// The name of every kind; the match is exhaustive on purpose (see the module doc).
pub fn kind_name_is_covered(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Listening { .. }
        | EventKind::Refused { .. }
        | EventKind::Connected { .. }
        | EventKind::Config(_)
        | EventKind::Idle { .. }
        | EventKind::ProbeWindow { .. }
        | EventKind::Probe { .. }
        | EventKind::ProbeAcked { .. }
        | EventKind::Retransmit { .. }
        | EventKind::Prediction(_)
        | EventKind::ZeroWindow { .. }
        | EventKind::WindowOpen { .. }
        | EventKind::WindowProbe { .. }
        | EventKind::WindowProbeAcked { .. }
        | EventKind::Connecting { .. }
        | EventKind::SynRetransmit { .. }
        | EventKind::Data { .. }
        | EventKind::Heartbeat { .. }
        | EventKind::HeartbeatReply { .. }
        | EventKind::Down { .. }
        | EventKind::Up { .. }
        | EventKind::Warning { .. }
        | EventKind::End(_)
        | EventKind::Watched(_)
        | EventKind::Scenario { .. }
        | EventKind::Fault { .. }
        | EventKind::Tuned(_)
        | EventKind::IdleRound { .. }
        | EventKind::IdleCheck { .. }
        | EventKind::Inferred { .. } => kind.name(),
    }
}

/// How many kinds [`kind_name_is_covered`] lists: keep in step with it.
pub const KINDS: usize = 30;
