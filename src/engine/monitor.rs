//! The reconnecting monitor (`connect --reconnect`) across several deaths. After each death it
//! logs the outage (`down`), reconnects with capped exponential backoff (`up`,
//! with the downtime counted from the last contact), and ends with a summary.

use std::time::Duration;

use crate::engine::connection::{CONN, ConnectOptions, Dialed, dial, follow};
use crate::engine::event_loop::EventLoop;
use crate::engine::run::{Reporter, RunError, stop_message};
use crate::model::event::{EndFacts, EventKind, Outcome};
use crate::model::outages::{OutageLog, SAMPLE_MAX};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Dials, follows and redials `cfg.target` until `--for`, a signal, or `outages`
/// deaths (`--reconnect N`; `None` for no limit).
pub fn run(
    cfg: &ConnectOptions,
    outages: Option<u64>,
    rep: &mut Reporter,
    lp: &mut EventLoop<'_>,
) -> Result<EndFacts, RunError> {
    let start = rep.clock.now();
    let stop_at = cfg.run_for.map(|d| start.saturating_add(d));
    let mut log = OutageLog::new(start);
    let mut first_miss: Option<(usize, String)> = None;
    let mut conn = CONN - 1;
    let mut backoff = BACKOFF_MIN;
    let mut failing = false;
    let (outcome, message) = loop {
        if stop_at.is_some_and(|s| rep.clock.now() >= s) {
            break (Outcome::Alive, stop_message(Outcome::Alive, cfg.run_for));
        }
        let dialed = dial(cfg, rep, lp)?;
        let (sock, died) = match dialed {
            Dialed::Connected(sock) => (Some(sock), None),
            Dialed::Died(end) => (None, Some(*end)),
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
                backoff = backoff.saturating_mul(2).min(BACKOFF_MAX);
                continue;
            }
            Dialed::Interrupted(o) => break (o, stop_message(o, None)),
        };
        let up_at = rep.clock.now();
        conn = conn.saturating_add(1);
        failing = false;
        if let Some((n, downtime)) = log.up(up_at) {
            rep.emit(conn, EventKind::Up { n, downtime })?;
        }
        let end = match (sock, died) {
            (Some(sock), _) => follow(conn, sock, cfg, rep, lp, stop_at)?,
            (None, Some(end)) => end,
            (None, None) => continue,
        };
        match end.outcome {
            Outcome::Alive => break (Outcome::Alive, end.message),
            o if o.is_signal() => break (o, end.message),
            _ => {}
        }
        let now = rep.clock.now();
        let n = log.down(now, &end);
        rep.emit(
            conn,
            EventKind::Down {
                n,
                outcome: end.outcome,
                errno: end.errno.clone(),
                detect_s: end.detect_s,
            },
        )?;
        if first_miss.is_none()
            && let Err(why) = rep.expect.check(&end)
        {
            first_miss = Some((n, why));
        }
        if outages.is_some_and(|c| n as u64 >= c) {
            break (
                Outcome::Alive,
                format!("stopped after {n} outage(s) as asked"),
            );
        }
        // Connections that die sooner than the backoff (a server that accepts and
        // closes at once) are spaced by it like failed dials, and it doubles; one
        // that lived longer resets it and is redialed at once.
        let lived = now.saturating_sub(up_at);
        if lived >= backoff {
            backoff = BACKOFF_MIN;
        } else {
            if let Some(o) = pause(rep, lp, backoff - lived, stop_at)? {
                break (o, stop_message(o, None));
            }
            backoff = backoff.saturating_mul(2).min(BACKOFF_MAX);
        }
    };
    let now = rep.clock.now();
    let mut message = message;
    if log.median_is_sampled() {
        message.push_str(&format!(
            "; detection median over a uniform sample of {SAMPLE_MAX} outages"
        ));
    }
    let mut facts = EndFacts::new(outcome, None, message, None, None);
    facts.outages = Some(log.summary(now));
    rep.expect
        .judge_outages(log.count(), first_miss, &mut facts);
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
