//! Middlebox presets for `plan --path NAME`: the idle timeouts vendors publish for
//! their load balancers and NATs (and the kernel's own conntrack), what happens to
//! a flow at expiry, and where each figure comes from.
//!
//! Each figure was checked against the vendor's own text; where that text does not
//! say something (most often what the box does at expiry), the preset says so in
//! its note instead of guessing, and its drop mode is `None`. A preset is a
//! default: the box may be configured otherwise (the range is given where the
//! vendor states one), so `idle-limit` measures the real path.
//!
//! Several presets (and `--idle-limit`) combine into one [`PathLimit`]: the path
//! forgets a flow at the first of its boxes to time out, so the shortest wins.

use std::time::Duration;

/// What a box does to a flow whose idle timeout expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathDrop {
    /// The flow is forgotten; the next packet vanishes (only a timeout tells).
    Silent,
    /// The flow is forgotten; the next packet is answered with a TCP reset.
    Reset,
    /// The box closes both sides itself (a proxy ending its two connections).
    Close,
}

impl PathDrop {
    /// The names `idle-limit`'s end uses (`silent`, `reset`), plus `close`.
    pub fn name(self) -> &'static str {
        match self {
            PathDrop::Silent => "silent",
            PathDrop::Reset => "reset",
            PathDrop::Close => "close",
        }
    }
}

/// One middlebox's published idle timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathPreset {
    /// The `--path` name.
    pub name: &'static str,
    pub title: &'static str,
    /// The default idle timeout.
    pub idle_limit: Duration,
    /// The configurable range, as the vendor states it.
    pub range: Option<&'static str>,
    /// At expiry; `None` when the source does not say.
    pub drop_mode: Option<PathDrop>,
    /// The document the figures come from.
    pub source: &'static str,
    /// What the figure means, and what the source does not confirm.
    pub note: &'static str,
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The presets, shortest timeout first.
pub const PRESETS: &[PathPreset] = &[
    PathPreset {
        name: "aws-alb",
        title: "AWS Application Load Balancer",
        idle_limit: secs(60),
        range: None,
        drop_mode: Some(PathDrop::Close),
        source: "AWS ELB User Guide for Application Load Balancers, \"Edit load balancer \
                 attributes: Connection idle timeout\" (\"By default, ELB sets the idle timeout \
                 value for your load balancer to 60 seconds\")",
        note: "the load balancer closes the idle connection (client and target sides are \
               separate TCP connections); HTTP/2 PING frames do not reset the timer; whether \
               TCP keepalive probes do is not stated (send application data)",
    },
    PathPreset {
        name: "azure-lb",
        title: "Azure Load Balancer",
        idle_limit: secs(4 * 60),
        range: Some("4-100 min"),
        drop_mode: Some(PathDrop::Silent),
        source: "Microsoft Learn, \"Load Balancer TCP Reset and Idle Timeout\" and \"Configure \
                 TCP reset and idle timeout for Azure Load Balancer\" (default 4 minutes; \"the \
                 default behavior is to silently drop flows when the idle timeout of a flow is \
                 reached\")",
        note: "silent by default; with \"TCP reset on idle\" enabled on the rule it sends \
               resets to both ends instead",
    },
    PathPreset {
        name: "azure-nat-gateway",
        title: "Azure NAT gateway",
        idle_limit: secs(4 * 60),
        range: Some("4-120 min"),
        drop_mode: None,
        source: "Microsoft Learn, NAT gateway idleTimeoutInMinutes (\"Allowed values are in the \
                 range of 4 to 120 (inclusive). The default value is 4 minutes\")",
        note: "what the gateway does to a packet of an expired flow is not stated there",
    },
    PathPreset {
        name: "aws-nlb",
        title: "AWS Network Load Balancer (TCP listener)",
        idle_limit: secs(350),
        range: Some("60-6000 s"),
        drop_mode: None,
        source: "AWS ELB User Guide for Network Load Balancers, \"Update the TCP idle timeout \
                 for your Network Load Balancer listener\" (\"The default idle timeout value for \
                 TCP flows is 350 seconds\"; TLS listeners: 350 s, fixed)",
        note: "the page says only that \"the connection is closed\"; a reset on the next send \
               is widely reported but not confirmed by that text. The targets' own EC2 \
               connection tracking (TcpEstablishedTimeout, 350 s on Nitro v6) must not be \
               shorter",
    },
    PathPreset {
        name: "aws-nat-gateway",
        title: "AWS NAT gateway",
        idle_limit: secs(350),
        range: None,
        drop_mode: None,
        source: "AWS VPC User Guide, NAT gateways (idle timeout; CloudWatch metric \
                 IdleTimeoutCount)",
        note: "unconfirmed: the 350 s figure and the reset sent to the inside host when it \
               sends after expiry could not be checked against AWS's own text (only the \
               IdleTimeoutCount metric for connections dropped when idle was found there); \
               measure it with `idle-limit`",
    },
    PathPreset {
        name: "docker-swarm",
        title: "Docker Swarm service VIP (IPVS)",
        idle_limit: secs(900),
        range: None,
        drop_mode: Some(PathDrop::Silent),
        source: "moby/moby issues 31208 and 37466, docker/docs issue 5519 (`ipvsadm -l \
                 --timeout`: tcp 900 s)",
        note: "after the IPVS entry expires, a connection to a task on another host hangs \
               (silent); to a task on the same host it gets a reset. Connections by task \
               address (dnsrr) do not go through IPVS",
    },
    PathPreset {
        name: "gcp-cloud-nat",
        title: "Google Cloud NAT",
        idle_limit: secs(1200),
        range: None,
        drop_mode: None,
        source: "Compute Engine API, RouterNat.tcpEstablishedIdleTimeoutSec (\"Defaults to 1200s \
                 if not set\")",
        note: "what happens to a packet of an expired mapping is not stated there",
    },
    PathPreset {
        name: "rfc5382",
        title: "RFC 5382 REQ-5 (the shortest a conforming NAT may use)",
        idle_limit: RFC5382_FLOOR,
        range: None,
        drop_mode: None,
        source: "RFC 5382 (BCP 142), NAT Behavioral Requirements for TCP, section 5, REQ-5",
        note: "a floor, not a timeout: a NAT that may abandon idle flows must keep an \
               established one at least 2 h 4 min (the 2 h keepalive default plus margin), so \
               Linux's default keepalive (7200 s) only just beats it; the REQ-5 text itself \
               was not found in the documents searched, the figure is the one commonly quoted \
               from it",
    },
    PathPreset {
        name: "kube-proxy",
        title: "Kubernetes node (kube-proxy conntrack)",
        idle_limit: secs(24 * 3600),
        range: None,
        drop_mode: None,
        source: "kube-proxy reference, --conntrack-tcp-timeout-established (\"Idle timeout for \
                 established TCP connections (0 to leave as-is)\", default 24h0m0s)",
        note: "kube-proxy sets the node's nf_conntrack_tcp_timeout_established; when the entry \
               is removed what the next packet meets depends on the node's rules (see \
               linux-conntrack)",
    },
    PathPreset {
        name: "linux-conntrack",
        title: "Linux conntrack (hosts, Docker bridge NAT)",
        idle_limit: secs(432_000),
        range: None,
        drop_mode: None,
        source: "Linux Documentation/networking/nf_conntrack-sysctl.rst, \
                 nf_conntrack_tcp_timeout_established (default 432000, 5 days; Linux 6.18 here \
                 reads 432000)",
        note: "the entry is removed; with nf_conntrack_tcp_loose=1 (the default) the next \
               packet is picked up as a new flow, behind NAT possibly with another mapping; \
               with loose=0 and a `ct state invalid drop` rule it vanishes (silent). `watch` \
               shows this host's own entries",
    },
];

/// The preset called `name`.
pub fn preset(name: &str) -> Option<&'static PathPreset> {
    PRESETS.iter().find(|p| p.name == name)
}

pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

/// The path's idle limit: the shortest of `--idle-limit` and the presets given.
#[derive(Debug, Clone, PartialEq)]
pub struct PathLimit {
    pub limit: Duration,
    /// The limiting box's drop mode; `None` when unknown (given by `--idle-limit`,
    /// or its source does not say).
    pub drop_mode: Option<PathDrop>,
    /// The limiting preset; `None` when `--idle-limit` is the shortest.
    pub by: Option<&'static PathPreset>,
    /// Every preset given, in order (each one's source is printed).
    pub presets: Vec<&'static PathPreset>,
}

impl PathLimit {
    /// "350s (aws-nlb)" or "30s".
    pub fn label(&self) -> String {
        let t = crate::model::units::secs_text(self.limit);
        match self.by {
            Some(p) => format!("{t} ({})", p.name),
            None => t,
        }
    }
}

/// Combines `--idle-limit` and the presets: the shortest wins (a tie goes to
/// `--idle-limit`, which describes this path rather than a vendor default).
pub fn combine(idle_limit: Option<Duration>, presets: &[&'static PathPreset]) -> Option<PathLimit> {
    let shortest = presets.iter().min_by_key(|p| p.idle_limit).copied();
    let (limit, by) = match (idle_limit, shortest) {
        (Some(l), Some(p)) if p.idle_limit < l => (p.idle_limit, Some(p)),
        (Some(l), _) => (l, None),
        (None, Some(p)) => (p.idle_limit, Some(p)),
        (None, None) => return None,
    };
    Some(PathLimit {
        limit,
        drop_mode: by.and_then(|p| p.drop_mode),
        by,
        presets: presets.to_vec(),
    })
}

/// How a measured idle limit compares with the presets and RFC 5382.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// The presets whose default lies within the measurement's bracket.
    pub matches: Vec<&'static PathPreset>,
    /// The limit is shorter than RFC 5382 REQ-5 allows a NAT.
    pub below_rfc5382: bool,
}

impl Comparison {
    /// "matches azure-lb's 4 min (Azure Load Balancer); below RFC 5382's floor of
    /// 2 h 4 min for established flows", or `None` when there is nothing to say.
    pub fn text(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.matches.is_empty() {
            let names = self
                .matches
                .iter()
                .map(|p| format!("{}'s {} ({})", p.name, minutes_text(p.idle_limit), p.title))
                .collect::<Vec<_>>()
                .join(", ");
            parts.push(format!("matches {names}"));
        }
        if self.below_rfc5382 {
            parts.push(format!(
                "below RFC 5382's floor of {} for established flows",
                minutes_text(RFC5382_FLOOR)
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// RFC 5382 REQ-5: the shortest established-flow idle timeout a NAT may use.
pub const RFC5382_FLOOR: Duration = secs(2 * 3600 + 4 * 60);

/// Compares a measured idle limit with the presets and RFC 5382, for
/// `idle-limit`'s end. `resolution` is the measurement's half-width; a preset
/// matches when its figure lies within it (widened to 2 % of the limit, for the
/// boxes' timer granularity). Below the floor only when the whole bracket is.
pub fn compare_measured(limit: Duration, resolution: Duration) -> Comparison {
    let tol = resolution.max(limit.mul_f64(0.02));
    let lo = limit.saturating_sub(tol);
    let hi = limit.saturating_add(tol);
    Comparison {
        matches: PRESETS
            .iter()
            .filter(|p| p.name != "rfc5382" && p.idle_limit >= lo && p.idle_limit <= hi)
            .collect(),
        below_rfc5382: limit.saturating_add(resolution) < RFC5382_FLOOR,
    }
}

/// "4 min", "5 min 50 s", "2 h 4 min", "5 days": how vendors write them.
pub fn minutes_text(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) && s >= 2 * 86_400 {
        return format!("{} days", s / 86_400);
    }
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h} h"));
    }
    if m > 0 {
        parts.push(format!("{m} min"));
    }
    if sec > 0 || parts.is_empty() {
        parts.push(format!("{sec} s"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_issue_figure() {
        let rows: &[(&str, u64, Option<PathDrop>)] = &[
            ("aws-nlb", 350, None),
            ("aws-alb", 60, Some(PathDrop::Close)),
            ("aws-nat-gateway", 350, None),
            ("gcp-cloud-nat", 1200, None),
            ("azure-lb", 240, Some(PathDrop::Silent)),
            ("azure-nat-gateway", 240, None),
            ("linux-conntrack", 432_000, None),
            ("kube-proxy", 86_400, None),
            ("docker-swarm", 900, Some(PathDrop::Silent)),
            ("rfc5382", 7440, None),
        ];
        assert_eq!(rows.len(), PRESETS.len());
        for (name, s, mode) in rows {
            let p = preset(name).expect(name);
            assert_eq!(p.idle_limit, secs(*s), "{name}");
            assert_eq!(p.drop_mode, *mode, "{name}");
            assert!(!p.source.is_empty() && !p.note.is_empty(), "{name}");
        }
        // Sorted, so `plan --path list` reads shortest first.
        assert!(
            PRESETS
                .windows(2)
                .all(|w| w[0].idle_limit <= w[1].idle_limit)
        );
        assert_eq!(preset("list"), None);
    }

    #[test]
    fn shortest_wins() {
        let nlb = preset("aws-nlb").unwrap();
        let azure = preset("azure-lb").unwrap();
        let ct = preset("linux-conntrack").unwrap();
        let c = combine(None, &[ct, nlb, azure]).unwrap();
        assert_eq!((c.limit, c.by), (secs(240), Some(azure)));
        assert_eq!(c.drop_mode, Some(PathDrop::Silent));
        assert_eq!(c.presets, vec![ct, nlb, azure]);
        assert_eq!(c.label(), "240s (azure-lb)");
        // --idle-limit shorter: it wins, and its drop mode is unknown.
        let c = combine(Some(secs(30)), &[nlb]).unwrap();
        assert_eq!((c.limit, c.by, c.drop_mode), (secs(30), None, None));
        assert_eq!(c.label(), "30s");
        // A tie goes to --idle-limit.
        let c = combine(Some(secs(350)), &[nlb]).unwrap();
        assert_eq!(c.by, None);
        let c = combine(Some(secs(400)), &[nlb]).unwrap();
        assert_eq!(c.by, Some(nlb));
        assert_eq!(combine(None, &[]), None);
    }

    #[test]
    fn measured_against_presets() {
        let r = |l: f64, res: f64| {
            compare_measured(Duration::from_secs_f64(l), Duration::from_secs_f64(res))
                .text()
                .unwrap_or_default()
        };
        let floor = "below RFC 5382's floor of 2 h 4 min for established flows";
        assert_eq!(
            r(241.0, 2.0),
            format!(
                "matches azure-lb's 4 min (Azure Load Balancer), azure-nat-gateway's 4 min \
                 (Azure NAT gateway); {floor}"
            )
        );
        let c = compare_measured(secs(349), Duration::from_millis(500));
        assert_eq!(
            c.matches.iter().map(|p| p.name).collect::<Vec<_>>(),
            ["aws-nlb", "aws-nat-gateway"]
        );
        assert!(c.below_rfc5382);
        assert_eq!(r(12.0, 0.5), floor);
        // At the floor: no preset but rfc5382 itself, which is not a box.
        assert_eq!(r(7440.0, 10.0), "");
        // 2 % of 900 s covers a coarse measurement of docker-swarm.
        assert_eq!(
            r(885.0, 1.0),
            format!("matches docker-swarm's 15 min (Docker Swarm service VIP (IPVS)); {floor}")
        );
        assert_eq!(r(600.0, 1.0), floor);
    }

    #[test]
    fn vendor_style_durations() {
        for (s, want) in [
            (60, "1 min"),
            (350, "5 min 50 s"),
            (7440, "2 h 4 min"),
            (86_400, "24 h"),
            (432_000, "5 days"),
            (0, "0 s"),
        ] {
            assert_eq!(minutes_text(secs(s)), want);
        }
    }
}
