//! poll(2) over the registered set: O(n) per wait, fine off Linux.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use crate::sys::poller::{Ready, timeout_ms};
use nix::poll::{PollFd, PollFlags, poll};
use std::os::fd::{AsRawFd, RawFd};

/// poll(2) over the registered set: O(n) per wait, fine off Linux.
pub struct Poller {
    /// Descriptor, token, writable wanted, readable wanted.
    fds: Vec<(RawFd, u64, bool, bool)>,
}

impl Poller {
    pub fn new() -> std::io::Result<Poller> {
        Ok(Poller { fds: Vec::new() })
    }

    pub fn add(&mut self, fd: BorrowedFd<'_>, token: u64, write: bool) -> std::io::Result<()> {
        self.fds.push((fd.as_raw_fd(), token, write, true));
        Ok(())
    }

    /// Hang-ups and errors only (poll reports them whatever is asked).
    pub fn add_hangups(&mut self, fd: BorrowedFd<'_>, token: u64) -> std::io::Result<()> {
        self.fds.push((fd.as_raw_fd(), token, false, false));
        Ok(())
    }

    pub fn delete(&mut self, fd: BorrowedFd<'_>) -> std::io::Result<()> {
        self.fds.retain(|(raw, _, _, _)| *raw != fd.as_raw_fd());
        Ok(())
    }

    pub fn wait(&mut self, out: &mut Vec<Ready>, timeout: Option<Duration>) -> std::io::Result<()> {
        out.clear();
        // SAFETY: every registered fd is deleted before its owner closes it.
        let borrowed: Vec<BorrowedFd<'_>> = self
            .fds
            .iter()
            .map(|(raw, _, _, _)| unsafe { BorrowedFd::borrow_raw(*raw) })
            .collect();
        let mut pfds: Vec<PollFd<'_>> = borrowed
            .iter()
            .zip(&self.fds)
            .map(|(fd, (_, _, write, read))| {
                let mut f = if *read {
                    PollFlags::POLLIN
                } else {
                    PollFlags::empty()
                };
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
        for (p, (_, token, _, _)) in pfds.iter().zip(&self.fds) {
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
