//! One followed connection: joining the watch (its owner, its settings read
//! exactly through pidfd_getfd where permitted, else the [`Knowledge`] inferred
//! from its timer), and each dump's update of what is known and of its
//! [`Timeline`]. A duplicate descriptor is closed at once.

use std::time::Duration;

use super::Watch;
use crate::engine::run::{Reporter, RunError};
use crate::model::event::{ConfigFacts, EventKind, WatchFacts};
use crate::model::infer::{Knowledge, TimerReading};
use crate::model::predict::{self, Effective};
use crate::model::sample::TcpSample;
use crate::model::schedule::KernelParams;
use crate::model::settings::Sources;
use crate::model::timeline::Timeline;
use crate::sys::pidfd;
use crate::sys::procfs::Owner;
use crate::sys::sockdiag::{DiagEntry, TCP_ESTABLISHED, TimerKind};
use crate::sys::sysctl;

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
    pub(super) hidden_timer: Option<TimerKind>,
    /// States after ESTABLISHED seen at dumps.
    pub(super) states_seen: Vec<u8>,
    /// The last counters seen while ESTABLISHED.
    pub(super) last_est: TcpSample,
    /// bytes_acked beyond the data at a dump with nothing in flight: the SYN.
    pub(super) syn_bytes: Option<i64>,
    /// Run time of the dump that no longer showed it (it is waiting for its destroy
    /// notification), with the four-tuple lookups made then.
    pub(super) gone_at: Option<Duration>,
    pub(super) tuple_state: Option<u8>,
    pub(super) reverse_state: Option<u8>,
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
            return Err(
                "its owner is not visible to this user: run watch as root (or as the owner) \
                 to read the settings exactly"
                    .to_string(),
            );
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

    /// The `config` facts: what the prediction uses, where each value comes from,
    /// and the range the unknown ones allow.
    fn config_facts(&self, know: &Knowledge) -> ConfigFacts {
        let mut facts = know.effective().facts(self.retries2);
        facts.sources = Sources {
            keepalive: know.keepalive_source,
            idle_s: know.idle_source,
            intvl_s: know.intvl_source,
            cnt: know.cnt_source,
            user_timeout_ms: know.user_timeout_source,
        };
        if know.is_read() {
            return facts;
        }
        let unknowns = know.unknowns();
        if know.keepalive == Some(true) && !unknowns.is_empty() {
            facts.explain = format!(
                "{}, if {} are as assumed (not read from the socket)",
                facts.explain,
                unknowns.join(", ")
            );
        }
        if let Some(range) = know.detect_range() {
            facts.predicted_detect_min_s = Some(range.min.as_secs_f64());
            facts.predicted_detect_max_s = Some(range.max.as_secs_f64());
        }
        facts.warnings.push(
            "watched from outside without reading the socket: TCP_USER_TIMEOUT cannot be seen \
             and is assumed off, cnt is the system default"
                .to_string(),
        );
        facts
    }

    fn watched_facts(
        &self,
        e: &DiagEntry,
        owner: Option<&Owner>,
        know: &Knowledge,
        unread_reason: Option<String>,
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
        rep.emit(
            id,
            EventKind::Watched(self.watched_facts(e, owner.as_ref(), &know, unread_reason)),
        )?;
        let facts = self.config_facts(&know);
        let params = KernelParams {
            retries2: self.retries2,
            ..sysctl::kernel_params()
        };
        let mut timeline = Timeline::new(know.effective(), params, now);
        timeline.set_uncertainty(self.dump_uncertainty);
        let config_sent = know.keepalive.is_some();
        if config_sent {
            rep.emit(id, EventKind::Config(facts))?;
        }
        if let Some(info) = &e.info {
            rep.emit_all(id, timeline.observe(now, info))?;
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
            states_seen: Vec::new(),
            last_est: e.info.unwrap_or_default(),
            syn_bytes: None,
            gone_at: None,
            tuple_state: None,
            reverse_state: None,
        };
        learn_syn(&mut conn, e);
        hidden_timer_warning(rep, &mut conn, e, self.retries2)?;
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
            conn.states_seen.push(e.state);
            conn.last = *e;
            self.conns.insert(e.cookie, conn);
            return self.judge_at(rep, e.cookie, None, now);
        }
        let dt = now.saturating_sub(conn.last_at).as_millis() as u64;
        let timer_keepalive = keepalive_from_timer(e.timer);
        let mut changed = false;
        let mut probe_answered = false;
        if conn.know.is_read() {
            // The app switched keepalive since it was read: read again.
            if timer_keepalive.is_some() && timer_keepalive != conn.know.keepalive {
                let owner = conn.owner.clone();
                if let Ok(eff) = self.read_settings(owner.as_ref(), e.inode)
                    && eff != conn.know.effective()
                {
                    conn.know = Knowledge::read(eff);
                    changed = true;
                }
            }
        } else {
            (changed, probe_answered) =
                conn.know
                    .update_seen(timer_keepalive, &reading(&conn.last), &reading(e), dt);
        }
        if changed || (!conn.config_sent && conn.know.keepalive.is_some()) {
            // What is known changed: say so; the timeline keeps what it observed.
            let facts = self.config_facts(&conn.know);
            conn.timeline
                .set_settings(conn.know.effective(), self.retries2);
            rep.emit(conn.id, EventKind::Config(facts))?;
            conn.config_sent = true;
        }
        if let Some(info) = &e.info {
            conn.timeline.set_uncertainty(self.dump_uncertainty);
            let events = if probe_answered {
                conn.timeline.observe_answered_probe(now, info)
            } else {
                conn.timeline.observe(now, info)
            };
            rep.emit_all(conn.id, events)?;
            conn.last_est = *info;
        }
        learn_syn(&mut conn, e);
        hidden_timer_warning(rep, &mut conn, e, retries2)?;
        conn.last = *e;
        conn.last_at = now;
        self.conns.insert(e.cookie, conn);
        Ok(())
    }
}

/// At a dump with nothing in flight, bytes_acked beyond the data sent is the SYN
/// (1 on the connecting side, 0 on the accepting one): remembered so that the
/// final counters can tell whether the socket's own FIN was acknowledged.
fn learn_syn(conn: &mut Conn, e: &DiagEntry) {
    if conn.syn_bytes.is_some() || e.state != TCP_ESTABLISHED {
        return;
    }
    if let Some(info) = &e.info
        && info.unacked == 0
        && e.send_queue == 0
    {
        let beyond = info.acked_beyond_data();
        if beyond == 0 || beyond == 1 {
            conn.syn_bytes = Some(beyond);
        }
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
    let hidden =
        matches!(e.timer, TimerKind::Retransmit | TimerKind::ZeroWindow).then_some(e.timer);
    if hidden == conn.hidden_timer {
        return Ok(());
    }
    conn.hidden_timer = hidden;
    let budget = predict::retransmission_budget(retries2).as_secs_f64();
    let message = match hidden {
        Some(TimerKind::Retransmit) => format!(
            "keepalive cannot run: the retransmission timer is pending ({} unacknowledged \
             segment(s)); a dead peer is detected by the retransmission budget ({budget:.1}s, \
             tcp_retries2 {retries2}) or the app's user timeout",
            e.info.map_or(0, |i| i.unacked)
        ),
        Some(_) => "keepalive cannot run: the zero-window probe timer is pending (the peer's \
                    receive window is full)"
            .to_string(),
        None => return Ok(()),
    };
    rep.emit(conn.id, EventKind::Warning { message })
}
