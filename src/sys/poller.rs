//! What the platform pollers share: the readiness report and the timeout rounding
//! (epoll on Linux in linux/poller.rs, poll(2) elsewhere in fallback/poller.rs). Tokens are the caller's ids; timeouts round up to whole milliseconds
//! so a wake-up is never earlier than asked.

use std::time::Duration;

/// What a registered descriptor reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    pub token: u64,
    pub readable: bool,
    pub writable: bool,
    /// Error or hang-up: a read will tell which.
    pub closed: bool,
}

pub(crate) fn timeout_ms(timeout: Option<Duration>) -> nix::poll::PollTimeout {
    match timeout {
        None => nix::poll::PollTimeout::NONE,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128);
            nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX)
        }
    }
}
