//! The command line as a user types it, through clap and validation, in process:
//! one test per row. Err rows give the exact one line main prints (exit 2); Ok rows
//! say what the validated configuration holds.

use std::time::Duration;

use test_case::test_case;

use super::Config;
use crate::cli::Cli;

/// What main would do with this command line before running anything: the
/// validated configuration, or the one usage line.
fn validate(args: &[&str]) -> Result<Config, String> {
    use clap::Parser;
    let cli = Cli::try_parse_from(std::iter::once("tcpalive").chain(args.iter().copied()))
        .map_err(|e| crate::usage_line(&e))?;
    Config::from_command(&cli.command).map_err(|e| e.to_string())
}

#[test_case(&["connect", "127.0.0.1:0"] => "invalid HOST:PORT '127.0.0.1:0': port 0 is out of range 1..=65535".to_string() ; "connect port zero")]
#[test_case(&["connect", "127.0.0.1:70000"] => "invalid HOST:PORT '127.0.0.1:70000': port 70000 is out of range 1..=65535".to_string() ; "connect_127_0_0_1_70000")]
#[test_case(&["connect", "127.0.0.1"] => "invalid HOST:PORT '127.0.0.1': missing port (expected HOST:PORT)".to_string() ; "connect_127_0_0_1")]
#[test_case(&["connect", "127.0.0.1:"] => "invalid HOST:PORT '127.0.0.1:': missing port (expected HOST:PORT)".to_string() ; "connect_127_0_0_1_2")]
#[test_case(&["connect", ":7000"] => "invalid HOST:PORT ':7000': missing host (expected HOST:PORT)".to_string() ; "connect_7000")]
#[test_case(&["connect", "localhost:http"] => "invalid HOST:PORT 'localhost:http': port 'http' is not a number".to_string() ; "connect_localhost_http")]
#[test_case(&["connect", "::1:7000"] => "invalid HOST:PORT '::1:7000': IPv6 address needs brackets, as in [::1]:7000".to_string() ; "connect_1_7000")]
#[test_case(&["connect", "[::1:7000"] => "invalid HOST:PORT '[::1:7000': missing ']' after the IPv6 address".to_string() ; "connect_1_7000_2")]
#[test_case(&["connect", "[::1]"] => "invalid HOST:PORT '[::1]': missing port (expected [IPv6]:PORT)".to_string() ; "connect_1")]
#[test_case(&["connect", "h:1", "--idle", "0"] => "invalid --idle '0': must be from 1 to 32767 seconds".to_string() ; "connect_h_1_idle_0")]
#[test_case(&["connect", "h:1", "--idle", "40000"] => "invalid --idle '40000': must be from 1 to 32767 seconds".to_string() ; "connect_h_1_idle_40000")]
#[test_case(&["connect", "h:1", "--idle", "1.5s"] => "invalid --idle '1.5s': Linux keepalive takes whole seconds (e.g. 1s, 5s)".to_string() ; "connect_h_1_idle_1_5s")]
#[test_case(&["connect", "h:1", "--idle", "500ms"] => "invalid --idle '500ms': Linux keepalive takes whole seconds (e.g. 1s, 5s)".to_string() ; "connect_h_1_idle_500ms")]
#[test_case(&["connect", "h:1", "--idle", "-5"] => "invalid --idle '-5': not a duration (use 5, 5s, 1500ms, 2m)".to_string() ; "connect_h_1_idle_5")]
#[test_case(&["connect", "h:1", "--idle", "soon"] => "invalid --idle 'soon': not a duration (use 5, 5s, 1500ms, 2m)".to_string() ; "connect_h_1_idle_soon")]
#[test_case(&["connect", "h:1", "--intvl", "0"] => "invalid --intvl '0': must be from 1 to 32767 seconds".to_string() ; "connect_h_1_intvl_0")]
#[test_case(&["connect", "h:1", "--intvl", "2.5"] => "invalid --intvl '2.5': Linux keepalive takes whole seconds (e.g. 1s, 5s)".to_string() ; "connect_h_1_intvl_2_5")]
#[test_case(&["connect", "h:1", "--cnt", "0"] => "invalid --cnt '0': must be from 1 to 127".to_string() ; "connect_h_1_cnt_0")]
#[test_case(&["connect", "h:1", "--cnt", "200"] => "invalid --cnt '200': must be from 1 to 127".to_string() ; "connect_h_1_cnt_200")]
#[test_case(&["connect", "h:1", "--cnt", "-1"] => "invalid --cnt '-1': not a whole number".to_string() ; "connect_h_1_cnt_1")]
#[test_case(&["connect", "h:1", "--cnt", "three"] => "invalid --cnt 'three': not a whole number".to_string() ; "connect_h_1_cnt_three")]
#[test_case(&["connect", "h:1", "--user-timeout", "0"] => "invalid --user-timeout '0': must be longer than zero (leave it out for off)".to_string() ; "connect_h_1_user_timeout_0")]
#[test_case(&["connect", "h:1", "--user-timeout", "1500us"] => "invalid --user-timeout '1500us': has millisecond resolution".to_string() ; "connect_h_1_user_timeout_1500us")]
#[test_case(&["connect", "h:1", "--for", "-1s"] => "invalid --for '-1s': not a duration (use 5, 5s, 1500ms, 2m)".to_string() ; "connect_h_1_for_1s")]
#[test_case(&["connect", "h:1", "--for", "0"] => "invalid --for '0': must be longer than zero".to_string() ; "connect_h_1_for_0")]
#[test_case(&["connect", "h:1", "--connect-timeout", "x"] => "invalid --connect-timeout 'x': not a duration (use 5, 5s, 1500ms, 2m)".to_string() ; "connect_h_1_connect_timeout_x")]
#[test_case(&["connect", "h:1", "--timestamps", "utc"] => "invalid --timestamps 'utc': must be rel or abs".to_string() ; "connect_h_1_timestamps_utc")]
#[test_case(&["connect", "h:1", "--no-keepalive", "--idle", "5"] => "--no-keepalive conflicts with --idle: keepalive settings need keepalive on".to_string() ; "connect_h_1_no_keepalive_idle_5")]
#[test_case(&["connect", "h:1", "--no-keepalive", "--cnt", "3"] => "--no-keepalive conflicts with --cnt: keepalive settings need keepalive on".to_string() ; "connect_h_1_no_keepalive_cnt_3")]
#[test_case(&["listen", "70000"] => "invalid [HOST:]PORT '70000': port 70000 is out of range 0..=65535".to_string() ; "listen_70000")]
#[test_case(&["listen", "127.0.0.1"] => "invalid [HOST:]PORT '127.0.0.1': missing port (expected HOST:PORT)".to_string() ; "listen_127_0_0_1")]
#[test_case(&["listen", "::1:7000"] => "invalid [HOST:]PORT '::1:7000': IPv6 address needs brackets, as in [::1]:7000".to_string() ; "listen_1_7000")]
#[test_case(&["listen", "7000", "--close-after", "1s", "--reset-after", "1s"] => "--close-after conflicts with --reset-after: choose one fault".to_string() ; "listen_7000_close_after_1s_reset_after_1s")]
#[test_case(&["listen", "7000", "--close-after", "never"] => "invalid --close-after 'never': not a duration (use 5, 5s, 1500ms, 2m)".to_string() ; "listen_7000_close_after_never")]
#[test_case(&["listen", "7000", "--max-conns", "0"] => "invalid --max-conns '0': must be from 1 to 1000000".to_string() ; "listen_7000_max_conns_0")]
#[test_case(&["listen", "7000", "--rcvbuf", "10"] => "invalid --rcvbuf '10': must be from 1024 to 67108864".to_string() ; "listen_7000_rcvbuf_10")]
#[test_case(&["listen", "7000", "--rcvbuf", "x"] => "invalid --rcvbuf 'x': not a whole number".to_string() ; "listen_7000_rcvbuf_x")]
#[test_case(&["connect", "h:1", "--bogus"] => "unexpected argument '--bogus' found (see --help)".to_string() ; "connect_h_1_bogus")]
#[test_case(&["listen", "[fe80::1%nosuchdev]:0"] => "invalid [HOST:]PORT '[fe80::1%nosuchdev]:0': no network interface 'nosuchdev' for the IPv6 zone".to_string() ; "listen_fe80_1_nosuchdev_0")]
#[test_case(&["listen", "1.2.3.4.5:0"] => "invalid [HOST:]PORT '1.2.3.4.5:0': '1.2.3.4.5' is not an IPv4 address".to_string() ; "listen_1_2_3_4_5_0")]
#[test_case(&["watch", "--metrics", "127.0.0.1:70000"] => "invalid --metrics '127.0.0.1:70000': port 70000 is out of range 0..=65535".to_string() ; "watch_metrics_port_range")]
#[test_case(&["watch", "--metrics", "99999"] => "invalid --metrics '99999': port 99999 is out of range 0..=65535".to_string() ; "watch_metrics_bare_port_range")]
#[test_case(&["watch", "--metrics", "::1:9100"] => "invalid --metrics '::1:9100': IPv6 address needs brackets, as in [::1]:7000".to_string() ; "watch_metrics_ipv6_brackets")]
#[test_case(&["watch", "--metrics", "9100", "--metrics-file", "/tmp/t.prom"] => "--metrics conflicts with --metrics-file: choose one way to expose the metrics".to_string() ; "watch_metrics_both")]
#[test_case(&["watch", "--metrics-file", "/tmp/tcpalive.txt"] => "invalid --metrics-file '/tmp/tcpalive.txt': must end in .prom (node_exporter's textfile collector reads only *.prom files)".to_string() ; "watch_metrics_file_not_prom")]
#[test_case(&["watch", "--metrics-file", "/nonexistent-dir/t.prom"] => "invalid --metrics-file '/nonexistent-dir/t.prom': no directory '/nonexistent-dir'".to_string() ; "watch_metrics_file_no_dir")]
#[test_case(&["man", "nosuch"] => "invalid PAGE 'nosuch': no such page (connect, listen, watch, plan, tune, lab, idle-limit, explain, demo, completions, man)".to_string() ; "man_unknown_page")]
#[test_case(&["explain", "x.pcap", "--conn", "0"] => "invalid --conn '0': connections are numbered from 1".to_string() ; "explain_conn_zero")]
#[test_case(&["explain", "x.pcap", "--timestamps", "wall"] => "invalid --timestamps 'wall': must be rel or abs".to_string() ; "explain_timestamps")]
#[test_case(&["man", "--dir", "/dev/null"] => "invalid --dir '/dev/null': exists and is not a directory".to_string() ; "man_dir_not_a_directory")]
#[test_case(&["connect", "h:1", "--expect", "dead"] => "invalid --expect 'dead': not an outcome (alive, eof, reset, timeout, unreachable, heartbeat-timeout, connect-failed, interrupted, error, ambiguous)".to_string() ; "expect_unknown_outcome")]
#[test_case(&["connect", "h:1", "--heartbeat", "1s", "--heartbeat-expect", "+PONG"] => "invalid --heartbeat-expect '+PONG': needs --heartbeat-payload (tcpalive's own heartbeats check their PONG already)".to_string() ; "heartbeat_expect_without_payload")]
#[test_case(&["connect", "h:1", "--heartbeat", "1s", "--heartbeat-payload", "PING\\r\\n", "--heartbeat-expect", ""] => "invalid --heartbeat-expect '': must not be empty".to_string() ; "heartbeat_expect_empty")]
#[test_case(&["connect", "h:1", "--heartbeat", "1s", "--heartbeat-payload", "PING\\r\\n", "--heartbeat-expect", "\\q"] => "invalid --heartbeat-expect '\\q': unknown escape '\\q'".to_string() ; "heartbeat_expect_bad_escape")]
#[test_case(&["watch", "--peer", "[]"] => "invalid --peer '[]': '' is not an IPv6 address".to_string() ; "watch_peer")]
#[test_case(&["watch", "--peer", "::1]:80"] => "invalid --peer '::1]:80': '::1]:80' is not an IPv6 address".to_string() ; "watch_peer_1_80")]
#[test_case(&["watch", "--peer", "[db.example]"] => "invalid --peer '[db.example]': 'db.example' is not an IPv6 address".to_string() ; "watch_peer_db_example")]
#[test_case(&["watch", "--pid", "4194304"] => "invalid --pid '4194304': must be from 1 to 4194303".to_string() ; "watch_pid_4194304")]
#[test_case(&["connect", "host name:80"] => "invalid HOST:PORT 'host name:80': 'host name' is not a host name (  is not a letter, digit, '-', '_' or '.')".to_string() ; "connect_host_name_80")]
#[test_case(&["connect", "a\u{200b}b:80"] => "invalid HOST:PORT 'a\u{200b}b:80': 'a\u{200b}b' is not a host name (\\u{200b} is not a letter, digit, '-', '_' or '.')".to_string() ; "connect_a_u_200b_b_80")]
#[test_case(&["connect", "127.0.0.1:+80"] => "invalid HOST:PORT '127.0.0.1:+80': port '+80' is not a number".to_string() ; "connect_127_0_0_1_80")]
#[test_case(&["listen", " 80"] => "invalid [HOST:]PORT ' 80': port ' 80' is not a number".to_string() ; "listen_80")]
#[test_case(&["watch", "--port", " 80"] => "invalid --port ' 80': port ' 80' is not a number".to_string() ; "watch_port_80")]
#[test_case(&["connect", "h:1", "--heartbeat", "1ns"] => "invalid --heartbeat '1ns': must be at least 10ms".to_string() ; "connect_h_1_heartbeat_1ns")]
#[test_case(&["connect", "h:1", "--send-every", "1ns"] => "invalid --send-every '1ns': must be at least 10ms".to_string() ; "connect_h_1_send_every_1ns")]
#[test_case(&["listen", "0", "--close-after", "18446744073709551615s"] => "invalid --close-after '18446744073709551615s': must be at most 365 days".to_string() ; "listen_0_close_after_18446744073709551615s")]
#[test_case(&["listen", "0", "--heartbeat", "18446744073709551615s"] => "invalid --heartbeat '18446744073709551615s': must be at most 365 days".to_string() ; "listen_0_heartbeat_18446744073709551615s")]
#[test_case(&["connect", "h:1", "--heartbeat", "1s", "--heartbeat-timeout", "18446744073709551615s"] => "invalid --heartbeat-timeout '18446744073709551615s': must be at most 365 days".to_string() ; "connect_h_1_heartbeat_1s_heartbeat_timeout_18446744073709551")]
#[test_case(&["connect", "h:1", "--reconnect", "--connect-timeout", "18446744073709551615s"] => "invalid --connect-timeout '18446744073709551615s': must be at most 365 days".to_string() ; "connect_h_1_reconnect_connect_timeout_18446744073709551615s")]
#[test_case(&["connect", "h:1", "--reconnect", "--send-every", "100000000d"] => "invalid --send-every '100000000d': must be at most 365 days".to_string() ; "connect_h_1_reconnect_send_every_100000000d")]
#[test_case(&["connect"] => "the following required arguments were not provided: <HOST:PORT> (see --help)".to_string() ; "connect")]
#[test_case(&["watch", "--interval", "5ms"] => "invalid --interval '5ms': must be at least 10ms (shorter would busy-poll the kernel)".to_string() ; "watch_interval_5ms")]
#[test_case(&["tune", "--idle", "2"] => "the following required arguments were not provided: --pid <PID> (see --help)".to_string() ; "tune without pid")]
#[test_case(&["tune", "--pid", "1"] => "tune needs something to change: --idle, --intvl, --cnt, --user-timeout or --no-keepalive".to_string() ; "tune with nothing to change")]
#[test_case(&["tune", "--pid", "1", "--idle", "0"] => "invalid --idle '0': must be from 1 to 32767 seconds".to_string() ; "tune idle zero")]
#[test_case(&["tune", "--pid", "1", "--no-keepalive", "--idle", "2"] => "--no-keepalive conflicts with --idle: keepalive settings need keepalive on".to_string() ; "tune no keepalive with idle")]
#[test_case(&["tune", "--pid", "4194304", "--idle", "2"] => "invalid --pid '4194304': must be from 1 to 4194303".to_string() ; "tune pid out of range")]
#[test_case(&["tune", "--pid", "1", "--idle", "2", "--port", "0"] => "invalid --port '0': port 0 is out of range 1..=65535".to_string() ; "tune port zero")]
#[test_case(&["idle-limit", "h:1", "--max", "1s"] => "invalid --max '1s': must be at least 2s".to_string() ; "idle_limit_max_1s")]
#[test_case(&["idle-limit", "h:1", "--max", "2d"] => "invalid --max '2d': must be at most 24h".to_string() ; "idle_limit_max_2d")]
#[test_case(&["idle-limit", "h:1", "--resolution", "50ms"] => "invalid --resolution '50ms': must be at least 100ms".to_string() ; "idle_limit_resolution_50ms")]
#[test_case(&["idle-limit", "h:1", "--max", "10s", "--resolution", "6s"] => "invalid --resolution '6s': must be at most half of --max".to_string() ; "idle_limit_resolution_over_half_max")]
#[test_case(&["idle-limit", "h:1", "--direction", "up"] => "invalid --direction 'up': must be out, in or both".to_string() ; "idle_limit_direction_up")]
#[test_case(&["lab", "list", "--idle", "3"] => "unexpected argument '--idle' found (see --help)".to_string() ; "lab_list_refuses_idle")]
#[test_case(&["lab", "--idle", "3", "list"] => "invalid --idle '3': does not apply to lab list (it describes the scenarios; give a scenario to run one)".to_string() ; "lab_list_refuses_idle_before_it")]
#[test_case(&["lab", "list", "--for", "3s"] => "unexpected argument '--for' found (see --help)".to_string() ; "lab_list_refuses_for")]
#[test_case(&["lab", "list", "cable-pull"] => "unexpected argument 'cable-pull' found (see --help)".to_string() ; "lab_list_takes_no_scenario")]
#[test_case(&["lab"] => "the following required arguments were not provided: <SCENARIO> (see --help)".to_string() ; "lab_needs_a_scenario")]
#[test_case(&["lab", "list", "--both"] => "unexpected argument '--both' found (see --help)".to_string() ; "lab_list_refuses_both")]
#[test_case(&["lab", "--both", "list"] => "invalid --both '': does not apply to lab list (it describes the scenarios; give a scenario to run one)".to_string() ; "lab_list_refuses_both_before_it")]
#[test_case(&["idle-limit", "h:1", "--expect", "timeout"] => "unexpected argument '--expect' found (see --help)".to_string() ; "idle_limit_refuses_expect")]
#[test_case(&["idle-limit", "h:1", "--within", "1s..2s"] => "unexpected argument '--within' found (see --help)".to_string() ; "idle_limit_refuses_within")]
#[test_case(&["idle-limit", "h:1", "--parallel", "3"] => "invalid --parallel '3': must be from 4 to 1000 (two flows per direction)".to_string() ; "idle_limit_parallel_3_both")]
#[test_case(&["idle-limit", "h:1", "--parallel", "0"] => "invalid --parallel '0': must be from 4 to 1000 (two flows per direction)".to_string() ; "idle_limit_parallel_0_says_the_rule")]
#[test_case(&["idle-limit", "h:1", "--direction", "out", "--parallel", "1"] => "invalid --parallel '1': must be from 2 to 1000 (two flows per direction)".to_string() ; "idle_limit_parallel_1_one_direction")]
#[test_case(&["idle-limit", "h:1", "--parallel", "x"] => "invalid --parallel 'x': not a whole number".to_string() ; "idle_limit_parallel_not_a_number")]
#[test_case(&["idle-limit", "h:1", "--parallel", "5000"] => "invalid --parallel '5000': must be from 4 to 1000 (two flows per direction)".to_string() ; "idle_limit_parallel_5000")]
#[test_case(&["idle-limit", "h:1", "--idle", "5"] => "invalid --idle '5': needs --verify".to_string() ; "idle_limit_idle_without_verify")]
#[test_case(&["idle-limit", "h:1", "--verify", "--idle", "1.5s"] => "invalid --idle '1.5s': Linux keepalive takes whole seconds (e.g. 1s, 5s)".to_string() ; "idle_limit_verify_idle_fraction")]
#[test_case(&["idle-limit", "h:1", "--verify", "--cnt", "0"] => "invalid --cnt '0': must be from 1 to 127".to_string() ; "idle_limit_verify_cnt_0")]
#[test_case(&["idle-limit", "h:1", "--for", "10s"] => "unexpected argument '--for' found (see --help)".to_string() ; "idle_limit_for")]
#[test_case(&["idle-limit", "h:0"] => "invalid HOST:PORT 'h:0': port 0 is out of range 1..=65535".to_string() ; "idle_limit_port_0")]
fn rejected(args: &[&str]) -> String {
    validate(args).expect_err("should be rejected")
}

#[test_case(&["connect", "127.0.0.1:7000"] ; "defaults")]
#[test_case(&["connect", "[::1]:7000", "--idle", "5", "--intvl", "5", "--cnt", "3"] ; "ipv6 with keepalive")]
#[test_case(&["connect", "localhost:7000", "--user-timeout", "1500ms"] ; "user timeout in ms")]
#[test_case(&["connect", "h:1", "--for", "365d"] ; "the longest duration")]
#[test_case(&["connect", "h:1", "--heartbeat", "10ms"] ; "the shortest heartbeat")]
#[test_case(&["connect", "h:1", "--heartbeat", "1s", "--heartbeat-payload", "PING\\r\\n"] ; "payload escapes")]
#[test_case(&["listen", "7000", "--reset-after", "2s", "--once"] ; "listen fault")]
#[test_case(&["listen", "[::1]:0"] ; "listen ipv6 any port")]
#[test_case(&["watch", "--port", "6379", "--peer", "[::1]:80", "--interval", "50ms"] ; "watch filters")]
#[test_case(&["watch", "--peer", "fe80::1%1"] ; "watch bare ipv6 with numeric zone")]
#[test_case(&["watch", "--metrics", "9100"] ; "watch metrics bare port")]
#[test_case(&["watch", "--metrics", "127.0.0.1:0"] ; "watch metrics any port")]
#[test_case(&["watch", "--metrics", "[::1]:9100"] ; "watch metrics ipv6")]
#[test_case(&["watch", "--metrics-file", "/tmp/tcpalive.prom"] ; "watch metrics file")]
#[test_case(&["man"] ; "man top page")]
#[test_case(&["man", "connect"] ; "man subcommand page")]
#[test_case(&["man", "tcpalive-watch"] ; "man page by file name")]
#[test_case(&["man", "--dir", "/tmp"] ; "man dir")]
#[test_case(&["connect", "h:1", "--timestamps", "abs", "--expect", "timeout"] ; "suggested values parse as text")]
#[test_case(&["connect", "h:1", "--heartbeat", "1s", "--heartbeat-payload", "PING\\r\\n", "--heartbeat-expect", "+PONG"] ; "heartbeat expect")]
#[test_case(&["completions", "bash"] ; "completions")]
#[test_case(&["tune", "--pid", "1", "--idle", "2", "--intvl", "1", "--cnt", "2", "--user-timeout", "4s", "--listening", "--dry-run", "--json"] ; "tune everything")]
#[test_case(&["tune", "--pid", "1", "--no-keepalive", "--peer", "127.0.0.1:80"] ; "tune keepalive off for one peer")]
#[test_case(&["idle-limit", "h:1"] ; "idle limit defaults")]
#[test_case(&["idle-limit", "h:1", "--direction", "in", "--parallel", "2", "--max", "2s", "--resolution", "1s"] ; "idle limit smallest")]
#[test_case(&["idle-limit", "h:1", "--verify", "--idle", "7", "--intvl", "2", "--cnt", "3"] ; "idle limit verify")]
#[test_case(&["idle-limit", "h:1", "--json", "--quiet", "--timestamps", "abs"] ; "idle limit output options")]
#[test_case(&["lab", "list"] ; "lab list")]
#[test_case(&["lab", "list", "--json"] ; "lab list json")]
#[test_case(&["lab", "--json", "list"] ; "lab list json before it")]
#[test_case(&["lab", "cable-pull", "--idle", "2", "--expect", "timeout", "--both"] ; "lab scenario with options")]
fn accepted(args: &[&str]) {
    if let Err(e) = validate(args) {
        panic!("{args:?} rejected: {e}");
    }
}

#[test]
fn accepted_values_are_the_ones_given() {
    let Ok(Config::Connect(c)) = validate(&[
        "connect",
        "[::1]:7000",
        "--idle",
        "5",
        "--intvl",
        "2",
        "--cnt",
        "3",
        "--user-timeout",
        "1500ms",
        "--heartbeat",
        "1s",
    ]) else {
        panic!("rejected");
    };
    assert_eq!((c.target.host.as_str(), c.target.port), ("::1", 7000));
    assert_eq!(
        (c.keepalive.idle_s, c.keepalive.intvl_s, c.keepalive.cnt),
        (Some(5), Some(2), Some(3))
    );
    assert_eq!(c.keepalive.user_timeout, Some(Duration::from_millis(1500)));
    let hb = c.heartbeat.expect("heartbeat");
    assert_eq!(
        (hb.every, hb.timeout),
        (Duration::from_secs(1), Duration::from_secs(3))
    );
}

#[test]
fn pid_of_a_live_process_is_accepted() {
    let me = std::process::id().to_string();
    assert!(
        matches!(validate(&["watch", "--pid", &me]), Ok(Config::Watch(w)) if w.pid == Some(std::process::id()))
    );
}

#[test]
fn metrics_targets_are_the_ones_given() {
    use super::{Endpoint, MetricsTarget};
    let Ok(Config::Watch(w)) = validate(&["watch", "--metrics", "9100"]) else {
        panic!("rejected");
    };
    assert_eq!(
        w.metrics,
        Some(MetricsTarget::Serve(Endpoint {
            host: "0.0.0.0".into(),
            port: 9100
        }))
    );
    let Ok(Config::Watch(w)) = validate(&["watch", "--metrics-file", "/tmp/x.prom"]) else {
        panic!("rejected");
    };
    assert_eq!(w.metrics, Some(MetricsTarget::File("/tmp/x.prom".into())));
}

#[test]
fn idle_limit_values_are_the_ones_given() {
    use crate::model::idle_limit::Direction;
    let Ok(Config::IdleLimit(c)) = validate(&[
        "idle-limit",
        "10.0.0.1:7000",
        "--max",
        "10m",
        "--resolution",
        "500ms",
        "--direction",
        "out",
        "--parallel",
        "50",
        "--verify",
        "--idle",
        "200",
    ]) else {
        panic!("rejected");
    };
    assert_eq!((c.target.host.as_str(), c.target.port), ("10.0.0.1", 7000));
    assert_eq!(
        (c.max, c.resolution, c.parallel),
        (Duration::from_secs(600), Duration::from_millis(500), 50)
    );
    assert_eq!(c.directions, vec![Direction::Out]);
    let v = c.verify.expect("verify");
    assert_eq!((v.idle_s, v.intvl_s, v.cnt), (Some(200), None, None));
    let Ok(Config::IdleLimit(d)) = validate(&["idle-limit", "h:1"]) else {
        panic!("rejected");
    };
    assert_eq!(d.directions, vec![Direction::Out, Direction::In]);
    assert_eq!(
        (d.max, d.resolution),
        (Duration::from_secs(3600), Duration::from_secs(1))
    );
    assert!(d.verify.is_none());
}

/// The long options a subcommand offers (its `--help`, its man page and the
/// completion scripts are all built from this definition).
fn offered(path: &str) -> Vec<String> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    for name in path.split(' ') {
        cmd = cmd
            .find_subcommand(name)
            .unwrap_or_else(|| panic!("no subcommand {name} in {path}"))
            .clone();
    }
    cmd.get_arguments()
        .filter_map(|a| a.get_long())
        .map(|l| format!("--{l}"))
        .collect()
}

/// What a subcommand would refuse is not offered: `idle-limit` measures a path
/// and ends by itself (no `--expect`, `--within`, `--for`); `lab list` only
/// describes the scenarios (its one option is `--json`).
#[test_case("idle-limit", &["--expect", "--within", "--for", "--no-keepalive", "--user-timeout", "--heartbeat"] ; "idle_limit")]
#[test_case("lab list", &["--idle", "--intvl", "--cnt", "--no-keepalive", "--user-timeout", "--heartbeat", "--heartbeat-timeout", "--for", "--quiet", "--verbose", "--timestamps", "--expect", "--within", "--fault-at", "--both"] ; "lab_list")]
#[test_case("demo", &["--for", "--expect", "--within", "--idle", "--quiet", "--timestamps"] ; "demo")]
#[test_case("plan", &["--for", "--expect", "--within", "--quiet", "--verbose", "--timestamps"] ; "plan")]
#[test_case("tune", &["--for", "--expect", "--within", "--quiet", "--verbose", "--timestamps", "--heartbeat"] ; "tune")]
#[test_case("explain", &["--for", "--expect", "--within", "--idle", "--heartbeat"] ; "explain")]
fn not_offered(path: &str, absent: &[&str]) {
    let offered = offered(path);
    for flag in absent {
        assert!(
            !offered.iter().any(|o| o == flag),
            "{path} --help offers {flag}: {offered:?}"
        );
    }
}

#[test]
fn lab_list_offers_only_json() {
    assert_eq!(offered("lab list"), vec!["--json".to_string()]);
}
