//! Human renderer: time first, then the event and its facts.
//!
//! By default it shows what an operator follows at a glance: the head (connected,
//! settings with provenance, the prediction), one line per probe cycle, a
//! prediction only when the core says it is news (`Prediction::restated`), the
//! fault and the end against the prediction, no line wider than [`WIDTH`]
//! columns (longer ones wrap under the text column). `--verbose` shows every
//! event in full, one line each, as the core explains it.

use std::io::{IsTerminal, Write};

use crate::config::Timestamps;
use crate::model::event::{
    Bound, Certainty, ConfigFacts, EndFacts, Event, EventKind, Outcome, Prediction, Sink,
    TuneFacts, WatchFacts,
};
use crate::model::settings::Source;

pub struct Human {
    out: Box<dyn Write>,
    timestamps: Timestamps,
    tag_conns: bool,
    color: bool,
    verbose: bool,
}

/// The widest line the default view prints (a terminal split in two still fits
/// it); `--verbose` lines are not wrapped.
pub const WIDTH: usize = 160;

/// The environment that decides colour, read once per renderer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColorEnv {
    pub no_color: Option<std::ffi::OsString>,
    pub clicolor: Option<std::ffi::OsString>,
    pub clicolor_force: Option<std::ffi::OsString>,
    pub term: Option<std::ffi::OsString>,
}

impl ColorEnv {
    pub fn from_process() -> ColorEnv {
        ColorEnv {
            no_color: std::env::var_os("NO_COLOR"),
            clicolor: std::env::var_os("CLICOLOR"),
            clicolor_force: std::env::var_os("CLICOLOR_FORCE"),
            term: std::env::var_os("TERM"),
        }
    }
}

/// Colour by the usual conventions, first match wins: `NO_COLOR` non-empty: never
/// (https://no-color.org); `CLICOLOR_FORCE` set and not `0`: always, even into a
/// pipe; `CLICOLOR=0`: never; not a terminal: never; `TERM` unset or `dumb`:
/// never; otherwise colour (https://bixense.com/clicolors).
pub fn color_wanted(is_terminal: bool, env: &ColorEnv) -> bool {
    let set = |v: &Option<std::ffi::OsString>| v.as_ref().is_some_and(|v| !v.is_empty());
    let set_not_zero =
        |v: &Option<std::ffi::OsString>| set(v) && v.as_deref() != Some("0".as_ref());
    if set(&env.no_color) {
        return false;
    }
    if set_not_zero(&env.clicolor_force) {
        return true;
    }
    if env.clicolor.as_deref() == Some("0".as_ref()) {
        return false;
    }
    is_terminal
        && env
            .term
            .as_ref()
            .is_some_and(|t| !t.is_empty() && t != "dumb")
}

impl Human {
    /// A renderer for stdout, coloured as [`color_wanted`] decides.
    pub fn new(out: Box<dyn Write>, timestamps: Timestamps, tag_conns: bool) -> Human {
        let color = color_wanted(std::io::stdout().is_terminal(), &ColorEnv::from_process());
        Human::with_color(out, timestamps, tag_conns, color)
    }

    /// `--verbose`: every event in full.
    pub fn verbose(mut self, verbose: bool) -> Human {
        self.verbose = verbose;
        self
    }

    pub fn with_color(
        out: Box<dyn Write>,
        timestamps: Timestamps,
        tag_conns: bool,
        color: bool,
    ) -> Human {
        Human {
            out,
            timestamps,
            tag_conns,
            color,
            verbose: false,
        }
    }

    fn stamp(&self, event: &Event) -> String {
        match self.timestamps {
            Timestamps::Relative => format!("{:>9}", rel(event.at)),
            Timestamps::Absolute => super::json::rfc3339(event.wall),
        }
    }
}

use crate::model::units::{secs_fixed, secs_text, since_start as rel};

/// The one clock of a line: the times in its text are on the same clock as its
/// time column (run time, or UTC under `--timestamps abs`).
#[derive(Debug, Clone, Copy)]
enum LineClock {
    Relative,
    /// The wall-clock time of the run's start (None: before the epoch, never here).
    Wall(Option<std::time::SystemTime>),
}

impl LineClock {
    fn at(self, t: std::time::Duration) -> String {
        match self {
            LineClock::Relative => rel(t),
            LineClock::Wall(Some(start)) => {
                super::json::rfc3339(start.checked_add(t).unwrap_or(start))
            }
            LineClock::Wall(None) => rel(t),
        }
    }
}

fn opt_secs(v: Option<f64>) -> String {
    v.map_or("never".to_string(), secs_fixed)
}

fn config_lines(f: &ConfigFacts) -> Vec<(&'static str, String)> {
    let uto = if f.user_timeout_ms == 0 {
        "off".to_string()
    } else {
        format!("{}ms", f.user_timeout_ms)
    };
    let on = if f.keepalive { "on" } else { "off" };
    let settings = if f.sources.exact() {
        format!(
            "keepalive {on}: idle {}s, intvl {}s, cnt {}, user timeout {uto} ({})",
            f.idle_s,
            f.intvl_s,
            f.cnt,
            Source::ReadBack.describe()
        )
    } else {
        let s = &f.sources;
        format!(
            "keepalive {on} ({}): idle {}s ({}), intvl {}s ({}), cnt {} ({}), user timeout {uto} ({})",
            s.keepalive.describe(),
            f.idle_s,
            s.idle_s.describe(),
            f.intvl_s,
            s.intvl_s.describe(),
            f.cnt,
            s.cnt.describe(),
            s.user_timeout_ms.describe()
        )
    };
    let settings = match &f.changed {
        Some(why) => format!("changed at run time ({why}), read again: {settings}"),
        None => settings,
    };
    let mut lines = vec![("settings", settings), ("predict", f.explain.clone())];
    if let (Some(min), Some(max)) = (f.predicted_detect_min_s, f.predicted_detect_max_s) {
        lines.push((
            "predict",
            format!(
                "with the settings not known anywhere in the kernel's range: between {min:.0}s \
                 and {max:.0}s after last contact (the longest assumes no longer user timeout)"
            ),
        ));
    }
    if let Some(busy) = f.predicted_busy_detect_s {
        lines.push((
            "predict",
            format!(
                "with data in flight: dead peer detected {busy:.1}s after the first retransmission"
            ),
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
    if let Some(possible) = &e.possible {
        let names: Vec<&str> = possible.iter().map(|o| o.name()).collect();
        text.push_str(&format!("; could be: {}", names.join(" or ")));
    } else if e.certainty == Some(Certainty::Likely) {
        text.push_str("; likely, not certain");
    }
    if e.detect_s.is_some() {
        // A capture's end (`inferred`) without settings on the wire has no
        // prediction, which is not a prediction of "never".
        let predicted = match (e.predicted_detect_s, e.inferred) {
            (None, Some(true)) => "nothing (the settings are not on the wire)".to_string(),
            (p, _) => opt_secs(p),
        };
        text.push_str(&format!(
            "; detected {} after last contact, predicted {predicted}",
            opt_secs(e.detect_s)
        ));
    }
    if let Some(o) = &e.outages {
        text.push_str(&format!(
            "; {} outage(s), detection min/median/max {}/{}/{}, downtime {:.3}s of {:.3}s, \
             availability {}",
            o.outages,
            opt_secs(o.detect_min_s),
            opt_secs(o.detect_median_s),
            opt_secs(o.detect_max_s),
            o.downtime_s,
            o.observed_s,
            crate::model::outages::availability_percent(o.availability, o.observed_s)
        ));
    }
    match (e.expect_met, &e.expect_failure) {
        (Some(true), _) => text.push_str(&format!(
            "; expected {}: met",
            e.expected.as_deref().unwrap_or("")
        )),
        (Some(false), Some(why)) => text.push_str(&format!("; NOT MET: {why}")),
        _ => {}
    }
    text.push_str(&format!("; exit {}", e.exit_code));
    if let Some(evidence) = &e.evidence {
        text.push_str(&format!(" [inferred from outside: {evidence}]"));
    }
    text
}

/// `tune`: the socket, each setting before -> after, and the predictions.
fn tuned_lines(t: &TuneFacts) -> Vec<(&'static str, String)> {
    let who = format!(
        "pid {}{} {} {}",
        t.pid,
        t.process
            .as_deref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default(),
        t.state,
        match t.peer {
            Some(peer) => format!("{} -> {peer}", t.local),
            None => t.local.to_string(),
        }
    );
    let mut lines = Vec::new();
    let settings = |f: &ConfigFacts| {
        format!(
            "keepalive {}, idle {}s, intvl {}s, cnt {}, user timeout {}",
            if f.keepalive { "on" } else { "off" },
            f.idle_s,
            f.intvl_s,
            f.cnt,
            if f.user_timeout_ms == 0 {
                "off".to_string()
            } else {
                format!("{}ms", f.user_timeout_ms)
            }
        )
    };
    let verb = if t.dry_run { "would set" } else { "set" };
    match (&t.before, &t.after) {
        (Some(b), Some(_)) if t.changed.is_empty() => {
            lines.push((
                "tuned",
                format!("{who}: already as asked ({})", settings(b)),
            ));
        }
        (Some(b), Some(a)) => {
            lines.push((
                "tuned",
                format!(
                    "{who}: {} -> {} ({verb} {})",
                    settings(b),
                    settings(a),
                    t.changed.join(", ")
                ),
            ));
            lines.push((
                "predict",
                format!(
                    "dead idle peer detected {} after last contact (was {}); with data in flight {} (was {})",
                    opt_secs(a.predicted_detect_s),
                    opt_secs(b.predicted_detect_s),
                    opt_secs(a.predicted_busy_detect_s),
                    opt_secs(b.predicted_busy_detect_s)
                ),
            ));
        }
        (Some(b), None) => lines.push(("tuned", format!("{who}: {}", settings(b)))),
        (None, _) => lines.push(("tuned", format!("{who}: not read"))),
    }
    for note in &t.notes {
        lines.push(("note", format!("{who}: {note}")));
    }
    if let Some(err) = &t.error {
        lines.push(("error", format!("{who}: NOT changed: {err}")));
    }
    lines
}

/// A watched connection's first line: endpoints, owner, timer and settings.
fn watched_line(w: &WatchFacts) -> String {
    let owner = match (&w.pid, &w.process) {
        (Some(pid), Some(name)) => format!("pid {pid} ({name})"),
        (Some(pid), None) => format!("pid {pid}"),
        _ => match w.owner_unknown {
            Some("no-process") => format!("held by no process (uid {})", w.uid),
            Some("unaccepted") => format!("not accepted yet (uid {})", w.uid),
            _ => format!("owner not visible (uid {})", w.uid),
        },
    };
    let owner = match &w.netns {
        Some(ns) => format!("{owner} in netns {ns}"),
        None => owner,
    };
    let keepalive = match w.keepalive {
        Some(true) => "keepalive on".to_string(),
        Some(false) if w.settle_s.is_some() => format!(
            "keepalive off so far (a new connection: its owner may still set it up; judged \
             when {:.1}s old)",
            w.settle_s.unwrap_or_default()
        ),
        Some(false) => "keepalive OFF".to_string(),
        None => "keepalive unknown".to_string(),
    };
    let timer = match w.timer {
        "none" => "no timer pending".to_string(),
        t => format!("{t} timer in {:.3}s", w.timer_expires_ms as f64 / 1e3),
    };
    let source = |s: &str| match s {
        "read-back" => "",
        "kernel-timer" => " (from the kernel's keepalive timer)",
        "assumed" => " (assumed)",
        _ => " (system default, may be overridden by the app)",
    };
    let uto = if w.user_timeout_ms == 0 {
        "off".to_string()
    } else {
        format!("{}ms", w.user_timeout_ms)
    };
    let how = if w.settings_read {
        "settings read exactly (pidfd_getfd)".to_string()
    } else {
        format!(
            "settings NOT read ({}): inferred",
            w.settings_unread_reason
                .as_deref()
                .unwrap_or("owner not known")
        )
    };
    // Probes out at the join went out between the last contact and the join.
    let probes = match w.probes_out {
        0 => String::new(),
        n => format!("; {n} keepalive probe(s) already out unanswered, sent since then"),
    };
    let conntrack = w.conntrack.as_ref().map_or(String::new(), |c| {
        format!(
            "; conntrack entry {} expires in {}s{}",
            c.state,
            c.timeout_s,
            c.established_timeout_s
                .map(|t| format!(" (refreshed to {t}s by each packet)"))
                .unwrap_or_default()
        )
    });
    format!(
        "{} -> {}, {owner}; {keepalive} ({timer}); idle {}s{}, intvl {}s{}, cnt {}{}, user \
         timeout {uto}{}; {how}; last contact with the peer {:.3}s before joining{probes}{conntrack}",
        w.local,
        w.peer,
        w.idle_s,
        source(w.idle_source),
        w.intvl_s,
        source(w.intvl_source),
        w.cnt,
        source(w.cnt_source),
        source(w.user_timeout_source),
        w.last_contact_ago_s
    )
}

/// What a bound name means, for the connecting line.
fn bound_text(bound: Bound) -> &'static str {
    match bound {
        Bound::UserTimeout => "the user timeout bounds it",
        Bound::SynRetries => "the SYN retransmissions run out",
        Bound::ConnectTimeout => "--connect-timeout bounds it",
        _ => "bound unknown",
    }
}

fn prediction_line(p: &Prediction, clock: LineClock) -> String {
    match p.dead_at {
        Some(dead) => format!(
            "{} path: dead at {} if the peer answers nothing more ({}s after the last contact \
             at {}, up to {:.3}s later by the timer wheel): {}",
            p.path.name(),
            clock.at(dead),
            p.detect_s().map_or("?".to_string(), |d| format!("{d:.3}")),
            clock.at(p.since),
            p.late_by_up_to.as_secs_f64(),
            p.explain
        ),
        None => format!("{} path: {}", p.path.name(), p.explain),
    }
}

/// The default view of an event: `None` to show it as `--verbose` does, else its
/// lines (none: a detail the lines around it already say).
fn brief(kind: &EventKind, clock: LineClock) -> Option<Vec<(&'static str, String)>> {
    let one = |text: String| Some(vec![(kind.name(), text)]);
    match kind {
        // The answers and the prediction say when contact was last made and when
        // the probes are due.
        EventKind::Idle { .. } | EventKind::ProbeWindow { .. } => Some(Vec::new()),
        EventKind::Probe { answered: true, .. } => Some(Vec::new()),
        EventKind::Probe { n: 1, .. } => one("#1 sent".to_string()),
        EventKind::Probe { n, .. } => one(format!("#{n} sent, #{} unanswered", n - 1)),
        EventKind::Prediction(p) if p.restated => Some(Vec::new()),
        EventKind::Prediction(p) => one(match (p.dead_at, p.detect_s()) {
            (Some(dead), Some(detect)) => format!(
                "{} path: dead at {} ({detect:.3}s after the last contact, up to {:.3}s later) \
                 if the peer answers nothing more",
                p.path.name(),
                clock.at(dead),
                p.late_by_up_to.as_secs_f64()
            ),
            _ => format!("{} path: {}", p.path.name(), p.explain),
        }),
        EventKind::Connecting {
            peer,
            deadline,
            bound,
            ..
        } => one(format!(
            "SYN sent to {peer}; gives up at {} ({})",
            clock.at(*deadline),
            bound_text(*bound)
        )),
        EventKind::End(e) => one(end_line_brief(e)),
        _ => None,
    }
}

/// The end in short: a message that is only the errno's text ("Connection timed
/// out") is left out, the errno names it; one that says more stays.
fn end_line_brief(e: &EndFacts) -> String {
    let bare = !e.message.contains([';', ':', '(']);
    if e.errno.is_some() && e.evidence.is_none() && bare {
        end_line(&EndFacts {
            message: String::new(),
            ..e.clone()
        })
    } else {
        end_line(e)
    }
}

/// Splits `text` at spaces into pieces of at most `width` characters (a word
/// longer than that stays whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let len = line.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

/// The event's name and facts as text lines (most events are one line).
fn describe(kind: &EventKind, clock: LineClock) -> Vec<(&'static str, String)> {
    let one = |text: String| vec![(kind.name(), text)];
    match kind {
        EventKind::Listening { local, max_conns } => {
            one(format!("on {local} (at most {max_conns} connections)"))
        }
        EventKind::Refused { peer, reason } => one(format!("{peer}: {reason}")),
        EventKind::Connected { local, peer } => one(format!("{local} -> {peer}")),
        EventKind::Config(f) => config_lines(f),
        EventKind::Idle { since } => one(format!(
            "last contact with the peer at {}",
            clock.at(*since)
        )),
        EventKind::ProbeWindow { due, dead_at } => one(match dead_at {
            Some(dead) => format!(
                "first probe due at {}; dead at {} if none is answered",
                clock.at(*due),
                clock.at(*dead)
            ),
            None => format!("first probe due at {}", clock.at(*due)),
        }),
        EventKind::Probe { n, due, .. } => one(format!("#{n} sent (due at {})", clock.at(*due))),
        EventKind::ProbeAcked { n } => one(format!("#{n} answered: the peer is alive")),
        EventKind::Retransmit { n, unacked } => one(format!(
            "#{n}, {unacked} segment(s) unacknowledged: keepalive is suspended while data is in flight"
        )),
        EventKind::Prediction(p) => one(prediction_line(p, clock)),
        EventKind::ZeroWindow { unsent, probe_due } => one(format!(
            "the peer stopped reading: its window is 0 with {} waiting; keepalive \
             stops, window probes start (first due at {})",
            unsent.map_or("data".to_string(), |n| format!("{n} bytes")),
            clock.at(*probe_due)
        )),
        EventKind::WindowOpen { after, probes } => one(format!(
            "the peer reads again: window open after {:.3}s and {probes} window probe(s)",
            after.as_secs_f64()
        )),
        EventKind::WindowProbe { n, due, unanswered } => one(format!(
            "#{n} sent (due at {}); {unanswered} unanswered since the last answer",
            clock.at(*due)
        )),
        EventKind::WindowProbeAcked { n } => one(format!(
            "#{n} answered: the peer's kernel is alive, its window still 0"
        )),
        EventKind::Connecting {
            peer,
            deadline,
            bound,
            syn_retries,
            retransmits,
        } => one(format!(
            "SYN sent to {peer}; gives up at {} ({}; {retransmits} SYN retransmission(s) \
             before, syn_retries {syn_retries})",
            clock.at(*deadline),
            bound_text(*bound)
        )),
        EventKind::SynRetransmit { n, due } => one(format!(
            "#{n}: no answer to the SYN (due at {})",
            clock.at(*due)
        )),
        EventKind::Data {
            bytes_in,
            bytes_out,
        } => one(format!(
            "{bytes_in} bytes in, {bytes_out} bytes out (acknowledged)"
        )),
        EventKind::Heartbeat { seq } => one(format!("#{seq} sent")),
        EventKind::HeartbeatReply { seq, rtt, reply } => one(format!(
            "#{seq} answered in {:.3}ms{}",
            rtt.as_secs_f64() * 1e3,
            reply
                .as_deref()
                .map(|r| format!(": \"{r}\""))
                .unwrap_or_default()
        )),
        EventKind::Down {
            n,
            outcome,
            errno,
            detect_s,
        } => one(format!(
            "outage #{n}: {}{} detected {} after last contact",
            outcome.name(),
            errno
                .as_deref()
                .map(|e| format!(" {e}"))
                .unwrap_or_default(),
            opt_secs(*detect_s)
        )),
        EventKind::Up { n, downtime } => one(format!(
            "outage #{n} over: connected again {:.3}s after the last contact",
            downtime.as_secs_f64()
        )),
        EventKind::Warning { message } => one(message.clone()),
        EventKind::End(e) => one(end_line(e)),
        EventKind::Watched(w) => one(watched_line(w)),
        EventKind::Scenario {
            name,
            stands_for,
            fault,
            when,
        } => vec![
            (kind.name(), format!("{name}: {stands_for}")),
            ("injects", format!("{fault}, {when}")),
        ],
        EventKind::Fault { scenario, action } => one(format!("{scenario}: {action}")),
        EventKind::Tuned(t) => tuned_lines(t),
        EventKind::IdleRound {
            round,
            flows,
            shortest,
            longest,
        } => one(match round {
            0 => format!(
                "verify: one keepalive connection held idle {}",
                secs_text(*longest)
            ),
            _ => format!(
                "round {round}: {flows} flow(s) idle from {} to {}",
                secs_text(*shortest),
                secs_text(*longest)
            ),
        }),
        EventKind::IdleCheck {
            round,
            direction,
            idle,
            result,
            drop_mode,
            by,
            client_saw,
            listener_saw,
            rtt,
            keepalive_idle_s,
        } => one(format!(
            "{}{direction} after {} idle: {result}{} (set-up rtt {:.3}ms)",
            match (round, keepalive_idle_s) {
                (0, Some(k)) => format!("verify (keepalive idle {k}s) "),
                _ => format!("round {round} "),
            },
            secs_text(*idle),
            match (drop_mode, by) {
                (Some(m), Some(b)) => format!(
                    " ({m} by the {b}; this side saw {}, the listener {})",
                    client_saw.unwrap_or("nothing"),
                    listener_saw.unwrap_or("nothing yet")
                ),
                (Some(m), None) => format!(" ({m})"),
                _ => String::new(),
            },
            rtt.as_secs_f64() * 1e3
        )),
        EventKind::Inferred {
            what,
            value,
            exact,
            evidence,
        } => one(format!(
            "{what} {value}{}: {evidence}",
            if *exact || value == "unknown" {
                ""
            } else {
                " (not exact)"
            }
        )),
    }
}

const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[1;31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

/// The SGR colour of an event line's name column, if any. Chosen by the line's
/// name so that new event kinds render plain until someone picks a colour.
fn name_color(kind: &EventKind, name: &str) -> Option<&'static str> {
    if let EventKind::End(e) = kind {
        return Some(match e.outcome {
            Outcome::Alive => GREEN,
            o if o.is_signal() => YELLOW,
            _ => RED,
        });
    }
    match name {
        "probe" | "probe-window" | "retransmit" | "heartbeat" | "window-probe"
        | "syn-retransmit" | "zero-window" => Some(YELLOW),
        "probe-acked" | "heartbeat-reply" | "connected" | "window-probe-acked" | "window-open" => {
            Some(GREEN)
        }
        "warning" | "refused" | "fault" => Some(RED),
        "listening" => Some(CYAN),
        _ => None,
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
        let clock = match self.timestamps {
            Timestamps::Relative => LineClock::Relative,
            Timestamps::Absolute => LineClock::Wall(event.wall.checked_sub(event.at)),
        };
        let lines = match (self.verbose, brief(&event.kind, clock)) {
            (false, Some(lines)) => lines,
            _ => describe(&event.kind, clock),
        };
        if lines.is_empty() {
            return Ok(());
        }
        // The text column: stamp, space, tag, 12-column name, space.
        let indent = stamp.chars().count() + 1 + tag.chars().count() + 13;
        for (name, text) in lines {
            let pieces = if self.verbose {
                vec![text]
            } else {
                wrap(&text, WIDTH.saturating_sub(indent).max(40))
            };
            for (i, text) in pieces.iter().enumerate() {
                if i > 0 {
                    writeln!(self.out, "{:indent$}{text}", "")?;
                } else if self.color {
                    // Pad first, then colour, so the columns line up as in plain output.
                    let padded = format!("{name:<12}");
                    let name = match name_color(&event.kind, name) {
                        Some(c) => format!("{c}{padded}{RESET}"),
                        None => padded,
                    };
                    writeln!(self.out, "{DIM}{stamp}{RESET} {tag}{name} {text}")?;
                } else {
                    writeln!(self.out, "{stamp} {tag}{name:<12} {text}")?;
                }
            }
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::report::test_output::Shared;

    fn render(color: bool, kind: EventKind) -> String {
        render_view(color, true, kind)
    }

    fn render_view(color: bool, verbose: bool, kind: EventKind) -> String {
        let buf = Shared::default();
        let mut h = Human::with_color(Box::new(buf.clone()), Timestamps::Relative, true, color)
            .verbose(verbose);
        let event = Event {
            at: Duration::from_millis(1500),
            wall: std::time::UNIX_EPOCH,
            conn: 3,
            kind,
        };
        h.emit(&event).unwrap();
        String::from_utf8(buf.0.borrow().clone()).unwrap()
    }

    #[test_case::test_case(true, &[] => false ; "a terminal without TERM")]
    #[test_case::test_case(true, &[("TERM", "xterm")] => true ; "a terminal")]
    #[test_case::test_case(false, &[("TERM", "xterm")] => false ; "a pipe")]
    #[test_case::test_case(true, &[("TERM", "dumb")] => false ; "dumb terminal")]
    #[test_case::test_case(true, &[("TERM", "xterm"), ("NO_COLOR", "1")] => false ; "no_color")]
    #[test_case::test_case(true, &[("TERM", "xterm"), ("NO_COLOR", "")] => true ; "empty no_color does not count")]
    #[test_case::test_case(true, &[("TERM", "xterm"), ("CLICOLOR", "0")] => false ; "clicolor 0")]
    #[test_case::test_case(true, &[("TERM", "xterm"), ("CLICOLOR", "1")] => true ; "clicolor 1")]
    #[test_case::test_case(false, &[("CLICOLOR", "1")] => false ; "clicolor 1 into a pipe")]
    #[test_case::test_case(false, &[("CLICOLOR_FORCE", "1")] => true ; "forced into a pipe")]
    #[test_case::test_case(true, &[("TERM", "dumb"), ("CLICOLOR_FORCE", "1")] => true ; "forced on a dumb terminal")]
    #[test_case::test_case(false, &[("CLICOLOR_FORCE", "0")] => false ; "force 0 is not force")]
    #[test_case::test_case(false, &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")] => false ; "no_color beats force")]
    #[test_case::test_case(false, &[("CLICOLOR_FORCE", "1"), ("CLICOLOR", "0")] => true ; "force beats clicolor 0")]
    fn colour_conventions(is_terminal: bool, vars: &[(&str, &str)]) -> bool {
        let get = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| std::ffi::OsString::from(v))
        };
        let env = ColorEnv {
            no_color: get("NO_COLOR"),
            clicolor: get("CLICOLOR"),
            clicolor_force: get("CLICOLOR_FORCE"),
            term: get("TERM"),
        };
        color_wanted(is_terminal, &env)
    }

    #[test]
    fn plain_output_has_no_escapes_and_keeps_its_format() {
        assert_eq!(
            render(
                false,
                EventKind::Probe {
                    n: 2,
                    due: Duration::from_millis(1480),
                    answered: false,
                }
            ),
            "  +1.500s [3] probe        #2 sent (due at +1.480s)\n"
        );
        let plain = render(false, EventKind::End(sample_end()));
        assert!(!plain.contains('\x1b'));
        assert!(
            plain.starts_with("  +1.500s [3] end          timeout ETIMEDOUT"),
            "{plain}"
        );
    }

    #[test]
    fn coloured_output_is_the_plain_text_plus_escapes() {
        for kind in [
            EventKind::Probe {
                n: 2,
                due: Duration::from_secs(2),
                answered: false,
            },
            EventKind::End(sample_end()),
            EventKind::Idle {
                since: Duration::ZERO,
            },
        ] {
            let plain = render(false, kind.clone());
            let coloured = render(true, kind);
            assert!(coloured.contains("\x1b["), "{coloured:?}");
            assert_eq!(strip_sgr(&coloured), plain);
        }
        assert!(render(true, EventKind::End(sample_end())).contains(&format!("{RED}end ")));
    }

    fn strip_sgr(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    fn sample_end() -> EndFacts {
        EndFacts::new(
            Outcome::Timeout,
            Some("ETIMEDOUT".into()),
            "Connection timed out".into(),
            Some(4.012),
            Some(4.0),
        )
    }

    #[test]
    fn the_default_view_is_one_line_per_probe_cycle() {
        let probe = |n, answered| EventKind::Probe {
            n,
            due: Duration::from_secs(1),
            answered,
        };
        // Seen out and answered in one sample: the answer's line says both.
        assert_eq!(render_view(false, false, probe(1, true)), "");
        assert_eq!(
            render_view(false, false, EventKind::ProbeAcked { n: 1 }),
            "  +1.500s [3] probe-acked  #1 answered: the peer is alive\n"
        );
        assert_eq!(
            render_view(false, false, probe(2, false)),
            "  +1.500s [3] probe        #2 sent, #1 unanswered\n"
        );
        for detail in [
            EventKind::Idle {
                since: Duration::ZERO,
            },
            EventKind::ProbeWindow {
                due: Duration::ZERO,
                dead_at: None,
            },
        ] {
            assert_eq!(render_view(false, false, detail.clone()), "");
            assert_ne!(render_view(false, true, detail), "");
        }
        // --verbose: the probe in full even when answered in the same sample.
        assert_eq!(
            render_view(false, true, probe(1, true)),
            "  +1.500s [3] probe        #1 sent (due at +1.000s)\n"
        );
    }

    #[test]
    fn long_default_lines_wrap_under_the_text_column() {
        let long = "word ".repeat(60);
        let text = render_view(
            false,
            false,
            EventKind::Warning {
                message: long.trim().to_string(),
            },
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() >= 2, "{text}");
        for line in &lines {
            assert!(line.chars().count() <= WIDTH, "{line}");
        }
        assert!(lines[1].starts_with(&" ".repeat(26)), "{:?}", lines[1]);
        assert_eq!(
            lines
                .iter()
                .map(|l| l.split_whitespace().filter(|w| *w == "word").count())
                .sum::<usize>(),
            60
        );
        // --verbose does not wrap.
        let verbose = render_view(false, true, EventKind::Warning { message: long });
        assert_eq!(verbose.lines().count(), 1);
    }

    #[test]
    fn end_line_reads_as_a_verdict() {
        let e = EndFacts::new(
            Outcome::Timeout,
            Some("ETIMEDOUT".into()),
            "Connection timed out".into(),
            Some(4.012),
            Some(4.0),
        );
        assert_eq!(
            end_line(&e),
            "timeout ETIMEDOUT (Connection timed out); detected 4.012s after last contact, \
             predicted 4.000s; exit 6"
        );
    }
}
