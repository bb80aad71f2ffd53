//! `connect --reconnect`: a monitor across several deaths. After each death it
//! logs the outage (`down`), reconnects with capped exponential backoff (`up`,
//! with the downtime counted from the last contact), and ends with a summary.

use std::time::Duration;

use crate::config::ConnectConfig;
use crate::engine::connection::{CONN, Dialed, dial, follow};
use crate::engine::event_loop::EventLoop;
use crate::engine::run::{Reporter, RunError, stop_message};
use crate::model::event::{EndFacts, EventKind, OutageSummary, Outcome};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

struct Outage {
    end: EndFacts,
    /// Run time of the last contact before the death.
    since: Duration,
    /// Run time the connection was back.
    until: Option<Duration>,
}

pub fn run(
    cfg: &ConnectConfig,
    rep: &mut Reporter,
    lp: &mut EventLoop<'_>,
) -> Result<EndFacts, RunError> {
    let start = rep.clock.now();
    let stop_at = cfg.run.run_for.map(|d| start + d);
    let count = cfg.reconnect.as_ref().and_then(|r| r.count);
    let mut outages: Vec<Outage> = Vec::new();
    let mut conn = CONN - 1;
    let mut backoff = BACKOFF_MIN;
    let mut failing = false;
    let (outcome, message) = loop {
        if stop_at.is_some_and(|s| rep.clock.now() >= s) {
            break (
                Outcome::Alive,
                stop_message(Outcome::Alive, cfg.run.run_for),
            );
        }
        match dial(cfg, rep, lp)? {
            Dialed::Connected(sock) => {
                let now = rep.clock.now();
                conn += 1;
                backoff = BACKOFF_MIN;
                failing = false;
                let n = outages.len();
                if let Some(o) = outages.last_mut().filter(|o| o.until.is_none()) {
                    o.until = Some(now);
                    rep.emit(
                        conn,
                        EventKind::Up {
                            n,
                            downtime: now.saturating_sub(o.since),
                        },
                    )?;
                }
                let end = follow(conn, sock, cfg, rep, lp, stop_at)?;
                match end.outcome {
                    Outcome::Alive => break (Outcome::Alive, end.message),
                    Outcome::Interrupted | Outcome::Terminated => break (end.outcome, end.message),
                    _ => {}
                }
                let now = rep.clock.now();
                // The outage starts at the last contact, but never before the run
                // or before the previous outage ended: outages do not overlap, so
                // the downtime can never exceed the run.
                let floor = outages
                    .last()
                    .and_then(|o: &Outage| o.until)
                    .unwrap_or(start);
                let since = now
                    .saturating_sub(
                        Duration::try_from_secs_f64(end.detect_s.unwrap_or(0.0))
                            .unwrap_or_default(),
                    )
                    .max(floor);
                rep.emit(
                    conn,
                    EventKind::Down {
                        n: outages.len() + 1,
                        outcome: end.outcome,
                        errno: end.errno.clone(),
                        detect_s: end.detect_s,
                    },
                )?;
                outages.push(Outage {
                    end,
                    since,
                    until: None,
                });
                if count.is_some_and(|c| outages.len() as u64 >= c) {
                    break (
                        Outcome::Alive,
                        format!("stopped after {} outage(s) as asked", outages.len()),
                    );
                }
            }
            Dialed::Failed(end) => {
                if !failing {
                    failing = true;
                    rep.emit(
                        conn.max(CONN),
                        EventKind::Warning {
                            message: format!(
                                "{}; retrying with backoff up to {}s",
                                end.message,
                                BACKOFF_MAX.as_secs()
                            ),
                        },
                    )?;
                }
                if let Some(o) = pause(rep, lp, backoff, stop_at)? {
                    break (o, stop_message(o, None));
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Dialed::Interrupted(o) => break (o, stop_message(o, None)),
        }
    };
    let now = rep.clock.now();
    let mut facts = EndFacts::new(outcome, None, message, None, None);
    facts.outages = Some(summary(&outages, start, now));
    let deaths: Vec<EndFacts> = outages.into_iter().map(|o| o.end).collect();
    rep.expect.judge_all(&deaths, &mut facts);
    // Stamped at the moment the summary was made, so downtime <= t holds exactly.
    rep.emit_at(now, conn.max(CONN), EventKind::End(facts.clone()))?;
    Ok(facts)
}

/// Waits out a backoff; a signal cuts it short.
fn pause(
    rep: &Reporter,
    lp: &mut EventLoop<'_>,
    backoff: Duration,
    stop_at: Option<Duration>,
) -> Result<Option<Outcome>, RunError> {
    let until = [Some(rep.clock.now().saturating_add(backoff)), stop_at]
        .into_iter()
        .flatten()
        .min();
    Ok(lp.wait(&rep.clock, until)?.signal())
}

fn summary(outages: &[Outage], start: Duration, now: Duration) -> OutageSummary {
    let mut detect: Vec<f64> = outages.iter().filter_map(|o| o.end.detect_s).collect();
    detect.sort_by(f64::total_cmp);
    let median = match detect.len() {
        0 => None,
        n if n % 2 == 1 => Some(detect[n / 2]),
        n => Some((detect[n / 2 - 1] + detect[n / 2]) / 2.0),
    };
    let downtime: f64 = outages
        .iter()
        .map(|o| o.until.unwrap_or(now).saturating_sub(o.since).as_secs_f64())
        .sum();
    let span = now.saturating_sub(start).as_secs_f64();
    OutageSummary {
        outages: outages.len(),
        detect_min_s: detect.first().copied(),
        detect_median_s: median,
        detect_max_s: detect.last().copied(),
        downtime_s: (downtime * 1000.0).round() / 1000.0,
        availability: if span > 0.0 {
            (1.0 - downtime / span).clamp(0.0, 1.0)
        } else {
            1.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outage(detect: f64, since: u64, until: Option<u64>) -> Outage {
        Outage {
            end: EndFacts::new(Outcome::Timeout, None, String::new(), Some(detect), None),
            since: Duration::from_secs(since),
            until: until.map(Duration::from_secs),
        }
    }

    #[test]
    fn summary_counts_downtime_from_last_contact_to_reconnect() {
        let s = summary(
            &[
                outage(4.0, 10, Some(20)),
                outage(5.0, 50, Some(55)),
                outage(4.5, 90, None),
            ],
            Duration::ZERO,
            Duration::from_secs(100),
        );
        assert_eq!(s.outages, 3);
        assert_eq!(s.detect_min_s, Some(4.0));
        assert_eq!(s.detect_median_s, Some(4.5));
        assert_eq!(s.detect_max_s, Some(5.0));
        assert_eq!(s.downtime_s, 25.0);
        assert!((s.availability - 0.75).abs() < 1e-9);
    }
}
