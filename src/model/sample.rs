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
    pub bytes_received: u64,
    pub bytes_acked: u64,
}

/// TCP states (include/net/tcp_states.h).
pub const TCP_ESTABLISHED: u8 = 1;
pub const TCP_FIN_WAIT1: u8 = 4;
pub const TCP_FIN_WAIT2: u8 = 5;
pub const TCP_TIME_WAIT: u8 = 6;
pub const TCP_CLOSE_WAIT: u8 = 8;
pub const TCP_LAST_ACK: u8 = 9;
pub const TCP_CLOSING: u8 = 11;

impl TcpSample {
    /// Time since the last data or ACK received, which is what keepalive's idle
    /// counts from (our own sends do not count).
    pub fn since_contact(&self) -> Duration {
        Duration::from_millis(self.last_data_recv_ms.min(self.last_ack_recv_ms) as u64)
    }
}
