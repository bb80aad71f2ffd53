//! This network namespace's connection tracking (netfilter conntrack, over
//! ctnetlink): the entry of one TCP connection, looked up by its four-tuple
//! (`IPCTNL_MSG_CT_GET`), with the seconds it has left (`CTA_TIMEOUT`) and its TCP
//! state; and the established-state timeout the entries are refreshed to.
//!
//! The messages are built and parsed with netlink-packet-netfilter (rust-netlink,
//! the family of the sock_diag crates already used here). One lookup finds the
//! entry in either direction: the kernel hashes both the original and the reply
//! tuple, so the socket's own (local, peer) matches an outgoing connection's
//! original tuple and an incoming one's reply tuple alike. ctnetlink answers only
//! to CAP_NET_ADMIN in the namespace's owning user namespace (`EPERM` otherwise).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoInfo, ProtoInfoTCP, ProtoTuple, Protocol,
    Tuple,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::{Socket, SocketAddr as NetlinkAddr, protocols::NETLINK_NETFILTER};
use thiserror::Error;

/// An answer is one message of a few hundred bytes.
const RECV_BUF: usize = 16 * 1024;
/// The kernel answers within the request's send; this bounds a wait that should
/// never happen, so a lost answer cannot stall `watch`'s loop.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);
/// `TCP_CONNTRACK_ESTABLISHED` (include/uapi/linux/netfilter/nf_conntrack_tcp.h).
pub const TCP_CONNTRACK_ESTABLISHED: u8 = 3;

/// One connection's conntrack entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtEntry {
    /// Seconds left before the entry expires unless a packet refreshes it.
    pub timeout: Duration,
    /// The entry's TCP state (`TCP_CONNTRACK_*`), when it carries one.
    pub tcp_state: Option<u8>,
}

/// The name conntrack(8) prints for a `TCP_CONNTRACK_*` state.
pub fn tcp_state_name(state: u8) -> &'static str {
    match state {
        0 => "NONE",
        1 => "SYN_SENT",
        2 => "SYN_RECV",
        3 => "ESTABLISHED",
        4 => "FIN_WAIT",
        5 => "CLOSE_WAIT",
        6 => "LAST_ACK",
        7 => "TIME_WAIT",
        8 => "CLOSE",
        9 => "SYN_SENT2",
        _ => "UNKNOWN",
    }
}

#[derive(Debug, Error)]
pub enum ConntrackError {
    #[error("cannot open a netfilter netlink socket: {0}")]
    Open(#[source] std::io::Error),
    #[error("cannot send the conntrack lookup of {local} -> {peer}: {source}")]
    Send {
        local: SocketAddr,
        peer: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the conntrack answer for {local} -> {peer}: {source}")]
    Recv {
        local: SocketAddr,
        peer: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reading conntrack needs CAP_NET_ADMIN; the kernel answered EPERM")]
    NotPermitted(#[source] std::io::Error),
    #[error("the kernel refused the conntrack lookup of {local} -> {peer}: {source}")]
    Refused {
        local: SocketAddr,
        peer: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed conntrack answer for {local} -> {peer}: {why}")]
    Malformed {
        local: SocketAddr,
        peer: SocketAddr,
        why: String,
    },
}

impl ConntrackError {
    /// No lookup will succeed in this process: asking again is pointless.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ConntrackError::Open(_) | ConntrackError::NotPermitted(_)
        )
    }
}

/// A netfilter netlink socket for conntrack lookups.
pub struct Conntrack {
    sock: Socket,
    buf: Vec<u8>,
    seq: u32,
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:a.b.c.d`) is tracked as
/// IPv4.
fn canonical(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    }
}

/// The `IPCTNL_MSG_CT_GET` request for the TCP four-tuple `local` -> `peer`.
pub fn lookup_request(local: SocketAddr, peer: SocketAddr, seq: u32) -> Vec<u8> {
    let (local, peer) = (canonical(local), canonical(peer));
    let family = if local.is_ipv4() {
        NetfilterProtoFamily::IPv4
    } else {
        NetfilterProtoFamily::IPv6
    };
    let tuple = vec![
        Tuple::Ip(vec![
            IPTuple::SourceAddress(local.ip()),
            IPTuple::DestinationAddress(peer.ip()),
        ]),
        Tuple::Proto(vec![
            ProtoTuple::Protocol(Protocol::Tcp),
            ProtoTuple::SourcePort(local.port()),
            ProtoTuple::DestinationPort(peer.port()),
        ]),
    ];
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    header.sequence_number = seq;
    let mut message = NetlinkMessage::new(
        header,
        NetlinkPayload::from(NetfilterMessage::new(
            NetfilterHeader::new(family, 0, 0),
            ConntrackMessage::Get(vec![ConntrackAttribute::CtaTupleOrig(tuple)]),
        )),
    );
    message.finalize();
    let mut buf = vec![0; message.buffer_len()];
    message.serialize(&mut buf);
    buf
}

/// What one answer says: the entry, none (`ENOENT`), or the kernel's errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Entry(CtEntry),
    NoEntry,
    Errno(i32),
    /// Not an answer to a lookup (another message type): read on.
    Other,
}

/// Parses one netlink message of a lookup's answer; an answer to another request
/// than `seq` (one that timed out before) is `Other`.
pub fn parse_answer(bytes: &[u8], seq: u32) -> Result<Answer, String> {
    let msg = NetlinkMessage::<NetfilterMessage>::deserialize(bytes).map_err(|e| e.to_string())?;
    if msg.header.sequence_number != seq {
        return Ok(Answer::Other);
    }
    match msg.payload {
        NetlinkPayload::Error(e) => match e.code.map(|c| -c.get()) {
            None => Ok(Answer::Other),
            Some(libc::ENOENT) => Ok(Answer::NoEntry),
            Some(errno) => Ok(Answer::Errno(errno)),
        },
        NetlinkPayload::InnerMessage(NetfilterMessage {
            inner:
                NetfilterMessageInner::Conntrack(
                    ConntrackMessage::New(attrs) | ConntrackMessage::Get(attrs),
                ),
            ..
        }) => {
            let mut timeout = None;
            let mut tcp_state = None;
            for a in &attrs {
                match a {
                    ConntrackAttribute::CtaTimeout(s) => {
                        timeout = Some(Duration::from_secs(u64::from(*s)))
                    }
                    ConntrackAttribute::CtaProtoInfo(infos) => {
                        for info in infos {
                            if let ProtoInfo::TCP(tcp) = info {
                                for t in tcp {
                                    if let ProtoInfoTCP::State(s) = t {
                                        tcp_state = Some(*s);
                                    }
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            // An entry without CTA_TIMEOUT does not expire (confirmed entries
            // always carry one; a fixed-timeout-less entry is not ours to judge).
            match timeout {
                Some(timeout) => Ok(Answer::Entry(CtEntry { timeout, tcp_state })),
                None => Err("an entry without CTA_TIMEOUT".to_string()),
            }
        }
        _ => Ok(Answer::Other),
    }
}

impl Conntrack {
    pub fn open() -> Result<Conntrack, ConntrackError> {
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(ConntrackError::Open)?;
        set_receive_timeout(&sock, ANSWER_TIMEOUT).map_err(ConntrackError::Open)?;
        sock.bind_auto().map_err(ConntrackError::Open)?;
        sock.connect(&NetlinkAddr::new(0, 0))
            .map_err(ConntrackError::Open)?;
        Ok(Conntrack {
            sock,
            buf: vec![0; RECV_BUF],
            seq: 0,
        })
    }

    /// The entry of the TCP connection `local` -> `peer`, or `None` when conntrack
    /// does not track it (no entry, or no conntrack in this namespace).
    pub fn lookup(
        &mut self,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Result<Option<CtEntry>, ConntrackError> {
        self.seq = self.seq.wrapping_add(1);
        let request = lookup_request(local, peer, self.seq);
        self.sock
            .send(&request, 0)
            .map_err(|source| ConntrackError::Send {
                local,
                peer,
                source,
            })?;
        loop {
            // The kernel answers at once (the request is handled in the send);
            // EINTR is retried, so a signal never loses the answer.
            let n = loop {
                match self.sock.recv(&mut &mut self.buf[..], 0) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(source) => {
                        return Err(ConntrackError::Recv {
                            local,
                            peer,
                            source,
                        });
                    }
                }
            };
            let data = &self.buf[..n.min(self.buf.len())];
            let answer = parse_answer(data, self.seq).map_err(|why| ConntrackError::Malformed {
                local,
                peer,
                why,
            })?;
            match answer {
                Answer::Entry(e) => return Ok(Some(e)),
                Answer::NoEntry => return Ok(None),
                Answer::Errno(libc::EPERM) => {
                    return Err(ConntrackError::NotPermitted(
                        std::io::Error::from_raw_os_error(libc::EPERM),
                    ));
                }
                // No ctnetlink in this kernel (module absent and not loadable):
                // nothing is tracked that we could see.
                Answer::Errno(libc::EOPNOTSUPP | libc::EPROTONOSUPPORT) => return Ok(None),
                Answer::Errno(errno) => {
                    return Err(ConntrackError::Refused {
                        local,
                        peer,
                        source: std::io::Error::from_raw_os_error(errno),
                    });
                }
                Answer::Other => continue,
            }
        }
    }
}

/// SO_RCVTIMEO: a receive that waits longer fails with EAGAIN.
fn set_receive_timeout(sock: &Socket, d: Duration) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let tv = libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: a valid socket descriptor and a timeval of the size given.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `net.netfilter.nf_conntrack_tcp_timeout_established` of this namespace: what an
/// established entry's timeout is refreshed to by each packet; `None` without
/// conntrack (the sysctl exists once the module is loaded).
pub fn established_timeout() -> Option<Duration> {
    std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// `net.netfilter.nf_conntrack_tcp_loose` of this namespace: whether a packet of
/// a flow conntrack does not know is picked up as a new flow (1, the default) or
/// marked INVALID (0).
pub fn tcp_loose() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_tcp_loose")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{ErrorMessage, NetlinkBuffer};
    use std::num::NonZeroI32;

    fn answer(attrs: Vec<ConntrackAttribute>) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = 7;
        let mut m = NetlinkMessage::new(
            header,
            NetlinkPayload::from(NetfilterMessage::new(
                NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0),
                ConntrackMessage::New(attrs),
            )),
        );
        m.finalize();
        let mut buf = vec![0; m.buffer_len()];
        m.serialize(&mut buf);
        buf
    }

    fn error(errno: i32) -> Vec<u8> {
        let mut e = ErrorMessage::default();
        e.code = NonZeroI32::new(-errno);
        let mut header = NetlinkHeader::default();
        header.sequence_number = 7;
        let mut m = NetlinkMessage::<NetfilterMessage>::new(header, NetlinkPayload::Error(e));
        m.finalize();
        let mut buf = vec![0; m.buffer_len()];
        m.serialize(&mut buf);
        buf
    }

    #[test]
    fn request_is_a_ct_get_by_tuple() {
        let local: SocketAddr = "198.18.0.1:40000".parse().unwrap();
        let peer: SocketAddr = "198.18.0.2:5432".parse().unwrap();
        let buf = lookup_request(local, peer, 3);
        let nl = NetlinkBuffer::new_checked(&buf[..]).unwrap();
        // NFNL_SUBSYS_CTNETLINK (1) << 8 | IPCTNL_MSG_CT_GET (1)
        assert_eq!(nl.message_type(), 0x0101);
        assert_eq!(nl.flags(), NLM_F_REQUEST);
        assert_eq!(nl.sequence_number(), 3);
        // nfgenmsg: AF_INET, version 0, res_id 0; then CTA_TUPLE_ORIG (nested).
        assert_eq!(nl.payload()[0], libc::AF_INET as u8);
        let parsed = NetlinkMessage::<NetfilterMessage>::deserialize(&buf).unwrap();
        let NetlinkPayload::InnerMessage(NetfilterMessage {
            inner: NetfilterMessageInner::Conntrack(ConntrackMessage::Get(attrs)),
            ..
        }) = parsed.payload
        else {
            panic!("{parsed:?}");
        };
        let ConntrackAttribute::CtaTupleOrig(t) = &attrs[0] else {
            panic!("{attrs:?}");
        };
        assert_eq!(
            t,
            &vec![
                Tuple::Ip(vec![
                    IPTuple::SourceAddress(local.ip()),
                    IPTuple::DestinationAddress(peer.ip())
                ]),
                Tuple::Proto(vec![
                    ProtoTuple::Protocol(Protocol::Tcp),
                    ProtoTuple::SourcePort(40000),
                    ProtoTuple::DestinationPort(5432)
                ])
            ]
        );
        // Ports go big-endian on the wire: 40000 = 0x9c40.
        assert!(buf.windows(2).any(|w| w == [0x9c, 0x40]));
    }

    #[test]
    fn mapped_ipv6_is_looked_up_as_ipv4() {
        let local: SocketAddr = "[::ffff:198.18.0.1]:40000".parse().unwrap();
        let peer: SocketAddr = "[::ffff:198.18.0.2]:80".parse().unwrap();
        let buf = lookup_request(local, peer, 1);
        assert_eq!(buf[16], libc::AF_INET as u8);
        let v6: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        let buf = lookup_request(v6, v6, 1);
        assert_eq!(buf[16], libc::AF_INET6 as u8);
    }

    #[test]
    fn answers() {
        let entry = answer(vec![
            ConntrackAttribute::CtaTimeout(27),
            ConntrackAttribute::CtaProtoInfo(vec![ProtoInfo::TCP(vec![ProtoInfoTCP::State(
                TCP_CONNTRACK_ESTABLISHED,
            )])]),
        ]);
        assert_eq!(
            parse_answer(&entry, 7),
            Ok(Answer::Entry(CtEntry {
                timeout: Duration::from_secs(27),
                tcp_state: Some(3)
            }))
        );
        // A late answer to an earlier request is not this one's.
        assert_eq!(parse_answer(&entry, 8), Ok(Answer::Other));
        assert_eq!(parse_answer(&error(libc::ENOENT), 7), Ok(Answer::NoEntry));
        assert_eq!(
            parse_answer(&error(libc::EPERM), 7),
            Ok(Answer::Errno(libc::EPERM))
        );
        assert!(parse_answer(&answer(vec![]), 7).is_err());
        assert!(parse_answer(&[1, 2, 3], 7).is_err());
        assert_eq!(tcp_state_name(3), "ESTABLISHED");
        assert_eq!(tcp_state_name(42), "UNKNOWN");
    }

    /// This host: a lookup of a tuple no connection has answers "no entry", or
    /// says it needs CAP_NET_ADMIN; never anything else.
    #[test]
    fn lookup_of_an_unused_tuple() {
        let Ok(mut ct) = Conntrack::open() else {
            return;
        };
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        match ct.lookup(a, a) {
            Ok(None) => {}
            Err(ConntrackError::NotPermitted(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}
