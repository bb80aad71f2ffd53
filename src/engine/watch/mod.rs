//! The `watch` engine: the timeline of established TCP connections that other
//! processes own, observed from outside. It needs Linux's sock_diag ([`linux`]'s
//! loop, chosen by a path switch); elsewhere [`run`] is a clear error. The
//! Prometheus endpoint and textfile ([`metrics`]) sit beside the timeline renderer
//! as one more sink, so the loop does not know metrics exist.
//!
//! The engine takes its own [`WatchOptions`], built by `cmd::watch` from the
//! validated command line.

use std::time::Duration;

#[cfg_attr(target_os = "linux", path = "linux/mod.rs")]
#[cfg_attr(not(target_os = "linux"), path = "unsupported.rs")]
mod imp;

pub use imp::run;

/// Compiled on Linux in test builds so the non-Linux path cannot rot unseen.
#[cfg(all(test, target_os = "linux"))]
#[path = "unsupported.rs"]
#[allow(dead_code)]
mod unsupported_compiles;

pub mod metrics;

/// What one watch follows and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOptions {
    /// Only connections with this local or remote port (also given to the kernel).
    pub port: Option<u16>,
    /// Only connections to this peer: a host resolved at start, and maybe a port.
    pub peer: Option<PeerOption>,
    /// Only connections the process (or one of its descendants) holds.
    pub pid: Option<u32>,
    /// The time between two dumps of the socket table.
    pub interval: Duration,
    /// Stop after this long (`--for`); until a signal when `None`.
    pub run_for: Option<Duration>,
    /// Dump once, report how many sockets matched and how long it took, and stop.
    pub dump_once: bool,
}

/// `--peer`: the host as given (resolved by the engine, interruptibly) and the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerOption {
    pub host: String,
    pub port: Option<u16>,
}
