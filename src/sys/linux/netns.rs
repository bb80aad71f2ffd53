//! The lab's private network: a new network namespace for this process (inside a
//! new user namespace when not root), and its loopback link switched up and down.
//!
//! Everything goes through the kernel's own interfaces, no `ip` or `unshare`
//! commands: unshare(2), the `/proc/self/{setgroups,uid_map,gid_map}` files, and the
//! `SIOCGIFFLAGS`/`SIOCSIFFLAGS` ioctls. The namespace lives exactly as long as the
//! process, so nothing is named, nothing needs removing, and a crash leaves nothing
//! behind.
//!
//! unshare(CLONE_NEWUSER) refuses a process with more than one thread (EINVAL), so
//! [`enter_private_network`] must run before any thread starts; threads started
//! afterwards share the namespace.

use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};
use socket2::{Domain, Socket, Type};
use thiserror::Error;

/// How the process got its private network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Private {
    /// Root (CAP_SYS_ADMIN): a network namespace alone.
    NetworkOnly,
    /// Unprivileged: a user namespace mapping our uid/gid to root in it, then a
    /// network namespace owned by it.
    UserAndNetwork { uid: u32, gid: u32 },
}

/// Why the lab cannot make its private network, naming the setting responsible
/// and the way out.
#[derive(Debug, Error)]
#[error("the lab cannot create its private network: {step} failed ({errno}): {why}")]
pub struct NamespaceError {
    pub step: &'static str,
    pub errno: Errno,
    pub why: String,
}

const ROOT_ALTERNATIVE: &str =
    "or run it as root (root needs only a network namespace): sudo tcpalive lab ...";

/// Reads a sysctl under /proc/sys as a number; `None` when the file is absent.
fn sysctl(path: &str) -> Option<i64> {
    std::fs::read_to_string(format!("/proc/sys/{path}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// The limit behind an ENOSPC from unshare. The kernel counts a new namespace
/// against the limit of the creator's user namespace and of every ancestor
/// (kernel/ucount.c, `inc_ucount`), and a new user namespace starts with every
/// limit at its maximum (2147483647): so the limit that refused is the first one
/// of the chain, read from where tcpalive started, that is 0 (or, failing that,
/// one that is reached). `chain` is the value in tcpalive's own user namespace
/// (read before it made one) and, when it made one, the value inside it.
fn limit_why(name: &str, kind: &str, root: bool, chain: &[Option<i64>]) -> String {
    let alternative = if root {
        String::new()
    } else {
        format!(", {ROOT_ALTERNATIVE}")
    };
    let inner = chain.len() > 1;
    let place = |i: usize| {
        if !inner {
            ""
        } else if i == 0 {
            " in the user namespace tcpalive started in"
        } else {
            " in the user namespace tcpalive made"
        }
    };
    if let Some(i) = chain.iter().position(|v| *v == Some(0)) {
        return format!(
            "user.{name} is 0{}, which disables {kind} namespaces; allow them with \
             `sysctl -w user.{name}=1000`{alternative}",
            place(i)
        );
    }
    match chain.first().copied().flatten() {
        Some(n) => format!(
            "the limit user.{name} ({n}){} is reached (or one of an enclosing user namespace, \
             which cannot be read from here); raise it with `sysctl -w user.{name}=N`{alternative}",
            place(0)
        ),
        None => format!("a limit on {kind} namespaces is reached{alternative}"),
    }
}

fn user_namespace_why(errno: Errno, limits: &Limits) -> String {
    match errno {
        Errno::ENOSPC => limit_why("max_user_namespaces", "user", false, &[limits.user]),
        Errno::EPERM if sysctl("kernel/unprivileged_userns_clone") == Some(0) => format!(
            "kernel.unprivileged_userns_clone is 0: this kernel forbids user namespaces to \
             unprivileged users; allow them with `sysctl -w kernel.unprivileged_userns_clone=1`, \
             {ROOT_ALTERNATIVE}"
        ),
        Errno::EPERM => format!(
            "a security policy forbids unprivileged user namespaces here (a seccomp filter such \
             as container runtimes install, or a security module); {ROOT_ALTERNATIVE}"
        ),
        Errno::EUSERS => format!("user namespaces are nested 32 deep already; {ROOT_ALTERNATIVE}"),
        Errno::EINVAL => "the process already runs more than one thread (a tcpalive bug: the \
                          namespace must be entered before any thread starts)"
            .to_string(),
        _ => ROOT_ALTERNATIVE.to_string(),
    }
}

fn map_why(errno: Errno) -> String {
    if errno == Errno::EPERM {
        if sysctl("kernel/apparmor_restrict_unprivileged_userns") == Some(1) {
            return format!(
                "AppArmor gives unprivileged user namespaces no capabilities \
                 (kernel.apparmor_restrict_unprivileged_userns = 1); allow them with \
                 `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` or an AppArmor \
                 profile for tcpalive with `userns,`, {ROOT_ALTERNATIVE}"
            );
        }
        return format!(
            "the new user namespace has no capabilities (a security module such as AppArmor \
             restricts unprivileged user namespaces); {ROOT_ALTERNATIVE}"
        );
    }
    ROOT_ALTERNATIVE.to_string()
}

fn network_namespace_why(errno: Errno, root: bool, chain: &[Option<i64>]) -> String {
    match errno {
        Errno::ENOSPC => limit_why("max_net_namespaces", "network", root, chain),
        Errno::EPERM if root => "root without CAP_SYS_ADMIN (a container?)".to_string(),
        _ => ROOT_ALTERNATIVE.to_string(),
    }
}

/// The namespace-count limits of the user namespace this process started in.
struct Limits {
    user: Option<i64>,
    net: Option<i64>,
}

impl Limits {
    fn read() -> Limits {
        Limits {
            user: sysctl("user/max_user_namespaces"),
            net: sysctl("user/max_net_namespaces"),
        }
    }
}

fn write_proc(path: &'static str, text: &str) -> Result<(), NamespaceError> {
    std::fs::write(path, text).map_err(|e| {
        let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
        NamespaceError {
            step: path,
            errno,
            why: map_why(errno),
        }
    })
}

/// Moves this process into a private network namespace whose only link is a
/// loopback that is down. Call before any thread starts.
pub fn enter_private_network() -> Result<Private, NamespaceError> {
    // SAFETY: geteuid/getegid have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    // Read before making a user namespace: inside it they read as its own limits
    // (all at the maximum), not the ones that refuse.
    let limits = Limits::read();
    if uid == 0 {
        match unshare(CloneFlags::CLONE_NEWNET) {
            Ok(()) => return Ok(Private::NetworkOnly),
            // Root without CAP_SYS_ADMIN (a container): a user namespace gives it.
            Err(Errno::EPERM) => {}
            Err(errno) => {
                return Err(NamespaceError {
                    step: "unshare(CLONE_NEWNET)",
                    errno,
                    why: network_namespace_why(errno, true, &[limits.net]),
                });
            }
        }
    }
    // Two calls, not one: an ENOSPC then says which limit was reached.
    unshare(CloneFlags::CLONE_NEWUSER).map_err(|errno| NamespaceError {
        step: "unshare(CLONE_NEWUSER)",
        errno,
        why: user_namespace_why(errno, &limits),
    })?;
    // An unprivileged process may map only its own ids, and a gid map needs
    // setgroups(2) denied first (user_namespaces(7)).
    write_proc("/proc/self/setgroups", "deny")?;
    write_proc("/proc/self/uid_map", &format!("0 {uid} 1"))?;
    write_proc("/proc/self/gid_map", &format!("0 {gid} 1"))?;
    unshare(CloneFlags::CLONE_NEWNET).map_err(|errno| NamespaceError {
        step: "unshare(CLONE_NEWNET)",
        errno,
        why: network_namespace_why(
            errno,
            false,
            &[limits.net, sysctl("user/max_net_namespaces")],
        ),
    })?;
    Ok(Private::UserAndNetwork { uid, gid })
}

/// Sets or clears IFF_UP on a link of the current network namespace (`lo` in the
/// lab), like `ip link set DEV up|down`. Taking `lo` down removes the routes to
/// 127.0.0.0/8: every segment between two local sockets is dropped, which is what
/// a pulled cable does to the segments between two hosts.
pub fn set_link_up(name: &str, up: bool) -> std::io::Result<()> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= ifr.ifr_name.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("'{name}' is not a link name"),
        ));
    }
    for (dst, &b) in ifr.ifr_name.iter_mut().zip(bytes) {
        *dst = b as libc::c_char;
    }
    // SAFETY: the descriptor is open for the call and `ifr` is a valid ifreq that
    // the kernel fills in (SIOCGIFFLAGS writes ifru_flags).
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS succeeded, so the flags member is the one written.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    let up_flag = libc::IFF_UP as libc::c_short;
    ifr.ifr_ifru.ifru_flags = if up {
        flags | up_flag
    } else {
        flags & !up_flag
    };
    // SAFETY: as above; SIOCSIFFLAGS only reads `ifr`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_are_checked_before_any_ioctl() {
        let long = "x".repeat(16);
        for bad in ["", long.as_str()] {
            let e = set_link_up(bad, true).expect_err("not a link name");
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn errors_name_the_setting_and_the_root_alternative() {
        let e = NamespaceError {
            step: "unshare(CLONE_NEWUSER)",
            errno: Errno::EPERM,
            why: user_namespace_why(Errno::EPERM, &Limits::read()),
        };
        let text = e.to_string();
        assert!(
            text.contains("unshare(CLONE_NEWUSER) failed (EPERM"),
            "{text}"
        );
        assert!(text.contains("sudo tcpalive lab"), "{text}");
        let threaded = user_namespace_why(Errno::EINVAL, &Limits::read());
        assert!(threaded.contains("more than one thread"), "{threaded}");
        // This kernel has the limits as files: the message names the sysctl.
        if sysctl("user/max_user_namespaces").is_some() {
            let why = user_namespace_why(Errno::ENOSPC, &Limits::read());
            assert!(why.contains("user.max_user_namespaces"), "{why}");
        }
    }

    /// The limit that refused is the 0 of the namespace tcpalive started in, not
    /// the maximum its own new user namespace starts with.
    #[test]
    fn the_refusing_limit_is_named_not_the_new_namespaces_maximum() {
        let why = limit_why(
            "max_net_namespaces",
            "network",
            false,
            &[Some(0), Some(2147483647)],
        );
        assert!(
            why.starts_with(
                "user.max_net_namespaces is 0 in the user namespace tcpalive started in, which \
                 disables network namespaces"
            ),
            "{why}"
        );
        assert!(!why.contains("2147483647"), "{why}");
        let root = limit_why("max_net_namespaces", "network", true, &[Some(0)]);
        assert!(
            root.starts_with("user.max_net_namespaces is 0, which"),
            "{root}"
        );
        let reached = limit_why("max_net_namespaces", "network", true, &[Some(5)]);
        assert!(reached.contains("(5) is reached"), "{reached}");
    }
}
