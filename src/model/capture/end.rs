//! How a capture shows a connection's end: the RST that followed unanswered probes
//! (the prober gave up), the peer's RST, or silence after unanswered window probes
//! or retransmissions (Linux gives up on those without sending anything, so the
//! wire bounds the moment: after the last try, by the next timer firing).

use std::time::Duration;

use super::conn::Conn;
use super::infer::{Run, Settings, secs, t};
use crate::model::event::{Bound, Certainty, EndFacts, Outcome, Path};

#[allow(clippy::too_many_arguments)]
pub(super) fn rst_end(
    conn: &Conn,
    local: usize,
    side: usize,
    at: Duration,
    contact: Duration,
    probes: u32,
    retries: u32,
    settings: &mut Settings,
    runs: &[Run],
) -> EndFacts {
    let (la, pa) = (conn.addrs[local], conn.addrs[1 - local]);
    let detect = at.saturating_sub(contact);
    let mut e = if side == local && probes > 0 {
        let last = runs.last().map(|r| r.probes.len() as u32).unwrap_or(probes);
        settings.cnt = Some((
            last,
            true,
            format!(
                "{last} unanswered probe(s), then {la}'s RST {} after the last contact: \
                 a TCP_USER_TIMEOUT between {} and {} would end it the same way, the wire \
                 cannot tell the two apart",
                t(detect),
                t(runs
                    .last()
                    .and_then(|r| r.probes.last())
                    .map(|p| p.0.saturating_sub(contact))
                    .unwrap_or_default()),
                t(detect)
            ),
        ));
        let mut e = EndFacts::new(
            Outcome::Timeout,
            Some("ETIMEDOUT".into()),
            format!(
                "{la} gave up after {probes} unanswered keepalive probe(s) and reset the connection"
            ),
            Some(secs(detect)),
            None,
        );
        e.bound = Some(Bound::KeepaliveCount);
        e.path = Some(Path::Idle);
        e
    } else if side == local && retries > 0 {
        let mut e = EndFacts::new(
            Outcome::Timeout,
            Some("ETIMEDOUT".into()),
            format!(
                "{la} gave up after {retries} unanswered retransmission(s) or window probe(s) and reset the connection"
            ),
            Some(secs(detect)),
            None,
        );
        e.path = Some(Path::Busy);
        e
    } else if side == local {
        EndFacts::new(
            Outcome::Reset,
            None,
            format!(
                "{la} reset the connection itself (its application aborted): no dead peer was detected"
            ),
            None,
            None,
        )
    } else {
        let answer = if probes > 0 {
            format!(
                " in answer to keepalive probe {probes}: the peer no longer knows the connection (rebooted?)"
            )
        } else {
            String::new()
        };
        let mut e = EndFacts::new(
            Outcome::Reset,
            Some("ECONNRESET".into()),
            format!("{pa} reset the connection{answer}"),
            Some(secs(detect)),
            None,
        );
        if probes > 0 {
            e.path = Some(Path::Idle);
        }
        e
    };
    e.inferred = Some(true);
    e.evidence = Some(format!(
        "RST from {}, {} after the last contact",
        if side == local { la } else { pa },
        t(detect)
    ));
    e
}

#[allow(clippy::too_many_arguments)]
pub(super) fn silent_end(
    conn: &Conn,
    local: usize,
    contact: Duration,
    probes: u32,
    last_retry: Option<Duration>,
    retry_gap: Option<Duration>,
    retries: u32,
    retrans: u32,
    settings: &mut Settings,
    capture_end: Duration,
) -> (Duration, EndFacts) {
    let la = conn.addrs[local];
    if probes > 0 {
        settings.cnt = Some((
            probes,
            false,
            format!(
                "{probes} unanswered probe(s) and no RST before the capture ends, {} after \
                 the last contact",
                t(capture_end.saturating_sub(contact))
            ),
        ));
    }
    if retries + retrans > 0 {
        // Linux gives up on retransmissions and window probes without sending
        // anything: at the timer firing after the last one, a backed-off gap later.
        let last = last_retry.unwrap_or(contact);
        let gap = retry_gap.unwrap_or_default();
        let gives_up = last + gap;
        let tries = if retries > 0 { retries } else { retrans };
        settings.retries = Some((
            tries,
            format!(
                "{tries} unanswered {} in a row, then silence: Linux's tcp_retries2 = {tries} \
                 (the default is 15), or a user timeout between {} and {} since the last contact",
                if retries > 0 {
                    "window probes"
                } else {
                    "retransmissions"
                },
                t(last.saturating_sub(contact)),
                t(gives_up.saturating_sub(contact))
            ),
        ));
        let mut e = EndFacts::new(
            Outcome::Timeout,
            Some("ETIMEDOUT".into()),
            format!(
                "{la} sent {} unanswered retransmission(s)/window probe(s) and nothing after: \
                 it gave up silently (as Linux does) between {} and {} after the last contact: \
                 at the next timer firing if a retry count (tcp_retries2) ended it, earlier if a \
                 user timeout did",
                retries + retrans,
                t(last.saturating_sub(contact)),
                t(gives_up.saturating_sub(contact))
            ),
            Some(secs(gives_up.saturating_sub(contact))),
            None,
        );
        e.certainty = Some(Certainty::Likely);
        e.inferred = Some(true);
        e.path = Some(if retries > 0 {
            Path::ZeroWindow
        } else {
            Path::Busy
        });
        e.evidence = Some(format!(
            "the last unanswered one {} after the last contact, gaps backing off to {}; the \
             capture ends {} after the last one{}",
            t(last.saturating_sub(contact)),
            t(gap),
            t(capture_end.saturating_sub(last)),
            if capture_end < gives_up {
                ": before that time, so if the capture stopped early the connection may have lived on"
            } else {
                ""
            }
        ));
        return (gives_up.max(last), e);
    }
    let mut e = EndFacts::new(
        Outcome::Alive,
        None,
        format!(
            "still open when the capture ends, {} after the last contact",
            t(capture_end.saturating_sub(contact))
        ),
        None,
        None,
    );
    e.inferred = Some(true);
    e.evidence = Some(if probes > 0 {
        format!(
            "{probes} unanswered keepalive probe(s) at the end: the capture stops before the prober's verdict"
        )
    } else {
        "no RST or FIN in the capture".into()
    });
    (capture_end.max(conn.last), e)
}
