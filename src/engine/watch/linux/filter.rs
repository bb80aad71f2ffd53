//! `watch`'s filters, resolved: `--port` and `--peer` decided from the dump alone,
//! `--pid` by the socket inodes the process and its descendants hold (re-read when
//! an unknown inode appears, and the known processes' descriptors at least every
//! [`PID_REREAD`], so that a socket passed with SCM_RIGHTS joins its receiver and
//! leaves its sender), the network namespace `--pid` lives in (its sockets are
//! dumped from there), and the notes that say which processes are watched or why
//! nothing matched.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::{RUN, Watch, as_io};
use crate::engine::event_loop::{EventLoop, Resolved};
use crate::engine::run::{Reporter, RunError};
use crate::engine::watch::WatchOptions;
use crate::model::event::{EventKind, Outcome};
use crate::model::filter::{AddressFilter, PidInodes};
use crate::model::sample::TCP_ESTABLISHED;
use crate::model::watch;
use crate::sys::nsenter::NetNs;
use crate::sys::procfs;
use crate::sys::sockdiag::DiagEntry;

/// How often the descriptors of `--pid`'s processes are read again when no new
/// socket asked for it: a socket another process passes to them (or they pass
/// away) over a unix socket with SCM_RIGHTS was already in the dump, so nothing
/// else shows that it changed hands. One directory read per process.
const PID_REREAD: Duration = Duration::from_secs(1);

/// The user's filters, resolved. The port is also given to the kernel.
pub(super) struct Filter {
    /// `--port` and `--peer`, decided from the dump alone.
    pub(super) addresses: AddressFilter,
    pub(super) pid: Option<u32>,
    /// `--pid` and its descendants, as last read.
    pub(super) pids: Vec<u32>,
    /// Socket inodes the `--pid` process holds, and ones known not to be its.
    pub(super) inodes: PidInodes,
    /// How many sockets the descendants hold, as last read.
    descendant_sockets: usize,
    /// When the descriptors were last read.
    read_at: Option<Instant>,
    /// Whether the last `settle_pid` read them (so watched sockets are checked).
    pub(super) reread_now: bool,
    /// Whether that read looked for new descendants too.
    read_full: bool,
    /// Watched sockets found in none of the processes' tables, and since when
    /// (one that is in flight or being closed is given one more read).
    unheld: HashMap<u64, Instant>,
    /// `--pid`'s network namespace when it is not ours: dumps, destroy
    /// notifications, conntrack and sysctls are read there.
    pub(super) netns: Option<NetNs>,
    /// How it is named in the watched lines ("lab-a (net:[4026532301])").
    pub(super) netns_label: Option<String>,
}

impl Filter {
    /// A filter by these addresses and `--pid`, before anything of the process
    /// has been read.
    fn unread(addresses: AddressFilter, pid: Option<u32>) -> Filter {
        Filter {
            addresses,
            pid,
            pids: Vec::new(),
            inodes: PidInodes::default(),
            descendant_sockets: 0,
            read_at: None,
            reread_now: false,
            read_full: false,
            unheld: HashMap::new(),
            netns: None,
            netns_label: None,
        }
    }

    /// The filters, `--peer` resolved in the event loop (a signal during a slow
    /// lookup comes back as `Err(outcome)`).
    pub(super) fn new(
        options: &WatchOptions,
        lp: &mut EventLoop<'_>,
        rep: &Reporter,
    ) -> Result<Result<Filter, Outcome>, RunError> {
        let peer_ips = match &options.peer {
            Some(p) => match lp.resolve(&rep.clock, &p.host, 0)? {
                Resolved::Addrs(addrs) => {
                    Some(addrs.into_iter().map(|a| a.ip().to_canonical()).collect())
                }
                Resolved::Failed(e) => return Err(RunError::socket("resolve --peer", &p.host)(e)),
                Resolved::Interrupted(outcome) => return Ok(Err(outcome)),
            },
            None => None,
        };
        let mut f = Filter::unread(
            AddressFilter {
                port: options.port,
                peer_ips,
                peer_port: options.peer.as_ref().and_then(|p| p.port),
            },
            options.pid,
        );
        if let Some(pid) = f.pid {
            procfs::check_pid_namespace(pid).map_err(pid_error)?;
            f.inodes = PidInodes::new(f.read_pid_inodes(pid)?);
            f.netns = other_netns(pid)?;
            f.netns_label = f.netns.as_ref().map(NetNs::label);
        }
        Ok(Ok(f))
    }

    /// Runs `work` in `--pid`'s network namespace (on a thread of its own, when it
    /// is not ours): sockets made there (sock_diag, conntrack) keep answering
    /// for it, and /proc/sys/net read there is its own.
    pub(super) fn in_netns<T: Send>(&self, work: impl FnOnce() -> T + Send) -> Result<T, RunError> {
        match &self.netns {
            None => Ok(work()),
            Some(ns) => ns.run(work).map_err(|e| {
                let e = match e.kind() {
                    std::io::ErrorKind::PermissionDenied => std::io::Error::new(
                        e.kind(),
                        format!(
                            "{e}: setns(2) needs CAP_SYS_ADMIN over it (root); without it none \
                             of its sockets can be seen"
                        ),
                    ),
                    _ => e,
                };
                RunError::io("enter the network namespace of --pid")(e)
            }),
        }
    }

    /// The socket inodes of `pid` and of its descendants (which hold a service's
    /// connections: nginx workers, PostgreSQL backends, sshd sessions).
    fn read_pid_inodes(&mut self, pid: u32) -> Result<HashSet<u32>, RunError> {
        self.pids = vec![pid];
        self.pids.extend(procfs::descendants(pid));
        self.read_known()
    }

    /// The socket inodes of the processes last found (`--pid` first).
    fn read_known(&mut self) -> Result<HashSet<u32>, RunError> {
        self.read_at = Some(Instant::now());
        let Some((&pid, children)) = self.pids.split_first() else {
            return Ok(HashSet::new());
        };
        let mut inodes = procfs::socket_inodes(pid).map_err(pid_error)?;
        let mut below = HashSet::new();
        for &child in children {
            // A descendant that exited or is not ours to read holds nothing we see.
            if let Ok(set) = procfs::socket_inodes(child) {
                below.extend(set);
            }
        }
        self.descendant_sockets = below.len();
        inodes.extend(below);
        Ok(inodes)
    }

    /// `--pid`: re-reads the processes' descriptors if some inode is new (with
    /// their descendants), else every [`PID_REREAD`] (the processes known).
    pub(super) fn settle_pid(&mut self, fresh: &[DiagEntry]) -> Result<(), RunError> {
        self.reread_now = false;
        let Some(pid) = self.pid else { return Ok(()) };
        let inodes = fresh.iter().map(|e| e.inode);
        let new = self.inodes.needs_reread(inodes.clone());
        let due = self.read_at.is_none_or(|t| t.elapsed() >= PID_REREAD);
        if !new && !due {
            return Ok(());
        }
        let held = self.read(pid, new)?;
        self.inodes.reread(held, inodes);
        self.reread_now = true;
        self.read_full = new;
        Ok(())
    }

    /// The sockets of the tree (`full`: its descendants found again) or of the
    /// processes known. A `--pid` that exited holds nothing.
    fn read(&mut self, pid: u32, full: bool) -> Result<HashSet<u32>, RunError> {
        let read = if full {
            self.read_pid_inodes(pid)
        } else {
            self.read_known()
        };
        match read {
            Ok(set) => Ok(set),
            // The process exited: its sockets go as they go; nothing new is its.
            Err(_) if procfs::process_name(pid).is_none() => Ok(HashSet::new()),
            Err(e) => Err(e),
        }
    }

    /// Reads the whole tree again unless the last read did: a socket the known
    /// processes no longer hold may be held by a new descendant (a server that
    /// forks per connection, then closes its copy: PostgreSQL, sshd).
    fn reread_tree(&mut self) -> Result<(), RunError> {
        let Some(pid) = self.pid else { return Ok(()) };
        if self.read_full {
            return Ok(());
        }
        let held = self.read(pid, true)?;
        self.inodes.reread(held, std::iter::empty());
        self.read_full = true;
        Ok(())
    }

    pub(super) fn matches_pid(&self, e: &DiagEntry) -> bool {
        self.pid.is_none() || self.inodes.holds(e.inode)
    }
}

/// `pid`'s network namespace when it is not ours. One that cannot be opened
/// (another user's process) is taken to be ours: its descriptors cannot be read
/// either, and that error says why.
fn other_netns(pid: u32) -> Result<Option<NetNs>, RunError> {
    let theirs = match NetNs::of(pid) {
        Ok(ns) => ns,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(None),
        Err(e) => return Err(RunError::io("open the network namespace of --pid")(e)),
    };
    let ours = NetNs::current().map_err(RunError::io("open this network namespace"))?;
    Ok((theirs.inode != ours.inode).then_some(theirs))
}

fn pid_error(e: procfs::ProcError) -> RunError {
    RunError::Io {
        op: "apply --pid",
        source: as_io(e),
    }
}

impl Watch {
    /// `--pid` with descendants: says which processes are watched.
    pub(super) fn pid_note(&self, rep: &mut Reporter) -> Result<(), RunError> {
        let Some(pid) = self.filter.pid else {
            return Ok(());
        };
        let named = |p: u32| match procfs::process_name(p) {
            Some(n) => format!("{p} ({n})"),
            None => p.to_string(),
        };
        if let Some(label) = &self.filter.netns_label {
            rep.emit(
                RUN,
                EventKind::Warning {
                    message: format!(
                        "--pid {}: it lives in another network namespace, {label}: its sockets \
                         are dumped there and its sysctls read there",
                        named(pid)
                    ),
                },
            )?;
        }
        let children = &self.filter.pids[1.min(self.filter.pids.len())..];
        if children.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = children
            .iter()
            .take(watch::NAMED_DESCENDANTS)
            .map(|&p| named(p))
            .collect();
        match watch::descendants_note(
            &named(pid),
            &list,
            children.len(),
            self.filter.descendant_sockets,
        ) {
            Some(message) => rep.emit(RUN, EventKind::Warning { message }),
            None => Ok(()),
        }
    }

    /// After the first pass, `--pid` that matched nothing says why.
    pub(super) fn nothing_matched_note(
        &self,
        rep: &mut Reporter,
        options: &WatchOptions,
    ) -> Result<(), RunError> {
        let Some(pid) = self.filter.pid else {
            return Ok(());
        };
        if !self.conns.is_empty() {
            return Ok(());
        }
        let message = watch::nothing_matched_note(
            pid,
            options.port.is_some() || options.peer.is_some(),
            self.filter.pids.len().saturating_sub(1),
            self.filter.inodes.held(),
        );
        rep.emit(RUN, EventKind::Warning { message })
    }

    /// `--pid`, after its processes' descriptors were read again: a watched
    /// connection still established that none of them holds any more was passed
    /// on (SCM_RIGHTS) and its copy closed: it leaves the watch, its end naming
    /// who holds it now. One found in no process at all (in flight, or closed
    /// between the dump and the read) is given one more read first.
    pub(super) fn handed_over(
        &mut self,
        rep: &mut Reporter,
        now: Duration,
    ) -> Result<(), RunError> {
        if self.filter.pid.is_none() || !self.filter.reread_now {
            return Ok(());
        }
        let generation = self.generation;
        let unheld = |w: &Watch| -> Vec<(u64, u32)> {
            w.conns
                .iter()
                .filter(|(_, c)| {
                    c.generation == generation
                        && c.gone_at.is_none()
                        && c.last.state == TCP_ESTABLISHED
                        && !w.filter.inodes.holds(c.last.inode)
                })
                .map(|(&cookie, c)| (cookie, c.last.inode))
                .collect()
        };
        let mut unheld_now = unheld(self);
        if !unheld_now.is_empty() && !self.filter.read_full {
            self.filter.reread_tree()?;
            unheld_now = unheld(self);
        }
        let unheld = unheld_now;
        let still: HashSet<u64> = unheld.iter().map(|(c, _)| *c).collect();
        self.filter.unheld.retain(|c, _| still.contains(c));
        for (cookie, inode) in unheld {
            let holders = procfs::holders_of(inode, &self.filter.pids);
            let first_seen = *self
                .filter
                .unheld
                .entry(cookie)
                .or_insert_with(Instant::now);
            let whom = if holders.is_empty() {
                if first_seen.elapsed() < PID_REREAD / 2 {
                    continue;
                }
                "no process holds it now (in flight over a unix socket, SCM_RIGHTS, or being \
                 closed)"
                    .to_string()
            } else {
                let named: Vec<String> = holders
                    .iter()
                    .take(watch::NAMED_DESCENDANTS)
                    .map(|(p, n)| format!("{p} ({n})"))
                    .collect();
                format!("it is held by {} now", named.join(", "))
            };
            let Some(conn) = self.conns.remove(&cookie) else {
                continue;
            };
            self.filter.unheld.remove(&cookie);
            self.owners.forget(inode);
            let end = conn.timeline.end(
                now,
                Outcome::Alive,
                None,
                format!(
                    "still established but no longer held by --pid {} or its descendants (passed \
                     on with SCM_RIGHTS and closed there?): {whom}; no longer watched",
                    self.filter.pid.unwrap_or_default()
                ),
            );
            let end = rep.end(conn.id, end)?;
            self.tally.record(&end);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::sockdiag::TCP_ESTABLISHED;
    use crate::sys::sockdiag::TimerKind;
    use std::time::Duration;

    fn entry(inode: u32) -> DiagEntry {
        DiagEntry {
            family: libc::AF_INET as u8,
            state: TCP_ESTABLISHED,
            timer: TimerKind::None,
            expires: Duration::ZERO,
            local: "127.0.0.1:1".parse().expect("addr"),
            peer: "127.0.0.1:2".parse().expect("addr"),
            uid: 0,
            inode,
            cookie: u64::from(inode),
            send_queue: 0,
            recv_queue: 0,
            interface: 0,
            info: None,
        }
    }

    /// Issue 12 #10 (memory grew without bound under churn) through the wiring:
    /// `--pid` of this test process, its descriptors read from /proc at each reread.
    #[test]
    fn not_pid_set_holds_only_sockets_still_open() {
        let mut f = Filter::unread(AddressFilter::default(), Some(std::process::id()));
        // 1000 passes, each seeing 100 new connections of other processes.
        for pass in 0..1000u32 {
            let fresh: Vec<DiagEntry> = (0..100)
                .map(|i| entry(1_000_000 + pass * 100 + i))
                .collect();
            f.settle_pid(&fresh).expect("settle");
            assert!(
                f.inodes.not_held() <= 100,
                "{} remembered",
                f.inodes.not_held()
            );
        }
    }
}
