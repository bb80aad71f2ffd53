//! Keepalive and user-timeout options: whole seconds within the kernel's ranges,
//! the user timeout in milliseconds, and the conflicts between them.

use std::time::Duration;

use super::duration::validate_duration;
use super::{ConfigError, invalid};
use crate::cli::KeepaliveArgs;

/// The kernel's limits for keepalive options (net/ipv4/tcp.c: MAX_TCP_KEEPIDLE etc.).
pub const MAX_KEEPIDLE_S: u64 = 32767;
pub const MAX_KEEPINTVL_S: u64 = 32767;
pub const MAX_KEEPCNT: u64 = 127;
/// The validated keepalive options: the model's request type (`model` and `sys`
/// take it without knowing about the command line), built here from the flags.
pub use crate::model::tune::KeepaliveRequest as KeepaliveConfig;
/// `--idle`, when given: whole seconds within the kernel's range.
pub fn validate_idle(value: Option<&str>) -> Result<Option<u32>, ConfigError> {
    value
        .map(|v| validate_keepalive_seconds("--idle", v, MAX_KEEPIDLE_S))
        .transpose()
}

/// `--intvl`, when given: whole seconds within the kernel's range.
pub fn validate_intvl(value: Option<&str>) -> Result<Option<u32>, ConfigError> {
    value
        .map(|v| validate_keepalive_seconds("--intvl", v, MAX_KEEPINTVL_S))
        .transpose()
}

/// `--cnt`, when given: 1..=127.
pub fn validate_cnt(value: Option<&str>) -> Result<Option<u32>, ConfigError> {
    value
        .map(|v| validate_count("--cnt", v, 1, MAX_KEEPCNT).map(|n| n as u32))
        .transpose()
}

impl KeepaliveConfig {
    pub fn from_args(args: &KeepaliveArgs) -> Result<Self, ConfigError> {
        validate_keepalive_conflicts(args)?;
        Ok(KeepaliveConfig {
            enabled: !args.no_keepalive,
            idle_s: validate_idle(args.idle.as_deref())?,
            intvl_s: validate_intvl(args.intvl.as_deref())?,
            cnt: validate_cnt(args.cnt.as_deref())?,
            user_timeout: args
                .user_timeout
                .as_deref()
                .map(validate_user_timeout)
                .transpose()?,
        })
    }
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
