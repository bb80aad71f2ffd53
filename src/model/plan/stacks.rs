//! The facts table: each platform's and runtime's keepalive defaults, the knobs it
//! can set, its retransmission rules, and the source each fact comes from.

use std::time::Duration;

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
/// `source` (docs/plan.md lists them all).
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
