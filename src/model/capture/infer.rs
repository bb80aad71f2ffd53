//! What the wire says about the prober's settings, each value with its evidence:
//! idle (last contact to the first probe), interval (between unanswered probes),
//! count (unanswered probes before the end), and the stack whose probe shape and
//! defaults the pattern matches. Timers fire late, never early (`model::wheel`),
//! so a measured gap is the setting plus lateness: the inferred value is the
//! whole second below it when the lateness fits the timer wheel's bound, and the
//! measured milliseconds otherwise (Windows keeps milliseconds).

use std::time::Duration;

use super::conn::{Conn, Obs};
use crate::model::plan::Platform;
use crate::model::wheel::Wheel;

/// What a capture's clock adds to a timer's lateness: the capture point's own
/// scheduling and, on the far side of a link, the one-way delay.
pub const CAPTURE_JITTER: Duration = Duration::from_millis(20);

/// One run of keepalive probes after a last contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The last segment from the peer before the run's first probe.
    pub contact: Duration,
    /// Each probe's time and whether the peer answered it.
    pub probes: Vec<(Duration, bool)>,
    pub one_byte: bool,
}

impl Run {}

/// An inferred value with how it was measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// Whole seconds (the unit Linux, BSD and macOS set), rounded when `exact` is false.
    pub secs: u32,
    /// The gap measured on the wire.
    pub measured: Duration,
    /// The gap is the whole seconds plus a lateness the timer wheel allows.
    pub exact: bool,
    pub evidence: String,
}

/// The keepalive probes of side `local` in runs, each after a last contact.
pub fn runs(conn: &Conn, local: usize) -> Vec<Run> {
    let peer = 1 - local;
    let mut out: Vec<Run> = Vec::new();
    let mut contact: Option<Duration> = None;
    let mut current: Option<Run> = None;
    for &(at, obs) in &conn.obs {
        match obs {
            Obs::KeepaliveProbe { side, one_byte } if side == local => {
                let run = current.get_or_insert_with(|| Run {
                    contact: contact.unwrap_or(conn.first),
                    probes: Vec::new(),
                    one_byte,
                });
                run.probes.push((at, false));
            }
            o if o.side() == Some(peer) => {
                if let Some(run) = current.as_mut() {
                    if let Some(last) = run.probes.last_mut() {
                        last.1 = true;
                    }
                    // An answer ends the unanswered stretch; the next probe starts
                    // a new run counted from this contact.
                    out.extend(current.take());
                }
                contact = Some(at);
            }
            Obs::Data { side, .. } | Obs::Retransmit { side, .. } if side == local => {
                out.extend(current.take());
            }
            _ => {}
        }
    }
    out.extend(current);
    out
}

/// A gap as whole seconds of a timer: exact when the excess over the whole
/// second is no more than the wheel's lateness for such a timer plus jitter.
pub fn whole_seconds(gap: Duration) -> (u32, bool) {
    let floor = gap.as_secs();
    let excess = gap.saturating_sub(Duration::from_secs(floor));
    let allowed = Wheel::new(None).late_bound(Duration::from_secs(floor.max(1))) + CAPTURE_JITTER;
    let secs = u32::try_from(floor).unwrap_or(u32::MAX);
    if floor > 0 && excess <= allowed {
        return (secs, true);
    }
    // A capture on the far side can see the probe a little early.
    let up = Duration::from_secs(floor + 1).saturating_sub(gap);
    if up <= CAPTURE_JITTER {
        return (secs.saturating_add(1), true);
    }
    let rounded = (gap.as_secs_f64().round() as u64).max(1);
    (u32::try_from(rounded).unwrap_or(u32::MAX), false)
}

fn value(gap: Duration, evidence: String) -> Value {
    let (secs, exact) = whole_seconds(gap);
    Value {
        secs,
        measured: gap,
        exact,
        evidence,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// Idle: from the first run that starts after a real contact.
pub fn idle(runs: &[Run]) -> Option<Value> {
    let run = runs.first()?;
    let (first, _) = *run.probes.first()?;
    let gap = first.saturating_sub(run.contact);
    let mut evidence = format!("{} from the last contact to probe 1", ms(gap));
    let others: Vec<Duration> = runs[1..]
        .iter()
        .filter_map(|r| r.probes.first().map(|p| p.0.saturating_sub(r.contact)))
        .collect();
    if !others.is_empty() {
        evidence.push_str(&format!(
            "; {} later run(s) began after {}",
            others.len(),
            others.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ")
        ));
    }
    Some(value(gap, evidence))
}

/// Interval: the gaps after unanswered probes, over all runs.
pub fn intvl(runs: &[Run]) -> Option<Value> {
    let mut gaps = Vec::new();
    for run in runs {
        for w in run.probes.windows(2) {
            if !w[0].1 {
                gaps.push(w[1].0.saturating_sub(w[0].0));
            }
        }
    }
    let shortest = *gaps.iter().min()?;
    let longest = *gaps.iter().max()?;
    let evidence = format!(
        "{} gap(s) between unanswered probes, {}..{}",
        gaps.len(),
        ms(shortest),
        ms(longest)
    );
    Some(value(shortest, evidence))
}

/// The stack the probes' shape and the settings match, or why none can be named.
pub fn stack(
    one_byte: Option<bool>,
    settings: Option<(u32, u32, u32)>,
) -> (Option<String>, String) {
    let Some(one_byte) = one_byte else {
        return (
            None,
            "not enough evidence: no keepalive probe in the capture".into(),
        );
    };
    let shape = if one_byte {
        "1-byte probes (one garbage byte at snd.nxt-1): Windows, or an older BSD-derived stack"
    } else {
        "zero-length probes at snd.nxt-1: Linux, macOS or FreeBSD"
    };
    let family: &[Platform] = if one_byte {
        &[Platform::Windows]
    } else {
        &[Platform::Linux, Platform::Macos, Platform::Freebsd]
    };
    let Some((idle, intvl, cnt)) = settings else {
        return (
            None,
            format!(
                "{shape}; the settings are not all known, so no stack's defaults can be matched"
            ),
        );
    };
    let matching: Vec<&str> = family
        .iter()
        .filter(|p| {
            let f = p.facts();
            (f.idle_s, f.intvl_s, f.cnt) == (idle, intvl, cnt)
        })
        .map(|p| p.title())
        .collect();
    let intervals: Vec<&str> = family
        .iter()
        .filter(|p| {
            let f = p.facts();
            (f.intvl_s, f.cnt) == (intvl, cnt)
        })
        .map(|p| p.title())
        .collect();
    if !matching.is_empty() {
        let name = matching.join(" or ");
        return (
            Some(name.clone()),
            format!("{shape}; idle {idle}s, intvl {intvl}s, cnt {cnt} are {name}'s defaults"),
        );
    }
    if !intervals.is_empty() {
        let name = intervals.join(" or ");
        return (
            Some(name.clone()),
            format!(
                "{shape}; intvl {intvl}s and cnt {cnt} are {name}'s defaults, idle {idle}s was set \
                 by the application or the system"
            ),
        );
    }
    let family_names: Vec<&str> = family.iter().map(|p| p.title()).collect();
    (
        None,
        format!(
            "{shape}; idle {idle}s, intvl {intvl}s, cnt {cnt} are no modelled stack's defaults \
             ({} set by the application or the system): the shape alone cannot name one of {}",
            if family.len() > 1 { "values" } else { "so" },
            family_names.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_to_seconds() {
        let d = Duration::from_millis;
        assert_eq!(whole_seconds(d(1027)), (1, true));
        assert_eq!(whole_seconds(d(1000)), (1, true));
        assert_eq!(whole_seconds(d(995)), (1, true));
        assert_eq!(whole_seconds(d(7_200_050)), (7200, true));
        assert_eq!(whole_seconds(d(1500)), (2, false));
        assert_eq!(whole_seconds(d(300)), (1, false));
    }

    #[test]
    fn stacks_from_shape_and_defaults() {
        assert_eq!(
            stack(Some(true), Some((7200, 1, 10))).0.as_deref(),
            Some("Windows")
        );
        assert_eq!(
            stack(Some(false), Some((7200, 75, 9))).0.as_deref(),
            Some("Linux")
        );
        assert_eq!(
            stack(Some(false), Some((7200, 75, 8))).0.as_deref(),
            Some("macOS or FreeBSD")
        );
        assert_eq!(
            stack(Some(true), Some((60, 1, 10))).0.as_deref(),
            Some("Windows")
        );
        let (none, why) = stack(Some(false), Some((1, 1, 3)));
        assert_eq!(none, None);
        assert!(why.contains("no modelled stack's defaults"), "{why}");
        assert!(stack(None, None).1.contains("not enough evidence"));
    }
}

pub(super) fn secs(d: Duration) -> f64 {
    crate::model::event::secs_value(d)
}

pub(super) fn t(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// The inferred settings of a connection's prober.
#[derive(Debug, Clone, Default)]
pub(super) struct Settings {
    pub(super) idle: Option<Value>,
    pub(super) intvl: Option<Value>,
    /// Unanswered probes before the prober's own end, and whether exact.
    pub(super) cnt: Option<(u32, bool, String)>,
    pub(super) one_byte: Option<bool>,
    /// What ended a busy or zero-window connection: unanswered tries, evidence.
    pub(super) retries: Option<(u32, String)>,
}
