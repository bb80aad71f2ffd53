//! This network namespace's TCP sysctls (`/proc/sys/net/ipv4/*`): the keepalive
//! defaults a socket inherits and the retransmission budget of a busy connection.
//! A socket another process owns may live in another namespace, whose sysctls
//! differ: [`of_netns_of`] reads them there (/proc/sys/net answers for the network
//! namespace of the thread that opens the file).

use std::time::Duration;

use crate::model::predict::Effective;
use crate::model::schedule::{KernelParams, RTO_MAX};
use crate::model::wheel::Wheel;

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

/// The sysctls a prediction for one socket needs, from that socket's network
/// namespace, and whether they are that namespace's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceSysctls {
    /// tcp_keepalive_time/_intvl/_probes (keepalive itself off).
    pub defaults: Effective,
    pub retries2: u32,
    /// `None` when read in the socket's namespace; else why they are this
    /// process's own namespace's instead (setns refused, no such process).
    pub not_theirs: Option<String>,
}

/// This thread's network namespace's values, read now (not cached: a namespace
/// other than the process's own may be current).
pub fn read_here() -> NamespaceSysctls {
    NamespaceSysctls {
        defaults: system_defaults(),
        retries2: read_sysctl("tcp_retries2", 15),
        not_theirs: None,
    }
}

/// The values of the network namespace `pid` lives in: read from inside it (setns,
/// which needs CAP_SYS_ADMIN when it is not ours), else ours, saying why.
pub fn of_netns_of(pid: u32) -> NamespaceSysctls {
    match super::nsenter::in_netns_of(pid, read_here) {
        Ok(values) => values,
        Err(e) => NamespaceSysctls {
            not_theirs: Some(format!(
                "tcp_retries2 and the keepalive defaults are this namespace's: those of PID \
                 {pid}'s network namespace cannot be read ({e})"
            )),
            ..read_here()
        },
    }
}

/// `net.ipv4.ip_local_port_range`: the ports the kernel picks for outgoing
/// connections (inclusive), or Linux's default 32768..=60999.
pub fn local_port_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|v| v.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .filter(|(lo, hi)| lo <= hi)
        .unwrap_or((32768, 60999))
}

/// A `net.ipv4` sysctl of this namespace, or `fallback` when it cannot be read.
fn read_sysctl(name: &str, fallback: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(fallback)
}

/// What the prediction needs beyond the keepalive tuple, from this namespace's
/// sysctls and the kernel's build: tcp_retries2, tcp_rto_max_ms (6.15+; 120 s
/// before), tcp_syn_retries, tcp_syn_linear_timeouts (6.5+; 0 where missing, which
/// is what older kernels do) and CONFIG_HZ. Read once per process.
pub fn kernel_params() -> KernelParams {
    static PARAMS: std::sync::OnceLock<KernelParams> = std::sync::OnceLock::new();
    *PARAMS.get_or_init(|| KernelParams {
        retries2: system_retries2(),
        rto_max: Duration::from_millis(
            read_sysctl("tcp_rto_max_ms", RTO_MAX.as_millis() as u32).into(),
        ),
        syn_retries: read_sysctl("tcp_syn_retries", 6),
        syn_linear_timeouts: read_sysctl("tcp_syn_linear_timeouts", 0),
        wheel: Wheel::new(kernel_hz()),
    })
}

/// CONFIG_HZ from the kernel's build configuration: /boot/config-RELEASE, else
/// /proc/config.gz (CONFIG_IKCONFIG_PROC) decompressed by `gzip -dc`, once per
/// process. Userspace has no direct way to read HZ (`_SC_CLK_TCK` is USER_HZ, always
/// 100); when neither source is there, the wheel model assumes the worst common HZ
/// and says so.
fn kernel_hz() -> Option<u32> {
    let from_boot = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|r| std::fs::read_to_string(format!("/boot/config-{}", r.trim())).ok());
    let config = match from_boot {
        Some(c) => c,
        None => {
            let out = std::process::Command::new("gzip")
                .args(["-dc", "/proc/config.gz"])
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())?;
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    config_hz(&config)
}

/// The `CONFIG_HZ=` line of a kernel configuration.
fn config_hz(config: &str) -> Option<u32> {
    config
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_HZ="))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_kernels_parameters() {
        let p = kernel_params();
        assert!(p.retries2 >= 1);
        assert!(p.rto_max >= Duration::from_secs(1));
        assert!(p.syn_retries >= 1);
        if let Some(hz) = p.wheel.hz {
            assert!([100, 250, 300, 1000].contains(&hz), "HZ {hz}");
        }
    }

    #[test]
    fn reads_hz_from_a_kernel_config() {
        let config = "CONFIG_HZ_250=y\n# CONFIG_HZ_1000 is not set\nCONFIG_HZ=250\n";
        assert_eq!(config_hz(config), Some(250));
        assert_eq!(config_hz("CONFIG_NO_HZ=y\n"), None);
    }
}
