//! `watch` on Linux (over 500 lines: one loop whose dump, join, follow and end steps
//! share the watch's state): the timeline of established TCP connections that other
//! processes own, observed from outside through sock_diag.
//!
//! Every `--interval` one dump of the socket table (filtered by state and port in
//! the kernel) is matched against the watch: new ESTABLISHED connections that pass
//! the filters join it, known ones feed their [`Timeline`], and ones that left
//! ESTABLISHED or vanished end with the verdict of [`verdict::judge`]. This module
//! owns that loop, the filters (`--pid` includes the process's descendants), the
//! settings of each socket (read exactly through pidfd_getfd where permitted, else
//! the [`Knowledge`] inferred from its timer), and collecting the end's evidence:
//! states seen, four-tuple lookups, sock_diag's destroy notifications (the final
//! counters of each socket as its owner closes it), and whether the owner still
//! holds a socket that left the table. Sockets are only read, never changed, and a
//! duplicate descriptor is closed at once. Event times are the times of the dumps
//! (or of a destroy notification), so they are late by up to one interval.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::config::WatchConfig;
use crate::engine::connection::interrupted_end;
use crate::engine::event_loop::{EventLoop, Resolved, Signals, Woke};
use crate::engine::run::{Reporter, RunError, stop_message};
use crate::model::event::{ConfigFacts, EndFacts, EventKind, Outcome, WatchFacts};
use crate::model::expect::Tally;
use crate::model::filter::AddressFilter;
use crate::model::infer::{Knowledge, TimerReading};
use crate::model::predict::{self, Effective};
use crate::model::sample::{TCP_CLOSING, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_TIME_WAIT, TcpSample};
use crate::model::schedule::KernelParams;
use crate::model::settings::Sources;
use crate::model::timeline::Timeline;
use crate::model::verdict::{self, Destroyed, Evidence};
use crate::sys::pidfd;
use crate::sys::procfs::{self, Owner, Owners};
use crate::sys::sockdiag::{
    DestroyListener, DiagEntry, SockDiag, SockDiagError, TCP_ESTABLISHED, TimerKind, watch_states,
};
use crate::sys::sysctl;

const DESTROY: u64 = u64::MAX - 1;
/// Run-level events (the summary `end`) carry connection id 0.
const RUN: u64 = 0;
/// How long a socket that left the table waits for its destroy notification
/// before it is judged without one: an owner closes a socket that failed within
/// milliseconds, and one that keeps it open is itself evidence.
const DESTROY_GRACE: Duration = Duration::from_secs(2);
/// An ESTABLISHED socket without an inode is still in its listener's accept
/// queue: no process holds it yet, so neither its owner nor its settings (which
/// the application sets after accept) can be known. It joins once accepted, or
/// after this long if never.
const UNACCEPTED_WAIT: Duration = Duration::from_secs(1);

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
    /// `--port` and `--peer`, decided from the dump alone.
    addresses: AddressFilter,
    pid: Option<u32>,
    /// `--pid` and its descendants, as last read.
    pids: Vec<u32>,
    /// Socket inodes the `--pid` process holds, and ones known not to be its.
    pid_inodes: HashSet<u32>,
    not_pid: HashSet<u32>,
}

impl Filter {
    /// The filters, `--peer` resolved in the event loop (a signal during a slow
    /// lookup comes back as `Err(outcome)`).
    fn new(
        cfg: &WatchConfig,
        lp: &mut EventLoop<'_>,
        rep: &Reporter,
    ) -> Result<Result<Filter, Outcome>, RunError> {
        let peer_ips = match &cfg.peer {
            Some(p) => match lp.resolve(&rep.clock, &p.host, 0)? {
                Resolved::Addrs(addrs) => {
                    Some(addrs.into_iter().map(|a| a.ip().to_canonical()).collect())
                }
                Resolved::Failed(e) => return Err(RunError::socket("resolve --peer", &p.host)(e)),
                Resolved::Interrupted(outcome) => return Ok(Err(outcome)),
            },
            None => None,
        };
        let mut f = Filter {
            addresses: AddressFilter {
                port: cfg.port,
                peer_ips,
                peer_port: cfg.peer.as_ref().and_then(|p| p.port),
            },
            pid: cfg.pid,
            pids: Vec::new(),
            pid_inodes: HashSet::new(),
            not_pid: HashSet::new(),
        };
        if let Some(pid) = f.pid {
            f.pid_inodes = f.read_pid_inodes(pid)?;
        }
        Ok(Ok(f))
    }

    /// The socket inodes of `pid` and of its descendants (which hold a service's
    /// connections: nginx workers, PostgreSQL backends, sshd sessions).
    fn read_pid_inodes(&mut self, pid: u32) -> Result<HashSet<u32>, RunError> {
        let mut inodes = procfs::socket_inodes(pid).map_err(pid_error)?;
        self.pids = vec![pid];
        for child in procfs::descendants(pid) {
            // A descendant that exited or is not ours to read holds nothing we see.
            if let Ok(set) = procfs::socket_inodes(child) {
                inodes.extend(set);
            }
            self.pids.push(child);
        }
        Ok(inodes)
    }

    /// `--pid`: re-reads the process's descriptors once if some inode is new.
    fn settle_pid(&mut self, fresh: &[DiagEntry]) -> Result<(), RunError> {
        let Some(pid) = self.pid else { return Ok(()) };
        // An inode known not to be the process's that is no longer dumped is gone;
        // one still open is in `fresh` every pass (it never joins). Keeping only
        // those bounds the set by the sockets open now, whatever the churn.
        if !self.not_pid.is_empty() {
            let present: HashSet<u32> = fresh.iter().map(|e| e.inode).collect();
            self.not_pid.retain(|inode| present.contains(inode));
        }
        let unknown = fresh
            .iter()
            .any(|e| !self.pid_inodes.contains(&e.inode) && !self.not_pid.contains(&e.inode));
        if !unknown {
            return Ok(());
        }
        match self.read_pid_inodes(pid) {
            Ok(set) => self.pid_inodes = set,
            // The process exited: its sockets go as they go; nothing new is its.
            Err(_) if procfs::process_name(pid).is_none() => self.pid_inodes.clear(),
            Err(e) => return Err(e),
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
    /// States after ESTABLISHED seen at dumps.
    states_seen: Vec<u8>,
    /// The last counters seen while ESTABLISHED.
    last_est: TcpSample,
    /// bytes_acked beyond the data at a dump with nothing in flight: the SYN.
    syn_bytes: Option<i64>,
    /// Run time of the dump that no longer showed it (it is waiting for its destroy
    /// notification), with the four-tuple lookups made then.
    gone_at: Option<Duration>,
    tuple_state: Option<u8>,
    reverse_state: Option<u8>,
}

struct Watch {
    diag: SockDiag,
    destroy: Option<DestroyListener>,
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
    /// Processes whose sockets cannot be opened (not permitted, no pidfd_getfd),
    /// with the reason: not asked again.
    unreadable: HashMap<u32, String>,
    /// Sockets seen in an accept queue, with when first seen.
    unaccepted: HashMap<u64, Duration>,
    /// Whether lost destroy notifications were reported.
    destroy_lost: bool,
    /// The time the last dump took, start to end: its samples are that uncertain.
    dump_uncertainty: Duration,
}

pub fn run(cfg: &WatchConfig, rep: &mut Reporter, signals: &Signals) -> Result<EndFacts, RunError> {
    let mut lp = EventLoop::new(Some(signals))?;
    let filter = match Filter::new(cfg, &mut lp, rep)? {
        Ok(filter) => filter,
        Err(outcome) => {
            let end = interrupted_end(outcome);
            rep.emit(RUN, EventKind::End(end.clone()))?;
            return Ok(end);
        }
    };
    let mut w = Watch {
        diag: SockDiag::open().map_err(diag_error("watch connections"))?,
        destroy: None,
        filter,
        owners: Owners::default(),
        conns: HashMap::new(),
        defaults: sysctl::system_defaults(),
        retries2: sysctl::system_retries2(),
        next_id: 1,
        generation: 0,
        batch: Vec::new(),
        fresh: Vec::new(),
        tally: Tally::default(),
        unreadable: HashMap::new(),
        unaccepted: HashMap::new(),
        destroy_lost: false,
        dump_uncertainty: Duration::ZERO,
    };
    if cfg.dump_once {
        return w.dump_once(rep);
    }
    match DestroyListener::open() {
        Ok(l) => {
            lp.watch(l.fd(), DESTROY, false)?;
            w.destroy = Some(l);
        }
        Err(e) => rep.emit(
            RUN,
            EventKind::Warning {
                message: format!(
                    "no destroy notifications ({e}): a connection that ends between two dumps \
                     may be judged ambiguous"
                ),
            },
        )?,
    }
    w.pid_note(rep)?;
    let start = rep.clock.now();
    let stop_at = cfg.run.run_for.map(|d| start.saturating_add(d));
    let mut next_pass = start;
    let mut first_pass = true;
    let mut woke = Woke::Deadline;
    loop {
        let now = rep.clock.now();
        let stop = woke
            .signal()
            .or_else(|| stop_at.filter(|&s| now >= s).map(|_| Outcome::Alive));
        if let Some(outcome) = stop {
            return w.finish(rep, outcome, cfg);
        }
        if woke == Woke::Ready && lp.is_ready(DESTROY) {
            w.destroyed(rep, now)?;
        }
        if now >= next_pass {
            w.pass(rep)?;
            if first_pass {
                first_pass = false;
                w.nothing_matched_note(rep, cfg)?;
            }
            // A fixed cadence; a pass that overran starts the next one at once
            // rather than queueing several.
            next_pass = next_pass.saturating_add(cfg.interval).max(rep.clock.now());
        }
        let wake = [Some(next_pass), stop_at].into_iter().flatten().min();
        woke = lp.wait(&rep.clock, wake)?;
    }
}

/// The final report of a destroyed socket.
fn destroyed_facts(e: &DiagEntry) -> Destroyed {
    let info = e.info.unwrap_or_default();
    Destroyed {
        info,
        aborted_by_owner: e.peer.port() == 0 && info.bytes_acked == 0 && info.bytes_received == 0,
        unread: e.recv_queue,
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
            .dump_all(watch_states(), filter.addresses.port, |e| {
                if conns.contains_key(&e.cookie)
                    || (e.state == TCP_ESTABLISHED
                        && filter.addresses.matches(e.local, Some(e.peer)))
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

    /// `--pid` with descendants: says which processes are watched.
    fn pid_note(&self, rep: &mut Reporter) -> Result<(), RunError> {
        let Some(pid) = self.filter.pid else {
            return Ok(());
        };
        let named = |p: u32| match procfs::process_name(p) {
            Some(n) => format!("{p} ({n})"),
            None => p.to_string(),
        };
        let children = &self.filter.pids[1.min(self.filter.pids.len())..];
        if children.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = children.iter().take(10).map(|&p| named(p)).collect();
        let more = children.len().saturating_sub(10);
        rep.emit(
            RUN,
            EventKind::Warning {
                message: format!(
                    "--pid {}: its descendants hold connections too and are watched with it: \
                     {}{}",
                    named(pid),
                    list.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
            },
        )
    }

    /// After the first pass, `--pid` that matched nothing says why.
    fn nothing_matched_note(&self, rep: &mut Reporter, cfg: &WatchConfig) -> Result<(), RunError> {
        let Some(pid) = self.filter.pid else {
            return Ok(());
        };
        if !self.conns.is_empty() {
            return Ok(());
        }
        let filters = match (cfg.port, &cfg.peer) {
            (None, None) => String::new(),
            _ => " matching --port/--peer".to_string(),
        };
        rep.emit(
            RUN,
            EventKind::Warning {
                message: format!(
                    "--pid {pid}: no established TCP connection{filters} yet: the process and \
                     its {} descendant(s) hold {} socket(s) in all (of any kind: listening, \
                     UDP, unix); new connections join when they appear",
                    self.filter.pids.len().saturating_sub(1),
                    self.filter.pid_inodes.len()
                ),
            },
        )
    }

    fn pass(&mut self, rep: &mut Reporter) -> Result<(), RunError> {
        // The kernel reads its counters somewhere between these two times; on a
        // loaded host they can be far apart. Contacts are placed from the time
        // before the dump: an estimate that is early is never taken for a new
        // contact (only a later one is), so a slow dump cannot invent contacts
        // or hide probe answers. A socket that is gone is stamped with the time
        // after: it may have gone just before the kernel looked, so never early.
        let before = rep.clock.now();
        self.collect()?;
        let after = rep.clock.now();
        self.dump_uncertainty = after.saturating_sub(before);
        let now = before;
        let in_dump: HashSet<u64> = self.batch.iter().map(|e| e.cookie).collect();
        self.unaccepted.retain(|c, _| in_dump.contains(c));
        let unaccepted = &mut self.unaccepted;
        self.fresh.retain(|e| {
            if e.inode != 0 {
                return true;
            }
            let first = *unaccepted.entry(e.cookie).or_insert(now);
            now.saturating_sub(first) >= UNACCEPTED_WAIT
        });
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
            .filter(|(_, c)| c.generation != self.generation && c.gone_at.is_none())
            .map(|(k, _)| *k)
            .collect();
        for cookie in gone {
            self.vanished(rep, after, cookie)?;
        }
        // Destroy notifications that may have come meanwhile, then the ones that
        // waited long enough for theirs.
        self.destroyed(rep, after)?;
        let overdue: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.gone_at
                    .is_some_and(|t| after >= t.saturating_add(DESTROY_GRACE))
            })
            .map(|(k, _)| *k)
            .collect();
        for cookie in overdue {
            self.judge(rep, cookie, None)?;
        }
        Ok(())
    }

    /// Reads the queued destroy notifications; each one of a watched socket ends it.
    fn destroyed(&mut self, rep: &mut Reporter, now: Duration) -> Result<(), RunError> {
        let Some(listener) = self.destroy.as_mut() else {
            return Ok(());
        };
        let mut found = Vec::new();
        let conns = &self.conns;
        let lost = listener
            .drain(|e| {
                if conns.contains_key(&e.cookie) {
                    found.push(*e);
                }
            })
            .map_err(diag_error("read sock_diag destroy notifications"))?;
        if lost && !self.destroy_lost {
            // Said once: on a host with heavy socket churn it can recur.
            self.destroy_lost = true;
            rep.emit(
                RUN,
                EventKind::Warning {
                    message: "destroy notifications were lost (the receive buffer overflowed): \
                              some ends are judged without them"
                        .to_string(),
                },
            )?;
        }
        for e in found {
            if let Some(conn) = self.conns.get_mut(&e.cookie)
                && conn.gone_at.is_none()
            {
                // Destroyed before a dump saw it leave: now is when it ended.
                conn.gone_at = Some(now);
                conn.tuple_state = lookup_state(&mut self.diag, conn.last.local, conn.last.peer);
                conn.reverse_state = lookup_state(&mut self.diag, conn.last.peer, conn.last.local);
            }
            self.judge(rep, e.cookie, Some(destroyed_facts(&e)))?;
        }
        Ok(())
    }

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

    fn join(&mut self, rep: &mut Reporter, now: Duration, e: &DiagEntry) -> Result<(), RunError> {
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

    fn update(&mut self, rep: &mut Reporter, now: Duration, e: &DiagEntry) -> Result<(), RunError> {
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

    /// The socket is no longer in the dump: look its four-tuple up (TIME_WAIT says
    /// it closed first; the peer's socket, when on this host, says the same of the
    /// peer), then wait a little for its destroy notification.
    fn vanished(&mut self, rep: &mut Reporter, now: Duration, cookie: u64) -> Result<(), RunError> {
        let Some(conn) = self.conns.get_mut(&cookie) else {
            return Ok(());
        };
        conn.gone_at = Some(now);
        conn.tuple_state = lookup_state(&mut self.diag, conn.last.local, conn.last.peer);
        conn.reverse_state = lookup_state(&mut self.diag, conn.last.peer, conn.last.local);
        // A socket in a closing state on either side decides it now; anything else
        // (the peer's socket on this host still ESTABLISHED, say) waits for the
        // destroy notification like an unknown.
        let closing = |s: Option<u8>| {
            matches!(
                s,
                Some(TCP_TIME_WAIT | TCP_FIN_WAIT1 | TCP_FIN_WAIT2 | TCP_CLOSING)
            )
        };
        let decided = closing(conn.tuple_state) || closing(conn.reverse_state);
        if decided || self.destroy.is_none() {
            return self.judge(rep, cookie, None);
        }
        Ok(())
    }

    fn judge(
        &mut self,
        rep: &mut Reporter,
        cookie: u64,
        destroyed: Option<Destroyed>,
    ) -> Result<(), RunError> {
        let at = self.conns.get(&cookie).and_then(|c| c.gone_at);
        let at = at.unwrap_or_else(|| rep.clock.now());
        self.judge_at(rep, cookie, destroyed, at)
    }

    /// Ends a connection with the verdict its evidence allows, detected at `at`.
    fn judge_at(
        &mut self,
        rep: &mut Reporter,
        cookie: u64,
        destroyed: Option<Destroyed>,
        at: Duration,
    ) -> Result<(), RunError> {
        let Some(conn) = self.conns.remove(&cookie) else {
            return Ok(());
        };
        let owner_holds = match (&destroyed, &conn.owner, conn.gone_at) {
            (None, Some(o), Some(_)) => procfs::holds(o.pid, conn.last.inode),
            _ => None,
        };
        let evidence = Evidence {
            states_seen: conn.states_seen.clone(),
            last: conn.last_est,
            syn_bytes: conn.syn_bytes,
            tuple_state: conn.tuple_state,
            reverse_state: conn.reverse_state,
            destroyed,
            owner_holds,
            destroy_listening: self.destroy.is_some(),
            settings: conn.know,
        };
        let v = verdict::judge(&evidence);
        let mut end = conn
            .timeline
            .end(at, v.outcome, v.errno.map(str::to_string), v.message);
        end.inferred = Some(true);
        end.evidence = Some(v.evidence);
        end.certainty = Some(v.certainty.name());
        if !v.possible.is_empty() {
            end.possible = Some(v.possible);
        }
        self.owners.forget(conn.last.inode);
        self.tally.record(&rep.end(conn.id, end)?);
        Ok(())
    }

    /// `--for` elapsed or a signal: connections waiting for their destroy
    /// notification are judged now; every other one ends as it is.
    fn finish(
        &mut self,
        rep: &mut Reporter,
        outcome: Outcome,
        cfg: &WatchConfig,
    ) -> Result<EndFacts, RunError> {
        let now = rep.clock.now();
        let _ = self.destroyed(rep, now);
        let pending: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.gone_at.is_some())
            .map(|(k, _)| *k)
            .collect();
        for cookie in pending {
            self.judge(rep, cookie, None)?;
        }
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

/// The state of the socket with this four-tuple, if the kernel has one.
fn lookup_state(
    diag: &mut SockDiag,
    local: std::net::SocketAddr,
    peer: std::net::SocketAddr,
) -> Option<u8> {
    diag.lookup(local, peer).ok().flatten().map(|e| e.state)
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

#[cfg(test)]
#[path = "live/tests.rs"]
mod tests;
