//! `watch`'s filters, resolved: `--port` and `--peer` decided from the dump alone,
//! `--pid` by the socket inodes the process and its descendants hold (re-read when
//! an unknown inode appears), and the notes that say which processes are watched
//! or why nothing matched.

use std::collections::HashSet;

use super::{RUN, Watch, as_io};
use crate::engine::event_loop::{EventLoop, Resolved};
use crate::engine::run::{Reporter, RunError};
use crate::engine::watch::WatchOptions;
use crate::model::event::{EventKind, Outcome};
use crate::model::filter::{AddressFilter, PidInodes};
use crate::model::watch;
use crate::sys::procfs;
use crate::sys::sockdiag::DiagEntry;

/// The user's filters, resolved. The port is also given to the kernel.
pub(super) struct Filter {
    /// `--port` and `--peer`, decided from the dump alone.
    pub(super) addresses: AddressFilter,
    pub(super) pid: Option<u32>,
    /// `--pid` and its descendants, as last read.
    pub(super) pids: Vec<u32>,
    /// Socket inodes the `--pid` process holds, and ones known not to be its.
    pub(super) inodes: PidInodes,
}

impl Filter {
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
        let mut f = Filter {
            addresses: AddressFilter {
                port: options.port,
                peer_ips,
                peer_port: options.peer.as_ref().and_then(|p| p.port),
            },
            pid: options.pid,
            pids: Vec::new(),
            inodes: PidInodes::default(),
        };
        if let Some(pid) = f.pid {
            f.inodes = PidInodes::new(f.read_pid_inodes(pid)?);
        }
        Ok(Ok(f))
    }

    /// The socket inodes of `pid` and of its descendants (which hold a service's
    /// connections: nginx workers, PostgreSQL backends, sshd sessions).
    fn read_pid_inodes(&mut self, pid: u32) -> Result<HashSet<u32>, RunError> {
        let mut inodes = procfs::socket_inodes(pid).map_err(pid_error)?;
        self.pids = vec![pid];
        for child in procfs::descendants(pid) {
            // A descendant that exited or is not ours to read holds nothing we see.
            if let Ok(set) = procfs::socket_inodes(child) {
                inodes.extend(set);
            }
            self.pids.push(child);
        }
        Ok(inodes)
    }

    /// `--pid`: re-reads the process's descriptors once if some inode is new.
    pub(super) fn settle_pid(&mut self, fresh: &[DiagEntry]) -> Result<(), RunError> {
        let Some(pid) = self.pid else { return Ok(()) };
        let inodes = fresh.iter().map(|e| e.inode);
        if !self.inodes.needs_reread(inodes.clone()) {
            return Ok(());
        }
        let held = match self.read_pid_inodes(pid) {
            Ok(set) => set,
            // The process exited: its sockets go as they go; nothing new is its.
            Err(_) if procfs::process_name(pid).is_none() => HashSet::new(),
            Err(e) => return Err(e),
        };
        self.inodes.reread(held, inodes);
        Ok(())
    }

    pub(super) fn matches_pid(&self, e: &DiagEntry) -> bool {
        self.pid.is_none() || self.inodes.holds(e.inode)
    }
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
        let children = &self.filter.pids[1.min(self.filter.pids.len())..];
        if children.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = children
            .iter()
            .take(watch::NAMED_DESCENDANTS)
            .map(|&p| named(p))
            .collect();
        match watch::descendants_note(&named(pid), &list, children.len()) {
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
        let mut f = Filter {
            addresses: AddressFilter::default(),
            pid: Some(std::process::id()),
            pids: Vec::new(),
            inodes: PidInodes::default(),
        };
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
