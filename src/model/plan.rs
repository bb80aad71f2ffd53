//! `plan`: what a dead peer costs on any platform and runtime, and which settings
//! bound it.
//!
//! This module owns the facts table (each stack's keepalive defaults, which knobs it
//! can set, where each fact comes from), the evaluation of effective settings into
//! an idle-path and a busy-path prediction, and the recommender behind
//! `--detect-within`. It is pure: no I/O, no clock, no host sysctl. The Linux idle
//! path is the very model `connect` and `listen` use ([`Effective::idle_schedule`]),
//! so `plan --platform linux` and a real run cannot disagree.

pub mod snippets;

use std::time::Duration;

use crate::model::predict::{Effective, retransmission_budget};

pub use crate::model::units::secs_text;

/// An operating system whose TCP stack `plan` models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Linux,
    Macos,
    Freebsd,
    Windows,
}

impl Platform {
    pub const ALL: [Platform; 4] = [
        Platform::Linux,
        Platform::Macos,
        Platform::Freebsd,
        Platform::Windows,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Linux => "linux",
            Platform::Macos => "macos",
            Platform::Freebsd => "freebsd",
            Platform::Windows => "windows",
        }
    }

    pub fn from_name(name: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The name for people.
    pub fn title(self) -> &'static str {
        match self {
            Platform::Linux => "Linux",
            Platform::Macos => "macOS",
            Platform::Freebsd => "FreeBSD",
            Platform::Windows => "Windows",
        }
    }

    pub fn facts(self) -> &'static PlatformFacts {
        match self {
            Platform::Linux => &LINUX,
            Platform::Macos => &MACOS,
            Platform::Freebsd => &FREEBSD,
            Platform::Windows => &WINDOWS,
        }
    }
}

/// A language runtime or tool that layers its own keepalive defaults over the OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Node,
    Go,
    Java,
    Dotnet,
    Python,
    Curl,
}

impl Runtime {
    pub const ALL: [Runtime; 6] = [
        Runtime::Node,
        Runtime::Go,
        Runtime::Java,
        Runtime::Dotnet,
        Runtime::Python,
        Runtime::Curl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Runtime::Node => "node",
            Runtime::Go => "go",
            Runtime::Java => "java",
            Runtime::Dotnet => "dotnet",
            Runtime::Python => "python",
            Runtime::Curl => "curl",
        }
    }

    pub fn from_name(name: &str) -> Option<Runtime> {
        Runtime::ALL.into_iter().find(|r| r.name() == name)
    }

    pub fn facts(self) -> &'static RuntimeFacts {
        match self {
            Runtime::Node => &NODE,
            Runtime::Go => &GO,
            Runtime::Java => &JAVA,
            Runtime::Dotnet => &DOTNET,
            Runtime::Python => &PYTHON,
            Runtime::Curl => &CURL,
        }
    }
}

/// A platform and, optionally, the runtime the application is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stack {
    pub platform: Platform,
    pub runtime: Option<Runtime>,
}

impl Stack {
    pub fn title(&self) -> String {
        match self.runtime {
            Some(r) => format!("{} on {}", r.facts().title, self.platform.title()),
            None => self.platform.title().to_string(),
        }
    }
}

/// How the busy path (data in flight, peer silent) ends when no user timeout is set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Retransmission {
    /// Linux: gives up at the first retransmission-timer firing at least
    /// `tcp_model_timeout(retries2, TCP_RTO_MIN)` after the first unacknowledged send.
    LinuxRetries2 { retries2: u32 },
    /// BSD-derived and Windows stacks: give up after a fixed number of
    /// retransmissions, the timeout doubling each time up to `rto_max`.
    Count { retransmissions: u32 },
}

/// A stack's user-timeout knob (Linux TCP_USER_TIMEOUT and its cousins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserTimeoutKnob {
    pub option: &'static str,
    /// Whole seconds (macOS, Windows) rather than milliseconds (Linux).
    pub seconds: bool,
}

/// One platform's row of the facts table. Every figure cites its source in
/// `source` (README "plan" lists them all).
#[derive(Debug)]
pub struct PlatformFacts {
    pub platform: Platform,
    pub keepalive_default: bool,
    pub idle_s: u32,
    pub intvl_s: u32,
    pub cnt: u32,
    pub idle_option: &'static str,
    pub intvl_option: &'static str,
    pub cnt_option: &'static str,
    /// Where the count can be changed, and since when.
    pub cnt_note: &'static str,
    pub user_timeout: Option<UserTimeoutKnob>,
    pub retransmission: Retransmission,
    /// Bounds assumed for the retransmission timeout when the RTT is unknown.
    pub rto_min: Duration,
    pub rto_max: Duration,
    /// The largest backoff multiplier (BSD's tcp_backoff[] stops at 64).
    pub backoff_max: u32,
    pub source: &'static str,
}

pub static LINUX: PlatformFacts = PlatformFacts {
    platform: Platform::Linux,
    keepalive_default: false,
    idle_s: 7200,
    intvl_s: 75,
    cnt: 9,
    idle_option: "TCP_KEEPIDLE",
    intvl_option: "TCP_KEEPINTVL",
    cnt_option: "TCP_KEEPCNT",
    cnt_note: "",
    user_timeout: Some(UserTimeoutKnob {
        option: "TCP_USER_TIMEOUT",
        seconds: false,
    }),
    retransmission: Retransmission::LinuxRetries2 { retries2: 15 },
    rto_min: Duration::from_millis(200),
    rto_max: Duration::from_secs(120),
    backoff_max: u32::MAX,
    source: "tcp(7): net.ipv4.tcp_keepalive_time/_intvl/_probes (per network namespace), \
             TCP_USER_TIMEOUT; ip-sysctl.rst: tcp_retries2 = 15",
};

pub static MACOS: PlatformFacts = PlatformFacts {
    platform: Platform::Macos,
    keepalive_default: false,
    idle_s: 7200,
    intvl_s: 75,
    cnt: 8,
    idle_option: "TCP_KEEPALIVE",
    intvl_option: "TCP_KEEPINTVL",
    cnt_option: "TCP_KEEPCNT",
    cnt_note: "TCP_KEEPINTVL and TCP_KEEPCNT since OS X 10.8",
    user_timeout: Some(UserTimeoutKnob {
        option: "TCP_RXT_CONNDROPTIME",
        seconds: true,
    }),
    retransmission: Retransmission::Count {
        retransmissions: 12,
    },
    rto_min: Duration::from_millis(200),
    rto_max: Duration::from_secs(64),
    backoff_max: 64,
    source: "xnu bsd/netinet/tcp.h, tcp_timer.h (TCPTV_KEEP_IDLE 2 h, TCPTV_KEEPINTVL 75 s, \
             TCPTV_KEEPCNT 8, TCP_MAXRXTSHIFT 12, TCPTV_REXMTMAX 64 s)",
};

pub static FREEBSD: PlatformFacts = PlatformFacts {
    platform: Platform::Freebsd,
    keepalive_default: true,
    idle_s: 7200,
    intvl_s: 75,
    cnt: 8,
    idle_option: "TCP_KEEPIDLE",
    intvl_option: "TCP_KEEPINTVL",
    cnt_option: "TCP_KEEPCNT",
    cnt_note: "",
    user_timeout: None,
    retransmission: Retransmission::Count {
        retransmissions: 12,
    },
    rto_min: Duration::from_millis(230),
    rto_max: Duration::from_secs(64),
    backoff_max: 64,
    source: "tcp(4): net.inet.tcp.always_keepalive=1, keepidle, keepintvl, keepcnt; \
             sys/netinet/tcp_timer.h (TCPTV_KEEPCNT 8, TCP_MAXRXTSHIFT 12, TCPTV_REXMTMAX 64 s, \
             rexmit_min 30 ms + rexmit_slop 200 ms)",
};

pub static WINDOWS: PlatformFacts = PlatformFacts {
    platform: Platform::Windows,
    keepalive_default: false,
    idle_s: 7200,
    intvl_s: 1,
    cnt: 10,
    idle_option: "SIO_KEEPALIVE_VALS keepalivetime (TCP_KEEPIDLE since Windows 10 1709)",
    intvl_option: "SIO_KEEPALIVE_VALS keepaliveinterval (TCP_KEEPINTVL since Windows 10 1709)",
    cnt_option: "TCP_KEEPCNT (Windows 10 1703+)",
    cnt_note: "fixed at 10 with SIO_KEEPALIVE_VALS (Vista and later); TCP_KEEPCNT needs \
               Windows 10 1703+",
    user_timeout: Some(UserTimeoutKnob {
        option: "TCP_MAXRT",
        seconds: true,
    }),
    retransmission: Retransmission::Count { retransmissions: 5 },
    rto_min: Duration::from_millis(300),
    rto_max: Duration::from_secs(60),
    backoff_max: u32::MAX,
    source: "MSDN: SIO_KEEPALIVE_VALS (2 h idle, 1 s interval, 10 probes fixed since Vista), \
             IPPROTO_TCP socket options (TCP_KEEPCNT 1703, TCP_KEEPIDLE/TCP_KEEPINTVL 1709, \
             TCP_MAXRT), TcpMaxDataRetransmissions default 5",
};

/// What a runtime does with one keepalive value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeValue {
    /// Leaves the OS default; the application can set it.
    Os,
    /// The runtime's own default; the application can change it.
    Default(u32),
    /// The runtime sets this value and offers no way to change it.
    Fixed(u32),
    /// One option sets idle and interval together (curl's --keepalive-time).
    SameAsIdle,
}

/// How an application on this runtime bounds the busy path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeUserTimeout {
    /// Through the runtime's own socket-option call.
    Api,
    /// Only through a raw setsockopt the runtime lets through (named in `how`).
    Raw(&'static str),
    /// Not at all.
    None,
}

#[derive(Debug)]
pub struct RuntimeFacts {
    pub title: &'static str,
    pub keepalive_default: bool,
    /// How the application turns keepalive on (or off, when it is on by default).
    pub enable: &'static str,
    pub idle: RuntimeValue,
    pub intvl: RuntimeValue,
    pub cnt: RuntimeValue,
    pub user_timeout: RuntimeUserTimeout,
    pub note: &'static str,
    pub source: &'static str,
}

pub static NODE: RuntimeFacts = RuntimeFacts {
    title: "Node.js",
    keepalive_default: false,
    enable: "socket.setKeepAlive(true, idleMs)",
    idle: RuntimeValue::Os,
    intvl: RuntimeValue::Fixed(1),
    cnt: RuntimeValue::Fixed(10),
    user_timeout: RuntimeUserTimeout::None,
    note: "setKeepAlive(true, d) sets TCP_KEEPIDLE d (whole seconds) and, since v12.17/v13.12 \
           (libuv 1.35), TCP_KEEPINTVL 1 s and TCP_KEEPCNT 10; setKeepAlive(true) without a \
           delay leaves all three to the OS; interval and count arguments exist only in \
           releases with nodejs/node#63825 (2026)",
    source: "Node.js net docs, socket.setKeepAlive (v12.17.0+); nodejs/node#32204, #38313",
};

pub static GO: RuntimeFacts = RuntimeFacts {
    title: "Go",
    keepalive_default: true,
    enable: "net.Dialer / net.ListenConfig KeepAliveConfig (Go 1.23+)",
    idle: RuntimeValue::Default(15),
    intvl: RuntimeValue::Default(15),
    cnt: RuntimeValue::Default(9),
    user_timeout: RuntimeUserTimeout::Raw(
        "Dialer.Control + golang.org/x/sys/unix TCP_USER_TIMEOUT (Linux)",
    ),
    note: "dialed and accepted connections get keepalive by default; KeepAliveConfig zero \
           fields mean 15 s / 15 s / 9",
    source: "Go 1.23 net package docs: KeepAliveConfig, Dialer.KeepAlive",
};

pub static JAVA: RuntimeFacts = RuntimeFacts {
    title: "Java",
    keepalive_default: false,
    enable: "socket.setOption(StandardSocketOptions.SO_KEEPALIVE, true)",
    idle: RuntimeValue::Os,
    intvl: RuntimeValue::Os,
    cnt: RuntimeValue::Os,
    user_timeout: RuntimeUserTimeout::None,
    note: "jdk.net.ExtendedSocketOptions TCP_KEEPIDLE/TCP_KEEPINTERVAL/TCP_KEEPCOUNT since \
           JDK 11 (Linux, macOS; 8u261 backport), on Windows since JDK-8308593 (JDK 22)",
    source: "JDK 11 jdk.net.ExtendedSocketOptions (JDK-8194298); JDK-8308593",
};

pub static DOTNET: RuntimeFacts = RuntimeFacts {
    title: ".NET",
    keepalive_default: false,
    enable: "socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true)",
    idle: RuntimeValue::Os,
    intvl: RuntimeValue::Os,
    cnt: RuntimeValue::Os,
    user_timeout: RuntimeUserTimeout::Raw("Socket.SetRawSocketOption (.NET 5+, Linux)"),
    note: "SocketOptionName.TcpKeepAliveTime/TcpKeepAliveInterval (seconds) and \
           TcpKeepAliveRetryCount since .NET Core 3.0; on Windows also \
           IOControl(IOControlCode.KeepAliveValues) in milliseconds, count fixed at 10",
    source: ".NET API docs: SocketOptionName (.NET Core 3.0+), Socket.IOControl, \
             Socket.SetRawSocketOption",
};

pub static PYTHON: RuntimeFacts = RuntimeFacts {
    title: "Python",
    keepalive_default: false,
    enable: "sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)",
    idle: RuntimeValue::Os,
    intvl: RuntimeValue::Os,
    cnt: RuntimeValue::Os,
    user_timeout: RuntimeUserTimeout::Api,
    note: "socket.TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT; socket.TCP_USER_TIMEOUT (3.6+, \
           Linux); socket.TCP_KEEPALIVE (3.10+, macOS); sock.ioctl(SIO_KEEPALIVE_VALS) on \
           Windows",
    source: "Python 3 socket module docs",
};

pub static CURL: RuntimeFacts = RuntimeFacts {
    title: "curl",
    keepalive_default: true,
    enable: "on unless --no-keepalive",
    idle: RuntimeValue::Default(60),
    intvl: RuntimeValue::SameAsIdle,
    cnt: RuntimeValue::Default(9),
    user_timeout: RuntimeUserTimeout::None,
    note: "--keepalive-time T sets idle and interval to T (default 60 s); --keepalive-cnt \
           (CURLOPT_TCP_KEEPCNT, default 9) since 8.9.0, before that the OS count applies",
    source: "curl(1) --keepalive-time, --keepalive-cnt (8.9.0); libcurl CURLOPT_TCP_KEEPCNT",
};

/// Where one effective value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Given on the command line.
    User,
    /// Chosen by `--detect-within`.
    Recommended,
    /// The operating system's default.
    PlatformDefault,
    /// The runtime's default (the application can change it).
    RuntimeDefault,
    /// Set by the runtime, not changeable by the application.
    Fixed,
    /// The stack has no such knob.
    NotSettable,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::User => "user",
            Source::Recommended => "recommended",
            Source::PlatformDefault => "platform-default",
            Source::RuntimeDefault => "runtime-default",
            Source::Fixed => "fixed",
            Source::NotSettable => "not-settable",
        }
    }
}

/// One effective value with its provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knob {
    pub value: u32,
    pub source: Source,
    /// Which option or default this is, for people ("net.ipv4.tcp_keepalive_time").
    pub note: String,
}

/// What the user asked for; `None` leaves the stack's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanRequest {
    /// `--no-keepalive`: the application leaves keepalive off.
    pub no_keepalive: bool,
    pub idle_s: Option<u32>,
    pub intvl_s: Option<u32>,
    pub cnt: Option<u32>,
    pub user_timeout_ms: Option<u32>,
    /// `--idle-limit`: the path forgets an idle flow after this long.
    pub idle_limit: Option<Duration>,
    /// `--rtt`: narrows the busy-path range.
    pub rtt: Option<Duration>,
}

/// The busy path: data in flight, peer silent. From the first unacknowledged send.
#[derive(Debug, Clone, PartialEq)]
pub struct BusyPrediction {
    pub low: Duration,
    pub high: Duration,
    pub explain: String,
}

/// The evaluated plan: effective settings, predictions, and what to watch out for.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub stack: Stack,
    pub keepalive: bool,
    pub keepalive_note: String,
    pub idle: Knob,
    pub intvl: Knob,
    pub cnt: Knob,
    /// Milliseconds; 0 = off.
    pub user_timeout: Knob,
    /// From the last contact to the detection of a dead idle peer; `None` = never.
    pub predicted_detect: Option<Duration>,
    pub predicted_probes: Option<u32>,
    pub explain: String,
    pub busy: BusyPrediction,
    /// Knobs this stack cannot set, named.
    pub not_settable: Vec<String>,
    pub warnings: Vec<String>,
    pub idle_limit: Option<Duration>,
    pub rtt: Option<Duration>,
    /// `--detect-within`, when the settings were recommended.
    pub detect_within: Option<Duration>,
}

fn knob(value: u32, source: Source, note: impl Into<String>) -> Knob {
    Knob {
        value,
        source,
        note: note.into(),
    }
}

/// The effective value of idle, intvl or cnt: user, runtime, then platform.
fn resolve(
    given: Option<u32>,
    given_source: Source,
    runtime: Option<(RuntimeValue, &str)>,
    platform_default: u32,
    platform_note: &str,
    same_as_idle: Option<&Knob>,
) -> Knob {
    if let Some((RuntimeValue::Fixed(v), title)) = runtime
        && given.is_none()
    {
        return knob(v, Source::Fixed, format!("set by {title}, not settable"));
    }
    if let (Some((RuntimeValue::SameAsIdle, title)), Some(idle)) = (runtime, same_as_idle) {
        return knob(
            idle.value,
            idle.source,
            format!("{title} sets it with idle (one option)"),
        );
    }
    if let Some(v) = given {
        let note = match given_source {
            Source::Recommended => "recommended",
            _ => "given",
        };
        return knob(v, given_source, note);
    }
    match runtime {
        Some((RuntimeValue::Default(v), title)) => {
            knob(v, Source::RuntimeDefault, format!("{title} default"))
        }
        _ => knob(platform_default, Source::PlatformDefault, platform_note),
    }
}

/// Evaluates a request on a stack. `given_source` marks user-given values as such
/// (or as recommended, when the recommender calls this).
pub fn evaluate(stack: Stack, req: &PlanRequest, given_source: Source) -> Plan {
    let pf = stack.platform.facts();
    let rf = stack.runtime.map(Runtime::facts);
    // Node.js: libuv sets interval 1 s and count 10 only together with a delay;
    // setKeepAlive(true) alone leaves all three to the OS (tests/plan.rs, Node v20).
    let node_bare = stack.runtime == Some(Runtime::Node) && req.idle_s.is_none();
    let rt = |pick: fn(&RuntimeFacts) -> RuntimeValue| {
        rf.map(|f| match pick(f) {
            RuntimeValue::Fixed(_) if node_bare => (RuntimeValue::Os, f.title),
            v => (v, f.title),
        })
    };
    let os = stack.platform.title();

    let idle = resolve(
        req.idle_s,
        given_source,
        rt(|f| f.idle),
        pf.idle_s,
        &format!("{os} default ({})", pf.idle_option),
        None,
    );
    let intvl = resolve(
        req.intvl_s,
        given_source,
        rt(|f| f.intvl),
        pf.intvl_s,
        &format!("{os} default ({})", pf.intvl_option),
        Some(&idle),
    );
    let mut cnt = resolve(
        req.cnt,
        given_source,
        rt(|f| f.cnt),
        pf.cnt,
        &format!("{os} default ({})", pf.cnt_option),
        None,
    );
    // A value a runtime fixes, given anyway: only newer releases take it.
    let mut intvl = intvl;
    if node_bare {
        for k in [&mut intvl, &mut cnt] {
            k.note = format!(
                "{}: setKeepAlive(true) without a delay leaves it (a delay makes it 1 s / 10)",
                k.note
            );
        }
    }
    if let Some(f) = rf {
        for (k, v) in [(&mut intvl, f.intvl), (&mut cnt, f.cnt)] {
            if let RuntimeValue::Fixed(n) = v
                && k.source == given_source
            {
                k.note = format!("{}; {}", k.note, fixed_but_given(f, n));
            }
        }
    }
    if stack.platform == Platform::Windows && cnt.source == Source::PlatformDefault {
        cnt.note = format!("{os} default: {}", pf.cnt_note);
    }

    let mut not_settable = Vec::new();
    let uto_knob = pf.user_timeout;
    let runtime_uto = rf.map_or(RuntimeUserTimeout::Api, |f| f.user_timeout);
    let user_timeout = match (uto_knob, runtime_uto) {
        (None, _) => {
            not_settable.push(format!(
                "user timeout: {os} has no TCP_USER_TIMEOUT equivalent"
            ));
            knob(0, Source::NotSettable, format!("{os} has no such option"))
        }
        (Some(_), RuntimeUserTimeout::None) => {
            let title = rf.map_or("", |f| f.title);
            not_settable.push(format!("user timeout: {title} has no way to set it"));
            knob(0, Source::NotSettable, format!("{title} cannot set it"))
        }
        (Some(k), _) => match req.user_timeout_ms {
            Some(ms) => knob(
                ms,
                given_source,
                format!(
                    "{} ({})",
                    k.option,
                    if given_source == Source::Recommended {
                        "recommended"
                    } else {
                        "given"
                    }
                ),
            ),
            None => knob(
                0,
                Source::PlatformDefault,
                format!("{} off by default", k.option),
            ),
        },
    };
    if let Some(f) = rf {
        for (what, v, k) in [("interval", f.intvl, &intvl), ("count", f.cnt, &cnt)] {
            if let RuntimeValue::Fixed(n) = v
                && k.source == Source::Fixed
            {
                not_settable.push(format!("{what}: fixed at {n} by {}", f.title));
            }
        }
        if f.intvl == RuntimeValue::SameAsIdle {
            not_settable.push(format!(
                "interval: {} sets it equal to idle (--keepalive-time)",
                f.title
            ));
        }
    } else if stack.platform == Platform::Windows && req.cnt.is_none() {
        not_settable.push(format!("count: {}", pf.cnt_note));
    }

    let default_on = rf.map_or(pf.keepalive_default, |f| f.keepalive_default)
        || (stack.platform == Platform::Freebsd);
    let keepalive = !req.no_keepalive;
    let keepalive_note = match (keepalive, default_on) {
        (true, true) => "on by default on this stack".to_string(),
        (true, false) => format!(
            "off by default on this stack: the application must enable it ({})",
            rf.map_or("setsockopt SO_KEEPALIVE 1", |f| f.enable)
        ),
        (false, true) => "turned off by the application (on by default here)".to_string(),
        (false, false) => "off (the default on this stack)".to_string(),
    };

    let mut warnings = Vec::new();
    let (predicted_detect, predicted_probes, explain) = idle_path(
        stack.platform,
        keepalive,
        &idle,
        &intvl,
        &cnt,
        &user_timeout,
    );
    if stack.platform == Platform::Linux {
        // The same warnings a live run prints for these settings.
        let e = linux_effective(keepalive, &idle, &intvl, &cnt, &user_timeout);
        // "cnt is ignored" is noise when the user timeout ends probing exactly
        // where cnt would (the recommender's user timeout = idle + cnt x intvl).
        let agrees = predicted_probes == Some(cnt.value);
        warnings.extend(
            e.facts(15)
                .warnings
                .into_iter()
                .filter(|w| !(agrees && w.starts_with("cnt "))),
        );
    } else if !keepalive {
        warnings.push(
            "keepalive is off: a dead idle peer is never detected, the connection stays \
             ESTABLISHED until something is sent"
                .to_string(),
        );
    }
    if let Some(probes) = predicted_probes {
        if probes == 1 {
            warnings.push(format!(
                "one unanswered probe ends the connection: RFC 1122 4.2.3.6 says a single \
                 lost probe must not be taken as a dead peer (use cnt >= 2{})",
                if user_timeout.value != 0 && stack.platform == Platform::Linux {
                    ", or a user timeout of at least idle + 2 x intvl"
                } else {
                    ""
                }
            ));
        } else {
            let window = (probes - 1).saturating_mul(intvl.value);
            if window < 5 {
                warnings.push(format!(
                    "aggressive: a healthy peer is declared dead when its answers are lost for \
                     {window}s ({} x intvl {}s); settings this tight have caused false \
                     disconnects under load (RFC 1122 4.2.3.6: probes may be lost)",
                    probes - 1,
                    intvl.value
                ));
            }
        }
    }
    if let Some(limit) = req.idle_limit {
        warnings.extend(idle_limit_warning(keepalive, &idle, &intvl, limit));
    }
    let busy = busy_path(pf, user_timeout.value, req.rtt);
    if user_timeout.value != 0 {
        warnings.extend(user_timeout_warning(pf, user_timeout.value, req.rtt));
    }

    Plan {
        stack,
        keepalive,
        keepalive_note,
        idle,
        intvl,
        cnt,
        user_timeout,
        predicted_detect,
        predicted_probes,
        explain,
        busy,
        not_settable,
        warnings,
        idle_limit: req.idle_limit,
        rtt: req.rtt,
        detect_within: None,
    }
}

/// Why a value a runtime fixes can still be given.
fn fixed_but_given(f: &RuntimeFacts, n: u32) -> String {
    match f.title {
        "Node.js" => {
            format!("only Node.js releases with nodejs/node#63825 take it (older ones use {n})")
        }
        title => format!("{title} normally fixes it at {n}"),
    }
}

fn linux_effective(
    keepalive: bool,
    idle: &Knob,
    intvl: &Knob,
    cnt: &Knob,
    user_timeout: &Knob,
) -> Effective {
    Effective {
        keepalive,
        idle_s: idle.value,
        intvl_s: intvl.value,
        cnt: cnt.value,
        user_timeout_ms: user_timeout.value,
    }
}

/// The idle path: Linux through the live model (user timeout replaces cnt); the
/// others give up once `cnt` probes went unanswered, whatever their retransmission
/// timeout option says (it bounds retransmissions, not keepalive).
fn idle_path(
    platform: Platform,
    keepalive: bool,
    idle: &Knob,
    intvl: &Knob,
    cnt: &Knob,
    user_timeout: &Knob,
) -> (Option<Duration>, Option<u32>, String) {
    if !keepalive {
        return (
            None,
            None,
            "an idle dead peer is never detected (keepalive off)".to_string(),
        );
    }
    if platform == Platform::Linux {
        let e = linux_effective(keepalive, idle, intvl, cnt, user_timeout);
        let f = e.facts(15);
        let s = e.idle_schedule();
        return (s.map(|s| s.detect_after), s.map(|s| s.probes), f.explain);
    }
    let after = Duration::from_secs(
        u64::from(idle.value).saturating_add(u64::from(cnt.value) * u64::from(intvl.value)),
    );
    (
        Some(after),
        Some(cnt.value),
        format!(
            "dead peer detected {} after last contact (idle {}s + {} x intvl {}s)",
            secs_text(after),
            idle.value,
            cnt.value,
            intvl.value
        ),
    )
}

/// A retransmission timeout of `rto0` backed off `firings` times: the time of each
/// timer firing from the first unacknowledged send.
fn firing_times(pf: &PlatformFacts, rto0: Duration, firings: u32) -> Vec<Duration> {
    let mut t = Duration::ZERO;
    let mut mult: u32 = 1;
    (0..firings)
        .map(|_| {
            t = t.saturating_add(rto0.saturating_mul(mult).min(pf.rto_max));
            mult = mult.saturating_mul(2).min(pf.backoff_max);
            t
        })
        .collect()
}

/// When the busy path gives up for an initial retransmission timeout `rto0`.
fn busy_give_up(pf: &PlatformFacts, rto0: Duration) -> Duration {
    match pf.retransmission {
        Retransmission::LinuxRetries2 { retries2 } => {
            // retransmits_timed_out(): checked at each firing against the model
            // computed with TCP_RTO_MIN, whatever the real RTO is.
            let budget = retransmission_budget(retries2);
            let mut t = Duration::ZERO;
            let mut rto = rto0;
            loop {
                t = t.saturating_add(rto);
                if t >= budget {
                    return t;
                }
                rto = rto.saturating_mul(2).min(pf.rto_max);
            }
        }
        Retransmission::Count { retransmissions } => {
            // Timer firings 1..=n retransmit; firing n+1 drops the connection.
            firing_times(pf, rto0, retransmissions + 1)
                .last()
                .copied()
                .unwrap_or_default()
        }
    }
}

/// The range of initial RTOs assumed: from the RTT when known (RTO = RTT + 200 ms,
/// up to 2 x RTT + 200 ms for jitter), else the stack's whole range.
fn rto_range(pf: &PlatformFacts, rtt: Option<Duration>) -> (Duration, Duration, String) {
    match rtt {
        Some(rtt) => {
            let lo = (rtt + Duration::from_millis(200)).clamp(pf.rto_min, pf.rto_max);
            let hi = (rtt * 2 + Duration::from_millis(200)).clamp(pf.rto_min, pf.rto_max);
            (
                lo,
                hi,
                format!(
                    "RTO assumed {}..{} from --rtt {}",
                    secs_text(lo),
                    secs_text(hi),
                    secs_text(rtt)
                ),
            )
        }
        None => (
            pf.rto_min,
            pf.rto_max,
            format!(
                "RTT unknown: RTO anywhere from {} to {} (give --rtt to narrow)",
                secs_text(pf.rto_min),
                secs_text(pf.rto_max)
            ),
        ),
    }
}

/// The busy path's range: the user timeout when set, else the stack's
/// retransmission budget over the assumed RTO range.
fn busy_path(pf: &PlatformFacts, user_timeout: u32, rtt: Option<Duration>) -> BusyPrediction {
    if user_timeout != 0 {
        let uto = match pf.user_timeout {
            Some(UserTimeoutKnob { seconds: true, .. }) => {
                Duration::from_secs(u64::from(user_timeout) / 1000)
            }
            _ => Duration::from_millis(u64::from(user_timeout)),
        };
        return match pf.platform {
            Platform::Macos => {
                // Measured from the first retransmission, checked at timer firings.
                let (lo, hi, why) = rto_range(pf, rtt);
                BusyPrediction {
                    low: uto + lo,
                    high: uto + hi + pf.rto_max,
                    explain: format!(
                        "TCP_RXT_CONNDROPTIME {} counts from the first retransmission and is \
                         checked when the retransmission timer fires; {why}",
                        secs_text(uto)
                    ),
                }
            }
            Platform::Windows => BusyPrediction {
                low: uto,
                high: uto,
                explain: format!("TCP_MAXRT {} (assumed exact)", secs_text(uto)),
            },
            _ => BusyPrediction {
                low: uto,
                high: uto,
                explain: format!(
                    "the user timeout {} bounds unacknowledged data",
                    secs_text(uto)
                ),
            },
        };
    }
    let (lo, hi, why) = rto_range(pf, rtt);
    // The give-up time is not monotonic in the RTO (a firing can land just past
    // the budget): scan the range in 10 ms steps.
    let mut low = Duration::MAX;
    let mut high = Duration::ZERO;
    let mut rto = lo;
    loop {
        let t = busy_give_up(pf, rto);
        low = low.min(t);
        high = high.max(t);
        if rto >= hi {
            break;
        }
        rto = (rto + Duration::from_millis(10)).min(hi);
    }
    let rule = match pf.retransmission {
        Retransmission::LinuxRetries2 { retries2 } => format!(
            "tcp_retries2 {retries2}: gives up at the first retransmission at least {} after \
             the send (the budget modelled with RTO min 200 ms)",
            secs_text(retransmission_budget(retries2))
        ),
        Retransmission::Count { retransmissions } => format!(
            "{retransmissions} retransmissions, the timeout doubling up to {}",
            secs_text(pf.rto_max)
        ),
    };
    BusyPrediction {
        low,
        high,
        explain: format!("{rule}; {why}"),
    }
}

fn idle_limit_warning(
    keepalive: bool,
    idle: &Knob,
    intvl: &Knob,
    limit: Duration,
) -> Option<String> {
    if !keepalive {
        return Some(format!(
            "keepalive is off: the path forgets an idle flow after {}, and the next send is \
             dropped or reset",
            secs_text(limit)
        ));
    }
    // Between answered probes the gap is max(idle, intvl): the timer is re-armed
    // intvl after an answered probe, and never fires before idle since the answer.
    let gap = idle.value.max(intvl.value);
    let gap_d = Duration::from_secs(u64::from(gap));
    if gap_d >= limit {
        Some(format!(
            "the path's idle limit is {} but keepalive traffic comes every {gap}s (max of idle \
             {}s and intvl {}s): the NAT/firewall forgets the flow first, and the next probe \
             or send is dropped or reset",
            secs_text(limit),
            idle.value,
            intvl.value
        ))
    } else if gap_d > limit.mul_f64(0.9) {
        Some(format!(
            "keepalive traffic every {gap}s leaves less than 10% margin under the path's idle \
             limit {}: timer lateness (up to a quarter second) or one lost probe can let it \
             expire",
            secs_text(limit)
        ))
    } else {
        None
    }
}

/// A user timeout that leaves room for fewer than 3 retransmissions kills healthy
/// connections on a brief loss burst.
fn user_timeout_warning(pf: &PlatformFacts, uto_ms: u32, rtt: Option<Duration>) -> Option<String> {
    let uto = Duration::from_millis(u64::from(uto_ms));
    let rto0 = rtt.map_or(pf.rto_min, |r| {
        (r + Duration::from_millis(200)).clamp(pf.rto_min, pf.rto_max)
    });
    let fits = firing_times(pf, rto0, 64)
        .iter()
        .take_while(|t| **t < uto)
        .count();
    (fits < 3).then(|| {
        format!(
            "user timeout {} leaves room for only {fits} retransmission(s) at RTO {}: a brief \
             loss burst will end a healthy busy connection",
            secs_text(uto),
            secs_text(rto0)
        )
    })
}

/// The probe shape a stack allows, for the recommender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// idle, intvl and cnt all settable.
    Free,
    /// Only idle is settable.
    FixedProbes { intvl: u32, cnt: u32 },
    /// idle and intvl settable, cnt fixed.
    FixedCount { cnt: u32 },
    /// One value sets idle and intvl; cnt settable.
    IdleIsIntvl,
}

impl Shape {
    pub fn of(stack: Stack) -> Shape {
        match stack.runtime {
            Some(Runtime::Node) => Shape::FixedProbes { intvl: 1, cnt: 10 },
            Some(Runtime::Curl) => Shape::IdleIsIntvl,
            // SIO_KEEPALIVE_VALS works on every Windows since 2000; TCP_KEEPCNT needs
            // 1703+, so plain C on Windows keeps the fixed 10.
            None if stack.platform == Platform::Windows => Shape::FixedCount { cnt: 10 },
            _ => Shape::Free,
        }
    }

    /// The shortest detection this shape can give while surviving one lost probe.
    pub fn min_detect_s(self) -> u32 {
        match self {
            Shape::Free | Shape::IdleIsIntvl => 3,
            Shape::FixedProbes { intvl, cnt } => 1 + intvl * cnt,
            Shape::FixedCount { cnt } => 1 + cnt,
        }
    }
}

/// The largest idle/intvl that keeps a flow alive through a path that forgets it
/// after `limit`: 10% margin, at least one second below, never under 1 s.
pub fn idle_limit_ceiling(limit: Duration) -> Option<u32> {
    let ninety = (limit.as_secs_f64() * 0.9).floor();
    let below = limit.as_secs_f64().ceil() - 1.0;
    let ceiling = ninety.min(below);
    (ceiling >= 1.0).then_some(ceiling as u32)
}

/// The smallest probe interval that lets a probe's answer come back with room for
/// jitter: twice the RTO estimate (RTT + 200 ms), at least 1 s.
fn min_intvl(rtt: Option<Duration>) -> u32 {
    rtt.map_or(1, |r| {
        let s = ((r + Duration::from_millis(200)) * 2).as_secs_f64().ceil();
        (s as u32).max(1)
    })
}

/// Recommends settings that detect a dead idle peer within `within`, keep the flow
/// alive through `idle_limit`, survive lost probes, and bound the busy path, on
/// `stack`. The caller validated `within` against [`Shape::min_detect_s`] and
/// `idle_limit` against [`idle_limit_ceiling`].
pub fn recommend(
    stack: Stack,
    within: Duration,
    idle_limit: Option<Duration>,
    rtt: Option<Duration>,
) -> Plan {
    let shape = Shape::of(stack);
    let d = u32::try_from(within.as_secs())
        .unwrap_or(u32::MAX)
        .max(shape.min_detect_s());
    let ceiling = idle_limit.and_then(idle_limit_ceiling);
    // Linux's limit for idle and intvl (MAX_TCP_KEEPIDLE) bounds every stack's plan.
    let cap = |v: u32| ceiling.map_or(v, |c| v.min(c)).min(32767);
    let want_intvl = min_intvl(rtt);
    let mut notes = Vec::new();

    let (idle, intvl, cnt) = match shape {
        Shape::FixedProbes { intvl, cnt } => (cap(d - intvl * cnt), intvl, cnt),
        Shape::FixedCount { .. } | Shape::Free => {
            let mut cnt = match shape {
                Shape::FixedCount { cnt } => cnt,
                _ if d >= 4 => 3,
                _ => 2,
            };
            // Half the budget for probing, the rest idle.
            let mut intvl = cap((d / (2 * cnt)).max(want_intvl).max(1));
            if d.saturating_sub(cnt * intvl) < 1 {
                intvl = ((d - 1) / cnt).max(1);
            }
            let idle = cap(d - cnt * intvl);
            if shape == Shape::Free {
                // What the idle limit took from idle goes to more probes: the same
                // bound, more tolerance to loss (at most the Linux default of 9).
                cnt = cnt.max(((d - idle) / intvl).min(9));
            }
            (idle, intvl, cnt)
        }
        Shape::IdleIsIntvl => {
            let mut cnt = if d >= 4 { 3 } else { 2 };
            let t = cap((d / (1 + cnt)).max(1));
            cnt = cnt.max(((d - t) / t).min(9));
            (t, t, cnt)
        }
    };
    if intvl < want_intvl {
        notes.push(format!(
            "intvl {intvl}s is below twice the RTO estimate ({want_intvl}s for this RTT): a \
             slow answer counts as a lost probe"
        ));
    }
    let pf = stack.platform.facts();
    let runtime_uto = stack
        .runtime
        .map_or(RuntimeUserTimeout::Api, |r| r.facts().user_timeout);
    let detect_s = idle + cnt * intvl;
    let user_timeout_ms = match (pf.user_timeout, runtime_uto) {
        (Some(_), RuntimeUserTimeout::Api | RuntimeUserTimeout::Raw(_)) => {
            // Cloudflare's rule: user timeout = idle + cnt x intvl, so the busy path
            // is bounded by the same figure and the idle path keeps its count.
            Some(detect_s.saturating_mul(1000))
        }
        _ => None,
    };
    let req = PlanRequest {
        no_keepalive: false,
        idle_s: Some(idle),
        intvl_s: matches!(shape, Shape::Free | Shape::FixedCount { .. }).then_some(intvl),
        cnt: matches!(shape, Shape::Free | Shape::IdleIsIntvl).then_some(cnt),
        user_timeout_ms,
        idle_limit,
        rtt,
    };
    let mut plan = evaluate(stack, &req, Source::Recommended);
    if plan.user_timeout.value == 0 {
        plan.warnings.push(format!(
            "the busy path (data in flight) cannot be bounded on this stack: it ends after {}..{}; \
             bound it with an application-level timeout or heartbeat",
            secs_text(plan.busy.low),
            secs_text(plan.busy.high)
        ));
    }
    if stack.platform == Platform::Windows && plan.cnt.value != pf.cnt {
        plan.warnings.push(format!(
            "cnt {} needs TCP_KEEPCNT (Windows 10 1703+); older Windows keep {} probes",
            plan.cnt.value, pf.cnt
        ));
    }
    plan.warnings.extend(notes);
    plan.detect_within = Some(within);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(p: Platform, r: Option<Runtime>) -> Stack {
        Stack {
            platform: p,
            runtime: r,
        }
    }

    fn detect(p: Platform, r: Option<Runtime>, req: PlanRequest) -> f64 {
        evaluate(stack(p, r), &req, Source::User)
            .predicted_detect
            .expect("keepalive on")
            .as_secs_f64()
    }

    #[test]
    fn defaults_of_each_stack() {
        let d = PlanRequest::default();
        // The figures the issue lists, from each stack's documented defaults.
        assert_eq!(detect(Platform::Linux, None, d.clone()), 7875.0);
        assert_eq!(detect(Platform::Windows, None, d.clone()), 7210.0);
        assert_eq!(detect(Platform::Macos, None, d.clone()), 7800.0);
        assert_eq!(detect(Platform::Freebsd, None, d.clone()), 7800.0);
        assert_eq!(detect(Platform::Linux, Some(Runtime::Go), d.clone()), 150.0);
        assert_eq!(detect(Platform::Macos, Some(Runtime::Go), d.clone()), 150.0);
        assert_eq!(
            detect(Platform::Linux, Some(Runtime::Curl), d.clone()),
            600.0
        );
        // Java, .NET and Python leave the OS defaults.
        assert_eq!(
            detect(Platform::Linux, Some(Runtime::Java), d.clone()),
            7875.0
        );
        assert_eq!(
            detect(Platform::Windows, Some(Runtime::Dotnet), d.clone()),
            7210.0
        );
        assert_eq!(detect(Platform::Macos, Some(Runtime::Python), d), 7800.0);
    }

    #[test]
    fn node_set_keepalive_5000() {
        // setKeepAlive(true, 5000): idle 5 s, libuv's intvl 1 s and cnt 10.
        let req = PlanRequest {
            idle_s: Some(5),
            ..PlanRequest::default()
        };
        let p = evaluate(
            stack(Platform::Linux, Some(Runtime::Node)),
            &req,
            Source::User,
        );
        assert_eq!(p.predicted_detect, Some(Duration::from_secs(15)));
        assert_eq!(p.intvl.source, Source::Fixed);
        assert_eq!(p.cnt.source, Source::Fixed);
        assert_eq!(p.idle.source, Source::User);
        assert!(
            p.not_settable
                .iter()
                .any(|n| n.starts_with("count: fixed at 10"))
        );
        assert_eq!(p.user_timeout.source, Source::NotSettable);
    }

    #[test]
    fn node_without_a_delay_keeps_the_os_values() {
        // Measured with Node v20 (tests/plan.rs): setKeepAlive(true) leaves 7200/75/9.
        let p = evaluate(
            stack(Platform::Linux, Some(Runtime::Node)),
            &PlanRequest::default(),
            Source::User,
        );
        assert_eq!((p.idle.value, p.intvl.value, p.cnt.value), (7200, 75, 9));
        assert_eq!(p.cnt.source, Source::PlatformDefault);
        assert_eq!(p.predicted_detect, Some(Duration::from_secs(7875)));
    }

    #[test]
    fn published_macos_measurement() {
        // idle 15 / intvl 15 / cnt 4 measured at 75 s on macOS.
        let req = PlanRequest {
            idle_s: Some(15),
            intvl_s: Some(15),
            cnt: Some(4),
            ..PlanRequest::default()
        };
        assert_eq!(detect(Platform::Macos, None, req), 75.0);
    }

    #[test]
    fn user_timeout_overrides_cnt_only_on_linux() {
        let req = PlanRequest {
            idle_s: Some(2),
            intvl_s: Some(1),
            cnt: Some(3),
            user_timeout_ms: Some(6500),
            ..PlanRequest::default()
        };
        // Linux: measured 5 probes, 7 s (DESIGN.md); the others keep cnt.
        assert_eq!(detect(Platform::Linux, None, req.clone()), 7.0);
        assert_eq!(detect(Platform::Macos, None, req.clone()), 5.0);
        assert_eq!(detect(Platform::Windows, None, req), 5.0);
    }

    #[test]
    fn provenance_per_field() {
        let p = evaluate(
            stack(Platform::Windows, None),
            &PlanRequest::default(),
            Source::User,
        );
        assert_eq!(p.idle.source, Source::PlatformDefault);
        assert!(p.cnt.note.contains("fixed at 10"), "{}", p.cnt.note);
        assert!(!p.keepalive_note.starts_with("on"));
        let p = evaluate(
            stack(Platform::Freebsd, None),
            &PlanRequest::default(),
            Source::User,
        );
        assert_eq!(p.user_timeout.source, Source::NotSettable);
        assert!(p.keepalive_note.starts_with("on by default"));
        let p = evaluate(
            stack(Platform::Linux, Some(Runtime::Go)),
            &PlanRequest::default(),
            Source::User,
        );
        assert_eq!(p.idle.source, Source::RuntimeDefault);
        assert!(p.keepalive_note.starts_with("on by default"));
        let p = evaluate(
            stack(Platform::Linux, Some(Runtime::Curl)),
            &PlanRequest {
                idle_s: Some(20),
                ..PlanRequest::default()
            },
            Source::User,
        );
        assert_eq!((p.idle.value, p.intvl.value, p.cnt.value), (20, 20, 9));
        assert_eq!(p.intvl.source, Source::User);
    }

    #[test]
    fn busy_path_linux_default_and_range() {
        let p = evaluate(
            stack(Platform::Linux, None),
            &PlanRequest::default(),
            Source::User,
        );
        // tcp_retries2 15 with RTO min 200 ms: the kernel's documented 924.6 s.
        assert_eq!(p.busy.low, Duration::from_millis(924_600));
        // Unknown RTT: the last firing can land up to one RTO max (120 s) later.
        assert!(p.busy.high > Duration::from_secs(1000), "{:?}", p.busy);
        assert!(
            p.busy.high <= Duration::from_millis(1_044_600),
            "{:?}",
            p.busy
        );
        // A known RTT narrows it.
        let req = PlanRequest {
            rtt: Some(Duration::from_millis(1)),
            ..PlanRequest::default()
        };
        let p = evaluate(stack(Platform::Linux, None), &req, Source::User);
        assert!(p.busy.low >= Duration::from_millis(924_600), "{:?}", p.busy);
        assert!(p.busy.high < Duration::from_secs(940), "{:?}", p.busy);
        // With a user timeout: exactly it.
        let req = PlanRequest {
            user_timeout_ms: Some(6000),
            ..PlanRequest::default()
        };
        let p = evaluate(stack(Platform::Linux, None), &req, Source::User);
        assert_eq!(
            (p.busy.low, p.busy.high),
            (Duration::from_secs(6), Duration::from_secs(6))
        );
    }

    #[test]
    fn busy_path_count_based_stacks() {
        // Windows: 5 retransmissions at RTO 300 ms: 0.3 x (1+2+4+8+16+32) = 18.9 s.
        let p = evaluate(
            stack(Platform::Windows, None),
            &PlanRequest::default(),
            Source::User,
        );
        assert_eq!(p.busy.low, Duration::from_millis(18_900));
        assert!(p.busy.high >= Duration::from_secs(300), "{:?}", p.busy);
        // BSD: 12 retransmissions, 13 firings, multiplier capped at 64; at RTO 1 s:
        // 1+2+4+8+16+32 + 7 x 64 = 511 s; at 0.2 s: 0.2 x 511 = 102.2 s.
        assert_eq!(
            busy_give_up(&MACOS, Duration::from_millis(200)),
            Duration::from_millis(102_200)
        );
        assert_eq!(
            busy_give_up(&MACOS, Duration::from_secs(1)),
            Duration::from_secs(511)
        );
    }

    #[test]
    fn warnings_rfc1122_and_aggressive() {
        let req = |idle, intvl, cnt| PlanRequest {
            idle_s: Some(idle),
            intvl_s: Some(intvl),
            cnt: Some(cnt),
            ..PlanRequest::default()
        };
        let w = evaluate(stack(Platform::Linux, None), &req(5, 5, 1), Source::User).warnings;
        assert!(w.iter().any(|w| w.contains("RFC 1122 4.2.3.6")), "{w:?}");
        let w = evaluate(stack(Platform::Linux, None), &req(1, 1, 3), Source::User).warnings;
        assert!(w.iter().any(|w| w.starts_with("aggressive")), "{w:?}");
        let w = evaluate(stack(Platform::Linux, None), &req(30, 10, 3), Source::User).warnings;
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn idle_limit_warnings() {
        let req = PlanRequest {
            idle_s: Some(60),
            intvl_s: Some(10),
            cnt: Some(3),
            idle_limit: Some(Duration::from_secs(30)),
            ..PlanRequest::default()
        };
        let w = evaluate(stack(Platform::Linux, None), &req, Source::User).warnings;
        assert!(w.iter().any(|w| w.contains("idle limit is 30s")), "{w:?}");
    }

    #[test]
    fn seconds_text() {
        for (ms, want) in [
            (924_600, "924.6s"),
            (200, "0.2s"),
            (20_000, "20s"),
            (1_044_590, "1044.59s"),
        ] {
            assert_eq!(secs_text(Duration::from_millis(ms)), want);
        }
    }

    #[test]
    fn idle_limit_ceiling_table() {
        let table = [
            (30.0, Some(27)),
            (10.0, Some(9)),
            (2.0, Some(1)),
            (1.5, Some(1)),
            (1.0, None),
        ];
        for (limit, want) in table {
            assert_eq!(
                idle_limit_ceiling(Duration::from_secs_f64(limit)),
                want,
                "{limit}"
            );
        }
    }

    /// Recommender rows: stack, within, idle limit, rtt -> idle, intvl, cnt, uto ms.
    #[test]
    fn recommender_table() {
        use Platform::*;
        type Row = (
            Platform,
            Option<Runtime>,
            u64,
            Option<u64>,
            Option<u64>,
            (u32, u32, u32, u32),
        );
        let rows: [Row; 10] = [
            (Linux, None, 60, None, None, (30, 10, 3, 60_000)),
            (Linux, None, 30, None, None, (15, 5, 3, 30_000)),
            (Linux, None, 3, None, None, (1, 1, 2, 3_000)),
            (Linux, None, 10, None, None, (7, 1, 3, 10_000)),
            // Idle limit 30 s: idle capped at 27, the rest becomes more probes.
            (Linux, None, 300, Some(30), None, (27, 27, 9, 270_000)),
            // RTT 2 s: probes at least 2 x (2 + 0.2) -> 5 s apart.
            (Linux, None, 20, None, Some(2000), (5, 5, 3, 20_000)),
            (Windows, None, 60, None, None, (30, 3, 10, 60_000)),
            (Macos, Some(Runtime::Node), 60, None, None, (50, 1, 10, 0)),
            (Linux, Some(Runtime::Curl), 60, None, None, (15, 15, 3, 0)),
            (
                Freebsd,
                Some(Runtime::Go),
                90,
                Some(20),
                None,
                (18, 15, 4, 0),
            ),
        ];
        for (p, r, within, limit, rtt, want) in rows {
            let plan = recommend(
                stack(p, r),
                Duration::from_secs(within),
                limit.map(Duration::from_secs),
                rtt.map(Duration::from_millis),
            );
            let got = (
                plan.idle.value,
                plan.intvl.value,
                plan.cnt.value,
                plan.user_timeout.value,
            );
            assert_eq!(got, want, "{p:?} {r:?} within {within}");
            // The model, not the recommender, has the last word: it must agree.
            let detect = plan.predicted_detect.expect("keepalive on");
            assert!(
                detect <= Duration::from_secs(within),
                "{p:?} {r:?}: {detect:?}"
            );
            assert!(
                !plan
                    .warnings
                    .iter()
                    .any(|w| w.starts_with("one unanswered") || w.contains("idle limit is")),
                "{p:?} {r:?}: {:?}",
                plan.warnings
            );
        }
    }

    #[test]
    fn recommender_names_what_it_cannot_bound() {
        let plan = recommend(
            stack(Platform::Linux, Some(Runtime::Node)),
            Duration::from_secs(30),
            None,
            None,
        );
        assert!(
            plan.warnings.iter().any(|w| w.starts_with("the busy path")),
            "{:?}",
            plan.warnings
        );
        assert_eq!(plan.idle.source, Source::Recommended);
        assert_eq!(plan.intvl.source, Source::Fixed);
    }
}
