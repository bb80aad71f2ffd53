//! The `idle-limit` measurement: how long the path to a `tcpalive listen` keeps an idle
//! TCP flow, how it kills a flow it forgot, and which keepalive beats it.
//!
//! A control flow (control.rs) registers the run with the listener first; it
//! stays busy, carries the listener's view of each test flow's end (`SAW`) and
//! this side's `DONE`, and the listener closes the run's flows when it ends.
//! The measurement is one round (model::idle_limit::grid): its test flows open
//! together (keepalive off on this side; `HOLD` turns it off on the listener's,
//! model::heartbeat), each held idle for one duration of the grid and then
//! checked (`--verify`'s one flow is round 0): `out` sends
//! `PING` and waits for `PONG`; `in` waits for the listener's `PING`, and when it
//! does not come sends one itself to learn how the path kills the flow. A check
//! bounds its own send with TCP_USER_TIMEOUT: no answer within it is a silent
//! drop, a reset is a reset, a FIN while idle is a flow the path closed. How a
//! drop is reported comes from both ends' views (model::idle_limit::classify).
//! All flows wait in the one event loop.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use crate::config::Endpoint;
use crate::engine::event_loop::{EventLoop, Resolved, Signals, Woke};
use crate::engine::run::{Reporter, RunError, stop_message};
use crate::model::event::{DropFacts, EndFacts, EventKind, Outcome, secs_value};
use crate::model::idle_limit::summary::{self, Counts};
use crate::model::idle_limit::{self as model, Bracket, By, Check, Direction, DropMode, Seen};
use crate::model::tune::KeepaliveRequest as KeepaliveConfig;
use crate::model::units::secs_text;

/// Run-level events (rounds, the end) carry connection id 0.
const RUN: u64 = 0;
/// Past a check's user timeout, how long before silence is declared by us (the
/// kernel's abort comes at its next retransmission, up to one RTO later).
const CHECK_SLACK: Duration = Duration::from_millis(500);
/// The progress line is redrawn this often on a terminal.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// While stdout still has lines to write, the progress line waits this long.
const PROGRESS_RETRY: Duration = Duration::from_millis(50);

/// At the end, how long to wait for the listener's report on an `in` failure
/// (its own send's timeout is 1 s; the report then crosses the path).
const REPORT_GRACE: Duration = Duration::from_secs(2);

mod control;
mod flow;
mod verify;

/// What a measurement takes: built from `idle-limit`'s flags by `cmd::idle_limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleLimitOptions {
    /// A `tcpalive listen`, resolved in the event loop.
    pub target: Endpoint,
    /// The longest idle period tested.
    pub max: Duration,
    /// The grid's step is 1.8 x this as far as `parallel` reaches.
    pub resolution: Duration,
    pub directions: Vec<Direction>,
    /// Test flows of the one round, over all directions.
    pub parallel: usize,
    pub verify: Option<VerifyOptions>,
    pub connect_timeout: Duration,
}

/// `--verify`'s keepalive; `None` takes the recommendation's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    pub idle_s: Option<u32>,
    pub intvl_s: Option<u32>,
    pub cnt: Option<u32>,
}

use control::*;
use flow::*;
use verify::*;

/// A terminal's progress line on stderr (never on a pipe or in a log).
struct Progress {
    on: bool,
    shown: bool,
    next: Duration,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            on: std::io::stderr().is_terminal(),
            shown: false,
            next: Duration::ZERO,
        }
    }

    /// The columns a progress line may take: one less than the terminal's
    /// (a line as wide as the terminal wraps on some), 80 when unknown.
    fn width(&self) -> usize {
        terminal_size::terminal_size_of(std::io::stderr())
            .map_or(80, |(w, _)| usize::from(w.0))
            .saturating_sub(1)
            .max(20)
    }

    fn tick(&self) -> Option<Duration> {
        self.on.then_some(self.next)
    }

    fn due(&self, now: Duration) -> bool {
        self.on && now >= self.next
    }

    fn show(&mut self, now: Duration, text: &str) {
        if !self.due(now) {
            return;
        }
        // Timeline lines are written by stdout's writer thread: drawn before they
        // are out, the progress line would stay in front of them, unerased.
        if !crate::engine::output::settled() {
            self.next = now.saturating_add(PROGRESS_RETRY);
            return;
        }
        self.next = now.saturating_add(PROGRESS_EVERY);
        self.shown = true;
        let _ = write!(std::io::stderr().lock(), "\r\x1b[K{text}");
    }

    /// Erases the line (before a timeline line, or at the end); the next `show`
    /// draws it again at once.
    fn clear(&mut self) {
        if self.shown {
            self.shown = false;
            self.next = Duration::ZERO;
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}

/// One check: its flow, direction, the idle time it stands for, and `None`
/// when it survived, else what this side saw end it. Round 0 is `--verify`'s.
#[derive(Debug, Clone, Copy)]
struct Record {
    id: u64,
    round: u32,
    dir: Direction,
    idle: Duration,
    seen: Option<Seen>,
}

/// Everything measured so far.
struct Measure {
    records: Vec<Record>,
    /// The directions flows were opened for.
    tested: std::collections::BTreeSet<Direction>,
    counts: Counts,
    next_id: u64,
    progress: Progress,
    control: Box<Control>,
    /// `--verify` behind a proxy: the flow sends data this often (model::VerifyPlan).
    refresh: Option<Duration>,
    /// How far the grid finds a limit within `--resolution` (model::fine_to).
    fine_to: Duration,
}

impl Measure {
    /// How a dropped check died, with the listener's report as known now.
    fn classify(&self, r: &Record) -> Option<(DropMode, By)> {
        let seen = r.seen?;
        Some(model::classify(
            r.dir,
            seen,
            self.control.saw.get(&r.id).copied(),
        ))
    }

    fn checks(&self, dir: Direction) -> Vec<(Duration, Check)> {
        self.records
            .iter()
            .filter(|r| r.round > 0 && r.dir == dir)
            .map(|r| {
                let check = match self.classify(r) {
                    Some((mode, _)) => Check::Dropped(mode),
                    None => Check::Survived,
                };
                (r.idle, check)
            })
            .collect()
    }

    fn bracket(&self, dir: Direction) -> Bracket {
        Bracket::from_checks(&self.checks(dir))
    }

    fn brackets(&self) -> Vec<(Direction, Bracket)> {
        self.tested.iter().map(|&d| (d, self.bracket(d))).collect()
    }

    /// Each direction's shortest failure (of the measurement, not `--verify`).
    fn shortest_failures(&self) -> Vec<&Record> {
        self.tested
            .iter()
            .filter_map(|&d| {
                self.records
                    .iter()
                    .filter(|r| r.round > 0 && r.dir == d && r.seen.is_some())
                    .min_by_key(|r| r.idle)
            })
            .collect()
    }

    fn drops(&self) -> std::collections::BTreeMap<&'static str, DropFacts> {
        self.shortest_failures()
            .into_iter()
            .filter_map(|r| {
                let (mode, by) = self.classify(r)?;
                Some((
                    r.dir.name(),
                    DropFacts {
                        mode: mode.name(),
                        by: by.name(),
                        idle_s: secs_value(r.idle),
                        client_saw: r.seen.map_or("nothing", Seen::name),
                        listener_saw: self.control.saw.get(&r.id).map(|s| s.name()),
                    },
                ))
            })
            .collect()
    }

    /// Emits a run-level or flow event with the progress line erased first.
    fn emit(&mut self, rep: &mut Reporter, id: u64, kind: EventKind) -> Result<(), RunError> {
        self.progress.clear();
        rep.emit(id, kind)
    }

    /// Ends the run: the progress line is erased before the end line.
    fn end(&mut self, rep: &mut Reporter, end: EndFacts) -> Result<EndFacts, RunError> {
        self.progress.clear();
        rep.end(RUN, end)
    }
}

enum RoundEnd {
    Done,
    /// A signal or a fatal flow: the run's end.
    Stopped(Box<EndFacts>),
}

/// Runs one round: opens every planned flow, waits for their checks, and stops
/// early for a direction once its shortest failure and everything shorter are
/// known (longer flows would only fail too).
#[allow(clippy::too_many_arguments)]
fn run_round(
    round: u32,
    plan: &[(Direction, Duration)],
    keepalive: Option<&KeepaliveConfig>,
    cfg: &IdleLimitOptions,
    addr: SocketAddr,
    m: &mut Measure,
    rep: &mut Reporter,
    lp: &mut EventLoop<'_>,
) -> Result<RoundEnd, RunError> {
    let (Some(shortest), Some(longest)) = (
        plan.iter().map(|p| p.1).min(),
        plan.iter().map(|p| p.1).max(),
    ) else {
        return Ok(RoundEnd::Done);
    };
    m.emit(
        rep,
        RUN,
        EventKind::IdleRound {
            round,
            flows: plan.len(),
            shortest,
            longest,
        },
    )?;
    m.counts.rounds = m.counts.rounds.max(round);
    let mut flows: Vec<Flow> = Vec::with_capacity(plan.len());
    let started = rep.clock.now();
    for &(dir, idle) in plan {
        let id = m.next_id;
        m.next_id += 1;
        m.counts.flows += 1;
        m.control.last_flow = id;
        let run = m.control.run;
        let opened = Flow::open(
            run,
            id,
            dir,
            idle,
            addr,
            keepalive,
            started,
            cfg.connect_timeout,
        )?;
        let flow = match opened {
            Ok(mut f) => {
                f.refresh = m.refresh;
                f
            }
            Err(end) => {
                close_all(flows, lp);
                return Ok(RoundEnd::Stopped(end));
            }
        };
        lp.watch(flow.sock.as_fd(), id, true)?;
        if round > 0 {
            m.tested.insert(dir);
        }
        flows.push(flow);
    }
    loop {
        // Flows past a direction's shortest failure would only fail too.
        let shortest_failure: BTreeMap<Direction, Duration> = m
            .brackets()
            .into_iter()
            .filter_map(|(d, b)| b.hi.map(|(h, _)| (d, h)))
            .collect();
        let mut i = 0;
        while i < flows.len() {
            let hi = shortest_failure.get(&flows[i].dir);
            if round > 0 && hi.is_some_and(|&h| flows[i].idle >= h) {
                let f = flows.swap_remove(i);
                m.control.done(f.id, rep.clock.now());
                f.close(lp, true);
            } else {
                i += 1;
            }
        }
        if flows.is_empty() {
            m.progress.clear();
            return Ok(RoundEnd::Done);
        }
        let now = rep.clock.now();
        let path_rtt = m.control.path_rtt(now);
        for f in &mut flows {
            f.path_rtt = Some(path_rtt);
        }
        let next = flows.iter().map(Flow::deadline).min();
        if m.progress.due(now) {
            let next_in = next.map(|n| n.saturating_sub(now));
            let text = summary::progress(
                round == 0,
                flows.len(),
                &m.brackets(),
                next_in,
                m.progress.width(),
            );
            m.progress.show(now, &text);
        }
        let wake = [next, m.progress.tick(), Some(m.control.deadline())]
            .into_iter()
            .flatten()
            .min();
        let woke = lp.wait(&rep.clock, wake)?;
        let now = rep.clock.now();
        if let Woke::Signal(outcome) = woke {
            m.progress.clear();
            close_all(flows, lp);
            let mut end = EndFacts::new(outcome, None, stop_message(outcome, None), None, None);
            end.idle_limit = Some(facts(cfg, m, &model::verdict(&m.brackets())));
            return Ok(RoundEnd::Stopped(Box::new(end)));
        }
        let ready: Vec<u64> = match woke {
            Woke::Ready => lp.ready().iter().map(|r| r.token).collect(),
            _ => Vec::new(),
        };
        let control = m.control.step(ready.contains(&CONTROL), now);
        if let Err(end) = control {
            close_all(flows, lp);
            return Ok(RoundEnd::Stopped(end));
        }
        let mut i = 0;
        while i < flows.len() {
            let is_ready = ready.contains(&flows[i].id);
            let was_connecting = flows[i].connecting();
            let mut step = Step::Pending;
            if is_ready {
                step = flows[i].on_ready(now, addr, &mut m.counts.bytes);
            }
            // An `in` flow whose PING the listener reports lost (or reset, or
            // closed) is decided by that report.
            if matches!(step, Step::Pending)
                && flows[i].dir == Direction::In
                && flows[i].held()
                && m.control.saw.contains_key(&flows[i].id)
            {
                step = Step::Done(Some(Seen::Nothing), flows[i].idle);
            }
            if matches!(step, Step::Pending) && flows[i].deadline() <= now {
                step = flows[i].on_deadline(now, addr, &mut m.counts.bytes);
            }
            match step {
                Step::Pending => {
                    if was_connecting && !flows[i].connecting() {
                        let f = &flows[i];
                        lp.unwatch(f.sock.as_fd());
                        lp.watch(f.sock.as_fd(), f.id, false)?;
                    }
                    i += 1;
                }
                Step::Done(seen, idle) => {
                    let f = flows.swap_remove(i);
                    let record = Record {
                        id: f.id,
                        round,
                        dir: f.dir,
                        idle,
                        seen,
                    };
                    let how = m.classify(&record);
                    m.records.push(record);
                    m.emit(
                        rep,
                        f.id,
                        EventKind::IdleCheck {
                            round,
                            direction: f.dir.name(),
                            idle,
                            result: match seen {
                                None => "survived",
                                Some(_) => "dropped",
                            },
                            drop_mode: how.map(|(mode, _)| mode.name()),
                            by: how.map(|(_, by)| by.name()),
                            client_saw: seen.map(Seen::name),
                            listener_saw: m.control.saw.get(&f.id).map(|s| s.name()),
                            rtt: f.rtt,
                            keepalive_idle_s: f.keepalive_idle_s,
                        },
                    )?;
                    m.control.done(f.id, now);
                    f.close(lp, seen.is_some());
                }
                Step::Fatal(end) => {
                    m.progress.clear();
                    close_all(flows, lp);
                    return Ok(RoundEnd::Stopped(end));
                }
            }
        }
    }
}

fn close_all(flows: Vec<Flow>, lp: &mut EventLoop<'_>) {
    for f in flows {
        f.close(lp, true);
    }
}

fn facts(
    cfg: &IdleLimitOptions,
    m: &Measure,
    v: &model::Verdict,
) -> crate::model::event::IdleLimitFacts {
    let mut f = summary::facts(v, &cfg.directions, cfg.max, m.counts);
    f.drops = m.drops();
    f
}

/// The end line's message: the verdict's summary, with how each direction's
/// shortest failure died (both ends' views).
fn message(cfg: &IdleLimitOptions, m: &Measure, v: &model::Verdict) -> String {
    let mut text = summary::summary(v, &cfg.directions, cfg.max, m.counts);
    if let Some((_, half)) = v.limit
        && half > cfg.resolution
    {
        // One round: past the fine part of the grid its flows are 4 % apart.
        text.push_str(&format!(
            "; +-{} and not +-{}: {} flows per direction reach +-{} up to {} only (more \
             --parallel, a shorter --max or --direction out|in make the grid finer)",
            secs_text(half),
            secs_text(cfg.resolution),
            cfg.parallel / cfg.directions.len(),
            secs_text(cfg.resolution),
            secs_text(m.fine_to)
        ));
    }
    for (dir, d) in m.drops() {
        text.push_str(&format!(
            "; {dir}: {} by the {} (this side saw {}, the listener {})",
            d.mode,
            d.by,
            d.client_saw,
            d.listener_saw.unwrap_or("nothing")
        ));
    }
    text
}

/// Measures the idle limit of the path to `cfg.target` in one round, then checks
/// `--verify`'s keepalive against it; returns the `end` it emitted.
pub fn run(
    cfg: &IdleLimitOptions,
    rep: &mut Reporter,
    signals: &Signals,
) -> Result<EndFacts, RunError> {
    // Resolved in the event loop: a signal during a slow lookup ends the run.
    let mut lp = EventLoop::new(Some(signals))?;
    let addr = match lp.resolve(&rep.clock, &cfg.target.host, cfg.target.port)? {
        Resolved::Addrs(addrs) if !addrs.is_empty() => addrs[0],
        Resolved::Addrs(_) => {
            let end = EndFacts::new(
                Outcome::ConnectFailed,
                None,
                format!("'{}' resolved to no address", cfg.target.host),
                None,
                None,
            );
            return rep.end(RUN, end);
        }
        Resolved::Failed(e) => {
            let end = EndFacts::new(
                Outcome::ConnectFailed,
                None,
                format!("cannot resolve '{}': {e}", cfg.target.host),
                None,
                None,
            );
            return rep.end(RUN, end);
        }
        Resolved::Interrupted(outcome) => {
            return rep.end(RUN, crate::engine::connection::interrupted_end(outcome));
        }
    };
    let control = match Control::open(addr, cfg.connect_timeout, rep, &mut lp)? {
        Opened::Open(c) => c,
        Opened::Stopped(end) => return rep.end(RUN, *end),
    };
    let mut m = Measure {
        records: Vec::new(),
        tested: Default::default(),
        counts: Counts::default(),
        next_id: 1,
        progress: Progress::new(),
        control,
        refresh: None,
        fine_to: Duration::ZERO,
    };
    // One round: a second would cost another limit's worth of waiting (see
    // model::idle_limit::grid); the grid is as fine as the budget allows.
    let budget = cfg.parallel / cfg.directions.len();
    let grid = model::grid(cfg.max, cfg.resolution, budget);
    m.fine_to = model::fine_to(&grid, cfg.resolution);
    let plan: Vec<(Direction, Duration)> = cfg
        .directions
        .iter()
        .flat_map(|&dir| grid.iter().map(move |&d| (dir, d)))
        .collect();
    if let RoundEnd::Stopped(end) = run_round(1, &plan, None, cfg, addr, &mut m, rep, &mut lp)? {
        return m.end(rep, *end);
    }
    if let Some(end) = await_reports(&mut m, rep, &mut lp)? {
        return m.end(rep, *end);
    }
    let verdict = model::verdict(&m.brackets());
    if let (Some(lo), Some(shortest)) = (verdict.lo, m.records.iter().map(|r| r.idle).min())
        && lo.is_zero()
    {
        // Not one flow survived, not even the shortest: nothing tells a path
        // that drops every flow from a listener that holds them and answers no
        // check. Either way there is no limit to report.
        let mut end = EndFacts::new(
            Outcome::Error,
            None,
            format!(
                "every test flow was dropped, even after {} idle: the listener does not \
                 answer test flows (not a working `tcpalive listen`), or the path drops \
                 flows idle that briefly; no limit reported",
                secs_text(shortest)
            ),
            None,
            None,
        );
        let mut f = facts(cfg, &m, &model::verdict(&[]));
        f.drops = m.drops();
        end.idle_limit = Some(f);
        return m.end(rep, end);
    }
    let mut facts = facts(cfg, &m, &verdict);
    let mut message = message(cfg, &m, &verdict);
    // A found limit is the measurement's answer (exit 0), not a flow that stayed
    // alive; no limit up to --max is: every flow survived.
    let mut outcome = match verdict.limit {
        Some(_) => Outcome::LimitFound,
        None => Outcome::Alive,
    };
    if let Some(vcfg) = &cfg.verify {
        match verify(vcfg, &verdict, cfg, addr, &mut m, rep, &mut lp)? {
            Verified::Stopped(end) => return m.end(rep, *end),
            Verified::Skipped(why) => message.push_str(&format!("; --verify: {why}")),
            Verified::Checked {
                check,
                idle_s,
                hold,
                reached,
            } => {
                facts.verified = Some(check == Check::Survived);
                facts.verify_idle_s = Some(idle_s);
                facts.verify_hold_s = Some(secs_value(hold));
                let data = m.refresh.is_some() || model::needs_data(verdict.drop_mode);
                let (verified, text) = summary::verified(check, idle_s, hold, reached, data);
                outcome = verified;
                message.push_str(&text);
            }
        }
    }
    facts.flows = m.counts.flows;
    facts.bytes_sent = m.counts.bytes;
    let mut end = EndFacts::new(outcome, None, message, None, None);
    end.idle_limit = Some(facts);
    m.end(rep, end)
}

/// Waits (up to [`REPORT_GRACE`]) for the listener's report on each direction's
/// shortest `in` failure that has none yet: the drop mode there is what happened
/// to the listener's packet. The control flow is served meanwhile, and one more
/// `PING` on it must be answered first: a listener that died as the last flows
/// were checked closes them all with a FIN, which alone reads as a proxy's idle
/// timeout; its control flow's end then names it instead (a proxy keeps the
/// busy control flow).
fn await_reports(
    m: &mut Measure,
    rep: &mut Reporter,
    lp: &mut EventLoop<'_>,
) -> Result<Option<Box<EndFacts>>, RunError> {
    let until = rep.clock.now().saturating_add(REPORT_GRACE);
    let alive = match m.control.ping_now(rep.clock.now()) {
        Ok(seq) => seq,
        Err(end) => return Ok(Some(end)),
    };
    loop {
        let missing = m
            .shortest_failures()
            .iter()
            .any(|r| r.dir == Direction::In && !m.control.saw.contains_key(&r.id));
        let now = rep.clock.now();
        // (an unanswered PING ends the run by itself, after Control's timeout)
        if m.control.answered(alive) && (!missing || now >= until) {
            return Ok(None);
        }
        let woke = lp.wait(&rep.clock, Some(m.control.deadline().min(until)))?;
        let now = rep.clock.now();
        if let Woke::Signal(outcome) = woke {
            return Ok(Some(Box::new(EndFacts::new(
                outcome,
                None,
                stop_message(outcome, None),
                None,
                None,
            ))));
        }
        let ready = lp.is_ready(CONTROL);
        let step = m.control.step(ready, now);
        if let Err(end) = step {
            return Ok(Some(end));
        }
    }
}
