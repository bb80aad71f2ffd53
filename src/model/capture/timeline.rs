//! One connection's explanation: its observations replayed as `connect`'s event
//! vocabulary from the side that probes (`local`), the settings inferred from
//! them, and the end: who ended it, how long after the last contact, and what
//! the inferred settings predict. Times are capture times: `at` from the first
//! frame, `wall` the frame's own timestamp.

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use super::conn::{Conn, Obs};
use super::end;
use super::infer::{self, Run, Settings, Value};
use crate::model::event::{EndFacts, Event, EventKind, Outcome, Path};
use crate::model::predict::Effective;
use crate::model::settings::{Source, Sources};

/// Linux's tcp_retries2 default, for the busy-path line of the `config` event.
const RETRIES2: u32 = 15;
/// At most one `data` event per this much capture time (the bytes add up).
const DATA_EVERY: Duration = Duration::from_secs(1);

/// One connection explained.
#[derive(Debug, Clone)]
pub struct Explained {
    pub id: u64,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub events: Vec<Event>,
    pub end: EndFacts,
}

/// The side whose timeline is told: the one that sent keepalive probes, else the
/// one that retransmitted or probed a zero window, else the client.
pub fn local_side(conn: &Conn) -> usize {
    let mut probes = [0u64; 2];
    let mut retries = [0u64; 2];
    for (_, o) in &conn.obs {
        match *o {
            Obs::KeepaliveProbe { side, .. } => probes[side] += 1,
            Obs::WindowProbe { side } | Obs::Retransmit { side, .. } => retries[side] += 1,
            _ => {}
        }
    }
    if probes != [0, 0] {
        return (probes[1] > probes[0]) as usize;
    }
    (retries[1] > retries[0]) as usize
}

/// Explains one connection; `start` is the capture's first frame, `end` its last.
pub fn explain(conn: &Conn, start: Duration, capture_end: Duration) -> Explained {
    let local = local_side(conn);
    let peer = 1 - local;
    let rel = |at: Duration| at.saturating_sub(start);
    let runs = infer::runs(conn, local);
    let mut settings = Settings {
        idle: infer::idle(&runs),
        intvl: infer::intvl(&runs),
        cnt: None,
        one_byte: runs.first().map(|r| r.one_byte),
        retries: None,
    };
    let mut events: Vec<(Duration, EventKind)> = Vec::new();
    let connected_at = conn
        .obs
        .iter()
        .find(|(_, o)| *o == Obs::Established)
        .map(|(at, _)| *at)
        .unwrap_or(conn.first);
    events.push((
        connected_at,
        EventKind::Connected {
            local: conn.addrs[local],
            peer: conn.addrs[peer],
        },
    ));
    if !conn.syn_seen {
        events.push((
            conn.first,
            EventKind::Warning {
                message: "the capture starts inside this connection (no SYN): who opened it \
                          and what came before are not known"
                    .into(),
            },
        ));
    }
    let end = replay(
        conn,
        local,
        &runs,
        &mut settings,
        capture_end,
        &mut events,
        rel,
    );
    // The config goes right after `connected`: hindsight from the whole capture.
    // Without a probe there are no settings to show, only why.
    let predicted = if runs.is_empty() {
        let message = "no keepalive probe in the capture: keepalive is off, or its idle is \
                       longer than the capture's quiet stretches; no idle-path prediction"
            .to_string();
        let warning = EventKind::Warning { message };
        events.insert(1.min(events.len()), (connected_at, warning));
        None
    } else {
        let facts = config(&settings);
        let predicted = facts.predicted_detect_s;
        events.insert(
            1.min(events.len()),
            (connected_at, EventKind::Config(facts)),
        );
        predicted
    };
    let end_at = end.0;
    let mut end = end.1;
    if end.predicted_detect_s.is_none() && end.path == Some(Path::Idle) {
        end.predicted_detect_s = predicted;
    }
    for (what, v) in inferred_lines(&settings) {
        events.push((end_at, v.into_kind(what)));
    }
    events.push((end_at, EventKind::End(end.clone())));
    events.sort_by_key(|(at, _)| *at);
    let events = events
        .into_iter()
        .map(|(at, kind)| Event {
            at: rel(at),
            wall: UNIX_EPOCH.checked_add(at).unwrap_or(UNIX_EPOCH),
            conn: conn.id,
            kind,
        })
        .collect();
    Explained {
        id: conn.id,
        local: conn.addrs[local],
        peer: conn.addrs[peer],
        events,
        end,
    }
}

struct Line {
    value: String,
    exact: bool,
    evidence: String,
}

impl Line {
    fn into_kind(self, what: &'static str) -> EventKind {
        EventKind::Inferred {
            what,
            value: self.value,
            exact: self.exact,
            evidence: self.evidence,
        }
    }
}

fn inferred_lines(s: &Settings) -> Vec<(&'static str, Line)> {
    let mut out = Vec::new();
    let setting = |v: &Value| Line {
        value: if v.exact {
            format!("{}s", v.secs)
        } else {
            format!("{:.3}s", v.measured.as_secs_f64())
        },
        exact: v.exact,
        evidence: v.evidence.clone(),
    };
    match &s.idle {
        Some(v) => out.push(("idle", setting(v))),
        None => out.push((
            "idle",
            Line {
                value: "unknown".into(),
                exact: false,
                evidence: "no keepalive probe in the capture".into(),
            },
        )),
    }
    if let Some(v) = &s.intvl {
        out.push(("intvl", setting(v)));
    } else if s.idle.is_some() {
        out.push((
            "intvl",
            Line {
                value: "unknown".into(),
                exact: false,
                evidence: "no two probes in a row went unanswered".into(),
            },
        ));
    }
    if let Some((n, exact, why)) = &s.cnt {
        out.push((
            "cnt",
            Line {
                value: if *exact {
                    n.to_string()
                } else {
                    format!("at least {n}")
                },
                exact: *exact,
                evidence: why.clone(),
            },
        ));
    }
    if let Some((n, why)) = &s.retries {
        out.push((
            "retries",
            Line {
                value: n.to_string(),
                exact: false,
                evidence: why.clone(),
            },
        ));
    }
    let settings = match (&s.idle, &s.intvl, &s.cnt) {
        (Some(i), Some(v), Some((c, true, _))) if i.exact && v.exact => Some((i.secs, v.secs, *c)),
        _ => None,
    };
    let (name, evidence) = infer::stack(s.one_byte, settings);
    out.push((
        "stack",
        Line {
            exact: name.is_some(),
            value: name.unwrap_or_else(|| "unknown".into()),
            evidence,
        },
    ));
    out
}

/// The `config` event: the inferred settings and the prediction they make.
fn config(s: &Settings) -> crate::model::event::ConfigFacts {
    let idle = s.idle.as_ref().map(|v| v.secs);
    let intvl = s.intvl.as_ref().map(|v| v.secs);
    let cnt = s.cnt.as_ref().filter(|c| c.1).map(|c| c.0);
    let eff = Effective {
        keepalive: true,
        idle_s: idle.unwrap_or(0),
        intvl_s: intvl.or(idle).unwrap_or(0),
        cnt: cnt.unwrap_or(0),
        user_timeout_ms: 0,
    };
    let mut facts = eff.facts(RETRIES2);
    let known = |k: bool| if k { Source::Capture } else { Source::Assumed };
    facts.sources = Sources {
        keepalive: Source::Capture,
        idle_s: known(idle.is_some()),
        intvl_s: known(intvl.is_some()),
        cnt: known(cnt.is_some()),
        user_timeout_ms: Source::Assumed,
    };
    if idle.is_none() || intvl.is_none() || cnt.is_none() {
        facts.predicted_detect_s = None;
        facts.predicted_probes = None;
        facts.explain = "not every setting shows on the wire: no prediction".into();
    }
    facts.predicted_busy_detect_s = None;
    facts.warnings.push(
        "inferred from the capture's timing (see the inferred lines): a user timeout \
         and the retransmission budget show only when they end the connection"
            .into(),
    );
    facts
}

/// Replays the observations into events; returns the end (its time and facts).
#[allow(clippy::too_many_arguments)]
fn replay(
    conn: &Conn,
    local: usize,
    runs: &[Run],
    settings: &mut Settings,
    capture_end: Duration,
    events: &mut Vec<(Duration, EventKind)>,
    rel: impl Fn(Duration) -> Duration,
) -> (Duration, EndFacts) {
    let peer = 1 - local;
    let (la, pa) = (conn.addrs[local], conn.addrs[peer]);
    let idle_s = settings
        .idle
        .as_ref()
        .map(|v| Duration::from_secs(v.secs as u64));
    let intvl_s = settings
        .intvl
        .as_ref()
        .map(|v| Duration::from_secs(v.secs as u64));
    let mut contact = conn.first;
    let established = conn
        .obs
        .iter()
        .find(|(_, o)| *o == Obs::Established)
        .map_or(conn.first, |(at, _)| *at);
    let mut probe_n = 0u32;
    let mut prev_probe: Option<Duration> = None;
    let mut window_n = 0u32;
    let mut window_unanswered = 0u32;
    let mut zero_since: Option<Duration> = None;
    let mut retrans_n = 0u32;
    let mut last_retry: Option<Duration> = None;
    let mut retry_gap: Option<Duration> = None;
    let (mut bytes_in, mut bytes_out) = (0u64, 0u64);
    let mut data_shown: Option<Duration> = None;
    for &(at, obs) in &conn.obs {
        match obs {
            Obs::SynRetransmit { n } => {
                events.push((at, EventKind::SynRetransmit { n, due: rel(at) }))
            }
            Obs::KeepaliveProbe { side, .. } if side == local => {
                if probe_n == 0 {
                    let shown = contact.max(established);
                    events.push((
                        shown,
                        EventKind::Idle {
                            since: rel(contact),
                        },
                    ));
                }
                probe_n += 1;
                let due = match (probe_n, prev_probe) {
                    (1, _) => idle_s.map(|i| contact + i),
                    (_, Some(p)) => intvl_s.map(|i| p + i),
                    _ => None,
                }
                .unwrap_or(at);
                events.push((
                    at,
                    EventKind::Probe {
                        n: probe_n,
                        due: rel(due),
                        answered: false,
                    },
                ));
                prev_probe = Some(at);
            }
            Obs::WindowProbe { side } if side == local => {
                window_n += 1;
                window_unanswered += 1;
                note_retry(&mut last_retry, &mut retry_gap, at);
                events.push((
                    at,
                    EventKind::WindowProbe {
                        n: window_n,
                        due: rel(at),
                        unanswered: window_unanswered,
                    },
                ));
            }
            Obs::Retransmit {
                side,
                unacked,
                bytes,
            } if side == local => {
                retrans_n += 1;
                note_retry(&mut last_retry, &mut retry_gap, at);
                // The wire shows bytes; the event counts segments of this size.
                let unacked = unacked.div_ceil(bytes.max(1));
                events.push((
                    at,
                    EventKind::Retransmit {
                        n: retrans_n,
                        unacked,
                    },
                ));
            }
            Obs::ZeroWindow { side } if side == peer => {
                zero_since = Some(at);
                window_n = 0;
                events.push((
                    at,
                    EventKind::ZeroWindow {
                        unsent: None,
                        // The wire shows when the first window probe went, not its timer.
                        probe_due: rel(first_window_probe(conn, local, at).unwrap_or(at)),
                    },
                ));
            }
            Obs::WindowOpen { side } if side == peer => {
                if let Some(since) = zero_since.take() {
                    events.push((
                        at,
                        EventKind::WindowOpen {
                            after: at.saturating_sub(since),
                            probes: window_n,
                        },
                    ));
                }
            }
            Obs::Data { side, bytes } => {
                if side == local {
                    bytes_out += bytes as u64;
                } else {
                    bytes_in += bytes as u64;
                }
                if data_shown.is_none_or(|d| at.saturating_sub(d) >= DATA_EVERY) {
                    events.push((
                        at,
                        EventKind::Data {
                            bytes_in,
                            bytes_out,
                        },
                    ));
                    data_shown = Some(at);
                }
            }
            Obs::Rst { side } => {
                return (
                    at,
                    end::rst_end(
                        conn,
                        local,
                        side,
                        at,
                        contact,
                        probe_n,
                        window_unanswered + retrans_n,
                        settings,
                        runs,
                    ),
                );
            }
            Obs::Fin { side } => {
                let who = if side == local { la } else { pa };
                let outcome_msg = if side == peer {
                    format!("{pa} closed the connection (FIN)")
                } else {
                    format!("{who} closed first (FIN), then the peer")
                };
                if side == peer || conn.sides[peer].fin {
                    let mut e = EndFacts::new(Outcome::Eof, None, outcome_msg, None, None);
                    e.inferred = Some(true);
                    e.evidence = Some(format!("FIN from {who}"));
                    return (at, e);
                }
            }
            _ => {}
        }
        // Anything from the peer is contact, and answers what was outstanding.
        if obs.side() == Some(peer) {
            if probe_n > 0 && !matches!(obs, Obs::Rst { .. }) {
                events.push((at, EventKind::ProbeAcked { n: probe_n }));
            }
            if window_unanswered > 0 {
                events.push((at, EventKind::WindowProbeAcked { n: window_n }));
            }
            probe_n = 0;
            prev_probe = None;
            window_unanswered = 0;
            retrans_n = 0;
            last_retry = None;
            retry_gap = None;
            contact = at;
        } else if obs.side() == Some(local) && matches!(obs, Obs::Data { .. }) {
            probe_n = 0;
            prev_probe = None;
        }
    }
    end::silent_end(
        conn,
        local,
        contact,
        probe_n,
        last_retry,
        retry_gap,
        window_unanswered,
        retrans_n,
        settings,
        capture_end,
    )
}

fn note_retry(last: &mut Option<Duration>, gap: &mut Option<Duration>, at: Duration) {
    if let Some(l) = *last {
        *gap = Some(at.saturating_sub(l));
    }
    *last = Some(at);
}

/// The first window probe of `local` after `since`, if one came.
fn first_window_probe(conn: &Conn, local: usize, since: Duration) -> Option<Duration> {
    conn.obs
        .iter()
        .filter(|(at, _)| *at >= since)
        .find(|(_, o)| *o == Obs::WindowProbe { side: local })
        .map(|(at, _)| *at)
}
