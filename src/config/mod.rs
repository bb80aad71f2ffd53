//! Validated settings: the second stage after `cli.rs`.
//!
//! Every rule is one small `validate_*` function whose error names the flag and the
//! value, so a bad invocation gets exactly one clear line and exit code 2. Nothing
//! is applied to a socket before all of this has passed.

use std::time::Duration;

use thiserror::Error;

use crate::cli::{ConnectArgs, HeartbeatArgs, KeepaliveArgs, ListenArgs, RunArgs, WatchArgs};
use crate::model::event::Outcome;
use crate::model::expect::Expectation;
use crate::model::heartbeat::{HeartbeatConfig, unescape};

/// The kernel's limits for keepalive options (net/ipv4/tcp.c: MAX_TCP_KEEPIDLE etc.).
pub const MAX_KEEPIDLE_S: u64 = 32767;
pub const MAX_KEEPINTVL_S: u64 = 32767;
pub const MAX_KEEPCNT: u64 = 127;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid {flag} '{value}': {reason}")]
    Invalid {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("{first} conflicts with {second}: {reason}")]
    Conflict {
        first: &'static str,
        second: &'static str,
        reason: &'static str,
    },
}

fn invalid(flag: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        flag,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// A peer or bind address as given: the host is resolved later, by the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Keepalive settings to apply. `None` leaves the kernel's default in place.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeepaliveConfig {
    pub enabled: bool,
    pub idle_s: Option<u32>,
    pub intvl_s: Option<u32>,
    pub cnt: Option<u32>,
    pub user_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timestamps {
    Relative,
    Absolute,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    pub run_for: Option<Duration>,
    pub format: Format,
    pub quiet: bool,
    pub timestamps: Timestamps,
    pub expect: Expectation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendPlan {
    pub every: Duration,
    pub size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectConfig {
    pub target: Endpoint,
    pub keepalive: KeepaliveConfig,
    pub run: RunConfig,
    pub connect_timeout: Duration,
    pub send: Option<SendPlan>,
    pub heartbeat: Option<HeartbeatConfig>,
    pub reconnect: Option<Reconnect>,
}

/// `connect --reconnect`: when the monitor stops by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconnect {
    /// Stop after this many outages.
    pub count: Option<u64>,
}

/// A misbehaving-peer mode of `listen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Close cleanly (FIN) after the duration.
    Close(Duration),
    /// Abort (RST via SO_LINGER 0) after the duration.
    Reset(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenConfig {
    pub bind: Endpoint,
    pub keepalive: KeepaliveConfig,
    pub run: RunConfig,
    pub once: bool,
    pub max_conns: usize,
    pub fault: Option<Fault>,
    pub heartbeat: Option<HeartbeatConfig>,
    pub mute: bool,
}

/// `watch --peer`: a host (resolved later, by the command) and maybe a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFilter {
    pub host: String,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchConfig {
    pub port: Option<u16>,
    pub peer: Option<PeerFilter>,
    pub pid: Option<u32>,
    pub interval: Duration,
    pub run: RunConfig,
    pub dump_once: bool,
}

/// The shortest `--interval`: below it a watch of many sockets would busy-poll.
pub const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(10);
/// Linux's largest PID (PID_MAX_LIMIT on 64-bit).
pub const MAX_PID: u64 = 4_194_304;

impl WatchConfig {
    pub fn from_args(args: &WatchArgs) -> Result<Self, ConfigError> {
        Ok(WatchConfig {
            port: args.port.as_deref().map(validate_watch_port).transpose()?,
            peer: args.peer.as_deref().map(validate_peer_filter).transpose()?,
            pid: args
                .pid
                .as_deref()
                .map(|v| validate_count("--pid", v, 1, MAX_PID).map(|n| n as u32))
                .transpose()?,
            interval: validate_watch_interval(&args.interval)?,
            run: RunConfig::from_args(&args.run)?,
            dump_once: args.dump_once,
        })
    }
}

/// `watch --port`: 1..=65535 (no connection has port 0).
pub fn validate_watch_port(value: &str) -> Result<u16, ConfigError> {
    validate_port("--port", value, value.trim(), false)
}

/// `watch --peer`: `HOST`, `HOST:PORT`, `[IPv6]:PORT`, or a bare IPv6 address.
pub fn validate_peer_filter(value: &str) -> Result<PeerFilter, ConfigError> {
    const FLAG: &str = "--peer";
    if value.is_empty() {
        return Err(invalid(
            FLAG,
            value,
            "missing host (expected HOST or HOST:PORT)",
        ));
    }
    if value.starts_with('[') {
        if !value.contains("]:") {
            let host = value
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .ok_or_else(|| invalid(FLAG, value, "missing ']' after the IPv6 address"))?;
            return Ok(PeerFilter {
                host: host.to_string(),
                port: None,
            });
        }
        let e = validate_endpoint(FLAG, value, false)?;
        return Ok(PeerFilter {
            host: e.host,
            port: Some(e.port),
        });
    }
    match value.matches(':').count() {
        // More than one colon: a bare IPv6 address, no port.
        0 | 2.. => Ok(PeerFilter {
            host: value.to_string(),
            port: None,
        }),
        _ => {
            let e = validate_endpoint(FLAG, value, false)?;
            Ok(PeerFilter {
                host: e.host,
                port: Some(e.port),
            })
        }
    }
}

/// `watch --interval`: how often the socket table is dumped.
pub fn validate_watch_interval(value: &str) -> Result<Duration, ConfigError> {
    const FLAG: &str = "--interval";
    let d = validate_duration(FLAG, value)?;
    if d < MIN_WATCH_INTERVAL {
        return Err(invalid(
            FLAG,
            value,
            "must be at least 10ms (shorter would busy-poll the kernel)",
        ));
    }
    if d > Duration::from_secs(60) {
        return Err(invalid(FLAG, value, "must be at most 60s"));
    }
    Ok(d)
}

impl ConnectConfig {
    pub fn from_args(args: &ConnectArgs) -> Result<Self, ConfigError> {
        let send = match &args.send_every {
            Some(every) => Some(SendPlan {
                every: validate_positive("--send-every", every)?,
                size: validate_count("--send-size", &args.send_size, 1, 1 << 20)? as usize,
            }),
            None => None,
        };
        Ok(ConnectConfig {
            target: validate_endpoint("HOST:PORT", &args.target, false)?,
            keepalive: KeepaliveConfig::from_args(&args.keepalive)?,
            run: RunConfig::from_args(&args.run)?,
            connect_timeout: validate_positive("--connect-timeout", &args.connect_timeout)?,
            send,
            heartbeat: validate_heartbeat(&args.heartbeat, args.heartbeat_payload.as_deref())?,
            reconnect: validate_reconnect(args.reconnect, args.count.as_deref())?,
        })
    }
}

impl ListenConfig {
    pub fn from_args(args: &ListenArgs) -> Result<Self, ConfigError> {
        Ok(ListenConfig {
            bind: validate_listen_addr(&args.addr)?,
            keepalive: KeepaliveConfig::from_args(&args.keepalive)?,
            run: RunConfig::from_args(&args.run)?,
            once: args.once,
            max_conns: validate_count("--max-conns", &args.max_conns, 1, 1_000_000)? as usize,
            fault: validate_fault(args.close_after.as_deref(), args.reset_after.as_deref())?,
            heartbeat: validate_heartbeat(&args.heartbeat, None)?,
            mute: args.mute,
        })
    }
}

impl KeepaliveConfig {
    pub fn from_args(args: &KeepaliveArgs) -> Result<Self, ConfigError> {
        validate_keepalive_conflicts(args)?;
        Ok(KeepaliveConfig {
            enabled: !args.no_keepalive,
            idle_s: args
                .idle
                .as_deref()
                .map(|v| validate_keepalive_seconds("--idle", v, MAX_KEEPIDLE_S))
                .transpose()?,
            intvl_s: args
                .intvl
                .as_deref()
                .map(|v| validate_keepalive_seconds("--intvl", v, MAX_KEEPINTVL_S))
                .transpose()?,
            cnt: args
                .cnt
                .as_deref()
                .map(|v| validate_count("--cnt", v, 1, MAX_KEEPCNT).map(|n| n as u32))
                .transpose()?,
            user_timeout: args
                .user_timeout
                .as_deref()
                .map(validate_user_timeout)
                .transpose()?,
        })
    }
}

impl RunConfig {
    pub fn from_args(args: &RunArgs) -> Result<Self, ConfigError> {
        Ok(RunConfig {
            run_for: args
                .for_
                .as_deref()
                .map(|v| validate_positive("--for", v))
                .transpose()?,
            format: if args.json {
                Format::Json
            } else {
                Format::Human
            },
            quiet: args.quiet,
            timestamps: validate_timestamps(&args.timestamps)?,
            expect: Expectation {
                outcome: args.expect.as_deref().map(validate_expect).transpose()?,
                ..validate_within(args.within.as_deref())?
            },
        })
    }
}

/// Parses a duration: a bare number is seconds (`5`, `1.5`), otherwise humantime
/// (`5s`, `1500ms`, `2m`, `1.5s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const HINT: &str = "not a duration (use 5, 5s, 1500ms, 2m)";
    let text = text.trim();
    if text.is_empty() || text.starts_with('-') {
        return Err(HINT.to_string());
    }
    if let Some(secs) = parse_decimal_seconds(text) {
        return secs;
    }
    for (unit, scale) in [("ms", 0.001), ("s", 1.0)] {
        if let Some(number) = text.strip_suffix(unit)
            && number.contains('.')
            && let Some(secs) = parse_decimal_seconds(number)
        {
            return secs.map(|d| d.mul_f64(scale));
        }
    }
    humantime::parse_duration(text).map_err(|_| HINT.to_string())
}

/// `Some` when the text is a plain decimal number of seconds.
fn parse_decimal_seconds(text: &str) -> Option<Result<Duration, String>> {
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    if text.chars().filter(|&c| c == '.').count() > 1 || text == "." {
        return Some(Err("not a duration (use 5, 5s, 1500ms, 2m)".to_string()));
    }
    let secs: f64 = text.parse().ok()?;
    Some(Duration::try_from_secs_f64(secs).map_err(|_| "duration is out of range".to_string()))
}

pub fn validate_duration(flag: &'static str, value: &str) -> Result<Duration, ConfigError> {
    parse_duration(value).map_err(|reason| invalid(flag, value, reason))
}

/// A duration that must be longer than zero (--for, --close-after, ...).
pub fn validate_positive(flag: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let d = validate_duration(flag, value)?;
    if d.is_zero() {
        return Err(invalid(flag, value, "must be longer than zero"));
    }
    Ok(d)
}

/// Linux keepalive idle and interval: whole seconds within the kernel's range.
pub fn validate_keepalive_seconds(
    flag: &'static str,
    value: &str,
    max: u64,
) -> Result<u32, ConfigError> {
    let d = validate_duration(flag, value)?;
    if d.subsec_nanos() != 0 {
        return Err(invalid(
            flag,
            value,
            "Linux keepalive takes whole seconds (e.g. 1s, 5s)",
        ));
    }
    let secs = d.as_secs();
    if !(1..=max).contains(&secs) {
        return Err(invalid(
            flag,
            value,
            format!("must be from 1 to {max} seconds"),
        ));
    }
    Ok(secs as u32)
}

/// A whole number within a range (--cnt, --max-conns, --send-size).
pub fn validate_count(
    flag: &'static str,
    value: &str,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let n: u64 = value
        .trim()
        .parse()
        .map_err(|_| invalid(flag, value, "not a whole number"))?;
    if !(min..=max).contains(&n) {
        return Err(invalid(flag, value, format!("must be from {min} to {max}")));
    }
    Ok(n)
}

/// TCP_USER_TIMEOUT is an unsigned int of milliseconds; 0 would mean "off".
pub fn validate_user_timeout(value: &str) -> Result<Duration, ConfigError> {
    const FLAG: &str = "--user-timeout";
    let d = validate_duration(FLAG, value)?;
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(invalid(FLAG, value, "has millisecond resolution"));
    }
    if d.is_zero() {
        return Err(invalid(
            FLAG,
            value,
            "must be longer than zero (leave it out for off)",
        ));
    }
    if d.as_millis() > i32::MAX as u128 {
        return Err(invalid(
            FLAG,
            value,
            format!("must be at most {}ms", i32::MAX),
        ));
    }
    Ok(d)
}

pub fn validate_keepalive_conflicts(args: &KeepaliveArgs) -> Result<(), ConfigError> {
    if !args.no_keepalive {
        return Ok(());
    }
    for (flag, given) in [
        ("--idle", args.idle.is_some()),
        ("--intvl", args.intvl.is_some()),
        ("--cnt", args.cnt.is_some()),
    ] {
        if given {
            return Err(ConfigError::Conflict {
                first: "--no-keepalive",
                second: flag,
                reason: "keepalive settings need keepalive on",
            });
        }
    }
    Ok(())
}

pub fn validate_fault(
    close_after: Option<&str>,
    reset_after: Option<&str>,
) -> Result<Option<Fault>, ConfigError> {
    match (close_after, reset_after) {
        (Some(_), Some(_)) => Err(ConfigError::Conflict {
            first: "--close-after",
            second: "--reset-after",
            reason: "choose one fault",
        }),
        (Some(v), None) => Ok(Some(Fault::Close(validate_positive("--close-after", v)?))),
        (None, Some(v)) => Ok(Some(Fault::Reset(validate_positive("--reset-after", v)?))),
        (None, None) => Ok(None),
    }
}

/// `--heartbeat D [--heartbeat-timeout D] [--heartbeat-payload TEXT]`.
pub fn validate_heartbeat(
    args: &HeartbeatArgs,
    payload: Option<&str>,
) -> Result<Option<HeartbeatConfig>, ConfigError> {
    let Some(every) = args.heartbeat.as_deref() else {
        if let Some(t) = &args.heartbeat_timeout {
            return Err(invalid("--heartbeat-timeout", t, "needs --heartbeat"));
        }
        if let Some(p) = payload {
            return Err(invalid("--heartbeat-payload", p, "needs --heartbeat"));
        }
        return Ok(None);
    };
    let every = validate_positive("--heartbeat", every)?;
    let timeout = match args.heartbeat_timeout.as_deref() {
        Some(t) => validate_positive("--heartbeat-timeout", t)?,
        None => every * 3,
    };
    let payload = payload
        .map(|p| {
            let bytes = unescape(p).map_err(|why| invalid("--heartbeat-payload", p, why))?;
            if bytes.is_empty() {
                return Err(invalid("--heartbeat-payload", p, "must not be empty"));
            }
            Ok(bytes)
        })
        .transpose()?;
    Ok(Some(HeartbeatConfig {
        every,
        timeout,
        payload,
    }))
}

pub fn validate_reconnect(
    reconnect: bool,
    count: Option<&str>,
) -> Result<Option<Reconnect>, ConfigError> {
    match (reconnect, count) {
        (false, Some(c)) => Err(invalid("--count", c, "needs --reconnect")),
        (false, None) => Ok(None),
        (true, count) => Ok(Some(Reconnect {
            count: count
                .map(|c| validate_count("--count", c, 1, 1_000_000))
                .transpose()?,
        })),
    }
}

pub fn validate_expect(value: &str) -> Result<Outcome, ConfigError> {
    Outcome::from_name(value).ok_or_else(|| {
        let names: Vec<&str> = Outcome::CONNECTION_OUTCOMES
            .iter()
            .map(|o| o.name())
            .collect();
        invalid(
            "--expect",
            value,
            format!("not an outcome ({})", names.join(", ")),
        )
    })
}

/// `MIN..MAX`, either side optional: `3s..5s`, `..5s`, `3s..`.
pub fn validate_within(value: Option<&str>) -> Result<Expectation, ConfigError> {
    const FLAG: &str = "--within";
    let Some(value) = value else {
        return Ok(Expectation::default());
    };
    let (min, max) = value.split_once("..").ok_or_else(|| {
        invalid(
            FLAG,
            value,
            "expected MIN..MAX, e.g. 3s..5s (either may be left out)",
        )
    })?;
    if min.trim().is_empty() && max.trim().is_empty() {
        return Err(invalid(
            FLAG,
            value,
            "give at least one of MIN and MAX, e.g. 3s..5s",
        ));
    }
    let bound = |text: &str| -> Result<Option<Duration>, ConfigError> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        parse_duration(text)
            .map(Some)
            .map_err(|why| invalid(FLAG, value, format!("'{text}' is {why}")))
    };
    let (min, max) = (bound(min)?, bound(max)?);
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        return Err(invalid(FLAG, value, "MIN is above MAX"));
    }
    Ok(Expectation {
        outcome: None,
        min,
        max,
    })
}

pub fn validate_timestamps(value: &str) -> Result<Timestamps, ConfigError> {
    match value {
        "rel" => Ok(Timestamps::Relative),
        "abs" => Ok(Timestamps::Absolute),
        _ => Err(invalid("--timestamps", value, "must be rel or abs")),
    }
}

/// `HOST:PORT` or `[IPv6]:PORT`. Port 0 is accepted only where the kernel picks one.
pub fn validate_endpoint(
    flag: &'static str,
    value: &str,
    allow_port_zero: bool,
) -> Result<Endpoint, ConfigError> {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid(flag, value, "missing ']' after the IPv6 address"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| invalid(flag, value, "missing port (expected [IPv6]:PORT)"))?;
        // A zone suffix (fe80::1%eth0) is the resolver's business; the rest must
        // be an IPv6 address.
        let addr = host.split_once('%').map_or(host, |(a, _)| a);
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid(
                flag,
                value,
                format!("'{host}' in brackets is not an IPv6 address"),
            ));
        }
        (host, port)
    } else {
        let (host, port) = value
            .rsplit_once(':')
            .ok_or_else(|| invalid(flag, value, "missing port (expected HOST:PORT)"))?;
        if host.contains(':') {
            return Err(invalid(
                flag,
                value,
                "IPv6 address needs brackets, as in [::1]:7000",
            ));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(invalid(flag, value, "missing host (expected HOST:PORT)"));
    }
    let port = validate_port(flag, value, port, allow_port_zero)?;
    Ok(Endpoint {
        host: host.to_string(),
        port,
    })
}

/// `listen` takes `[HOST:]PORT`; a bare port binds all IPv4 interfaces.
pub fn validate_listen_addr(value: &str) -> Result<Endpoint, ConfigError> {
    const FLAG: &str = "[HOST:]PORT";
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) {
        let port = validate_port(FLAG, value, value, true)?;
        return Ok(Endpoint {
            host: "0.0.0.0".to_string(),
            port,
        });
    }
    validate_endpoint(FLAG, value, true)
}

fn validate_port(
    flag: &'static str,
    value: &str,
    port: &str,
    allow_zero: bool,
) -> Result<u16, ConfigError> {
    if port.is_empty() {
        return Err(invalid(flag, value, "missing port (expected HOST:PORT)"));
    }
    let n: u64 = port
        .parse()
        .map_err(|_| invalid(flag, value, format!("port '{port}' is not a number")))?;
    let min = if allow_zero { 0 } else { 1 };
    if n < min || n > 65535 {
        return Err(invalid(
            flag,
            value,
            format!("port {n} is out of range {min}..=65535"),
        ));
    }
    Ok(n as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_text<T: std::fmt::Debug>(r: Result<T, ConfigError>) -> String {
        r.expect_err("should be rejected").to_string()
    }

    #[test]
    fn watch_port_messages() {
        assert_eq!(validate_watch_port("5432"), Ok(5432));
        let table = [
            ("0", "invalid --port '0': port 0 is out of range 1..=65535"),
            (
                "70000",
                "invalid --port '70000': port 70000 is out of range 1..=65535",
            ),
            ("http", "invalid --port 'http': port 'http' is not a number"),
            ("", "invalid --port '': missing port (expected HOST:PORT)"),
        ];
        for (input, want) in table {
            assert_eq!(err_text(validate_watch_port(input)), want, "{input}");
        }
    }

    #[test]
    fn watch_peer_forms() {
        let peer = |host: &str, port: Option<u16>| PeerFilter {
            host: host.to_string(),
            port,
        };
        let table = [
            ("db.example", Ok(peer("db.example", None))),
            ("10.0.0.5:5432", Ok(peer("10.0.0.5", Some(5432)))),
            ("[::1]:80", Ok(peer("::1", Some(80)))),
            ("[::1]", Ok(peer("::1", None))),
            ("fe80::1", Ok(peer("fe80::1", None))),
            (
                "",
                Err("invalid --peer '': missing host (expected HOST or HOST:PORT)"),
            ),
            (
                "10.0.0.5:0",
                Err("invalid --peer '10.0.0.5:0': port 0 is out of range 1..=65535"),
            ),
            (
                "10.0.0.5:x",
                Err("invalid --peer '10.0.0.5:x': port 'x' is not a number"),
            ),
            (
                ":80",
                Err("invalid --peer ':80': missing host (expected HOST:PORT)"),
            ),
            (
                "[::1",
                Err("invalid --peer '[::1': missing ']' after the IPv6 address"),
            ),
        ];
        for (input, want) in table {
            let got = validate_peer_filter(input).map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_string), "{input}");
        }
    }

    #[test]
    fn watch_interval_and_pid_messages() {
        assert_eq!(
            validate_watch_interval("200ms"),
            Ok(Duration::from_millis(200))
        );
        let table = [
            (
                "1ms",
                "invalid --interval '1ms': must be at least 10ms (shorter would busy-poll the kernel)",
            ),
            ("2m", "invalid --interval '2m': must be at most 60s"),
            (
                "soon",
                "invalid --interval 'soon': not a duration (use 5, 5s, 1500ms, 2m)",
            ),
        ];
        for (input, want) in table {
            assert_eq!(err_text(validate_watch_interval(input)), want, "{input}");
        }
        assert_eq!(
            err_text(validate_count("--pid", "0", 1, MAX_PID)),
            "invalid --pid '0': must be from 1 to 4194304"
        );
        assert_eq!(
            err_text(validate_count("--pid", "self", 1, MAX_PID)),
            "invalid --pid 'self': not a whole number"
        );
    }

    #[test]
    fn durations() {
        let table = [
            ("5", Ok(Duration::from_secs(5))),
            ("5s", Ok(Duration::from_secs(5))),
            ("1500ms", Ok(Duration::from_millis(1500))),
            ("2m", Ok(Duration::from_secs(120))),
            ("1.5", Ok(Duration::from_millis(1500))),
            ("1.5s", Ok(Duration::from_millis(1500))),
            ("-5", Err(())),
            ("abc", Err(())),
            ("", Err(())),
            ("1..5", Err(())),
        ];
        for (input, want) in table {
            assert_eq!(parse_duration(input).map_err(|_| ()), want, "{input}");
        }
    }
}
