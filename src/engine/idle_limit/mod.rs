//! The `idle-limit` measurement: how long the path to a `tcpalive listen` keeps an idle
//! TCP flow, how it kills a flow it forgot, and which keepalive beats it.
//!
//! Each round opens its test flows together (keepalive off on this side; `HOLD`
//! turns it off on the listener's, model::heartbeat), holds each idle for one
//! duration of the round's plan (model::idle_limit) and checks it: `out` sends
//! `PING` and waits for `PONG`; `in` waits for the listener's `PING`, and when it
//! does not come sends one itself to learn how the path kills the flow. A check
//! bounds its own send with TCP_USER_TIMEOUT: no answer within it is a silent
//! drop, a reset is a reset. All flows wait in the one event loop.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use crate::config::Endpoint;
use crate::engine::event_loop::{EventLoop, Resolved, Signals, Woke};
use crate::engine::run::{Reporter, RunError, stop_message};
use crate::model::event::{EndFacts, EventKind, Outcome, secs_value};
use crate::model::idle_limit::summary::{self, Counts};
use crate::model::idle_limit::{self as model, Bracket, Check, Direction};
use crate::model::tune::KeepaliveRequest as KeepaliveConfig;

/// Run-level events (rounds, the end) carry connection id 0.
const RUN: u64 = 0;
/// Past a check's user timeout, how long before silence is declared by us (the
/// kernel's abort comes at its next retransmission, up to one RTO later).
const CHECK_SLACK: Duration = Duration::from_millis(500);
/// Rounds after the first that refine the bracket, at most.
const MAX_ROUNDS: u32 = 4;
/// The progress line is redrawn this often on a terminal.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

mod flow;
mod verify;

/// What a measurement takes: built from `idle-limit`'s flags by `cmd::idle_limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleLimitOptions {
    /// A `tcpalive listen`, resolved in the event loop.
    pub target: Endpoint,
    /// The longest idle period tested.
    pub max: Duration,
    /// The bracket is refined until it is this narrow.
    pub resolution: Duration,
    pub directions: Vec<Direction>,
    /// Test flows per round, over all directions.
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

/// Everything measured so far.
struct Measure {
    checks: BTreeMap<Direction, Vec<(Duration, Check)>>,
    counts: Counts,
    next_id: u64,
    progress: Progress,
    /// The shortest set-up round trip seen (see [`Flow::path_rtt`]).
    min_rtt: Option<Duration>,
}

impl Measure {
    fn bracket(&self, dir: Direction) -> Bracket {
        Bracket::from_checks(self.checks.get(&dir).map_or(&[][..], Vec::as_slice))
    }

    fn brackets(&self) -> Vec<(Direction, Bracket)> {
        self.checks.keys().map(|&d| (d, self.bracket(d))).collect()
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
    m.progress.clear();
    rep.emit(
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
        let flow = match Flow::open(id, dir, idle, addr, keepalive, started, cfg.connect_timeout)? {
            Ok(f) => f,
            Err(end) => {
                close_all(flows, lp);
                return Ok(RoundEnd::Stopped(end));
            }
        };
        lp.watch(flow.sock.as_fd(), id, true)?;
        m.checks.entry(dir).or_default();
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
            if keepalive.is_none() && hi.is_some_and(|&h| flows[i].idle >= h) {
                flows.swap_remove(i).close(lp, true);
            } else {
                i += 1;
            }
        }
        if flows.is_empty() {
            m.progress.clear();
            return Ok(RoundEnd::Done);
        }
        if let Some(r) = flows.iter().filter(|f| f.held()).map(|f| f.rtt).min() {
            m.min_rtt = Some(m.min_rtt.map_or(r, |seen| seen.min(r)));
        }
        for f in &mut flows {
            f.path_rtt = m.min_rtt;
        }
        let now = rep.clock.now();
        let next = flows.iter().map(Flow::deadline).min();
        if m.progress.due(now) {
            let next_in = next.map(|n| n.saturating_sub(now));
            let text = summary::progress(round, flows.len(), &m.brackets(), next_in);
            m.progress.show(now, &text);
        }
        let wake = [next, m.progress.tick()].into_iter().flatten().min();
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
        let mut i = 0;
        while i < flows.len() {
            let is_ready = ready.contains(&flows[i].id);
            let was_connecting = flows[i].connecting();
            let mut step = Step::Pending;
            if is_ready {
                step = flows[i].on_ready(now, addr, &mut m.counts.bytes);
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
                Step::Done(check, idle) => {
                    let f = flows.swap_remove(i);
                    m.progress.clear();
                    rep.emit(
                        f.id,
                        EventKind::IdleCheck {
                            round,
                            direction: f.dir.name(),
                            idle,
                            result: match check {
                                Check::Survived => "survived",
                                Check::Dropped(_) => "dropped",
                            },
                            drop_mode: match check {
                                Check::Dropped(mode) => Some(mode.name()),
                                Check::Survived => None,
                            },
                            rtt: f.rtt,
                            keepalive_idle_s: f.keepalive_idle_s,
                        },
                    )?;
                    m.checks.entry(f.dir).or_default().push((idle, check));
                    f.close(lp, check != Check::Survived);
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
    summary::facts(v, &cfg.directions, cfg.max, m.counts)
}

/// Measures the idle limit of the path to `cfg.target` in rounds, then checks
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
    let mut m = Measure {
        checks: BTreeMap::new(),
        counts: Counts::default(),
        next_id: 1,
        progress: Progress::new(),
        min_rtt: None,
    };
    let budget = cfg.parallel / cfg.directions.len();
    let mut plan: Vec<(Direction, Duration)> = cfg
        .directions
        .iter()
        .flat_map(|&dir| {
            model::round1(cfg.max, cfg.resolution, budget)
                .into_iter()
                .map(move |d| (dir, d))
        })
        .collect();
    let mut round = 1;
    while !plan.is_empty() && round <= MAX_ROUNDS {
        if let RoundEnd::Stopped(end) =
            run_round(round, &plan, None, cfg, addr, &mut m, rep, &mut lp)?
        {
            return rep.end(RUN, *end);
        }
        round += 1;
        plan = cfg
            .directions
            .iter()
            .flat_map(|&dir| {
                model::refine(&m.bracket(dir), cfg.resolution, budget)
                    .into_iter()
                    .map(move |d| (dir, d))
            })
            .collect();
    }
    let verdict = model::verdict(&m.brackets());
    let mut facts = facts(cfg, &m, &verdict);
    let mut message = summary::summary(&verdict, &cfg.directions, cfg.max, m.counts);
    let mut outcome = Outcome::Alive;
    if let Some(vcfg) = &cfg.verify {
        match verify(vcfg, &verdict, cfg, addr, &mut m, rep, &mut lp)? {
            Verified::Stopped(end) => return rep.end(RUN, *end),
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
                let (verified, text) = summary::verified(check, idle_s, hold, reached);
                outcome = verified;
                message.push_str(&text);
            }
        }
    }
    facts.flows = m.counts.flows;
    facts.bytes_sent = m.counts.bytes;
    let mut end = EndFacts::new(outcome, None, message, None, None);
    end.idle_limit = Some(facts);
    rep.end(RUN, end)
}
