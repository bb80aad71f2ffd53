//! `TCP_INFO` on Linux: `libc::tcp_info` read with `getsockopt`, or parsed from the
//! bytes sock_diag returns in `INET_DIAG_INFO` (the same struct).
//!
//! The libc crate's `tcp_info` (0.2.191) is the 6.18 layout, 280 bytes, with
//! `tcpi_snd_wnd` (offset 228, Linux 5.4+) that shows a zero window; measured here,
//! getsockopt returns 280 on this kernel. The kernel copies min(our size, its size)
//! and returns the length it wrote, so a field is only trusted when the returned
//! length covers it: on an older kernel snd_wnd is `None`, not a false zero.

use std::os::fd::{AsRawFd, BorrowedFd};

use crate::model::sample::TcpSample;

/// Reads `TCP_INFO`. Never touches `SO_ERROR`, which would consume the soft error
/// that decides between ETIMEDOUT and EHOSTUNREACH.
pub fn sample(fd: BorrowedFd<'_>) -> std::io::Result<Option<TcpSample>> {
    // SAFETY: tcp_info is plain old data; zeroed is a valid value, and the kernel
    // writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the pointer and length describe `info`, which outlives the call.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Some(from_info(&info, len as usize)))
}

/// Parses the `struct tcp_info` bytes of an `INET_DIAG_INFO` attribute. Shorter
/// payloads (older kernels) leave the missing fields zero; longer ones are cut.
pub fn sample_from_bytes(bytes: &[u8]) -> TcpSample {
    // SAFETY: as above; we copy at most size_of::<tcp_info>() bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let n = bytes.len().min(std::mem::size_of::<libc::tcp_info>());
    // SAFETY: `n` is within both buffers, which do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), (&mut info as *mut libc::tcp_info).cast(), n);
    }
    from_info(&info, n)
}

/// Whether `len` bytes written by the kernel cover the `size`-byte field at `offset`.
fn covers(len: usize, offset: usize, size: usize) -> bool {
    len >= offset + size
}

fn from_info(info: &libc::tcp_info, len: usize) -> TcpSample {
    let snd_wnd_at = std::mem::offset_of!(libc::tcp_info, tcpi_snd_wnd);
    TcpSample {
        state: info.tcpi_state,
        probes: info.tcpi_probes,
        retransmits: info.tcpi_retransmits,
        backoff: info.tcpi_backoff,
        unacked: info.tcpi_unacked,
        rto_us: info.tcpi_rto,
        last_data_recv_ms: info.tcpi_last_data_recv,
        last_ack_recv_ms: info.tcpi_last_ack_recv,
        last_data_sent_ms: info.tcpi_last_data_sent,
        bytes_received: info.tcpi_bytes_received,
        bytes_acked: info.tcpi_bytes_acked,
        snd_wnd: covers(len, snd_wnd_at, 4).then_some(info.tcpi_snd_wnd),
        notsent_bytes: info.tcpi_notsent_bytes,
        segs_out: info.tcpi_segs_out,
        total_retrans: info.tcpi_total_retrans,
        bytes_sent: info.tcpi_bytes_sent,
        bytes_retrans: info.tcpi_bytes_retrans,
        data_segs_in: info.tcpi_data_segs_in,
        data_segs_out: info.tcpi_data_segs_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    #[test]
    fn reads_an_established_loopback_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let s = sample(client.as_fd())
            .expect("getsockopt")
            .expect("linux has TCP_INFO");
        assert_eq!(s.state, crate::model::sample::TCP_ESTABLISHED);
        assert_eq!(s.probes, 0);
        assert!(s.since_contact().as_secs() < 5);
    }

    #[test]
    fn short_payload_leaves_fields_zero() {
        let s = sample_from_bytes(&[1, 0, 0, 3]);
        assert_eq!(s.state, 1);
        assert_eq!(s.probes, 3);
        assert_eq!(s.bytes_received, 0);
        assert_eq!(
            s.snd_wnd, None,
            "a short payload must not read as a zero window"
        );
    }

    #[test]
    fn this_kernel_reports_the_send_window() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let s = sample(client.as_fd()).expect("getsockopt").expect("linux");
        // Linux 5.4+: an idle loopback connection has an open window.
        if let Some(w) = s.snd_wnd {
            assert!(w > 0);
            assert_eq!(s.zero_window(), Some(false));
        }
    }
}
