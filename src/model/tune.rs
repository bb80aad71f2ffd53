//! `tune`: what changing a running socket's keepalive settings means, without any
//! I/O. [`target`] is the settings a request leaves on a socket that held
//! `before`; [`steps`] is the order the options are set in, so a failure part-way
//! can be undone with [`Step::value`] of `before`. [`KeepaliveRequest`] is what a
//! command asks for (`connect` and `listen` too: [`requested`] is what they set).

use std::time::Duration;

use crate::model::predict::Effective;

/// The keepalive options a command asks for (validated by `config`, which calls
/// it `KeepaliveConfig`). `None` leaves the value the socket holds in place.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeepaliveRequest {
    /// SO_KEEPALIVE on (off with `--no-keepalive`).
    pub enabled: bool,
    pub idle_s: Option<u32>,
    pub intvl_s: Option<u32>,
    pub cnt: Option<u32>,
    pub user_timeout: Option<Duration>,
}

/// One socket option `tune` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    UserTimeout,
    Cnt,
    Intvl,
    Idle,
    /// SO_KEEPALIVE goes last: switching it on arms the keepalive timer with the
    /// idle time already set, so the first probe follows the new settings.
    Keepalive,
}

impl Step {
    pub fn option(self) -> &'static str {
        match self {
            Step::UserTimeout => "TCP_USER_TIMEOUT",
            Step::Cnt => "TCP_KEEPCNT",
            Step::Intvl => "TCP_KEEPINTVL",
            Step::Idle => "TCP_KEEPIDLE",
            Step::Keepalive => "SO_KEEPALIVE",
        }
    }

    /// The value this option has in `settings` (seconds, a count, milliseconds,
    /// or 0/1 for SO_KEEPALIVE).
    pub fn value(self, settings: &Effective) -> u32 {
        match self {
            Step::UserTimeout => settings.user_timeout_ms,
            Step::Cnt => settings.cnt,
            Step::Intvl => settings.intvl_s,
            Step::Idle => settings.idle_s,
            Step::Keepalive => u32::from(settings.keepalive),
        }
    }
}

const ORDER: [Step; 5] = [
    Step::UserTimeout,
    Step::Cnt,
    Step::Intvl,
    Step::Idle,
    Step::Keepalive,
];

/// The settings a socket holds after the request: SO_KEEPALIVE on (off with
/// `--no-keepalive`), each value given replaced, the others as they were.
pub fn target(before: &Effective, req: &KeepaliveRequest) -> Effective {
    Effective {
        keepalive: req.enabled,
        idle_s: req.idle_s.unwrap_or(before.idle_s),
        intvl_s: req.intvl_s.unwrap_or(before.intvl_s),
        cnt: req.cnt.unwrap_or(before.cnt),
        user_timeout_ms: req.user_timeout.map_or(before.user_timeout_ms, |d| {
            u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
        }),
    }
}

/// The options a request sets on a socket of our own, in order, with their values:
/// SO_KEEPALIVE always (on, or off with `--no-keepalive`), the others when given.
pub fn requested(req: &KeepaliveRequest) -> Vec<(Step, u32)> {
    let uto = req
        .user_timeout
        .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX));
    [
        (Step::UserTimeout, uto),
        (Step::Cnt, req.cnt),
        (Step::Intvl, req.intvl_s),
        (Step::Idle, req.idle_s),
        (Step::Keepalive, Some(u32::from(req.enabled))),
    ]
    .into_iter()
    .filter_map(|(step, value)| value.map(|v| (step, v)))
    .collect()
}

/// The options to set, in order: only those whose value changes.
pub fn steps(before: &Effective, after: &Effective) -> Vec<Step> {
    ORDER
        .into_iter()
        .filter(|s| s.value(before) != s.value(after))
        .collect()
}

/// What a change means beyond the settings, for the operator: SO_KEEPALIVE
/// switched on by a request that named no keepalive value (tune turns it on unless
/// `--no-keepalive`), and, on a connection with data in flight, that keepalive does
/// not run there (the kernel's keepalive timer skips a socket with unacknowledged
/// or unsent data) so the retransmissions, or a user timeout, decide.
pub fn notes(
    before: &Effective,
    after: &Effective,
    req: &KeepaliveRequest,
    in_flight: bool,
    retries2: u32,
) -> Vec<String> {
    let mut out = Vec::new();
    let names_keepalive = req.idle_s.is_some() || req.intvl_s.is_some() || req.cnt.is_some();
    if !before.keepalive && after.keepalive && !names_keepalive {
        out.push(format!(
            "SO_KEEPALIVE is switched on too (tune turns it on unless --no-keepalive): an idle \
             connection is now probed after {}s, every {}s, {} times",
            after.idle_s, after.intvl_s, after.cnt
        ));
    }
    if in_flight {
        let by = if after.user_timeout_ms != 0 {
            format!(
                "the user timeout ({}ms) ends it if the peer is gone",
                after.user_timeout_ms
            )
        } else {
            format!(
                "only the retransmissions end it ({:.1}s after the first, tcp_retries2 \
                 {retries2}); --user-timeout D bounds that",
                after.busy_detect_after(retries2).as_secs_f64()
            )
        };
        out.push(format!(
            "data is in flight on this connection: keepalive is suspended while it is; {by}"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eff(keepalive: bool, idle: u32, intvl: u32, cnt: u32, uto: u32) -> Effective {
        Effective {
            keepalive,
            idle_s: idle,
            intvl_s: intvl,
            cnt,
            user_timeout_ms: uto,
        }
    }

    fn req(enabled: bool, idle: Option<u32>, uto_ms: Option<u64>) -> KeepaliveRequest {
        KeepaliveRequest {
            enabled,
            idle_s: idle,
            intvl_s: None,
            cnt: None,
            user_timeout: uto_ms.map(Duration::from_millis),
        }
    }

    #[test]
    fn target_and_steps() {
        let off = eff(false, 7200, 75, 9, 0);
        let table = [
            // Turning keepalive on with a new idle: idle first, SO_KEEPALIVE last.
            (
                off,
                req(true, Some(2), None),
                eff(true, 2, 75, 9, 0),
                vec![Step::Idle, Step::Keepalive],
            ),
            // Only a user timeout: keepalive is switched on too (tune always sets it).
            (
                off,
                req(true, None, Some(5000)),
                eff(true, 7200, 75, 9, 5000),
                vec![Step::UserTimeout, Step::Keepalive],
            ),
            // Already as asked: nothing to do.
            (
                eff(true, 2, 75, 9, 0),
                req(true, Some(2), None),
                eff(true, 2, 75, 9, 0),
                vec![],
            ),
            // --no-keepalive on a socket that has it.
            (
                eff(true, 2, 1, 2, 0),
                req(false, None, None),
                eff(false, 2, 1, 2, 0),
                vec![Step::Keepalive],
            ),
        ];
        for (before, r, after, want) in table {
            let got = target(&before, &r);
            assert_eq!(got, after, "{r:?}");
            assert_eq!(steps(&before, &got), want, "{r:?}");
        }
    }

    #[test]
    fn a_request_sets_what_it_names_and_keepalive_always() {
        assert_eq!(
            requested(&req(true, Some(2), Some(1500))),
            vec![
                (Step::UserTimeout, 1500),
                (Step::Idle, 2),
                (Step::Keepalive, 1)
            ]
        );
        assert_eq!(
            requested(&req(false, None, None)),
            vec![(Step::Keepalive, 0)]
        );
    }

    #[test]
    fn values_undo_each_step() {
        let before = eff(false, 7200, 75, 9, 0);
        let after = eff(true, 2, 1, 2, 4000);
        for s in steps(&before, &after) {
            assert_ne!(s.value(&before), s.value(&after), "{}", s.option());
        }
        assert_eq!(steps(&before, &after).len(), 5);
    }

    #[test]
    fn notes_say_keepalive_goes_on_and_is_suspended_by_data_in_flight() {
        let off = eff(false, 7200, 75, 9, 0);
        // --user-timeout alone switches keepalive on: said.
        let r = req(true, None, Some(3000));
        let after = target(&off, &r);
        let n = notes(&off, &after, &r, false, 15);
        assert_eq!(n.len(), 1, "{n:?}");
        assert!(n[0].starts_with("SO_KEEPALIVE is switched on too"), "{n:?}");
        assert!(n[0].contains("after 7200s, every 75s, 9 times"), "{n:?}");
        // Asked by name (--idle): nothing to add.
        let r = req(true, Some(2), None);
        assert!(notes(&off, &target(&off, &r), &r, false, 15).is_empty());
        // Data in flight, no user timeout: suspended, the budget decides, suggest it.
        let n = notes(&off, &target(&off, &r), &r, true, 5);
        assert_eq!(n.len(), 1, "{n:?}");
        assert!(n[0].contains("keepalive is suspended"), "{n:?}");
        assert!(
            n[0].contains("12.6s after the first, tcp_retries2 5"),
            "{n:?}"
        );
        assert!(n[0].contains("--user-timeout"), "{n:?}");
        // With a user timeout it is what ends it.
        let r = req(true, None, Some(3000));
        let on = eff(true, 2, 1, 2, 0);
        let n = notes(&on, &target(&on, &r), &r, true, 15);
        assert_eq!(n.len(), 1, "{n:?}");
        assert!(n[0].contains("the user timeout (3000ms) ends it"), "{n:?}");
    }
}
