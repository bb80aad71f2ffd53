//! `watch`: the timeline of established TCP connections that other processes own,
//! observed from outside. It needs Linux's sock_diag; elsewhere it is a clear error.

#[cfg_attr(target_os = "linux", path = "live.rs")]
#[cfg_attr(not(target_os = "linux"), path = "unsupported.rs")]
mod imp;

pub use imp::run;

/// Compiled on Linux in test builds so the non-Linux path cannot rot unseen.
#[cfg(all(test, target_os = "linux"))]
#[path = "unsupported.rs"]
#[allow(dead_code)]
mod unsupported_compiles;

pub mod metrics;
