//! Another process's socket, opened through pidfd_getfd(2) (Linux 5.6+): the
//! duplicate refers to the owner's own open file description, so getsockopt on it
//! reads the owner's socket exactly, and setsockopt changes it (issue 13's `tune`).
//!
//! This module owns finding the descriptor (the socket inode in `/proc/PID/fd`),
//! the two syscalls, checking that the duplicate is the socket asked for (a
//! descriptor number can be closed and reused in between), and the errors, named
//! by cause. Reading settings here never sets anything, and the duplicate is
//! closed before returning: holding it would keep the socket alive after its owner
//! closed it.
//!
//! Neither nix (0.31) nor socket2 wraps pidfd_open or pidfd_getfd, and glibc added
//! its wrappers only in 2.36, so the raw syscalls are made through `libc::syscall`.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use socket2::SockRef;
use thiserror::Error;

use super::procfs::{self, ProcError};
use crate::model::predict::Effective;

/// pidfd_open(2)'s PIDFD_THREAD (Linux 6.9+): a pidfd of one thread, not of a
/// thread-group leader; its value is O_EXCL.
const PIDFD_THREAD: libc::c_int = libc::O_EXCL;

#[derive(Debug, Error)]
pub enum PidfdError {
    #[error("no process with PID {0}")]
    NoSuchProcess(u32),
    #[error(
        "not permitted to open the sockets of PID {0}: needs root or CAP_SYS_PTRACE over it \
         (or the same user)"
    )]
    NotPermitted(u32),
    #[error("pidfd_getfd is not available on this kernel (Linux 5.6 or later is needed)")]
    Unsupported,
    #[error(
        "the main thread of PID {pid} has exited; its sockets are held by its thread {tid}, \
         which pidfd_open can open only on Linux 6.9 or later (PIDFD_THREAD): {source}"
    )]
    ThreadUnsupported {
        pid: u32,
        tid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Proc(ProcError),
    #[error("PID {pid} does not hold socket inode {inode} (closed in between?)")]
    NotHeld { pid: u32, inode: u32 },
    #[error("{op} on socket inode {inode} of PID {pid}: {source}")]
    Io {
        op: &'static str,
        pid: u32,
        inode: u32,
        #[source]
        source: std::io::Error,
    },
}

impl PidfdError {
    /// Whether reading failed for lack of permission or kernel support (fall back to
    /// inference), rather than because the socket went away.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            PidfdError::NotPermitted(_)
                | PidfdError::Unsupported
                | PidfdError::ThreadUnsupported { .. }
                | PidfdError::Proc(ProcError::NeedsPrivilege(_) | ProcError::NotDumpable(_))
        )
    }
}

/// The descriptor number under which `pid` holds socket `inode` (read through a
/// live thread when the main thread exited, see [`procfs::live_thread`]).
fn fd_of(pid: u32, inode: u32) -> Result<i32, PidfdError> {
    let fds = procfs::socket_fds(pid).map_err(|e| match e {
        ProcError::NoSuchProcess(_) => PidfdError::NoSuchProcess(pid),
        other => PidfdError::Proc(other),
    })?;
    fds.get(&inode)
        .copied()
        .ok_or(PidfdError::NotHeld { pid, inode })
}

fn errno_error(pid: u32, inode: u32, op: &'static str, e: std::io::Error) -> PidfdError {
    match e.raw_os_error() {
        Some(libc::ESRCH) => PidfdError::NoSuchProcess(pid),
        Some(libc::EPERM) | Some(libc::EACCES) => PidfdError::NotPermitted(pid),
        Some(libc::ENOSYS) => PidfdError::Unsupported,
        Some(libc::EBADF) => PidfdError::NotHeld { pid, inode },
        _ => PidfdError::Io {
            op,
            pid,
            inode,
            source: e,
        },
    }
}

/// pidfd_open(`pid`, `flags`) then pidfd_getfd of its descriptor `fd`: a
/// close-on-exec duplicate, or the errno of whichever call failed.
fn getfd(pid: u32, flags: libc::c_int, fd: i32) -> std::io::Result<OwnedFd> {
    let pid_t =
        libc::pid_t::try_from(pid).map_err(|_| std::io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid_t, flags) };
    if pidfd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a fresh descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    // SAFETY: pidfd_getfd takes a pidfd, a target descriptor number and flags (0),
    // and returns a new close-on-exec descriptor or -1.
    let dup = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if dup < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above, a fresh descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(dup as i32) })
}

/// Opens the socket `inode` that process `pid` holds: a duplicate of the owner's
/// descriptor (close-on-exec). Options set through it change the owner's socket.
/// Close it as soon as possible: while it is open the socket outlives its owner's
/// close.
pub fn open_socket(pid: u32, inode: u32) -> Result<OwnedFd, PidfdError> {
    let fd = fd_of(pid, inode)?;
    open_socket_fd(pid, fd, inode)
}

/// As [`open_socket`] when the descriptor number is already known (from a scan of
/// `/proc/PID/fd`): no directory read. The duplicate is checked to be `inode`.
pub fn open_socket_fd(pid: u32, fd: i32, inode: u32) -> Result<OwnedFd, PidfdError> {
    let dup = match getfd(pid, 0, fd) {
        // The main thread exited (a zombie leader): pidfd_getfd through it finds
        // no descriptor table (ESRCH), a pidfd of a live thread does
        // (docs/kernel-facts.md, "A process whose main thread exited").
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => match procfs::live_thread(pid) {
            Some(tid) => getfd(tid, PIDFD_THREAD, fd).map_err(|e| {
                if e.raw_os_error() == Some(libc::EINVAL) {
                    PidfdError::ThreadUnsupported {
                        pid,
                        tid,
                        source: e,
                    }
                } else {
                    errno_error(pid, inode, "pidfd_getfd (through a live thread)", e)
                }
            })?,
            None => return Err(errno_error(pid, inode, "pidfd_getfd", e)),
        },
        Err(e) => return Err(errno_error(pid, inode, "pidfd_getfd", e)),
        Ok(dup) => dup,
    };
    // The descriptor number may have been closed and reused since /proc was read.
    let file = fs::File::from(dup);
    let meta = file.metadata().map_err(|e| PidfdError::Io {
        op: "fstat the duplicate",
        pid,
        inode,
        source: e,
    })?;
    if meta.ino() != u64::from(inode) || !meta.file_type().is_socket() {
        return Err(PidfdError::NotHeld { pid, inode });
    }
    let dup = OwnedFd::from(file);
    Ok(dup)
}

/// The settings of the socket `inode` that process `pid` holds as descriptor `fd`,
/// exactly as the kernel holds them (the getters return the namespace's sysctl where
/// the socket has no value of its own, which is what the kernel uses); sets nothing,
/// and the duplicate is closed before this returns. If `fd` no longer holds
/// `inode`, `/proc/PID/fd` is searched once.
pub fn read_settings_fd(pid: u32, fd: i32, inode: u32) -> Result<Effective, PidfdError> {
    let dup = match open_socket_fd(pid, fd, inode) {
        Err(PidfdError::NotHeld { .. }) => open_socket(pid, inode)?,
        other => other?,
    };
    let read = read_effective(&dup);
    drop(dup);
    read.map_err(|(op, source)| PidfdError::Io {
        op,
        pid,
        inode,
        source,
    })
}

/// The settings of a socket descriptor (ours, or a pidfd_getfd duplicate).
pub fn read_effective(fd: &OwnedFd) -> Result<Effective, (&'static str, std::io::Error)> {
    let sock = SockRef::from(fd);
    let secs = |d: std::time::Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    Ok(Effective {
        keepalive: sock.keepalive().map_err(|e| ("read SO_KEEPALIVE", e))?,
        idle_s: sock
            .tcp_keepalive_time()
            .map(secs)
            .map_err(|e| ("read TCP_KEEPIDLE", e))?,
        intvl_s: sock
            .tcp_keepalive_interval()
            .map(secs)
            .map_err(|e| ("read TCP_KEEPINTVL", e))?,
        cnt: sock
            .tcp_keepalive_retries()
            .map_err(|e| ("read TCP_KEEPCNT", e))?,
        user_timeout_ms: sock
            .tcp_user_timeout()
            .map(|d| d.map_or(0, |d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)))
            .map_err(|e| ("read TCP_USER_TIMEOUT", e))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    fn inode_of(s: &TcpStream) -> u32 {
        let fd = s.as_raw_fd();
        fs::metadata(format!("/proc/self/fd/{fd}"))
            .expect("stat own fd")
            .ino() as u32
    }

    #[test]
    fn reads_a_socket_through_a_duplicate_of_our_own_descriptor() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let sock = SockRef::from(&client);
        sock.set_keepalive(true).expect("SO_KEEPALIVE");
        let ka = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(13))
            .with_interval(Duration::from_secs(4))
            .with_retries(6);
        sock.set_tcp_keepalive(&ka).expect("keepalive values");
        sock.set_tcp_user_timeout(Some(Duration::from_millis(7000)))
            .expect("user timeout");
        let got = read_settings_fd(std::process::id(), client.as_raw_fd(), inode_of(&client))
            .expect("read");
        assert_eq!(
            got,
            Effective {
                keepalive: true,
                idle_s: 13,
                intvl_s: 4,
                cnt: 6,
                user_timeout_ms: 7000
            }
        );
    }

    #[test]
    fn a_stale_descriptor_number_is_checked_and_searched_again() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let inode = inode_of(&client);
        let other = listener.as_raw_fd();
        // The listener's descriptor is not this socket: refused, not misread.
        match open_socket_fd(std::process::id(), other, inode) {
            Err(PidfdError::NotHeld { .. }) => {}
            other => panic!("expected NotHeld, got {other:?}"),
        }
        let got = read_settings_fd(std::process::id(), other, inode).expect("found again");
        assert!(!got.keepalive);
    }

    /// docs/kernel-facts.md, "A process whose main thread exited": a Python
    /// process whose main thread calls SYS_exit while a worker holds a socket.
    #[test]
    fn a_zombie_leaders_socket_is_reached_through_a_live_thread() {
        // A leader without an mm has its /proc entries owned by root (the kernel
        // has no mm to take the owner from): only root sees what this checks (as
        // nobody, reading its own zombie leader's fd directory failed;
        // scripts/newcomer.sh).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                std::env::var("TCPALIVE_REQUIRE_LAB").as_deref() != Ok("1"),
                "the zombie-leader test needs root (TCPALIVE_REQUIRE_LAB=1)"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: a zombie leader's sockets: not root (its /proc/PID entries are root's); \
                 run it as root: sudo -E cargo test --release --features lab --lib"
            );
            return;
        }
        const ZOMBIE: &str = r#"
import ctypes, os, socket, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
def worker():
    while ") Z " not in open(f"/proc/{os.getpid()}/stat").read():
        time.sleep(0.01)
    print(l.fileno(), threading.get_native_id(), flush=True)
    sys.stdin.read(); os._exit(0)
threading.Thread(target=worker).start()
libc.syscall(60, 0)
"#;
        let mut child = std::process::Command::new("python3")
            .args(["-c", ZOMBIE])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("line");
        let pid = child.id();
        let words: Vec<i64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let (fd, tid) = (words[0] as i32, words[1] as u32);
        let leader_fds = fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count());
        let leader_ns = fs::read_link(format!("/proc/{pid}/ns/net")).map_err(|e| e.kind());
        let via_leader = getfd(pid, 0, fd).map_err(|e| e.raw_os_error());
        let tid_plain = getfd(tid, 0, fd).map_err(|e| e.raw_os_error());
        let via_thread = getfd(tid, PIDFD_THREAD, fd).map(|_| ());
        let found = procfs::socket_fds(pid).map(|m| m.values().copied().collect::<Vec<_>>());
        let opened = fd_of(pid, inode_of_fd(pid, tid, fd))
            .and_then(|f| open_socket_fd(pid, f, inode_of_fd(pid, tid, fd)).map(|_| f));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            leader_fds.ok(),
            Some(0),
            "the leader's fd directory lists nothing"
        );
        assert_eq!(leader_ns, Err(ErrorKind::NotFound));
        assert_eq!(via_leader.err(), Some(Some(libc::ESRCH)));
        assert_eq!(tid_plain.err(), Some(Some(libc::ENOENT)));
        assert!(via_thread.is_ok(), "PIDFD_THREAD: {via_thread:?}");
        assert_eq!(found.ok(), Some(vec![fd]));
        assert_eq!(opened.ok(), Some(fd));
    }

    fn inode_of_fd(pid: u32, tid: u32, fd: i32) -> u32 {
        fs::metadata(format!("/proc/{pid}/task/{tid}/fd/{fd}"))
            .expect("stat the thread's fd")
            .ino() as u32
    }

    #[test]
    fn a_socket_the_process_does_not_hold_is_named() {
        match open_socket(std::process::id(), 1) {
            Err(PidfdError::NotHeld { inode: 1, .. }) => {}
            other => panic!("expected NotHeld, got {other:?}"),
        }
        match open_socket(u32::MAX - 1, 1) {
            Err(PidfdError::NoSuchProcess(_)) => {}
            other => panic!("expected NoSuchProcess, got {other:?}"),
        }
    }
}
