//! Command-line surface: clap derive types only.
//!
//! Values arrive here as text and are turned into checked settings by `config.rs`,
//! so that every bad value gets one line naming the flag and the value.

use clap::builder::{PossibleValue, TypedValueParser};
use clap::{Args, Parser, Subcommand};

/// Keeps a value as text, as every other argument (config.rs validates it and
/// names the flag and the value in its one-line error), but tells `--help` and the
/// completion scripts which values there are.
#[derive(Clone, Copy)]
pub struct Suggest(pub fn() -> Vec<&'static str>);

impl TypedValueParser for Suggest {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        value
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidUtf8).with_cmd(cmd))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new((self.0)().into_iter().map(PossibleValue::new)))
    }
}

/// `--timestamps` values.
pub fn timestamp_names() -> Vec<&'static str> {
    vec!["rel", "abs"]
}

/// `--expect` values: every outcome a connection can end with.
pub fn outcome_names() -> Vec<&'static str> {
    crate::model::outcome::Outcome::CONNECTION_OUTCOMES
        .iter()
        .map(|o| o.name())
        .collect()
}

/// `plan --platform` values.
pub fn platform_names() -> Vec<&'static str> {
    crate::model::plan::Platform::ALL
        .iter()
        .map(|p| p.name())
        .collect()
}

/// `plan --runtime` values.
/// `plan --path` values: the presets, and `list`.
pub fn path_names() -> Vec<&'static str> {
    let mut names = crate::model::plan::presets::names();
    names.push("list");
    names
}

pub fn runtime_names() -> Vec<&'static str> {
    crate::model::plan::Runtime::ALL
        .iter()
        .map(|r| r.name())
        .collect()
}

/// `man PAGE` values: the subcommands with a page (a test in `cmd::man` checks
/// that this is every one of them).
pub fn man_page_names() -> Vec<&'static str> {
    vec![
        "connect",
        "listen",
        "watch",
        "plan",
        "tune",
        "lab",
        "idle-limit",
        "explain",
        "demo",
        "completions",
        "man",
    ]
}

/// `lab` scenarios (`list` is a subcommand of its own).
pub fn scenario_names() -> Vec<&'static str> {
    crate::model::lab::names()
}

/// Printed after `--help`: the exit-code table (generated from the one table in
/// `model::outcome`) and the duration syntax.
fn after_help() -> String {
    format!(
        "{}\nDurations: 5 (seconds), 5s, 1500ms, 2m. Keepalive values are whole seconds.",
        crate::model::outcome::Exit::help_text()
    )
}

#[derive(Debug, Parser)]
#[command(
    name = "tcpalive",
    version,
    about = "TCP connection liveness probe: see when a dead peer is noticed, and prove it",
    after_help = after_help()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open a connection with the given keepalive settings and follow its timeline.
    Connect(ConnectArgs),
    /// Accept connections, apply the settings to each and follow every timeline.
    Listen(ListenArgs),
    /// Follow established TCP connections other processes own (sock_diag), without
    /// touching them: is keepalive on, and when would a dead peer be noticed?
    Watch(WatchArgs),
    /// Predict dead-peer detection on any platform and runtime, or recommend settings
    /// (with the code that applies them) for a target detection time.
    Plan(PlanArgs),
    /// Change the keepalive settings and user timeout of a running process's TCP
    /// sockets, without restarting it (Linux, pidfd_getfd; needs ptrace rights).
    Tune(TuneArgs),
    /// Reproduce a way a peer dies, in a private network namespace (no root needed):
    /// `lab list` describes the scenarios. Output and exit codes are connect's.
    Lab(LabArgs),
    /// Measure how long the path to a `tcpalive listen` keeps an idle TCP flow (NAT,
    /// firewall, load balancer), how it kills it, and the keepalive that beats it.
    IdleLimit(IdleLimitArgs),
    /// Explain a packet capture (pcap, pcapng): every TCP connection's timeline as
    /// connect prints it, the keepalive settings inferred from the wire, and the end.
    Explain(ExplainArgs),
    /// A short tour on the lab: answered probes, then the cable is pulled and the
    /// unanswered probes end in a timeout. Exits 0 when it ran as designed.
    Demo(DemoArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions(CompletionsArgs),
    /// Print a man page (roff) to stdout, or write them all with --dir.
    Man(ManArgs),
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (default: the top page, tcpalive(1)).
    #[arg(value_name = "PAGE", value_parser = Suggest(man_page_names), hide_possible_values = true)]
    pub page: Option<String>,
    /// Write every page (tcpalive.1, tcpalive-connect.1, ...) into DIR instead.
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath, conflicts_with = "page")]
    pub dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct KeepaliveArgs {
    /// Idle time before the first keepalive probe (TCP_KEEPIDLE), whole seconds.
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    pub idle: Option<String>,
    /// Gap between keepalive probes (TCP_KEEPINTVL), whole seconds.
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    pub intvl: Option<String>,
    /// Unanswered probes before the kernel gives up (TCP_KEEPCNT), 1..=127.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub cnt: Option<String>,
    /// Leave SO_KEEPALIVE off (see what happens without it).
    #[arg(long)]
    pub no_keepalive: bool,
    /// Longest time sent data may stay unacknowledged (TCP_USER_TIMEOUT), ms resolution.
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    pub user_timeout: Option<String>,
}

#[derive(Debug, Args)]
pub struct HeartbeatArgs {
    /// Send an application heartbeat every D (PING <seq> lines between tcpalive ends).
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    pub heartbeat: Option<String>,
    /// Give up when a heartbeat is unanswered this long (default: 3 x --heartbeat).
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    pub heartbeat_timeout: Option<String>,
}

/// What a run prints: every command with a timeline has these.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Write the timeline as JSON Lines on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print only the final `end` line.
    #[arg(long)]
    pub quiet: bool,
    /// Show every event in full: the probe window, each restated prediction with
    /// the timer wheel's allowance, every idle-start (the default shows one line per
    /// probe cycle and a prediction only when it changes).
    #[arg(short, long, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Time column: rel (since start) or abs (wall clock, UTC).
    #[arg(long, value_name = "rel|abs", default_value = "rel", value_parser = Suggest(timestamp_names), hide_possible_values = true)]
    pub timestamps: String,
}

/// The assertions on a connection's end (not `idle-limit`'s: it measures a path).
#[derive(Debug, Args)]
pub struct ExpectArgs {
    /// Exit 0 only if the connection ends this way (alive, eof, reset, timeout,
    /// unreachable, heartbeat-timeout, connect-failed, interrupted, error), else 9.
    #[arg(long, value_name = "OUTCOME", value_parser = Suggest(outcome_names), hide_possible_values = true)]
    pub expect: Option<String>,
    /// Exit 0 only if the detection latency is in MIN..MAX (either may be left out).
    #[arg(long, value_name = "MIN..MAX", allow_hyphen_values = true)]
    pub within: Option<String>,
}

/// The options of a command that follows connections to their end: how long,
/// what it prints, and what the end is expected to be.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Stop after this long; the outcome is "alive" if the peer is still there.
    #[arg(long = "for", value_name = "D", allow_hyphen_values = true)]
    pub for_: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub expect: ExpectArgs,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Peer to connect to: HOST:PORT, [IPv6]:PORT.
    #[arg(value_name = "HOST:PORT")]
    pub target: String,
    #[command(flatten)]
    pub keepalive: KeepaliveArgs,
    #[command(flatten)]
    pub heartbeat: HeartbeatArgs,
    /// Heartbeat bytes for a server that is not tcpalive (escapes: \r \n \t \0 \\ \xHH);
    /// any bytes received count as the reply, unless --heartbeat-expect says which.
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub heartbeat_payload: Option<String>,
    /// With --heartbeat-payload: only a reply line that starts with TEXT (same
    /// escapes; a plain prefix, no patterns) answers a heartbeat; other replies are
    /// shown and answer nothing (Redis: --heartbeat-expect +PONG).
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub heartbeat_expect: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Monitor: after each death, reconnect with backoff and log the outage.
    #[arg(long)]
    pub reconnect: bool,
    /// With --reconnect: stop after N outages.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub count: Option<String>,
    /// Give up connecting after this long.
    #[arg(
        long,
        value_name = "D",
        default_value = "10s",
        allow_hyphen_values = true
    )]
    pub connect_timeout: String,
    /// Write --send-size bytes every D, so data is in flight when the peer dies.
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    pub send_every: Option<String>,
    /// Bytes per --send-every write.
    #[arg(
        long,
        value_name = "N",
        default_value = "64",
        allow_hyphen_values = true
    )]
    pub send_size: String,
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Address to listen on: [HOST:]PORT; PORT alone listens on all IPv4 interfaces.
    #[arg(value_name = "[HOST:]PORT")]
    pub addr: String,
    #[command(flatten)]
    pub keepalive: KeepaliveArgs,
    #[command(flatten)]
    pub heartbeat: HeartbeatArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Fault: stop answering heartbeats while the kernel keeps ACKing (a hung app).
    #[arg(long)]
    pub mute: bool,
    /// Serve one connection and exit with its outcome.
    #[arg(long)]
    pub once: bool,
    /// Connections held at once; more are refused (accepted and reset), not queued.
    #[arg(
        long,
        value_name = "N",
        default_value = "1024",
        allow_hyphen_values = true
    )]
    pub max_conns: String,
    /// Fault: close each connection cleanly (FIN) after D.
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    pub close_after: Option<String>,
    /// Fault: abort each connection (RST, SO_LINGER 0) after D.
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    pub reset_after: Option<String>,
    /// Fault: accept and never read (a peer whose application stopped reading): its
    /// receive window fills and the sender sees a zero window.
    #[arg(long)]
    pub no_read: bool,
    /// Receive buffer of accepted sockets (SO_RCVBUF, bytes; the kernel doubles it),
    /// so --no-read closes the window after little data.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub rcvbuf: Option<String>,
}

/// `lab`: run a scenario (`lab SCENARIO [OPTIONS]`), or `lab list`. Options given
/// before a subcommand make `list` a scenario name (refused unless it is alone),
/// so none is silently ignored.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    disable_help_subcommand = true
)]
pub struct LabArgs {
    #[command(subcommand)]
    pub list: Option<LabList>,
    /// The scenario to reproduce (cable-pull, flap, reboot, exits, aborts, hung,
    /// not-reading, busy, alive); `lab list` describes them.
    #[arg(value_name = "SCENARIO", required = true, value_parser = Suggest(scenario_names), hide_possible_values = true)]
    pub scenario: Option<String>,
    #[command(flatten)]
    pub keepalive: KeepaliveArgs,
    #[command(flatten)]
    pub heartbeat: HeartbeatArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Inject the fault at this run time (default: just after the first answered
    /// keepalive probe, or heartbeat reply for `hung`).
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    pub fault_at: Option<String>,
    /// Show the peer's timeline too; lines are tagged by connection (1 is the
    /// connection under test, 2 the peer's end of it).
    #[arg(long)]
    pub both: bool,
}

/// `lab list`: its one option is the format.
#[derive(Debug, Subcommand)]
pub enum LabList {
    /// Describe the scenarios: what each reproduces, its fault and its defaults.
    List {
        /// One JSON object per scenario on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct DemoArgs {
    /// Write the timeline as JSON Lines on stdout.
    #[arg(long)]
    pub json: bool,
    /// Show every event in full (see `connect --verbose`).
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only connections with this local or remote port.
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    pub port: Option<String>,
    /// Only connections to this peer: HOST, HOST:PORT, [IPv6]:PORT.
    #[arg(long, value_name = "HOST[:PORT]", allow_hyphen_values = true)]
    pub peer: Option<String>,
    /// Only the sockets this process holds (another user's process needs root).
    #[arg(long, value_name = "PID", allow_hyphen_values = true)]
    pub pid: Option<String>,
    /// The shortest time between two dumps of the kernel's socket table, which
    /// discover new connections: with many sockets they are spaced to stay within
    /// 1 % of a core (100 x a dump's CPU, ~1.5 us a socket: new connections join
    /// within ~1.5 s at 10,000 sockets, ~16 s at 100,000; a run warning says so).
    /// Watched connections are looked up by themselves when their timers are due.
    #[arg(
        long,
        value_name = "D",
        default_value = "200ms",
        allow_hyphen_values = true
    )]
    pub interval: String,
    #[command(flatten)]
    pub run: RunArgs,
    /// Serve Prometheus metrics on http://ADDR/metrics ([HOST:]PORT; a bare port
    /// listens on all IPv4 interfaces; port 0 picks one and says which on stderr).
    #[arg(long, value_name = "[HOST:]PORT", allow_hyphen_values = true)]
    pub metrics: Option<String>,
    /// Write the metrics to PATH (node_exporter textfile collector: a *.prom file),
    /// replaced atomically when they change, at most once a second.
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    pub metrics_file: Option<std::path::PathBuf>,
    /// Benchmark aid: one dump-and-match pass, no timelines; the end line says how
    /// many sockets matched and how long the pass took.
    #[arg(long, hide = true)]
    pub dump_once: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The operating system: linux, macos, freebsd, windows.
    #[arg(long, value_name = "P", default_value = "linux", value_parser = Suggest(platform_names), hide_possible_values = true)]
    pub platform: String,
    /// The application's runtime: node, go, java, dotnet, python, curl (default: C,
    /// plain setsockopt).
    #[arg(long, value_name = "R", value_parser = Suggest(runtime_names), hide_possible_values = true)]
    pub runtime: Option<String>,
    #[command(flatten)]
    pub keepalive: KeepaliveArgs,
    /// Recommend settings that detect a dead idle peer within D (and bound the busy
    /// path), with the code that applies them.
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    pub detect_within: Option<String>,
    /// The path forgets an idle flow after D (NAT, firewall): keepalive must come
    /// sooner (see `idle-limit`).
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    pub idle_limit: Option<String>,
    /// The path crosses this middlebox: its published idle timeout and drop mode
    /// become the path's (aws-nlb, aws-alb, aws-nat-gateway, gcp-cloud-nat, azure-lb,
    /// azure-nat-gateway, linux-conntrack, kube-proxy, docker-swarm, rfc5382).
    /// Repeat for several; the shortest wins. `--path list` lists them with sources.
    #[arg(long = "path", value_name = "NAME", value_parser = Suggest(path_names), hide_possible_values = true)]
    pub path: Vec<String>,
    /// The path's round-trip time: narrows the busy-path prediction.
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    pub rtt: Option<String>,
    /// One JSON object on stdout (field names of the `config` event).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TuneArgs {
    /// The process whose sockets to change; its descendants' sockets too.
    #[arg(long, value_name = "PID", allow_hyphen_values = true, required = true)]
    pub pid: Option<String>,
    /// Only sockets with this local or remote port.
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    pub port: Option<String>,
    /// Only connections to this peer: HOST, HOST:PORT, [IPv6]:PORT.
    #[arg(long, value_name = "HOST[:PORT]", allow_hyphen_values = true)]
    pub peer: Option<String>,
    #[command(flatten)]
    pub keepalive: KeepaliveArgs,
    /// Also the process's listening sockets: Linux copies their options to every
    /// connection accepted later.
    #[arg(long)]
    pub listening: bool,
    /// Show what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// JSON Lines on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct IdleLimitArgs {
    /// A `tcpalive listen` on the far side of the path: HOST:PORT, [IPv6]:PORT.
    #[arg(value_name = "HOST:PORT")]
    pub target: String,
    /// Longest idle time tested; a path that keeps flows longer reports no limit.
    #[arg(
        long,
        value_name = "D",
        default_value = "1h",
        allow_hyphen_values = true
    )]
    pub max: String,
    /// Test flows 1.8 x this apart (the limit within +-this) as far as --parallel
    /// reaches, then 4 % apart (within +-2 %).
    #[arg(
        long,
        value_name = "D",
        default_value = "1s",
        allow_hyphen_values = true
    )]
    pub resolution: String,
    /// Who sends first after the idle period: out (this side), in (the listener,
    /// towards this side) or both (separate flows, measured together).
    #[arg(
        long,
        value_name = "out|in|both",
        default_value = "both",
        value_parser = Suggest(|| vec!["out", "in", "both"]),
        hide_possible_values = true
    )]
    pub direction: String,
    /// Test flows, over all directions, open at once: the measurement is one round
    /// of them (at --resolution 1s and --max 1h, 300 keep +-1s to about 100 s, 1000
    /// to about 830 s).
    #[arg(
        long,
        value_name = "N",
        default_value = "300",
        allow_hyphen_values = true
    )]
    pub parallel: String,
    /// After measuring: hold one keepalive connection idle past the limit and show
    /// whether it survives (keepalive from --idle/--intvl/--cnt, else the recommended).
    #[arg(long)]
    pub verify: bool,
    /// With --verify: TCP_KEEPIDLE of the held connection, whole seconds.
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    pub idle: Option<String>,
    /// With --verify: TCP_KEEPINTVL, whole seconds.
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    pub intvl: Option<String>,
    /// With --verify: TCP_KEEPCNT, 1..=127.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub cnt: Option<String>,
    /// Give up connecting (and waiting for the listener's answer) after this long.
    #[arg(
        long,
        value_name = "D",
        default_value = "10s",
        allow_hyphen_values = true
    )]
    pub connect_timeout: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The capture file (pcap or pcapng, as tcpdump -w or Wireshark writes it).
    #[arg(value_name = "CAPTURE", value_hint = clap::ValueHint::FilePath)]
    pub capture: std::path::PathBuf,
    /// Explain only this connection: its number on the timeline (3), or an end's
    /// address and/or port (198.18.0.1, 198.18.0.1:5000, [::1]:80, :5000).
    #[arg(long, value_name = "FILTER")]
    pub conn: Option<String>,
    /// Write the timeline as JSON Lines on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print only the final `end` line(s).
    #[arg(long)]
    pub quiet: bool,
    /// Time column: rel (since the capture's first packet) or abs (the packets'
    /// wall clock, UTC).
    #[arg(long, value_name = "rel|abs", default_value = "rel", value_parser = Suggest(timestamp_names), hide_possible_values = true)]
    pub timestamps: String,
}
