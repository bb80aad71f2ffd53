//! The keepalive settings a socket holds ([`Effective`]) and where each comes
//! from. A value tcpalive read back from the kernel is a fact; one inferred from
//! the kernel's timer, taken from the system defaults, or assumed is not, and
//! every event and renderer says which (docs/ARCHITECTURE.md, invariant "Never
//! confidently wrong").

use serde::Serialize;

/// The settings the kernel holds for one socket, read back after applying. What
/// they predict is `model::predict`; how the timers run on them, `model::schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    pub keepalive: bool,
    pub idle_s: u32,
    pub intvl_s: u32,
    pub cnt: u32,
    /// 0 means off.
    pub user_timeout_ms: u32,
}

impl Effective {
    /// Tests only.
    #[cfg(test)]
    /// Time from the last contact to the probe numbered `n` (1-based).
    pub fn probe_due(&self, n: u32) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.idle_s as u64 + (n.saturating_sub(1)) as u64 * self.intvl_s as u64,
        )
    }
}

/// The provenance of one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// getsockopt on the socket itself (our own, or a duplicate of another
    /// process's): exact.
    ReadBack,
    /// Measured from the socket's keepalive timer, as sock_diag shows it.
    KernelTimer,
    /// net.ipv4.tcp_keepalive_* of this namespace; the application may have
    /// overridden it.
    SystemDefault,
    /// Nothing could tell; a documented assumption (e.g. no user timeout).
    Assumed,
    /// `explain`: read off a packet capture's timing (an `inferred` event gives
    /// the evidence).
    Capture,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::ReadBack => "read-back",
            Source::KernelTimer => "kernel-timer",
            Source::SystemDefault => "system-default",
            Source::Assumed => "assumed",
            Source::Capture => "capture",
        }
    }

    /// Whether the value is known (read back, or proven by the kernel's timer).
    pub fn known(self) -> bool {
        matches!(self, Source::ReadBack | Source::KernelTimer)
    }

    /// How the human renderer says it.
    pub fn describe(self) -> &'static str {
        match self {
            Source::ReadBack => "read back from the kernel",
            Source::KernelTimer => "from the kernel's timer",
            Source::SystemDefault => "system default",
            Source::Assumed => "assumed",
            Source::Capture => "inferred from the capture",
        }
    }
}

/// The provenance of each field of the keepalive tuple, under the field names of
/// the `config` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sources {
    pub keepalive: Source,
    pub idle_s: Source,
    pub intvl_s: Source,
    pub cnt: Source,
    pub user_timeout_ms: Source,
}

impl Sources {
    /// Every value read back from the socket.
    pub const READ_BACK: Sources = Sources::all(Source::ReadBack);

    pub const fn all(source: Source) -> Sources {
        Sources {
            keepalive: source,
            idle_s: source,
            intvl_s: source,
            cnt: source,
            user_timeout_ms: source,
        }
    }

    /// Whether every value is exact (read back).
    pub fn exact(&self) -> bool {
        *self == Sources::READ_BACK
    }
}
