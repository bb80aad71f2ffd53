//! `watch` on Linux: the loop that follows established TCP connections other
//! processes own, observed from outside through sock_diag.
//!
//! Discovery: a dump of the socket table (filtered by state and port in the
//! kernel) is matched against the watch: new ESTABLISHED connections that pass
//! the filters ([`filter`]) join it and known ones feed their [`Timeline`]
//! ([`follow`]); ones that left ESTABLISHED or vanished end with the verdict of
//! [`verdict::judge`] ([`end`]). A dump walks every socket, so it runs every
//! `--interval` only while that costs under 1 % of a core, else at the period the
//! budget allows ([`lookups::discovery_period`], measured in this thread's CPU
//! time, said in a run warning with the join latency it implies). Between dumps
//! each connection is looked up by itself (an exact sock_diag request) when its
//! own timers say something can happen ([`lookups::Lookups`]), and ends arrive as
//! destroy notifications. This module owns the [`Watch`] state those steps share,
//! the cadence of dumps and look-ups, `--dump-once`, and the run's end. Sockets
//! are only read, never changed. Event times are the times of the reading (dump,
//! look-up or destroy notification) that showed them: never early.

mod end;
mod filter;
mod follow;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::WatchOptions;
use crate::engine::connection::interrupted_end;
use crate::engine::event_loop::{EventLoop, Signals, Woke};
use crate::engine::run::{Reporter, RunError, stop_message};
use crate::model::event::{EndFacts, EventKind, Outcome};
use crate::model::expect::Tally;
use crate::model::lookups;
use crate::model::predict::Effective;
use crate::model::wheel::Wheel;
use crate::sys::conntrack::{self, Conntrack};
use crate::sys::procfs::Owners;
use crate::sys::sockdiag::{
    DestroyListener, DiagEntry, SockDiag, SockDiagError, TCP_ESTABLISHED, thread_cpu_time,
    watch_states,
};
use crate::sys::sysctl;

const AF_INET: u8 = libc::AF_INET as u8;
const AF_INET6: u8 = libc::AF_INET6 as u8;

use filter::Filter;
use follow::Conn;

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

/// A discovery dump under way: read a piece at a time between look-ups.
struct Discovery {
    family: u8,
    dumped: usize,
    /// CPU time of the steps so far.
    cost: Duration,
    /// Run time when it began: the time its readings are stamped with.
    before: Duration,
}

/// How long one step of a discovery dump may read before the loop looks at
/// its other work (look-ups due, destroy notifications, signals).
const DUMP_STEP: Duration = Duration::from_millis(5);
/// A connection whose own look-up is due within this long takes no reading from
/// a dump step.
const LOOKUP_SOON: Duration = Duration::from_secs(1);
/// A discovery period up to this long is not said in a warning.
const NOTE_PERIOD_OVER: Duration = Duration::from_secs(1);

struct Watch {
    /// For exact look-ups; `dumper` carries the discovery dumps, so a dump in
    /// progress never has to finish before a look-up.
    diag: SockDiag,
    dumper: SockDiag,
    discovery: Option<Discovery>,
    /// Connections that ended since the current dump began: a reading of theirs
    /// taken before the end is no new connection.
    ended: HashSet<u64>,
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
    /// This host's conntrack, for each joining connection's entry; `None` once it
    /// proved unreadable (said once, in a run warning).
    conntrack: Option<Conntrack>,
    /// nf_conntrack_tcp_timeout_established and nf_conntrack_tcp_loose, read once.
    ct_established: Option<Duration>,
    ct_loose: Option<u32>,
    /// `--interval`: the shortest discovery period, and how often a connection
    /// whose retransmission timer is re-armed by traffic is looked up.
    interval: Duration,
    wheel: Wheel,
    /// Connections' next own look-ups, earliest first; an entry whose time is no
    /// longer its connection's `next_lookup` is stale and skipped.
    due: BinaryHeap<Reverse<(Duration, u64)>>,
    /// Connections that left the table, waiting for their destroy notification
    /// until the run time given.
    awaiting: Vec<(Duration, u64)>,
    /// The discovery period last stated in a run warning.
    said_period: Option<Duration>,
}

pub fn run(
    options: &WatchOptions,
    rep: &mut Reporter,
    signals: &Signals,
) -> Result<EndFacts, RunError> {
    let mut lp = EventLoop::new(Some(signals))?;
    let filter = match Filter::new(options, &mut lp, rep)? {
        Ok(filter) => filter,
        Err(outcome) => {
            let end = interrupted_end(outcome);
            rep.emit(RUN, EventKind::End(end.clone()))?;
            return Ok(end);
        }
    };
    // Everything read from the kernel per network namespace comes from --pid's
    // (filter::Filter::in_netns): the dumps, the notifications, conntrack, sysctls.
    let diag = filter
        .in_netns(SockDiag::open)?
        .map_err(diag_error("watch connections"))?;
    // Discovery dumps have a socket of their own, so a look-up never waits for one.
    let dumper = filter
        .in_netns(SockDiag::open)?
        .map_err(diag_error("watch connections"))?;
    let ns = filter.in_netns(|| {
        let ct = (conntrack::established_timeout(), conntrack::tcp_loose());
        (sysctl::read_here(), ct)
    })?;
    let (ns, (ct_established, ct_loose)) = ns;
    let mut w = Watch {
        diag,
        dumper,
        discovery: None,
        ended: HashSet::new(),
        destroy: None,
        filter,
        owners: Owners::default(),
        conns: HashMap::new(),
        defaults: ns.defaults,
        retries2: ns.retries2,
        next_id: 1,
        generation: 0,
        batch: Vec::new(),
        fresh: Vec::new(),
        tally: Tally::default(),
        unreadable: HashMap::new(),
        unaccepted: HashMap::new(),
        destroy_lost: false,
        dump_uncertainty: Duration::ZERO,
        conntrack: None,
        ct_established,
        ct_loose,
        interval: options.interval,
        wheel: sysctl::kernel_params().wheel,
        due: BinaryHeap::new(),
        awaiting: Vec::new(),
        said_period: None,
    };
    if options.dump_once {
        return w.dump_once(rep);
    }
    match w.filter.in_netns(DestroyListener::open)? {
        Ok(l) => {
            lp.watch(l.fd(), DESTROY, false)?;
            w.destroy = Some(l);
        }
        Err(e) => rep.emit(
            RUN,
            EventKind::Warning {
                message: format!(
                    "no destroy notifications ({e}): ends are found by polling, at a \
                     connection's next look-up or the next dump, and one that ends between two \
                     readings may be judged ambiguous"
                ),
            },
        )?,
    }
    w.pid_note(rep)?;
    match w.filter.in_netns(Conntrack::open)? {
        Ok(ct) => w.conntrack = Some(ct),
        Err(e) => w.conntrack_unavailable(rep, &e)?,
    }
    let start = rep.clock.now();
    let stop_at = options.run_for.map(|d| start.saturating_add(d));
    let mut next_pass = start;
    let mut first_pass = true;
    let mut last_cost = None;
    let mut woke = Woke::Deadline;
    loop {
        let now = rep.clock.now();
        let stop = woke
            .signal()
            .or_else(|| stop_at.filter(|&s| now >= s).map(|_| Outcome::Alive));
        if let Some(outcome) = stop {
            return w.finish(rep, outcome, options);
        }
        if woke == Woke::Ready && lp.is_ready(DESTROY) {
            w.destroyed(rep, now)?;
        }
        if w.discovery.is_none() && now >= next_pass {
            w.begin_pass(rep)?;
        }
        if let Some((dumped, cost)) = w.step_pass(rep)? {
            if first_pass {
                first_pass = false;
                w.nothing_matched_note(rep, options)?;
            }
            // The cheaper of the last two passes: one pass can cost far more than
            // the table's size explains (a first pass over 1,040 sockets was
            // measured at 11.9 ms, where passes over 100,000 cost 1.5 us a
            // socket), and the first alone is not trusted.
            let steady = last_cost.map(|c: Duration| c.min(cost));
            last_cost = Some(cost);
            let period = lookups::discovery_period(options.interval, steady.unwrap_or_default());
            if let Some(steady) = steady {
                w.discovery_note(rep, dumped, steady, period)?;
            }
            // A pass that overran starts the next one at once rather than
            // queueing several.
            next_pass = next_pass.saturating_add(period).max(rep.clock.now());
        }
        w.look_up_due(rep)?;
        w.judge_overdue(rep)?;
        // A dump under way goes on at once, after a look at the descriptors.
        let wake = if w.discovery.is_some() {
            Some(rep.clock.now())
        } else {
            [Some(next_pass), stop_at, w.next_wake()]
                .into_iter()
                .flatten()
                .min()
        };
        woke = lp.wait(&rep.clock, wake)?;
        if w.discovery.is_some()
            && woke == Woke::Deadline
            && let Some(outcome) = signals.pending()
        {
            // Between two steps of a dump the loop does not poll: a signal is
            // taken here, so it never waits for a whole dump.
            woke = Woke::Signal(outcome);
        }
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

    /// Begins a discovery dump (IPv4, then IPv6).
    fn begin_pass(&mut self, rep: &mut Reporter) -> Result<(), RunError> {
        self.generation += 1;
        self.batch.clear();
        self.ended.clear();
        let cpu = thread_cpu_time();
        self.dumper
            .start_dump(AF_INET, watch_states(), self.filter.addresses.port)
            .map_err(diag_error("dump the kernel's socket table (sock_diag)"))?;
        self.discovery = Some(Discovery {
            family: AF_INET,
            dumped: 0,
            cost: thread_cpu_time().saturating_sub(cpu),
            before: rep.clock.now(),
        });
        Ok(())
    }

    /// Reads the dump under way for up to [`DUMP_STEP`], keeping the sockets that
    /// matter: watched ones (whatever their state) and ESTABLISHED ones that
    /// pass the address filters. When the dump is complete, matches it and
    /// returns how many sockets it dumped and the CPU time it and the updates of
    /// known connections took (the part that grows with the socket count; joins
    /// are events, not counted).
    fn step_pass(&mut self, rep: &mut Reporter) -> Result<Option<(usize, Duration)>, RunError> {
        let Some(mut d) = self.discovery.take() else {
            return Ok(None);
        };
        let cpu = thread_cpu_time();
        let step_at = rep.clock.now();
        let from = self.batch.len();
        let conns = &self.conns;
        let filter = &self.filter;
        let batch = &mut self.batch;
        let mut n = 0;
        let done = self
            .dumper
            .dump_step(Instant::now() + DUMP_STEP, |e| {
                n += 1;
                if conns.contains_key(&e.cookie)
                    || (e.state == TCP_ESTABLISHED
                        && filter.addresses.matches(e.local, Some(e.peer)))
                {
                    batch.push(*e);
                }
            })
            .map_err(diag_error("dump the kernel's socket table (sock_diag)"))?;
        d.dumped += n;
        // Known connections take this step's readings now, stamped with its own
        // start (the kernel read them within it), not held until the dump ends:
        // a large table's matching in one piece would hold the look-ups due.
        self.dump_uncertainty = rep.clock.now().saturating_sub(step_at);
        let batch = std::mem::take(&mut self.batch);
        let generation = self.generation;
        for e in &batch[from..] {
            let Some(c) = self.conns.get_mut(&e.cookie) else {
                continue;
            };
            // A look-up during the dump may have read it later than the dump
            // did. One whose own look-up comes soon is left to it: the step's
            // reading is stamped with the step's start, and a probe answered
            // between that and the kernel's read would look like traffic before
            // the probe was due (20 of 240 probes at 100,000 sockets were
            // reported as nothing else).
            let soon = c
                .next_lookup
                .is_some_and(|t| t <= step_at.saturating_add(LOOKUP_SOON));
            if c.last_at > step_at || (soon && e.state == TCP_ESTABLISHED) {
                c.generation = generation;
                continue;
            }
            self.update(rep, step_at, e)?;
        }
        self.batch = batch;
        let complete = done && d.family == AF_INET6;
        if done && d.family == AF_INET {
            self.dumper
                .start_dump(AF_INET6, watch_states(), self.filter.addresses.port)
                .map_err(diag_error("dump the kernel's socket table (sock_diag)"))?;
            d.family = AF_INET6;
        }
        d.cost = d.cost.saturating_add(thread_cpu_time().saturating_sub(cpu));
        if !complete {
            self.discovery = Some(d);
            return Ok(None);
        }
        self.finish_pass(rep, d.before)?;
        Ok(Some((d.dumped, d.cost)))
    }

    /// Matches a complete dump: new connections join, missing ones vanished (the
    /// known ones took their readings step by step).
    fn finish_pass(&mut self, rep: &mut Reporter, before: Duration) -> Result<(), RunError> {
        // The kernel reads its counters somewhere between these two times; on a
        // loaded host they can be far apart. Contacts are placed from the time
        // before the dump: an estimate that is early is never taken for a new
        // contact (only a later one is), so a slow dump cannot invent contacts
        // or hide probe answers. A socket that is gone is stamped with the time
        // after: it may have gone just before the kernel looked, so never early.
        let after = rep.clock.now();
        self.dump_uncertainty = after.saturating_sub(before);
        let now = before;
        self.fresh.clear();
        let ended = &self.ended;
        self.fresh.extend(
            self.batch
                .iter()
                .filter(|e| !self.conns.contains_key(&e.cookie) && !ended.contains(&e.cookie)),
        );
        self.filter.settle_pid(&self.fresh)?;
        let filter = &self.filter;
        self.fresh.retain(|e| filter.matches_pid(e));
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
        let fresh = std::mem::take(&mut self.fresh);
        for e in &fresh {
            self.join(rep, now, e)?;
        }
        self.fresh = fresh;
        self.handed_over(rep, now)?;
        let gone: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.generation != self.generation && c.gone_at.is_none())
            .map(|(k, _)| *k)
            .collect();
        for cookie in gone {
            self.vanished(rep, after, cookie)?;
        }
        // Destroy notifications that may have come meanwhile.
        self.destroyed(rep, after)?;
        Ok(())
    }

    /// Looks up every connection whose own look-up is due: its reading updates
    /// it as a dump's would; not found (gone, or its four-tuple now another
    /// socket's) it vanished.
    fn look_up_due(&mut self, rep: &mut Reporter) -> Result<(), RunError> {
        loop {
            let now = rep.clock.now();
            let Some(&Reverse((t, cookie))) = self.due.peek() else {
                return Ok(());
            };
            if t > now {
                return Ok(());
            }
            self.due.pop();
            let Some(conn) = self.conns.get_mut(&cookie) else {
                continue;
            };
            if conn.next_lookup != Some(t) || conn.gone_at.is_some() {
                continue;
            }
            conn.next_lookup = None;
            let known = conn.last;
            let found = self
                .diag
                .lookup_exact(&known)
                .map_err(diag_error("look a watched connection up (sock_diag)"))?;
            let after = rep.clock.now();
            self.dump_uncertainty = after.saturating_sub(now);
            match found {
                Some(e)
                    if 1u32
                        .checked_shl(e.state.into())
                        .is_some_and(|bit| watch_states() & bit != 0) =>
                {
                    self.update(rep, now, &e)?
                }
                // TIME_WAIT keeps the cookie; the end looks the four-tuple up.
                _ => self.vanished(rep, after, cookie)?,
            }
        }
    }

    /// Connections that waited long enough for their destroy notification are
    /// judged without one.
    fn judge_overdue(&mut self, rep: &mut Reporter) -> Result<(), RunError> {
        let now = rep.clock.now();
        if self.awaiting.iter().all(|&(t, _)| t > now) {
            return Ok(());
        }
        let (overdue, waiting): (Vec<_>, Vec<_>) =
            self.awaiting.drain(..).partition(|&(t, _)| t <= now);
        self.awaiting = waiting;
        for (_, cookie) in overdue {
            if self.conns.get(&cookie).is_some_and(|c| c.gone_at.is_some()) {
                self.judge(rep, cookie, None)?;
            }
        }
        Ok(())
    }

    /// The earliest own look-up or end of a wait for a destroy notification.
    fn next_wake(&mut self) -> Option<Duration> {
        // Stale entries at the top would wake the loop for nothing.
        while let Some(&Reverse((t, cookie))) = self.due.peek() {
            if self
                .conns
                .get(&cookie)
                .is_some_and(|c| c.next_lookup == Some(t) && c.gone_at.is_none())
            {
                break;
            }
            self.due.pop();
        }
        let lookup = self.due.peek().map(|&Reverse((t, _))| t);
        let awaiting = self.awaiting.iter().map(|&(t, _)| t).min();
        lookup.into_iter().chain(awaiting).min()
    }

    /// Says, in a run warning, when the socket table is too large to dump every
    /// `--interval` (or every second) within the budget: how often it is dumped instead and how
    /// soon a new connection joins. Said again when that changes twofold.
    fn discovery_note(
        &mut self,
        rep: &mut Reporter,
        dumped: usize,
        cost: Duration,
        period: Duration,
    ) -> Result<(), RunError> {
        let changed = self
            .said_period
            .is_none_or(|s| period > s.saturating_mul(2) || period.saturating_mul(2) < s);
        // A second or less is not worth a warning (a first, cold dump of a few
        // sockets can cost a few milliseconds).
        if period <= self.interval.max(NOTE_PERIOD_OVER) || !changed {
            return Ok(());
        }
        self.said_period = Some(period);
        let join = lookups::join_latency(period, self.dump_uncertainty);
        rep.emit(
            RUN,
            EventKind::Warning {
                message: format!(
                    "discovery: a dump of {dumped} sockets costs {:.1} ms CPU: dumped every {:.1} s \
                     (1 % of a core); new connections join within {:.1} s",
                    cost.as_secs_f64() * 1e3,
                    period.as_secs_f64(),
                    join.as_secs_f64(),
                ),
            },
        )
    }

    /// `--for` elapsed or a signal: connections waiting for their destroy
    /// notification are judged now; every other one ends as it is.
    fn finish(
        &mut self,
        rep: &mut Reporter,
        outcome: Outcome,
        options: &WatchOptions,
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
        let message = stop_message(outcome, options.run_for);
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
