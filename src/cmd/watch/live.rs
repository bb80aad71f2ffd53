//! `watch` on Linux: the timeline of established TCP connections that other processes own,
//! observed from outside through sock_diag, without touching the sockets.
//!
//! Every `--interval` one dump of the socket table (filtered by state and port in
//! the kernel) is matched against the watch: new ESTABLISHED connections that pass
//! the filters join it, known ones feed their [`Timeline`], and ones that left
//! ESTABLISHED or vanished end with the best classification the outside view
//! allows. This module owns that loop, the filters, what can be inferred about a
//! socket's keepalive settings from its timer (the [`Knowledge`] of a connection),
//! and the end heuristics. Event times are the times of the dumps, so they are
//! late by up to one interval.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::config::WatchConfig;
use crate::engine::event_loop::{EventLoop, Signals, Woke};
use crate::engine::run::{Reporter, RunError, stop_message};
use crate::model::event::{ConfigFacts, EndFacts, EventKind, Outcome, WatchFacts};
use crate::model::expect::Tally;
use crate::model::infer::{Knowledge, TimerReading};
use crate::model::predict::{self, Effective};
use crate::model::settings::{Source, Sources};
use crate::model::timeline::Timeline;
use crate::sys::procfs::{self, Owner, Owners};
use crate::sys::sockdiag::{
    DiagEntry, SockDiag, SockDiagError, TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED,
    TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_TIME_WAIT, TimerKind, state_name, watch_states,
};
use crate::sys::sysctl;

/// Run-level events (the summary `end`) carry connection id 0.
const RUN: u64 = 0;

/// Our errors already name the cause in their text; as an io::Error's message
/// (not its source) they print once, not twice, in the error chain.
fn as_io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn diag_error(op: &'static str) -> impl FnOnce(SockDiagError) -> RunError {
    move |e| RunError::Io {
        op,
        source: as_io(e),
    }
}

/// The user's filters, resolved. The port is also given to the kernel.
struct Filter {
    port: Option<u16>,
    peer_ips: Option<Vec<IpAddr>>,
    peer_port: Option<u16>,
    pid: Option<u32>,
    /// Socket inodes the `--pid` process holds, and ones known not to be its.
    pid_inodes: HashSet<u32>,
    not_pid: HashSet<u32>,
}

impl Filter {
    fn new(cfg: &WatchConfig) -> Result<Filter, RunError> {
        let peer_ips = match &cfg.peer {
            Some(p) => {
                let ips: Vec<IpAddr> = (p.host.as_str(), 0)
                    .to_socket_addrs()
                    .map_err(RunError::socket("resolve --peer", &p.host))?
                    .map(|a| a.ip().to_canonical())
                    .collect();
                Some(ips)
            }
            None => None,
        };
        let mut f = Filter {
            port: cfg.port,
            peer_ips,
            peer_port: cfg.peer.as_ref().and_then(|p| p.port),
            pid: cfg.pid,
            pid_inodes: HashSet::new(),
            not_pid: HashSet::new(),
        };
        if let Some(pid) = f.pid {
            f.pid_inodes = procfs::socket_inodes(pid).map_err(pid_error)?;
        }
        Ok(f)
    }

    /// Port and peer: decided from the dump alone.
    fn matches_addresses(&self, e: &DiagEntry) -> bool {
        if let Some(p) = self.port
            && e.local.port() != p
            && e.peer.port() != p
        {
            return false;
        }
        if let Some(ips) = &self.peer_ips
            && !ips.contains(&e.peer.ip())
        {
            return false;
        }
        if let Some(p) = self.peer_port
            && e.peer.port() != p
        {
            return false;
        }
        true
    }

    /// `--pid`: re-reads the process's descriptors once if some inode is new.
    fn settle_pid(&mut self, fresh: &[DiagEntry]) -> Result<(), RunError> {
        let Some(pid) = self.pid else { return Ok(()) };
        let unknown = fresh
            .iter()
            .any(|e| !self.pid_inodes.contains(&e.inode) && !self.not_pid.contains(&e.inode));
        if !unknown {
            return Ok(());
        }
        match procfs::socket_inodes(pid) {
            Ok(set) => self.pid_inodes = set,
            // The process exited: its sockets go as they go; nothing new is its.
            Err(procfs::ProcError::NoSuchProcess(_)) => self.pid_inodes.clear(),
            Err(e) => return Err(pid_error(e)),
        }
        for e in fresh {
            if !self.pid_inodes.contains(&e.inode) {
                self.not_pid.insert(e.inode);
            }
        }
        Ok(())
    }

    fn matches_pid(&self, e: &DiagEntry) -> bool {
        self.pid.is_none() || (e.inode != 0 && self.pid_inodes.contains(&e.inode))
    }
}

fn pid_error(e: procfs::ProcError) -> RunError {
    RunError::Io {
        op: "apply --pid",
        source: as_io(e),
    }
}

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
struct Conn {
    id: u64,
    owner: Option<Owner>,
    generation: u64,
    know: Knowledge,
    timeline: Timeline,
    last: DiagEntry,
    last_at: Duration,
    config_sent: bool,
    hidden_timer: Option<TimerKind>,
}

struct Watch {
    diag: SockDiag,
    filter: Filter,
    owners: Owners,
    conns: HashMap<u64, Conn>,
    defaults: Effective,
    retries2: u32,
    next_id: u64,
    generation: u64,
    batch: Vec<DiagEntry>,
    fresh: Vec<DiagEntry>,
    tally: Tally,
}

pub fn run(cfg: &WatchConfig, rep: &mut Reporter, signals: &Signals) -> Result<EndFacts, RunError> {
    let mut w = Watch {
        diag: SockDiag::open().map_err(diag_error("watch connections"))?,
        filter: Filter::new(cfg)?,
        owners: Owners::default(),
        conns: HashMap::new(),
        defaults: sysctl::system_defaults(),
        retries2: sysctl::system_retries2(),
        next_id: 1,
        generation: 0,
        batch: Vec::new(),
        fresh: Vec::new(),
        tally: Tally::default(),
    };
    if cfg.dump_once {
        return w.dump_once(rep);
    }
    let mut lp = EventLoop::new(Some(signals))?;
    let start = rep.clock.now();
    let stop_at = cfg.run.run_for.map(|d| start + d);
    let mut next_pass = start;
    let mut woke = Woke::Deadline;
    loop {
        let now = rep.clock.now();
        let stop = woke
            .signal()
            .or_else(|| stop_at.filter(|&s| now >= s).map(|_| Outcome::Alive));
        if let Some(outcome) = stop {
            return w.finish(rep, outcome, cfg);
        }
        if now >= next_pass {
            w.pass(rep, now)?;
            // A fixed cadence; a pass that overran starts the next one at once
            // rather than queueing several.
            next_pass = (next_pass + cfg.interval).max(rep.clock.now());
        }
        let wake = [Some(next_pass), stop_at].into_iter().flatten().min();
        woke = lp.wait(&rep.clock, wake)?;
    }
}

impl Watch {
    /// Dumps and keeps the sockets that matter: watched ones (whatever their
    /// state) and ESTABLISHED ones that pass the address filters.
    fn collect(&mut self) -> Result<usize, RunError> {
        self.generation += 1;
        self.batch.clear();
        let conns = &self.conns;
        let filter = &self.filter;
        let batch = &mut self.batch;
        let dumped = self
            .diag
            .dump_all(watch_states(), filter.port, |e| {
                if conns.contains_key(&e.cookie)
                    || (e.state == TCP_ESTABLISHED && filter.matches_addresses(e))
                {
                    batch.push(*e);
                }
            })
            .map_err(diag_error("dump the kernel's socket table (sock_diag)"))?;
        self.fresh.clear();
        self.fresh.extend(
            self.batch
                .iter()
                .filter(|e| !self.conns.contains_key(&e.cookie)),
        );
        self.filter.settle_pid(&self.fresh)?;
        let filter = &self.filter;
        self.fresh.retain(|e| filter.matches_pid(e));
        Ok(dumped)
    }

    fn dump_once(&mut self, rep: &mut Reporter) -> Result<EndFacts, RunError> {
        let started = Instant::now();
        let dumped = self.collect()?;
        let took = started.elapsed();
        let message = format!(
            "dump-once: {dumped} socket(s) dumped, {} matched, in {:.3} ms",
            self.fresh.len(),
            took.as_secs_f64() * 1e3
        );
        let end = EndFacts::new(Outcome::Alive, None, message, None, None);
        rep.emit(RUN, EventKind::End(end.clone()))?;
        Ok(end)
    }

    fn pass(&mut self, rep: &mut Reporter, now: Duration) -> Result<(), RunError> {
        self.collect()?;
        if !self.fresh.is_empty() {
            // Marks new inodes, then one /proc scan labels them all.
            for e in &self.fresh {
                let _ = self.owners.lookup(e.inode);
            }
            self.owners.refresh_if_needed();
        }
        let batch = std::mem::take(&mut self.batch);
        for e in &batch {
            if self.conns.contains_key(&e.cookie) {
                self.update(rep, now, e)?;
            }
        }
        self.batch = batch;
        let fresh = std::mem::take(&mut self.fresh);
        for e in &fresh {
            self.join(rep, now, e)?;
        }
        self.fresh = fresh;
        let gone: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.generation != self.generation)
            .map(|(k, _)| *k)
            .collect();
        for cookie in gone {
            self.vanished(rep, now, cookie)?;
        }
        Ok(())
    }

    fn effective(&self, know: &Knowledge) -> Effective {
        Effective {
            keepalive: know.keepalive.unwrap_or(false),
            idle_s: know.idle_s,
            intvl_s: know.intvl_s,
            cnt: know.cnt,
            user_timeout_ms: 0,
        }
    }

    /// The `config` facts, with what is assumed rather than read said plainly.
    fn config_facts(&self, know: &Knowledge) -> ConfigFacts {
        let mut facts = self.effective(know).facts(self.retries2);
        facts.sources = Sources {
            keepalive: Source::KernelTimer,
            idle_s: know.idle_source,
            intvl_s: know.intvl_source,
            cnt: Source::SystemDefault,
            user_timeout_ms: Source::Assumed,
        };
        let mut assumed = Vec::new();
        if know.idle_source == Source::SystemDefault {
            assumed.push("idle");
        }
        if know.intvl_source == Source::SystemDefault {
            assumed.push("intvl");
        }
        assumed.push("cnt");
        if know.keepalive == Some(true) {
            let names = match assumed.as_slice() {
                [one] => one.to_string(),
                [init @ .., last] => format!("{} and {last}", init.join(", ")),
                [] => String::new(),
            };
            facts.explain = format!(
                "{}; {names}: system default, may be overridden by the app",
                facts.explain
            );
        }
        facts.warnings.push(
            "watched from outside: TCP_USER_TIMEOUT cannot be seen and is assumed off".to_string(),
        );
        facts
    }

    fn watched_facts(&self, e: &DiagEntry, owner: Option<&Owner>, know: &Knowledge) -> WatchFacts {
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
            cnt_source: Source::SystemDefault.name(),
        }
    }

    fn join(&mut self, rep: &mut Reporter, now: Duration, e: &DiagEntry) -> Result<(), RunError> {
        let id = self.next_id;
        self.next_id += 1;
        let owner = self.owners.lookup(e.inode).cloned();
        let mut know = Knowledge::from_defaults(
            self.defaults.idle_s,
            self.defaults.intvl_s,
            self.defaults.cnt,
        );
        know.first(keepalive_from_timer(e.timer), &reading(e));
        rep.emit(
            id,
            EventKind::Watched(self.watched_facts(e, owner.as_ref(), &know)),
        )?;
        let facts = self.config_facts(&know);
        let mut timeline = Timeline::new(self.effective(&know), self.retries2, now);
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
        };
        hidden_timer_warning(rep, &mut conn, e, self.retries2)?;
        self.conns.insert(e.cookie, conn);
        Ok(())
    }

    fn update(&mut self, rep: &mut Reporter, now: Duration, e: &DiagEntry) -> Result<(), RunError> {
        let retries2 = self.retries2;
        let Some(mut conn) = self.conns.remove(&e.cookie) else {
            return Ok(());
        };
        conn.generation = self.generation;
        if e.state != TCP_ESTABLISHED {
            let (outcome, message) = closed_by(e.state);
            let evidence = format!(
                "the socket went from ESTABLISHED to {}",
                state_name(e.state)
            );
            return self.end(rep, now, conn, outcome, None, message.to_string(), evidence);
        }
        let dt = now.saturating_sub(conn.last_at).as_millis() as u64;
        let changed = conn.know.update(
            keepalive_from_timer(e.timer),
            &reading(&conn.last),
            &reading(e),
            dt,
        );
        if changed || (!conn.config_sent && conn.know.keepalive.is_some()) {
            // What is known changed: say so, and follow with the new settings.
            let facts = self.config_facts(&conn.know);
            conn.timeline = Timeline::new(self.effective(&conn.know), self.retries2, now);
            rep.emit(conn.id, EventKind::Config(facts))?;
            conn.config_sent = true;
        }
        if let Some(info) = &e.info {
            rep.emit_all(conn.id, conn.timeline.observe(now, info))?;
        }
        hidden_timer_warning(rep, &mut conn, e, retries2)?;
        conn.last = *e;
        conn.last_at = now;
        self.conns.insert(e.cookie, conn);
        Ok(())
    }

    /// The socket is no longer in the dump: look it up by its four-tuple (a
    /// TIME_WAIT socket says its owner closed first), else judge from the last
    /// counters seen.
    fn vanished(&mut self, rep: &mut Reporter, now: Duration, cookie: u64) -> Result<(), RunError> {
        let Some(conn) = self.conns.remove(&cookie) else {
            return Ok(());
        };
        let last = conn.last;
        if let Ok(Some(found)) = self.diag.lookup(last.local, last.peer)
            && matches!(
                found.state,
                TCP_TIME_WAIT
                    | TCP_FIN_WAIT1
                    | TCP_FIN_WAIT2
                    | TCP_CLOSING
                    | TCP_CLOSE_WAIT
                    | TCP_LAST_ACK
            )
        {
            let (outcome, message) = closed_by(found.state);
            let evidence = format!(
                "the socket went from ESTABLISHED to {}",
                state_name(found.state)
            );
            return self.end(rep, now, conn, outcome, None, message.to_string(), evidence);
        }
        let info = last.info.unwrap_or_default();
        let (outcome, errno, message, evidence) = if info.probes > 0 {
            (
                Outcome::Timeout,
                Some("ETIMEDOUT".to_string()),
                format!(
                    "the kernel gave up after {} unanswered keepalive probe(s)",
                    info.probes
                ),
                format!(
                    "the socket vanished with {} keepalive probe(s) unanswered at the last dump",
                    info.probes
                ),
            )
        } else if info.retransmits > 0 || last.timer == TimerKind::Retransmit && info.unacked > 0 {
            (
                Outcome::Timeout,
                None,
                "the kernel gave up retransmitting (ETIMEDOUT, or EHOSTUNREACH if the route failed)"
                    .to_string(),
                format!(
                    "the socket vanished with {} retransmission(s) of {} unacknowledged segment(s) outstanding",
                    info.retransmits, info.unacked
                ),
            )
        } else {
            let held = conn
                .owner
                .as_ref()
                .and_then(|o| procfs::holds(o.pid, last.inode));
            let evidence = match (held, &conn.owner) {
                (Some(true), Some(o)) => format!(
                    "the socket vanished without a FIN while pid {} still holds it: the kernel \
                     ended it, so the peer sent RST",
                    o.pid
                ),
                _ => "the socket vanished without a FIN and without outstanding probes or \
                      retransmissions: reset by the peer, or aborted by its owner"
                    .to_string(),
            };
            (
                Outcome::Reset,
                Some("ECONNRESET".to_string()),
                "the connection was reset".to_string(),
                evidence,
            )
        };
        self.end(rep, now, conn, outcome, errno, message, evidence)
    }

    #[allow(clippy::too_many_arguments)]
    fn end(
        &mut self,
        rep: &mut Reporter,
        now: Duration,
        conn: Conn,
        outcome: Outcome,
        errno: Option<String>,
        message: String,
        evidence: String,
    ) -> Result<(), RunError> {
        let mut end = conn.timeline.end(now, outcome, errno, message);
        end.inferred = Some(true);
        end.evidence = Some(evidence);
        self.owners.forget(conn.last.inode);
        self.tally.record(&rep.end(conn.id, end)?);
        Ok(())
    }

    /// `--for` elapsed or a signal: every watched connection ends as it is.
    fn finish(
        &mut self,
        rep: &mut Reporter,
        outcome: Outcome,
        cfg: &WatchConfig,
    ) -> Result<EndFacts, RunError> {
        let now = rep.clock.now();
        let message = stop_message(outcome, cfg.run.run_for);
        let mut conns: Vec<Conn> = self.conns.drain().map(|(_, c)| c).collect();
        conns.sort_by_key(|c| c.id);
        for conn in conns {
            let end =
                conn.timeline
                    .end(now, outcome, None, format!("{message}; still established"));
            let end = rep.end(conn.id, end)?;
            self.tally.record(&end);
        }
        let summary = format!(
            "{message}; {}",
            self.tally.summary("watched", self.next_id - 1)
        );
        let end = self.tally.run_end(outcome, summary);
        rep.emit(RUN, EventKind::End(end.clone()))?;
        Ok(end)
    }
}

/// Who closed a connection whose socket left ESTABLISHED for `state`.
fn closed_by(state: u8) -> (Outcome, &'static str) {
    match state {
        TCP_CLOSE_WAIT | TCP_LAST_ACK => (Outcome::Eof, "the peer closed the connection (FIN)"),
        _ => (
            Outcome::Alive,
            "closed by its owner (FIN sent); the peer was alive as far as the kernel knows",
        ),
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
