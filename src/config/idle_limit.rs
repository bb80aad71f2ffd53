//! `idle-limit`'s validated settings: the range and resolution of the measurement,
//! the directions, the flow budget, and `--verify`'s keepalive.

use std::time::Duration;

use super::address::{Endpoint, validate_endpoint};
use super::duration::validate_positive;
use super::keepalive::validate_count;
use super::keepalive::{validate_cnt, validate_idle, validate_intvl};
use super::run::RunConfig;
use super::{ConfigError, invalid};
use crate::cli::IdleLimitArgs;
use crate::model::idle_limit::Direction;

/// The finest `--resolution`: below it the wake-up jitter of both ends and the
/// middlebox's own timer granularity dominate.
pub const MIN_RESOLUTION: Duration = Duration::from_millis(100);
/// The longest `--max`: a day of holding flows open is already a long measurement.
pub const MAX_MAX: Duration = Duration::from_secs(24 * 3600);
/// The most test flows per round: each is a descriptor on both ends.
pub const MAX_PARALLEL: u64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyConfig {
    /// `None`: the recommendation's value.
    pub idle_s: Option<u32>,
    pub intvl_s: Option<u32>,
    pub cnt: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleLimitConfig {
    pub target: Endpoint,
    pub max: Duration,
    pub resolution: Duration,
    pub directions: Vec<Direction>,
    pub parallel: usize,
    pub verify: Option<VerifyConfig>,
    pub connect_timeout: Duration,
    pub run: RunConfig,
}

impl IdleLimitConfig {
    pub fn from_args(args: &IdleLimitArgs) -> Result<Self, ConfigError> {
        let max = validate_max(&args.max)?;
        let resolution = validate_resolution(&args.resolution, max)?;
        let directions = validate_direction(&args.direction)?;
        let parallel = validate_parallel(&args.parallel, directions.len())?;
        let run = RunConfig::from_output(&args.output)?;
        Ok(IdleLimitConfig {
            target: validate_endpoint("HOST:PORT", &args.target, false)?,
            max,
            resolution,
            directions,
            parallel,
            verify: validate_verify(args)?,
            connect_timeout: validate_positive("--connect-timeout", &args.connect_timeout)?,
            run,
        })
    }
}

pub fn validate_max(value: &str) -> Result<Duration, ConfigError> {
    let d = validate_positive("--max", value)?;
    if d < Duration::from_secs(2) {
        return Err(invalid("--max", value, "must be at least 2s"));
    }
    if d > MAX_MAX {
        return Err(invalid("--max", value, "must be at most 24h"));
    }
    Ok(d)
}

pub fn validate_resolution(value: &str, max: Duration) -> Result<Duration, ConfigError> {
    let d = validate_positive("--resolution", value)?;
    if d < MIN_RESOLUTION {
        return Err(invalid("--resolution", value, "must be at least 100ms"));
    }
    if d.saturating_mul(2) > max {
        return Err(invalid(
            "--resolution",
            value,
            "must be at most half of --max",
        ));
    }
    Ok(d)
}

pub fn validate_direction(value: &str) -> Result<Vec<Direction>, ConfigError> {
    match value {
        "out" => Ok(vec![Direction::Out]),
        "in" => Ok(vec![Direction::In]),
        "both" => Ok(vec![Direction::Out, Direction::In]),
        _ => Err(invalid("--direction", value, "must be out, in or both")),
    }
}

/// At least two flows per direction per round; the range in the message is the
/// rule (so `--parallel 0` and `--parallel 3` are refused with the same words).
pub fn validate_parallel(value: &str, directions: usize) -> Result<usize, ConfigError> {
    let least = 2 * directions as u64;
    let n = validate_count("--parallel", value, 0, u64::MAX)?;
    if !(least..=MAX_PARALLEL).contains(&n) {
        return Err(invalid(
            "--parallel",
            value,
            format!("must be from {least} to {MAX_PARALLEL} (two flows per direction)"),
        ));
    }
    Ok(n as usize)
}

/// `--idle`/`--intvl`/`--cnt` only mean something with `--verify`.
pub fn validate_verify(args: &IdleLimitArgs) -> Result<Option<VerifyConfig>, ConfigError> {
    if !args.verify {
        for (flag, value) in [
            ("--idle", &args.idle),
            ("--intvl", &args.intvl),
            ("--cnt", &args.cnt),
        ] {
            if let Some(v) = value {
                return Err(invalid(flag, v, "needs --verify"));
            }
        }
        return Ok(None);
    }
    Ok(Some(VerifyConfig {
        idle_s: validate_idle(args.idle.as_deref())?,
        intvl_s: validate_intvl(args.intvl.as_deref())?,
        cnt: validate_cnt(args.cnt.as_deref())?,
    }))
}
