//! epoll: readiness of many sockets in one thread.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use crate::sys::poller::{Ready, timeout_ms};
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

    /// Registers `fd` for hang-ups and errors only (the peer's FIN, RST, a timeout),
    /// not for data: a socket that is deliberately not read (`listen --no-read`)
    /// would otherwise stay readable and wake every wait.
    pub fn add_hangups(&mut self, fd: BorrowedFd<'_>, token: u64) -> std::io::Result<()> {
        Ok(self
            .epoll
            .add(fd, EpollEvent::new(EpollFlags::EPOLLRDHUP, token))?)
    }

    pub fn delete(&mut self, fd: BorrowedFd<'_>) -> std::io::Result<()> {
        Ok(self.epoll.delete(fd)?)
    }

    /// Waits; EINTR (a harmless signal) returns an empty list, never an error.
    pub fn wait(&mut self, out: &mut Vec<Ready>, timeout: Option<Duration>) -> std::io::Result<()> {
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
