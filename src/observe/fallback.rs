//! Platforms without `TCP_INFO`: no kernel samples, so the timeline shows the
//! prediction and the final outcome only.

use std::os::fd::BorrowedFd;

use super::TcpSample;

pub fn sample(_fd: BorrowedFd<'_>) -> std::io::Result<Option<TcpSample>> {
    Ok(None)
}
