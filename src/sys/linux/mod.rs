//! Linux: the verified platform. `TCP_INFO` by getsockopt, keepalive and user-timeout
//! options read back exactly, the namespace's sysctls, epoll, and for `watch` the
//! sock_diag netlink interface and the owners of sockets from procfs; for `lab` a
//! private user + network namespace and its loopback link (netns.rs).

pub mod conntrack;
pub mod netns;
pub mod nsenter;
pub mod pidfd;
pub mod poller;
pub mod procfs;
pub mod sockdiag;
pub mod sockopt;
pub mod sysctl;
mod tcp_info;

pub use poller::Poller;
pub use tcp_info::{sample, sample_from_bytes};
