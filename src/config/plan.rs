//! Validated `plan` settings: one `validate_*` per rule, each naming the flag and
//! the value, so a bad invocation gets one clear line and exit code 2.

use std::time::Duration;

use super::{ConfigError, KeepaliveConfig, invalid, validate_duration, validate_positive};
use crate::cli::PlanArgs;
use crate::model::plan::presets::{self, PathPreset};
use crate::model::plan::{
    PlanRequest, Platform, Runtime, RuntimeUserTimeout, RuntimeValue, Shape, Stack,
    idle_limit_ceiling,
};

#[derive(Debug, Clone, PartialEq)]
pub struct PlanConfig {
    pub stack: Stack,
    pub request: PlanRequest,
    /// `--detect-within`: recommend settings instead of evaluating given ones.
    pub detect_within: Option<Duration>,
    /// `--path list`: list the presets instead of planning.
    pub list_paths: bool,
    pub json: bool,
}

/// The longest `--rtt` worth modelling (Linux's RTO tops out at 120 s).
pub const MAX_RTT: Duration = Duration::from_secs(60);

impl PlanConfig {
    pub fn from_args(args: &PlanArgs) -> Result<Self, ConfigError> {
        let stack = Stack {
            platform: validate_platform(&args.platform)?,
            runtime: args.runtime.as_deref().map(validate_runtime).transpose()?,
        };
        validate_plan_conflicts(args)?;
        let ka = KeepaliveConfig::from_args(&args.keepalive)?;
        let user_timeout_ms = ka
            .user_timeout
            .map(|d| validate_plan_user_timeout(stack, args.keepalive.user_timeout.as_deref(), d))
            .transpose()?;
        validate_plan_probe_shape(stack, &args.keepalive, &ka)?;
        let detect_within = args
            .detect_within
            .as_deref()
            .map(|v| validate_detect_within(stack, v))
            .transpose()?;
        let idle_limit = args
            .idle_limit
            .as_deref()
            .map(validate_idle_limit)
            .transpose()?;
        let list_paths = args.path.iter().any(|p| p == "list");
        let paths = args
            .path
            .iter()
            .filter(|p| *p != "list")
            .map(|p| validate_path(p))
            .collect::<Result<Vec<_>, _>>()?;
        let rtt = args.rtt.as_deref().map(validate_rtt).transpose()?;
        // curl: one option sets idle and intvl; a lone --intvl means both.
        let idle_s = match (stack.runtime, ka.idle_s, ka.intvl_s) {
            (Some(Runtime::Curl), None, Some(intvl)) => Some(intvl),
            (_, idle, _) => idle,
        };
        Ok(PlanConfig {
            stack,
            request: PlanRequest {
                no_keepalive: !ka.enabled,
                idle_s,
                intvl_s: ka.intvl_s,
                cnt: ka.cnt,
                user_timeout_ms,
                path: presets::combine(idle_limit, &paths),
                rtt,
            },
            detect_within,
            list_paths,
            json: args.json,
        })
    }
}

pub fn validate_platform(value: &str) -> Result<Platform, ConfigError> {
    Platform::from_name(value).ok_or_else(|| {
        invalid(
            "--platform",
            value,
            "must be linux, macos, freebsd or windows",
        )
    })
}

pub fn validate_runtime(value: &str) -> Result<Runtime, ConfigError> {
    Runtime::from_name(value).ok_or_else(|| {
        invalid(
            "--runtime",
            value,
            "must be node, go, java, dotnet, python or curl",
        )
    })
}

/// `--detect-within` chooses the settings itself: it excludes giving them.
pub fn validate_plan_conflicts(args: &PlanArgs) -> Result<(), ConfigError> {
    if args.detect_within.is_none() {
        return Ok(());
    }
    let k = &args.keepalive;
    for (flag, given) in [
        ("--idle", k.idle.is_some()),
        ("--intvl", k.intvl.is_some()),
        ("--cnt", k.cnt.is_some()),
        ("--user-timeout", k.user_timeout.is_some()),
        ("--no-keepalive", k.no_keepalive),
    ] {
        if given {
            return Err(ConfigError::Conflict {
                first: "--detect-within",
                second: flag,
                reason: "--detect-within recommends the keepalive settings itself",
            });
        }
    }
    Ok(())
}

/// The user timeout must exist on the stack, and be whole seconds where its knob
/// takes seconds (macOS TCP_RXT_CONNDROPTIME, Windows TCP_MAXRT).
pub fn validate_plan_user_timeout(
    stack: Stack,
    value: Option<&str>,
    d: Duration,
) -> Result<u32, ConfigError> {
    const FLAG: &str = "--user-timeout";
    let value = value.unwrap_or_default();
    let Some(knob) = stack.platform.facts().user_timeout else {
        return Err(invalid(
            FLAG,
            value,
            format!(
                "{} has no user-timeout option (the busy path ends after its retransmissions)",
                stack.platform.title()
            ),
        ));
    };
    if let Some(r) = stack.runtime.map(Runtime::facts)
        && r.user_timeout == RuntimeUserTimeout::None
    {
        return Err(invalid(
            FLAG,
            value,
            format!("{} cannot set a user timeout", r.title),
        ));
    }
    if knob.seconds && d.subsec_nanos() != 0 {
        return Err(invalid(
            FLAG,
            value,
            format!(
                "{} {} takes whole seconds",
                stack.platform.title(),
                knob.option
            ),
        ));
    }
    // validate_user_timeout already bounded it to i32::MAX milliseconds.
    Ok(u32::try_from(d.as_millis()).unwrap_or(u32::MAX))
}

/// Values a runtime cannot take: curl's one option for idle and intvl.
pub fn validate_plan_probe_shape(
    stack: Stack,
    args: &crate::cli::KeepaliveArgs,
    ka: &KeepaliveConfig,
) -> Result<(), ConfigError> {
    let Some(r) = stack.runtime.map(Runtime::facts) else {
        return Ok(());
    };
    if r.intvl == RuntimeValue::SameAsIdle
        && let (Some(idle), Some(intvl)) = (ka.idle_s, ka.intvl_s)
        && idle != intvl
    {
        return Err(invalid(
            "--intvl",
            args.intvl.as_deref().unwrap_or_default(),
            format!(
                "{} sets idle and interval with one option (--keepalive-time): give the same \
                 value as --idle ({idle}s)",
                r.title
            ),
        ));
    }
    Ok(())
}

/// `--detect-within`: long enough for keepalive to survive one lost probe on this
/// stack (RFC 1122 4.2.3.6).
pub fn validate_detect_within(stack: Stack, value: &str) -> Result<Duration, ConfigError> {
    const FLAG: &str = "--detect-within";
    let d = validate_positive(FLAG, value)?;
    let shape = Shape::of(stack);
    let min = shape.min_detect_s();
    if d < Duration::from_secs(u64::from(min)) {
        let how = match shape {
            Shape::FixedProbes { intvl, cnt } => {
                format!("idle 1s + its fixed {cnt} probes {intvl}s apart")
            }
            Shape::FixedCount { cnt } => format!("idle 1s + its fixed {cnt} probes 1s apart"),
            Shape::Free | Shape::IdleIsIntvl => {
                "idle 1s + 2 probes 1s apart, since one lost probe must not end a connection \
                 (RFC 1122 4.2.3.6)"
                    .to_string()
            }
        };
        return Err(invalid(
            FLAG,
            value,
            format!(
                "{} needs at least {min}s ({how}); detect faster with application heartbeats",
                stack.title()
            ),
        ));
    }
    // Linux's largest idle plus 9 of its largest intervals: beyond this nothing changes.
    if d > Duration::from_secs(10 * 32767) {
        return Err(invalid(FLAG, value, "must be at most 327670s (~91h)"));
    }
    Ok(d)
}

/// `--idle-limit`: keepalive traffic must come at least a second before it.
pub fn validate_idle_limit(value: &str) -> Result<Duration, ConfigError> {
    const FLAG: &str = "--idle-limit";
    let d = validate_duration(FLAG, value)?;
    if idle_limit_ceiling(d).is_none() {
        return Err(invalid(
            FLAG,
            value,
            "must be at least 2s: keepalive idle cannot go below 1s and must stay under the \
             limit; keep such a path alive with application heartbeats",
        ));
    }
    Ok(d)
}

/// `--path NAME`: one of the presets (`list` is handled before this).
pub fn validate_path(value: &str) -> Result<&'static PathPreset, ConfigError> {
    presets::preset(value).ok_or_else(|| {
        invalid(
            "--path",
            value,
            format!(
                "not a known middlebox ({}, or list)",
                presets::names().join(", ")
            ),
        )
    })
}

/// `--rtt`: the path's round-trip time, to narrow the busy-path range.
pub fn validate_rtt(value: &str) -> Result<Duration, ConfigError> {
    const FLAG: &str = "--rtt";
    let d = validate_positive(FLAG, value)?;
    if d > MAX_RTT {
        return Err(invalid(FLAG, value, "must be at most 60s"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{KeepaliveArgs, PlanArgs};

    fn args(f: impl FnOnce(&mut PlanArgs)) -> PlanArgs {
        let mut a = PlanArgs {
            platform: "linux".to_string(),
            runtime: None,
            keepalive: KeepaliveArgs {
                idle: None,
                intvl: None,
                cnt: None,
                no_keepalive: false,
                user_timeout: None,
            },
            detect_within: None,
            idle_limit: None,
            path: Vec::new(),
            rtt: None,
            json: false,
        };
        f(&mut a);
        a
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn plan_config_rows() {
        type Row = (PlanArgs, Result<(), &'static str>);
        let rows: Vec<Row> = vec![
            (args(|_| {}), Ok(())),
            (
                args(|a| {
                    a.runtime = s("node");
                    a.keepalive.idle = s("5");
                }),
                Ok(()),
            ),
            (args(|a| a.detect_within = s("60s")), Ok(())),
            (
                args(|a| {
                    a.detect_within = s("5m");
                    a.idle_limit = s("30s");
                    a.rtt = s("80ms");
                }),
                Ok(()),
            ),
            (
                args(|a| a.platform = "solaris".to_string()),
                Err("invalid --platform 'solaris': must be linux, macos, freebsd or windows"),
            ),
            (
                args(|a| a.runtime = s("ruby")),
                Err("invalid --runtime 'ruby': must be node, go, java, dotnet, python or curl"),
            ),
            (
                args(|a| {
                    a.detect_within = s("60");
                    a.keepalive.idle = s("5");
                }),
                Err(
                    "--detect-within conflicts with --idle: --detect-within recommends the keepalive settings itself",
                ),
            ),
            (
                args(|a| a.detect_within = s("2s")),
                Err(
                    "invalid --detect-within '2s': Linux needs at least 3s (idle 1s + 2 probes 1s apart, since one lost probe must not end a connection (RFC 1122 4.2.3.6)); detect faster with application heartbeats",
                ),
            ),
            (
                args(|a| {
                    a.runtime = s("node");
                    a.detect_within = s("10s");
                }),
                Err(
                    "invalid --detect-within '10s': Node.js on Linux needs at least 11s (idle 1s + its fixed 10 probes 1s apart); detect faster with application heartbeats",
                ),
            ),
            (
                args(|a| a.detect_within = s("0")),
                Err("invalid --detect-within '0': must be longer than zero"),
            ),
            (
                args(|a| a.idle_limit = s("1s")),
                Err(
                    "invalid --idle-limit '1s': must be at least 2s: keepalive idle cannot go below 1s and must stay under the limit; keep such a path alive with application heartbeats",
                ),
            ),
            (
                args(|a| a.path = vec!["aws-nlb".to_string(), "azure-lb".to_string()]),
                Ok(()),
            ),
            (args(|a| a.path = vec!["list".to_string()]), Ok(())),
            (
                args(|a| a.path = vec!["aws-elb".to_string()]),
                Err(
                    "invalid --path 'aws-elb': not a known middlebox (aws-alb, azure-lb, azure-nat-gateway, aws-nlb, aws-nat-gateway, docker-swarm, gcp-cloud-nat, rfc5382, kube-proxy, linux-conntrack, or list)",
                ),
            ),
            (
                args(|a| a.rtt = s("2m")),
                Err("invalid --rtt '2m': must be at most 60s"),
            ),
            (
                args(|a| {
                    a.platform = "freebsd".to_string();
                    a.keepalive.user_timeout = s("30s");
                }),
                Err(
                    "invalid --user-timeout '30s': FreeBSD has no user-timeout option (the busy path ends after its retransmissions)",
                ),
            ),
            (
                args(|a| {
                    a.runtime = s("java");
                    a.keepalive.user_timeout = s("30s");
                }),
                Err("invalid --user-timeout '30s': Java cannot set a user timeout"),
            ),
            (
                args(|a| {
                    a.platform = "macos".to_string();
                    a.keepalive.user_timeout = s("1500ms");
                }),
                Err(
                    "invalid --user-timeout '1500ms': macOS TCP_RXT_CONNDROPTIME takes whole seconds",
                ),
            ),
            (
                args(|a| {
                    a.runtime = s("curl");
                    a.keepalive.idle = s("30");
                    a.keepalive.intvl = s("10");
                }),
                Err(
                    "invalid --intvl '10': curl sets idle and interval with one option (--keepalive-time): give the same value as --idle (30s)",
                ),
            ),
            // The Linux ranges of the shared keepalive flags still apply.
            (
                args(|a| a.keepalive.cnt = s("0")),
                Err("invalid --cnt '0': must be from 1 to 127"),
            ),
        ];
        for (a, want) in rows {
            let got = PlanConfig::from_args(&a)
                .map(|_| ())
                .map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_string), "{a:?}");
        }
    }

    #[test]
    fn paths_combine_with_idle_limit() {
        let c = PlanConfig::from_args(&args(|a| {
            a.path = vec!["linux-conntrack".to_string(), "aws-nlb".to_string()];
            a.idle_limit = s("10m");
        }))
        .expect("valid");
        let path = c.request.path.expect("a limit");
        assert_eq!(path.limit, Duration::from_secs(350));
        assert_eq!(path.by.map(|p| p.name), Some("aws-nlb"));
        assert_eq!(path.presets.len(), 2);
        assert!(!c.list_paths);
        let c = PlanConfig::from_args(&args(|a| a.path = vec!["list".to_string()])).unwrap();
        assert!(c.list_paths);
        assert_eq!(c.request.path, None);
    }

    #[test]
    fn curl_lone_intvl_sets_idle() {
        let c = PlanConfig::from_args(&args(|a| {
            a.runtime = s("curl");
            a.keepalive.intvl = s("20");
        }))
        .expect("valid");
        assert_eq!(c.request.idle_s, Some(20));
    }
}
