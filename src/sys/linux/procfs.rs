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
         (run this command as that user, or as root)"
    )]
    NeedsPrivilege(u32),
    #[error(
        "cannot read /proc/{0}/fd: permission denied although the process runs as this user: \
         it is not dumpable (it called prctl(PR_SET_DUMPABLE, 0), or changed its credentials \
         or executed a set-user-ID program), so the kernel hides its descriptors from its own \
         user; root or CAP_SYS_PTRACE can read them"
    )]
    NotDumpable(u32),
    #[error(
        "PID {asked} cannot be looked up: /proc belongs to another PID namespace than this \
         process's (it numbers this process {seen}, its own namespace {ours}), so /proc/{asked} \
         is another process; mount this namespace's own /proc (unshare --pid --fork \
         --mount-proc) or give the PID as /proc numbers it"
    )]
    ForeignPidNamespace { asked: u32, seen: u32, ours: u32 },
    #[error("cannot read /proc/{pid}/fd: {source}")]
    Io {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
}

/// capability(7) number of CAP_SYS_PTRACE (libc has no constant for it).
const CAP_SYS_PTRACE: u32 = 19;

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

/// A `--pid` is looked up in /proc, whose numbers are those of the PID namespace
/// /proc was mounted from: inside a PID namespace without its own /proc (`unshare
/// --pid --fork` without `--mount-proc`) the PID a user gives names another
/// process there. Refused rather than misnamed: /proc/self shows what /proc
/// calls this process, getpid(2) what its own namespace does.
pub fn check_pid_namespace(asked: u32) -> Result<(), ProcError> {
    let ours = std::process::id();
    let seen = fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse::<u32>().ok()));
    match seen {
        Some(seen) if seen != ours => Err(ProcError::ForeignPidNamespace { asked, seen, ours }),
        _ => Ok(()),
    }
}

/// The one-letter state in a `/proc/PID/stat` line (after the command name).
fn state_of(stat: &str) -> Option<char> {
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// When the main thread of `pid` has exited while other threads live on (a
/// zombie thread-group leader), its `/proc/PID/fd` lists nothing and its
/// `ns/*` links are gone, though the threads share both: a live thread's
/// `/proc/PID/task/TID/` shows them (docs/kernel-facts.md, "A process whose main
/// thread exited"). That thread's id, or `None` when the leader is not a zombie.
pub fn live_thread(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    if state_of(&stat) != Some('Z') {
        return None;
    }
    fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|&tid| tid != pid)
        .find(|tid| {
            fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat"))
                .ok()
                .and_then(|s| state_of(&s))
                .is_some_and(|c| c != 'Z' && c != 'X')
        })
}

/// The `/proc` directory through which `pid`'s descriptors and namespaces are
/// read: `/proc/PID`, or a live thread's when the leader is a zombie.
pub fn task_dir(pid: u32) -> String {
    match live_thread(pid) {
        Some(tid) => format!("/proc/{pid}/task/{tid}"),
        None => format!("/proc/{pid}"),
    }
}

/// Why `/proc/PID/fd` could not be listed, by cause. Permission denied to a
/// process of our own user means it is not dumpable (the kernel requires
/// CAP_SYS_PTRACE then: ptrace_may_access), not that it is another user's.
fn list_error(pid: u32, e: std::io::Error) -> ProcError {
    match e.kind() {
        ErrorKind::NotFound => ProcError::NoSuchProcess(pid),
        ErrorKind::PermissionDenied if runs_as_us(pid) => ProcError::NotDumpable(pid),
        ErrorKind::PermissionDenied => ProcError::NeedsPrivilege(pid),
        _ => ProcError::Io { pid, source: e },
    }
}

/// Whether the process's real, effective and saved user ids are all this
/// process's effective one (`Uid:` in `/proc/PID/status`, readable by anyone).
fn runs_as_us(pid: u32) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?.to_string();
            let ids: Vec<u32> = line[4..]
                .split_whitespace()
                .take(3)
                .filter_map(|v| v.parse().ok())
                .collect();
            Some(ids.len() == 3 && ids.iter().all(|&id| id == me))
        })
        .unwrap_or(false)
}

/// Calls `each(fd, inode)` for every socket `pid` holds: `/proc/PID/fd`, or a
/// live thread's when the main thread exited (its own lists nothing).
fn each_socket(pid: u32, mut each: impl FnMut(i32, u32)) -> Result<(), ProcError> {
    let mut listed = 0usize;
    let mut read = |dir: &str, listed: &mut usize| -> Result<(), ProcError> {
        let entries = fs::read_dir(dir).map_err(|e| list_error(pid, e))?;
        for entry in entries.flatten() {
            *listed += 1;
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some(inode) = socket_inode_of(&entry.path()) {
                each(fd, inode);
            }
        }
        Ok(())
    };
    // A zombie leader's own fd directory is not only empty but root's (the
    // kernel owns the /proc entries of a task without an mm by root), so for a
    // normal user it is refused: go to the live thread first, not after.
    match live_thread(pid) {
        Some(tid) => read(&format!("/proc/{pid}/task/{tid}/fd"), &mut listed)?,
        None => {
            read(&format!("/proc/{pid}/fd"), &mut listed)?;
            // The leader may have exited between the two reads.
            if listed == 0
                && let Some(tid) = live_thread(pid)
            {
                read(&format!("/proc/{pid}/task/{tid}/fd"), &mut listed)?;
            }
        }
    }
    Ok(())
}

/// The socket inodes one process holds.
pub fn socket_inodes(pid: u32) -> Result<HashSet<u32>, ProcError> {
    let mut out = HashSet::new();
    each_socket(pid, |_, inode| {
        out.insert(inode);
    })?;
    Ok(out)
}

/// The socket inodes one process holds, each with the descriptor number it is
/// held under (the lowest, when it is held under several): one read of
/// `/proc/PID/fd` for all of them, so that `tune` opens each socket without
/// searching the directory again.
pub fn socket_fds(pid: u32) -> Result<HashMap<u32, i32>, ProcError> {
    let mut out: HashMap<u32, i32> = HashMap::new();
    each_socket(pid, |fd, inode| {
        let held = out.entry(inode).or_insert(fd);
        *held = (*held).min(fd);
    })?;
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

/// The processes (other than `except`) that hold socket `inode`, with their
/// names: one scan of every process's descriptors, for the rare moment a watched
/// socket leaves its owner (passed on with SCM_RIGHTS).
pub fn holders_of(inode: u32, except: &[u32]) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if except.contains(&pid) {
            continue;
        }
        if holds(pid, inode) == Some(true) {
            out.push((pid, process_name(pid).unwrap_or_default()));
        }
    }
    out
}

/// Whether this process may read every process's descriptors: root, or
/// CAP_SYS_PTRACE in its effective set (`CapEff:` in /proc/self/status, bit 19).
pub fn sees_every_process() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("CapEff:"))?.to_string();
            u64::from_str_radix(line[7..].trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_PTRACE) != 0)
}

/// Why a socket has no owner that a scan of /proc found. A process that may read
/// every descriptor table and found it in none knows that no process holds it:
/// it is in flight (sent over a unix socket with SCM_RIGHTS and not yet received,
/// its sender's copy closed), or its last holder is closing it. Otherwise its
/// owner may be a process this user cannot inspect.
pub fn no_owner_reason() -> &'static str {
    if sees_every_process() {
        "held by no process: in flight (passed over a unix socket with SCM_RIGHTS and not yet \
         received), being closed, or the kernel's own (NFS, iSCSI); its settings cannot be read \
         until a process holds it"
    } else {
        "its owner is not visible to this user: run watch as root (or as the owner) to read \
         the settings exactly"
    }
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
            let mut fds = fs::read_dir(proc_entry.path().join("fd")).ok();
            // A zombie leader lists nothing (and, to a normal user, refuses: its
            // entries are root's once it has no mm): its live threads hold its
            // descriptors.
            let mut first = fds.as_mut().and_then(|f| f.next());
            if first.is_none()
                && let Some(tid) = live_thread(pid)
                && let Ok(mut task_fds) =
                    fs::read_dir(proc_entry.path().join(format!("task/{tid}/fd")))
            {
                first = task_fds.next();
                fds = Some(task_fds);
            }
            let Some(fds) = fds else {
                continue;
            };
            let mut name = None;
            for fd in first.into_iter().chain(fds).flatten() {
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
