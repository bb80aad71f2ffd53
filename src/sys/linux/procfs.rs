//! Which process holds a socket: `/proc/PID/fd/*` links read as `socket:[INODE]`.
//!
//! Reading every process's descriptors is the expensive part of `watch` (one
//! readlink per descriptor on the host), so this module owns a cache: a scan runs
//! only when a socket inode is neither known nor already known to be unlabelled,
//! and a `--pid` filter reads only that one process's descriptors.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ProcError {
    #[error("no process with PID {0}")]
    NoSuchProcess(u32),
    #[error(
        "cannot read /proc/{0}/fd: permission denied; the process belongs to another user \
         (run watch as that user, or as root)"
    )]
    NeedsPrivilege(u32),
    #[error("cannot read /proc/{pid}/fd: {source}")]
    Io {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
}

/// A process holding a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// `/proc/PID/comm`, the short command name.
    pub name: String,
    /// The descriptor number under which it holds the socket (for pidfd_getfd;
    /// checked against the inode when used, since it can be reused).
    pub fd: i32,
}

/// The socket inodes one process holds.
pub fn socket_inodes(pid: u32) -> Result<HashSet<u32>, ProcError> {
    let mut out = HashSet::new();
    let dir = format!("/proc/{pid}/fd");
    let entries = fs::read_dir(&dir).map_err(|e| match e.kind() {
        ErrorKind::NotFound => ProcError::NoSuchProcess(pid),
        ErrorKind::PermissionDenied => ProcError::NeedsPrivilege(pid),
        _ => ProcError::Io { pid, source: e },
    })?;
    for entry in entries.flatten() {
        if let Some(inode) = socket_inode_of(&entry.path()) {
            out.insert(inode);
        }
    }
    Ok(out)
}

/// The socket inodes one process holds, each with the descriptor number it is
/// held under (the lowest, when it is held under several): one read of
/// `/proc/PID/fd` for all of them, so that `tune` opens each socket without
/// searching the directory again.
pub fn socket_fds(pid: u32) -> Result<HashMap<u32, i32>, ProcError> {
    let mut out: HashMap<u32, i32> = HashMap::new();
    let dir = format!("/proc/{pid}/fd");
    let entries = fs::read_dir(&dir).map_err(|e| match e.kind() {
        ErrorKind::NotFound => ProcError::NoSuchProcess(pid),
        ErrorKind::PermissionDenied => ProcError::NeedsPrivilege(pid),
        _ => ProcError::Io { pid, source: e },
    })?;
    for entry in entries.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(inode) = socket_inode_of(&entry.path()) {
            let held = out.entry(inode).or_insert(fd);
            *held = (*held).min(fd);
        }
    }
    Ok(out)
}

/// The process's descendants (children, their children, ...), from the parent
/// PIDs in `/proc/*/stat`: services keep their connections in worker processes
/// (nginx, PostgreSQL, sshd), so `--pid` of the main process means all of them.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(procs) = fs::read_dir("/proc") {
        for entry in procs.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(parent) = fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|stat| parent_of(&stat))
            {
                children.entry(parent).or_default().push(child);
            }
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            if c != pid && !out.contains(&c) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out.sort_unstable();
    out
}

/// The parent PID in a `/proc/PID/stat` line; the command name in parentheses may
/// itself contain spaces and parentheses, so fields are counted after the last ')'.
fn parent_of(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `/proc/PID/comm`, the short command name.
pub fn process_name(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// Whether the process still holds the socket (for telling "the owner closed it"
/// from "the kernel ended it under the owner").
pub fn holds(pid: u32, inode: u32) -> Option<bool> {
    socket_inodes(pid).ok().map(|set| set.contains(&inode))
}

fn socket_inode_of(link: &Path) -> Option<u32> {
    let target = fs::read_link(link).ok()?;
    let text = target.to_str()?;
    text.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Inode-to-owner cache over all processes this user may inspect.
#[derive(Debug, Default)]
pub struct Owners {
    known: HashMap<u32, Owner>,
    /// Inodes a scan did not find (another user's process, or none): not rescanned.
    unknown: HashSet<u32>,
    pending: bool,
}

impl Owners {
    /// The owner if known. An inode seen for the first time marks the cache stale,
    /// so the next [`Owners::refresh_if_needed`] scans once for all new inodes.
    pub fn lookup(&mut self, inode: u32) -> Option<&Owner> {
        if inode != 0 && !self.known.contains_key(&inode) && !self.unknown.contains(&inode) {
            self.pending = true;
            self.unknown.insert(inode);
        }
        self.known.get(&inode)
    }

    /// Scans /proc if inodes were seen that no scan has looked for yet.
    pub fn refresh_if_needed(&mut self) {
        if !self.pending {
            return;
        }
        self.pending = false;
        let Ok(procs) = fs::read_dir("/proc") else {
            return;
        };
        for proc_entry in procs.flatten() {
            let Some(pid) = proc_entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(fds) = fs::read_dir(proc_entry.path().join("fd")) else {
                continue;
            };
            let mut name = None;
            for fd in fds.flatten() {
                let Some(inode) = socket_inode_of(&fd.path()) else {
                    continue;
                };
                if !self.unknown.remove(&inode) {
                    continue;
                }
                let name = name
                    .get_or_insert_with(|| {
                        fs::read_to_string(proc_entry.path().join("comm"))
                            .map(|s| s.trim_end().to_string())
                            .unwrap_or_default()
                    })
                    .clone();
                let fd_no = fd
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(-1);
                self.known.insert(
                    inode,
                    Owner {
                        pid,
                        name,
                        fd: fd_no,
                    },
                );
            }
        }
    }

    /// Forgets an inode whose socket is gone (inode numbers are reused).
    pub fn forget(&mut self, inode: u32) {
        self.known.remove(&inode);
        self.unknown.remove(&inode);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::os::fd::AsRawFd;

    fn inode_of(fd: i32) -> u32 {
        socket_inode_of(Path::new(&format!("/proc/self/fd/{fd}"))).expect("a socket")
    }

    #[test]
    fn finds_own_socket_and_its_owner() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let inode = inode_of(l.as_raw_fd());
        let me = std::process::id();
        assert!(socket_inodes(me).expect("own fds").contains(&inode));
        assert_eq!(holds(me, inode), Some(true));
        let mut owners = Owners::default();
        assert!(owners.lookup(inode).is_none());
        owners.refresh_if_needed();
        assert_eq!(owners.lookup(inode).map(|o| o.pid), Some(me));
    }

    #[test]
    fn descendants_include_grandchildren() {
        assert_eq!(parent_of("12 (a) b) S 7 12 12 0"), Some(7));
        // sh -c 'sleep 5 & wait': sh is our child, sleep its child.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 5 & wait"])
            .spawn()
            .expect("spawn sh");
        let sh = child.id();
        let mut found = Vec::new();
        for _ in 0..100 {
            found = descendants(std::process::id());
            if found.len() >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&sh), "{found:?}");
        assert!(found.len() >= 2, "sh and its sleep: {found:?}");
    }

    #[test]
    fn missing_process_is_named() {
        let err = socket_inodes(u32::MAX).expect_err("no such pid");
        assert_eq!(err.to_string(), format!("no process with PID {}", u32::MAX));
    }
}
