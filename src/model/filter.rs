//! Which sockets a command selects by address: `--port` (local or remote) and
//! `--peer` (resolved addresses, optionally a port). Shared by `watch` and `tune`.

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

#[cfg(test)]
mod tests {
    use super::*;

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
