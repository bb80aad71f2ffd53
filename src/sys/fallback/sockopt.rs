//! Keepalive options through socket2 on other Unix systems. There is no
//! TCP_USER_TIMEOUT off Linux: asking for one is an error naming the option.

use std::time::Duration;

use socket2::{Socket, TcpKeepalive};

use super::sysctl::system_defaults;
use crate::model::predict::Effective;
use crate::model::tune::Step;

/// Reads back SO_KEEPALIVE; the keepalive times where the platform reports them,
/// else the defaults.
pub fn read_back(socket: &Socket) -> std::io::Result<Effective> {
    let d = system_defaults();
    let secs = |d: Duration| d.as_secs() as u32;
    Ok(Effective {
        keepalive: socket.keepalive()?,
        idle_s: socket.tcp_keepalive_time().map(secs).unwrap_or(d.idle_s),
        #[cfg(not(target_os = "openbsd"))]
        intvl_s: socket
            .tcp_keepalive_interval()
            .map(secs)
            .unwrap_or(d.intvl_s),
        #[cfg(target_os = "openbsd")]
        intvl_s: d.intvl_s,
        #[cfg(not(target_os = "openbsd"))]
        cnt: socket.tcp_keepalive_retries().unwrap_or(d.cnt),
        #[cfg(target_os = "openbsd")]
        cnt: d.cnt,
        user_timeout_ms: 0,
    })
}

/// Sets one keepalive option on a descriptor; no user timeout off Linux.
pub fn set_step(fd: std::os::fd::BorrowedFd<'_>, step: Step, value: u32) -> std::io::Result<()> {
    let sock = socket2::SockRef::from(&fd);
    let secs = Duration::from_secs(u64::from(value));
    match step {
        Step::Keepalive => sock.set_keepalive(value != 0),
        Step::Idle => sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(secs)),
        #[cfg(not(target_os = "openbsd"))]
        Step::Intvl => sock.set_tcp_keepalive(&TcpKeepalive::new().with_interval(secs)),
        #[cfg(not(target_os = "openbsd"))]
        Step::Cnt => sock.set_tcp_keepalive(&TcpKeepalive::new().with_retries(value)),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("{} cannot be set on this platform", step.option()),
        )),
    }
}

/// TCP_SYNCNT is Linux's; elsewhere the caller uses its default.
pub fn syn_retries(_socket: &Socket) -> std::io::Result<u32> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "TCP_SYNCNT exists only on Linux",
    ))
}
