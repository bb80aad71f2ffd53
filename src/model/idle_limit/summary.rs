//! What an `idle-limit` run says of its measurement: the `end`'s facts and
//! message, `--verify`'s sentence and outcome, and the terminal's progress line.
//! Pure: the engine (`engine::idle_limit`) passes what it counted.

use std::time::Duration;

use super::{Bracket, Check, Direction, DropMode, Verdict};
use crate::model::event::{IdleLimitFacts, Outcome, secs_value};
use crate::model::plan::presets;
use crate::model::units::{secs_text, typed};

/// What was measured and what it cost, besides the checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub rounds: u32,
    pub flows: u64,
    /// Payload bytes this side sent over all test flows.
    pub bytes: u64,
}

/// "in", "out" or "both": the directions a run tests.
pub fn directions_name(directions: &[Direction]) -> &'static str {
    match directions {
        [Direction::In] => "in",
        [Direction::Out] => "out",
        _ => "both",
    }
}

/// The `end`'s facts of a verdict (`--verify`'s are filled in by its check).
pub fn facts(v: &Verdict, directions: &[Direction], max: Duration, c: Counts) -> IdleLimitFacts {
    // Behind a proxy only data keeps a flow: no keepalive to recommend.
    let data = super::needs_data(v.drop_mode);
    let rec = v.recommended.filter(|_| !data);
    let known = v.limit.map(|(t, r)| presets::compare_measured(t, r));
    IdleLimitFacts {
        idle_limit_s: v.limit.map(|(t, _)| secs_value(t)),
        resolution_s: v.limit.map(|(_, r)| secs_value(r)),
        direction: v.direction,
        drop_mode: v.drop_mode.map(DropMode::name),
        drops: Default::default(),
        recommended_idle_s: rec.map(|r| r.idle_s),
        recommended_intvl_s: rec.map(|r| r.intvl_s),
        recommended_cnt: rec.map(|r| r.cnt),
        recommended_heartbeat_s: v.recommended.filter(|_| data).map(|r| r.idle_s),
        recommended_detect_s: rec
            .and_then(|r| r.idle_schedule())
            .map(|s| secs_value(s.detect_after)),
        matches_paths: known
            .as_ref()
            .map_or(Vec::new(), |k| k.matches.iter().map(|p| p.name).collect()),
        below_rfc5382: known.as_ref().map(|k| k.below_rfc5382),
        directions_tested: directions_name(directions),
        max_s: secs_value(max),
        rounds: c.rounds,
        flows: c.flows,
        bytes_sent: c.bytes,
        verified: None,
        verify_idle_s: None,
        verify_hold_s: None,
    }
}

/// The human summary of a verdict (the `end` line's message).
pub fn summary(v: &Verdict, directions: &[Direction], max: Duration, c: Counts) -> String {
    let mut text = match (v.limit, v.direction, v.drop_mode) {
        (Some((t, r)), Some(dir), Some(mode)) => format!(
            "idle limit {} +-{} (direction {dir}, dropped {}), {} flows in {} round",
            secs_text(t),
            secs_text(r),
            match mode {
                DropMode::Silent => "silently",
                DropMode::Reset => "with a reset",
                DropMode::Closed => "closed with a FIN",
            },
            c.flows,
            match c.rounds {
                1 => "one",
                _ => "no",
            }
        ),
        _ => format!(
            "no idle limit up to {} (direction {}): every flow survived its idle period",
            typed(max),
            directions_name(directions)
        ),
    };
    if let Some(known) = v
        .limit
        .and_then(|(t, r)| presets::compare_measured(t, r).text())
    {
        text.push_str(&format!("; {known}"));
    }
    match (v.limit, v.recommended) {
        (Some(_), Some(r)) if super::needs_data(v.drop_mode) => {
            text.push_str(&format!(
                "; the path closed the flows with a FIN, so it is a proxy: keepalive probes \
                 carry no data and do not keep its flows, send application data at least \
                 every {}s (tcpalive connect --heartbeat {}s)",
                r.idle_s, r.idle_s
            ));
        }
        (Some(_), Some(r)) => {
            let detect = r
                .idle_schedule()
                .map_or("never".to_string(), |s| secs_text(s.detect_after));
            text.push_str(&format!(
                "; keepalive --idle {} --intvl {} --cnt {} beats it (a dead peer is then \
                 detected {detect} after the last contact)",
                r.idle_s, r.intvl_s, r.cnt
            ));
        }
        (Some(_), None) => text.push_str(
            "; too short for whole-second keepalive (idle and one interval must fit below \
             it): use application heartbeats",
        ),
        _ => {}
    }
    if v.inconsistent {
        text.push_str(
            "; note: a flow survived longer than the shortest failure, so the path is not a \
             plain idle timer (assumed: the shortest failure is the limit)",
        );
    }
    text
}

/// `--verify`'s check of a connection with keepalive idle `idle_s`, meant to be
/// held idle `hold`, that `reached` that long: the run's outcome (alive when it
/// survived: the limit was found and the keepalive beats it) and the sentence
/// appended to the summary.
pub fn verified(
    check: Check,
    idle_s: u32,
    hold: Duration,
    reached: Duration,
    data: bool,
) -> (Outcome, String) {
    let (check, what) = (
        check,
        match data {
            true => format!("data every {idle_s}s (keepalive off: a proxy ignores it)"),
            false => format!("keepalive idle {idle_s}s"),
        },
    );
    let (outcome, text) = verified_text(check, idle_s, hold, reached);
    (
        outcome,
        text.replace(&format!("keepalive idle {idle_s}s"), &what),
    )
}

fn verified_text(
    check: Check,
    idle_s: u32,
    hold: Duration,
    reached: Duration,
) -> (Outcome, String) {
    match check {
        Check::Survived => (
            Outcome::LimitFound,
            format!(
                "; --verify: a connection with keepalive idle {idle_s}s survived {} idle",
                secs_text(hold)
            ),
        ),
        Check::Dropped(mode) => (
            match mode {
                DropMode::Silent => Outcome::Timeout,
                DropMode::Reset => Outcome::Reset,
                DropMode::Closed => Outcome::Eof,
            },
            format!(
                "; --verify: a connection with keepalive idle {idle_s}s (to be held {}) \
                 was DROPPED ({}) after {} idle: keepalive idle {idle_s}s does not \
                 beat the limit",
                secs_text(hold),
                mode.name(),
                secs_text(reached)
            ),
        ),
    }
}

/// The terminal's progress line: what is running (the measurement, its one round,
/// or `--verify`'s flow), the flows still waiting, each direction's bracket so
/// far, and the time to the next check; at most `width` columns (a line wider
/// than the terminal wraps, and erasing it would leave its first part behind).
pub fn progress(
    verify: bool,
    waiting: usize,
    brackets: &[(Direction, Bracket)],
    next_check_in: Option<Duration>,
    width: usize,
) -> String {
    let mut text = match verify {
        false => format!("idle-limit: one round, {waiting} flow(s) waiting"),
        true => "idle-limit: limit measured, --verify's flow waiting".to_string(),
    };
    for (dir, b) in brackets {
        match b.hi {
            Some((hi, _)) => text.push_str(&format!(
                "; {}: limit in {}..{}",
                dir.name(),
                secs_text(b.lo),
                secs_text(hi)
            )),
            None if b.lo > Duration::ZERO => {
                text.push_str(&format!("; {}: survived {}", dir.name(), secs_text(b.lo)))
            }
            None => {}
        }
    }
    if let Some(next) = next_check_in {
        text.push_str(&format!("; next check in {}s", next.as_secs()));
    }
    match text.char_indices().nth(width) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::idle_limit::verdict;

    fn s(v: f64) -> Duration {
        Duration::from_secs_f64(v)
    }

    const COUNTS: Counts = Counts {
        rounds: 1,
        flows: 40,
        bytes: 400,
    };

    /// Out flows survived 100 s and were dropped silently at 120 s.
    fn found() -> Verdict {
        let checks = [
            (s(100.0), Check::Survived),
            (s(120.0), Check::Dropped(DropMode::Silent)),
        ];
        verdict(&[(Direction::Out, Bracket::from_checks(&checks))])
    }

    #[test]
    fn directions_are_named() {
        assert_eq!(directions_name(&[Direction::In]), "in");
        assert_eq!(directions_name(&[Direction::Out]), "out");
        assert_eq!(directions_name(&[Direction::Out, Direction::In]), "both");
    }

    #[test]
    fn a_found_limit_names_itself_and_the_keepalive_that_beats_it() {
        let v = found();
        let text = summary(&v, &[Direction::Out], s(3600.0), COUNTS);
        assert!(
            text.starts_with(
                "idle limit 110s +-10s (direction out, dropped silently), 40 flows in one round; "
            ),
            "{text}"
        );
        assert!(text.contains("below RFC 5382"), "{text}");
        assert!(
            text.contains("; keepalive --idle 66 --intvl 27 --cnt 3 beats it"),
            "{text}"
        );
        let f = facts(&v, &[Direction::Out], s(3600.0), COUNTS);
        assert_eq!(f.idle_limit_s, Some(110.0));
        assert_eq!(f.drop_mode, Some("silent"));
        assert_eq!(f.directions_tested, "out");
        assert_eq!((f.rounds, f.flows, f.bytes_sent), (1, 40, 400));
        assert_eq!(f.recommended_idle_s, Some(66));
        assert_eq!(f.below_rfc5382, Some(true));
    }

    #[test]
    fn no_limit_says_how_far_it_looked() {
        let checks = [(s(60.0), Check::Survived)];
        let v = verdict(&[(Direction::In, Bracket::from_checks(&checks))]);
        let text = summary(&v, &[Direction::In], s(60.0), COUNTS);
        assert_eq!(
            text,
            "no idle limit up to 1m (direction in): every flow survived its idle period"
        );
        assert_eq!(
            facts(&v, &[Direction::In], s(60.0), COUNTS).idle_limit_s,
            None
        );
    }

    #[test]
    fn a_limit_too_short_for_keepalive_says_use_heartbeats() {
        let checks = [
            (s(0.5), Check::Survived),
            (s(1.0), Check::Dropped(DropMode::Reset)),
        ];
        let v = verdict(&[(Direction::Out, Bracket::from_checks(&checks))]);
        let text = summary(&v, &[Direction::Out], s(10.0), COUNTS);
        assert!(text.ends_with("use application heartbeats"), "{text}");
    }

    #[test]
    fn verify_outcome_follows_the_check() {
        let (o, text) = verified(Check::Survived, 50, s(130.0), s(130.0), false);
        assert_eq!(o, Outcome::LimitFound);
        assert!(text.contains("survived 130s idle"), "{text}");
        let (o, text) = verified(
            Check::Dropped(DropMode::Reset),
            50,
            s(130.0),
            s(80.0),
            false,
        );
        assert_eq!(o, Outcome::Reset);
        assert!(text.contains("DROPPED (reset) after 80s idle"), "{text}");
        let (o, _) = verified(
            Check::Dropped(DropMode::Silent),
            50,
            s(130.0),
            s(80.0),
            false,
        );
        assert_eq!(o, Outcome::Timeout);
    }

    #[test]
    fn progress_shows_each_bracket_and_the_next_check() {
        let checks = [
            (s(10.0), Check::Survived),
            (s(20.0), Check::Dropped(DropMode::Silent)),
        ];
        let brackets = [
            (Direction::Out, Bracket::from_checks(&checks)),
            (
                Direction::In,
                Bracket::from_checks(&[(s(5.0), Check::Survived)]),
            ),
        ];
        assert_eq!(
            progress(false, 3, &brackets, Some(s(4.5)), 200),
            "idle-limit: one round, 3 flow(s) waiting; out: limit in 10s..20s; in: survived 5s; \
             next check in 4s"
        );
        assert_eq!(
            progress(true, 1, &[], None, 200),
            "idle-limit: limit measured, --verify's flow waiting"
        );
        // never wider than the terminal (a wrapped line is not erased whole)
        assert_eq!(
            progress(false, 3, &brackets, None, 30),
            "idle-limit: one round, 3 flow("
        );
    }
}
