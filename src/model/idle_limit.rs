//! `idle-limit`, the pure part: which idle durations the measurement tests, what
//! the checks say about how long the path keeps an idle flow, and the keepalive
//! that beats it. The engine (`engine::idle_limit`) does the I/O.
//!
//! The measurement is one round: one test flow per duration of a grid from a
//! couple of seconds up to `--max`, all opened at once, each held idle for its
//! duration and then checked. The grid ([`grid`]) is as fine as the flow budget
//! allows: a step just under twice the resolution as far as the budget reaches,
//! then [`RATIO`] apart. Once the shortest failure and every shorter duration are
//! known the round is over, so the wall time is the limit plus at most one step
//! (or 4 %) plus one check: about T + 2 x resolution + a few seconds, within
//! 1.2 x T + 5 s for every limit from 2 s to `--max` (replayed in the tests). A
//! second round would cost another T, so there is none: past the fine part the
//! bracket is what the grid gives (+-2 %), and the end says so.

use std::time::Duration;

use crate::model::heartbeat::Saw;
use crate::model::predict::Effective;
use crate::model::tune::KeepaliveRequest;

pub mod summary;

/// Growth of the geometric part of the grid (past the fine part the budget
/// reaches): the first failure is at most this factor past the limit, and the
/// limit is known within half of it (+-2 %).
pub const RATIO: f64 = 1.04;
/// The grid step, as a fraction of the bracket width `2 x resolution`: a bracket
/// a little narrower than the promise keeps the midpoint within +-resolution even
/// when the flows' idle times are a few milliseconds off.
const STEP_OF_WIDTH: f64 = 0.9;
/// The fewest and most keepalive probes the recommendation uses.
pub const RECOMMENDED_CNT: u32 = 3;

/// Which way the check after the idle period goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// The client (inside the NAT) sends first.
    Out,
    /// The listener (outside) sends first, towards the client.
    In,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
        }
    }
}

/// How the path kills a flow it forgot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropMode {
    /// The next packet vanishes: only a timeout tells.
    Silent,
    /// The next packet (or the expiry itself) is answered with a TCP reset.
    Reset,
    /// The flow is closed with a FIN (a proxy's idle timeout), whether or not a
    /// reset follows.
    Closed,
}

impl DropMode {
    pub fn name(self) -> &'static str {
        match self {
            DropMode::Silent => "silent",
            DropMode::Reset => "reset",
            DropMode::Closed => "closed",
        }
    }
}

/// Who ended a dropped flow, as both ends' views tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// A middlebox: it dropped the packet, or sent the FIN or reset itself.
    Path,
    /// The far end's host: its socket was already gone (its own check timed out),
    /// so it answered the next packet with a reset.
    FarEnd,
}

impl By {
    pub fn name(self) -> &'static str {
        match self {
            By::Path => "path",
            By::FarEnd => "far end",
        }
    }
}

/// What this side saw end a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Our own follow-up PING was answered (the `in` check: the listener's was lost).
    Answered,
    Fin,
    Rst,
    /// Nothing came back within the check's time.
    Timeout,
    /// Nothing yet: the listener's report (its `in` PING was lost) decided.
    Nothing,
}

impl Seen {
    pub fn name(self) -> &'static str {
        match self {
            Seen::Answered => "answered",
            Seen::Fin => "fin",
            Seen::Rst => "rst",
            Seen::Timeout => "timeout",
            Seen::Nothing => "nothing",
        }
    }
}

/// How a dropped flow died, from what both ends saw: this side's `client` view
/// and, when it reported one over the control flow, the listener's.
///
/// The first packet after the idle period decides: ours for `out`, the
/// listener's for `in` (so its view wins there). A reset to our packet comes
/// from the far end's host when the listener already lost its socket (its own
/// send timed out): that flow was dropped silently and the reset is a
/// consequence, not the path's answer.
pub fn classify(dir: Direction, client: Seen, listener: Option<Saw>) -> (DropMode, By) {
    if dir == Direction::In {
        match listener {
            Some(Saw::Timeout | Saw::Error) => return (DropMode::Silent, By::Path),
            Some(Saw::Rst) => return (DropMode::Reset, By::Path),
            Some(Saw::Fin) => return (DropMode::Closed, By::Path),
            None => {}
        }
    }
    match client {
        Seen::Fin => (DropMode::Closed, By::Path),
        Seen::Rst if matches!(listener, Some(Saw::Timeout | Saw::Error)) => {
            (DropMode::Silent, By::FarEnd)
        }
        Seen::Rst => (DropMode::Reset, By::Path),
        Seen::Timeout | Seen::Answered | Seen::Nothing => (DropMode::Silent, By::Path),
    }
}

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Survived,
    Dropped(DropMode),
}

/// The time a check waits for its answer, from the round trip measured when the
/// flow was set up: long enough for a loaded path, short enough to keep the
/// measurement fast (it is also the check's TCP_USER_TIMEOUT).
pub fn check_timeout(rtt: Duration) -> Duration {
    (Duration::from_secs(1) + rtt.saturating_mul(4)).min(Duration::from_secs(10))
}

fn step(resolution: Duration) -> Duration {
    resolution.mul_f64(2.0 * STEP_OF_WIDTH)
}

/// The grid with a linear part (one `step` apart) up to `fine_to`, then
/// geometric (`ratio`, never finer than a step), ending at `max`.
fn build(step: Duration, fine_to: Duration, ratio: f64, max: Duration) -> Vec<Duration> {
    let mut grid = Vec::new();
    let mut d = step.min(max);
    loop {
        grid.push(d);
        if d >= max {
            return grid;
        }
        let next = d.saturating_add(step);
        d = match d < fine_to {
            true => next,
            false => next.max(d.mul_f64(ratio)),
        }
        .min(max);
    }
}

/// The one round's durations, shortest first, ending at `max`; at most `budget`
/// of them (empty when `budget` is 0).
///
/// One round, so the measurement ends about one check time after the first
/// failure: the grid is as fine as the budget allows. A step just under twice
/// the resolution from the start as far as the budget reaches (every limit there
/// is found within +-resolution), then [`RATIO`] apart (within +-2 % there); when
/// even that does not fit, the ratio grows. The first failure thus comes at most
/// one step, or `RATIO` x the limit, after the limit.
pub fn grid(max: Duration, resolution: Duration, budget: usize) -> Vec<Duration> {
    if budget == 0 {
        return Vec::new();
    }
    let step = step(resolution);
    let linear = build(step, max, RATIO, max);
    if linear.len() <= budget {
        return linear;
    }
    if build(step, Duration::ZERO, RATIO, max).len() <= budget {
        // the longest linear part that fits: the count grows with it (past the
        // point where the ratio is coarser than a step, ~45 x the step)
        let (mut fits, mut over) = (0.0, max.as_secs_f64());
        for _ in 0..40 {
            let mid = (fits + over) / 2.0;
            match build(step, Duration::from_secs_f64(mid), RATIO, max).len() <= budget {
                true => fits = mid,
                false => over = mid,
            }
        }
        return build(step, Duration::from_secs_f64(fits), RATIO, max);
    }
    let mut ratio = RATIO;
    loop {
        let mut grid = build(step, Duration::ZERO, ratio, max);
        if grid.len() <= budget || ratio > 1e6 {
            grid.truncate(budget);
            if let Some(last) = grid.last_mut() {
                *last = max;
            }
            return grid;
        }
        ratio *= 1.02;
    }
}

/// How far the grid is fine: the longest duration up to which neighbours are at
/// most `2 x resolution` apart (every limit up to it is found within
/// +-resolution). Zero when even the first gap is wider.
pub fn fine_to(grid: &[Duration], resolution: Duration) -> Duration {
    let width = resolution.saturating_mul(2);
    let mut prev = Duration::ZERO;
    for &d in grid {
        if d.saturating_sub(prev) > width {
            return prev;
        }
        prev = d;
    }
    prev
}

/// What the checks of one direction say so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bracket {
    /// The longest idle time that survived below the shortest failure (zero: a
    /// fresh flow survives by definition).
    pub lo: Duration,
    /// The shortest idle time after which the flow was dropped, and how.
    pub hi: Option<(Duration, DropMode)>,
    /// A flow survived longer than the shortest failure: the path is not a
    /// simple idle timer (or its timer was reset by something else).
    pub inconsistent: bool,
}

impl Bracket {
    pub fn from_checks(checks: &[(Duration, Check)]) -> Bracket {
        let hi = checks
            .iter()
            .filter_map(|&(d, c)| match c {
                Check::Dropped(mode) => Some((d, mode)),
                Check::Survived => None,
            })
            .min_by_key(|&(d, _)| d);
        let below = |d: Duration| hi.is_none_or(|(h, _)| d < h);
        let lo = checks
            .iter()
            .filter(|&&(d, c)| c == Check::Survived && below(d))
            .map(|&(d, _)| d)
            .max()
            .unwrap_or(Duration::ZERO);
        let inconsistent = checks
            .iter()
            .any(|&(d, c)| c == Check::Survived && !below(d));
        Bracket {
            lo,
            hi,
            inconsistent,
        }
    }

    /// Tests only.
    #[cfg(test)]
    /// The limit's estimate (the bracket's midpoint) and its half-width.
    pub fn estimate(&self) -> Option<(Duration, Duration)> {
        let (hi, _) = self.hi?;
        let half = hi.saturating_sub(self.lo) / 2;
        Some((self.lo + half, half))
    }
}

/// Keepalive settings that beat a limit whose lower edge is `lo`: the idle and the
/// gap between probes stay below it even when one probe is lost, so the flow is
/// refreshed in time; `None` when whole-second keepalive cannot do it (a limit
/// under 2 s: use application heartbeats).
pub fn recommend(lo: Duration) -> Option<Effective> {
    let lo_s = lo.as_secs_f64();
    // idle two thirds of the limit, and idle + intvl (one lost probe) still below it
    let idle = (lo_s * 2.0 / 3.0).floor().max(1.0);
    let intvl = ((lo_s - idle) * 0.8).floor().clamp(1.0, idle);
    if idle + intvl >= lo_s {
        return None;
    }
    Some(Effective {
        keepalive: true,
        idle_s: idle as u32,
        intvl_s: intvl as u32,
        cnt: RECOMMENDED_CNT,
        user_timeout_ms: 0,
    })
}

/// The measurement's result over the directions tested.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The limit (midpoint) and its half-width; `None` when every flow survived.
    pub limit: Option<(Duration, Duration)>,
    /// "out", "in" or "both": the directions whose flows were dropped at the limit.
    pub direction: Option<&'static str>,
    pub drop_mode: Option<DropMode>,
    pub recommended: Option<Effective>,
    /// The lower edge of the limit's bracket (what the recommendation is built from).
    pub lo: Option<Duration>,
    pub inconsistent: bool,
}

/// Combines the directions: the limit is the shortest one; a direction counts as
/// affected when its bracket overlaps that one's.
pub fn verdict(brackets: &[(Direction, Bracket)]) -> Verdict {
    let inconsistent = brackets.iter().any(|(_, b)| b.inconsistent);
    let limiting = brackets
        .iter()
        .filter_map(|(d, b)| b.hi.map(|(hi, mode)| (hi, *d, mode, b.lo)))
        .min_by_key(|&(hi, d, _, _)| (hi, d));
    let Some((hi, _, mode, lo)) = limiting else {
        return Verdict {
            limit: None,
            direction: None,
            drop_mode: None,
            recommended: None,
            lo: None,
            inconsistent,
        };
    };
    let affected: Vec<Direction> = brackets
        .iter()
        .filter(|(_, b)| b.hi.is_some_and(|(h, _)| b.lo < hi && lo < h))
        .map(|(d, _)| *d)
        .collect();
    let direction = match (
        affected.contains(&Direction::Out),
        affected.contains(&Direction::In),
    ) {
        (true, true) => "both",
        (false, true) => "in",
        _ => "out",
    };
    let half = hi.saturating_sub(lo) / 2;
    Verdict {
        limit: Some((lo + half, half)),
        direction: Some(direction),
        drop_mode: Some(mode),
        recommended: recommend(lo),
        lo: Some(lo),
        inconsistent,
    }
}

/// `--verify`: how long the keepalive flow is held idle before its check. Longer
/// than the limit's upper edge and than one keepalive idle period, so a keepalive
/// that beats the limit has refreshed the flow at least once and one that does not
/// has let it lapse.
pub fn verify_hold(limit_hi: Duration, idle: Duration) -> Duration {
    limit_hi
        .saturating_add(idle)
        .saturating_add(Duration::from_secs(1))
}

/// What this side saw in a failed read or write of an established test flow: a
/// reset (ECONNRESET, EPIPE) or, for anything else (the check's user timeout
/// among them), nothing in time.
pub fn seen_of(errno: Option<i32>) -> Seen {
    match errno {
        Some(libc::ECONNRESET | libc::EPIPE) => Seen::Rst,
        _ => Seen::Timeout,
    }
}

/// `--verify`'s flow: the keepalive it holds and how long it is held idle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyPlan {
    pub keepalive: KeepaliveRequest,
    pub idle_s: u32,
    pub hold: Duration,
    /// Behind a proxy (flows closed with a FIN) keepalive cannot help: its
    /// probes carry no data, the proxy's kernel answers them and its idle timer
    /// runs on. The flow then sends application data (`PING`) this often
    /// instead, keepalive off.
    pub refresh: Option<Duration>,
}

/// Whether only application data keeps the path's flows: a FIN from the path is
/// a proxy's idle timeout (it terminates TCP; keepalive probes never reach it as
/// activity). A NAT or firewall forgets silently, or resets.
pub fn needs_data(mode: Option<DropMode>) -> bool {
    mode == Some(DropMode::Closed)
}

/// `--verify`'s flow for a limit whose upper edge is `limit_hi`: the user's
/// `--idle`/`--intvl`/`--cnt`, else the recommendation's; the interval defaults
/// to half the idle (at least 1 s), the count to [`RECOMMENDED_CNT`]. `None`
/// when there is no idle to verify with (no recommendation and no `--idle`).
pub fn verify_plan(
    idle_s: Option<u32>,
    intvl_s: Option<u32>,
    cnt: Option<u32>,
    recommended: Option<Effective>,
    limit_hi: Duration,
    mode: Option<DropMode>,
) -> Option<VerifyPlan> {
    let idle_s = idle_s.or(recommended.map(|r| r.idle_s))?;
    let intvl_s = intvl_s
        .or(recommended.map(|r| r.intvl_s))
        .unwrap_or_else(|| (idle_s / 2).max(1));
    let idle = Duration::from_secs(idle_s.into());
    Some(VerifyPlan {
        refresh: needs_data(mode).then_some(idle),
        keepalive: KeepaliveRequest {
            enabled: !needs_data(mode),
            idle_s: Some(idle_s),
            intvl_s: Some(intvl_s),
            cnt: cnt.or(Some(RECOMMENDED_CNT)),
            user_timeout: None,
        },
        idle_s,
        hold: verify_hold(limit_hi, idle),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn s(v: f64) -> Duration {
        Duration::from_secs_f64(v)
    }

    #[test]
    fn the_grid_is_linear_as_far_as_the_budget_reaches_then_geometric() {
        // 150 flows for 1 h at 1 s: linear (1.8 s) to about 100 s, then 4 %
        let g = grid(s(3600.0), s(1.0), 150);
        assert_eq!(g.first(), Some(&s(1.8)));
        assert_eq!(g.last(), Some(&s(3600.0)));
        assert!(g.len() <= 150 && g.len() >= 145, "{} flows", g.len());
        for w in g.windows(2) {
            let (a, b) = (w[0].as_secs_f64(), w[1].as_secs_f64());
            assert!(b > a, "{g:?}");
            // never coarser than the ratio or the step, whichever is larger
            assert!(b <= (a * RATIO).max(a + 1.8) + 1e-6, "{a} -> {b}");
        }
        let fine = fine_to(&g, s(1.0)).as_secs_f64();
        assert!((90.0..=110.0).contains(&fine), "fine to {fine}s");
        // 500 flows reach about 830 s; a max the budget covers is linear throughout
        let fine = fine_to(&grid(s(3600.0), s(1.0), 500), s(1.0)).as_secs_f64();
        assert!((800.0..=860.0).contains(&fine), "fine to {fine}s");
        let all = grid(s(300.0), s(1.0), 200);
        assert_eq!(fine_to(&all, s(1.0)), s(300.0));
        assert_eq!(all.len(), 167);
    }

    #[test_case(3600.0, 1.0, 40 ; "a small budget grows the ratio")]
    #[test_case(20.0, 1.0, 200 ; "a short max")]
    #[test_case(1.0, 1.0, 10 ; "max below one step")]
    #[test_case(3600.0, 0.1, 1000 ; "a fine resolution")]
    fn the_grid_respects_budget_and_max(max: f64, res: f64, budget: usize) {
        let g = grid(s(max), s(res), budget);
        assert!(!g.is_empty() && g.len() <= budget, "{g:?}");
        assert_eq!(g.last(), Some(&s(max)));
        assert!(g.windows(2).all(|w| w[0] < w[1]), "{g:?}");
        assert!(grid(s(max), s(res), 0).is_empty());
    }

    /// The wall-time promise: the first failure on the grid comes at most
    /// RATIO x T (or T + one step) after the start, for any limit T.
    #[test]
    fn the_first_failure_is_close_to_the_limit() {
        let g = grid(s(3600.0), s(1.0), 150);
        for t in [1.0, 7.5, 12.0, 30.0, 59.0, 300.0, 350.0, 1199.0, 3000.0] {
            let first_fail = g
                .iter()
                .find(|d| d.as_secs_f64() >= t)
                .expect("on the grid");
            let f = first_fail.as_secs_f64();
            assert!(
                f <= (t * RATIO).max(t + 1.8) + 1e-6,
                "T {t}: first failure {f}"
            );
        }
    }

    fn checks(rows: &[(f64, Check)]) -> Vec<(Duration, Check)> {
        rows.iter().map(|&(d, c)| (s(d), c)).collect()
    }

    use Check::{Dropped, Survived};
    use DropMode::{Reset, Silent};

    #[test_case(&[(2.0, Survived), (4.0, Survived), (6.0, Dropped(Silent)), (8.0, Dropped(Silent))], 4.0, Some((6.0, Silent)), false ; "simple")]
    #[test_case(&[(2.0, Dropped(Reset))], 0.0, Some((2.0, Reset)), false ; "first fails")]
    #[test_case(&[(2.0, Survived), (4.0, Survived)], 4.0, None, false ; "all survive")]
    #[test_case(&[(2.0, Survived), (4.0, Dropped(Silent)), (6.0, Survived)], 2.0, Some((4.0, Silent)), true ; "survivor past a failure")]
    #[test_case(&[], 0.0, None, false ; "nothing yet")]
    fn brackets(rows: &[(f64, Check)], lo: f64, hi: Option<(f64, DropMode)>, inconsistent: bool) {
        let b = Bracket::from_checks(&checks(rows));
        assert_eq!(b.lo, s(lo));
        assert_eq!(b.hi, hi.map(|(h, m)| (s(h), m)));
        assert_eq!(b.inconsistent, inconsistent);
    }

    #[test_case(299.0, Some((199, 80)) ; "five minutes")]
    #[test_case(10.1, Some((6, 3)) ; "ten seconds")]
    #[test_case(3.0, None ; "three seconds: idle 2 + intvl 1 reaches it")]
    #[test_case(1.5, None ; "below two seconds")]
    fn recommendations_beat_the_limit(lo: f64, want: Option<(u32, u32)>) {
        let r = recommend(s(lo));
        assert_eq!(r.map(|r| (r.idle_s, r.intvl_s)), want, "{lo}");
        if let Some(r) = r {
            assert_eq!(r.cnt, RECOMMENDED_CNT);
            assert!(((r.idle_s + r.intvl_s) as f64) < lo);
        }
    }

    fn bracket(lo: f64, hi: Option<(f64, DropMode)>) -> Bracket {
        Bracket {
            lo: s(lo),
            hi: hi.map(|(h, m)| (s(h), m)),
            inconsistent: false,
        }
    }

    #[test_case(Some((12.0, Silent)), Some((12.0, Silent)), Some((11.1, "both", Silent)) ; "both directions")]
    #[test_case(None, Some((12.0, Reset)), Some((11.1, "in", Reset)) ; "inbound only")]
    #[test_case(Some((12.0, Reset)), None, Some((11.1, "out", Reset)) ; "outbound only")]
    #[test_case(Some((30.0, Silent)), Some((12.0, Silent)), Some((11.1, "in", Silent)) ; "the shorter limit wins")]
    #[test_case(None, None, None ; "no limit up to max")]
    fn verdicts(
        out: Option<(f64, DropMode)>,
        inn: Option<(f64, DropMode)>,
        want: Option<(f64, &str, DropMode)>,
    ) {
        let lo = |hi: Option<(f64, DropMode)>| hi.map_or(40.0, |(h, _)| h - 1.8);
        let v = verdict(&[
            (Direction::Out, bracket(lo(out), out)),
            (Direction::In, bracket(lo(inn), inn)),
        ]);
        match want {
            None => assert_eq!((v.limit, v.direction, v.drop_mode), (None, None, None)),
            Some((t, dir, mode)) => {
                let (limit, half) = v.limit.expect("a limit");
                assert!((limit.as_secs_f64() - t).abs() < 1e-9, "{v:?}");
                assert!((half.as_secs_f64() - 0.9).abs() < 1e-9, "{v:?}");
                assert_eq!(v.direction, Some(dir));
                assert_eq!(v.drop_mode, Some(mode));
                assert!(v.recommended.is_some());
            }
        }
    }

    /// The measurement replayed against a path with limit T: the round ends
    /// when the shortest failure is known, `overhead` (what a failed check costs
    /// past its idle time: the `in` direction's wait and follow-up, about 3 s on
    /// a short RTT) after its idle time. Returns the wall time and the half-width.
    fn replay(t: f64, budget: usize, overhead: f64) -> (f64, f64) {
        let g = grid(s(3600.0), s(1.0), budget);
        let all: Vec<(Duration, Check)> = g
            .iter()
            .map(|&d| match d.as_secs_f64() >= t {
                true => (d, Dropped(Silent)),
                false => (d, Survived),
            })
            .collect();
        let fail = g
            .iter()
            .find(|d| d.as_secs_f64() >= t)
            .expect("on the grid");
        let (limit, half) = Bracket::from_checks(&all).estimate().expect("a limit");
        assert!((limit.as_secs_f64() - t).abs() <= half.as_secs_f64() + 1e-9);
        (fail.as_secs_f64() + overhead, half.as_secs_f64())
    }

    /// The goal: at most 1.2 x T + 5 s of wall time for every limit from 2 s to
    /// 50 min, even when failures cost 3 s to establish; within +-1 s as far as
    /// the grid is fine, within +-2 % past it.
    #[test]
    fn one_round_stays_within_1_2_t_plus_5_s() {
        for budget in [150, 500] {
            let fine = fine_to(&grid(s(3600.0), s(1.0), budget), s(1.0)).as_secs_f64();
            for tenths in (20..30_000).step_by(7) {
                let t = tenths as f64 / 10.0;
                let (wall, half) = replay(t, budget, 3.0);
                assert!(
                    wall <= 1.2 * t + 5.0,
                    "{wall}s at T = {t}s ({budget} flows)"
                );
                match t < fine {
                    true => assert!(half <= 1.0, "+-{half}s at T = {t}s ({budget} flows)"),
                    false => assert!(half <= 0.021 * t, "+-{half}s at T = {t}s"),
                }
            }
        }
    }

    use Seen::{Answered, Fin, Rst as SeenRst, Timeout as SeenTimeout};

    #[test_case(Direction::Out, SeenTimeout, None, Silent, By::Path ; "out: nothing came back")]
    #[test_case(Direction::Out, SeenRst, None, Reset, By::Path ; "out: the NAT rejects")]
    #[test_case(Direction::Out, Fin, Some(Saw::Fin), DropMode::Closed, By::Path ; "out: a proxy closed both sides")]
    #[test_case(Direction::Out, Fin, None, DropMode::Closed, By::Path ; "out: a proxy closed this side")]
    #[test_case(Direction::Out, SeenRst, Some(Saw::Timeout), Silent, By::FarEnd ; "out: the far host answered after its socket timed out")]
    #[test_case(Direction::In, SeenRst, Some(Saw::Timeout), Silent, By::Path ; "in: a one-way firewall ate the listener's ping")]
    #[test_case(Direction::In, Answered, Some(Saw::Rst), Reset, By::Path ; "in: the NAT rejected the listener's ping")]
    #[test_case(Direction::In, SeenTimeout, None, Silent, By::Path ; "in: no listener view")]
    #[test_case(Direction::In, Fin, Some(Saw::Fin), DropMode::Closed, By::Path ; "in: a proxy closed both sides")]
    fn drops_are_classified_from_both_views(
        dir: Direction,
        client: Seen,
        listener: Option<Saw>,
        mode: DropMode,
        by: By,
    ) {
        assert_eq!(classify(dir, client, listener), (mode, by));
    }

    #[test]
    fn check_timeout_grows_with_the_round_trip_and_is_bounded() {
        assert_eq!(check_timeout(Duration::ZERO), s(1.0));
        assert_eq!(check_timeout(s(0.1)), s(1.4));
        assert_eq!(check_timeout(s(60.0)), s(10.0));
    }

    #[test]
    fn resets_and_broken_pipes_are_resets_the_rest_silence() {
        assert_eq!(seen_of(Some(libc::ECONNRESET)), Seen::Rst);
        assert_eq!(seen_of(Some(libc::EPIPE)), Seen::Rst);
        assert_eq!(seen_of(Some(libc::ETIMEDOUT)), Seen::Timeout);
        assert_eq!(seen_of(None), Seen::Timeout);
    }

    #[test]
    fn behind_a_proxy_verify_sends_data_instead_of_keepalive() {
        let p = verify_plan(
            None,
            None,
            None,
            recommend(s(6.0)),
            s(6.5),
            Some(DropMode::Closed),
        )
        .expect("a recommendation");
        assert!(!p.keepalive.enabled);
        assert_eq!(p.refresh, Some(Duration::from_secs(p.idle_s.into())));
        let nat = verify_plan(
            None,
            None,
            None,
            recommend(s(6.0)),
            s(6.5),
            Some(DropMode::Silent),
        )
        .expect("a recommendation");
        assert!(nat.keepalive.enabled && nat.refresh.is_none());
    }

    #[test]
    fn verify_plan_takes_the_users_values_then_the_recommendation() {
        let rec = recommend(s(110.0));
        let hi = s(120.0);
        let p = verify_plan(None, None, None, rec, hi, None).expect("a recommendation");
        let r = rec.expect("110 s is recommendable");
        assert_eq!(p.idle_s, r.idle_s);
        assert_eq!(p.keepalive.intvl_s, Some(r.intvl_s));
        assert_eq!(p.keepalive.cnt, Some(RECOMMENDED_CNT));
        assert!(p.keepalive.enabled && p.keepalive.user_timeout.is_none());
        assert_eq!(
            p.hold,
            verify_hold(hi, Duration::from_secs(r.idle_s.into()))
        );
        let own = verify_plan(Some(9), None, Some(5), rec, hi, None).expect("--idle given");
        assert_eq!(
            (own.idle_s, own.keepalive.intvl_s, own.keepalive.cnt),
            (9, Some(r.intvl_s), Some(5))
        );
        let alone = verify_plan(Some(9), None, None, None, hi, None).expect("--idle given");
        assert_eq!(alone.keepalive.intvl_s, Some(4), "half the idle");
        assert_eq!(
            verify_plan(Some(1), None, None, None, hi, None).and_then(|p| p.keepalive.intvl_s),
            Some(1),
            "at least 1 s"
        );
        assert_eq!(verify_plan(None, Some(3), None, None, hi, None), None);
    }
}
