//! `tune`: which sockets of which process, and what to set on them. Everything is
//! validated before any socket is touched.

use super::ConfigError;
use super::address::{PeerFilter, validate_peer_filter, validate_pid, validate_watch_port};
use super::keepalive::KeepaliveConfig;
use super::run::Format;
use crate::cli::TuneArgs;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TuneConfig {
    pub pid: u32,
    pub port: Option<u16>,
    pub peer: Option<PeerFilter>,
    pub keepalive: KeepaliveConfig,
    pub listening: bool,
    pub dry_run: bool,
    pub format: Format,
}

impl TuneConfig {
    pub fn from_args(args: &TuneArgs) -> Result<Self, ConfigError> {
        let pid = args.pid.as_deref().unwrap_or_default();
        let keepalive = KeepaliveConfig::from_args(&args.keepalive)?;
        validate_tune_request(&args.keepalive)?;
        Ok(TuneConfig {
            pid: validate_pid(pid)?,
            port: args.port.as_deref().map(validate_watch_port).transpose()?,
            peer: args.peer.as_deref().map(validate_peer_filter).transpose()?,
            keepalive,
            listening: args.listening,
            dry_run: args.dry_run,
            format: if args.json {
                Format::Json
            } else {
                Format::Human
            },
        })
    }
}

/// `tune` needs something to set: a keepalive value, a user timeout, or
/// `--no-keepalive`.
pub fn validate_tune_request(args: &crate::cli::KeepaliveArgs) -> Result<(), ConfigError> {
    let given = args.idle.is_some()
        || args.intvl.is_some()
        || args.cnt.is_some()
        || args.user_timeout.is_some()
        || args.no_keepalive;
    if given {
        Ok(())
    } else {
        Err(ConfigError::Missing {
            command: "tune",
            what: "something to change: --idle, --intvl, --cnt, --user-timeout or --no-keepalive",
        })
    }
}
