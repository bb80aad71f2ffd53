//! Keepalive and user-timeout options on a socket we hold: apply them (validated
//! before), and read back what the kernel holds.

use std::time::Duration;

use socket2::{Socket, TcpKeepalive};

use super::sysctl::system_defaults;
use crate::model::predict::Effective;
use crate::model::tune::Step;

/// Reads back what the kernel holds. Keepalive values are read even when keepalive
/// is off, since they say what would happen if it were switched on.
pub fn read_back(socket: &Socket) -> std::io::Result<Effective> {
    // The sysctl fallback costs three file reads: only where getsockopt fails.
    let mut defaults = None;
    let mut fallback =
        |pick: fn(&Effective) -> u32| pick(defaults.get_or_insert_with(system_defaults));
    let secs = |d: Duration| d.as_secs() as u32;
    Ok(Effective {
        keepalive: socket.keepalive()?,
        idle_s: socket
            .tcp_keepalive_time()
            .map(secs)
            .unwrap_or_else(|_| fallback(|d| d.idle_s)),
        intvl_s: socket
            .tcp_keepalive_interval()
            .map(secs)
            .unwrap_or_else(|_| fallback(|d| d.intvl_s)),
        cnt: socket
            .tcp_keepalive_retries()
            .unwrap_or_else(|_| fallback(|d| d.cnt)),
        user_timeout_ms: read_user_timeout(socket)?,
    })
}

fn read_user_timeout(socket: &Socket) -> std::io::Result<u32> {
    Ok(socket
        .tcp_user_timeout()?
        .map_or(0, |d| d.as_millis() as u32))
}

/// Sets one keepalive option on a descriptor (ours, or a pidfd_getfd duplicate of
/// another process's socket: then the owner's socket changes). `value` is in the
/// option's unit: seconds, a count, milliseconds, or 0/1.
pub fn set_step(fd: std::os::fd::BorrowedFd<'_>, step: Step, value: u32) -> std::io::Result<()> {
    let sock = socket2::SockRef::from(&fd);
    let secs = Duration::from_secs(u64::from(value));
    match step {
        Step::Keepalive => sock.set_keepalive(value != 0),
        Step::Idle => sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(secs)),
        Step::Intvl => sock.set_tcp_keepalive(&TcpKeepalive::new().with_interval(secs)),
        Step::Cnt => sock.set_tcp_keepalive(&TcpKeepalive::new().with_retries(value)),
        Step::UserTimeout => {
            sock.set_tcp_user_timeout((value != 0).then(|| Duration::from_millis(u64::from(value))))
        }
    }
}

/// TCP_SYNCNT: SYN retransmissions before the connect attempt gives up (the
/// socket's own value, else net.ipv4.tcp_syn_retries; the kernel answers either).
pub fn syn_retries(socket: &Socket) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd;
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the pointer and length describe `value`, which outlives the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_SYNCNT,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(value.max(0) as u32)
}
