//! The code that applies a plan's settings, per language (one file over 500 lines on
//! purpose: the eight languages' templates side by side, so a change shows in all).
//!
//! Each snippet is one self-contained function (or, for curl, a command line) that
//! an application calls on its connected socket. They set every value the plan
//! shows, not only the changed ones, so the socket ends up with exactly the plan's
//! effective settings (tests/plan.rs compiles them and, for Linux C, Python, Java,
//! Node and Rust, runs them against `tcpalive listen` and reads the socket back).
//! A knob a language cannot reach is named in a comment, never silently dropped.

use super::{Plan, Platform, Runtime, Source};
use crate::model::plan::secs_text;

/// A language the plan prints code for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// C with setsockopt on Linux, macOS or FreeBSD (the option names differ).
    C(Platform),
    /// C on Windows: WSAIoctl(SIO_KEEPALIVE_VALS).
    CWindows,
    Csharp,
    Java,
    Go,
    Node,
    Python,
    Rust,
    Curl,
}

impl Lang {
    pub fn name(self) -> &'static str {
        match self {
            Lang::C(Platform::Linux) => "c-linux",
            Lang::C(Platform::Macos) => "c-macos",
            Lang::C(Platform::Freebsd) => "c-freebsd",
            Lang::C(Platform::Windows) | Lang::CWindows => "c-windows",
            Lang::Csharp => "csharp",
            Lang::Java => "java",
            Lang::Go => "go",
            Lang::Node => "node",
            Lang::Python => "python",
            Lang::Rust => "rust",
            Lang::Curl => "curl",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Lang::C(Platform::Linux) => "C (Linux)",
            Lang::C(Platform::Macos) => "C (macOS)",
            Lang::C(Platform::Freebsd) => "C (FreeBSD)",
            Lang::C(Platform::Windows) | Lang::CWindows => "C (Windows, SIO_KEEPALIVE_VALS)",
            Lang::Csharp => "C# (.NET)",
            Lang::Java => "Java",
            Lang::Go => "Go",
            Lang::Node => "Node.js",
            Lang::Python => "Python",
            Lang::Rust => "Rust (socket2)",
            Lang::Curl => "curl",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    pub lang: Lang,
    pub code: String,
}

/// The languages a plan prints: the runtime's own, or C for the platform and every
/// runtime's language.
pub fn langs(plan: &Plan) -> Vec<Lang> {
    match plan.stack.runtime {
        Some(Runtime::Node) => vec![Lang::Node],
        Some(Runtime::Go) => vec![Lang::Go],
        Some(Runtime::Java) => vec![Lang::Java],
        Some(Runtime::Dotnet) => vec![Lang::Csharp],
        Some(Runtime::Python) => vec![Lang::Python],
        Some(Runtime::Curl) => vec![Lang::Curl],
        None => {
            let c = match plan.stack.platform {
                Platform::Windows => Lang::CWindows,
                p => Lang::C(p),
            };
            vec![
                c,
                Lang::Csharp,
                Lang::Java,
                Lang::Go,
                Lang::Node,
                Lang::Python,
                Lang::Rust,
            ]
        }
    }
}

pub fn for_plan(plan: &Plan) -> Vec<Snippet> {
    langs(plan)
        .into_iter()
        .map(|lang| Snippet {
            lang,
            code: code(plan, lang),
        })
        .collect()
}

/// The values a snippet applies.
struct V {
    platform: Platform,
    idle: u32,
    intvl: u32,
    cnt: u32,
    /// Milliseconds, 0 = leave off.
    uto_ms: u32,
    /// Whether intvl/cnt are the application's to set (not fixed by a runtime).
    intvl_settable: bool,
    cnt_settable: bool,
    /// `--runtime node` with intvl/cnt given: the newer four-argument call.
    node_four_args: bool,
    summary: String,
}

fn values(plan: &Plan) -> V {
    let summary = match plan.predicted_detect {
        Some(d) => format!(
            "tcpalive plan: idle {}s, intvl {}s, cnt {}{}; dead idle peer detected {} after last contact",
            plan.idle.value,
            plan.intvl.value,
            plan.cnt.value,
            if plan.user_timeout.value != 0 {
                format!(", user timeout {}ms", plan.user_timeout.value)
            } else {
                String::new()
            },
            secs_text(d)
        ),
        None => "tcpalive plan: keepalive off".to_string(),
    };
    V {
        platform: plan.stack.platform,
        idle: plan.idle.value,
        intvl: plan.intvl.value,
        cnt: plan.cnt.value,
        uto_ms: plan.user_timeout.value,
        intvl_settable: plan.intvl.source != Source::Fixed,
        cnt_settable: plan.cnt.source != Source::Fixed,
        node_four_args: plan.stack.runtime == Some(Runtime::Node)
            && (plan.intvl.source != Source::Fixed || plan.cnt.source != Source::Fixed),
        summary,
    }
}

/// The snippet for one language.
pub fn code(plan: &Plan, lang: Lang) -> String {
    let v = values(plan);
    match lang {
        Lang::C(Platform::Windows) | Lang::CWindows => c_windows(&v),
        Lang::C(_) => c_posix(&v),
        Lang::Csharp => csharp(&v),
        Lang::Java => java(&v),
        Lang::Go => go(&v),
        Lang::Node => node(&v),
        Lang::Python => python(&v),
        Lang::Rust => rust(&v),
        Lang::Curl => curl(&v),
    }
}

/// Whole seconds for the stacks whose user-timeout knob takes seconds, rounded up
/// so the bound is never shorter than planned.
fn uto_secs(ms: u32) -> u32 {
    ms.div_ceil(1000)
}

fn c_posix(v: &V) -> String {
    let idle_opt = if v.platform == Platform::Macos {
        "TCP_KEEPALIVE"
    } else {
        "TCP_KEEPIDLE"
    };
    let mut s = format!(
        "#include <netinet/in.h>\n\
         #include <netinet/tcp.h>\n\
         #include <sys/socket.h>\n\
         \n\
         /* {} */\n\
         int tcpalive_keepalive(int fd)\n\
         {{\n    \
             int on = 1, idle = {}, intvl = {}, cnt = {};\n\
         \n    \
             if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) != 0)\n        return -1;\n    \
             if (setsockopt(fd, IPPROTO_TCP, {idle_opt}, &idle, sizeof idle) != 0)\n        return -1;\n    \
             if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl) != 0)\n        return -1;\n    \
             if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt) != 0)\n        return -1;\n",
        v.summary, v.idle, v.intvl, v.cnt
    );
    if v.uto_ms != 0 {
        match v.platform {
            Platform::Macos => s.push_str(&format!(
                "    /* Busy path: drop {} s after the first retransmission. */\n    \
                 int drop_s = {};\n    \
                 if (setsockopt(fd, IPPROTO_TCP, TCP_RXT_CONNDROPTIME, &drop_s, sizeof drop_s) != 0)\n        return -1;\n",
                uto_secs(v.uto_ms),
                uto_secs(v.uto_ms)
            )),
            _ => s.push_str(&format!(
                "    /* Busy path: unacknowledged data gives up after this (and cnt is ignored). */\n    \
                 unsigned int user_timeout_ms = {};\n    \
                 if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms,\n                   sizeof user_timeout_ms) != 0)\n        return -1;\n",
                v.uto_ms
            )),
        }
    }
    s.push_str("    return 0;\n}\n");
    s
}

fn c_windows(v: &V) -> String {
    let mut s = format!(
        "#include <winsock2.h>\n\
         #include <ws2tcpip.h>\n\
         #include <mstcpip.h>\n\
         \n\
         /* {} */\n\
         /* Returns 0, or the WSAGetLastError() code. */\n\
         int tcpalive_keepalive(SOCKET s)\n\
         {{\n    \
             /* onoff, keepalivetime and keepaliveinterval in milliseconds. */\n    \
             struct tcp_keepalive ka = {{1, {}, {}}};\n    \
             DWORD returned = 0;\n\
         \n    \
             if (WSAIoctl(s, SIO_KEEPALIVE_VALS, &ka, sizeof ka, NULL, 0, &returned, NULL, NULL) != 0)\n        return WSAGetLastError();\n",
        v.summary,
        u64::from(v.idle) * 1000,
        u64::from(v.intvl) * 1000
    );
    if v.cnt == 10 {
        s.push_str("    /* Probes: 10, fixed by SIO_KEEPALIVE_VALS since Windows Vista. */\n");
    } else {
        s.push_str(&format!(
            "    /* SIO_KEEPALIVE_VALS fixes the count at 10; TCP_KEEPCNT needs Windows 10 1703+. */\n\
             #ifndef TCP_KEEPCNT\n\
             #define TCP_KEEPCNT 16\n\
             #endif\n    \
             DWORD cnt = {};\n    \
             if (setsockopt(s, IPPROTO_TCP, TCP_KEEPCNT, (const char *)&cnt, sizeof cnt) != 0)\n        return WSAGetLastError();\n",
            v.cnt
        ));
    }
    if v.uto_ms != 0 {
        s.push_str(&format!(
            "    /* Busy path: give up on unacknowledged data after this many seconds. */\n\
             #ifndef TCP_MAXRT\n\
             #define TCP_MAXRT 5\n\
             #endif\n    \
             DWORD maxrt_s = {};\n    \
             if (setsockopt(s, IPPROTO_TCP, TCP_MAXRT, (const char *)&maxrt_s, sizeof maxrt_s) != 0)\n        return WSAGetLastError();\n",
            uto_secs(v.uto_ms)
        ));
    }
    s.push_str("    return 0;\n}\n");
    s
}

fn csharp(v: &V) -> String {
    let mut s = format!(
        "using System;\n\
         using System.Net.Sockets;\n\
         \n\
         // {}\n\
         static class TcpaliveKeepalive\n\
         {{\n    \
             public static void Apply(Socket socket)\n    \
             {{\n        \
                 socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);\n        \
                 // Seconds; .NET Core 3.0+.\n        \
                 socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, {});\n        \
                 socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, {});\n",
        v.summary, v.idle, v.intvl
    );
    if v.platform == Platform::Windows && v.cnt == 10 {
        s.push_str("        // Count: 10, fixed on Windows (TcpKeepAliveRetryCount needs Windows 10 1703+).\n");
    } else {
        s.push_str(&format!(
            "        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, {});\n",
            v.cnt
        ));
    }
    if v.uto_ms != 0 {
        match v.platform {
            Platform::Linux => s.push_str(&format!(
                "        // TCP_USER_TIMEOUT (IPPROTO_TCP 6, option 18) has no SocketOptionName: raw, .NET 5+.\n        \
                 socket.SetRawSocketOption(6, 18, BitConverter.GetBytes((uint){}));\n",
                v.uto_ms
            )),
            Platform::Windows => s.push_str(&format!(
                "        // TCP_MAXRT (IPPROTO_TCP option 5), seconds.\n        \
                 socket.SetSocketOption(SocketOptionLevel.Tcp, (SocketOptionName)5, {});\n",
                uto_secs(v.uto_ms)
            )),
            Platform::Macos => s.push_str(&format!(
                "        // TCP_RXT_CONNDROPTIME (IPPROTO_TCP option 0x80), seconds, raw (.NET 5+).\n        \
                 socket.SetRawSocketOption(6, 0x80, BitConverter.GetBytes({}));\n",
                uto_secs(v.uto_ms)
            )),
            Platform::Freebsd => {}
        }
    }
    s.push_str("    }\n}\n");
    s
}

fn java(v: &V) -> String {
    let mut s = format!(
        "import java.io.IOException;\n\
         import java.net.Socket;\n\
         import java.net.StandardSocketOptions;\n\
         import jdk.net.ExtendedSocketOptions;\n\
         \n\
         // {}\n\
         final class TcpaliveKeepalive {{\n    \
             static void apply(Socket socket) throws IOException {{\n        \
                 socket.setOption(StandardSocketOptions.SO_KEEPALIVE, true);\n        \
                 // JDK 11+ (Linux, macOS); Windows since JDK 22 (JDK-8308593).\n        \
                 socket.setOption(ExtendedSocketOptions.TCP_KEEPIDLE, {});\n        \
                 socket.setOption(ExtendedSocketOptions.TCP_KEEPINTERVAL, {});\n        \
                 socket.setOption(ExtendedSocketOptions.TCP_KEEPCOUNT, {});\n",
        v.summary, v.idle, v.intvl, v.cnt
    );
    if v.uto_ms != 0 {
        s.push_str(
            "        // The user timeout has no Java socket option: bound the busy path with\n        \
             // an application timeout (e.g. Socket.setSoTimeout on reads awaiting a reply).\n",
        );
    }
    s.push_str("    }\n}\n");
    s
}

fn go(v: &V) -> String {
    let linux_uto = v.uto_ms != 0 && v.platform == Platform::Linux;
    let mut s = String::from("import (\n\t\"net\"\n");
    if linux_uto {
        s.push_str("\t\"syscall\"\n");
    }
    s.push_str("\t\"time\"\n");
    if linux_uto {
        s.push_str("\n\t\"golang.org/x/sys/unix\"\n");
    }
    s.push_str(&format!(
        ")\n\n\
         // {}\n\
         // Go 1.23+: use the Dialer (or a net.ListenConfig with the same KeepAliveConfig).\n\
         func tcpaliveDialer() *net.Dialer {{\n\
         \td := &net.Dialer{{\n\
         \t\tKeepAliveConfig: net.KeepAliveConfig{{\n\
         \t\t\tEnable:   true,\n\
         \t\t\tIdle:     {} * time.Second,\n\
         \t\t\tInterval: {} * time.Second,\n\
         \t\t\tCount:    {},\n\
         \t\t}},\n\
         \t}}\n",
        v.summary, v.idle, v.intvl, v.cnt
    ));
    if linux_uto {
        s.push_str(&format!(
            "\t// TCP_USER_TIMEOUT has no net API: set it on the raw socket.\n\
             \td.Control = func(network, address string, c syscall.RawConn) error {{\n\
             \t\tvar serr error\n\
             \t\tif err := c.Control(func(fd uintptr) {{\n\
             \t\t\tserr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, {})\n\
             \t\t}}); err != nil {{\n\
             \t\t\treturn err\n\
             \t\t}}\n\
             \t\treturn serr\n\
             \t}}\n",
            v.uto_ms
        ));
    } else if v.uto_ms != 0 {
        s.push_str(
            "\t// The user-timeout option of this OS has no Go API: set it in Dialer.Control.\n",
        );
    }
    s.push_str("\treturn d\n}\n");
    s
}

fn node(v: &V) -> String {
    if v.node_four_args {
        return format!(
            "// {}\n\
             function applyKeepalive(socket) {{\n  \
               // Interval and count arguments need a Node.js release with nodejs/node#63825;\n  \
               // older releases ignore them and use 1 s x 10 (idle {} + 10 = {}s).\n  \
               socket.setKeepAlive(true, {}, {}, {});\n\
             }}\n",
            v.summary,
            v.idle,
            u64::from(v.idle) + 10,
            u64::from(v.idle) * 1000,
            u64::from(v.intvl) * 1000,
            v.cnt
        );
    }
    let mut s = format!(
        "// {}\n\
         function applyKeepalive(socket) {{\n  \
           // Call once connected: before 'connect' the delay is ignored (nodejs/node#31663).\n  \
           socket.setKeepAlive(true, {});\n",
        v.summary,
        u64::from(v.idle) * 1000
    );
    if v.intvl_settable && (v.intvl != 1 || v.cnt != 10) || !v.cnt_settable && v.cnt != 10 {
        s.push_str(&format!(
            "  // Node.js (libuv) sets TCP_KEEPINTVL 1 s and TCP_KEEPCNT 10 itself: this gives\n  \
             // idle {} + 10 x 1 = {}s, not the plan's intvl {} x cnt {}. Node releases with\n  \
             // nodejs/node#63825 take them: socket.setKeepAlive(true, {}, {}, {}).\n",
            v.idle,
            u64::from(v.idle) + 10,
            v.intvl,
            v.cnt,
            u64::from(v.idle) * 1000,
            u64::from(v.intvl) * 1000,
            v.cnt
        ));
    } else {
        s.push_str("  // Node.js (libuv) sets TCP_KEEPINTVL 1 s and TCP_KEEPCNT 10 itself.\n");
    }
    if v.uto_ms != 0 {
        s.push_str(
            "  // Node.js cannot set the user timeout: bound the busy path with an\n  \
             // application timeout (e.g. socket.setTimeout while awaiting a reply).\n",
        );
    }
    s.push_str("}\n");
    s
}

fn python(v: &V) -> String {
    let mut s = format!(
        "import socket\n\n\n# {}\ndef apply_keepalive(sock):\n",
        v.summary
    );
    match v.platform {
        Platform::Windows => {
            s.push_str(&format!(
                "    # (on, idle ms, interval ms): SIO_KEEPALIVE_VALS enables keepalive too.\n    \
                 sock.ioctl(socket.SIO_KEEPALIVE_VALS, (1, {}, {}))\n",
                u64::from(v.idle) * 1000,
                u64::from(v.intvl) * 1000
            ));
            if v.cnt != 10 {
                s.push_str(&format!(
                    "    # The count is 10 unless TCP_KEEPCNT is set (Windows 10 1703+).\n    \
                     sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, {})\n",
                    v.cnt
                ));
            }
            if v.uto_ms != 0 {
                s.push_str(&format!(
                    "    # TCP_MAXRT (option 5), seconds.\n    \
                     sock.setsockopt(socket.IPPROTO_TCP, 5, {})\n",
                    uto_secs(v.uto_ms)
                ));
            }
        }
        p => {
            let idle_opt = if p == Platform::Macos {
                "TCP_KEEPALIVE"
            } else {
                "TCP_KEEPIDLE"
            };
            s.push_str(&format!(
                "    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)\n    \
                 sock.setsockopt(socket.IPPROTO_TCP, socket.{idle_opt}, {})\n    \
                 sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, {})\n    \
                 sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, {})\n",
                v.idle, v.intvl, v.cnt
            ));
            if v.uto_ms != 0 {
                if p == Platform::Macos {
                    s.push_str(&format!(
                        "    # TCP_RXT_CONNDROPTIME (0x80), seconds.\n    \
                         sock.setsockopt(socket.IPPROTO_TCP, 0x80, {})\n",
                        uto_secs(v.uto_ms)
                    ));
                } else {
                    s.push_str(&format!(
                        "    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, {})\n",
                        v.uto_ms
                    ));
                }
            }
        }
    }
    s
}

fn rust(v: &V) -> String {
    let mut s = format!(
        "use std::time::Duration;\n\
         \n\
         use socket2::{{Socket, TcpKeepalive}};\n\
         \n\
         // {}\n\
         // socket2 with feature \"all\" (with_retries).\n\
         pub fn apply_keepalive(socket: &Socket) -> std::io::Result<()> {{\n    \
             let ka = TcpKeepalive::new()\n        \
                 .with_time(Duration::from_secs({}))\n        \
                 .with_interval(Duration::from_secs({}))",
        v.summary, v.idle, v.intvl
    );
    if v.platform == Platform::Windows {
        s.push_str(&format!(
            ";\n    // socket2 cannot set the count on Windows: it stays 10 (plan: {}).\n",
            v.cnt
        ));
    } else {
        s.push_str(&format!("\n        .with_retries({});\n", v.cnt));
    }
    s.push_str("    socket.set_keepalive(true)?;\n    socket.set_tcp_keepalive(&ka)?;\n");
    if v.uto_ms != 0 {
        if v.platform == Platform::Linux {
            s.push_str(&format!(
                "    socket.set_tcp_user_timeout(Some(Duration::from_millis({})))?;\n",
                v.uto_ms
            ));
        } else {
            s.push_str("    // socket2 sets the user timeout only on Linux-like systems.\n");
        }
    }
    s.push_str("    Ok(())\n}\n");
    s
}

fn curl(v: &V) -> String {
    format!(
        "# {}\n\
         # --keepalive-time sets idle and interval together; --keepalive-cnt needs curl 8.9.0+.\n\
         curl --keepalive-time {} --keepalive-cnt {} URL\n",
        v.summary, v.idle, v.cnt
    )
}

#[cfg(test)]
mod tests {
    use super::super::{PlanRequest, Stack, evaluate};
    use super::*;

    fn plan(p: Platform, r: Option<Runtime>, req: PlanRequest) -> Plan {
        evaluate(
            Stack {
                platform: p,
                runtime: r,
            },
            &req,
            Source::User,
        )
    }

    fn req(idle: u32, intvl: u32, cnt: u32, uto: Option<u32>) -> PlanRequest {
        PlanRequest {
            idle_s: Some(idle),
            intvl_s: Some(intvl),
            cnt: Some(cnt),
            user_timeout_ms: uto,
            ..PlanRequest::default()
        }
    }

    #[test]
    fn every_language_carries_the_values() {
        let p = plan(Platform::Linux, None, req(13, 4, 6, Some(7000)));
        let snippets = for_plan(&p);
        assert_eq!(
            snippets.iter().map(|s| s.lang.name()).collect::<Vec<_>>(),
            ["c-linux", "csharp", "java", "go", "node", "python", "rust"]
        );
        for s in &snippets {
            assert!(s.code.contains("13"), "{}: {}", s.lang.name(), s.code);
        }
        let c = code(&p, Lang::C(Platform::Linux));
        assert!(c.contains("idle = 13, intvl = 4, cnt = 6"), "{c}");
        assert!(c.contains("user_timeout_ms = 7000"), "{c}");
        let py = code(&p, Lang::Python);
        assert!(py.contains("socket.TCP_USER_TIMEOUT, 7000"), "{py}");
        // Node cannot express intvl 4 / cnt 6 and says what it gives instead.
        let js = code(&p, Lang::Node);
        assert!(js.contains("idle 13 + 10 x 1 = 23s"), "{js}");
    }

    #[test]
    fn platform_specific_names() {
        let mac = plan(Platform::Macos, None, req(15, 15, 4, Some(30_000)));
        let c = code(&mac, Lang::C(Platform::Macos));
        assert!(c.contains("TCP_KEEPALIVE, &idle"), "{c}");
        assert!(c.contains("TCP_RXT_CONNDROPTIME"), "{c}");
        let win = plan(Platform::Windows, None, req(30, 3, 10, Some(60_000)));
        let c = code(&win, Lang::CWindows);
        assert!(
            c.contains("struct tcp_keepalive ka = {1, 30000, 3000}"),
            "{c}"
        );
        assert!(!c.contains("TCP_KEEPCNT"), "{c}");
        assert!(c.contains("maxrt_s = 60"), "{c}");
        let win = plan(Platform::Windows, None, req(30, 3, 4, None));
        assert!(code(&win, Lang::CWindows).contains("DWORD cnt = 4"));
    }

    #[test]
    fn node_with_given_interval_uses_the_newer_call() {
        let p = plan(Platform::Linux, Some(Runtime::Node), req(5, 2, 4, None));
        assert!(
            p.intvl.note.contains("nodejs/node#63825"),
            "{}",
            p.intvl.note
        );
        let js = code(&p, Lang::Node);
        assert!(
            js.contains("socket.setKeepAlive(true, 5000, 2000, 4);"),
            "{js}"
        );
        assert!(js.contains("older releases ignore them"), "{js}");
    }

    #[test]
    fn runtime_prints_its_own_language() {
        let p = plan(Platform::Linux, Some(Runtime::Curl), PlanRequest::default());
        let s = for_plan(&p);
        assert_eq!(s.len(), 1);
        assert!(
            s[0].code.contains("--keepalive-time 60 --keepalive-cnt 9"),
            "{}",
            s[0].code
        );
    }
}
