//! Human renderer: one line per event, time first, then the event and its facts.

use std::io::Write;
use std::time::Duration;

use crate::config::Timestamps;
use crate::event::{ConfigFacts, EndFacts, Event, EventKind, Sink, WatchFacts};

pub struct Human {
    out: Box<dyn Write>,
    timestamps: Timestamps,
    tag_conns: bool,
    /// Connections `watch` follows from outside: their settings are inferred, not
    /// read back, and the settings line says so.
    watched: std::collections::HashSet<u64>,
}

impl Human {
    pub fn new(out: Box<dyn Write>, timestamps: Timestamps, tag_conns: bool) -> Human {
        Human {
            out,
            timestamps,
            tag_conns,
            watched: std::collections::HashSet::new(),
        }
    }

    fn stamp(&self, event: &Event) -> String {
        match self.timestamps {
            Timestamps::Relative => format!("{:>9}", rel(event.at)),
            Timestamps::Absolute => humantime::format_rfc3339_millis(event.wall).to_string(),
        }
    }
}

fn rel(d: Duration) -> String {
    format!("+{:.3}s", d.as_secs_f64())
}

fn opt_secs(v: Option<f64>) -> String {
    v.map_or("never".to_string(), |s| format!("{s:.3}s"))
}

fn config_lines(f: &ConfigFacts) -> Vec<(&'static str, String)> {
    let uto = if f.user_timeout_ms == 0 {
        "off".to_string()
    } else {
        format!("{}ms", f.user_timeout_ms)
    };
    let mut lines = vec![
        (
            "settings",
            format!(
                "keepalive {}: idle {}s, intvl {}s, cnt {}, user timeout {} (read back from the kernel)",
                if f.keepalive { "on" } else { "off" },
                f.idle_s,
                f.intvl_s,
                f.cnt,
                uto
            ),
        ),
        ("predict", f.explain.clone()),
    ];
    if let Some(busy) = f.predicted_busy_detect_s {
        lines.push((
            "predict",
            format!("with data in flight: dead peer detected {busy:.1}s after the unacknowledged send"),
        ));
    }
    lines.extend(f.warnings.iter().map(|w| ("warning", w.clone())));
    lines
}

fn end_line(e: &EndFacts) -> String {
    let mut text = e.outcome.name().to_string();
    if let Some(errno) = &e.errno {
        text.push(' ');
        text.push_str(errno);
    }
    if !e.message.is_empty() {
        text.push_str(&format!(" ({})", e.message));
    }
    if e.detect_s.is_some() {
        text.push_str(&format!(
            "; detected {} after last contact, predicted {}",
            opt_secs(e.detect_s),
            opt_secs(e.predicted_detect_s)
        ));
    }
    text.push_str(&format!("; exit {}", e.exit_code));
    text
}

/// A watched connection's first line: endpoints, owner, timer and settings.
fn watched_line(w: &WatchFacts) -> String {
    let owner = match (&w.pid, &w.process) {
        (Some(pid), Some(name)) => format!("pid {pid} ({name})"),
        (Some(pid), None) => format!("pid {pid}"),
        _ => format!("owner not visible (uid {})", w.uid),
    };
    let keepalive = match w.keepalive {
        Some(true) => "keepalive on".to_string(),
        Some(false) => "keepalive OFF".to_string(),
        None => "keepalive unknown".to_string(),
    };
    let timer = match w.timer {
        "none" => "no timer pending".to_string(),
        t => format!("{t} timer in {:.3}s", w.timer_expires_ms as f64 / 1e3),
    };
    let source = |s: &str| match s {
        "kernel-timer" => " (from the kernel's keepalive timer)",
        _ => " (system default, may be overridden by the app)",
    };
    format!(
        "{} -> {}, {owner}; {keepalive} ({timer}); idle {}s{}, intvl {}s{}, cnt {}{}",
        w.local,
        w.peer,
        w.idle_s,
        source(w.idle_source),
        w.intvl_s,
        source(w.intvl_source),
        w.cnt,
        source(w.cnt_source)
    )
}

/// The event's name and facts as text lines (most events are one line).
fn describe(kind: &EventKind) -> Vec<(&'static str, String)> {
    let one = |text: String| vec![(kind.name(), text)];
    match kind {
        EventKind::Listening { local, max_conns } => {
            one(format!("on {local} (at most {max_conns} connections)"))
        }
        EventKind::Refused { peer, reason } => one(format!("{peer}: {reason}")),
        EventKind::Connected { local, peer } => one(format!("{local} -> {peer}")),
        EventKind::Config(f) => config_lines(f),
        EventKind::Idle { since } => one(format!("last contact with the peer at {}", rel(*since))),
        EventKind::ProbeWindow { due, dead_at } => one(match dead_at {
            Some(dead) => format!(
                "first probe due at {}; dead at {} if none is answered",
                rel(*due),
                rel(*dead)
            ),
            None => format!("first probe due at {}", rel(*due)),
        }),
        EventKind::Probe { n } => one(format!("#{n} sent")),
        EventKind::ProbeAcked { n } => one(format!("#{n} answered: the peer is alive")),
        EventKind::Retransmit { n, unacked } => one(format!(
            "#{n}, {unacked} segment(s) unacknowledged: keepalive is suspended while data is in flight"
        )),
        EventKind::Data { bytes_in, bytes_out } => {
            one(format!("{bytes_in} bytes in, {bytes_out} bytes out (acknowledged)"))
        }
        EventKind::Heartbeat { seq } => one(format!("#{seq} sent")),
        EventKind::HeartbeatReply { seq, rtt } => {
            one(format!("#{seq} answered in {:.3}ms", rtt.as_secs_f64() * 1e3))
        }
        EventKind::Warning { message } => one(message.clone()),
        EventKind::End(e) => one(end_line(e)),
        EventKind::InferredEnd { end, evidence } => {
            one(format!("{} [inferred from outside: {evidence}]", end_line(end)))
        }
        EventKind::Watched(w) => one(watched_line(w)),
    }
}

impl Sink for Human {
    fn emit(&mut self, event: &Event) -> std::io::Result<()> {
        let stamp = self.stamp(event);
        let tag = if self.tag_conns && event.conn != 0 {
            format!("[{}] ", event.conn)
        } else {
            String::new()
        };
        if let EventKind::Watched(_) = event.kind {
            self.watched.insert(event.conn);
        }
        let watched = self.watched.contains(&event.conn);
        for (name, text) in describe(&event.kind) {
            let text = if watched && name == "settings" {
                text.replace("(read back from the kernel)", "(inferred from outside)")
            } else {
                text
            };
            writeln!(self.out, "{stamp} {tag}{name:<12} {text}")?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Outcome;

    #[test]
    fn end_line_reads_as_a_verdict() {
        let e = EndFacts {
            outcome: Outcome::Timeout,
            errno: Some("ETIMEDOUT".into()),
            message: "Connection timed out".into(),
            exit_code: 6,
            detect_s: Some(4.012),
            predicted_detect_s: Some(4.0),
        };
        assert_eq!(
            end_line(&e),
            "timeout ETIMEDOUT (Connection timed out); detected 4.012s after last contact, \
             predicted 4.000s; exit 6"
        );
    }
}
