//! Running a piece of work inside another process's network namespace: sock_diag
//! answers only for the namespace of the socket that asks, so `tune --pid` and
//! `watch --pid` of a process in a container or a lab namespace must ask from
//! there. A socket created inside keeps working in that namespace after the
//! thread that made it has left (or ended).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

use super::procfs;

/// A network namespace, held open by a descriptor of its `/proc/.../ns/net`.
pub struct NetNs {
    file: File,
    /// Its inode: what `ip netns identify` and `net:[INODE]` name it by.
    pub inode: u64,
}

impl NetNs {
    /// The network namespace `pid` lives in. When its main thread exited (a zombie
    /// leader), `/proc/PID/ns/net` is gone but a live thread's still shows it
    /// (docs/kernel-facts.md, "A process whose main thread exited"). The error
    /// names the path that could not be opened.
    pub fn of(pid: u32) -> std::io::Result<NetNs> {
        let path = format!("{}/ns/net", procfs::task_dir(pid));
        let file = File::open(&path).map_err(|e| {
            let what = match e.kind() {
                std::io::ErrorKind::NotFound => format!("no process with PID {pid} ({path}: {e})"),
                _ => format!("{path}: {e}"),
            };
            std::io::Error::new(e.kind(), what)
        })?;
        let inode = file.metadata()?.ino();
        Ok(NetNs { file, inode })
    }

    /// The namespace of the calling thread.
    pub fn current() -> std::io::Result<NetNs> {
        let file = File::open("/proc/thread-self/ns/net")?;
        let inode = file.metadata()?.ino();
        Ok(NetNs { file, inode })
    }

    /// How to name it: the `ip netns` name bound to it under /run/netns (when one
    /// is), and `net:[INODE]`.
    pub fn label(&self) -> String {
        let id = format!("net:[{}]", self.inode);
        let dev = self.file.metadata().map(|m| m.dev()).ok();
        let named = std::fs::read_dir("/run/netns").ok().and_then(|dir| {
            dir.flatten().find_map(|e| {
                let m = std::fs::metadata(e.path()).ok()?;
                (m.ino() == self.inode && Some(m.dev()) == dev)
                    .then(|| e.file_name().to_string_lossy().into_owned())
            })
        });
        match named {
            Some(name) => format!("{name} ({id})"),
            None => id,
        }
    }

    /// Runs `work` in this namespace on a short-lived thread of its own (setns
    /// changes only the calling thread; ours never leaves its namespace, so no
    /// failure to return can strand it). Needs CAP_SYS_ADMIN over the namespace.
    pub fn run<T: Send>(&self, work: impl FnOnce() -> T + Send) -> std::io::Result<T> {
        let fd = self.file.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: setns takes a namespace descriptor and a type; the
                // descriptor is open for as long as `self` is borrowed.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(work())
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the namespace thread panicked")))
        })
    }
}

/// Runs `work` in the network namespace of `pid` (on a thread of its own when it
/// differs from ours). Sockets created inside stay in that namespace. Needs
/// CAP_SYS_ADMIN when the namespaces differ.
pub fn in_netns_of<T: Send>(pid: u32, work: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    let theirs = NetNs::of(pid)?;
    if theirs.inode == NetNs::current()?.inode {
        return Ok(work());
    }
    theirs.run(work)
}
