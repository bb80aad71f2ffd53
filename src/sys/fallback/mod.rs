//! Other Unix systems: expected to build, not verified. There is no `TCP_INFO` here,
//! so the timeline shows the prediction and the final outcome only; keepalive
//! options go through socket2 where the platform has them, and `watch` (sock_diag)
//! is unavailable.

pub mod netns;
pub mod pidfd;
pub mod poller;
pub mod sockopt;
pub mod sysctl;

use std::os::fd::BorrowedFd;

use crate::model::sample::TcpSample;

pub use poller::Poller;

/// No kernel samples off Linux.
pub fn sample(_fd: BorrowedFd<'_>) -> std::io::Result<Option<TcpSample>> {
    Ok(None)
}
