//! The lab's scenario catalogue, as data: for each way a peer dies, the real event
//! it stands for, the fault the lab injects to reproduce it, when, with which
//! defaults, how it should end and what the detection time is predicted from.
//! What the lab's run works out from what it saw ([`Arming`], [`Injected`]) is
//! here too. `engine::lab` carries the faults out; `tcpalive lab list` prints the
//! table.

use std::time::Duration;

use crate::model::event::{EventKind, Outcome};

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

/// When the fault comes, as the timeline's scenario line says it.
pub fn fault_when(trigger: Trigger, fault_at: Option<Duration>, answers: u32) -> String {
    match (fault_at, trigger) {
        (_, Trigger::Never) => "never".to_string(),
        (Some(at), _) => format!("at {:.3}s (--fault-at)", at.as_secs_f64()),
        (None, t) => t.describe(answers),
    }
}

/// What the lab follows of the connector's events before its fault: the answers
/// counted toward the trigger, and whether the last contact was an answered probe.
#[derive(Debug, Clone)]
pub struct Arming {
    trigger: Trigger,
    needed: u32,
    answers: u32,
    /// Still counting: the trigger has not fired and no `--fault-at` was given.
    armed: bool,
    probe_answered_last: bool,
    intvl: Duration,
}

impl Arming {
    /// `armed` is false when `--fault-at` fixes the moment instead.
    pub fn new(trigger: Trigger, needed: u32, armed: bool) -> Arming {
        Arming {
            trigger,
            needed,
            answers: 0,
            armed: armed && trigger != Trigger::Never,
            probe_answered_last: false,
            intvl: Duration::from_secs(1),
        }
    }

    /// Folds one connector event in; true for the answer that fires the trigger
    /// (once).
    pub fn observe(&mut self, e: &EventKind) -> bool {
        match e {
            EventKind::Config(f) => self.intvl = Duration::from_secs(f.intvl_s.into()),
            EventKind::ProbeAcked { .. } => self.probe_answered_last = true,
            EventKind::Data { .. } | EventKind::HeartbeatReply { .. } => {
                self.probe_answered_last = false
            }
            _ => {}
        }
        let answer = matches!(
            (self.trigger, e),
            (Trigger::FirstAnsweredProbe, EventKind::ProbeAcked { .. })
                | (
                    Trigger::FirstHeartbeatReply,
                    EventKind::HeartbeatReply { .. }
                )
        );
        if !(answer && self.armed) {
            return false;
        }
        self.answers += 1;
        if self.answers >= self.needed {
            self.armed = false;
            return true;
        }
        false
    }

    /// The fault as the prediction needs it: the connector's last contact and its
    /// next probe when the fault came. After an answered probe the kernel arms
    /// the next probe intvl after it, even when idle is shorter than intvl, so
    /// the session's `due` (idle after the last contact) is then too early.
    pub fn injected(&self, at: Duration, last_contact: Duration, due: Duration) -> Injected {
        let next_probe = if self.probe_answered_last {
            due.max(last_contact.saturating_add(self.intvl))
        } else {
            due
        };
        Injected {
            at,
            last_contact,
            next_probe,
        }
    }
}

/// What the lab remembers of its fault, for the scenario's prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injected {
    pub at: Duration,
    /// The connector's last contact with the peer when the fault came.
    pub last_contact: Duration,
    /// When the connector's next keepalive probe goes out (reboot: it meets the RST).
    pub next_probe: Duration,
}

impl Injected {
    /// The detection time the scenario predicts, after the connector's
    /// `last_contact` at its end; `None` leaves the model's prediction. A
    /// rebooted peer's RST is met by the next probe after the fault; a FIN or RST
    /// from the peer is noticed at the fault itself, measured from the same last
    /// contact as the detection (a FIN is itself a contact).
    pub fn predicted_detect(
        &self,
        prediction: Prediction,
        last_contact: Duration,
    ) -> Option<Duration> {
        match prediction {
            Prediction::Model => None,
            Prediction::AtFault => Some(self.at.saturating_sub(last_contact)),
            Prediction::NextProbe => Some(self.next_probe.saturating_sub(self.last_contact)),
        }
    }
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

    fn probe_acked() -> EventKind {
        EventKind::ProbeAcked { n: 1 }
    }

    #[test]
    fn fault_when_names_its_source() {
        let t = Trigger::FirstAnsweredProbe;
        assert_eq!(fault_when(Trigger::Never, Some(secs(2)), 1), "never");
        assert_eq!(
            fault_when(t, Some(Duration::from_millis(2500)), 1),
            "at 2.500s (--fault-at)"
        );
        assert_eq!(fault_when(t, None, 2), t.describe(2));
    }

    #[test]
    fn arming_fires_once_on_the_nth_answer() {
        let mut a = Arming::new(Trigger::FirstAnsweredProbe, 2, true);
        assert!(!a.observe(&probe_acked()));
        assert!(a.observe(&probe_acked()));
        assert!(!a.observe(&probe_acked()), "fires once");
    }

    #[test]
    fn arming_ignores_other_answers_and_fault_at() {
        let mut a = Arming::new(Trigger::FirstHeartbeatReply, 1, true);
        assert!(!a.observe(&probe_acked()));
        let mut fixed = Arming::new(Trigger::FirstAnsweredProbe, 1, false);
        assert!(
            !fixed.observe(&probe_acked()),
            "--fault-at fixes the moment"
        );
        let mut never = Arming::new(Trigger::Never, 1, true);
        assert!(!never.observe(&probe_acked()));
    }

    #[test]
    fn next_probe_after_an_answered_probe_waits_intvl() {
        let mut a = Arming::new(Trigger::FirstAnsweredProbe, 1, true);
        // No answered probe: the session's due time stands.
        assert_eq!(a.injected(secs(5), secs(3), secs(4)).next_probe, secs(4));
        a.observe(&probe_acked());
        // Default intvl 1 s: due 3.5 s is before last contact 3 s + 1 s.
        let i = a.injected(secs(5), secs(3), Duration::from_millis(3500));
        assert_eq!(i.next_probe, secs(4));
        assert_eq!(i.last_contact, secs(3));
    }

    #[test]
    fn predictions_measure_from_the_right_contact() {
        let i = Injected {
            at: secs(10),
            last_contact: secs(8),
            next_probe: secs(12),
        };
        assert_eq!(i.predicted_detect(Prediction::Model, secs(9)), None);
        assert_eq!(
            i.predicted_detect(Prediction::AtFault, secs(9)),
            Some(secs(1))
        );
        assert_eq!(
            i.predicted_detect(Prediction::NextProbe, secs(11)),
            Some(secs(4))
        );
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }
}
