//! Durations on the command line: a bare number is seconds, otherwise humantime.
//! Every duration flag is bounded: at most [`MAX_DURATION`] (a year), so no later
//! arithmetic on it can overflow, and flags that schedule work have a minimum.

use std::time::Duration;

use super::{ConfigError, invalid};

/// The longest duration any flag takes. Longer values are typing mistakes, and
/// this bound keeps every sum and product of durations far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

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

/// Any duration flag: parsed and at most [`MAX_DURATION`].
pub fn validate_duration(flag: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let d = parse_duration(value).map_err(|reason| invalid(flag, value, reason))?;
    if d > MAX_DURATION {
        return Err(invalid(flag, value, "must be at most 365 days"));
    }
    Ok(d)
}

/// A duration that must be longer than zero (--for, --close-after, ...).
pub fn validate_positive(flag: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let d = validate_duration(flag, value)?;
    if d.is_zero() {
        return Err(invalid(flag, value, "must be longer than zero"));
    }
    Ok(d)
}

/// A duration with a floor: flags that schedule work (`--send-every`,
/// `--heartbeat`) would busy-loop or fire at once below it.
pub fn validate_at_least(
    flag: &'static str,
    value: &str,
    min: Duration,
) -> Result<Duration, ConfigError> {
    let d = validate_duration(flag, value)?;
    if d < min {
        return Err(invalid(
            flag,
            value,
            format!("must be at least {}", humantime::format_duration(min)),
        ));
    }
    Ok(d)
}
