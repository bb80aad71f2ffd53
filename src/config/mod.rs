//! Validated settings: the second stage after `cli.rs`, split by concern
//! (durations, addresses, keepalive options, run options, per-command assembly).
//!
//! Every rule is one small `validate_*` function whose error names the flag and the
//! value, so a bad invocation gets exactly one clear line and exit code 2. Nothing
//! is applied to a socket before all of this has passed.

mod address;
#[cfg(test)]
mod argv_tests;
mod commands;
mod duration;
pub mod explain;
pub mod idle_limit;
mod keepalive;
mod lab;
pub mod plan;
#[cfg(test)]
mod props;
mod run;
#[cfg(test)]
mod tests;
mod tune;

use thiserror::Error;

pub use address::*;
pub use commands::*;
pub use duration::*;
pub use keepalive::*;
pub use lab::*;
pub use run::*;
pub use tune::*;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid {flag} '{value}': {reason}")]
    Invalid {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("{command} needs {what}")]
    Missing {
        command: &'static str,
        what: &'static str,
    },
    #[error("{first} conflicts with {second}: {reason}")]
    Conflict {
        first: &'static str,
        second: &'static str,
        reason: &'static str,
    },
}

pub(crate) fn invalid(flag: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        flag,
        value: printable(value),
        reason: reason.into(),
    }
}

/// A value as it can be shown on the one error line: control characters (a
/// newline in an argument) escaped, everything else as typed.
pub fn printable(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
