//! The one event loop every command waits in: it owns the poller, the signal
//! token, EINTR re-waits and deadlines. A command registers its descriptors with
//! its own tokens, then asks [`EventLoop::wait`] for the next thing that happened:
//! a signal, readiness, or its deadline (run time). Name resolution runs through
//! it too ([`EventLoop::resolve`]), so a signal during a slow lookup is answered.
//! Nothing else in the crate creates a poller or looks at the signal pipe.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use crate::engine::run::{Clock, RunError};
use crate::model::event::Outcome;
use crate::sys::{Poller, Ready};

/// The token of the signal pipe; commands' tokens must differ from it.
const SIGNAL: u64 = u64::MAX;
/// The token of a name resolution's wake-up socket.
const RESOLVER: u64 = u64::MAX - 1;
/// The resolver thread's stack: getaddrinfo and its NSS modules, no more.
const RESOLVER_STACK: usize = 256 * 1024;

/// The signals that end a run, with the outcome each ends it with; when several
/// arrived before the loop looked, the first listed wins. SIGHUP (the session or
/// terminal went away) ends the run like SIGTERM, with the summary `end`.
const ENDING: [(libc::c_int, Outcome); 3] = [
    (signal_hook::consts::SIGTERM, Outcome::Terminated),
    (signal_hook::consts::SIGHUP, Outcome::HungUp),
    (signal_hook::consts::SIGINT, Outcome::Interrupted),
];

/// Signals whose default action would kill the process without its `end` line but
/// that mean nothing to tcpalive (it sets no alarm and has no reload or status
/// command): they are caught and ignored, so a stray `kill -USR1` cannot cut a
/// monitor's timeline short.
const IGNORED: [libc::c_int; 3] = [
    signal_hook::consts::SIGUSR1,
    signal_hook::consts::SIGUSR2,
    signal_hook::consts::SIGALRM,
];

/// The signals that end a run, delivered through one self-pipe so a signal wakes
/// the poll loop without a race and without touching any socket; a flag per
/// signal says which one it was. [`IGNORED`] ones are caught and dropped; the
/// rest keep their default action. The handlers only set their flag and write
/// the pipe.
///
/// A signal's disposition belongs to the process and a handler cannot be taken
/// back, so the handlers are installed once per process: every [`Signals`] is a
/// handle on them, and their pipe lives as long as the process (a handler never
/// writes to a closed descriptor, or to one reused for something else).
#[derive(Clone, Copy)]
pub struct Signals {
    handlers: &'static Handlers,
}

struct Handlers {
    wake: UnixStream,
    // The write end is written by the handlers for the life of the process.
    _writer: UnixStream,
    flags: Vec<(Outcome, Arc<AtomicBool>)>,
}

/// The process's handlers, once installed.
static INSTALLED: OnceLock<Handlers> = OnceLock::new();
/// Makes a second install wait for the first rather than register twice.
static INSTALLING: Mutex<()> = Mutex::new(());

/// Holds (blocks) the signals that end a run, in the calling thread and the
/// threads it starts, from the first thing the process does until the command
/// says whether it catches them: a SIGINT in the first milliseconds, before the
/// handlers are installed, then waits for them instead of killing the process
/// without its `end` line. [`Signals::install`] releases them once its handlers
/// are in place (a held signal is delivered to them then); a command that catches
/// none calls [`release_signals`] and keeps the default actions.
pub fn hold_signals() {
    set_mask(libc::SIG_BLOCK);
}

/// Releases what [`hold_signals`] held (a signal that arrived meanwhile is
/// delivered now: to the handlers if installed, else with its default action).
pub fn release_signals() {
    set_mask(libc::SIG_UNBLOCK);
}

fn set_mask(how: libc::c_int) {
    // SAFETY: an empty set is initialised by sigemptyset before use, and
    // pthread_sigmask only changes the calling thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for (sig, _) in ENDING {
            libc::sigaddset(&mut set, sig);
        }
        for sig in IGNORED {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

impl Signals {
    /// Catches the ending signals from now on (the first call in the process
    /// installs the handlers; later ones return them), and releases the ones
    /// [`hold_signals`] held.
    pub fn install() -> Result<Signals, RunError> {
        let _one_at_a_time = INSTALLING.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(handlers) = INSTALLED.get() {
            return Ok(Signals { handlers });
        }
        let handlers = Handlers::register()?;
        let signals = Signals {
            handlers: INSTALLED.get_or_init(|| handlers),
        };
        crate::engine::output::set_signal_check(|| {
            Signals::installed().is_some_and(|s| s.arrived())
        });
        release_signals();
        Ok(signals)
    }

    /// The handlers, when this process installed them: a command that did not
    /// keeps the default actions (a signal ends it by itself).
    pub fn installed() -> Option<Signals> {
        INSTALLED.get().map(|handlers| Signals { handlers })
    }

    /// Whether an ending signal arrived that [`Signals::pending`] has not taken
    /// yet (the stdout queue's wait for room ends at one; the loop takes it).
    pub fn arrived(&self) -> bool {
        self.handlers
            .flags
            .iter()
            .any(|(_, flag)| flag.load(Ordering::SeqCst))
    }

    /// The interruption that arrived, if any (the first in [`ENDING`] wins).
    pub fn pending(&self) -> Option<Outcome> {
        let mut buf = [0u8; 64];
        while let Ok(n) = (&self.handlers.wake).read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        let mut got = None;
        for (outcome, flag) in &self.handlers.flags {
            if flag.swap(false, Ordering::SeqCst) && got.is_none() {
                got = Some(*outcome);
            }
        }
        got
    }
}

impl Handlers {
    fn register() -> Result<Handlers, RunError> {
        let (wake, writer) = UnixStream::pair().map_err(RunError::io("create the signal pipe"))?;
        for s in [&wake, &writer] {
            s.set_nonblocking(true)
                .map_err(RunError::io("create the signal pipe"))?;
        }
        let fd = writer.as_raw_fd();
        let mut flags = Vec::new();
        for (sig, outcome) in ENDING {
            let flag = Arc::new(AtomicBool::new(false));
            let set = Arc::clone(&flag);
            let action = move || {
                set.store(true, Ordering::SeqCst);
                // SAFETY: write(2) is async-signal-safe; the descriptor lives as
                // long as the process (the handlers are kept in `INSTALLED`,
                // which is never dropped). A full pipe already wakes the loop,
                // so a failed write loses nothing.
                unsafe {
                    libc::write(fd, b"!".as_ptr().cast(), 1);
                }
            };
            // SAFETY: the action only stores an atomic and calls write(2).
            unsafe { signal_hook::low_level::register(sig, action) }
                .map_err(RunError::io("install the signal handler"))?;
            flags.push((outcome, flag));
        }
        for sig in IGNORED {
            // SAFETY: an empty action does nothing a signal handler may not do.
            unsafe { signal_hook::low_level::register(sig, || {}) }
                .map_err(RunError::io("install the signal handler"))?;
        }
        Ok(Handlers {
            wake,
            _writer: writer,
            flags,
        })
    }
}

/// What ended a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    /// A signal that ends the run arrived.
    Signal(Outcome),
    /// Registered descriptors are ready: see [`EventLoop::ready`].
    Ready,
    /// The deadline passed.
    Deadline,
}

impl Woke {
    pub fn signal(self) -> Option<Outcome> {
        match self {
            Woke::Signal(o) => Some(o),
            _ => None,
        }
    }
}

/// What name resolution gave.
#[derive(Debug)]
pub enum Resolved {
    Addrs(Vec<SocketAddr>),
    Failed(std::io::Error),
    /// A signal arrived first; the lookup is abandoned (its thread ends on its own).
    Interrupted(Outcome),
}

pub struct EventLoop<'s> {
    poller: Poller,
    signals: Option<&'s Signals>,
    ready: Vec<Ready>,
}

impl<'s> EventLoop<'s> {
    /// A loop that also wakes for `signals` (none for a loop nobody can signal,
    /// such as the demo's in-process listener).
    pub fn new(signals: Option<&'s Signals>) -> Result<EventLoop<'s>, RunError> {
        let mut poller = Poller::new().map_err(RunError::io("create the poller"))?;
        if let Some(s) = signals {
            poller
                .add(std::os::fd::AsFd::as_fd(&s.handlers.wake), SIGNAL, false)
                .map_err(RunError::io("watch signals"))?;
        }
        Ok(EventLoop {
            poller,
            signals,
            ready: Vec::new(),
        })
    }

    /// Wakes for `fd` (readable, errors, hang-ups; also writable if asked) with `token`.
    pub fn watch(
        &mut self,
        fd: BorrowedFd<'_>,
        token: u64,
        writable: bool,
    ) -> Result<(), RunError> {
        debug_assert_ne!(token, SIGNAL, "the signal token is the loop's own");
        self.poller
            .add(fd, token, writable)
            .map_err(RunError::io("watch a descriptor"))
    }

    /// Wakes for `fd`'s hang-ups and errors only, not its data (`listen --no-read`).
    pub fn watch_hangups(&mut self, fd: BorrowedFd<'_>, token: u64) -> Result<(), RunError> {
        debug_assert_ne!(token, SIGNAL, "the signal token is the loop's own");
        self.poller
            .add_hangups(fd, token)
            .map_err(RunError::io("watch a descriptor"))
    }

    /// Stops waking for `fd`; call before the descriptor closes.
    pub fn unwatch(&mut self, fd: BorrowedFd<'_>) {
        // Closing the descriptor removes it from epoll anyway; this keeps the poll
        // fallback's table exact, so a failure here changes nothing.
        let _ = self.poller.delete(fd);
    }

    /// Waits until a signal arrives, a registered descriptor is ready, or the run
    /// time `deadline` passes (`None`: no deadline). An EINTR or a timer that
    /// fired early re-waits for what is left, so callers never see a spurious
    /// wake-up. When a signal arrived together with readiness, the signal wins: it
    /// was sent first.
    pub fn wait(&mut self, clock: &Clock, deadline: Option<Duration>) -> Result<Woke, RunError> {
        // What this wake-up printed goes to the stdout writer in one hand-off.
        crate::engine::output::hand_off();
        loop {
            let now = clock.now();
            if deadline.is_some_and(|d| now >= d) {
                self.ready.clear();
                return Ok(Woke::Deadline);
            }
            self.poller
                .wait(&mut self.ready, deadline.map(|d| d.saturating_sub(now)))
                .map_err(RunError::io("wait for events"))?;
            if self.ready.is_empty() {
                continue;
            }
            if let Some(outcome) = self.signals.and_then(Signals::pending) {
                self.ready.clear();
                return Ok(Woke::Signal(outcome));
            }
            self.ready.retain(|r| r.token != SIGNAL);
            if !self.ready.is_empty() {
                return Ok(Woke::Ready);
            }
        }
    }

    /// Resolves `host` while staying responsive to signals: getaddrinfo blocks
    /// and cannot be interrupted (a resolver that does not answer holds it for
    /// seconds), so it runs on a helper thread that wakes this loop through a
    /// socket pair when it is done. A numeric address needs no lookup and no
    /// thread; where no thread can be started (a tight `ulimit -v`), the lookup
    /// runs here, blocking, as a last resort.
    pub fn resolve(&mut self, clock: &Clock, host: &str, port: u16) -> Result<Resolved, RunError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Resolved::Addrs(vec![SocketAddr::new(ip, port)]));
        }
        let lookup = move |host: &str| {
            (host, port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<SocketAddr>>())
        };
        let (wake, done) = UnixStream::pair().map_err(RunError::io("create the resolver pipe"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let name = host.to_string();
        let spawned = std::thread::Builder::new()
            .name("resolve".to_string())
            .stack_size(RESOLVER_STACK)
            .spawn(move || {
                let _ = tx.send(lookup(&name));
                let _ = (&done).write_all(b"!");
            });
        if spawned.is_err() {
            return Ok(match lookup(host) {
                Ok(addrs) => Resolved::Addrs(addrs),
                Err(e) => Resolved::Failed(e),
            });
        }
        self.watch(wake.as_fd(), RESOLVER, false)?;
        let got = loop {
            match self.wait(clock, None) {
                Ok(Woke::Signal(outcome)) => break Ok(Resolved::Interrupted(outcome)),
                Ok(_) if !self.is_ready(RESOLVER) => continue,
                Ok(_) => match rx.try_recv() {
                    Ok(Ok(addrs)) => break Ok(Resolved::Addrs(addrs)),
                    Ok(Err(e)) => break Ok(Resolved::Failed(e)),
                    // Woken before the result was sent (cannot happen: it is
                    // sent first), or the thread died: say so, do not hang.
                    Err(std::sync::mpsc::TryRecvError::Empty) => continue,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        break Ok(Resolved::Failed(std::io::Error::other(
                            "the resolver thread ended without an answer",
                        )));
                    }
                },
                Err(e) => break Err(e),
            }
        };
        self.unwatch(wake.as_fd());
        got
    }

    /// What the last [`Woke::Ready`] reported.
    pub fn ready(&self) -> &[Ready] {
        &self.ready
    }

    pub fn is_ready(&self, token: u64) -> bool {
        self.ready.iter().any(|r| r.token == token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn deadline_is_never_early_and_readiness_wakes() {
        let clock = Clock::start();
        let mut lp = EventLoop::new(None).expect("loop");
        let (a, mut b) = UnixStream::pair().expect("pair");
        lp.watch(a.as_fd(), 7, false).expect("watch");
        let deadline = clock.now() + Duration::from_millis(30);
        assert_eq!(
            lp.wait(&clock, Some(deadline)).expect("wait"),
            Woke::Deadline
        );
        assert!(clock.now() >= deadline);
        b.write_all(b"x").expect("write");
        let far = clock.now() + Duration::from_secs(10);
        assert_eq!(lp.wait(&clock, Some(far)).expect("wait"), Woke::Ready);
        assert!(lp.is_ready(7));
        lp.unwatch(a.as_fd());
        let soon = clock.now() + Duration::from_millis(5);
        assert_eq!(lp.wait(&clock, Some(soon)).expect("wait"), Woke::Deadline);
    }

    #[test]
    fn a_passed_deadline_does_not_wait() {
        let clock = Clock::start();
        let mut lp = EventLoop::new(None).expect("loop");
        assert_eq!(
            lp.wait(&clock, Some(Duration::ZERO)).expect("wait"),
            Woke::Deadline
        );
    }
}
