//! When `watch` reads a followed connection again, without I/O.
//!
//! A full sock_diag dump walks every socket of the namespace (about 2 us of
//! mostly kernel CPU per socket), so `watch` dumps only to discover new
//! connections, at [`discovery_period`]: never more often than `--interval` and
//! never more than [`DISCOVERY_BUDGET`] of one core. Between dumps each followed
//! connection is looked up by itself (an exact sock_diag request: one hash
//! lookup in the kernel) only when its own kernel timer says something can
//! happen ([`Lookups::next`]): the keepalive or zero-window probe timer's expiry,
//! read from the socket, then in short steps while the timer wheel may still
//! fire it late ([`Wheel::late_bound`]); a pending retransmission at its expiry
//! (at most once per `--interval` while the connection makes progress); and the
//! times the caller adds (the end of a new connection's settling, the predicted
//! give-up). A connection with no timer pending can change only by traffic or
//! its owner's doing: the next dump sees that, and its end arrives as a destroy
//! notification.

use std::time::Duration;

use crate::model::wheel::Wheel;

/// The share of one core that discovery dumps may take: the next dump waits
/// `1 / DISCOVERY_BUDGET` times the CPU time the last one took.
pub const DISCOVERY_BUDGET: f64 = 0.01;
/// Look a socket up this long after its timer's expiry: the kernel runs timers
/// from the tick after they are due.
pub const DUE_SLACK: Duration = Duration::from_millis(3);
/// The shortest step between look-ups while a timer is late.
pub const MIN_STEP: Duration = Duration::from_millis(10);
/// The longest step while the wheel may still fire a late timer: an event is
/// reported at most this long (plus the look-up) after the kernel acted, well
/// inside the 100 ms promised.
pub const MAX_STEP: Duration = Duration::from_millis(50);
/// Past the wheel's bound (plus this), a timer still shown as due is not going to
/// fire soon (the host is starved, or the reading is stale): looked up again
/// only at [`STUCK_STEP`].
pub const LATE_MARGIN: Duration = Duration::from_millis(100);
pub const STUCK_STEP: Duration = Duration::from_secs(1);
/// Readings of one arming of a timer agree within this (jiffies, millisecond
/// rounding); a due time that moves more is a new arming.
const SAME_ARMING: Duration = Duration::from_millis(10);

/// The time between two discovery dumps: `--interval`, or longer when the last
/// dump's CPU time would otherwise exceed [`DISCOVERY_BUDGET`].
pub fn discovery_period(interval: Duration, last_cost: Duration) -> Duration {
    interval.max(last_cost.div_f64(DISCOVERY_BUDGET))
}

/// How soon a connection opened now joins, at most: one discovery period, plus
/// the dump that sees it.
pub fn join_latency(period: Duration, pass: Duration) -> Duration {
    period.saturating_add(pass)
}

/// The timer a reading shows pending on the socket (`idiag_timer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    None,
    Keepalive,
    ZeroWindow,
    Retransmit,
    /// TIME_WAIT and anything else: nothing to follow.
    Other,
}

/// One connection's look-up schedule: what its last readings said about its
/// pending timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookups {
    wheel: Wheel,
    kind: Pending,
    /// Run time at which the pending timer is due (its nominal expiry), and how
    /// much earlier than the truth it may be (a dump's readings are stamped with
    /// the time before the dump; the kernel read the socket up to the dump's
    /// length later).
    due: Option<Duration>,
    due_uncertainty: Duration,
    /// At most the timer's delay when armed: it was armed after the reading
    /// before the one that first showed it. It sets the wheel's lateness bound
    /// (an upper bound, so a late timer is never given up on too soon).
    armed: Duration,
    /// Run time of the last reading.
    seen_at: Option<Duration>,
}

impl Lookups {
    pub fn new(wheel: Wheel) -> Lookups {
        Lookups {
            wheel,
            kind: Pending::None,
            due: None,
            due_uncertainty: Duration::ZERO,
            armed: Duration::ZERO,
            seen_at: None,
        }
    }

    /// A reading taken at `at` (a dump's or a look-up's; `uncertainty`: how much
    /// later the kernel may have read it): the timer pending and its time to
    /// expiry. The kernel shows a timer already due but not yet run as expiring
    /// in 0: its due time stays the one read before. Readings of one arming
    /// agree within their uncertainty; the most certain due time is kept.
    pub fn seen(&mut self, at: Duration, kind: Pending, expires: Duration, uncertainty: Duration) {
        let prev = self.seen_at.replace(at);
        if !matches!(
            kind,
            Pending::Keepalive | Pending::ZeroWindow | Pending::Retransmit
        ) {
            self.kind = kind;
            self.due = None;
            return;
        }
        let due = at.saturating_add(expires);
        let tolerance = SAME_ARMING
            .saturating_add(self.due_uncertainty)
            .saturating_add(uncertainty);
        let same_arming = self.kind == kind
            && self
                .due
                .is_some_and(|d| d.abs_diff(due) <= tolerance || expires.is_zero());
        self.kind = kind;
        if same_arming {
            if !expires.is_zero() && uncertainty <= self.due_uncertainty {
                self.due = Some(due);
                self.due_uncertainty = uncertainty;
            }
        } else {
            self.due = Some(due);
            self.due_uncertainty = uncertainty;
            // Armed after the previous reading; without one, assumed armed at
            // most twice as far ahead as what is left.
            self.armed = match prev {
                Some(p) if p < at => due.saturating_sub(p),
                _ => expires.saturating_mul(2),
            }
            .max(expires);
        }
    }

    /// The pending timer and its due time, if one is pending.
    #[cfg(test)]
    pub fn due(&self) -> Option<(Pending, Duration)> {
        self.due.map(|d| (self.kind, d))
    }

    /// When to look the socket up next, decided at `now` just after a reading:
    /// by its timer, or by the earliest of `also` that is still ahead. `floor` is
    /// `--interval`: a retransmission timer (re-armed by every ACK while data
    /// flows) is not followed more often. `None`: nothing is due; the next
    /// discovery dump reads it.
    pub fn next(
        &self,
        now: Duration,
        floor: Duration,
        also: &[Option<Duration>],
    ) -> Option<Duration> {
        let timer = self.due.map(|due| {
            let after = due.saturating_add(DUE_SLACK);
            let at = if now < after {
                after
            } else {
                let late = now - due;
                let bound = self
                    .wheel
                    .late_bound(self.armed)
                    .saturating_add(LATE_MARGIN);
                let step = if late <= bound {
                    (late / 8).clamp(MIN_STEP, MAX_STEP)
                } else {
                    STUCK_STEP
                };
                now.saturating_add(step)
            };
            if self.kind == Pending::Retransmit {
                at.max(self.seen_at.unwrap_or(now).saturating_add(floor))
            } else {
                at
            }
        });
        timer
            .into_iter()
            .chain(also.iter().flatten().copied().filter(|&t| t > now))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn hz250() -> Lookups {
        Lookups::new(Wheel::new(Some(250)))
    }

    #[test]
    fn discovery_keeps_to_the_interval_until_the_budget_says_longer() {
        // A dump of a few sockets costs microseconds: the interval rules.
        assert_eq!(
            discovery_period(ms(200), Duration::from_micros(300)),
            ms(200)
        );
        // 100,000 sockets, 204.5 ms a pass: one dump every 20.45 s is 1 %.
        assert_eq!(discovery_period(ms(200), ms(204)), ms(20_400));
        assert_eq!(
            discovery_period(Duration::from_secs(60), ms(204)),
            Duration::from_secs(60)
        );
        assert_eq!(join_latency(ms(20_400), ms(300)), ms(20_700));
    }

    #[test]
    fn a_keepalive_timer_is_looked_up_just_after_its_expiry() {
        let mut l = hz250();
        l.seen(ms(1000), Pending::Keepalive, ms(4000), Duration::ZERO);
        assert_eq!(l.due(), Some((Pending::Keepalive, ms(5000))));
        assert_eq!(l.next(ms(1000), ms(200), &[]), Some(ms(5003)));
        // A later reading of the same arming moves nothing.
        l.seen(ms(2000), Pending::Keepalive, ms(3002), Duration::ZERO);
        assert_eq!(l.next(ms(2000), ms(200), &[]), Some(ms(5005)));
    }

    #[test]
    fn a_late_timer_is_stepped_for_while_the_wheel_allows_then_rarely() {
        let mut l = hz250();
        // Armed 5 s ahead: level 2 at HZ=250, up to 260 ms late.
        l.seen(ms(0), Pending::Keepalive, ms(5000), Duration::ZERO);
        // At the expiry the kernel shows 0 left; the due time stays.
        l.seen(ms(5003), Pending::Keepalive, ms(0), Duration::ZERO);
        assert_eq!(l.due(), Some((Pending::Keepalive, ms(5000))));
        assert_eq!(l.next(ms(5003), ms(200), &[]), Some(ms(5013)));
        // 160 ms late: steps of late/8 = 20 ms.
        assert_eq!(l.next(ms(5160), ms(200), &[]), Some(ms(5180)));
        // Past 260 + 100 ms the wheel would have fired it: once a second.
        assert_eq!(l.next(ms(5400), ms(200), &[]), Some(ms(6400)));
        // Fired: the kernel re-armed it for intvl (2 s).
        l.seen(ms(5410), Pending::Keepalive, ms(1990), Duration::ZERO);
        assert_eq!(l.due(), Some((Pending::Keepalive, ms(7400))));
        assert_eq!(l.next(ms(5410), ms(200), &[]), Some(ms(7403)));
    }

    #[test]
    fn steps_never_exceed_max_step() {
        // Armed 20 s ahead: level 3, up to 2.05 s late; 1 s late, late/8 would be
        // 125 ms: capped so that a firing is read within 50 ms.
        let mut l = hz250();
        l.seen(ms(0), Pending::Keepalive, ms(20_000), Duration::ZERO);
        l.seen(ms(21_000), Pending::Keepalive, ms(0), Duration::ZERO);
        assert_eq!(l.next(ms(21_000), ms(200), &[]), Some(ms(21_050)));
    }

    #[test]
    fn look_ups_per_firing_stay_few() {
        // The worst case of a 5 s timer at HZ=250 (fires 260 ms late): how many
        // look-ups find it not yet run.
        let mut l = hz250();
        l.seen(ms(0), Pending::Keepalive, ms(5000), Duration::ZERO);
        let mut now = l.next(ms(0), ms(200), &[]).expect("due");
        let mut n = 0;
        while now < ms(5260) {
            l.seen(now, Pending::Keepalive, ms(0), Duration::ZERO);
            now = l.next(now, ms(200), &[]).expect("due");
            n += 1;
        }
        assert!((10..=25).contains(&n), "{n} look-ups");
    }

    #[test]
    fn a_retransmission_timer_is_followed_at_most_once_an_interval() {
        let mut l = hz250();
        l.seen(ms(1000), Pending::Retransmit, ms(20), Duration::ZERO);
        assert_eq!(l.next(ms(1000), ms(200), &[]), Some(ms(1200)));
        // A backed-off retransmission further out is looked up at its expiry.
        l.seen(ms(1200), Pending::Retransmit, ms(1600), Duration::ZERO);
        assert_eq!(l.next(ms(1200), ms(200), &[]), Some(ms(2803)));
    }

    #[test]
    fn no_timer_means_no_look_up_unless_asked() {
        let mut l = hz250();
        l.seen(ms(1000), Pending::None, ms(0), Duration::ZERO);
        assert_eq!(l.next(ms(1000), ms(200), &[]), None);
        assert_eq!(
            l.next(ms(1000), ms(200), &[Some(ms(2000)), None]),
            Some(ms(2000))
        );
        // A time already past is not a reason to look again at once.
        assert_eq!(l.next(ms(3000), ms(200), &[Some(ms(2000))]), None);
        l.seen(ms(1000), Pending::Other, ms(0), Duration::ZERO);
        assert_eq!(l.due(), None);
    }

    #[test]
    fn an_early_dump_reading_neither_moves_the_due_time_nor_shrinks_the_arming() {
        let mut l = hz250();
        // A look-up just after a probe: re-armed 3 s ahead.
        l.seen(ms(10_000), Pending::Keepalive, ms(3000), Duration::ZERO);
        // A dump that started at 11 s read the socket at 11.9 s (1 s long).
        l.seen(ms(11_000), Pending::Keepalive, ms(1100), ms(1000));
        assert_eq!(l.due(), Some((Pending::Keepalive, ms(13_000))));
        assert_eq!(l.next(ms(11_000), ms(200), &[]), Some(ms(13_003)));
        // 300 ms late: within the 3 s arming's 260 ms bound + margin, still
        // stepped for (a 1.1 s arming would have been given up on at 136 ms).
        l.seen(ms(13_300), Pending::Keepalive, ms(0), Duration::ZERO);
        assert_eq!(
            l.next(ms(13_300), ms(200), &[]),
            Some(ms(13_337) + Duration::from_micros(500))
        );
    }

    #[test]
    fn a_new_arming_first_read_by_a_dump_is_corrected_by_the_next_look_up() {
        let mut l = hz250();
        l.seen(ms(0), Pending::None, ms(0), Duration::ZERO);
        // Keepalive switched on meanwhile; the dump's reading is up to 0.9 s early.
        l.seen(ms(1000), Pending::Keepalive, ms(4100), ms(900));
        assert_eq!(l.next(ms(1000), ms(200), &[]), Some(ms(5103)));
        // The look-up then finds 0.9 s left: the same arming, now exact.
        l.seen(ms(5103), Pending::Keepalive, ms(897), Duration::ZERO);
        assert_eq!(l.due(), Some((Pending::Keepalive, ms(6000))));
        assert_eq!(l.next(ms(5103), ms(200), &[]), Some(ms(6003)));
    }

    #[test]
    fn a_switched_timer_starts_a_new_arming() {
        let mut l = hz250();
        l.seen(ms(0), Pending::Keepalive, ms(5000), Duration::ZERO);
        l.seen(ms(100), Pending::Retransmit, ms(0), Duration::ZERO);
        assert_eq!(l.due(), Some((Pending::Retransmit, ms(100))));
        l.seen(ms(300), Pending::Keepalive, ms(7000), Duration::ZERO);
        assert_eq!(l.due(), Some((Pending::Keepalive, ms(7300))));
    }
}
