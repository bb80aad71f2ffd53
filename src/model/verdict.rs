//! How a watched connection ended, judged from outside: a pure function of the
//! evidence `watch` collected (states seen at dumps, four-tuple lookups, the
//! destroy notification's final counters, whether the owner still holds the
//! socket, the last counters seen while ESTABLISHED). No normal close may come out
//! as reset or timeout: where the evidence allows more than one end, the verdict
//! is [`Outcome::Ambiguous`] and says which ends it allows and why.
//!
//! What the kernel offers (measured on Linux 6.18; docs/kernel-facts.md, "How a connection
//! leaves the socket table", names the tests):
//! - A socket that closes first goes FIN_WAIT -> TIME_WAIT; its four-tuple is then
//!   found in TIME_WAIT (or FIN_WAIT2 as a timewait socket) for 60 s.
//! - A socket that closes second goes CLOSE_WAIT -> LAST_ACK -> destroyed when the
//!   peer ACKs its FIN, often within a millisecond (unseen between dumps).
//! - The destroy notification carries the final `TCP_INFO`: `bytes_acked` counts
//!   the SYN (connecting side) and our FIN once acknowledged on top of the data
//!   sent, so "our FIN was acknowledged" is exact; `bytes_received` counts the
//!   peer's FIN, provable when no data arrived since the last dump.
//! - A socket reset by its peer, or given up on by the kernel, leaves the dumps at
//!   once (CLOSE is not hashed) but is destroyed only when its owner closes it.
//! - An owner's abort (SO_LINGER 0) zeroes the counters and the peer port.

pub use crate::model::event::Certainty;
use std::time::Duration;

use crate::model::event::Outcome;
use crate::model::infer::{Knowledge, Source};
use crate::model::sample::{
    TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK,
    TCP_TIME_WAIT, TcpSample,
};

/// The socket's final report, from sock_diag's destroy notification.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Destroyed {
    pub info: TcpSample,
    /// The peer port read 0 and the counters were zeroed: its owner aborted it
    /// (tcp_disconnect: SO_LINGER 0).
    pub aborted_by_owner: bool,
    /// Data (and an unread FIN) its owner never read (`idiag_rqueue`).
    pub unread: u32,
}

/// Everything `watch` knows when a connection has left ESTABLISHED or vanished.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// The states seen at dumps after ESTABLISHED, in order.
    pub states_seen: Vec<u8>,
    /// The last counters seen while ESTABLISHED.
    pub last: TcpSample,
    /// `acked_beyond_data()` at a dump with nothing in flight: 1 on the connecting
    /// side (its SYN), 0 on the accepting side; `None` if never seen.
    pub syn_bytes: Option<i64>,
    /// The state of a socket with the same four-tuple, looked up after it vanished.
    pub tuple_state: Option<u8>,
    /// The state of the peer's socket when it is on this host (loopback).
    pub reverse_state: Option<u8>,
    pub destroyed: Option<Destroyed>,
    /// Whether the owner still held the socket after it vanished (`None`: unknown).
    pub owner_holds: Option<bool>,
    /// Whether destroy notifications were being received (so their absence says
    /// the owner has not closed the socket).
    pub destroy_listening: bool,
    pub settings: Knowledge,
    /// The socket left the table no earlier than the moment the settings read
    /// (with the probes seen) make the kernel give up: its leaving is the kernel's
    /// doing, whatever the owner did with it after.
    pub left_when_due: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub outcome: Outcome,
    pub errno: Option<&'static str>,
    pub message: String,
    pub evidence: String,
    pub certainty: Certainty,
    /// For an ambiguous verdict: the ends the evidence allows.
    pub possible: Vec<Outcome>,
}

const PEER_FIN_STATES: [u8; 2] = [TCP_CLOSE_WAIT, TCP_LAST_ACK];
const OWNER_FIN_STATES: [u8; 4] = [TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_CLOSING, TCP_TIME_WAIT];
/// The timer wheel and the millisecond counters: how much sooner than idle a
/// probe may seem to have gone out.
const PROBE_TOLERANCE: Duration = Duration::from_millis(250);

fn state_name(state: u8) -> &'static str {
    match state {
        TCP_ESTABLISHED => "ESTABLISHED",
        TCP_FIN_WAIT1 => "FIN_WAIT1",
        TCP_FIN_WAIT2 => "FIN_WAIT2",
        TCP_TIME_WAIT => "TIME_WAIT",
        TCP_CLOSE_WAIT => "CLOSE_WAIT",
        TCP_LAST_ACK => "LAST_ACK",
        TCP_CLOSING => "CLOSING",
        7 => "CLOSE",
        _ => "another state",
    }
}

fn verdict(
    outcome: Outcome,
    errno: Option<&'static str>,
    message: impl Into<String>,
    evidence: impl Into<String>,
    certainty: Certainty,
) -> Verdict {
    Verdict {
        outcome,
        errno,
        message: message.into(),
        evidence: evidence.into(),
        certainty,
        possible: Vec::new(),
    }
}

fn ambiguous(
    possible: &[Outcome],
    message: impl Into<String>,
    evidence: impl Into<String>,
) -> Verdict {
    Verdict {
        outcome: Outcome::Ambiguous,
        errno: None,
        message: message.into(),
        evidence: evidence.into(),
        certainty: Certainty::Ambiguous,
        possible: possible.to_vec(),
    }
}

const PEER_CLOSED: &str = "the peer closed the connection (FIN), then its owner closed it";
const OWNER_CLOSED: &str =
    "closed by its owner (FIN sent); the peer was alive as far as the kernel knows";

/// Judges how the connection ended. Rows, first match wins:
///
/// | evidence | verdict |
/// |---|---|
/// | CLOSE_WAIT or LAST_ACK seen at a dump | eof (peer closed first), certain |
/// | FIN_WAIT1/2, CLOSING or TIME_WAIT seen, or the tuple found in one | closed by owner (alive), certain |
/// | the peer's own socket (this host) in TIME_WAIT/FIN_WAIT | eof, certain |
/// | destroyed, counters zeroed, peer port 0 | aborted by its owner (alive), certain |
/// | destroyed, our FIN acknowledged | eof (peer first; no TIME_WAIT here), certain |
/// | destroyed, cannot tell SYN from FIN in bytes_acked | ambiguous eof/reset |
/// | destroyed, held, or left when the kernel's give-up was due; probes out, cnt/UTO read and reached | timeout ETIMEDOUT, certain |
/// | destroyed or held, probes out, below what was read | reset ECONNRESET (probe answered with RST), certain |
/// | destroyed or held, probes out, settings not read (or changed since, unreadable) | ambiguous timeout/reset |
/// | destroyed or held, retransmissions outstanding | ambiguous timeout/unreachable/reset |
/// | destroyed, no FIN, data left unread | ambiguous reset / closed by owner (RST for unread data) |
/// | destroyed, no FIN, peer FIN proven | eof (owner then aborted), certain |
/// | destroyed, no FIN acknowledged, nothing else | reset ECONNRESET, certain |
/// | still held by its owner, no destroy | reset, likely (or shut down by its owner) |
/// | nothing else known | ambiguous eof/closed/reset |
pub fn judge(ev: &Evidence) -> Verdict {
    if let Some(&s) = ev.states_seen.iter().find(|s| PEER_FIN_STATES.contains(s)) {
        return verdict(
            Outcome::Eof,
            None,
            "the peer closed the connection (FIN)",
            format!("the socket went from ESTABLISHED to {}", state_name(s)),
            Certainty::Certain,
        );
    }
    if let Some(&s) = ev.states_seen.iter().find(|s| OWNER_FIN_STATES.contains(s)) {
        return verdict(
            Outcome::Alive,
            None,
            OWNER_CLOSED,
            format!("the socket went from ESTABLISHED to {}", state_name(s)),
            Certainty::Certain,
        );
    }
    if let Some(s) = ev.tuple_state.filter(|s| OWNER_FIN_STATES.contains(s)) {
        return verdict(
            Outcome::Alive,
            None,
            OWNER_CLOSED,
            format!(
                "the socket closed first: its four-tuple is now in {}",
                state_name(s)
            ),
            Certainty::Certain,
        );
    }
    if let Some(s) = ev.reverse_state.filter(|s| OWNER_FIN_STATES.contains(s)) {
        return verdict(
            Outcome::Eof,
            None,
            PEER_CLOSED,
            format!(
                "the peer's socket on this host closed first (it is in {})",
                state_name(s)
            ),
            Certainty::Certain,
        );
    }
    let own_fin_acked = ev.destroyed.and_then(|d| fin_acked(&d, ev.syn_bytes));
    if let Some(d) = &ev.destroyed {
        if d.aborted_by_owner {
            return verdict(
                Outcome::Alive,
                None,
                "aborted by its owner (RST sent, SO_LINGER 0); the peer was alive as far as \
                 the kernel knows",
                "the destroyed socket's counters and peer port were zeroed (tcp_disconnect)",
                Certainty::Certain,
            );
        }
        if own_fin_acked == Some(true) {
            return verdict(
                Outcome::Eof,
                None,
                PEER_CLOSED,
                "its FIN was acknowledged (bytes_acked counts it) and no TIME_WAIT socket \
                 remains, so it closed second (CLOSE_WAIT -> LAST_ACK -> gone)",
                Certainty::Certain,
            );
        }
    }
    let final_info = ev.destroyed.map_or(ev.last, |d| d.info);
    let ended_by_kernel =
        ev.destroyed.is_some() || ev.owner_holds == Some(true) || ev.left_when_due;
    if ended_by_kernel && let Some(v) = kernel_gave_up(ev, &final_info) {
        return v;
    }
    if let Some(d) = &ev.destroyed {
        let fin_in = peer_fin_proven(&ev.last, &d.info);
        if fin_in {
            return verdict(
                Outcome::Eof,
                None,
                "the peer closed the connection (FIN); its owner then closed without a FIN of \
                 its own being acknowledged",
                "bytes_received grew by exactly one (the FIN) with no data since the last dump",
                Certainty::Certain,
            );
        }
        if own_fin_acked.is_none() {
            return ambiguous(
                &[Outcome::Eof, Outcome::Reset],
                "closed second after the peer's FIN, or reset by the peer",
                "bytes_acked exceeds the data sent by one, which is either its SYN or its \
                 FIN (this side's role was never seen with nothing in flight)",
            );
        }
        if d.unread > 0 {
            return ambiguous(
                &[Outcome::Reset, Outcome::Alive],
                "reset by the peer, or closed by its owner with unread data (which sends RST)",
                format!(
                    "no FIN of its own was acknowledged and {} byte(s) were left unread",
                    d.unread
                ),
            );
        }
        return verdict(
            Outcome::Reset,
            Some("ECONNRESET"),
            "the connection was reset by the peer",
            "the socket left ESTABLISHED without a FIN either way (no FIN of its own \
             acknowledged, none received), with no probes or retransmissions outstanding, \
             and its owner had read everything",
            Certainty::Certain,
        );
    }
    if ev.owner_holds == Some(true) {
        return verdict(
            Outcome::Reset,
            Some("ECONNRESET"),
            "the connection was reset by the peer (or shut down by its owner after a FIN \
             between two dumps)",
            "the socket left the kernel's table while its owner still holds it, with no \
             probes or retransmissions outstanding",
            Certainty::Likely,
        );
    }
    let why = if ev.destroy_listening {
        "the socket vanished between two dumps and no destroy notification told how"
    } else {
        "the socket vanished between two dumps; without destroy notifications its owner's \
         close and a reset look the same from outside"
    };
    ambiguous(
        &[Outcome::Eof, Outcome::Alive, Outcome::Reset],
        "ended between two dumps: a normal close or a reset",
        why,
    )
}

/// Whether the destroyed socket's own FIN was acknowledged (`None`: cannot tell).
fn fin_acked(d: &Destroyed, syn_bytes: Option<i64>) -> Option<bool> {
    let beyond = d.info.acked_beyond_data();
    match syn_bytes {
        Some(syn) => Some(beyond - syn >= 1),
        None => match beyond {
            2.. => Some(true),
            ..=0 => Some(false),
            // SYN or FIN: this side's role was never seen with nothing in flight.
            _ => None,
        },
    }
}

/// The peer's FIN is one byte of bytes_received; provable when no data came.
fn peer_fin_proven(last: &TcpSample, fin: &TcpSample) -> bool {
    fin.data_segs_in == last.data_segs_in
        && fin.bytes_received == last.bytes_received.saturating_add(1)
}

/// The kernel's own ends: keepalive or retransmissions gave up (or a probe met RST).
fn kernel_gave_up(ev: &Evidence, info: &TcpSample) -> Option<Verdict> {
    let probes = u32::from(info.probes.max(ev.last.probes));
    let retransmits = info.retransmits.max(ev.last.retransmits);
    if probes == 0 && retransmits == 0 {
        return None;
    }
    let k = &ev.settings;
    if retransmits > 0 && probes == 0 {
        return Some(ambiguous(
            &[Outcome::Timeout, Outcome::Unreachable, Outcome::Reset],
            "ended while data was being retransmitted: the kernel gave up (ETIMEDOUT, or \
             EHOSTUNREACH if the route failed), or the peer answered with RST",
            format!("{retransmits} retransmission(s) outstanding when the socket left"),
        ));
    }
    // A keepalive probe goes out only once idle has passed since the last
    // receive, and any answer resets the count: probes out sooner than the idle
    // held prove the settings changed since they were read (an owner or `tune`
    // set them between two looks), so they say nothing certain about cnt.
    let idle_held = Duration::from_secs(k.effective().idle_s.into());
    let contradicted =
        probes > 0 && info.since_contact().saturating_add(PROBE_TOLERANCE) < idle_held;
    // How many unanswered probes make the kernel give up, when known.
    let read = k.cnt_source == Source::ReadBack
        && k.user_timeout_source == Source::ReadBack
        && !k.stale
        && !contradicted;
    let limit = k.effective().idle_schedule().map(|s| s.probes);
    match (read, limit) {
        (true, Some(limit)) if probes >= limit => Some(verdict(
            Outcome::Timeout,
            Some("ETIMEDOUT"),
            format!("the kernel gave up after {probes} unanswered keepalive probe(s)"),
            format!(
                "{probes} probe(s) outstanding when the socket left; the settings read give up \
                 after {limit}"
            ),
            Certainty::Certain,
        )),
        (true, Some(limit)) => Some(verdict(
            Outcome::Reset,
            Some("ECONNRESET"),
            "a keepalive probe was answered with RST: the peer lost the connection (rebooted)",
            format!(
                "the socket left with {probes} probe(s) out, fewer than the {limit} the settings \
                 read allow"
            ),
            Certainty::Certain,
        )),
        _ => Some(ambiguous(
            &[Outcome::Timeout, Outcome::Reset],
            format!(
                "ended with {probes} keepalive probe(s) unanswered: the kernel gave up \
                 (ETIMEDOUT), or a probe met RST"
            ),
            if contradicted {
                format!(
                    "{probes} probe(s) out {:.3}s after the last contact, before the idle {}s \
                     read allows: the settings changed since they were read; if the kernel gave \
                     up, the socket's cnt is {probes} or a user timeout ended it",
                    info.since_contact().as_secs_f64(),
                    k.effective().idle_s
                )
            } else if k.stale {
                format!(
                    "the settings read (cnt {}) changed at run time and could not be read \
                     again: if the kernel gave up, the socket's cnt is {probes} or a user \
                     timeout ended it",
                    k.cnt
                )
            } else {
                format!(
                    "cnt {} and the user timeout were not read ({} / {}): if the kernel gave \
                     up, the socket's cnt is {probes} or a user timeout ended it",
                    k.cnt,
                    k.cnt_source.name(),
                    k.user_timeout_source.name()
                )
            },
        )),
    }
}

#[cfg(test)]
mod tests;
