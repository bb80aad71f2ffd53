//! What the kernel knows about one TCP connection at one moment: the
//! platform-neutral snapshot (from `TCP_INFO` on a socket we own, or from sock_diag's
//! `INET_DIAG_INFO` for sockets other processes own; see `sys`), and the TCP states.

use std::time::Duration;

/// What the kernel reported about a connection at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpSample {
    /// TCP state (1 = ESTABLISHED, as in `include/net/tcp_states.h`).
    pub state: u8,
    /// Keepalive (or zero-window) probes sent and not yet answered.
    pub probes: u8,
    /// Retransmissions of the head segment not yet acknowledged.
    pub retransmits: u8,
    pub backoff: u8,
    /// Segments sent and not yet acknowledged.
    pub unacked: u32,
    pub rto_us: u32,
    pub last_data_recv_ms: u32,
    pub last_ack_recv_ms: u32,
    pub last_data_sent_ms: u32,
    /// Counts the peer's FIN as one byte (it advances the receive sequence).
    pub bytes_received: u64,
    /// Counts our FIN as one byte once acknowledged, and our SYN on the connecting
    /// side.
    pub bytes_acked: u64,
    /// The peer's advertised receive window (tcpi_snd_wnd, Linux 5.4+); `None` when
    /// the kernel's tcp_info is too short to hold it.
    pub snd_wnd: Option<u32>,
    /// Bytes queued by the application and not yet sent (tcpi_notsent_bytes).
    pub notsent_bytes: u32,
    /// Segments sent, any kind (tcpi_segs_out): counts window probes once the
    /// backoff that otherwise counts them has saturated.
    pub segs_out: u32,
    /// Retransmissions over the connection's life (tcpi_total_retrans): in SYN-SENT,
    /// the SYN retransmissions.
    pub total_retrans: u32,
    /// Data bytes sent, retransmissions included (`bytes_retrans`).
    pub bytes_sent: u64,
    pub bytes_retrans: u64,
    pub data_segs_in: u32,
    pub data_segs_out: u32,
}

/// TCP states (include/net/tcp_states.h).
pub const TCP_ESTABLISHED: u8 = 1;
pub const TCP_SYN_SENT: u8 = 2;
pub const TCP_FIN_WAIT1: u8 = 4;
pub const TCP_FIN_WAIT2: u8 = 5;
pub const TCP_TIME_WAIT: u8 = 6;
pub const TCP_CLOSE_WAIT: u8 = 8;
pub const TCP_LAST_ACK: u8 = 9;
pub const TCP_CLOSING: u8 = 11;

impl TcpSample {
    /// Bytes acknowledged beyond the data sent: the SYN (connecting side) and the FIN
    /// (once acknowledged) each count one.
    pub fn acked_beyond_data(&self) -> i64 {
        let data = self.bytes_sent.saturating_sub(self.bytes_retrans);
        i64::try_from(self.bytes_acked).unwrap_or(i64::MAX)
            - i64::try_from(data).unwrap_or(i64::MAX)
    }

    /// Time since the last data or ACK received, which is what keepalive's idle
    /// counts from (our own sends do not count).
    pub fn since_contact(&self) -> Duration {
        Duration::from_millis(self.last_data_recv_ms.min(self.last_ack_recv_ms) as u64)
    }

    /// The peer advertises a zero window while data waits to be sent and none is in
    /// flight: the kernel's persist timer (zero-window probes) runs, keepalive does
    /// not. `None` when this kernel does not report the window.
    pub fn zero_window(&self) -> Option<bool> {
        self.snd_wnd
            .map(|w| w == 0 && self.notsent_bytes > 0 && self.unacked == 0)
    }
}
