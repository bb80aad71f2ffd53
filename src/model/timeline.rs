//! One connection's timeline: turns successive kernel samples into events and says
//! when the next sample is worth taking.
//!
//! This is pure logic over [`TcpSample`]s and run times, so it is tested without
//! sockets. The observer wakes at the predicted time of the next probe (idle after the
//! last contact, then every intvl) plus a small slack; when the kernel's timer is
//! late (its timer wheel rounds long timeouts up), it samples again with short steps
//! that grow with the lateness, so an event is never much later than the probe.

use std::time::Duration;

use crate::model::event::{EndFacts, EventKind, Outcome};
use crate::model::predict::{Effective, IdleSchedule};
use crate::model::sample::{
    TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED, TCP_LAST_ACK, TCP_TIME_WAIT, TcpSample,
};

/// Two readings of "time since last contact" differ by up to one jiffy (4 ms at
/// HZ=250) plus millisecond rounding; a contact must move more than this to count.
const CONTACT_JITTER: Duration = Duration::from_millis(10);
/// Sample this long after a predicted probe, so the kernel's timer has fired.
const DUE_SLACK: Duration = Duration::from_millis(3);
/// A probe seen this long after its due time was not sent on time: the timer
/// wheel alone makes it at most tens of milliseconds late.
const LATE_PROBE: Duration = Duration::from_millis(250);
/// The TCP states reached only after the peer's FIN.
const PEER_SENT_FIN: [u8; 4] = [TCP_CLOSE_WAIT, TCP_LAST_ACK, TCP_CLOSING, TCP_TIME_WAIT];
/// Traffic (data, ACKs of our data) is reported at most this often.
const TRAFFIC_REPORT_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Timeline {
    eff: Effective,
    schedule: Option<IdleSchedule>,
    busy_detect_after: Duration,
    /// Run time of the last data or ACK received.
    last_contact: Duration,
    /// How long before run time 0 the last contact was, while it was (`watch` joins
    /// connections whose last contact precedes the watch); zero otherwise.
    pre_start: Duration,
    probes_seen: u32,
    /// When the last probe of this window was seen go out.
    last_probe_at: Option<Duration>,
    window_open: bool,
    retransmits_seen: u32,
    bytes_in_seen: u64,
    bytes_out_seen: u64,
    pending_in: u64,
    pending_out: u64,
    traffic_pending: bool,
    last_traffic_report: Option<Duration>,
    in_flight: bool,
    rto: Duration,
    /// Run time of the oldest send still unacknowledged, as far as we know.
    unacked_since: Option<Duration>,
    /// Run time of the first retransmission of the current episode: the kernel
    /// counts the user timeout (and tcp_retries2's budget) from there.
    retrans_since: Option<Duration>,
    observed: bool,
    fin_counted: bool,
    /// The caller knows the next contact without traffic answers a probe (`watch`
    /// inferred it from the keepalive timer) even if the schedule does not say so.
    probe_answer_known: bool,
}

impl Timeline {
    /// Starts a timeline at `now`, with the first kernel sample when there is one.
    /// `retries2` is net.ipv4.tcp_retries2, the busy path's budget without a user
    /// timeout.
    pub fn new(eff: Effective, retries2: u32, now: Duration) -> Timeline {
        Timeline {
            eff,
            schedule: eff.idle_schedule(),
            busy_detect_after: eff.busy_detect_after(retries2),
            last_contact: now,
            pre_start: Duration::ZERO,
            probes_seen: 0,
            last_probe_at: None,
            window_open: false,
            retransmits_seen: 0,
            bytes_in_seen: 0,
            bytes_out_seen: 0,
            pending_in: 0,
            pending_out: 0,
            traffic_pending: false,
            last_traffic_report: None,
            in_flight: false,
            rto: Duration::from_millis(200),
            unacked_since: None,
            retrans_since: None,
            observed: false,
            fin_counted: false,
            probe_answer_known: false,
        }
    }

    pub fn last_contact(&self) -> Duration {
        self.last_contact
    }

    /// New settings for the same connection (`watch` learned or re-read them): the
    /// observed history (contact, probes, traffic) stays.
    pub fn set_settings(&mut self, eff: Effective, retries2: u32) {
        self.eff = eff;
        self.schedule = eff.idle_schedule();
        self.busy_detect_after = eff.busy_detect_after(retries2);
    }

    /// Run time `d` after the last contact (which may precede run time 0).
    fn after_contact(&self, d: Duration) -> Duration {
        (self.last_contact + d).saturating_sub(self.pre_start)
    }

    /// Run time at which the `n`th probe since the last contact is due, on the
    /// nominal schedule (last contact + idle + (n - 1) x intvl).
    fn probe_due(&self, n: u32) -> Duration {
        self.after_contact(self.eff.probe_due(n))
    }

    /// When the next probe is due as the kernel arms it: idle after the last
    /// contact for the first, then intvl after the previous probe actually went out
    /// (its timer wheel fires a 1 s timer 4 to 32 ms late, and that adds up).
    pub fn next_probe_due(&self) -> Duration {
        match self.last_probe_at {
            Some(prev) if self.probes_seen > 0 => {
                prev + Duration::from_secs(self.eff.intvl_s.into())
            }
            _ => self.probe_due(1),
        }
    }

    fn probe_sent(&mut self, n: u32, now: Duration, out: &mut Vec<EventKind>) {
        let due = self.next_probe_due();
        out.push(EventKind::Probe { n, due });
        self.probes_seen = n;
        self.last_probe_at = Some(now);
        let late = now.saturating_sub(due);
        if late > LATE_PROBE {
            out.push(EventKind::Warning {
                message: format!(
                    "probe #{n} went out {:.3}s after it was due: a probe the kernel cannot \
                     transmit (local queue full, carrier down) is retried 0.5 s later, and \
                     detection moves by as much",
                    late.as_secs_f64()
                ),
            });
        }
    }

    /// The first sample: sets the baseline and announces idle-start (unless the
    /// last contact precedes run time 0, which `watch`'s join line states instead).
    fn baseline(&mut self, now: Duration, s: &TcpSample) -> Vec<EventKind> {
        self.observed = true;
        self.last_contact = now.saturating_sub(s.since_contact());
        self.pre_start = s.since_contact().saturating_sub(now);
        self.bytes_in_seen = s.bytes_received;
        self.bytes_out_seen = s.bytes_acked;
        self.in_flight = s.unacked > 0;
        self.last_traffic_report = Some(now);
        if !self.pre_start.is_zero() {
            return Vec::new();
        }
        vec![EventKind::Idle {
            since: self.last_contact,
        }]
    }

    /// As [`Timeline::observe`], when the caller knows (from the keepalive timer)
    /// that a probe went out and was answered since the last sample: it is
    /// reported even while the settings that would predict it are not known.
    pub fn observe_answered_probe(&mut self, now: Duration, s: &TcpSample) -> Vec<EventKind> {
        self.probe_answer_known = true;
        let out = self.observe(now, s);
        self.probe_answer_known = false;
        out
    }

    /// Folds in one kernel sample taken at run time `now`.
    pub fn observe(&mut self, now: Duration, s: &TcpSample) -> Vec<EventKind> {
        if !self.observed {
            return self.baseline(now, s);
        }
        let mut out = Vec::new();
        let mut din = s.bytes_received.saturating_sub(self.bytes_in_seen);
        // The peer's FIN advances the receive sequence by one, and bytes_received
        // with it: it is not a byte of data.
        if !self.fin_counted && PEER_SENT_FIN.contains(&s.state) {
            self.fin_counted = true;
            din = din.saturating_sub(1);
            self.bytes_in_seen += 1;
        }
        let dout = s.bytes_acked.saturating_sub(self.bytes_out_seen);
        self.bytes_in_seen = s.bytes_received.max(self.bytes_in_seen);
        self.bytes_out_seen = s.bytes_acked;
        self.pending_in += din;
        self.pending_out += dout;
        // A connection the kernel has given up on has its queues purged: keep the
        // view from before the death, which is what decided it.
        if s.state == TCP_ESTABLISHED {
            self.in_flight = s.unacked > 0;
            self.rto = Duration::from_micros(s.rto_us as u64);
            if s.unacked == 0 {
                self.unacked_since = None;
            }
        }

        let contact = now.saturating_sub(s.since_contact());
        if contact > self.last_contact + CONTACT_JITTER {
            let traffic = din > 0 || dout > 0;
            if !traffic {
                self.answered_probe(contact, &mut out);
            }
            self.last_contact = contact;
            self.pre_start = Duration::ZERO;
            self.probes_seen = 0;
            self.last_probe_at = None;
            self.window_open = false;
            if traffic {
                self.traffic_pending = true;
            } else {
                out.push(EventKind::Idle { since: contact });
            }
        } else if s.unacked == 0 && self.schedule.is_some() {
            let probes = s.probes as u32;
            if !self.window_open && (now >= self.probe_due(1) || probes > 0) {
                out.push(self.window_event());
            }
            for n in self.probes_seen + 1..=probes {
                self.probe_sent(n, now, &mut out);
            }
        }

        self.retransmissions(now, s, &mut out);
        self.report_traffic(now, &mut out);
        out
    }

    /// A contact without traffic after the probe window opened is a probe answer.
    fn answered_probe(&mut self, contact: Duration, out: &mut Vec<EventKind>) {
        let known = self.probe_answer_known && self.schedule.is_some();
        if !known && (self.schedule.is_none() || contact + CONTACT_JITTER < self.probe_due(1)) {
            return;
        }
        if known && contact + CONTACT_JITTER < self.probe_due(1) {
            // The settings that predict it are not known yet: the probe went out
            // just before its answer.
            out.push(EventKind::Probe {
                n: self.probes_seen + 1,
                due: contact,
            });
            out.push(EventKind::ProbeAcked {
                n: self.probes_seen + 1,
            });
            return;
        }
        // Probes whose due time passed before the answer arrived were sent, even if
        // no sample caught them while they were out.
        let mut sent = self.probes_seen;
        while contact + CONTACT_JITTER >= self.probe_due(sent + 1) && sent < u8::MAX as u32 {
            sent += 1;
        }
        if !self.window_open {
            out.push(self.window_event());
        }
        for n in self.probes_seen + 1..=sent {
            self.probe_sent(n, contact, out);
        }
        out.push(EventKind::ProbeAcked { n: sent });
    }

    fn window_event(&mut self) -> EventKind {
        self.window_open = true;
        EventKind::ProbeWindow {
            due: self.probe_due(1),
            dead_at: self.schedule.map(|s| self.after_contact(s.detect_after)),
        }
    }

    fn retransmissions(&mut self, now: Duration, s: &TcpSample, out: &mut Vec<EventKind>) {
        let n = s.retransmits as u32;
        if n == 0 {
            if s.state == TCP_ESTABLISHED {
                self.retransmits_seen = 0;
                self.retrans_since = None;
            }
            return;
        }
        if self.retrans_since.is_none() {
            // Every data transmission, retransmissions included, stamps
            // last_data_sent; our own writes come after the sample in a wake, so
            // this is the first retransmission's time.
            self.retrans_since =
                Some(now.saturating_sub(Duration::from_millis(s.last_data_sent_ms as u64)));
        }
        for k in self.retransmits_seen + 1..=n {
            out.push(EventKind::Retransmit {
                n: k,
                unacked: s.unacked,
            });
        }
        self.retransmits_seen = self.retransmits_seen.max(n);
    }

    fn report_traffic(&mut self, now: Duration, out: &mut Vec<EventKind>) {
        if !self.traffic_pending {
            return;
        }
        let due = self
            .last_traffic_report
            .map_or(now, |t| t + TRAFFIC_REPORT_EVERY);
        if now < due {
            return;
        }
        out.push(EventKind::Data {
            bytes_in: self.pending_in,
            bytes_out: self.pending_out,
        });
        out.push(EventKind::Idle {
            since: self.last_contact,
        });
        self.pending_in = 0;
        self.pending_out = 0;
        self.traffic_pending = false;
        self.last_traffic_report = Some(now);
    }

    /// Called just before the command writes, with a fresh sample already observed:
    /// remembers when the oldest unacknowledged send left, which starts the clock of
    /// the retransmission path and the user timeout.
    pub fn note_send(&mut self, now: Duration) {
        if self.unacked_since.is_none() {
            self.unacked_since = Some(now);
        }
        self.in_flight = true;
    }

    /// When the next sample is worth taking, or `None` to wait for readiness only.
    pub fn next_wake(&self, now: Duration) -> Option<Duration> {
        if !self.observed {
            return None;
        }
        let traffic = self.traffic_pending.then(|| {
            self.last_traffic_report
                .map_or(now, |t| t + TRAFFIC_REPORT_EVERY)
        });
        let kernel = if self.in_flight {
            let step = (self.rto / 4).clamp(Duration::from_millis(10), Duration::from_millis(200));
            Some(now + step)
        } else if self.schedule.is_some() {
            let due = self.next_probe_due() + DUE_SLACK;
            if now < due {
                Some(due)
            } else {
                let late = now - due;
                Some(now + (late / 8).clamp(Duration::from_millis(10), Duration::from_secs(1)))
            }
        } else {
            None
        };
        match (traffic, kernel) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The `end` facts for an outcome decided at `now`.
    pub fn end(
        &self,
        now: Duration,
        outcome: Outcome,
        errno: Option<String>,
        message: String,
    ) -> EndFacts {
        let idle_prediction = self.schedule.map(|s| s.detect_after.as_secs_f64());
        let predicted = match self.retrans_since.or(self.unacked_since) {
            // Data was in flight: the retransmission path (or the user timeout)
            // decides, counted from the first retransmission (before one is seen,
            // the oldest unacknowledged send is the best estimate).
            Some(start) if self.in_flight => Some(
                (start + self.busy_detect_after + self.pre_start)
                    .saturating_sub(self.last_contact)
                    .as_secs_f64(),
            ),
            _ => idle_prediction,
        };
        let detect_s = match outcome {
            Outcome::Alive
            | Outcome::Interrupted
            | Outcome::Terminated
            | Outcome::Error
            | Outcome::ConnectFailed => None,
            _ if !self.observed => None,
            _ => Some(
                (now + self.pre_start)
                    .saturating_sub(self.last_contact)
                    .as_secs_f64(),
            ),
        };
        EndFacts::new(outcome, errno, message, detect_s, predicted)
    }
}

#[cfg(test)]
mod tests {
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
        let mut t = Timeline::new(eff, 15, ms(0));
        let first = t.observe(ms(0), &TcpSample::default());
        assert_eq!(first, vec![EventKind::Idle { since: ms(0) }]);
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
    fn wakes_just_after_the_predicted_probe() {
        let t = timeline();
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
        // The kernel arms the next probe intvl after this one went out.
        assert_eq!(t.next_wake(ms(1006)), Some(ms(2008)));
        let ev = t.observe(ms(2030), &at(2030, 0, 2));
        assert_eq!(
            ev,
            vec![EventKind::Probe {
                n: 2,
                due: ms(2005)
            }]
        );
    }

    #[test]
    fn answered_probe_restarts_idle() {
        let mut t = timeline();
        let ev = t.observe(ms(1010), &at(1010, 1002, 0));
        assert_eq!(names(&ev), ["probe-window", "probe", "probe-acked", "idle"]);
        assert_eq!(ev[2], EventKind::ProbeAcked { n: 1 });
        assert_eq!(ev[3], EventKind::Idle { since: ms(1002) });
        assert_eq!(t.next_wake(ms(1011)), Some(ms(2005)));
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
        let mut t = Timeline::new(eff, 15, ms(0));
        t.observe(ms(0), &TcpSample::default());
        let ev = t.observe(ms(2804), &at(2804, 2745, 0));
        assert_eq!(
            names(&ev),
            ["idle"],
            "without the proof it is just a contact"
        );
        let mut t = Timeline::new(eff, 15, ms(0));
        t.observe(ms(0), &TcpSample::default());
        let ev = t.observe_answered_probe(ms(2804), &at(2804, 2745, 0));
        assert_eq!(names(&ev), ["probe", "probe-acked", "idle"]);
        assert_eq!(
            ev[0],
            EventKind::Probe {
                n: 1,
                due: ms(2745)
            }
        );
    }

    #[test]
    fn a_probe_sent_half_a_second_late_is_explained() {
        let mut t = timeline();
        t.observe(ms(1005), &at(1005, 0, 1));
        let ev = t.observe(ms(2520), &at(2520, 0, 2));
        assert_eq!(names(&ev), ["probe", "warning"]);
    }

    #[test]
    fn late_kernel_timer_is_sampled_in_short_steps() {
        let mut t = timeline();
        let ev = t.observe(ms(1004), &at(1004, 0, 0));
        assert_eq!(names(&ev), ["probe-window"]);
        assert_eq!(t.next_wake(ms(1004)), Some(ms(1014)));
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
        let mut t = Timeline::new(eff, 15, ms(0));
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
            ev,
            vec![
                EventKind::Retransmit { n: 1, unacked: 2 },
                EventKind::Retransmit { n: 2, unacked: 2 }
            ]
        );
        assert!(t.observe(ms(310), &s).is_empty());
    }

    #[test]
    fn traffic_is_coalesced() {
        let mut t = timeline();
        let mut s = at(1500, 1400, 0);
        s.bytes_received = 10;
        let ev = t.observe(ms(1500), &s);
        assert_eq!(names(&ev), ["data", "idle"]);
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
}
