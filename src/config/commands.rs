//! Per-command assembly: each command's validated configuration from its clap
//! arguments, with the rules that belong to one command (faults, heartbeats,
//! reconnecting, watch's interval).

use std::time::Duration;

use clap_complete::Shell;

use super::address::{
    Endpoint, PeerFilter, validate_endpoint, validate_listen_addr, validate_peer_filter,
    validate_pid, validate_port, validate_watch_port,
};
use super::duration::{validate_at_least, validate_duration, validate_positive};
use super::keepalive::{KeepaliveConfig, validate_count};
use super::run::RunConfig;
use super::{ConfigError, invalid};
use crate::cli::{Command, ConnectArgs, HeartbeatArgs, ListenArgs, WatchArgs};
use crate::model::heartbeat::{HeartbeatConfig, MAX_EXPECT, MAX_PAYLOAD, unescape};

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
    /// `--no-read`: never read accepted connections.
    pub no_read: bool,
    /// `--rcvbuf N`: SO_RCVBUF for accepted connections.
    pub rcvbuf: Option<usize>,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchConfig {
    pub port: Option<u16>,
    pub peer: Option<PeerFilter>,
    pub pid: Option<u32>,
    pub interval: Duration,
    pub run: RunConfig,
    pub dump_once: bool,
    pub metrics: Option<MetricsTarget>,
}

/// Where `watch` exposes its Prometheus metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsTarget {
    /// `--metrics`: serve `/metrics` over HTTP on this address.
    Serve(Endpoint),
    /// `--metrics-file`: write node_exporter's textfile format to this path.
    File(std::path::PathBuf),
}

/// The shortest `--send-every`: below it the sender would busy-loop.
pub const MIN_SEND_EVERY: Duration = Duration::from_millis(10);
/// The shortest `--heartbeat` and `--heartbeat-timeout`: shorter would declare a
/// healthy loopback peer hung before it could answer.
pub const MIN_HEARTBEAT: Duration = Duration::from_millis(10);
/// The shortest `--interval`: below it a watch of many sockets would busy-poll.
pub const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(10);

impl WatchConfig {
    pub fn from_args(args: &WatchArgs) -> Result<Self, ConfigError> {
        Ok(WatchConfig {
            port: args.port.as_deref().map(validate_watch_port).transpose()?,
            peer: args.peer.as_deref().map(validate_peer_filter).transpose()?,
            pid: args.pid.as_deref().map(validate_pid).transpose()?,
            interval: validate_watch_interval(&args.interval)?,
            run: RunConfig::from_args(&args.run)?,
            dump_once: args.dump_once,
            metrics: validate_metrics(args.metrics.as_deref(), args.metrics_file.as_deref())?,
        })
    }
}

/// `--metrics [HOST:]PORT` (as `listen`'s address; port 0 lets the kernel pick) or
/// `--metrics-file PATH`, not both.
pub fn validate_metrics(
    addr: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<Option<MetricsTarget>, ConfigError> {
    match (addr, file) {
        (Some(_), Some(_)) => Err(ConfigError::Conflict {
            first: "--metrics",
            second: "--metrics-file",
            reason: "choose one way to expose the metrics",
        }),
        (Some(addr), None) => {
            let trimmed = addr.trim();
            let endpoint = if !trimmed.is_empty() && trimmed.chars().all(|c| c.is_ascii_digit()) {
                Endpoint {
                    host: "0.0.0.0".to_string(),
                    port: validate_port("--metrics", addr, addr, true)?,
                }
            } else {
                validate_endpoint("--metrics", addr, true)?
            };
            Ok(Some(MetricsTarget::Serve(endpoint)))
        }
        (None, Some(path)) => validate_metrics_file(path).map(|p| Some(MetricsTarget::File(p))),
        (None, None) => Ok(None),
    }
}

/// `--metrics-file`: a `*.prom` file name (node_exporter's textfile collector reads
/// no other) in a directory that exists.
pub fn validate_metrics_file(path: &std::path::Path) -> Result<std::path::PathBuf, ConfigError> {
    const FLAG: &str = "--metrics-file";
    let shown = path.to_string_lossy();
    if path.extension().is_none_or(|e| e != "prom") {
        return Err(invalid(
            FLAG,
            &shown,
            "must end in .prom (node_exporter's textfile collector reads only *.prom files)",
        ));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(invalid(
            FLAG,
            &shown,
            format!("no directory '{}'", dir.to_string_lossy()),
        ));
    }
    Ok(path.to_path_buf())
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
                every: validate_at_least("--send-every", every, MIN_SEND_EVERY)?,
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
            heartbeat: validate_heartbeat_expect(
                validate_heartbeat(&args.heartbeat, args.heartbeat_payload.as_deref())?,
                args.heartbeat_expect.as_deref(),
                args.heartbeat_payload.as_deref(),
            )?,
            reconnect: validate_reconnect(args.reconnect, args.count.as_deref())?,
        })
    }
}

/// `--rcvbuf` bounds: below 1 KiB the kernel raises it anyway (SOCK_MIN_RCVBUF);
/// 64 MiB is far above any useful zero-window experiment.
pub const MIN_RCVBUF: u64 = 1024;
pub const MAX_RCVBUF: u64 = 64 * 1024 * 1024;

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
            no_read: args.no_read,
            rcvbuf: args
                .rcvbuf
                .as_deref()
                .map(|v| validate_count("--rcvbuf", v, MIN_RCVBUF, MAX_RCVBUF).map(|n| n as usize))
                .transpose()?,
        })
    }
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
    let every = validate_at_least("--heartbeat", every, MIN_HEARTBEAT)?;
    let timeout = match args.heartbeat_timeout.as_deref() {
        Some(t) => validate_at_least("--heartbeat-timeout", t, MIN_HEARTBEAT)?,
        None => every.saturating_mul(3),
    };
    let payload = payload
        .map(|p| {
            let bytes = unescape(p).map_err(|why| invalid("--heartbeat-payload", p, why))?;
            if bytes.is_empty() {
                return Err(invalid("--heartbeat-payload", p, "must not be empty"));
            }
            if bytes.len() > MAX_PAYLOAD {
                return Err(invalid(
                    "--heartbeat-payload",
                    p,
                    format!("must be at most {MAX_PAYLOAD} bytes (is {})", bytes.len()),
                ));
            }
            Ok(bytes)
        })
        .transpose()?;
    Ok(Some(HeartbeatConfig {
        every,
        timeout,
        payload,
        expect: None,
    }))
}

/// `--heartbeat-expect TEXT` (escapes as `--heartbeat-payload`): a reply line must
/// start with it. Only for a raw payload (tcpalive's own PONG is checked already).
pub fn validate_heartbeat_expect(
    heartbeat: Option<HeartbeatConfig>,
    expect: Option<&str>,
    payload: Option<&str>,
) -> Result<Option<HeartbeatConfig>, ConfigError> {
    const FLAG: &str = "--heartbeat-expect";
    let Some(text) = expect else {
        return Ok(heartbeat);
    };
    if payload.is_none() {
        return Err(invalid(
            FLAG,
            text,
            "needs --heartbeat-payload (tcpalive's own heartbeats check their PONG already)",
        ));
    }
    let bytes = unescape(text).map_err(|why| invalid(FLAG, text, why))?;
    if bytes.is_empty() {
        return Err(invalid(FLAG, text, "must not be empty"));
    }
    if bytes.len() > MAX_EXPECT {
        return Err(invalid(
            FLAG,
            text,
            format!("must be at most {MAX_EXPECT} bytes (is {})", bytes.len()),
        ));
    }
    Ok(heartbeat.map(|h| HeartbeatConfig {
        expect: Some(bytes),
        ..h
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

/// `tcpalive man`: one page to stdout, or every page into a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManConfig {
    /// `None`: the top page.
    Print(Option<String>),
    Dir(std::path::PathBuf),
}

/// `man PAGE` names a subcommand; `man --dir DIR` names a directory, created
/// when missing (as `install -d`), refused when something else is there.
pub fn validate_man(args: &crate::cli::ManArgs) -> Result<ManConfig, ConfigError> {
    if let Some(dir) = &args.dir {
        if dir.exists() && !dir.is_dir() {
            return Err(invalid(
                "--dir",
                &dir.to_string_lossy(),
                "exists and is not a directory",
            ));
        }
        return Ok(ManConfig::Dir(dir.clone()));
    }
    match &args.page {
        None => Ok(ManConfig::Print(None)),
        Some(page) => {
            let name = page.strip_prefix("tcpalive-").unwrap_or(page);
            let names = crate::cli::man_page_names();
            if names.contains(&name) {
                Ok(ManConfig::Print(Some(name.to_string())))
            } else {
                Err(invalid(
                    "PAGE",
                    page,
                    format!("no such page ({})", names.join(", ")),
                ))
            }
        }
    }
}

/// Whether the command line asks for a JSON timeline (`--json` on a command
/// that follows connections; `plan --json` and `lab list --json` print a
/// document, not a timeline): its refusal ends in a JSON `end` too.
pub fn timeline_json(command: &Command) -> bool {
    match command {
        Command::Connect(a) => a.run.output.json,
        Command::Listen(a) => a.run.output.json,
        Command::Watch(a) => a.run.output.json,
        Command::Lab(a) => {
            a.list.is_none() && a.scenario.as_deref() != Some("list") && a.run.output.json
        }
        Command::Demo(a) => a.json,
        Command::Tune(a) => a.json,
        Command::IdleLimit(a) => a.output.json,
        Command::Explain(a) => a.json,
        Command::Plan(_) | Command::Completions(_) | Command::Man(_) => false,
    }
}

/// A whole command line, validated: what `cmd::run` runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Config {
    Connect(ConnectConfig),
    Listen(ListenConfig),
    Watch(WatchConfig),
    Lab(super::LabCommand),
    Demo(Box<super::LabConfig>),
    Completions(Shell),
    Man(ManConfig),
    Plan(super::plan::PlanConfig),
    Tune(super::tune::TuneConfig),
    IdleLimit(super::idle_limit::IdleLimitConfig),
    Explain(super::explain::ExplainConfig),
}

impl Config {
    /// The format of the command's timeline, for a command that has one (a failure
    /// of tcpalive's own ends a JSON timeline with an `end` too).
    pub fn timeline_format(&self) -> Option<super::Format> {
        match self {
            Config::Connect(c) => Some(c.run.format),
            Config::Listen(c) => Some(c.run.format),
            Config::Watch(c) => Some(c.run.format),
            Config::Lab(super::LabCommand::Run(c)) | Config::Demo(c) => Some(c.connect.run.format),
            Config::Tune(c) => Some(c.format),
            Config::IdleLimit(c) => Some(c.run.format),
            Config::Explain(c) => Some(c.format),
            Config::Lab(super::LabCommand::List { .. })
            | Config::Completions(_)
            | Config::Man(_)
            | Config::Plan(_) => None,
        }
    }

    pub fn from_command(command: &Command) -> Result<Config, ConfigError> {
        Ok(match command {
            Command::Connect(args) => Config::Connect(ConnectConfig::from_args(args)?),
            Command::Listen(args) => Config::Listen(ListenConfig::from_args(args)?),
            Command::Watch(args) => Config::Watch(WatchConfig::from_args(args)?),
            Command::Lab(args) => Config::Lab(super::LabCommand::from_args(args)?),
            Command::Demo(args) => Config::Demo(Box::new(super::LabConfig::demo(args)?)),
            Command::Completions(args) => Config::Completions(args.shell),
            Command::Man(args) => Config::Man(validate_man(args)?),
            Command::Plan(args) => Config::Plan(super::plan::PlanConfig::from_args(args)?),
            Command::Tune(args) => Config::Tune(super::tune::TuneConfig::from_args(args)?),
            Command::Explain(args) => {
                Config::Explain(super::explain::ExplainConfig::from_args(args)?)
            }
            Command::IdleLimit(args) => {
                Config::IdleLimit(super::idle_limit::IdleLimitConfig::from_args(args)?)
            }
        })
    }
}
