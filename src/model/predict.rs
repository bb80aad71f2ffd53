//! The prediction: when Linux notices a dead peer, from the settings a socket holds.
//!
//! The model follows Linux's `tcp_keepalive_timer`: the timer fires at
//! last contact + idle, then every intvl; each firing either gives up or sends one
//! more probe. Without TCP_USER_TIMEOUT it gives up once `cnt` probes are out; with
//! it, `cnt` is ignored and it gives up at the first firing where the user timeout has
//! passed since the last contact and at least one probe went out.

use std::time::Duration;

use crate::model::event::ConfigFacts;
use crate::model::schedule;
use crate::model::settings::Sources;
use crate::model::wheel::Wheel;

/// The settings themselves live in `settings` (the timers in `schedule` take them
/// too); the prediction from them is here.
pub use crate::model::settings::Effective;

/// When the kernel gives up on an idle connection whose peer stopped answering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdleSchedule {
    /// Time from the last contact to the detection.
    pub detect_after: Duration,
    /// Probes sent before giving up.
    pub probes: u32,
}

impl Effective {
    /// The idle-connection schedule, or `None` when nothing detects a dead idle peer:
    /// the kernel's keepalive timer replayed from a fresh contact
    /// ([`schedule::keepalive`]).
    pub fn idle_schedule(&self) -> Option<IdleSchedule> {
        let timer = schedule::KeepaliveTimer::fresh(self, Duration::ZERO);
        let f = schedule::keepalive(self, timer, Wheel::new(None));
        f.dead_at.map(|dead| IdleSchedule {
            detect_after: dead,
            probes: f.probes.len() as u32,
        })
    }

    /// Time from an unacknowledged send to the detection when data is in flight:
    /// the user timeout when set, else the retransmission budget of tcp_retries2.
    pub fn busy_detect_after(&self, retries2: u32) -> Duration {
        if self.user_timeout_ms != 0 {
            return Duration::from_millis(self.user_timeout_ms as u64);
        }
        retransmission_budget(retries2)
    }

    /// The `config` event's facts: the settings, the prediction and its warnings.
    pub fn facts(&self, retries2: u32) -> ConfigFacts {
        let schedule = self.idle_schedule();
        let mut warnings = Vec::new();
        let explain = match schedule {
            None if self.user_timeout_ms != 0 => {
                warnings.push(format!(
                    "keepalive is off: a dead idle peer is never detected; the user timeout \
                     ({}ms) acts only while sent data is unacknowledged",
                    self.user_timeout_ms
                ));
                "an idle dead peer is never detected (keepalive off)".to_string()
            }
            None => {
                warnings.push(
                    "keepalive is off: a dead idle peer is never detected, the connection \
                     stays ESTABLISHED until something is sent"
                        .to_string(),
                );
                "an idle dead peer is never detected (keepalive off)".to_string()
            }
            Some(s) if self.user_timeout_ms != 0 => {
                warnings.push(format!(
                    "cnt {} is ignored: with a user timeout the kernel probes every {}s until \
                     {}ms have passed since the last contact",
                    self.cnt, self.intvl_s, self.user_timeout_ms
                ));
                format!(
                    "dead peer detected {} after last contact (idle {}s + {} x intvl {}s; \
                     user timeout {}ms replaces cnt)",
                    secs_text(s.detect_after),
                    self.idle_s,
                    s.probes,
                    self.intvl_s,
                    self.user_timeout_ms
                )
            }
            Some(s) => format!(
                "dead peer detected {} after last contact (idle {}s + {} x intvl {}s)",
                secs_text(s.detect_after),
                self.idle_s,
                s.probes,
                self.intvl_s
            ),
        };
        ConfigFacts {
            keepalive: self.keepalive,
            idle_s: self.idle_s,
            intvl_s: self.intvl_s,
            cnt: self.cnt,
            user_timeout_ms: self.user_timeout_ms,
            sources: Sources::READ_BACK,
            predicted_detect_s: schedule.map(|s| s.detect_after.as_secs_f64()),
            predicted_probes: schedule.map(|s| s.probes),
            predicted_busy_detect_s: Some(self.busy_detect_after(retries2).as_secs_f64()),
            explain,
            warnings,
            predicted_detect_min_s: None,
            predicted_detect_max_s: None,
            changed: None,
        }
    }
}

/// Linux's `tcp_model_timeout` for the default RTO bounds (200 ms .. 120 s): how long
/// `retries` exponentially backed-off retransmissions take.
pub fn retransmission_budget(retries: u32) -> Duration {
    const RTO_MIN_MS: u64 = 200;
    const RTO_MAX_MS: u64 = 120_000;
    let linear_backoff_thresh = (RTO_MAX_MS / RTO_MIN_MS).ilog2();
    let ms = if retries <= linear_backoff_thresh {
        ((2u64 << retries) - 1) * RTO_MIN_MS
    } else {
        ((2u64 << linear_backoff_thresh) - 1) * RTO_MIN_MS
            + (retries - linear_backoff_thresh) as u64 * RTO_MAX_MS
    };
    Duration::from_millis(ms)
}

pub use crate::model::units::secs_text;

#[cfg(test)]
mod tests {
    use super::*;

    fn eff(idle: u32, intvl: u32, cnt: u32, uto: u32) -> Effective {
        Effective {
            keepalive: true,
            idle_s: idle,
            intvl_s: intvl,
            cnt,
            user_timeout_ms: uto,
        }
    }

    #[test]
    fn idle_plus_cnt_intervals_without_user_timeout() {
        let table = [
            (eff(5, 5, 3, 0), 20_000, 3),
            (eff(1, 1, 3, 0), 4_000, 3),
            (eff(7200, 75, 9, 0), 7_875_000, 9),
            (eff(10, 2, 1, 0), 12_000, 1),
        ];
        for (e, ms, probes) in table {
            let s = e.idle_schedule().expect("keepalive on");
            assert_eq!(s.detect_after, Duration::from_millis(ms), "{e:?}");
            assert_eq!(s.probes, probes, "{e:?}");
        }
    }

    #[test]
    fn user_timeout_replaces_cnt() {
        // docs/kernel-facts.md, "TCP_USER_TIMEOUT overrides TCP_KEEPCNT": UTO 6.5 s, idle 2,
        // intvl 1 -> 5 probes, 7 s.
        let table = [
            (eff(2, 1, 3, 6500), 7_000, 5),
            // UTO shorter than idle: still one probe, at the second firing.
            (eff(5, 5, 3, 1000), 10_000, 1),
            // UTO exactly on a firing: gives up at that firing.
            (eff(1, 1, 9, 4000), 4_000, 3),
            (eff(1, 1, 9, 4001), 5_000, 4),
        ];
        for (e, ms, probes) in table {
            let s = e.idle_schedule().expect("keepalive on");
            assert_eq!(s.detect_after, Duration::from_millis(ms), "{e:?}");
            assert_eq!(s.probes, probes, "{e:?}");
        }
    }

    #[test]
    fn keepalive_off_predicts_nothing_for_idle() {
        let mut e = eff(1, 1, 3, 0);
        e.keepalive = false;
        assert_eq!(e.idle_schedule(), None);
        let facts = e.facts(15);
        assert_eq!(facts.predicted_detect_s, None);
        assert!(facts.warnings[0].contains("keepalive is off"));
    }

    #[test]
    fn probe_due_times() {
        let e = eff(5, 2, 3, 0);
        assert_eq!(e.probe_due(1), Duration::from_secs(5));
        assert_eq!(e.probe_due(3), Duration::from_secs(9));
    }

    #[test]
    fn busy_connection_budget() {
        assert_eq!(
            eff(1, 1, 3, 6000).busy_detect_after(15),
            Duration::from_secs(6)
        );
        // The kernel's documented figure for tcp_retries2 = 15: 924.6 s.
        assert_eq!(retransmission_budget(15), Duration::from_millis(924_600));
        assert_eq!(retransmission_budget(3), Duration::from_millis(3_000));
    }

    #[test]
    fn explanation_names_the_formula() {
        let f = eff(5, 5, 3, 0).facts(15);
        assert_eq!(
            f.explain,
            "dead peer detected 20s after last contact (idle 5s + 3 x intvl 5s)"
        );
        assert_eq!(f.predicted_detect_s, Some(20.0));
        let f = eff(2, 1, 3, 6500).facts(15);
        assert!(f.warnings[0].starts_with("cnt 3 is ignored"));
    }
}
