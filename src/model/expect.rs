//! `--expect OUTCOME` and `--within MIN..MAX`: the script-assertion rules. One
//! function decides whether an `end` met them, and so whether the run exits 0 or 9.

use std::time::Duration;

use crate::model::event::{EndFacts, Outcome};
use crate::model::outcome::Exit;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expectation {
    pub outcome: Option<Outcome>,
    pub min: Option<Duration>,
    pub max: Option<Duration>,
}

use crate::model::units::typed as secs;

impl Expectation {
    pub fn is_set(&self) -> bool {
        self.outcome.is_some() || self.min.is_some() || self.max.is_some()
    }

    fn range_text(&self) -> String {
        let min = self.min.map(secs).unwrap_or_default();
        let max = self.max.map(secs).unwrap_or_default();
        format!("{min}..{max}")
    }

    /// "timeout within 3s..5s"
    pub fn describe(&self) -> String {
        let what = self.outcome.map_or("any outcome", |o| o.name());
        if self.min.is_some() || self.max.is_some() {
            format!("{what} within {}", self.range_text())
        } else {
            what.to_string()
        }
    }

    /// `Ok` when the end meets every rule, else what happened instead.
    pub fn check(&self, end: &EndFacts) -> Result<(), String> {
        let got = match (&end.errno, end.detect_s) {
            (Some(errno), Some(d)) => format!("{} {errno} after {d:.3}s", end.outcome.name()),
            (None, Some(d)) => format!("{} after {d:.3}s", end.outcome.name()),
            (Some(errno), None) => format!("{} {errno}", end.outcome.name()),
            (None, None) => end.outcome.name().to_string(),
        };
        if let Some(want) = self.outcome
            && want.name() != end.outcome.name()
        {
            return Err(format!("expected {}, got {got}", self.describe()));
        }
        if self.min.is_none() && self.max.is_none() {
            return Ok(());
        }
        let Some(d) = end.detect_s else {
            return Err(format!(
                "expected {}, got {got} with no detection latency",
                self.describe()
            ));
        };
        let d = Duration::try_from_secs_f64(d).unwrap_or(Duration::MAX);
        let low = self.min.is_some_and(|m| d < m);
        let high = self.max.is_some_and(|m| d > m);
        if low || high {
            return Err(format!("expected {}, got {got}", self.describe()));
        }
        Ok(())
    }

    /// Applies the rules to an `end`: records the verdict in it and sets its exit
    /// code (0 met, 9 not met). Without rules the outcome's own code stands.
    pub fn judge(&self, end: &mut EndFacts) {
        if !self.is_set() {
            return;
        }
        end.expected = Some(self.describe());
        end.set_verdict(self.check(end).err());
    }
}

impl Expectation {
    /// The reconnecting monitor: every outage must meet the rules. `first_miss` is
    /// the first outage that did not (its number and why), checked as each ended,
    /// so no list of deaths is kept. With no outage the summary `end` itself is
    /// judged.
    pub fn judge_outages(
        &self,
        outages: usize,
        first_miss: Option<(usize, String)>,
        summary: &mut EndFacts,
    ) {
        if !self.is_set() {
            return;
        }
        if outages == 0 {
            return self.judge(summary);
        }
        summary.expected = Some(format!("every outage: {}", self.describe()));
        summary.set_verdict(first_miss.map(|(n, why)| format!("outage #{n}: {why}")));
    }
}

impl EndFacts {
    /// Records an `--expect` verdict: met (`None`) exits 0, missed exits 9.
    pub fn set_verdict(&mut self, failure: Option<String>) {
        self.expect_met = Some(failure.is_none());
        self.exit_code = match failure {
            None => Exit::ExpectMet.code(),
            Some(_) => Exit::ExpectFailed.code(),
        };
        self.expect_failure = failure;
    }
}

/// The per-connection ends of a run that follows many (`listen`, `watch`): counts
/// by outcome for the summary, and the first `--expect` miss.
#[derive(Debug, Default)]
pub struct Tally {
    ended: std::collections::BTreeMap<&'static str, usize>,
    judged: usize,
    missed: Option<String>,
}

impl Tally {
    pub fn record(&mut self, end: &EndFacts) {
        *self.ended.entry(end.outcome.name()).or_default() += 1;
        if let Some(met) = end.expect_met {
            self.judged += 1;
            if !met && self.missed.is_none() {
                self.missed = end.expect_failure.clone();
            }
        }
    }

    /// "served 3 connection(s): eof 2, reset 1"
    pub fn summary(&self, verb: &str, count: u64) -> String {
        let parts: Vec<String> = self.ended.iter().map(|(k, v)| format!("{k} {v}")).collect();
        if parts.is_empty() {
            format!("{verb} {count} connection(s)")
        } else {
            format!("{verb} {count} connection(s): {}", parts.join(", "))
        }
    }

    /// The run's summary `end`: under --expect every connection was judged, and the
    /// run exits 9 if any missed, 0 if all met.
    pub fn run_end(&self, outcome: Outcome, message: String) -> EndFacts {
        let mut end = EndFacts::new(outcome, None, message, None, None);
        if self.judged > 0 {
            end.set_verdict(self.missed.clone());
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(outcome: Outcome, errno: Option<&str>, detect: Option<f64>) -> EndFacts {
        EndFacts::new(
            outcome,
            errno.map(str::to_string),
            String::new(),
            detect,
            Some(4.0),
        )
    }

    fn within(min: Option<u64>, max: Option<u64>) -> Expectation {
        Expectation {
            outcome: Some(Outcome::Timeout),
            min: min.map(Duration::from_millis),
            max: max.map(Duration::from_millis),
        }
    }

    #[test]
    fn met_and_not_met_for_every_outcome_kind() {
        for o in Outcome::CONNECTION_OUTCOMES {
            let rule = Expectation {
                outcome: Some(o),
                ..Expectation::default()
            };
            let mut e = end(o, None, None);
            rule.judge(&mut e);
            assert_eq!((e.exit_code, e.expect_met), (0, Some(true)), "{o:?}");
            let other = if o == Outcome::Alive {
                Outcome::Reset
            } else {
                Outcome::Alive
            };
            let mut e = end(other, None, None);
            rule.judge(&mut e);
            assert_eq!((e.exit_code, e.expect_met), (9, Some(false)), "{o:?}");
        }
    }

    #[test]
    fn latency_bounds() {
        let table = [
            (within(Some(3000), Some(5000)), Some(4.01), Ok(())),
            (within(None, Some(5000)), Some(4.01), Ok(())),
            (within(Some(3000), None), Some(4.01), Ok(())),
            (
                within(Some(3000), Some(5000)),
                Some(7.0),
                Err(
                    "expected timeout within 3s..5s, got timeout ETIMEDOUT after 7.000s"
                        .to_string(),
                ),
            ),
            (
                within(Some(5000), None),
                Some(4.5),
                Err("expected timeout within 5s.., got timeout ETIMEDOUT after 4.500s".to_string()),
            ),
            (
                within(None, Some(5000)),
                None,
                Err(
                    "expected timeout within ..5s, got timeout ETIMEDOUT with no detection latency"
                        .to_string(),
                ),
            ),
        ];
        for (rule, detect, want) in table {
            assert_eq!(
                rule.check(&end(Outcome::Timeout, Some("ETIMEDOUT"), detect)),
                want
            );
        }
    }

    #[test]
    fn wrong_outcome_says_what_happened_instead() {
        let rule = within(Some(3000), Some(5000));
        assert_eq!(
            rule.check(&end(Outcome::Reset, Some("ECONNRESET"), Some(0.431))),
            Err("expected timeout within 3s..5s, got reset ECONNRESET after 0.431s".to_string())
        );
    }
}
