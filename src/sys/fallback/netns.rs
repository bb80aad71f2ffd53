//! Network namespaces are Linux's: elsewhere the lab reports that it cannot run.

use nix::errno::Errno;
use thiserror::Error;

/// How the process got its private network (never, here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Private {
    NetworkOnly,
    UserAndNetwork { uid: u32, gid: u32 },
}

#[derive(Debug, Error)]
#[error("the lab cannot create its private network: {step} failed ({errno}): {why}")]
pub struct NamespaceError {
    pub step: &'static str,
    pub errno: Errno,
    pub why: String,
}

pub fn enter_private_network() -> Result<Private, NamespaceError> {
    Err(NamespaceError {
        step: "unshare(CLONE_NEWNET)",
        errno: Errno::ENOSYS,
        why: "network namespaces exist only on Linux".to_string(),
    })
}

pub fn set_link_up(_name: &str, _up: bool) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}
