//! One followed connection: joining the watch (its owner, its settings read
//! exactly through pidfd_getfd where permitted, else the [`Knowledge`] inferred
//! from its timer), each reading's update (a dump's or its own look-up's) of what
//! is known and of its [`Timeline`], and when it is looked up next
//! ([`Lookups`]). A duplicate descriptor is closed at once.

use std::cmp::Reverse;
use std::time::Duration;

use super::Watch;
use crate::engine::run::{Reporter, RunError};
use crate::model::event::{ConntrackFacts, EventKind, WatchFacts};
use crate::model::infer::{self, Knowledge, TimerReading};
use crate::model::lookups::{DUE_SLACK, Lookups, Pending};
use crate::model::predict::Effective;
use crate::model::schedule::KernelParams;
use crate::model::timeline::Timeline;
use crate::model::watch::{self, EndClues, HiddenTimer};
use crate::sys::conntrack::{self, ConntrackError, TCP_CONNTRACK_ESTABLISHED};
use crate::sys::pidfd;
use crate::sys::procfs::{self, Owner};
use crate::sys::sockdiag::{DiagEntry, TCP_ESTABLISHED, TimerKind};
use crate::sys::sysctl;

/// A connection seen in its first moments with keepalive off is not judged
/// until it is this old: its owner may still set keepalive up (sshd does about
/// 100 ms after accept; the README's sample connections within milliseconds).
const SETTLE: Duration = Duration::from_secs(1);
/// Timer readings within this much (plus the dump's own duration) agree.
const REREAD_TOLERANCE: Duration = Duration::from_millis(250);
/// A contradiction that persists (the settings read again were the same) is read
/// again at most this often.
const REREAD_EVERY: Duration = Duration::from_secs(1);

fn reading(e: &DiagEntry) -> TimerReading {
    let info = e.info.unwrap_or_default();
    TimerReading {
        keepalive_timer: e.timer == TimerKind::KeepAlive,
        expires_ms: e.expires.as_millis() as u64,
        since_contact_ms: info.since_contact().as_millis() as u64,
        probes: info.probes,
        bytes_received: info.bytes_received,
        bytes_acked: info.bytes_acked,
    }
}

/// SO_KEEPALIVE as an ESTABLISHED socket's timer shows it.
fn keepalive_from_timer(t: TimerKind) -> Option<bool> {
    match t {
        TimerKind::KeepAlive => Some(true),
        TimerKind::None => Some(false),
        _ => None,
    }
}

/// The timer a reading shows, for the look-up schedule.
fn pending(t: TimerKind) -> Pending {
    match t {
        TimerKind::None => Pending::None,
        TimerKind::KeepAlive => Pending::Keepalive,
        TimerKind::ZeroWindow => Pending::ZeroWindow,
        TimerKind::Retransmit => Pending::Retransmit,
        TimerKind::TimeWait => Pending::Other,
    }
}

/// One watched connection.
pub(super) struct Conn {
    pub(super) id: u64,
    pub(super) owner: Option<Owner>,
    pub(super) generation: u64,
    pub(super) know: Knowledge,
    pub(super) timeline: Timeline,
    pub(super) last: DiagEntry,
    pub(super) last_at: Duration,
    pub(super) config_sent: bool,
    pub(super) hidden_timer: Option<HiddenTimer>,
    /// What its end will be judged by.
    pub(super) clues: EndClues,
    /// Run time of the dump that no longer showed it (it is waiting for its destroy
    /// notification).
    pub(super) gone_at: Option<Duration>,
    /// Run time of the last time the settings were read again.
    pub(super) last_reread: Option<Duration>,
    /// Until when a new connection with keepalive off is not judged (its config,
    /// prediction and warnings held back), see [`SETTLE`].
    pub(super) settle_until: Option<Duration>,
    /// A warning held back while it settles.
    pub(super) held_warning: Option<String>,
    /// What its readings said of its pending timer, and the run time of its next
    /// own look-up (`None`: the next discovery dump reads it).
    pub(super) lookups: Lookups,
    pub(super) next_lookup: Option<Duration>,
}

impl Watch {
    /// Reads a socket's settings through pidfd_getfd, or says why not.
    fn read_settings(&mut self, owner: Option<&Owner>, inode: u32) -> Result<Effective, String> {
        if inode == 0 {
            return Err(
                "not accepted by its listener yet: no process holds it, so its settings are \
                 the listener's as inherited, not read"
                    .to_string(),
            );
        }
        let Some(owner) = owner else {
            return Err(procfs::no_owner_reason().to_string());
        };
        if let Some(why) = self.unreadable.get(&owner.pid) {
            return Err(why.clone());
        }
        pidfd::read_settings_fd(owner.pid, owner.fd, inode).map_err(|e| {
            let why = e.to_string();
            if e.is_permanent() {
                self.unreadable.insert(owner.pid, why.clone());
            }
            why
        })
    }

    /// Conntrack cannot be read in this run: said once, then not asked again.
    pub(super) fn conntrack_unavailable(
        &mut self,
        rep: &mut Reporter,
        e: &ConntrackError,
    ) -> Result<(), RunError> {
        self.conntrack = None;
        rep.emit(
            super::RUN,
            EventKind::Warning {
                message: format!(
                    "this host's conntrack entries are not shown: {e}; whether a \
                     connection's keepalive outlives its entry is not checked"
                ),
            },
        )
    }

    /// The connection's entry in this host's conntrack, judged against its
    /// keepalive; `None` when it has none or conntrack cannot be read.
    fn conntrack_of(
        &mut self,
        rep: &mut Reporter,
        id: u64,
        e: &DiagEntry,
        know: &Knowledge,
    ) -> Result<Option<ConntrackFacts>, RunError> {
        let Some(ct) = self.conntrack.as_mut() else {
            return Ok(None);
        };
        let entry = match ct.lookup(e.local, e.peer) {
            Ok(Some(entry)) => entry,
            Ok(None) => return Ok(None),
            Err(err) if err.is_permanent() => {
                self.conntrack_unavailable(rep, &err)?;
                return Ok(None);
            }
            Err(err) => {
                rep.emit(
                    id,
                    EventKind::Warning {
                        message: format!("conntrack entry not read: {err}"),
                    },
                )?;
                return Ok(None);
            }
        };
        let state = entry.tcp_state;
        Ok(Some(watch::conntrack_facts(
            watch::ConntrackEntry {
                left: entry.timeout,
                established: state == Some(TCP_CONNTRACK_ESTABLISHED),
                state: state.map_or("UNKNOWN", conntrack::tcp_state_name),
            },
            self.ct_established,
            know.keepalive,
            know.idle_s,
            know.intvl_s,
        )))
    }

    fn watched_facts(
        &self,
        e: &DiagEntry,
        owner: Option<&Owner>,
        know: &Knowledge,
        unread_reason: Option<String>,
        conntrack: Option<ConntrackFacts>,
    ) -> WatchFacts {
        WatchFacts {
            local: e.local,
            peer: e.peer,
            pid: owner.map(|o| o.pid),
            process: owner.map(|o| o.name.clone()),
            uid: e.uid,
            inode: e.inode,
            timer: e.timer.name(),
            timer_expires_ms: e.expires.as_millis() as u64,
            keepalive: know.keepalive,
            idle_s: know.idle_s,
            intvl_s: know.intvl_s,
            cnt: know.cnt,
            idle_source: know.idle_source.name(),
            intvl_source: know.intvl_source.name(),
            cnt_source: know.cnt_source.name(),
            user_timeout_ms: know.user_timeout_ms,
            user_timeout_source: know.user_timeout_source.name(),
            keepalive_source: know.keepalive_source.name(),
            settings_read: know.is_read(),
            settings_unread_reason: unread_reason,
            last_contact_ago_s: e.info.map_or(0.0, |i| i.since_contact().as_secs_f64()),
            probes_out: 0,
            settle_s: None,
            conntrack,
            netns: self.filter.netns_label.clone(),
            owner_unknown: match owner {
                Some(_) => None,
                None if e.inode == 0 => Some("unaccepted"),
                None if procfs::sees_every_process() => Some("no-process"),
                None => Some("not-visible"),
            },
        }
    }

    pub(super) fn join(
        &mut self,
        rep: &mut Reporter,
        now: Duration,
        e: &DiagEntry,
    ) -> Result<(), RunError> {
        let id = self.next_id;
        self.next_id += 1;
        let owner = self.owners.lookup(e.inode).cloned();
        let (mut know, unread_reason) = match self.read_settings(owner.as_ref(), e.inode) {
            Ok(eff) => (Knowledge::read(eff), None),
            Err(why) => (
                Knowledge::from_defaults(
                    self.defaults.idle_s,
                    self.defaults.intvl_s,
                    self.defaults.cnt,
                ),
                Some(why),
            ),
        };
        know.first(keepalive_from_timer(e.timer));
        // Not in the first dump: it appeared since the previous one (or waited in
        // its listener's accept queue from when it was first seen there).
        let settle_until = (self.generation > 1 && know.keepalive == Some(false)).then(|| {
            let first_seen = self.unaccepted.get(&e.cookie).copied().unwrap_or(now);
            first_seen.saturating_add(SETTLE)
        });
        let ct = self.conntrack_of(rep, id, e, &know)?;
        let ct_warning = ct.as_ref().and_then(|c| {
            watch::conntrack_warning(
                c,
                know.keepalive,
                know.idle_s,
                know.intvl_s,
                !know.is_read(),
                self.ct_loose,
            )
        });
        let facts = watch::config_facts(&know, self.retries2);
        let params = KernelParams {
            retries2: self.retries2,
            ..sysctl::kernel_params()
        };
        let mut timeline = Timeline::new(know.effective(), params, now);
        timeline.set_uncertainty(self.dump_uncertainty);
        // The first sample comes before the join line so that the line can say
        // what already happened (probes out before the join are not new ones).
        let first = e.info.map(|info| timeline.observe(now, &info));
        let mut watched = self.watched_facts(e, owner.as_ref(), &know, unread_reason, ct);
        watched.probes_out = timeline.probes_at_join();
        watched.settle_s = settle_until.map(|_| SETTLE.as_secs_f64());
        rep.emit(id, EventKind::Watched(watched))?;
        let mut held_warning = None;
        if let Some(message) = ct_warning {
            if settle_until.is_some() {
                held_warning = Some(message);
            } else {
                rep.emit(id, EventKind::Warning { message })?;
            }
        }
        let config_sent = know.keepalive.is_some() && settle_until.is_none();
        if config_sent {
            rep.emit(id, EventKind::Config(facts))?;
        }
        if let Some(mut first) = first {
            if settle_until.is_some() {
                // "Never detected" would be a judgement made too early.
                first.retain(|k| !matches!(k, EventKind::Prediction(_)));
            }
            rep.emit_all(id, first)?;
        }
        let mut conn = Conn {
            id,
            owner,
            generation: self.generation,
            know,
            timeline,
            last: *e,
            last_at: now,
            config_sent,
            hidden_timer: None,
            clues: EndClues::default(),
            gone_at: None,
            last_reread: None,
            settle_until,
            held_warning,
            lookups: Lookups::new(self.wheel),
            next_lookup: None,
        };
        if let Some(info) = &e.info {
            conn.clues.established(info, e.send_queue);
        }
        hidden_timer_warning(rep, &mut conn, e, self.retries2)?;
        self.schedule(&mut conn, e, now, None);
        self.conns.insert(e.cookie, conn);
        Ok(())
    }

    pub(super) fn update(
        &mut self,
        rep: &mut Reporter,
        now: Duration,
        e: &DiagEntry,
    ) -> Result<(), RunError> {
        let retries2 = self.retries2;
        let Some(mut conn) = self.conns.remove(&e.cookie) else {
            return Ok(());
        };
        conn.generation = self.generation;
        if e.state != TCP_ESTABLISHED {
            conn.clues.left(e.state);
            conn.last = *e;
            self.conns.insert(e.cookie, conn);
            return self.judge_at(rep, e.cookie, None, now);
        }
        let dt = now.saturating_sub(conn.last_at).as_millis() as u64;
        let timer_keepalive = keepalive_from_timer(e.timer);
        let mut changed_why = None;
        let (changed, probe_answered) = if conn.know.is_read() {
            changed_why = self.reread(rep, &mut conn, e, timer_keepalive, dt, now)?;
            (changed_why.is_some(), false)
        } else {
            conn.know
                .update_seen(timer_keepalive, &reading(&conn.last), &reading(e), dt)
        };
        let settling = conn.settle_until.is_some_and(|t| now < t)
            && conn.know.keepalive == Some(false)
            && !changed;
        let mut restate = None;
        let mut rearmed = false;
        if !settling && conn.settle_until.take().is_some() {
            // Settled: what was held back is stated now (with keepalive switched
            // on meanwhile, the new config says so and the prediction follows).
            conn.config_sent = false;
            if conn.know.keepalive == Some(false) {
                restate = Some(conn.held_warning.take());
            }
        }
        if !settling && (changed || (!conn.config_sent && conn.know.keepalive.is_some())) {
            // What is known changed: say so; the timeline keeps what it observed.
            let mut facts = watch::config_facts(&conn.know, self.retries2);
            conn.timeline
                .set_settings(conn.know.effective(), self.retries2);
            if changed_why.is_some() && e.timer == TimerKind::KeepAlive {
                // The change re-armed the kernel's timer: it is read, not modelled.
                conn.timeline
                    .kernel_timer_at(now.saturating_add(e.expires), self.dump_uncertainty);
            }
            rearmed = changed_why.is_some() && e.timer == TimerKind::KeepAlive;
            facts.changed = changed_why;
            rep.emit(conn.id, EventKind::Config(facts))?;
            conn.config_sent = true;
        }
        if let Some(held) = restate {
            rep.emit(conn.id, conn.timeline.restate_prediction())?;
            if let Some(message) = held {
                rep.emit(conn.id, EventKind::Warning { message })?;
            }
        }
        if let Some(info) = &e.info {
            conn.timeline.set_uncertainty(self.dump_uncertainty);
            let events = if probe_answered {
                conn.timeline.observe_answered_probe(now, info)
            } else {
                conn.timeline.observe(now, info)
            };
            rep.emit_all(conn.id, events)?;
            conn.clues.established(info, e.send_queue);
        }
        hidden_timer_warning(rep, &mut conn, e, retries2)?;
        conn.last = *e;
        conn.last_at = now;
        // Its owner just re-armed the timer (a changed setting): the probe may be
        // due at once, where the wheel allows a late firing only a few
        // milliseconds, and a loaded host runs timers later than that. It is
        // read again no sooner than --interval, as a dump would (looked at 16 ms
        // after such a due time, tests/watch_apps.rs's re-tuned socat was warned
        // about as a late probe at load 13).
        let rearmed = rearmed.then(|| now.saturating_add(self.interval));
        self.schedule(&mut conn, e, now, rearmed);
        self.conns.insert(e.cookie, conn);
        Ok(())
    }

    /// After a reading at `now`: when the connection is looked up next, by its
    /// timer, the end of its settling or its predicted give-up, not before
    /// `not_before`.
    fn schedule(
        &mut self,
        conn: &mut Conn,
        e: &DiagEntry,
        now: Duration,
        not_before: Option<Duration>,
    ) {
        conn.lookups
            .seen(now, pending(e.timer), e.expires, self.dump_uncertainty);
        let gives_up = conn
            .timeline
            .gives_up_at()
            .map(|t| t.saturating_add(DUE_SLACK));
        let next = conn
            .lookups
            .next(now, self.interval, &[conn.settle_until, gives_up])
            .map(|t| not_before.map_or(t, |nb| t.max(nb)));
        if next != conn.next_lookup {
            if let Some(t) = next {
                self.due.push(Reverse((t, e.cookie)));
            }
            conn.next_lookup = next;
        }
    }
}

impl Watch {
    /// Settings read earlier are read again when the kernel shows they changed (a
    /// process may set options at any time: pools re-tune sockets, `tune` exists)
    /// and when a probe goes out unanswered (cnt then decides). Returns why, when
    /// the settings read now differ. When they cannot be read again, the
    /// knowledge is marked stale (the end is then not judged certain) and a
    /// warning says so, once.
    fn reread(
        &mut self,
        rep: &mut Reporter,
        conn: &mut Conn,
        e: &DiagEntry,
        timer_keepalive: Option<bool>,
        dt_ms: u64,
        now: Duration,
    ) -> Result<Option<String>, RunError> {
        let held = conn.know.effective();
        let tolerance = REREAD_TOLERANCE
            .saturating_add(self.dump_uncertainty)
            .as_millis() as u64;
        let why = if watch::keepalive_switched(&conn.know, timer_keepalive) {
            Some(format!(
                "the kernel shows keepalive {}",
                if timer_keepalive == Some(true) {
                    "on (its timer is pending)"
                } else {
                    "off (no timer pending)"
                }
            ))
        } else {
            infer::contradiction(&held, &reading(&conn.last), &reading(e), dt_ms, tolerance)
        };
        let probe_out = e.info.map_or(0, |i| i.probes) > conn.last.info.map_or(0, |i| i.probes);
        let due = conn
            .last_reread
            .is_none_or(|t| now >= t.saturating_add(REREAD_EVERY));
        let Some(why) = why.or_else(|| probe_out.then(String::new)) else {
            return Ok(None);
        };
        if !due && !probe_out {
            return Ok(None);
        }
        conn.last_reread = Some(now);
        let owner = conn.owner.clone();
        match self.read_settings(owner.as_ref(), e.inode) {
            Ok(eff) if eff != held => {
                conn.know = Knowledge::read(eff);
                let why = if why.is_empty() {
                    "a keepalive probe went out: read again".to_string()
                } else {
                    why
                };
                Ok(Some(why))
            }
            Ok(_) => Ok(None),
            Err(reason) if !why.is_empty() && !conn.know.stale => {
                conn.know.stale = true;
                rep.emit(
                    conn.id,
                    EventKind::Warning {
                        message: format!(
                            "the settings read at join no longer explain the kernel's timer \
                             ({why}) and cannot be read again ({reason}): the prediction \
                             uses the old ones and the end is not judged certain"
                        ),
                    },
                )?;
                Ok(None)
            }
            Err(_) => Ok(None),
        }
    }
}

/// The timer that takes the keepalive timer's place, if one does.
fn hidden_timer(t: TimerKind) -> Option<HiddenTimer> {
    match t {
        TimerKind::Retransmit => Some(HiddenTimer::Retransmit),
        TimerKind::ZeroWindow => Some(HiddenTimer::ZeroWindow),
        _ => None,
    }
}

/// Warns once each time a retransmit or zero-window timer takes the keepalive
/// timer's place: keepalive does not run then.
fn hidden_timer_warning(
    rep: &mut Reporter,
    conn: &mut Conn,
    e: &DiagEntry,
    retries2: u32,
) -> Result<(), RunError> {
    let hidden = hidden_timer(e.timer);
    if hidden == conn.hidden_timer {
        return Ok(());
    }
    conn.hidden_timer = hidden;
    let Some(hidden) = hidden else { return Ok(()) };
    let message = hidden.warning(e.info.map_or(0, |i| i.unacked), retries2);
    rep.emit(conn.id, EventKind::Warning { message })
}
