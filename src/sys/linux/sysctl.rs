//! This network namespace's TCP sysctls (`/proc/sys/net/ipv4/*`): the keepalive
//! defaults a socket inherits and the retransmission budget of a busy connection.

use crate::model::predict::Effective;

/// The system's keepalive defaults (net.ipv4.tcp_keepalive_time/_intvl/_probes), or
/// the Linux compile-time defaults when they cannot be read.
pub fn system_defaults() -> Effective {
    Effective {
        keepalive: false,
        idle_s: read_sysctl("tcp_keepalive_time", 7200),
        intvl_s: read_sysctl("tcp_keepalive_intvl", 75),
        cnt: read_sysctl("tcp_keepalive_probes", 9),
        user_timeout_ms: 0,
    }
}

/// `net.ipv4.tcp_retries2`: retransmissions before a busy connection gives up.
/// Read once per process: `listen` asks for every connection it accepts.
pub fn system_retries2() -> u32 {
    static RETRIES2: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *RETRIES2.get_or_init(|| read_sysctl("tcp_retries2", 15))
}

/// A `net.ipv4` sysctl of this namespace, or `fallback` when it cannot be read.
fn read_sysctl(name: &str, fallback: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(fallback)
}
