//! One connection's timeline (over 500 lines as one state machine whose transitions
//! read together): turns successive kernel samples into events and says when the
//! next sample is worth taking.
//!
//! This is pure logic over [`TcpSample`]s and run times, so it is tested without
//! sockets. It keeps a model of the kernel's timers ([`schedule`]): the keepalive
//! timer (armed idle after the connection, intvl after each probe it sends, and left
//! alone by an answer, so after an answered probe the next one comes at
//! max(probe + intvl, answer + idle)) and, while the peer advertises a zero window,
//! the zero-window probe timer. The observer wakes just after the next firing the
//! model predicts. The kernel's timer wheel rounds timers up ([`crate::model::wheel`]):
//! a keepalive timer the kernel re-armed from its own firing fires a whole number of
//! wheel buckets later, known to a jiffy, and otherwise somewhere up to the wheel's
//! late bound after its due time. While an answer is expected, one look after the
//! latest firing time suffices, since the answer's arrival (tcpi_last_ack_recv)
//! dates the probe; when no answer dates it (a silent peer), or the window is wide,
//! the looks start at the earliest time and step, growing with the lateness, so an
//! event is never much later than the kernel's action.
//!
//! Whenever the prediction changes (an answer, data, a window change, a late timer)
//! a `prediction` event says so; the `end` carries the prediction that was in force
//! at the last contact with the peer, or the one made since with settings learned
//! or changed after it.

use std::time::Duration;

use crate::model::event::{EndFacts, EventKind, Outcome, Prediction};
use crate::model::predict::{Effective, secs_text};
use crate::model::sample::{
    TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED, TCP_LAST_ACK, TCP_TIME_WAIT, TcpSample,
};
use crate::model::schedule::{
    self, Bound, KeepaliveTimer, KernelParams, Path, RTO_MIN, WindowProbes, window_probe_interval,
};

/// Two readings of "time since last contact" differ by up to one jiffy (4 ms at
/// HZ=250) plus millisecond rounding; a contact must move more than this to count.
const CONTACT_JITTER: Duration = Duration::from_millis(10);
/// Sample this long after a predicted probe, so the kernel's timer has fired.
const DUE_SLACK: Duration = Duration::from_millis(3);
/// tcpi_last_data_sent counts jiffies: 10 ms at HZ=100, the coarsest common.
const STAMP_JIFFY: Duration = Duration::from_millis(10);
/// The shortest step between samples while waiting for a late timer.
const MIN_STEP: Duration = Duration::from_millis(10);
/// A probe expected to be answered, whose firing the wheel puts in a window no
/// wider than this, gets one look after the window: it is then reported at most
/// this much (plus [`DUE_SLACK`]) after the wire even when no answer dates it.
const ONE_LOOK: Duration = Duration::from_millis(40);
/// A prediction that moves less than this is not news.
const PREDICTION_MOVE: Duration = Duration::from_millis(20);
/// The TCP states reached only after the peer's FIN.
const PEER_SENT_FIN: [u8; 4] = [TCP_CLOSE_WAIT, TCP_LAST_ACK, TCP_CLOSING, TCP_TIME_WAIT];
/// Traffic (data, ACKs of our data) is reported at most this often.
const TRAFFIC_REPORT_EVERY: Duration = Duration::from_secs(1);

/// The zero-window state: what the persist timer has done in this episode.
#[derive(Debug, Clone)]
struct ZeroWindow {
    entered_at: Duration,
    /// Window probes seen in this episode, and the last one answered.
    probes: u32,
    answered: u32,
    /// tcpi_backoff and tcpi_segs_out at the last sample: each window probe raises
    /// the backoff (until it saturates at tcp_retries2, then segs_out counts them).
    seen_backoff: u32,
    seen_segs_out: u32,
    timer: WindowProbes,
}

/// A keepalive timer firing that sent a probe: between `lo` and `hi` (model clock),
/// at a multiple of `gran` jiffies (its wheel level's granularity); `armed_at` is the
/// model's arming time of the re-arm the kernel made there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Firing {
    lo: Duration,
    hi: Duration,
    gran: u64,
    armed_at: Duration,
}

#[derive(Debug, Clone)]
pub struct Timeline {
    eff: Effective,
    params: KernelParams,
    busy_detect_after: Duration,
    /// Run time of the last data or ACK received.
    last_contact: Duration,
    /// The kernel's keepalive timer, as far as we can tell.
    ka: KeepaliveTimer,
    probes_seen: u32,
    window_open: bool,
    zw: Option<ZeroWindow>,
    retransmits_seen: u32,
    bytes_in_seen: u64,
    bytes_out_seen: u64,
    pending_in: u64,
    pending_out: u64,
    traffic_pending: bool,
    /// Traffic was reported and the idle start it moved is not stated yet.
    idle_unsaid: bool,
    last_traffic_report: Option<Duration>,
    in_flight: bool,
    rto: Duration,
    /// tcpi_backoff: `rto` is the socket's RTO doubled this many times.
    backoff: u32,
    /// Run time of the oldest send still unacknowledged, as far as we know.
    unacked_since: Option<Duration>,
    /// Run time of the first retransmission of the current episode: the kernel
    /// counts the user timeout (and tcp_retries2's budget) from there.
    retrans_since: Option<Duration>,
    /// The retransmission timer's latest firing seen (run time, as the sample
    /// read it) and how many there were: the busy range counts from it.
    rtx_firing: Option<(Duration, u32)>,
    observed: bool,
    fin_counted: bool,
    /// The prediction last emitted, and the one in force at the last contact.
    shown: Option<Prediction>,
    at_contact: Option<Prediction>,
    /// The settings or the kernel's timer changed since the last contact: until
    /// the next contact, each new prediction is the one in force (a change read
    /// in the same sample as the probe it already caused is first modelled
    /// without that probe).
    changed_since_contact: bool,
    /// How long before run time 0 the last contact was at the first sample (`watch`
    /// joins connections whose last contact precedes the watch). The model keeps
    /// its times shifted by this much, so they never go below zero; events and the
    /// public methods speak run time.
    offset: Duration,
    /// The caller knows the next contact without traffic answers a probe (`watch`
    /// inferred it from the keepalive timer) even if the schedule does not say so.
    probe_answer_known: bool,
    /// How late the time given with the current sample may be against the moment
    /// the kernel read it (`watch` samples through a dump, and a loaded host can
    /// deschedule it around the dump); zero for our own sockets.
    uncertainty: Duration,
    /// The uncertainty of the sample that placed the last contact.
    contact_uncertainty: Duration,
    /// The time (model clock) of the sample before the one being folded in: what
    /// this sample shows new happened after it.
    sampled_at: Duration,
    /// How early the keepalive timer's firing may be placed when it was read from
    /// the kernel ([`Timeline::kernel_timer_at`]) rather than modelled.
    timer_uncertainty: Duration,
    /// Keepalive probes already out, unanswered, at the first sample (`watch`
    /// joined a connection whose probing had begun): never reported as new ones.
    probes_at_join: u32,
    /// The keepalive firing that sent the last probe seen, as far as the samples
    /// and the wheel place it: the next firing is planned from it.
    last_firing: Option<Firing>,
    /// The events of the sample being folded in that a kernel fact dates before the
    /// sample (an answered probe, dated by its answer's arrival): their index range
    /// in the fold's list and that time (model clock).
    dated: Option<(std::ops::Range<usize>, Duration)>,
}

impl Timeline {
    /// Starts a timeline at `now` (the connection is established, its keepalive
    /// timer armed idle from now), with the kernel's parameters.
    pub fn new(eff: Effective, params: KernelParams, now: Duration) -> Timeline {
        Timeline {
            eff,
            params,
            busy_detect_after: eff.busy_detect_after(params.retries2),
            last_contact: now,
            ka: KeepaliveTimer::fresh(&eff, now),
            probes_seen: 0,
            window_open: false,
            zw: None,
            retransmits_seen: 0,
            bytes_in_seen: 0,
            bytes_out_seen: 0,
            pending_in: 0,
            pending_out: 0,
            traffic_pending: false,
            idle_unsaid: false,
            last_traffic_report: None,
            in_flight: false,
            rto: RTO_MIN,
            backoff: 0,
            unacked_since: None,
            retrans_since: None,
            rtx_firing: None,
            observed: false,
            fin_counted: false,
            shown: None,
            at_contact: None,
            changed_since_contact: false,
            offset: Duration::ZERO,
            probe_answer_known: false,
            uncertainty: Duration::ZERO,
            contact_uncertainty: Duration::ZERO,
            sampled_at: now,
            timer_uncertainty: Duration::ZERO,
            probes_at_join: 0,
            last_firing: None,
            dated: None,
        }
    }

    /// Keepalive probes the first sample showed already out and unanswered: they
    /// went out before it (between the last contact and the sample), which is all
    /// the evidence says; the next ones are reported as they go.
    pub fn probes_at_join(&self) -> u32 {
        self.probes_at_join
    }

    /// Run time at which the next keepalive probe is due as the kernel arms it.
    pub fn next_probe_due(&self) -> Duration {
        self.ka.next_probe(&self.eff).saturating_sub(self.offset)
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

    /// Run time at which the prediction in force has the kernel give up (the
    /// idle path: the last keepalive probe unanswered), if it does.
    pub fn gives_up_at(&self) -> Option<Duration> {
        let p = self.at_contact.as_ref()?;
        (p.path == Path::Idle)
            .then_some(p.dead_at)
            .flatten()
            .map(|d| d.saturating_sub(self.offset))
    }

    /// The prediction in force, as an event, now stated (`watch` held it back while
    /// a new connection's owner could still set keepalive up).
    pub fn restate_prediction(&mut self) -> EventKind {
        let p = self.prediction().with_detect();
        self.shown = Some(p.clone());
        self.to_run(EventKind::Prediction(p))
    }

    /// Run time of the last contact (0 when it precedes the run).
    pub fn last_contact(&self) -> Duration {
        self.last_contact.saturating_sub(self.offset)
    }

    /// New settings for the same connection (`watch` learned or re-read them): the
    /// observed history (contact, probes, traffic) stays.
    pub fn set_settings(&mut self, eff: Effective, retries2: u32) {
        self.eff = eff;
        self.params.retries2 = retries2;
        self.busy_detect_after = eff.busy_detect_after(retries2);
        self.last_firing = None;
        if self.probes_seen == 0 {
            self.ka = KeepaliveTimer {
                probes_out: 0,
                ..KeepaliveTimer::fresh(&eff, self.ka.last_rx)
            };
        }
        self.prediction_now_in_force();
    }

    /// The settings or the timer changed since the last contact: what the end
    /// cites is the prediction they make, not the one made with the old ones.
    fn prediction_now_in_force(&mut self) {
        if self.observed {
            self.at_contact = Some(self.prediction().with_detect());
            self.changed_since_contact = true;
        }
    }

    /// The kernel's keepalive timer fires at run time `at` (`watch` read it, with
    /// settings changed at run time: the change re-armed it, when is not known
    /// better than since the previous sample). The model's timer follows it.
    /// `uncertainty` is how much earlier than the kernel's reading `at` may be
    /// (the dump's duration): a probe is not called late by that much.
    pub fn kernel_timer_at(&mut self, at: Duration, uncertainty: Duration) {
        let at = at.saturating_add(self.offset);
        self.timer_uncertainty = uncertainty;
        self.last_firing = None;
        self.ka.armed_at = self.sampled_at.min(at);
        self.ka.fires_at = at;
        self.prediction_now_in_force();
    }

    /// An event's times from the model's (shifted) clock to run time.
    fn to_run(&self, kind: EventKind) -> EventKind {
        let off = self.offset;
        if off.is_zero() {
            return kind;
        }
        let run = |d: Duration| d.saturating_sub(off);
        match kind {
            EventKind::Idle { since } => EventKind::Idle { since: run(since) },
            EventKind::ProbeWindow { due, dead_at } => EventKind::ProbeWindow {
                due: run(due),
                dead_at: dead_at.map(run),
            },
            EventKind::Probe { n, due, answered } => EventKind::Probe {
                n,
                due: run(due),
                answered,
            },
            EventKind::ZeroWindow { unsent, probe_due } => EventKind::ZeroWindow {
                unsent,
                probe_due: run(probe_due),
            },
            EventKind::WindowProbe { n, due, unanswered } => EventKind::WindowProbe {
                n,
                due: run(due),
                unanswered,
            },
            EventKind::Prediction(p) => EventKind::Prediction(Prediction {
                since: run(p.since),
                dead_at: p.dead_at.map(run),
                ..p
            }),
            other => other,
        }
    }

    fn intvl(&self) -> Duration {
        Duration::from_secs(self.eff.intvl_s.into())
    }

    fn uto(&self) -> Duration {
        Duration::from_millis(self.eff.user_timeout_ms.into())
    }

    /// Says when probe `n` (or window probe `n`) went out later than the timer
    /// wheel explains. The probe went out after the previous sample (which did not
    /// show it) was read, and the kernel read that one no earlier than its time:
    /// so it is proven late only by how far that sample lies past the due time
    /// (less the uncertainty of the contact the due time counts from), never by
    /// when this sample happened to be taken, which is the observer's own delay.
    fn late_warning(
        &self,
        what: &str,
        n: u32,
        due: Duration,
        armed_at: Duration,
        out: &mut Vec<EventKind>,
    ) {
        let armed = due.saturating_sub(armed_at);
        let bound = self.params.wheel.late_bound(armed);
        let due_uncertainty = self.contact_uncertainty.max(self.timer_uncertainty);
        let allowance = bound + DUE_SLACK + due_uncertainty;
        let proven = self.sampled_at.saturating_sub(due);
        if proven > allowance {
            out.push(EventKind::Warning {
                message: format!(
                    "{what} #{n} went out at least {:.3}s after it was due (a sample {:.3}s \
                     after the due time did not show it yet), beyond the {:.3}s the timer \
                     wheel allows for a {} timer ({}): a probe the kernel cannot transmit \
                     (local queue full, carrier down) is retried 0.5 s later, and detection \
                     moves by as much",
                    proven.saturating_sub(due_uncertainty).as_secs_f64(),
                    proven.as_secs_f64(),
                    bound.as_secs_f64(),
                    secs_text(armed),
                    self.params.wheel.describe()
                ),
            });
        }
    }

    /// Probe `n` went out between `seen.0` and `seen.1` (the sample before that did
    /// not show it and the one that did, or just before its answer); the model
    /// takes it as sent at `now`.
    fn probe_sent(
        &mut self,
        n: u32,
        now: Duration,
        seen: (Duration, Duration),
        out: &mut Vec<EventKind>,
    ) {
        let due = self.ka.next_probe(&self.eff);
        let armed_at = self.ka.next_probe_armed_at(&self.eff);
        // Where the wheel let it fire, narrowed by the samples; a sample past the
        // wheel's window is believed over the model.
        let (wlo, whi) = self.probe_window();
        let lo = seen.0.max(wlo).min(seen.1);
        let hi = if seen.0 > whi {
            seen.1
        } else {
            seen.1.min(whi).max(lo)
        };
        self.last_firing = self
            .params
            .wheel
            .granularity(due.saturating_sub(armed_at))
            .map(|gran| Firing {
                lo,
                hi,
                gran,
                armed_at: now,
            });
        out.push(EventKind::Probe {
            n,
            due,
            answered: false,
        });
        self.late_warning("probe", n, due, armed_at, out);
        // The kernel re-armed the timer intvl from the moment the probe went out:
        // taken as when we saw it (the observer samples just after the due time,
        // then in short steps, so this is at most a step late).
        let sent_at = now;
        self.timer_uncertainty = Duration::ZERO;
        self.probes_seen = n;
        self.ka.armed_at = sent_at;
        self.ka.fires_at = sent_at.saturating_add(self.intvl());
        self.ka.probes_out = n;
    }

    /// The first sample: sets the baseline and announces idle-start (unless the
    /// last contact precedes run time 0, which `watch`'s join line states instead).
    fn baseline(&mut self, now: Duration, s: &TcpSample) -> Vec<EventKind> {
        self.observed = true;
        // The last contact is read in jiffies (4 ms at HZ=250): a connection made
        // just after the run started can seem to precede it by that much.
        let before_start = s.since_contact().saturating_sub(now);
        self.offset = if before_start > CONTACT_JITTER {
            before_start
        } else {
            Duration::ZERO
        };
        let now = now.saturating_add(self.offset);
        self.sampled_at = now;
        self.last_contact = now.saturating_sub(s.since_contact());
        self.contact_uncertainty = self.uncertainty;
        // The kernel armed the keepalive timer when the connection was established
        // (tcp_finish_connect, tcp_create_openreq_child): at the handshake's last
        // segment, which is the last contact a fresh connection has.
        if self.probes_seen == 0 && self.ka.last_rx >= self.last_contact {
            self.ka = KeepaliveTimer::fresh(&self.eff, self.last_contact);
        }
        self.ka.last_rx = self.last_contact;
        if s.probes > 0 && s.state == TCP_ESTABLISHED && self.eff.keepalive {
            self.probes_before(now, s.probes as u32);
        }
        self.bytes_in_seen = s.bytes_received;
        self.bytes_out_seen = s.bytes_acked;
        self.in_flight = s.unacked > 0;
        self.last_traffic_report = Some(now);
        let mut out = vec![EventKind::Idle {
            since: self.last_contact,
        }];
        self.update_prediction(true, &mut out);
        if !self.offset.is_zero() {
            return Vec::new();
        }
        out
    }

    /// The first sample shows `probes` keepalive probes out: they went out before
    /// `now`, the last of them at the earliest where the settings put it (idle
    /// after the contact, intvl apart) and at the latest just before the sample.
    /// The timer is taken as armed at the earliest, so the observer looks early
    /// rather than late, and as uncertain by the span up to the sample.
    fn probes_before(&mut self, now: Duration, probes: u32) {
        self.probes_at_join = probes;
        self.probes_seen = probes;
        self.window_open = true;
        let earliest = self
            .last_contact
            .saturating_add(Duration::from_secs(self.eff.idle_s.into()))
            .saturating_add(self.intvl().saturating_mul(probes.saturating_sub(1)))
            .min(now);
        self.ka.probes_out = probes;
        self.ka.armed_at = earliest;
        self.ka.fires_at = earliest.saturating_add(self.intvl());
        self.timer_uncertainty = self
            .timer_uncertainty
            .max(now.saturating_sub(earliest))
            .max(self.uncertainty);
    }

    /// The next samples are taken at run time `now` give or take `u`: the kernel
    /// read them between `now` and `now + u` (`watch`: the times before and after
    /// a dump). A contact must then move by more than both samples' uncertainty to
    /// be new, and a contact that may be up to `u` later counts as a probe's
    /// answer if a probe was due by then.
    pub fn set_uncertainty(&mut self, u: Duration) {
        self.uncertainty = u;
    }

    /// Folds in one kernel sample taken at run time `now`.
    pub fn observe(&mut self, now: Duration, s: &TcpSample) -> Vec<EventKind> {
        let mut out = Vec::new();
        self.observe_dated(now, s, |_, k| out.push(k));
        out
    }

    /// As [`Timeline::observe`], handing each event to `push` with the run time it
    /// happened at when a kernel fact dates it before the sample (an answered
    /// probe, its answer and the idle start: the answer's arrival,
    /// tcpi_last_ack_recv), else `None` (it happened by the sample).
    pub fn observe_dated(
        &mut self,
        now: Duration,
        s: &TcpSample,
        mut push: impl FnMut(Option<Duration>, EventKind),
    ) {
        if !self.observed {
            for k in self.baseline(now, s) {
                push(None, k);
            }
            return;
        }
        let model_now = now.saturating_add(self.offset);
        self.dated = None;
        let out = self.fold(model_now, s);
        self.sampled_at = model_now;
        let dated = self.dated.take();
        for (i, k) in out.into_iter().enumerate() {
            let at = dated
                .as_ref()
                .filter(|(range, _)| range.contains(&i))
                .map(|(_, at)| at.saturating_sub(self.offset));
            push(at, self.to_run(k));
        }
    }

    /// [`Timeline::observe`] on the model's clock.
    fn fold(&mut self, now: Duration, s: &TcpSample) -> Vec<EventKind> {
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
        let established = s.state == TCP_ESTABLISHED;
        if established {
            self.in_flight = s.unacked > 0;
            self.rto = Duration::from_micros(s.rto_us as u64);
            self.backoff = u32::from(s.backoff);
            if s.unacked == 0 {
                self.unacked_since = None;
            }
        }

        let contact = now.saturating_sub(s.since_contact());
        let contact_moved = contact
            > self
                .last_contact
                .saturating_add(CONTACT_JITTER)
                .saturating_add(self.uncertainty)
                .saturating_add(self.contact_uncertainty);
        let traffic = din > 0 || dout > 0;
        let was_zero = self.zw.is_some();
        let zero = established && s.zero_window() == Some(true);
        if zero && !was_zero {
            self.enter_zero_window(now, s, contact, &mut out);
        } else if !zero && was_zero && established {
            self.leave_zero_window(now, &mut out);
        }

        if self.zw.is_some() {
            self.window_probes(now, s, &mut out);
            if contact_moved {
                if !traffic {
                    self.window_probe_answered(contact, &mut out);
                }
                self.contact(contact, traffic);
            }
        } else if contact_moved {
            let first = out.len();
            if !traffic {
                self.answered_probe(contact, &mut out);
            }
            self.contact(contact, traffic);
            if !traffic {
                out.push(EventKind::Idle { since: contact });
                // The answer's arrival dates the probe, its answer and the new idle
                // start (not before the sample that did not show them yet).
                if out[first..]
                    .iter()
                    .any(|k| matches!(k, EventKind::ProbeAcked { .. }))
                {
                    self.dated = Some((first..out.len(), contact.max(self.sampled_at)));
                }
            }
        } else if s.unacked == 0 && s.notsent_bytes == 0 && self.eff.keepalive {
            let probes = s.probes as u32;
            if !self.window_open && (now >= self.ka.next_probe(&self.eff) || probes > 0) {
                out.push(self.window_event());
            }
            let seen = (self.sampled_at, now);
            for n in self.probes_seen + 1..=probes {
                self.probe_sent(n, now, seen, &mut out);
            }
        }
        // Keepalive does not run while data waits (stuck in flight, queued, or
        // behind a zero window): each firing re-arms it idle from then.
        if self.zw.is_some() || s.notsent_bytes > 0 || s.retransmits > 0 {
            self.keepalive_postponed(now);
        }

        self.retransmissions(now, s, &mut out);
        self.report_traffic(now, &mut out);
        if self.idle_unsaid && !self.traffic_pending && !contact_moved {
            self.restate_idle(now, &mut out);
        }
        if !self.traffic_pending {
            let path_changed = was_zero != self.zw.is_some();
            // Traffic moves the prediction with the contact: not news by itself.
            let relative = traffic && !path_changed;
            self.update_prediction_as(contact_moved || path_changed, relative, &mut out);
        }
        out
    }

    /// A data or ACK arrival at `contact`: keepalive's idle restarts, its probe
    /// count resets; the timer itself is left as the kernel leaves it.
    fn contact(&mut self, contact: Duration, traffic: bool) {
        self.last_contact = contact;
        self.contact_uncertainty = self.uncertainty;
        self.ka.last_rx = contact;
        self.ka.probes_out = 0;
        self.probes_seen = 0;
        self.window_open = false;
        if traffic {
            self.traffic_pending = true;
        }
    }

    fn keepalive_postponed(&mut self, now: Duration) {
        let idle = Duration::from_secs(self.eff.idle_s.into());
        if idle.is_zero() {
            return;
        }
        while self.ka.fires_at.saturating_add(DUE_SLACK) <= now {
            self.ka.armed_at = self.ka.fires_at;
            self.ka.fires_at += idle;
        }
    }

    /// A contact without traffic after the probe window opened is a probe answer.
    fn answered_probe(&mut self, contact: Duration, out: &mut Vec<EventKind>) {
        if !self.eff.keepalive {
            return;
        }
        // With a probe seen out, a contact without traffic is its answer; else it
        // answers a probe only if one was due before it.
        let slack = CONTACT_JITTER.saturating_add(self.uncertainty);
        if self.probes_seen == 0 && contact.saturating_add(slack) < self.ka.next_probe(&self.eff) {
            if self.probe_answer_known {
                // The settings that predict it are not known yet: the probe went
                // out just before its answer.
                out.push(EventKind::Probe {
                    n: self.probes_seen + 1,
                    due: contact,
                    answered: true,
                });
                out.push(EventKind::ProbeAcked {
                    n: self.probes_seen + 1,
                });
            }
            return;
        }
        if !self.window_open {
            out.push(self.window_event());
        }
        // Probes whose due time passed before the answer arrived were sent, even if
        // no sample caught them while they were out.
        let mut sent = self.probes_seen;
        let first_new = out.len();
        // The answer came at `contact`, read in jiffies: the probe left up to a
        // jiffy (the reading's rounding) and a round trip before it.
        let jiffy = self.params.wheel.jiffy().unwrap_or(CONTACT_JITTER);
        let seen = (self.sampled_at.max(contact.saturating_sub(jiffy)), contact);
        while contact.saturating_add(slack) >= self.ka.next_probe(&self.eff)
            && sent < u8::MAX as u32
        {
            sent += 1;
            self.probe_sent(sent, contact, seen, out);
        }
        // The last probe out is the one answered (the others' answers were lost);
        // seen out and answered in one sample, its answer's line says both.
        if let Some(EventKind::Probe { n, answered, .. }) = out[first_new..]
            .iter_mut()
            .rev()
            .find(|k| matches!(k, EventKind::Probe { .. }))
            && *n == sent
        {
            *answered = true;
        }
        out.push(EventKind::ProbeAcked { n: sent });
    }

    fn window_event(&mut self) -> EventKind {
        self.window_open = true;
        EventKind::ProbeWindow {
            due: self.ka.next_probe(&self.eff),
            dead_at: schedule::keepalive(&self.eff, self.ka, self.params.wheel).dead_at,
        }
    }

    /// The peer's window closed with data waiting. The persist timer was armed
    /// (tcp_check_probe_timer) one RTO after the ACK that closed it.
    fn enter_zero_window(
        &mut self,
        now: Duration,
        s: &TcpSample,
        contact: Duration,
        out: &mut Vec<EventKind>,
    ) {
        let base = Duration::from_micros(s.rto_us as u64).max(RTO_MIN);
        let closed_at = contact.min(now);
        let timer = WindowProbes {
            first_probe_at: None,
            fires_at: closed_at.saturating_add(base),
            armed_at: closed_at,
            backoff: 0,
            unanswered: 0,
            base,
        };
        out.push(EventKind::ZeroWindow {
            unsent: Some(s.notsent_bytes),
            probe_due: timer.fires_at,
        });
        self.zw = Some(ZeroWindow {
            entered_at: now,
            probes: 0,
            answered: 0,
            seen_backoff: 0,
            seen_segs_out: s.segs_out,
            timer,
        });
        self.probes_seen = 0;
        self.window_open = false;
    }

    fn leave_zero_window(&mut self, now: Duration, out: &mut Vec<EventKind>) {
        if let Some(zw) = self.zw.take() {
            out.push(EventKind::WindowOpen {
                after: now.saturating_sub(zw.entered_at),
                probes: zw.probes,
            });
        }
    }

    /// Window probes that went out since the last sample: tcpi_backoff rises by one
    /// per probe, answered or not, until it reaches tcp_retries2; then tcpi_segs_out
    /// (nothing else leaves while the window is zero but our ACKs of data the peer
    /// sends, which a peer that does not read rarely does).
    fn window_probes(&mut self, now: Duration, s: &TcpSample, out: &mut Vec<EventKind>) {
        let retries2 = self.params.retries2;
        let uto = self.uto();
        let rto_max = self.params.rto_max;
        let Some(mut zw) = self.zw.take() else {
            return;
        };
        let backoff = s.backoff as u32;
        let by_backoff = backoff.saturating_sub(zw.seen_backoff);
        let new = if backoff < retries2 {
            by_backoff
        } else {
            by_backoff.max(s.segs_out.saturating_sub(zw.seen_segs_out))
        };
        for _ in 0..new.min(u8::MAX as u32) {
            zw.probes += 1;
            let due = zw.timer.fires_at;
            out.push(EventKind::WindowProbe {
                n: zw.probes,
                due,
                unanswered: (s.probes as u32).max(1),
            });
            // The first probe's timer is armed at the first send attempt into the
            // closed window (tcp_check_probe_timer), which no sample sees: only the
            // later ones, armed by the kernel at a probe or an answer, can be late.
            if zw.probes > 1 {
                self.late_warning("window probe", zw.probes, due, zw.timer.armed_at, out);
            }
            // As for keepalive probes: taken as when we saw it.
            let sent_at = now;
            let first = *zw.timer.first_probe_at.get_or_insert(sent_at);
            zw.timer.backoff = (zw.timer.backoff + 1).min(retries2);
            zw.timer.unanswered += 1;
            zw.timer.armed_at = sent_at;
            zw.timer.fires_at = sent_at
                + window_probe_interval(
                    zw.timer.base,
                    zw.timer.backoff,
                    rto_max,
                    uto,
                    Some(first),
                    sent_at,
                );
        }
        if new > 0 {
            // The kernel's own count wins over ours where both exist.
            zw.timer.backoff = backoff.min(retries2);
        }
        zw.seen_backoff = backoff;
        zw.seen_segs_out = s.segs_out;
        self.zw = Some(zw);
    }

    /// An ACK in the zero-window state: the last window probe was answered. The
    /// kernel (tcp_ack_probe) re-arms the probe timer from the answer with the
    /// backoff unchanged; the user timeout still counts from the first probe.
    fn window_probe_answered(&mut self, contact: Duration, out: &mut Vec<EventKind>) {
        let uto = self.uto();
        let rto_max = self.params.rto_max;
        if let Some(zw) = self.zw.as_mut() {
            if zw.probes > zw.answered {
                out.push(EventKind::WindowProbeAcked { n: zw.probes });
                zw.answered = zw.probes;
            }
            zw.timer.unanswered = 0;
            zw.timer.armed_at = contact;
            zw.timer.fires_at = contact
                + window_probe_interval(
                    zw.timer.base,
                    zw.timer.backoff,
                    rto_max,
                    uto,
                    zw.timer.first_probe_at,
                    contact,
                );
        }
    }

    fn retransmissions(&mut self, now: Duration, s: &TcpSample, out: &mut Vec<EventKind>) {
        let n = s.retransmits as u32;
        if n == 0 {
            if s.state == TCP_ESTABLISHED {
                self.retransmits_seen = 0;
                self.retrans_since = None;
                self.rtx_firing = None;
            }
            return;
        }
        if n > self.retransmits_seen && s.state == TCP_ESTABLISHED {
            // The latest data transmission is this firing's retransmission.
            self.rtx_firing = Some((
                now.saturating_sub(Duration::from_millis(s.last_data_sent_ms as u64)),
                n,
            ));
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
            .map_or(now, |t| t.saturating_add(TRAFFIC_REPORT_EVERY));
        if now < due {
            return;
        }
        out.push(EventKind::Data {
            bytes_in: self.pending_in,
            bytes_out: self.pending_out,
        });
        self.pending_in = 0;
        self.pending_out = 0;
        self.traffic_pending = false;
        self.last_traffic_report = Some(now);
        self.idle_unsaid = true;
        self.restate_idle(now, out);
    }

    /// A busy connection's idle start moves with every packet: it is stated once
    /// the connection has been quiet for a report period (not at every report),
    /// with the prediction only when it says something new relative to it.
    fn restate_idle(&mut self, now: Duration, out: &mut Vec<EventKind>) {
        let quiet = now.saturating_sub(self.last_contact) >= TRAFFIC_REPORT_EVERY;
        if self.idle_unsaid && quiet {
            out.push(EventKind::Idle {
                since: self.last_contact,
            });
            self.idle_unsaid = false;
        }
        self.update_prediction_as(true, true, out);
    }

    /// The busy path's start: the first retransmission, or before one is seen, the
    /// oldest unacknowledged send.
    fn busy_since(&self) -> Option<Duration> {
        if self.in_flight {
            self.retrans_since.or(self.unacked_since)
        } else {
            None
        }
    }

    /// The busy path bounded by tcp_retries2: the range the socket's own RTO and
    /// backoff allow. The budget counts from the original send of the oldest
    /// unacknowledged segment: known when this side wrote it, else no earlier than
    /// one RTO before the first retransmission seen.
    fn busy_prediction(&self, first_seen: Duration) -> Prediction {
        let base =
            Duration::from_nanos((self.rto.as_nanos() >> self.backoff.min(31)) as u64).max(RTO_MIN);
        // A firing seen, its count matching the backoff (an ICMP error undoes a
        // doubling, RFC 6069, and the firings then say less): the range from it.
        if let Some((at, n)) = self.rtx_firing.filter(|&(_, n)| n == self.backoff) {
            let firing = schedule::Firing {
                at,
                uncertainty: self.uncertainty.saturating_add(STAMP_JIFFY),
                n,
                rto: self.rto,
                base,
            };
            let (earliest, latest) = schedule::busy_give_up_after(
                firing,
                self.busy_detect_after,
                self.params.rto_max,
                self.params.wheel,
            );
            return Prediction {
                detect_s: None,
                path: Path::Busy,
                since: self.last_contact,
                dead_at: Some(earliest),
                late_by_up_to: latest.saturating_sub(earliest),
                bound: Bound::Retries2,
                probes: 0,
                restated: false,
                explain: format!(
                    "data in flight: keepalive is suspended; the kernel checks the tcp_retries2 \
                     budget ({}, tcp_retries2 {}) only when the retransmission timer fires: from \
                     its firing #{n} (this socket's RTO {} doubled to {}), the firing that ends it \
                     comes up to {:.3}s later than this (timer wheel, and the original send's \
                     time, known only from the firings)",
                    secs_text(self.busy_detect_after),
                    self.params.retries2,
                    secs_text(base),
                    secs_text(self.rto),
                    latest.saturating_sub(earliest).as_secs_f64(),
                ),
            };
        }
        let (start_lo, start_hi) = match self.unacked_since {
            Some(sent) => (sent, sent),
            None => (first_seen.saturating_sub(base), first_seen),
        };
        let (after, late) = schedule::busy_give_up(
            base,
            self.busy_detect_after,
            self.params.rto_max,
            self.params.wheel,
        );
        let late_by_up_to = late.saturating_add(start_hi.saturating_sub(start_lo));
        Prediction {
            detect_s: None,
            path: Path::Busy,
            since: self.last_contact,
            dead_at: Some(start_lo.saturating_add(after)),
            late_by_up_to,
            bound: Bound::Retries2,
            probes: 0,
            restated: false,
            explain: format!(
                "data in flight: keepalive is suspended; the kernel checks the tcp_retries2 \
                 budget ({}, tcp_retries2 {}) only when the retransmission timer fires: with \
                 this socket's RTO {} doubling, the firing {} after the first unacknowledged \
                 send ends it, up to {:.3}s later (timer wheel{})",
                secs_text(self.busy_detect_after),
                self.params.retries2,
                secs_text(base),
                secs_text(after),
                late_by_up_to.as_secs_f64(),
                if start_hi > start_lo {
                    ", and that send's time, known only from the first retransmission"
                } else {
                    ""
                }
            ),
        }
    }

    /// The prediction for the path the connection is on now.
    fn prediction(&self) -> Prediction {
        let uto_ms = self.eff.user_timeout_ms;
        if let Some(zw) = &self.zw {
            let f = schedule::zero_window(uto_ms, &self.params, zw.timer);
            let explain = match f.bound {
                Bound::UserTimeout => format!(
                    "the peer stopped reading: the user timeout ({uto_ms}ms) ends it, counted \
                     from the first window probe{}, answered or not",
                    zw.timer
                        .first_probe_at
                        // Relative to the last contact (the line's clock is the
                        // renderer's to choose).
                        .map(|t| match t.checked_sub(self.last_contact) {
                            Some(after) => {
                                format!(" {:.3}s after the last contact", after.as_secs_f64())
                            }
                            None => format!(
                                " {:.3}s before the last contact",
                                (self.last_contact - t).as_secs_f64()
                            ),
                        })
                        .unwrap_or_default()
                ),
                _ => format!(
                    "the peer stopped reading: it lives while it answers window probes \
                     (RFC 1122 4.2.2.17); {} unanswered in a row end it (tcp_retries2), \
                     backing off to {}",
                    self.params.retries2,
                    secs_text(self.params.rto_max)
                ),
            };
            return Prediction {
                detect_s: None,
                path: Path::ZeroWindow,
                since: self.last_contact,
                dead_at: f.dead_at,
                late_by_up_to: f.late_by_up_to,
                bound: f.bound,
                probes: f.probes.len() as u32,
                explain,
                restated: false,
            };
        }
        if let (Some(start), 0) = (self.busy_since(), uto_ms) {
            return self.busy_prediction(start);
        }
        if let Some(start) = self.busy_since() {
            return Prediction {
                detect_s: None,
                path: Path::Busy,
                since: self.last_contact,
                dead_at: Some(start.saturating_add(self.busy_detect_after)),
                late_by_up_to: Duration::ZERO,
                bound: if uto_ms == 0 {
                    Bound::Retries2
                } else {
                    Bound::UserTimeout
                },
                probes: 0,
                explain: format!(
                    "data in flight: keepalive is suspended; the retransmissions end it {} \
                     after the first one",
                    secs_text(self.busy_detect_after)
                ),
                restated: false,
            };
        }
        let f = schedule::keepalive(&self.eff, self.ka, self.params.wheel);
        let explain = match (f.bound, f.probes.first()) {
            (Bound::Never, _) => "keepalive is off: a dead idle peer is never detected".to_string(),
            (bound, first) => format!(
                "{} keepalive probe(s){}, then {}",
                f.probes.len(),
                first
                    // Relative to the last contact, not the run: the line's own clock
                    // (run time or UTC) is the renderer's to choose.
                    .map(|t| {
                        format!(
                            " from {:.3}s after the last contact, every {}s",
                            t.saturating_sub(self.last_contact).as_secs_f64(),
                            self.eff.intvl_s
                        )
                    })
                    .unwrap_or_default(),
                match bound {
                    Bound::UserTimeout => format!(
                        "the user timeout ({uto_ms}ms since the last contact) ends it at a firing"
                    ),
                    _ => format!("cnt {} unanswered probes end it", self.eff.cnt),
                }
            ),
        };
        Prediction {
            detect_s: None,
            path: if self.eff.keepalive {
                Path::Idle
            } else {
                Path::KeepaliveOff
            },
            since: self.last_contact,
            dead_at: f.dead_at,
            late_by_up_to: f.late_by_up_to,
            bound: f.bound,
            probes: f.probes.len() as u32,
            explain,
            restated: false,
        }
    }

    /// Emits the prediction when it changed; `contact` marks it as the one in
    /// force at the last contact.
    fn update_prediction(&mut self, contact: bool, out: &mut Vec<EventKind>) {
        self.update_prediction_as(contact, false, out);
    }

    /// As [`Timeline::update_prediction`]; with `relative`, a prediction that
    /// moved only with the last contact (the same time after it, the same path
    /// and bound: what traffic does) is not news.
    fn update_prediction_as(&mut self, contact: bool, relative: bool, out: &mut Vec<EventKind>) {
        let p = self.prediction().with_detect();
        let same_after_contact = |old: &Prediction| {
            let after = |q: &Prediction| q.dead_at.map(|d| d.saturating_sub(q.since));
            old.path == p.path
                && old.bound == p.bound
                && match (after(old), after(&p)) {
                    (Some(a), Some(b)) => a.abs_diff(b) <= old.late_by_up_to + PREDICTION_MOVE,
                    (None, None) => true,
                    _ => false,
                }
        };
        // Timers firing late within the wheel's bound do not change a prediction:
        // it already said "up to late_by_up_to later". Leaving that range does.
        let outside = |old: &Prediction| match (old.dead_at, p.dead_at) {
            (Some(a), Some(b)) => {
                b + PREDICTION_MOVE < a || b > a + old.late_by_up_to + PREDICTION_MOVE
            }
            (None, None) => false,
            _ => true,
        };
        let changed = self.shown.as_ref().is_none_or(|old| {
            if relative {
                return !same_after_contact(old);
            }
            old.path != p.path || outside(old) || old.since.abs_diff(p.since) > CONTACT_JITTER
        });
        // News for a reader is a new path, bound, probe count or detection time;
        // the same promise counted from a newer contact is a restatement.
        let restated = self.shown.as_ref().is_some_and(|old| {
            let detect_moved = match (old.detect_s, p.detect_s) {
                (Some(a), Some(b)) => (a - b).abs() > PREDICTION_MOVE.as_secs_f64(),
                (None, None) => false,
                _ => true,
            };
            old.path == p.path && old.bound == p.bound && old.probes == p.probes && !detect_moved
        });
        let p = Prediction { restated, ..p };
        if contact {
            self.changed_since_contact = false;
        }
        // Beyond the timer wheel's lateness it is a different promise, not a drift.
        let moved = self
            .at_contact
            .as_ref()
            .is_some_and(|a| match (a.dead_at, p.dead_at) {
                (Some(x), Some(y)) => x.abs_diff(y) > a.late_by_up_to + PREDICTION_MOVE,
                (None, None) => false,
                _ => true,
            });
        if contact || self.at_contact.is_none() || (self.changed_since_contact && moved) {
            self.at_contact = Some(p.clone());
        }
        if changed {
            out.push(EventKind::Prediction(p.clone()));
            self.shown = Some(p);
        } else if relative {
            // The reader knows it: the same time after a contact the data line told.
            self.shown = Some(p);
        }
    }

    /// Called just before the command writes, with a fresh sample already observed:
    /// remembers when the oldest unacknowledged send left, which starts the clock of
    /// the retransmission path and the user timeout.
    pub fn note_send(&mut self, now: Duration) {
        // Behind a zero window a write is only queued: nothing goes in flight.
        if self.zw.is_some() {
            return;
        }
        let now = now.saturating_add(self.offset);
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
        let now = now.saturating_add(self.offset);
        let traffic = self.traffic_pending.then(|| {
            self.last_traffic_report
                .map_or(now, |t| t.saturating_add(TRAFFIC_REPORT_EVERY))
        });
        let after = |due: Duration| {
            let due = due.saturating_add(DUE_SLACK);
            if now < due {
                due
            } else {
                let late = now - due;
                now.saturating_add((late / 8).clamp(MIN_STEP, Duration::from_secs(1)))
            }
        };
        let kernel = if let Some(zw) = &self.zw {
            Some(after(zw.timer.fires_at))
        } else if self.in_flight {
            let step = (self.rto / 4).clamp(MIN_STEP, Duration::from_millis(200));
            Some(now.saturating_add(step))
        } else if self.eff.keepalive {
            Some(self.probe_wake(now))
        } else {
            None
        };
        let wake = match (traffic, kernel) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        wake.map(|w| w.saturating_sub(self.offset))
    }

    /// Where the wheel puts the firing that sends the next keepalive probe (model
    /// clock): when the pending timer is the one the kernel re-armed at the last
    /// probe's firing, exactly [`Wheel::rearmed_after`] after that firing, which the
    /// samples place to within a jiffy or a step; else from its due time to the
    /// wheel's late bound.
    ///
    /// [`Wheel::rearmed_after`]: crate::model::wheel::Wheel::rearmed_after
    fn probe_window(&self) -> (Duration, Duration) {
        let due = self.ka.next_probe(&self.eff);
        let rearmed = self
            .last_firing
            .filter(|f| f.armed_at == self.ka.armed_at && due == self.ka.fires_at)
            .and_then(|f| {
                let armed = self.ka.fires_at.saturating_sub(self.ka.armed_at);
                let after = self.params.wheel.rearmed_after(armed, f.gran)?;
                Some((f.lo.saturating_add(after), f.hi.saturating_add(after)))
            });
        rearmed.unwrap_or_else(|| {
            let armed = due.saturating_sub(self.ka.next_probe_armed_at(&self.eff));
            (due, due.saturating_add(self.params.wheel.late_bound(armed)))
        })
    }

    /// When to look for the next keepalive probe (model clock). A probe expected to
    /// be answered (none out yet) whose window is at most [`ONE_LOOK`] wide gets one
    /// look just after the window: its answer dates it. Otherwise the looks start
    /// at the window's opening and step by an eighth of the time since, at least
    /// [`MIN_STEP`], so a probe nothing dates is reported within a step of the wire
    /// and a timer late beyond the window is still followed.
    fn probe_wake(&self, now: Duration) -> Duration {
        let (lo, hi) = self.probe_window();
        let first = lo.saturating_add(DUE_SLACK);
        let last = hi.saturating_add(DUE_SLACK);
        if self.probes_seen == 0 && hi.saturating_sub(lo) <= ONE_LOOK && now < last {
            return last;
        }
        if now < first {
            return first;
        }
        let late = now - first;
        now.saturating_add((late / 8).clamp(MIN_STEP, Duration::from_secs(1)))
    }

    /// The `end` facts for an outcome decided at `now`: the prediction is the one
    /// in force at the last contact (the busy path's when data was in flight).
    pub fn end(
        &self,
        now: Duration,
        outcome: Outcome,
        errno: Option<String>,
        message: String,
    ) -> EndFacts {
        let now = now.saturating_add(self.offset);
        let in_force = match self.busy_since() {
            Some(_) => Some(self.prediction().with_detect()),
            None => self.at_contact.clone(),
        };
        let predicted = in_force.as_ref().and_then(Prediction::detect_s);
        let detect_s = match outcome {
            Outcome::Alive | Outcome::Error | Outcome::ConnectFailed => None,
            o if o.is_signal() => None,
            _ if !self.observed => None,
            _ => Some(now.saturating_sub(self.last_contact).as_secs_f64()),
        };
        let mut message = message;
        if let (Some(zw), Outcome::Timeout) = (&self.zw, outcome) {
            let by = match in_force.as_ref().map(|p| p.bound) {
                Some(Bound::UserTimeout) => "the user timeout ended it".to_string(),
                _ => format!(
                    "{} unanswered window probes ended it (tcp_retries2)",
                    self.params.retries2
                ),
            };
            message = format!(
                "{message}; the peer stopped reading (zero window, {} window probe(s)): {by}",
                zw.probes
            );
        }
        let mut end = EndFacts::new(outcome, errno, message, detect_s, predicted);
        if let Some(p) = in_force.filter(|_| detect_s.is_some()) {
            end.bound = Some(p.bound);
            end.path = Some(p.path);
        }
        end
    }
}

#[cfg(test)]
mod tests;
