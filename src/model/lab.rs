//! The lab's scenario catalogue, as data: for each way a peer dies, the real event
//! it stands for, the fault the lab injects to reproduce it, when, with which
//! defaults, how it should end and what the detection time is predicted from.
//! `cmd/lab.rs` carries the faults out; `tcpalive lab list` prints this table.

use std::time::Duration;

use crate::model::event::Outcome;

/// What the lab does at the fault moment. The connector is the connection under
/// test (conn 1); the peer is the accepted end (conn 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing: the peer stays alive and answers.
    None,
    /// Loopback link down and left down.
    LinkDown,
    /// Link down, the peer's socket aborted (its RST is lost on the down link),
    /// link up again: the peer's kernel no longer knows the connection.
    Vanish,
    /// The peer closes (FIN).
    PeerClose,
    /// The peer aborts (RST, SO_LINGER 0).
    PeerAbort,
    /// The peer stops answering heartbeats; its kernel still ACKs.
    PeerMute,
    /// The peer stops reading while the connector keeps writing.
    PeerStopsReading,
    /// Link down, and the connector keeps writing: data is in flight.
    LinkDownWhileSending,
    /// Link down, then up again after [`FLAP_DOWN`]: a brief outage.
    LinkFlap,
}

/// How long `flap` keeps the link down: two probe intervals at the defaults, less
/// than the cnt x intvl the kernel tolerates.
pub const FLAP_DOWN: Duration = Duration::from_millis(1500);

/// When the fault is injected unless `--fault-at` says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Just after the connector's first keepalive probe is answered: the
    /// connection is proven alive, then it dies.
    FirstAnsweredProbe,
    /// Just after the first heartbeat reply (heartbeats keep the connection busy,
    /// so no keepalive probe goes out).
    FirstHeartbeatReply,
    /// Never (the scenario injects nothing).
    Never,
}

/// What the detection time is predicted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prediction {
    /// The model's own prediction, as `connect` prints it (keepalive schedule, user
    /// timeout, retransmission path, heartbeat timeout).
    Model,
    /// The first keepalive probe after the fault: it meets the RST.
    NextProbe,
    /// The fault itself: the peer's FIN or RST arrives at once.
    AtFault,
}

/// Settings a scenario needs to show its event in seconds; the user's flags win.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub heartbeat: Option<Duration>,
    pub user_timeout: Option<Duration>,
    pub run_for: Option<Duration>,
    /// The connector's writes from the fault on: (every, bytes).
    pub send: Option<(Duration, usize)>,
}

const NO_DEFAULTS: Defaults = Defaults {
    heartbeat: None,
    user_timeout: None,
    run_for: None,
    send: None,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    pub name: &'static str,
    /// The real event this reproduces.
    pub stands_for: &'static str,
    /// What the lab does, in words.
    pub fault: &'static str,
    pub action: Action,
    pub trigger: Trigger,
    /// The outcome with the scenario's defaults.
    pub expect: Outcome,
    pub prediction: Prediction,
    pub defaults: Defaults,
}

/// Keepalive defaults of every scenario (whole-second minimums, so each runs in
/// seconds): idle 1 s, intvl 1 s, cnt 3.
pub const DEFAULT_IDLE_S: u32 = 1;
pub const DEFAULT_INTVL_S: u32 = 1;
pub const DEFAULT_CNT: u32 = 3;

pub const SCENARIOS: [Scenario; 9] = [
    Scenario {
        name: "alive",
        stands_for: "a healthy idle connection: the peer answers every keepalive probe",
        fault: "none",
        action: Action::None,
        trigger: Trigger::Never,
        expect: Outcome::Alive,
        prediction: Prediction::Model,
        defaults: Defaults {
            run_for: Some(Duration::from_millis(3500)),
            ..NO_DEFAULTS
        },
    },
    Scenario {
        name: "cable-pull",
        stands_for: "the cable is pulled, the peer host loses power or a firewall starts \
                     dropping: nothing comes back",
        fault: "loopback link down: every segment is dropped",
        action: Action::LinkDown,
        trigger: Trigger::FirstAnsweredProbe,
        expect: Outcome::Timeout,
        prediction: Prediction::Model,
        defaults: NO_DEFAULTS,
    },
    Scenario {
        name: "flap",
        stands_for: "a brief outage (a link flap, a switch reboot, a Wi-Fi roam) shorter than \
                     cnt x intvl: unanswered probes, then an answered one, and the connection \
                     survives",
        fault: "loopback link down for 1.5 s, then up",
        action: Action::LinkFlap,
        trigger: Trigger::FirstAnsweredProbe,
        expect: Outcome::Alive,
        prediction: Prediction::Model,
        defaults: Defaults {
            run_for: Some(Duration::from_secs(5)),
            ..NO_DEFAULTS
        },
    },
    Scenario {
        name: "reboot",
        stands_for: "the peer host crashes and reboots: its kernel forgot the connection and \
                     answers the next probe with RST",
        fault: "link down, the peer's socket aborted (its RST is lost), link up",
        action: Action::Vanish,
        trigger: Trigger::FirstAnsweredProbe,
        expect: Outcome::Reset,
        prediction: Prediction::NextProbe,
        defaults: NO_DEFAULTS,
    },
    Scenario {
        name: "exits",
        stands_for: "the peer process exits or is killed on a live host: its kernel sends FIN",
        fault: "the peer closes its socket (FIN)",
        action: Action::PeerClose,
        trigger: Trigger::FirstAnsweredProbe,
        expect: Outcome::Eof,
        prediction: Prediction::AtFault,
        defaults: NO_DEFAULTS,
    },
    Scenario {
        name: "aborts",
        stands_for: "the peer application aborts the connection (SO_LINGER 0, a proxy's reset)",
        fault: "the peer closes with SO_LINGER 0 (RST)",
        action: Action::PeerAbort,
        trigger: Trigger::FirstAnsweredProbe,
        expect: Outcome::Reset,
        prediction: Prediction::AtFault,
        defaults: NO_DEFAULTS,
    },
    Scenario {
        name: "hung",
        stands_for: "the peer application hangs (deadlock, GC pause, stopped process) while its \
                     kernel keeps ACKing: only a heartbeat notices",
        fault: "the peer stops answering heartbeats",
        action: Action::PeerMute,
        trigger: Trigger::FirstHeartbeatReply,
        expect: Outcome::HeartbeatTimeout,
        prediction: Prediction::Model,
        defaults: Defaults {
            heartbeat: Some(Duration::from_secs(1)),
            ..NO_DEFAULTS
        },
    },
    Scenario {
        name: "not-reading",
        stands_for: "the peer application stops reading while we keep sending: its receive \
                     window closes (zero window), its kernel answers every window probe",
        fault: "the peer stops reading; the connector writes 64 KiB every 10 ms",
        action: Action::PeerStopsReading,
        trigger: Trigger::FirstAnsweredProbe,
        expect: Outcome::Timeout,
        prediction: Prediction::Model,
        defaults: Defaults {
            user_timeout: Some(Duration::from_secs(3)),
            send: Some((Duration::from_millis(10), 64 * 1024)),
            ..NO_DEFAULTS
        },
    },
    Scenario {
        name: "busy",
        stands_for: "the cable is pulled while data is in flight: keepalive is suspended, \
                     retransmissions and the user timeout decide",
        fault: "loopback link down; the connector writes 64 bytes every second",
        action: Action::LinkDownWhileSending,
        trigger: Trigger::FirstAnsweredProbe,
        expect: Outcome::Timeout,
        prediction: Prediction::Model,
        defaults: Defaults {
            user_timeout: Some(Duration::from_secs(3)),
            send: Some((Duration::from_secs(1), 64)),
            ..NO_DEFAULTS
        },
    },
];

pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

pub fn names() -> Vec<&'static str> {
    SCENARIOS.iter().map(|s| s.name).collect()
}

impl Trigger {
    /// "just after the first answered keepalive probe" (`n` = 1), "... the 2nd ...",
    /// for the timeline's scenario line and `lab list`.
    pub fn describe(self, n: u32) -> String {
        let nth = if n <= 1 {
            "first".to_string()
        } else {
            ordinal(n)
        };
        match self {
            Trigger::FirstAnsweredProbe => format!("just after the {nth} answered keepalive probe"),
            Trigger::FirstHeartbeatReply => format!("just after the {nth} heartbeat reply"),
            Trigger::Never => "never".to_string(),
        }
    }
}

/// "2nd", "3rd", "11th".
fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        let names = names();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[i + 1..].contains(n), "{n} twice");
            assert_eq!(find(n).map(|s| s.name), Some(*n));
        }
        assert!(find("list").is_none(), "'list' is the catalogue command");
    }

    #[test]
    fn every_fault_has_a_moment_and_every_moment_a_fault() {
        for s in SCENARIOS {
            assert_eq!(
                s.action == Action::None,
                s.trigger == Trigger::Never,
                "{}",
                s.name
            );
            // A scenario expected to stay alive must end by itself.
            if s.expect == Outcome::Alive {
                assert!(s.defaults.run_for.is_some(), "{}", s.name);
            }
            // Heartbeat-triggered faults need heartbeats on by default.
            if s.trigger == Trigger::FirstHeartbeatReply {
                assert!(s.defaults.heartbeat.is_some(), "{}", s.name);
            }
        }
    }

    #[test]
    fn triggers_name_their_answer() {
        let t = Trigger::FirstAnsweredProbe;
        assert_eq!(
            t.describe(1),
            "just after the first answered keepalive probe"
        );
        assert_eq!(t.describe(2), "just after the 2nd answered keepalive probe");
        assert_eq!(ordinal(11), "11th");
        assert_eq!(ordinal(23), "23rd");
    }

    #[test]
    fn data_in_flight_scenarios_are_bounded_by_a_user_timeout() {
        // Without one, a busy connection takes tcp_retries2's ~15 minutes.
        for s in SCENARIOS.iter().filter(|s| s.defaults.send.is_some()) {
            assert!(s.defaults.user_timeout.is_some(), "{}", s.name);
        }
    }
}
