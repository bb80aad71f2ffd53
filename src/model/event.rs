//! The event model (over 500 lines: the whole event vocabulary in one list, so the
//! core and every renderer see the same one): what the core tells the renderers. Every observation the core
//! makes becomes an [`Event`] carrying facts (and, where a value was not read from
//! the kernel, where it came from); renderers in `report/` turn events into text.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::model::outcome::Exit;
pub use crate::model::outcome::Outcome;
pub use crate::model::schedule::{Bound, Path};
use crate::model::settings::Sources;

/// One fact on a connection's timeline. `conn` is 0 for events about the whole run
/// (the listening socket), 1 for `connect`, and the accept order for `listen`.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: Duration,
    pub wall: SystemTime,
    pub conn: u64,
    pub kind: EventKind,
}

/// The effective settings of a connection as read back from the kernel, with the
/// prediction made from them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigFacts {
    pub keepalive: bool,
    pub idle_s: u32,
    pub intvl_s: u32,
    pub cnt: u32,
    pub user_timeout_ms: u32,
    /// Where each of the values above comes from.
    pub sources: Sources,
    /// Seconds from the last contact to the detection of a dead idle peer; `None`
    /// when nothing would ever detect it.
    pub predicted_detect_s: Option<f64>,
    /// Number of keepalive probes the kernel sends before it gives up.
    pub predicted_probes: Option<u32>,
    /// Seconds from an unacknowledged send to the detection when data is in flight.
    pub predicted_busy_detect_s: Option<f64>,
    /// Human explanation of the prediction ("idle 5s + 3 x intvl 5s").
    pub explain: String,
    pub warnings: Vec<String>,
    /// `watch` with settings not known: the shortest and longest detection the
    /// unknown settings allow (the longest assuming no longer user timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_detect_min_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_detect_max_s: Option<f64>,
    /// `watch`: the settings changed at run time and were read again; why they
    /// were (what the kernel showed that the settings held could not explain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<String>,
}

/// How sure an end inferred from outside is (serialized as its [`Certainty::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Certainty {
    /// The evidence admits one end only.
    Certain,
    /// One end fits the evidence far better; the alternative is named.
    Likely,
    Ambiguous,
}

impl Certainty {
    pub fn name(self) -> &'static str {
        match self {
            Certainty::Certain => "certain",
            Certainty::Likely => "likely",
            Certainty::Ambiguous => "ambiguous",
        }
    }
}

/// How a command finished: a run that ended with its [`EndFacts`] (a connection's
/// outcome, a watch, a measurement), or one whose output is text and has no
/// outcome (a plan, a listing, a page, a completion script).
#[derive(Debug, Clone, PartialEq)]
pub enum Finished {
    /// Boxed: an end is large and a printed command carries nothing.
    Ended(Box<EndFacts>),
    Printed,
}

/// How a connection ended, with the facts a script needs to assert it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndFacts {
    pub outcome: Outcome,
    pub errno: Option<String>,
    pub message: String,
    pub exit_code: u8,
    pub detect_s: Option<f64>,
    pub predicted_detect_s: Option<f64>,
    /// `--expect`/`--within` as text ("timeout within 3s..5s"), when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_met: Option<bool>,
    /// What happened instead of the expectation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_failure: Option<String>,
    /// `watch`, `explain`: how sure the inferred end is (when ambiguous, `possible` lists the ends
    /// the evidence allows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certainty: Option<Certainty>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub possible: Option<Vec<Outcome>>,
    /// `watch`: the end was inferred from outside (the socket's state and last
    /// counters, not an errno its owner saw); this says from what.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inferred: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// What ended it, when the model knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound: Option<Bound>,
    /// The path the connection was on at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Path>,
    /// `connect --reconnect`: the outage log's summary.
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub outages: Option<OutageSummary>,
    /// `idle-limit`: the measured limit and the keepalive that beats it.
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub idle_limit: Option<IdleLimitFacts>,
}

impl EndFacts {
    /// An end whose exit code is the outcome's own.
    pub fn new(
        outcome: Outcome,
        errno: Option<String>,
        message: String,
        detect_s: Option<f64>,
        predicted_detect_s: Option<f64>,
    ) -> EndFacts {
        EndFacts {
            outcome,
            errno,
            message,
            exit_code: Exit::Outcome(outcome).code(),
            detect_s,
            predicted_detect_s,
            expected: None,
            expect_met: None,
            expect_failure: None,
            certainty: None,
            possible: None,
            inferred: None,
            evidence: None,
            bound: None,
            path: None,
            outages: None,
            idle_limit: None,
        }
    }
}

/// The prediction in force: the path the connection is on and when the kernel gives
/// up on it if the peer answers nothing more (see `model::schedule`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub path: Path,
    /// The last contact with the peer (run time) the prediction counts from.
    #[serde(serialize_with = "secs")]
    pub since: Duration,
    /// When the kernel gives up (run time), `None` for never.
    #[serde(serialize_with = "opt_secs")]
    pub dead_at: Option<Duration>,
    /// Seconds from the last contact to `dead_at` (null for never).
    pub detect_s: Option<f64>,
    /// The timer wheel may make it this much later, never earlier.
    #[serde(rename = "late_by_up_to_s", serialize_with = "secs")]
    pub late_by_up_to: Duration,
    /// What ends it.
    pub bound: Bound,
    /// Probes still to go out before the end.
    pub probes: u32,
    /// One line: why this time.
    pub explain: String,
    /// The same path, bound and detection time as the prediction before it, only
    /// counted from a newer last contact (the default human view does not restate
    /// it). Not in the JSON, whose readers have every prediction.
    #[serde(skip)]
    pub restated: bool,
}

impl Prediction {
    /// Seconds from the last contact to the end, `None` for never.
    pub fn detect_s(&self) -> Option<f64> {
        self.detect_s
    }

    /// Fills `detect_s` from `since` and `dead_at` (millisecond precision).
    pub fn with_detect(mut self) -> Prediction {
        self.detect_s = self
            .dead_at
            .map(|d| secs_value(d.saturating_sub(self.since)));
        self
    }
}

/// The reconnecting monitor's account of its outages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutageSummary {
    pub outages: usize,
    pub detect_min_s: Option<f64>,
    pub detect_median_s: Option<f64>,
    pub detect_max_s: Option<f64>,
    pub downtime_s: f64,
    /// The time the monitor watched (run time from its start), over which
    /// `availability` is `1 - downtime / observed`.
    pub observed_s: f64,
    /// Rounded down to the precision the measurement supports
    /// (`model::outages::availability_decimals`): never 1 with any downtime.
    pub availability: f64,
}

/// `idle-limit`'s result. The limit is the midpoint of the bracket between the
/// longest idle time a flow survived and the shortest after which one was dropped;
/// `resolution_s` is half that bracket. `None`s: no flow was dropped up to `max_s`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdleLimitFacts {
    pub idle_limit_s: Option<f64>,
    pub resolution_s: Option<f64>,
    /// "out", "in" or "both": the directions whose flows were dropped at the limit.
    pub direction: Option<&'static str>,
    /// "silent", "reset" or "closed" (a FIN: a proxy's idle timeout), of the
    /// limiting direction.
    pub drop_mode: Option<&'static str>,
    /// Per direction that had a flow dropped ("out", "in"): how its shortest
    /// failure died, from what both ends saw.
    pub drops: std::collections::BTreeMap<&'static str, DropFacts>,
    pub recommended_idle_s: Option<u32>,
    pub recommended_intvl_s: Option<u32>,
    pub recommended_cnt: Option<u32>,
    /// Behind a proxy (drop mode "closed"): application data at least this often
    /// keeps the flows (keepalive cannot; the `recommended_*` keepalive is null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommended_heartbeat_s: Option<u32>,
    /// Dead-peer detection with the recommended keepalive (predict.rs).
    pub recommended_detect_s: Option<f64>,
    /// The `plan --path` presets whose published default the limit matches
    /// (`model::plan::presets::compare_measured`).
    pub matches_paths: Vec<&'static str>,
    /// Whether the limit is shorter than RFC 5382 REQ-5 allows a NAT; `None`
    /// when no limit was found.
    pub below_rfc5382: Option<bool>,
    /// "out", "in" or "both": what was measured.
    pub directions_tested: &'static str,
    pub max_s: f64,
    pub rounds: u32,
    pub flows: u64,
    /// Payload bytes this side sent over all test flows.
    pub bytes_sent: u64,
    /// `--verify`: whether the keepalive connection survived its hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_idle_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_hold_s: Option<f64>,
}

/// How one direction's shortest failure died: `mode` and `by` ("path" or "far
/// end") are derived from `client_saw` (this side: "fin", "rst", "timeout",
/// "answered" for the `in` follow-up, "nothing") and `listener_saw` (the
/// listener's report: "fin", "rst", "timeout", "error"; null when it reported
/// nothing: its side of the flow was still open).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DropFacts {
    pub mode: &'static str,
    pub by: &'static str,
    pub idle_s: f64,
    pub client_saw: &'static str,
    pub listener_saw: Option<&'static str>,
}

/// `watch`: a connection another process owns, as seen from outside through
/// sock_diag. Its settings are read through pidfd_getfd where the watcher may, else
/// inferred; each value says where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchFacts {
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub pid: Option<u32>,
    pub process: Option<String>,
    pub uid: u32,
    pub inode: u32,
    /// The pending timer: "keepalive", "none", "retransmit", "zero-window-probe".
    pub timer: &'static str,
    pub timer_expires_ms: u64,
    /// SO_KEEPALIVE as the timer shows it; `None` while a retransmit or zero-window
    /// timer hides the keepalive timer.
    pub keepalive: Option<bool>,
    pub idle_s: u32,
    pub intvl_s: u32,
    pub cnt: u32,
    /// "read-back", "kernel-timer", "system-default" or "assumed" (model::settings).
    pub idle_source: &'static str,
    pub intvl_source: &'static str,
    pub cnt_source: &'static str,
    pub user_timeout_ms: u32,
    pub user_timeout_source: &'static str,
    pub keepalive_source: &'static str,
    /// Every setting was read from the owner's socket (pidfd_getfd): exact.
    pub settings_read: bool,
    /// Why the settings could not be read, when they were not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings_unread_reason: Option<String>,
    /// Seconds from the last contact with the peer to the moment it joined.
    pub last_contact_ago_s: f64,
    /// Keepalive probes already out, unanswered, when it joined: they went out
    /// between the last contact and the join (no sample saw when), and are not
    /// reported again as `probe` events.
    pub probes_out: u32,
    /// Seen within its first moments with keepalive off: its owner may still set
    /// it up (sshd does ~100 ms after accept), so it is not judged until it is
    /// `settle_s` old or keepalive goes on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settle_s: Option<f64>,
    /// This host's own conntrack entry of the connection, when it has one (and
    /// conntrack could be read: CAP_NET_ADMIN).
    pub conntrack: Option<ConntrackFacts>,
    /// The network namespace the connection lives in, when it is not watch's own
    /// (`watch --pid` of a process in a container or a lab namespace): its
    /// `ip netns` name when it has one, and `net:[INODE]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// Why `pid` is absent: "unaccepted" (still in its listener's accept queue),
    /// "no-process" (watch may read every process's descriptors and none holds
    /// it: in flight with SCM_RIGHTS, being closed, or the kernel's own), or
    /// "not-visible" (its owner may be a process this user cannot inspect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_unknown: Option<&'static str>,
}

/// A watched connection's conntrack entry on this host (`model::watch::conntrack_facts`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConntrackFacts {
    /// The entry's TCP state as conntrack(8) names it ("ESTABLISHED").
    pub state: &'static str,
    /// Seconds the entry had left when the connection joined (CTA_TIMEOUT).
    pub timeout_s: u64,
    /// What each packet refreshes an established entry to: this namespace's
    /// nf_conntrack_tcp_timeout_established, or the entry's own longer timeout (a
    /// timeout policy); `None` for an entry not in ESTABLISHED.
    pub established_timeout_s: Option<u64>,
    /// The connection can stay idle past that timeout: keepalive is off, or its
    /// traffic (every max(idle, intvl)) comes at or after the entry expires.
    pub keepalive_after_expiry: bool,
}

/// `tune`: a socket of another process, the settings it held and holds now (read
/// back through the duplicate, so both are exact), with their predictions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TuneFacts {
    pub pid: u32,
    pub process: Option<String>,
    /// "established" or "listening".
    pub state: &'static str,
    pub local: SocketAddr,
    /// `None` for a listening socket.
    pub peer: Option<SocketAddr>,
    /// `None` when the socket could not be read (see `error`).
    pub before: Option<ConfigFacts>,
    /// What the socket holds after the change (with `--dry-run`, what it would).
    pub after: Option<ConfigFacts>,
    /// The options set (or that would be set), in order.
    pub changed: Vec<&'static str>,
    pub dry_run: bool,
    /// Why this socket could not be changed; its settings are then as before.
    pub error: Option<String>,
    /// What the change means beyond the settings (keepalive switched on though not
    /// asked by name, keepalive suspended by data in flight, sysctls from another
    /// namespace), one sentence each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Each variant's fields are its JSON fields (the JSON renderer adds `event`, `t`,
/// `time` and `conn`): durations are seconds with millisecond precision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventKind {
    /// `listen` bound its socket.
    Listening {
        local: SocketAddr,
        max_conns: usize,
    },
    /// A connection past `--max-conns` was refused.
    Refused {
        peer: SocketAddr,
        reason: String,
    },
    Connected {
        local: SocketAddr,
        peer: SocketAddr,
    },
    Config(ConfigFacts),
    /// Idle-start: the last contact with the peer was at `since` (run time).
    Idle {
        #[serde(serialize_with = "secs")]
        since: Duration,
    },
    /// The first probe is due now; the peer is declared dead at `dead_at` if unanswered.
    ProbeWindow {
        #[serde(serialize_with = "secs")]
        due: Duration,
        #[serde(serialize_with = "opt_secs")]
        dead_at: Option<Duration>,
    },
    /// Probe `n` went out; `due` is when the kernel's timer was set to send it
    /// (last contact + idle for the first, the previous probe + intvl after).
    Probe {
        n: u32,
        #[serde(serialize_with = "secs")]
        due: Duration,
        /// The sample that saw it go out also saw its answer (the `probe-acked`
        /// that follows says both, so the default human view shows only that).
        /// Not in the JSON: the `probe-acked` event is there.
        #[serde(skip)]
        answered: bool,
    },
    ProbeAcked {
        n: u32,
    },
    Retransmit {
        n: u32,
        unacked: u32,
    },
    /// A new prediction: emitted at the start and whenever it changes (an answer,
    /// data, a window change, a late timer).
    Prediction(Prediction),
    /// The peer advertises a zero window with data waiting: its application stopped
    /// reading. Keepalive stops; window probes start (the first due at `probe_due`).
    ZeroWindow {
        /// Bytes waiting to be sent; `None` where nothing shows it (a capture).
        unsent: Option<u32>,
        #[serde(serialize_with = "secs")]
        probe_due: Duration,
    },
    /// The window opened again after `after` in the zero-window state.
    WindowOpen {
        #[serde(rename = "after_s", serialize_with = "secs")]
        after: Duration,
        probes: u32,
    },
    /// Zero-window probe `n` (1-based in this zero-window episode) went out;
    /// `unanswered` counts the probes since the last answer, this one included.
    WindowProbe {
        n: u32,
        #[serde(serialize_with = "secs")]
        due: Duration,
        unanswered: u32,
    },
    /// The peer answered window probe `n` (still with a zero window).
    WindowProbeAcked {
        n: u32,
    },
    /// `connect`: the SYN went out; the attempt ends at `deadline` (run time) at the
    /// latest, set by `bound` (user timeout, SYN retries or connect timeout).
    Connecting {
        peer: SocketAddr,
        #[serde(serialize_with = "secs")]
        deadline: Duration,
        bound: Bound,
        syn_retries: u32,
        /// SYN retransmissions the kernel makes before the deadline if unanswered.
        retransmits: u32,
    },
    /// `connect`: the kernel retransmitted the SYN (n-th time), due at `due`.
    SynRetransmit {
        n: u32,
        #[serde(serialize_with = "secs")]
        due: Duration,
    },
    Data {
        bytes_in: u64,
        bytes_out: u64,
    },
    Heartbeat {
        seq: u64,
    },
    HeartbeatReply {
        seq: u64,
        #[serde(rename = "rtt_ms", serialize_with = "millis")]
        rtt: Duration,
        /// `--heartbeat-payload`: the reply's bytes, escaped and cut
        /// (`model::heartbeat::show_reply`).
        #[serde(skip_serializing_if = "Option::is_none")]
        reply: Option<String>,
    },
    /// `--reconnect`: the connection died (outage `n` begins).
    Down {
        n: usize,
        outcome: Outcome,
        errno: Option<String>,
        detect_s: Option<f64>,
    },
    /// `--reconnect`: connected again after `downtime` (from the last contact).
    Up {
        n: usize,
        #[serde(rename = "downtime_s", serialize_with = "secs")]
        downtime: Duration,
    },
    /// Something the operator should know that is not a state change.
    Warning {
        message: String,
    },
    End(EndFacts),
    /// `watch`: a connection another process owns joined the watch.
    Watched(WatchFacts),
    /// `lab`: the scenario being reproduced, the real event it stands for, the
    /// fault and when it comes.
    Scenario {
        #[serde(rename = "scenario")]
        name: &'static str,
        stands_for: &'static str,
        fault: &'static str,
        when: String,
    },
    /// `lab`: the fault was injected now.
    Fault {
        scenario: &'static str,
        action: &'static str,
    },
    /// `tune`: one socket of another process, before and after.
    Tuned(TuneFacts),
    /// `idle-limit`: a round of test flows starts (round 0 is `--verify`).
    IdleRound {
        round: u32,
        flows: usize,
        #[serde(rename = "shortest_s", serialize_with = "secs")]
        shortest: Duration,
        #[serde(rename = "longest_s", serialize_with = "secs")]
        longest: Duration,
    },
    /// `idle-limit`: one test flow, idle for `idle`, was checked.
    IdleCheck {
        round: u32,
        direction: &'static str,
        #[serde(rename = "idle_s", serialize_with = "secs")]
        idle: Duration,
        /// "survived" or "dropped".
        result: &'static str,
        /// "silent", "reset" or "closed" when dropped.
        drop_mode: Option<&'static str>,
        /// When dropped: "path" or "far end" (see [`DropFacts`]).
        by: Option<&'static str>,
        /// When dropped: what this side saw, and what the listener had reported
        /// by then (null: nothing yet).
        client_saw: Option<&'static str>,
        listener_saw: Option<&'static str>,
        /// The round trip of the flow's set-up (HOLD/HELD).
        #[serde(rename = "rtt_ms", serialize_with = "millis")]
        rtt: Duration,
        /// `--verify`: the keepalive idle the flow held.
        #[serde(skip_serializing_if = "Option::is_none")]
        keepalive_idle_s: Option<u32>,
    },
    /// `explain`: a setting or fact read off a packet capture ("idle", "intvl",
    /// "cnt", "stack"), with the evidence; `exact` when the timing leaves one value.
    Inferred {
        what: &'static str,
        value: String,
        exact: bool,
        evidence: String,
    },
}

impl EventKind {
    /// The event name used on the timeline and as the JSON `event` field.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Listening { .. } => "listening",
            EventKind::Refused { .. } => "refused",
            EventKind::Connected { .. } => "connected",
            EventKind::Config(_) => "config",
            EventKind::Idle { .. } => "idle",
            EventKind::ProbeWindow { .. } => "probe-window",
            EventKind::Probe { .. } => "probe",
            EventKind::ProbeAcked { .. } => "probe-acked",
            EventKind::Retransmit { .. } => "retransmit",
            EventKind::Prediction(_) => "prediction",
            EventKind::ZeroWindow { .. } => "zero-window",
            EventKind::WindowOpen { .. } => "window-open",
            EventKind::WindowProbe { .. } => "window-probe",
            EventKind::WindowProbeAcked { .. } => "window-probe-acked",
            EventKind::Connecting { .. } => "connecting",
            EventKind::SynRetransmit { .. } => "syn-retransmit",
            EventKind::Data { .. } => "data",
            EventKind::Heartbeat { .. } => "heartbeat",
            EventKind::HeartbeatReply { .. } => "heartbeat-reply",
            EventKind::Down { .. } => "down",
            EventKind::Up { .. } => "up",
            EventKind::Warning { .. } => "warning",
            EventKind::End(_) => "end",
            EventKind::Watched(_) => "watched",
            EventKind::Scenario { .. } => "scenario",
            EventKind::Fault { .. } => "fault",
            EventKind::Tuned(_) => "tuned",
            EventKind::IdleRound { .. } => "idle-round",
            EventKind::IdleCheck { .. } => "idle-check",
            EventKind::Inferred { .. } => "inferred",
        }
    }
}

/// Seconds, rounded to the millisecond, as every time field of the JSON output.
pub fn secs_value(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(secs_value(*d))
}

fn opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(secs_value(*d)),
        None => s.serialize_none(),
    }
}

/// Milliseconds with microsecond precision (round-trip times).
fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

/// Where events go. Renderers implement it; the core only ever calls `emit`.
pub trait Sink {
    fn emit(&mut self, event: &Event) -> std::io::Result<()>;
}
