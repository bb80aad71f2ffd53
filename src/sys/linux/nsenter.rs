//! Running a piece of work inside another process's network namespace: sock_diag
//! answers only for the namespace of the socket that asks, so `tune --pid` of a
//! process in a container or a lab namespace must ask from there.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

/// Runs `work` with this thread in the network namespace of `pid` (when it differs
/// from ours), then returns to our own. Sockets created inside stay in that
/// namespace. Needs CAP_SYS_ADMIN when the namespaces differ.
pub fn in_netns_of<T>(pid: u32, work: impl FnOnce() -> T) -> std::io::Result<T> {
    let theirs = File::open(format!("/proc/{pid}/ns/net"))?;
    let ours = File::open("/proc/thread-self/ns/net")?;
    if theirs.metadata()?.ino() == ours.metadata()?.ino() {
        return Ok(work());
    }
    setns(&theirs)?;
    let out = work();
    setns(&ours)?;
    Ok(out)
}

fn setns(ns: &File) -> std::io::Result<()> {
    // SAFETY: setns takes a namespace descriptor and a type; the descriptor is open.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
