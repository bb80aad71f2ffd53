//! `watch`: the timeline of established TCP connections that other processes own,
//! observed from outside. It needs Linux's sock_diag; elsewhere it is a clear error.

#[cfg_attr(target_os = "linux", path = "live.rs")]
#[cfg_attr(not(target_os = "linux"), path = "unsupported.rs")]
mod imp;

pub use imp::run;
