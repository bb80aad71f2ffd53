//! The one platform boundary. Everything that asks the kernel about TCP lives here:
//! `TCP_INFO`, socket options (keepalive, user timeout), sysctls, readiness polling,
//! and on Linux sock_diag and procfs for `watch`. `linux/` is the verified
//! implementation; `fallback/` keeps other Unix systems building, with no kernel
//! samples (the timeline then shows the prediction and the outcome only).
//!
//! No other module names a `target_os`: callers use what this module exports.

pub mod poller;

#[cfg_attr(target_os = "linux", path = "linux/mod.rs")]
#[cfg_attr(not(target_os = "linux"), path = "fallback/mod.rs")]
mod imp;

pub use imp::*;
pub use poller::Ready;

/// The fallback is compiled on Linux too, in test builds, so a change that breaks
/// it fails here rather than on a platform this project cannot build for.
#[cfg(all(test, target_os = "linux"))]
#[path = "fallback/mod.rs"]
#[allow(dead_code, unused_imports)]
mod fallback_compiles;

/// The index of a network interface by name (an IPv6 zone), if this host has it.
pub fn interface_index(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string; if_nametoindex only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// Whether a process with this PID exists (signal 0 probes without sending).
pub fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 sends nothing; it only checks the PID.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Applies the keepalive options a command asks for to a socket of our own
/// (validated before, so a failure is the kernel refusing; it names the option).
pub fn apply(
    socket: &socket2::Socket,
    cfg: &crate::model::tune::KeepaliveRequest,
) -> std::io::Result<()> {
    use std::os::fd::AsFd;
    for (step, value) in crate::model::tune::requested(cfg) {
        sockopt::set_step(socket.as_fd(), step, value).map_err(|e| {
            std::io::Error::new(e.kind(), format!("setting {}: {e}", step.option()))
        })?;
    }
    Ok(())
}

/// Applies `steps` (from `model::tune::steps`) on a descriptor, moving its options
/// from `before` to `after`. All or nothing: when one option fails, the ones
/// already set are put back to their `before` values.
pub fn apply_steps(
    fd: std::os::fd::BorrowedFd<'_>,
    before: &crate::model::predict::Effective,
    after: &crate::model::predict::Effective,
    steps: &[crate::model::tune::Step],
) -> Result<(), ApplyError> {
    for (i, step) in steps.iter().enumerate() {
        if let Err(cause) = sockopt::set_step(fd, *step, step.value(after)) {
            let restore_failed = steps[..i].iter().rev().find_map(|done| {
                sockopt::set_step(fd, *done, done.value(before))
                    .err()
                    .map(|e| format!("{}: {e}", done.option()))
            });
            return Err(ApplyError {
                option: step.option(),
                cause,
                restore_failed,
            });
        }
    }
    Ok(())
}

/// An option the kernel refused; whether the options set before it were restored.
#[derive(Debug, thiserror::Error)]
#[error("setting {option}: {cause}{}", match restore_failed {
    None => "; the options set before it were restored".to_string(),
    Some(why) => format!("; restoring the options set before it also failed ({why})"),
})]
pub struct ApplyError {
    pub option: &'static str,
    pub cause: std::io::Error,
    pub restore_failed: Option<String>,
}
