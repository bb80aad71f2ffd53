//! Readiness waiting for many sockets in one thread: epoll on Linux, poll(2)
//! elsewhere. Tokens are the caller's ids; timeouts round up to whole milliseconds
//! so a wake-up is never earlier than asked.

use std::os::fd::BorrowedFd;
use std::time::Duration;

/// What a registered descriptor reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    pub token: u64,
    pub readable: bool,
    pub writable: bool,
    /// Error or hang-up: a read will tell which.
    pub closed: bool,
}

fn timeout_ms(timeout: Option<Duration>) -> nix::poll::PollTimeout {
    match timeout {
        None => nix::poll::PollTimeout::NONE,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128);
            nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX)
        }
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

    pub struct Poller {
        epoll: Epoll,
        buf: Vec<EpollEvent>,
    }

    fn flags(write: bool) -> EpollFlags {
        let mut f = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
        if write {
            f |= EpollFlags::EPOLLOUT;
        }
        f
    }

    impl Poller {
        pub fn new() -> std::io::Result<Poller> {
            Ok(Poller {
                epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
                buf: vec![EpollEvent::empty(); 256],
            })
        }

        pub fn add(&mut self, fd: BorrowedFd<'_>, token: u64, write: bool) -> std::io::Result<()> {
            Ok(self.epoll.add(fd, EpollEvent::new(flags(write), token))?)
        }

        pub fn delete(&mut self, fd: BorrowedFd<'_>) -> std::io::Result<()> {
            Ok(self.epoll.delete(fd)?)
        }

        /// Waits; EINTR (a harmless signal) returns an empty list, never an error.
        pub fn wait(
            &mut self,
            out: &mut Vec<Ready>,
            timeout: Option<Duration>,
        ) -> std::io::Result<()> {
            out.clear();
            let n = match self.epoll.wait(&mut self.buf, timeout_ms(timeout)) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            for ev in &self.buf[..n] {
                let f = ev.events();
                out.push(Ready {
                    token: ev.data(),
                    readable: f.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP),
                    writable: f.contains(EpollFlags::EPOLLOUT),
                    closed: f.intersects(EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP),
                });
            }
            Ok(())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;
    use nix::poll::{PollFd, PollFlags, poll};
    use std::os::fd::{AsRawFd, RawFd};

    /// poll(2) over the registered set: O(n) per wait, fine off Linux.
    pub struct Poller {
        fds: Vec<(RawFd, u64, bool)>,
    }

    impl Poller {
        pub fn new() -> std::io::Result<Poller> {
            Ok(Poller { fds: Vec::new() })
        }

        pub fn add(&mut self, fd: BorrowedFd<'_>, token: u64, write: bool) -> std::io::Result<()> {
            self.fds.push((fd.as_raw_fd(), token, write));
            Ok(())
        }

        pub fn delete(&mut self, fd: BorrowedFd<'_>) -> std::io::Result<()> {
            self.fds.retain(|(raw, _, _)| *raw != fd.as_raw_fd());
            Ok(())
        }

        pub fn wait(
            &mut self,
            out: &mut Vec<Ready>,
            timeout: Option<Duration>,
        ) -> std::io::Result<()> {
            out.clear();
            // SAFETY: every registered fd is deleted before its owner closes it.
            let borrowed: Vec<BorrowedFd<'_>> = self
                .fds
                .iter()
                .map(|(raw, _, _)| unsafe { BorrowedFd::borrow_raw(*raw) })
                .collect();
            let mut pfds: Vec<PollFd<'_>> = borrowed
                .iter()
                .zip(&self.fds)
                .map(|(fd, (_, _, write))| {
                    let mut f = PollFlags::POLLIN;
                    if *write {
                        f |= PollFlags::POLLOUT;
                    }
                    PollFd::new(*fd, f)
                })
                .collect();
            match poll(&mut pfds, timeout_ms(timeout)) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            for (p, (_, token, _)) in pfds.iter().zip(&self.fds) {
                let f = p.revents().unwrap_or(PollFlags::empty());
                if f.is_empty() {
                    continue;
                }
                out.push(Ready {
                    token: *token,
                    readable: f.contains(PollFlags::POLLIN),
                    writable: f.contains(PollFlags::POLLOUT),
                    closed: f.intersects(PollFlags::POLLERR | PollFlags::POLLHUP),
                });
            }
            Ok(())
        }
    }
}

pub use imp::Poller;
