//! What `watch` decides about one connection from what a dump shows, without I/O:
//! the `config` facts of what is known of its settings ([`config_facts`]), the
//! clues its end is judged by ([`EndClues`]: the SYN byte its counters reveal,
//! [`syn_bytes`]), whether a four-tuple lookup decides a
//! vanished socket's end ([`decided_by_lookup`]), what its destroy notification
//! says ([`destroyed`]), the warning when another timer hides keepalive
//! ([`HiddenTimer`]), the end a verdict gives ([`judged_end`]), whether its
//! keepalive outlives this host's conntrack entry ([`conntrack_facts`],
//! [`conntrack_warning`]), and the notes of `--pid` ([`descendants_note`],
//! [`nothing_matched_note`]).

use std::time::Duration;

use crate::model::event::{ConfigFacts, ConntrackFacts, EndFacts};
use crate::model::infer::Knowledge;
use crate::model::predict;
use crate::model::sample::{TCP_CLOSING, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_TIME_WAIT, TcpSample};
use crate::model::settings::Sources;
use crate::model::timeline::Timeline;
use crate::model::verdict::{Destroyed, Evidence, Verdict};

/// How many of `--pid`'s descendants the note names; the rest are counted.
pub const NAMED_DESCENDANTS: usize = 10;

/// The `config` facts: what the prediction uses, where each value comes from,
/// and, when the settings were not read, the range the unknown ones allow.
pub fn config_facts(know: &Knowledge, retries2: u32) -> ConfigFacts {
    let mut facts = know.effective().facts(retries2);
    facts.sources = Sources {
        keepalive: know.keepalive_source,
        idle_s: know.idle_source,
        intvl_s: know.intvl_source,
        cnt: know.cnt_source,
        user_timeout_ms: know.user_timeout_source,
    };
    if know.is_read() {
        return facts;
    }
    let unknowns = know.unknowns();
    if know.keepalive == Some(true) && !unknowns.is_empty() {
        facts.explain = format!(
            "{}, if {} are as assumed (not read from the socket)",
            facts.explain,
            unknowns.join(", ")
        );
    }
    if let Some(range) = know.detect_range() {
        facts.predicted_detect_min_s = Some(range.min.as_secs_f64());
        facts.predicted_detect_max_s = Some(range.max.as_secs_f64());
    }
    facts.warnings.push(
        "watched from outside without reading the socket: TCP_USER_TIMEOUT cannot be seen \
         and is assumed off, cnt is the system default"
            .to_string(),
    );
    facts
}

/// At a dump of an ESTABLISHED socket with nothing in flight (`unacked` 0 and an
/// empty send queue), bytes_acked beyond the data sent is the SYN: 1 on the
/// connecting side, 0 on the accepting one. Remembered so that the final counters
/// can tell whether the socket's own FIN was acknowledged. `None`: not provable
/// from this dump.
pub fn syn_bytes(info: &TcpSample, send_queue: u32) -> Option<i64> {
    if info.unacked != 0 || send_queue != 0 {
        return None;
    }
    let beyond = info.acked_beyond_data();
    (beyond == 0 || beyond == 1).then_some(beyond)
}

/// A socket that vanished from the dump: a socket in a closing state with its
/// four-tuple (`tuple`) or the reverse one (`reverse`, the peer's socket on this
/// host) decides its end now; anything else (the peer's socket still
/// ESTABLISHED, say) waits for the destroy notification like an unknown.
pub fn decided_by_lookup(tuple: Option<u8>, reverse: Option<u8>) -> bool {
    let closing = |s: Option<u8>| {
        matches!(
            s,
            Some(TCP_TIME_WAIT | TCP_FIN_WAIT1 | TCP_FIN_WAIT2 | TCP_CLOSING)
        )
    };
    closing(tuple) || closing(reverse)
}

/// A socket whose settings were read shows a keepalive timer (or none) that
/// contradicts them: the application switched keepalive since, so they are read
/// again. `seen` is what the timer shows (`None` when another timer hides it).
pub fn keepalive_switched(know: &Knowledge, seen: Option<bool>) -> bool {
    know.is_read() && seen.is_some() && seen != know.keepalive
}

/// What a followed connection leaves for the verdict, gathered dump by dump: the
/// states seen after ESTABLISHED, the last counters while ESTABLISHED, the SYN byte
/// once proven, and the four-tuple lookups made when it vanished.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndClues {
    pub states_seen: Vec<u8>,
    pub last_established: TcpSample,
    pub syn_bytes: Option<i64>,
    pub tuple_state: Option<u8>,
    pub reverse_state: Option<u8>,
}

impl EndClues {
    /// A dump that shows the socket ESTABLISHED: its counters, and the SYN byte
    /// if this dump is the first to prove it ([`syn_bytes`]).
    pub fn established(&mut self, info: &TcpSample, send_queue: u32) {
        self.last_established = *info;
        if self.syn_bytes.is_none() {
            self.syn_bytes = syn_bytes(info, send_queue);
        }
    }

    /// A dump that shows it in a state after ESTABLISHED.
    pub fn left(&mut self, state: u8) {
        self.states_seen.push(state);
    }

    /// The states of its four-tuple and the reverse one, looked up once it vanished.
    pub fn looked_up(&mut self, tuple: Option<u8>, reverse: Option<u8>) {
        self.tuple_state = tuple;
        self.reverse_state = reverse;
    }

    /// Whether the lookups decide its end now ([`decided_by_lookup`]).
    pub fn decided(&self) -> bool {
        decided_by_lookup(self.tuple_state, self.reverse_state)
    }

    /// The evidence for [`verdict::judge`](crate::model::verdict::judge), with what
    /// the end itself brought.
    pub fn evidence(
        &self,
        destroyed: Option<Destroyed>,
        owner_holds: Option<bool>,
        destroy_listening: bool,
        settings: Knowledge,
    ) -> Evidence {
        Evidence {
            states_seen: self.states_seen.clone(),
            last: self.last_established,
            syn_bytes: self.syn_bytes,
            tuple_state: self.tuple_state,
            reverse_state: self.reverse_state,
            destroyed,
            owner_holds,
            destroy_listening,
            settings,
            left_when_due: false,
        }
    }
}

/// The final report of a destroyed socket: its last counters, the peer port it
/// showed, and the bytes its owner never read. A peer port of 0 with zeroed
/// counters is an owner's abort (SO_LINGER 0 runs tcp_disconnect, which clears both).
pub fn destroyed(info: TcpSample, peer_port: u16, unread: u32) -> Destroyed {
    Destroyed {
        info,
        aborted_by_owner: peer_port == 0 && info.bytes_acked == 0 && info.bytes_received == 0,
        unread,
    }
}

/// A timer that takes the keepalive timer's place: keepalive does not run then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HiddenTimer {
    /// Data is in flight: the retransmission budget or the user timeout decides.
    Retransmit,
    /// The peer's receive window is full: window probes run instead.
    ZeroWindow,
}

impl HiddenTimer {
    /// The warning, with the detection that applies instead.
    pub fn warning(self, unacked: u32, retries2: u32) -> String {
        match self {
            HiddenTimer::Retransmit => {
                let budget = predict::retransmission_budget(retries2).as_secs_f64();
                format!(
                    "keepalive cannot run: the retransmission timer is pending ({unacked} \
                     unacknowledged segment(s)); a dead peer is detected by the retransmission \
                     budget ({budget:.1}s, tcp_retries2 {retries2}) or the app's user timeout"
                )
            }
            HiddenTimer::ZeroWindow => "keepalive cannot run: the zero-window probe timer is \
                                        pending (the peer's receive window is full)"
                .to_string(),
        }
    }
}

/// The end of a connection judged from outside: the timeline's end at `at` with
/// the verdict's outcome, marked inferred, with its evidence, certainty and (for
/// an ambiguous one) the ends it allows.
pub fn judged_end(timeline: &Timeline, at: Duration, v: Verdict) -> EndFacts {
    let mut end = timeline.end(at, v.outcome, v.errno.map(str::to_string), v.message);
    end.inferred = Some(true);
    end.evidence = Some(v.evidence);
    end.certainty = Some(v.certainty);
    if !v.possible.is_empty() {
        end.possible = Some(v.possible);
    }
    end
}

/// What a conntrack lookup found, for [`conntrack_facts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConntrackEntry {
    /// Seconds left (CTA_TIMEOUT).
    pub left: Duration,
    /// The entry's TCP state is ESTABLISHED.
    pub established: bool,
    /// conntrack(8)'s name of the state.
    pub state: &'static str,
}

/// The conntrack facts of a watched connection: the timeout its entry is
/// refreshed to while ESTABLISHED (the namespace's sysctl, or what the entry has
/// left when that is longer: a per-flow timeout policy), and whether the
/// connection's keepalive comes too late for it. `keepalive` is `None` when a
/// retransmit or zero-window timer hides it (nothing is claimed then).
pub fn conntrack_facts(
    entry: ConntrackEntry,
    sysctl: Option<Duration>,
    keepalive: Option<bool>,
    idle_s: u32,
    intvl_s: u32,
) -> ConntrackFacts {
    let refresh = entry
        .established
        .then(|| sysctl.map_or(entry.left, |s| s.max(entry.left)));
    // Between answered probes the gap is max(idle, intvl) (the plan's rule).
    let gap = Duration::from_secs(u64::from(idle_s.max(intvl_s)));
    let after = match (refresh, keepalive) {
        (Some(t), Some(true)) => gap >= t,
        (Some(_), Some(false)) => true,
        _ => false,
    };
    ConntrackFacts {
        state: entry.state,
        timeout_s: entry.left.as_secs(),
        established_timeout_s: refresh.map(|t| t.as_secs()),
        keepalive_after_expiry: after,
    }
}

/// The warning for a connection whose keepalive comes after its conntrack entry
/// expires: idle longer than the entry's timeout, the host forgets the flow, and
/// what the first send after that meets depends on the host's rules (`loose` is
/// `nf_conntrack_tcp_loose`). `assumed` names settings not read from the socket.
pub fn conntrack_warning(
    ct: &ConntrackFacts,
    keepalive: Option<bool>,
    idle_s: u32,
    intvl_s: u32,
    assumed: bool,
    loose: Option<u32>,
) -> Option<String> {
    if !ct.keepalive_after_expiry {
        return None;
    }
    let t = ct.established_timeout_s?;
    let why = match keepalive {
        Some(true) => format!(
            "keepalive traffic comes every {}s (idle {idle_s}s, intvl {intvl_s}s{})",
            idle_s.max(intvl_s),
            if assumed { ", assumed: not read" } else { "" }
        ),
        _ => "keepalive is off".to_string(),
    };
    let then = match loose {
        Some(0) => "nf_conntrack_tcp_loose is 0 here: the first packet after that is \
                    INVALID, and a `ct state invalid drop` rule drops it silently"
            .to_string(),
        Some(l) => format!(
            "nf_conntrack_tcp_loose is {l} here: the first packet after that is picked up as \
             a new flow (harmless without NAT; behind NAT it may be mapped anew, and with \
             loose 0 and a `ct state invalid drop` rule it would be dropped silently)"
        ),
        None => "the first packet after that meets a host that forgot the flow".to_string(),
    };
    Some(format!(
        "this host's conntrack entry expires {t}s after the last packet \
         (nf_conntrack_tcp_timeout_established) but {why}: an idle connection outlives its \
         entry; {then}"
    ))
}

/// `--pid` with descendants: which processes are watched with it. `pid` and
/// `named` (at most [`NAMED_DESCENDANTS`] of them) are as shown ("123 (nginx)");
/// `descendants` counts them all, `sockets` the sockets (of any kind) they hold
/// now: a service's connections are often its workers', but a descendant may
/// hold none, so the note claims nothing more. `None` without descendants.
pub fn descendants_note(
    pid: &str,
    named: &[String],
    descendants: usize,
    sockets: usize,
) -> Option<String> {
    if descendants == 0 {
        return None;
    }
    let shown = &named[..named.len().min(NAMED_DESCENDANTS)];
    let more = descendants.saturating_sub(shown.len());
    Some(format!(
        "--pid {pid}: its descendants are watched with it ({descendants} process(es), holding \
         {sockets} socket(s) of any kind now): {}{}",
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ))
}

/// After the first pass, `--pid` that matched nothing says why: how many
/// descendants and sockets (of any kind) it holds; `filtered` when `--port` or
/// `--peer` narrowed the match.
pub fn nothing_matched_note(
    pid: u32,
    filtered: bool,
    descendants: usize,
    sockets: usize,
) -> String {
    let filters = if filtered {
        " matching --port/--peer"
    } else {
        ""
    };
    format!(
        "--pid {pid}: no established TCP connection{filters} yet: the process and its \
         {descendants} descendant(s) hold {sockets} socket(s) in all (of any kind: listening, \
         UDP, unix); new connections join when they appear"
    )
}

#[cfg(test)]
mod tests;
