//! The one platform boundary. Everything that asks the kernel about TCP lives here:
//! `TCP_INFO`, socket options (keepalive, user timeout), sysctls, readiness polling,
//! and on Linux sock_diag and procfs for `watch`. `linux/` is the verified
//! implementation; `fallback/` keeps other Unix systems building, with no kernel
//! samples (the timeline then shows the prediction and the outcome only).
//!
//! No other module names a `target_os`: callers use what this module exports, and
//! [`CAN_WATCH`] says whether `watch` is possible.

pub mod poller;

#[cfg_attr(target_os = "linux", path = "linux/mod.rs")]
#[cfg_attr(not(target_os = "linux"), path = "fallback/mod.rs")]
mod imp;

pub use imp::*;
pub use poller::Ready;
