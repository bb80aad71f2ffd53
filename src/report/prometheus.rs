//! Prometheus exposition of `watch`: a renderer of the same events the timeline
//! renderers get, turned into metrics (prometheus-client) instead of lines.
//!
//! It owns the series, their labels and how their number stays bounded; it does
//! no I/O (serving `/metrics` and writing the textfile live in `engine::watch::metrics`).
//!
//! Series:
//! - `tcpalive_connections{local_port,peer_port,process,keepalive,settings_source}`
//!   (gauge): watched connections now. `keepalive` is `on`, `off` or `unknown`
//!   (a retransmit or zero-window timer hides the keepalive timer);
//!   `settings_source` is the weakest provenance of the connection's settings
//!   (`read-back`, `kernel-timer`, `system-default`, `assumed`).
//! - `tcpalive_predicted_detect_seconds{same labels}` (gauge): the longest
//!   predicted time from the last contact to the detection of a dead peer among
//!   those connections (the upper end of the range when settings were not read);
//!   `+Inf` when one of them would never notice.
//! - `tcpalive_keepalive_probes_total{local_port,peer_port,process}` (counter).
//! - `tcpalive_keepalive_after_conntrack_expiry{local_port,peer_port,process}`
//!   (gauge): watched connections whose keepalive comes after this host's
//!   conntrack entry of them expires (or is off): idle long enough, the host
//!   forgets the flow (`watch` reads the entries with CAP_NET_ADMIN; without it,
//!   or without an entry, a connection is not counted).
//! - `tcpalive_keepalive_probe_retries_total{local_port,peer_port,process}`
//!   (counter): probes sent because the one before went unanswered (probe
//!   `n` >= 2); a peer answering every probe never moves it.
//! - `tcpalive_connection_ends_total{outcome}` (counter): connections that ended
//!   while watched, by the verdict's outcome (stopping the watch ends none).
//! - `tcpalive_label_sets_folded_total` (counter): connections counted under
//!   `other` because the label-set cap was reached.
//!
//! Bounded cardinality: a port inside the host's ephemeral range
//! (`net.ipv4.ip_local_port_range`) is `ephemeral`, not its number, so client
//! sockets do not make one series each; a connection whose owner is not visible is
//! `process="unknown"`. At most [`Limits::max_label_sets`] distinct
//! (`local_port`, `peer_port`, `process`) triples get series of their own, first
//! come first served for the life of the process (counters must not vanish); every
//! later triple is folded into `local_port="other",peer_port="other",process="other"`
//! and counted in `tcpalive_label_sets_folded_total`. `keepalive`,
//! `settings_source` and `outcome` take a handful of fixed values, so the total
//! number of series is bounded by the cap times a constant.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::model::event::{ConfigFacts, Event, EventKind, WatchFacts};
use crate::model::settings::Source;

/// The content type of [`Exposition::openmetrics`].
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of [`Exposition::text`] (Prometheus text format 0.0.4, which
/// node_exporter's textfile collector reads).
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What bounds the number of series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Distinct (local_port, peer_port, process) triples with series of their own.
    pub max_label_sets: usize,
    /// The host's ephemeral port range, inclusive: such ports are `ephemeral`.
    pub ephemeral: (u16, u16),
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_label_sets: 100,
            // Linux's default net.ipv4.ip_local_port_range.
            ephemeral: (32768, 60999),
        }
    }
}

/// Where a connection is counted: its ports and owner, or `other` past the cap.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Key {
    local_port: String,
    peer_port: String,
    process: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnLabels {
    local_port: String,
    peer_port: String,
    process: String,
    keepalive: String,
    settings_source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    outcome: String,
}

/// What the exposition keeps of one watched connection.
#[derive(Debug, Clone)]
struct Conn {
    key: Key,
    keepalive: &'static str,
    source: Source,
    /// Seconds from last contact to detection (upper end); `INFINITY` when nothing
    /// would detect a dead peer; `None` before the first prediction.
    predicted: Option<f64>,
    /// Its keepalive comes after its conntrack entry expires.
    after_conntrack: bool,
}

/// The metrics of one `watch` run, fed by its events.
pub struct Exposition {
    limits: Limits,
    registry: Registry,
    conns: HashMap<u64, Conn>,
    admitted: HashSet<Key>,
    connections: Family<ConnLabels, Gauge>,
    predicted: Family<ConnLabels, Gauge<f64, AtomicU64>>,
    probes: Family<Key, Counter>,
    after_conntrack: Family<Key, Gauge>,
    retries: Family<Key, Counter>,
    ends: Family<EndLabels, Counter>,
    folded: Counter,
}

/// The least certain of a connection's sources (read-back is the most certain).
fn weakest(sources: impl IntoIterator<Item = Source>) -> Source {
    let rank = |s: &Source| match s {
        Source::ReadBack => 0,
        Source::KernelTimer => 1,
        Source::SystemDefault => 2,
        Source::Capture => 3,
        Source::Assumed => 4,
    };
    sources
        .into_iter()
        .max_by_key(rank)
        .unwrap_or(Source::Assumed)
}

fn source_named(name: &str) -> Source {
    match name {
        "read-back" => Source::ReadBack,
        "kernel-timer" => Source::KernelTimer,
        "system-default" => Source::SystemDefault,
        _ => Source::Assumed,
    }
}

fn keepalive_label(on: Option<bool>) -> &'static str {
    match on {
        Some(true) => "on",
        Some(false) => "off",
        None => "unknown",
    }
}

/// The upper end of the predicted detection, `INFINITY` for never.
fn predicted_upper(f: &ConfigFacts) -> f64 {
    f.predicted_detect_max_s
        .or(f.predicted_detect_s)
        .unwrap_or(f64::INFINITY)
}

impl Exposition {
    pub fn new(limits: Limits) -> Exposition {
        let mut registry = Registry::default();
        let connections = Family::<ConnLabels, Gauge>::default();
        let predicted = Family::<ConnLabels, Gauge<f64, AtomicU64>>::default();
        let probes = Family::<Key, Counter>::default();
        let after_conntrack = Family::<Key, Gauge>::default();
        let retries = Family::<Key, Counter>::default();
        let ends = Family::<EndLabels, Counter>::default();
        let folded = Counter::default();
        registry.register(
            "tcpalive_connections",
            "Established TCP connections watched now, by keepalive state and settings provenance",
            connections.clone(),
        );
        registry.register(
            "tcpalive_predicted_detect_seconds",
            "Longest predicted time from the last contact to the detection of a dead peer \
             among these connections (+Inf: one would never notice)",
            predicted.clone(),
        );
        registry.register(
            "tcpalive_keepalive_probes",
            "Keepalive probes seen going out on watched connections",
            probes.clone(),
        );
        registry.register(
            "tcpalive_keepalive_after_conntrack_expiry",
            "Watched connections whose keepalive comes after this host's conntrack entry of \
             them expires (or is off): idle that long, the host forgets the flow",
            after_conntrack.clone(),
        );
        registry.register(
            "tcpalive_keepalive_probe_retries",
            "Keepalive probes sent because the previous probe went unanswered",
            retries.clone(),
        );
        registry.register(
            "tcpalive_connection_ends",
            "Watched connections that ended, by outcome",
            ends.clone(),
        );
        registry.register(
            "tcpalive_label_sets_folded",
            "Connections counted under local_port/peer_port/process \"other\" because the \
             label-set cap was reached",
            folded.clone(),
        );
        Exposition {
            limits,
            registry,
            conns: HashMap::new(),
            admitted: HashSet::new(),
            connections,
            predicted,
            probes,
            after_conntrack,
            retries,
            ends,
            folded,
        }
    }

    fn port_label(&self, port: u16) -> String {
        let (lo, hi) = self.limits.ephemeral;
        if (lo..=hi).contains(&port) {
            "ephemeral".to_string()
        } else {
            port.to_string()
        }
    }

    /// The connection's label triple, or `other` once the cap is reached.
    fn key_for(&mut self, w: &WatchFacts) -> Key {
        let key = Key {
            local_port: self.port_label(w.local.port()),
            peer_port: self.port_label(w.peer.port()),
            process: w.process.clone().unwrap_or_else(|| "unknown".to_string()),
        };
        if self.admitted.contains(&key) {
            return key;
        }
        if self.admitted.len() < self.limits.max_label_sets {
            self.admitted.insert(key.clone());
            return key;
        }
        self.folded.inc();
        let other = || "other".to_string();
        Key {
            local_port: other(),
            peer_port: other(),
            process: other(),
        }
    }

    /// Takes one event of the watch into the metrics.
    pub fn observe(&mut self, event: &Event) {
        match &event.kind {
            EventKind::Watched(w) => {
                let key = self.key_for(w);
                let source = weakest(
                    [
                        w.keepalive_source,
                        w.idle_source,
                        w.intvl_source,
                        w.cnt_source,
                        w.user_timeout_source,
                    ]
                    .map(source_named),
                );
                self.conns.insert(
                    event.conn,
                    Conn {
                        key,
                        keepalive: keepalive_label(w.keepalive),
                        source,
                        predicted: None,
                        after_conntrack: w
                            .conntrack
                            .as_ref()
                            .is_some_and(|c| c.keepalive_after_expiry),
                    },
                );
            }
            EventKind::Config(f) => {
                if let Some(c) = self.conns.get_mut(&event.conn) {
                    let s = f.sources;
                    c.keepalive = keepalive_label(Some(f.keepalive));
                    c.source =
                        weakest([s.keepalive, s.idle_s, s.intvl_s, s.cnt, s.user_timeout_ms]);
                    c.predicted = Some(predicted_upper(f));
                }
            }
            EventKind::Probe { n, .. } => {
                if let Some(c) = self.conns.get(&event.conn) {
                    self.probes.get_or_create(&c.key).inc();
                    if *n >= 2 {
                        self.retries.get_or_create(&c.key).inc();
                    }
                }
            }
            EventKind::End(e) if event.conn != 0 => {
                // Ends the watch itself makes when it stops are not connection ends:
                // a connection's own end is always a verdict inferred from outside.
                let was_watched = self.conns.remove(&event.conn).is_some();
                if was_watched && e.inferred == Some(true) {
                    self.ends
                        .get_or_create(&EndLabels {
                            outcome: e.outcome.name().to_string(),
                        })
                        .inc();
                }
            }
            _ => {}
        }
    }

    /// The gauges are the watched connections as they are now.
    fn refresh(&self) {
        self.connections.clear();
        self.predicted.clear();
        self.after_conntrack.clear();
        let mut longest: HashMap<ConnLabels, f64> = HashMap::new();
        for c in self.conns.values() {
            let labels = ConnLabels {
                local_port: c.key.local_port.clone(),
                peer_port: c.key.peer_port.clone(),
                process: c.key.process.clone(),
                keepalive: c.keepalive.to_string(),
                settings_source: c.source.name().to_string(),
            };
            self.connections.get_or_create(&labels).inc();
            if c.after_conntrack {
                self.after_conntrack.get_or_create(&c.key).inc();
            }
            if let Some(p) = c.predicted {
                let slot = longest.entry(labels).or_insert(p);
                *slot = slot.max(p);
            }
        }
        for (labels, p) in longest {
            self.predicted.get_or_create(&labels).set(p);
        }
    }

    /// The OpenMetrics text exposition (what Prometheus asks for first), with the
    /// samples of each family sorted: the same state always reads the same (a
    /// textfile diffs cleanly; prometheus-client keeps a family in a hash map).
    pub fn openmetrics(&self) -> String {
        self.refresh();
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        sort_samples(&text)
    }

    /// The Prometheus text format 0.0.4: for node_exporter's textfile collector and
    /// scrapers that do not ask for OpenMetrics.
    pub fn text(&self) -> String {
        to_text_format(&self.openmetrics())
    }
}

/// Sorts each run of sample lines (between comment lines) in place.
fn sort_samples(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run: Vec<&str> = Vec::new();
    let flush = |run: &mut Vec<&str>, out: &mut String| {
        run.sort_unstable();
        for l in run.drain(..) {
            out.push_str(l);
            out.push('\n');
        }
    };
    for line in text.lines() {
        if line.starts_with('#') {
            flush(&mut run, &mut out);
            out.push_str(line);
            out.push('\n');
        } else {
            run.push(line);
        }
    }
    flush(&mut run, &mut out);
    // The exposition formats spell infinity `+Inf`; the float formatter writes
    // `inf`.
    out.replace(" inf\n", " +Inf\n")
}

/// OpenMetrics to the 0.0.4 text format: counters are typed under their `_total`
/// name (OpenMetrics types the family without it), and the OpenMetrics-only
/// `# UNIT` and `# EOF` lines go.
pub fn to_text_format(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# TYPE ", "# HELP "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::model::event::{EndFacts, Outcome};
    use crate::model::settings::Sources;

    fn event(conn: u64, kind: EventKind) -> Event {
        Event {
            at: Duration::ZERO,
            wall: UNIX_EPOCH,
            conn,
            kind,
        }
    }

    fn watched(
        local: &str,
        peer: &str,
        process: Option<&str>,
        keepalive: Option<bool>,
    ) -> EventKind {
        let read = process.is_some();
        let src = if read { "read-back" } else { "system-default" };
        EventKind::Watched(WatchFacts {
            local: local.parse::<SocketAddr>().unwrap(),
            peer: peer.parse::<SocketAddr>().unwrap(),
            pid: process.map(|_| 42),
            process: process.map(str::to_string),
            uid: 0,
            inode: 1,
            timer: "keepalive",
            timer_expires_ms: 1000,
            keepalive,
            idle_s: 5,
            intvl_s: 5,
            cnt: 3,
            idle_source: src,
            intvl_source: src,
            cnt_source: src,
            user_timeout_ms: 0,
            user_timeout_source: if read { "read-back" } else { "assumed" },
            keepalive_source: if read { "read-back" } else { "kernel-timer" },
            settings_read: read,
            settings_unread_reason: None,
            last_contact_ago_s: 0.0,
            probes_out: 0,
            settle_s: None,
            conntrack: None,
            netns: None,
            owner_unknown: None,
        })
    }

    fn config(keepalive: bool, predicted: Option<f64>) -> EventKind {
        EventKind::Config(ConfigFacts {
            keepalive,
            idle_s: 5,
            intvl_s: 5,
            cnt: 3,
            user_timeout_ms: 0,
            sources: Sources::READ_BACK,
            predicted_detect_s: predicted,
            predicted_probes: Some(3),
            predicted_busy_detect_s: None,
            explain: String::new(),
            warnings: vec![],
            predicted_detect_min_s: None,
            predicted_detect_max_s: None,
            changed: None,
        })
    }

    fn end(outcome: Outcome, inferred: bool) -> EventKind {
        let mut e = EndFacts::new(outcome, None, String::new(), None, None);
        e.inferred = inferred.then_some(true);
        EventKind::End(e)
    }

    fn sample_lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    /// Connections whose keepalive comes after their conntrack entry expires are
    /// counted; one without an entry, or whose keepalive beats it, is not; an
    /// ended one leaves the gauge.
    #[test]
    fn keepalive_after_conntrack_expiry_is_counted() {
        let with_ct = |after: bool| {
            let EventKind::Watched(mut w) = watched(
                "127.0.0.1:6379",
                "127.0.0.1:40000",
                Some("redis"),
                Some(true),
            ) else {
                unreachable!()
            };
            w.conntrack = Some(crate::model::event::ConntrackFacts {
                state: "ESTABLISHED",
                timeout_s: 20,
                established_timeout_s: Some(30),
                keepalive_after_expiry: after,
            });
            EventKind::Watched(w)
        };
        let mut x = Exposition::new(Limits::default());
        x.observe(&event(1, with_ct(true)));
        x.observe(&event(2, with_ct(true)));
        x.observe(&event(3, with_ct(false)));
        x.observe(&event(
            4,
            watched(
                "127.0.0.1:6379",
                "127.0.0.1:40001",
                Some("redis"),
                Some(true),
            ),
        ));
        let redis = "local_port=\"6379\",peer_port=\"ephemeral\",process=\"redis\"";
        let want = format!("tcpalive_keepalive_after_conntrack_expiry{{{redis}}} 2");
        let text = x.openmetrics();
        assert!(sample_lines(&text).contains(&want.as_str()), "{text}");
        x.observe(&event(1, end(Outcome::Timeout, true)));
        let text = x.openmetrics();
        let want = format!("tcpalive_keepalive_after_conntrack_expiry{{{redis}}} 1");
        assert!(sample_lines(&text).contains(&want.as_str()), "{text}");
        x.observe(&event(2, end(Outcome::Timeout, true)));
        let text = x.openmetrics();
        assert!(
            !text.contains("tcpalive_keepalive_after_conntrack_expiry{"),
            "no connection left, no sample: {text}"
        );
    }

    #[test]
    fn series_follow_the_events() {
        let mut x = Exposition::new(Limits::default());
        x.observe(&event(
            1,
            watched(
                "127.0.0.1:6379",
                "127.0.0.1:40000",
                Some("redis"),
                Some(true),
            ),
        ));
        x.observe(&event(1, config(true, Some(20.0))));
        x.observe(&event(
            2,
            watched(
                "127.0.0.1:6379",
                "127.0.0.1:40002",
                Some("redis"),
                Some(true),
            ),
        ));
        x.observe(&event(2, config(true, Some(35.5))));
        x.observe(&event(
            3,
            watched("127.0.0.1:45000", "127.0.0.1:5432", None, Some(false)),
        ));
        x.observe(&event(
            1,
            EventKind::Probe {
                n: 1,
                due: Duration::ZERO,
                answered: false,
            },
        ));
        x.observe(&event(
            1,
            EventKind::Probe {
                n: 2,
                due: Duration::ZERO,
                answered: false,
            },
        ));
        let text = x.openmetrics();
        let lines = sample_lines(&text);
        let redis = "local_port=\"6379\",peer_port=\"ephemeral\",process=\"redis\"";
        assert!(
            lines.contains(&format!(
                "tcpalive_connections{{{redis},keepalive=\"on\",settings_source=\"read-back\"}} 2"
            ).as_str()),
            "{text}"
        );
        assert!(
            lines.contains(&format!(
                "tcpalive_predicted_detect_seconds{{{redis},keepalive=\"on\",settings_source=\"read-back\"}} 35.5"
            ).as_str()),
            "{text}"
        );
        assert!(
            lines.contains(&"tcpalive_connections{local_port=\"ephemeral\",peer_port=\"5432\",process=\"unknown\",keepalive=\"off\",settings_source=\"assumed\"} 1"),
            "weakest source of the unread settings (assumed user timeout): {text}"
        );
        assert!(
            lines.contains(&format!("tcpalive_keepalive_probes_total{{{redis}}} 2").as_str()),
            "{text}"
        );
        assert!(
            lines
                .contains(&format!("tcpalive_keepalive_probe_retries_total{{{redis}}} 1").as_str()),
            "probe 2 went out because probe 1 was not answered: {text}"
        );
        assert!(text.ends_with("# EOF\n"));

        // Connection 2 ends (a verdict); connection 1 is ended by stopping the watch.
        x.observe(&event(2, end(Outcome::Reset, true)));
        x.observe(&event(1, end(Outcome::Alive, false)));
        let text = x.openmetrics();
        let lines = sample_lines(&text);
        assert!(
            lines.contains(&"tcpalive_connection_ends_total{outcome=\"reset\"} 1"),
            "{text}"
        );
        assert!(!text.contains("outcome=\"alive\""), "{text}");
        assert!(
            !text.contains(&format!("tcpalive_connections{{{redis}")),
            "{text}"
        );
        assert!(
            lines.contains(&format!("tcpalive_keepalive_probes_total{{{redis}}} 2").as_str()),
            "counters outlive their connections: {text}"
        );
    }

    /// The fleet kit's alerting rules name only series and label values this
    /// exposition really has (promtool's unit tests feed them by hand).
    #[test]
    fn alerting_rules_name_only_exported_series() {
        let rules = include_str!("../../deploy/prometheus/tcpalive.rules.yml");
        let mut x = Exposition::new(Limits::default());
        x.observe(&event(
            1,
            watched("127.0.0.1:45000", "127.0.0.1:5432", Some("app"), Some(true)),
        ));
        x.observe(&event(1, config(true, Some(20.0))));
        for n in [1, 2] {
            let due = Duration::ZERO;
            x.observe(&event(
                1,
                EventKind::Probe {
                    n,
                    due,
                    answered: false,
                },
            ));
        }
        x.observe(&event(1, end(Outcome::Timeout, true)));
        x.observe(&event(
            2,
            watched("127.0.0.1:45001", "127.0.0.1:5432", None, Some(false)),
        ));
        x.observe(&event(2, config(false, None)));
        let text = x.text();
        let mut names: Vec<&str> = rules
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("tcpalive_"))
            .collect();
        names.sort_unstable();
        names.dedup();
        assert!(names.len() >= 5, "{names:?}");
        for name in names {
            assert!(
                text.contains(&format!("\n# TYPE {name} ")),
                "the rules use {name}, which is not exported:\n{text}"
            );
        }
        for label in [
            "keepalive=\"off\"",
            "local_port=\"ephemeral\"",
            "peer_port=\"5432\"",
            "outcome=\"timeout\"",
        ] {
            assert!(text.contains(label), "{label}: {text}");
        }
        for outcome in ["timeout", "unreachable", "reset"] {
            assert!(
                Outcome::from_name(outcome).is_some(),
                "the rules count ends named {outcome}"
            );
        }
    }

    #[test]
    fn samples_are_sorted_within_their_family() {
        let mut x = Exposition::new(Limits::default());
        for (i, port) in [9003u16, 9001, 9002, 80, 443].into_iter().enumerate() {
            let local = format!("127.0.0.1:{port}");
            x.observe(&event(
                i as u64 + 1,
                watched(&local, "127.0.0.1:40000", Some("app"), Some(true)),
            ));
        }
        let text = x.openmetrics();
        let lines: Vec<&str> = sample_lines(&text)
            .into_iter()
            .filter(|l| l.starts_with("tcpalive_connections{"))
            .collect();
        let mut sorted = lines.clone();
        sorted.sort_unstable();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines, sorted);
        assert_eq!(text, x.openmetrics(), "the same state reads the same");
    }

    #[test]
    fn never_detecting_is_infinite() {
        let mut x = Exposition::new(Limits::default());
        x.observe(&event(
            1,
            watched("10.0.0.1:22", "10.0.0.2:50000", Some("sshd"), Some(false)),
        ));
        x.observe(&event(1, config(false, None)));
        let text = x.openmetrics();
        let line = sample_lines(&text)
            .into_iter()
            .find(|l| l.starts_with("tcpalive_predicted_detect_seconds{"))
            .expect("a predicted series");
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(value.is_infinite(), "{line}");
    }

    #[test]
    fn label_sets_past_the_cap_fold_into_other() {
        let mut x = Exposition::new(Limits {
            max_label_sets: 2,
            ephemeral: (32768, 60999),
        });
        for (i, port) in [1001u16, 1002, 1003, 1004, 1001].into_iter().enumerate() {
            let local = format!("127.0.0.1:{port}");
            x.observe(&event(
                i as u64 + 1,
                watched(&local, "127.0.0.1:40000", Some("app"), Some(true)),
            ));
        }
        let text = x.openmetrics();
        let conn_lines: Vec<&str> = sample_lines(&text)
            .into_iter()
            .filter(|l| l.starts_with("tcpalive_connections{"))
            .collect();
        assert_eq!(conn_lines.len(), 3, "two admitted and other: {text}");
        assert!(
            text.contains("tcpalive_connections{local_port=\"1001\""),
            "{text}"
        );
        assert!(
            text.contains("tcpalive_connections{local_port=\"other\",peer_port=\"other\",process=\"other\",keepalive=\"on\",settings_source=\"read-back\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("tcpalive_label_sets_folded_total 2"),
            "{text}"
        );
    }

    #[test]
    fn series_stay_bounded_however_many_connections() {
        let mut x = Exposition::new(Limits::default());
        let keepalives = [Some(true), Some(false), None];
        let sources = ["read-back", "kernel-timer", "system-default", "assumed"];
        let mut id = 0;
        // 150 triples (50 past the cap), each in every keepalive x source combination.
        for t in 0..150u64 {
            for c in 0..12usize {
                id += 1;
                let local = format!("127.0.0.1:{}", 1000 + t);
                let mut w = watched(&local, "127.0.0.1:5432", Some("app"), keepalives[c % 3]);
                if let EventKind::Watched(f) = &mut w {
                    f.cnt_source = sources[c / 3];
                    f.conntrack = Some(crate::model::event::ConntrackFacts {
                        state: "ESTABLISHED",
                        timeout_s: 20,
                        established_timeout_s: Some(30),
                        keepalive_after_expiry: true,
                    });
                }
                x.observe(&event(id, w));
                for n in [1, 2] {
                    let due = Duration::ZERO;
                    x.observe(&event(
                        id,
                        EventKind::Probe {
                            n,
                            due,
                            answered: false,
                        },
                    ));
                }
            }
        }
        // Ends of folded connections (others of each combination remain).
        for (i, outcome) in Outcome::CONNECTION_OUTCOMES.into_iter().enumerate() {
            x.observe(&event(id - i as u64, end(outcome, true)));
        }
        let text = x.openmetrics();
        let series = sample_lines(&text).len();
        let gauges = sample_lines(&text)
            .into_iter()
            .filter(|l| l.starts_with("tcpalive_connections{"))
            .count();
        assert_eq!(
            gauges,
            101 * 12,
            "every admitted triple and other, in 12 combinations"
        );
        let after = sample_lines(&text)
            .into_iter()
            .filter(|l| l.starts_with("tcpalive_keepalive_after_conntrack_expiry{"))
            .count();
        assert_eq!(after, 101, "one per admitted triple and other");
        assert!(series <= 2738, "{series} series");
        assert!(
            text.contains("tcpalive_label_sets_folded_total 600"),
            "50 triples x 12 connections folded"
        );
    }

    #[test]
    fn text_format_types_counters_by_their_sample_name() {
        let mut x = Exposition::new(Limits::default());
        x.observe(&event(
            1,
            watched(
                "127.0.0.1:80",
                "127.0.0.1:40000",
                Some("a\"b\\c"),
                Some(true),
            ),
        ));
        x.observe(&event(
            1,
            EventKind::Probe {
                n: 1,
                due: Duration::ZERO,
                answered: false,
            },
        ));
        let text = x.text();
        assert!(
            text.contains("# TYPE tcpalive_keepalive_probes_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP tcpalive_keepalive_probes_total "),
            "{text}"
        );
        assert!(
            text.contains("# TYPE tcpalive_connections gauge\n"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        assert!(
            text.contains("process=\"a\\\"b\\\\c\""),
            "label values escaped: {text}"
        );
    }
}
