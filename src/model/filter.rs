//! Which sockets a command selects: by address, `--port` (local or remote) and
//! `--peer` (resolved addresses, optionally a port), shared by `watch` and `tune`;
//! by owner, `watch --pid`'s bookkeeping of which socket inodes the process holds
//! ([`PidInodes`]).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressFilter {
    pub port: Option<u16>,
    /// The `--peer` host's addresses (canonical: v4-mapped v6 as v4).
    pub peer_ips: Option<Vec<IpAddr>>,
    pub peer_port: Option<u16>,
}

impl AddressFilter {
    /// Whether a connection between `local` and `peer` passes. A listening
    /// socket (`peer` `None`) passes the peer filters, which do not concern it.
    pub fn matches(&self, local: SocketAddr, peer: Option<SocketAddr>) -> bool {
        if let Some(p) = self.port
            && local.port() != p
            && peer.is_none_or(|peer| peer.port() != p)
        {
            return false;
        }
        let Some(peer) = peer else {
            return true;
        };
        if let Some(ips) = &self.peer_ips
            && !ips.contains(&peer.ip().to_canonical())
        {
            return false;
        }
        self.peer_port.is_none_or(|p| peer.port() == p)
    }
}

/// `--pid`: the socket inodes the process and its descendants hold, as last read
/// from /proc, and the inodes seen in dumps that are known not to be theirs (so
/// that /proc is read again only when an inode is new to both).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PidInodes {
    held: HashSet<u32>,
    not_held: HashSet<u32>,
}

impl PidInodes {
    pub fn new(held: HashSet<u32>) -> PidInodes {
        PidInodes {
            held,
            not_held: HashSet::new(),
        }
    }

    /// Given the inodes of this dump's candidate sockets (not yet watched): forgets
    /// the known-not-held inodes no longer among them, and says whether one of them
    /// is new, so that the process's descriptors must be read again. A socket still
    /// open that is not the process's is a candidate at every dump (it never joins):
    /// keeping only those bounds the set by the sockets open now, whatever the churn.
    pub fn needs_reread(&mut self, fresh: impl Iterator<Item = u32> + Clone) -> bool {
        if !self.not_held.is_empty() {
            let present: HashSet<u32> = fresh.clone().collect();
            self.not_held.retain(|inode| present.contains(inode));
        }
        let mut fresh = fresh;
        fresh.any(|inode| !self.held.contains(&inode) && !self.not_held.contains(&inode))
    }

    /// After reading /proc again: what the process holds now, and every candidate
    /// not among it is known not to be its.
    pub fn reread(&mut self, held: HashSet<u32>, fresh: impl Iterator<Item = u32>) {
        self.held = held;
        // A socket passed to the process (SCM_RIGHTS) was another's when last read.
        if !self.not_held.is_empty() {
            let held = &self.held;
            self.not_held.retain(|inode| !held.contains(inode));
        }
        for inode in fresh {
            if !self.held.contains(&inode) {
                self.not_held.insert(inode);
            }
        }
    }

    /// Whether the process holds this socket. Inode 0 (a socket still in its
    /// listener's accept queue) is no process's.
    pub fn holds(&self, inode: u32) -> bool {
        inode != 0 && self.held.contains(&inode)
    }

    /// How many sockets (of any kind) the process holds, as last read.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Tests only.
    #[cfg(test)]
    /// How many inodes are remembered as not the process's.
    pub fn not_held(&self) -> usize {
        self.not_held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12 #10: under churn `watch --pid` remembered every socket inode that
    /// was not the process's, for ever: memory grew without bound.
    #[test]
    fn inodes_not_held_are_remembered_only_while_dumped() {
        let mut p = PidInodes::new(HashSet::from([7]));
        // 1000 dumps, each with 100 new sockets of other processes.
        for pass in 0..1000u32 {
            let fresh = (0..100).map(|i| 1_000_000 + pass * 100 + i);
            assert!(p.needs_reread(fresh.clone()), "pass {pass}");
            p.reread(HashSet::from([7]), fresh);
            assert_eq!(p.not_held(), 100, "pass {pass}");
        }
        // The last 100 still dumped, nothing new: no reread, and they are kept.
        let last = (0..100).map(|i| 1_000_000 + 999 * 100 + i);
        assert!(!p.needs_reread(last));
        assert_eq!(p.not_held(), 100);
        // None dumped any more: all forgotten.
        assert!(!p.needs_reread(std::iter::empty()));
        assert_eq!(p.not_held(), 0);
    }

    #[test]
    fn only_an_inode_new_to_both_sets_asks_for_a_reread() {
        let mut p = PidInodes::new(HashSet::from([7, 8]));
        assert!(!p.needs_reread([7, 8].into_iter()));
        assert!(p.needs_reread([7, 9].into_iter()));
        // Read again: 9 is not the process's, 10 is (a new connection of it).
        p.reread(HashSet::from([7, 8, 10]), [7, 9, 10].into_iter());
        assert!(!p.needs_reread([7, 9, 10].into_iter()));
        assert!(p.holds(10));
        assert!(!p.holds(9));
        assert_eq!((p.held(), p.not_held()), (3, 1));
        // The process exited: it holds nothing, and every candidate is another's.
        p.reread(HashSet::new(), [7, 10].into_iter());
        assert!(!p.holds(7));
        assert!(!p.needs_reread([7, 10].into_iter()));
    }

    /// A socket seen while another process held it, then passed to this one with
    /// SCM_RIGHTS: the next read makes it the process's, and no longer another's.
    #[test]
    fn a_socket_passed_to_the_process_becomes_its() {
        let mut p = PidInodes::new(HashSet::from([7]));
        assert!(p.needs_reread([7, 9].into_iter()));
        p.reread(HashSet::from([7]), [7, 9].into_iter());
        assert!(!p.holds(9));
        p.reread(HashSet::from([7, 9]), [7, 9].into_iter());
        assert!(p.holds(9));
        assert_eq!(p.not_held(), 0);
    }

    #[test]
    fn a_socket_in_an_accept_queue_is_nobodys() {
        let p = PidInodes::new(HashSet::from([0, 5]));
        assert!(!p.holds(0));
        assert!(p.holds(5));
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn table() {
        let f = AddressFilter {
            port: Some(6379),
            peer_ips: Some(vec!["127.0.0.2".parse().expect("ip")]),
            peer_port: None,
        };
        let rows = [
            (a("127.0.0.1:6379"), Some(a("127.0.0.2:5000")), true),
            (a("127.0.0.1:5000"), Some(a("127.0.0.2:6379")), true),
            (a("127.0.0.1:6379"), Some(a("127.0.0.3:5000")), false),
            (a("127.0.0.1:80"), Some(a("127.0.0.2:5000")), false),
            (
                a("[::ffff:127.0.0.1]:6379"),
                Some(a("[::ffff:127.0.0.2]:1")),
                true,
            ),
            (a("0.0.0.0:6379"), None, true),
            (a("0.0.0.0:80"), None, false),
        ];
        for (local, peer, want) in rows {
            assert_eq!(f.matches(local, peer), want, "{local} {peer:?}");
        }
        assert!(AddressFilter::default().matches(a("1.2.3.4:1"), None));
    }
}
