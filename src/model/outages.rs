//! The reconnecting monitor's outage record, in bounded memory however many
//! outages a run sees: counts, total downtime, detection min/max, and a bounded
//! sample of detection latencies for the median (exact up to [`SAMPLE_MAX`]
//! outages, a uniform reservoir sample beyond, and then said so). Outages are
//! disjoint intervals inside the run, so the downtime is never negative and never
//! longer than the run.

use std::time::Duration;

use crate::model::event::{EndFacts, OutageSummary};

/// Detection latencies kept for the median.
pub const SAMPLE_MAX: usize = 4096;

#[derive(Debug, Clone)]
pub struct OutageLog {
    start: Duration,
    count: usize,
    /// Downtime of the outages that ended (the connection came back).
    closed: Duration,
    /// Start of the outage in progress, if the connection is down.
    open: Option<Duration>,
    /// When the connection last came up: no outage starts before it.
    up_since: Duration,
    detect: Vec<f64>,
    detect_seen: u64,
    detect_min: Option<f64>,
    detect_max: Option<f64>,
    rng: u64,
}

impl OutageLog {
    /// A record for a run that started at run time `start`.
    pub fn new(start: Duration) -> OutageLog {
        OutageLog {
            start,
            count: 0,
            closed: Duration::ZERO,
            open: None,
            up_since: start,
            detect: Vec::new(),
            detect_seen: 0,
            detect_min: None,
            detect_max: None,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// The connection is up at `now`: closes the outage in progress and returns
    /// its number and downtime.
    pub fn up(&mut self, now: Duration) -> Option<(usize, Duration)> {
        self.up_since = now.max(self.up_since);
        let since = self.open.take()?;
        let downtime = now.saturating_sub(since);
        self.closed = self.closed.saturating_add(downtime);
        Some((self.count, downtime))
    }

    /// The connection died at `now` after `end`: opens outage number N (returned),
    /// counted from the last contact, but never before the connection came up.
    pub fn down(&mut self, now: Duration, end: &EndFacts) -> usize {
        let detect = end
            .detect_s
            .filter(|d| d.is_finite() && *d >= 0.0)
            .map(|d| Duration::try_from_secs_f64(d).unwrap_or(Duration::MAX));
        let since = now
            .saturating_sub(detect.unwrap_or(Duration::ZERO))
            .max(self.up_since)
            .min(now);
        if self.open.is_none() {
            self.open = Some(since);
        }
        self.count = self.count.saturating_add(1);
        if let Some(d) = end.detect_s.filter(|d| d.is_finite()) {
            self.note_detect(d);
        }
        self.count
    }

    fn note_detect(&mut self, d: f64) {
        self.detect_min = Some(self.detect_min.map_or(d, |m| m.min(d)));
        self.detect_max = Some(self.detect_max.map_or(d, |m| m.max(d)));
        self.detect_seen = self.detect_seen.saturating_add(1);
        if self.detect.len() < SAMPLE_MAX {
            self.detect.push(d);
            return;
        }
        // Reservoir sampling (Algorithm R) with a xorshift generator: every
        // latency seen so far is kept with the same probability.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let slot = self.rng % self.detect_seen;
        if let Ok(slot) = usize::try_from(slot)
            && slot < SAMPLE_MAX
        {
            self.detect[slot] = d;
        }
    }

    /// Whether the median comes from a sample rather than every outage.
    pub fn median_is_sampled(&self) -> bool {
        self.detect_seen > SAMPLE_MAX as u64
    }

    /// The account at run time `now` (an outage in progress counts up to `now`).
    pub fn summary(&self, now: Duration) -> OutageSummary {
        let mut detect = self.detect.clone();
        detect.sort_by(f64::total_cmp);
        let median = match detect.len() {
            0 => None,
            n if n % 2 == 1 => Some(detect[n / 2]),
            n => Some((detect[n / 2 - 1] + detect[n / 2]) / 2.0),
        };
        let span = now.saturating_sub(self.start);
        let open = self.open.map_or(Duration::ZERO, |s| now.saturating_sub(s));
        let downtime = self.closed.saturating_add(open).min(span);
        let span_s = span.as_secs_f64();
        let downtime_s = downtime.as_secs_f64();
        OutageSummary {
            outages: self.count,
            detect_min_s: self.detect_min,
            detect_median_s: median,
            detect_max_s: self.detect_max,
            downtime_s: (downtime_s * 1000.0).round() / 1000.0,
            observed_s: (span_s * 1000.0).round() / 1000.0,
            availability: if span_s > 0.0 {
                floor_to(
                    (1.0 - downtime_s / span_s).clamp(0.0, 1.0),
                    availability_decimals(span_s) + 2,
                )
            } else {
                1.0
            },
        }
    }
}

/// Decimals of an availability in percent that the measurement supports. Times are
/// known to the millisecond, so the last digit shown stands for at least 1 ms of
/// the time observed: 1 decimal from 1 to 10 s, 2 from 10 to 100 s, and so on (a
/// day: 5; at most 6).
pub fn availability_decimals(observed_s: f64) -> usize {
    if observed_s.is_nan() || observed_s <= 0.0 {
        return 0;
    }
    ((observed_s * 10.0).log10().floor().max(0.0) as usize).min(6)
}

/// `v` cut (not rounded) to `decimals`: an availability below 1 never shows as 1.
fn floor_to(v: f64, decimals: usize) -> f64 {
    let f = 10f64.powi(decimals as i32);
    (v * f).floor() / f
}

/// The availability as the human end line prints it: a percentage with the
/// decimals the observed time supports, cut, not rounded ("99.98%", "100%").
pub fn availability_percent(availability: f64, observed_s: f64) -> String {
    let d = availability_decimals(observed_s);
    let pct = floor_to(availability * 100.0, d);
    if pct >= 100.0 {
        "100%".to_string()
    } else {
        format!("{pct:.d$}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::Outcome;

    fn death(detect: Option<f64>) -> EndFacts {
        EndFacts::new(Outcome::Timeout, None, String::new(), detect, None)
    }

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn downtime_counts_from_last_contact_to_reconnect() {
        let mut log = OutageLog::new(Duration::ZERO);
        log.up(s(0));
        assert_eq!(log.down(s(14), &death(Some(4.0))), 1);
        assert_eq!(log.up(s(20)), Some((1, s(10))));
        assert_eq!(log.down(s(55), &death(Some(5.0))), 2);
        assert_eq!(log.up(s(55)), Some((2, s(5))));
        assert_eq!(
            log.down(Duration::from_millis(94_500), &death(Some(4.5))),
            3
        );
        let sum = log.summary(s(100));
        assert_eq!(sum.outages, 3);
        assert_eq!(sum.detect_min_s, Some(4.0));
        assert_eq!(sum.detect_median_s, Some(4.5));
        assert_eq!(sum.detect_max_s, Some(5.0));
        assert_eq!(sum.downtime_s, 25.0);
        assert!((sum.availability - 0.75).abs() < 1e-9);
    }

    /// Issue 12 #1: a detection latency longer than the connection lived (a
    /// connection that died at once reports the time since its own start, or a
    /// clock step) made outages overlap: downtime 21.561 s in a 20 s run.
    #[test]
    fn downtime_is_never_longer_than_the_run_nor_negative() {
        let mut log = OutageLog::new(s(0));
        let mut now = Duration::ZERO;
        for _ in 0..1000 {
            log.up(now);
            now += Duration::from_millis(10);
            log.down(now, &death(Some(3600.0)));
            now += Duration::from_millis(10);
        }
        let sum = log.summary(now);
        // Each outage starts no earlier than its connection came up, so they
        // cover the run exactly once, not 1000 x 3600 s.
        assert!(sum.downtime_s <= now.as_secs_f64(), "{sum:?}");
        assert!((sum.downtime_s - 20.0).abs() < 1e-6, "{sum:?}");
        let mut log = OutageLog::new(s(5));
        log.down(s(5), &death(Some(-1.0)));
        log.down(s(5), &death(Some(f64::NAN)));
        let sum = log.summary(s(5));
        assert_eq!(sum.downtime_s, 0.0);
        assert!(sum.downtime_s.is_sign_positive());
        assert_eq!(sum.availability, 1.0);
    }

    #[test]
    fn availability_has_the_precision_the_measurement_supports() {
        assert_eq!(availability_decimals(0.5), 0);
        assert_eq!(availability_decimals(4.0), 1);
        assert_eq!(availability_decimals(60.0), 2);
        assert_eq!(availability_decimals(86_400.0), 5);
        assert_eq!(availability_decimals(1e9), 6);
        assert_eq!(availability_decimals(0.0), 0);
        assert_eq!(availability_decimals(f64::NAN), 0);
        // 4 ms down in a minute: 99.993...% shown as 99.99%, never 100%.
        assert_eq!(availability_percent(1.0 - 0.004 / 60.0, 60.0), "99.99%");
        assert_eq!(
            availability_percent(1.0 - 0.001 / 3600.0, 3600.0),
            "99.9999%"
        );
        assert_eq!(availability_percent(1.0, 60.0), "100%");
        assert_eq!(availability_percent(0.525, 20.0), "52.50%");
        assert_eq!(availability_percent(0.525, 5.0), "52.5%");
        assert_eq!(availability_percent(0.0, 20.0), "0.00%");
        // The summary's fraction is cut to the same precision.
        let mut log = OutageLog::new(Duration::ZERO);
        log.down(s(1), &death(Some(0.0)));
        log.up(Duration::from_millis(1004));
        let sum = log.summary(s(60));
        assert_eq!(sum.observed_s, 60.0);
        assert_eq!(sum.availability, 0.9999, "{sum:?}");
    }

    /// Issue 12 #1: 242,063 outages in 20 s grew memory without bound; the record
    /// is now a bounded sample.
    #[test]
    fn a_million_outages_keep_a_bounded_sample() {
        let mut log = OutageLog::new(Duration::ZERO);
        for i in 0..1_000_000u64 {
            let now = Duration::from_micros(i * 10);
            log.up(now);
            log.down(now, &death(Some((i % 100) as f64 / 100.0)));
        }
        assert_eq!(log.detect.len(), SAMPLE_MAX);
        assert!(log.median_is_sampled());
        let sum = log.summary(Duration::from_secs(10));
        assert_eq!(sum.outages, 1_000_000);
        assert_eq!(sum.detect_min_s, Some(0.0));
        assert_eq!(sum.detect_max_s, Some(0.99));
        let median = sum.detect_median_s.expect("median");
        assert!((median - 0.5).abs() < 0.05, "sampled median {median}");
    }
}
