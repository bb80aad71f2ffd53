//! The kernel's sock_diag netlink interface (what `ss` uses): dumps of the TCP
//! sockets of this network namespace with their timer and `TCP_INFO`, the lookup
//! of one socket by its four-tuple, and the exact look-up of one known socket by
//! its four-tuple and cookie (a request without `NLM_F_DUMP`: the kernel finds
//! the socket in its hash and answers with that one message, walking nothing).
//!
//! This module owns the wire format: the request is built with
//! netlink-packet-sock-diag (plus an `INET_DIAG_REQ_BYTECODE` port filter the crate
//! does not model), the answer is read in place: each message's header is parsed
//! without allocating and the `INET_DIAG_INFO` attribute goes straight to
//! [`sample_from_bytes`]. A pass over 50,000 sockets therefore allocates nothing
//! per socket. The crate's `Timer::KeepAlive` drops the probe count, so the probe
//! count is taken from `tcpi_probes` instead (docs/kernel-facts.md, "netlink-packet-sock-diag
//! drops the probe count").

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NetlinkBuffer, NetlinkHeader,
    NetlinkMessage, NlasIterator, Parseable,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, SOCK_DIAG_BY_FAMILY};
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponseHeader, SocketId, StateFlags, Timer,
};
use netlink_sys::{Socket, SocketAddr as NetlinkAddr, protocols::NETLINK_SOCK_DIAG};
use thiserror::Error;

use super::sample_from_bytes;
use crate::model::sample::TcpSample;

/// `INET_DIAG_INFO` (include/uapi/linux/inet_diag.h).
const INET_DIAG_INFO: u16 = 2;
/// `INET_DIAG_REQ_BYTECODE`: a filter program the kernel runs before filling a
/// socket's message, so non-matching sockets cost no copy at all.
const INET_DIAG_REQ_BYTECODE: u16 = 1;
const INET_DIAG_BC_JMP: u8 = 1;
const INET_DIAG_BC_S_EQ: u8 = 11;
const INET_DIAG_BC_D_EQ: u8 = 12;
/// The size of `struct inet_diag_msg`, where the attributes start.
const INET_DIAG_MSG_LEN: usize = 72;
/// Set on every message of a dump; a lookup answers with one message without it.
const NLM_F_MULTI: u16 = 2;
/// Netlink dumps come in skbs of at most 32 KiB; one receive takes one skb.
const RECV_BUF: usize = 64 * 1024;

pub use crate::model::sample::TCP_ESTABLISHED;

/// The states a watch dumps: ESTABLISHED, plus the ones an established connection
/// passes through when it closes, which tell who closed it.
pub fn watch_states() -> u32 {
    (StateFlags::ESTABLISHED
        | StateFlags::FIN_WAIT1
        | StateFlags::FIN_WAIT2
        | StateFlags::CLOSE_WAIT
        | StateFlags::LAST_ACK
        | StateFlags::CLOSING)
        .bits()
}

/// `idiag_timer`: which of the socket's timers is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    None,
    /// Retransmission (also tail-loss probe and reordering): data is in flight.
    Retransmit,
    KeepAlive,
    TimeWait,
    /// Zero-window probe: the peer advertised a zero receive window.
    ZeroWindow,
}

impl TimerKind {
    pub fn name(self) -> &'static str {
        match self {
            TimerKind::None => "none",
            TimerKind::Retransmit => "retransmit",
            TimerKind::KeepAlive => "keepalive",
            TimerKind::TimeWait => "time-wait",
            TimerKind::ZeroWindow => "zero-window-probe",
        }
    }
}

/// One socket of a dump.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiagEntry {
    pub family: u8,
    pub state: u8,
    pub timer: TimerKind,
    /// Time until the pending timer fires (zero without one).
    pub expires: Duration,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub uid: u32,
    /// 0 for sockets no process holds (orphans, TIME_WAIT).
    pub inode: u32,
    /// The kernel's unique id for the socket, stable for its whole life.
    pub cookie: u64,
    pub send_queue: u32,
    pub recv_queue: u32,
    /// `idiag_if`: the device the socket is bound to (0: none). An exact look-up
    /// must name it, or the kernel's hash lookup misses a socket bound to one.
    pub interface: u32,
    /// `INET_DIAG_INFO`; `None` for TIME_WAIT sockets, which carry none.
    pub info: Option<TcpSample>,
}

#[derive(Debug, Error)]
pub enum SockDiagError {
    #[error("cannot open a sock_diag netlink socket: {0}")]
    Open(#[source] std::io::Error),
    #[error("cannot send a sock_diag request: {0}")]
    Send(#[source] std::io::Error),
    #[error("cannot read the sock_diag answer: {0}")]
    Recv(#[source] std::io::Error),
    #[error("the kernel refused the sock_diag request: {0}")]
    Refused(#[source] std::io::Error),
    #[error("malformed sock_diag message: {0}")]
    Malformed(String),
}

/// A netlink socket for sock_diag requests, with its receive buffer.
pub struct SockDiag {
    sock: Socket,
    buf: Vec<u8>,
    seq: u32,
}

impl SockDiag {
    pub fn open() -> Result<SockDiag, SockDiagError> {
        let mut sock = Socket::new(NETLINK_SOCK_DIAG).map_err(SockDiagError::Open)?;
        sock.bind_auto().map_err(SockDiagError::Open)?;
        sock.connect(&NetlinkAddr::new(0, 0))
            .map_err(SockDiagError::Open)?;
        Ok(SockDiag {
            sock,
            buf: vec![0; RECV_BUF],
            seq: 0,
        })
    }

    /// Dumps the TCP sockets of one family (`AF_INET` or `AF_INET6`) in the given
    /// states, optionally only those with `port` as local or remote port (filtered
    /// in the kernel). Calls `each` for every socket; returns how many there were.
    pub fn dump(
        &mut self,
        family: u8,
        states: u32,
        port: Option<u16>,
        mut each: impl FnMut(&DiagEntry),
    ) -> Result<usize, SockDiagError> {
        self.start_dump(family, states, port)?;
        let mut count = 0;
        self.receive(|e| {
            count += 1;
            each(e)
        })?;
        Ok(count)
    }

    /// Starts a dump as [`SockDiag::dump`] does; its answers are read by
    /// [`SockDiag::dump_step`], a piece at a time, so that a caller with other
    /// work (`watch`'s look-ups, on another socket) is not held for a whole walk
    /// of a large table.
    pub fn start_dump(
        &mut self,
        family: u8,
        states: u32,
        port: Option<u16>,
    ) -> Result<(), SockDiagError> {
        let socket_id = if family == AF_INET6 {
            SocketId::new_v6()
        } else {
            SocketId::new_v4()
        };
        let request = self.request(family, states, socket_id, true, port);
        self.sock.send(&request, 0).map_err(SockDiagError::Send)?;
        Ok(())
    }

    /// Reads answers of the dump [`SockDiag::start_dump`] began until it is done
    /// (`true`) or `until` has passed (`false`: call again). Each receive takes
    /// one netlink skb (about a hundred sockets); the kernel walks the table
    /// further only when asked for the next one.
    pub fn dump_step(
        &mut self,
        until: std::time::Instant,
        each: impl FnMut(&DiagEntry),
    ) -> Result<bool, SockDiagError> {
        self.receive_until(Some(until), each)
    }

    /// Dumps IPv4 then IPv6.
    pub fn dump_all(
        &mut self,
        states: u32,
        port: Option<u16>,
        mut each: impl FnMut(&DiagEntry),
    ) -> Result<usize, SockDiagError> {
        let v4 = self.dump(AF_INET, states, port, &mut each)?;
        let v6 = self.dump(AF_INET6, states, port, &mut each)?;
        Ok(v4 + v6)
    }

    /// The socket with exactly this four-tuple, in any state (TIME_WAIT included),
    /// or `None` when the kernel has no such socket.
    pub fn lookup(
        &mut self,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Result<Option<DiagEntry>, SockDiagError> {
        let family = if local.is_ipv6() { AF_INET6 } else { AF_INET };
        let socket_id = SocketId {
            source_port: local.port(),
            destination_port: peer.port(),
            source_address: local.ip(),
            destination_address: peer.ip(),
            interface_id: 0,
            // INET_DIAG_NOCOOKIE: match by address, not by cookie.
            cookie: [0xff; 8],
        };
        let request = self.request(family, u32::MAX, socket_id, false, None);
        self.sock.send(&request, 0).map_err(SockDiagError::Send)?;
        let mut found = None;
        match self.receive(|e| found = Some(*e)) {
            Ok(()) => Ok(found),
            Err(SockDiagError::Refused(e)) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The socket `known` describes, read again by its exact identity: family,
    /// four-tuple, bound device and cookie. `None` when it is gone: the kernel
    /// has no socket with that four-tuple (ENOENT) or has another one, a new
    /// connection that reused it (the cookie differs: ESTALE). Costs one hash
    /// lookup in the kernel whatever the number of sockets (measured in
    /// docs/performance.md, "watch").
    pub fn lookup_exact(&mut self, known: &DiagEntry) -> Result<Option<DiagEntry>, SockDiagError> {
        // The dump's addresses were made canonical; an AF_INET6 socket talking
        // IPv4 is found by the IPv4-mapped form the kernel keeps.
        let wire = |ip: IpAddr| match (known.family, ip) {
            (AF_INET6, IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
            (_, ip) => ip,
        };
        let socket_id = SocketId {
            source_port: known.local.port(),
            destination_port: known.peer.port(),
            source_address: wire(known.local.ip()),
            destination_address: wire(known.peer.ip()),
            interface_id: known.interface,
            cookie: known.cookie.to_ne_bytes(),
        };
        let request = self.request(known.family, u32::MAX, socket_id, false, None);
        self.sock.send(&request, 0).map_err(SockDiagError::Send)?;
        let mut found = None;
        match self.receive(|e| found = Some(*e)) {
            Ok(()) => Ok(found.filter(|e| e.cookie == known.cookie)),
            Err(SockDiagError::Refused(e))
                if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESTALE)) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn request(
        &mut self,
        family: u8,
        states: u32,
        socket_id: SocketId,
        dump: bool,
        port: Option<u16>,
    ) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = if dump {
            NLM_F_REQUEST | NLM_F_DUMP
        } else {
            NLM_F_REQUEST
        };
        header.sequence_number = self.seq;
        let mut message = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::INFO,
                states: StateFlags::from_bits_truncate(states),
                socket_id,
            })
            .into(),
        );
        message.finalize();
        let mut buf = vec![0; message.header.length as usize];
        message.serialize(&mut buf);
        if let Some(port) = port {
            append_attribute(&mut buf, INET_DIAG_REQ_BYTECODE, &port_bytecode(port));
        }
        buf
    }

    /// Reads answers until the dump's DONE (or the single answer of a lookup).
    fn receive(&mut self, each: impl FnMut(&DiagEntry)) -> Result<(), SockDiagError> {
        self.receive_until(None, each).map(|_| ())
    }

    /// As [`SockDiag::receive`], stopping after the receive that ends past
    /// `until`; returns whether the answer is complete.
    fn receive_until(
        &mut self,
        until: Option<std::time::Instant>,
        mut each: impl FnMut(&DiagEntry),
    ) -> Result<bool, SockDiagError> {
        loop {
            let n = loop {
                match self.sock.recv(&mut &mut self.buf[..], 0) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(SockDiagError::Recv(e)),
                }
            };
            let mut data = &self.buf[..n.min(self.buf.len())];
            let mut single = false;
            while !data.is_empty() {
                let msg = NetlinkBuffer::new_checked(data)
                    .map_err(|e| SockDiagError::Malformed(e.to_string()))?;
                let len = (msg.length() as usize).min(data.len());
                match msg.message_type() {
                    NLMSG_DONE => return Ok(true),
                    NLMSG_ERROR => {
                        let payload = msg.payload();
                        let code = payload
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(-libc::EPROTO);
                        if code == 0 {
                            return Ok(true);
                        }
                        return Err(SockDiagError::Refused(std::io::Error::from_raw_os_error(
                            -code,
                        )));
                    }
                    SOCK_DIAG_BY_FAMILY => {
                        if let Some(entry) = parse_entry(msg.payload())? {
                            each(&entry);
                        }
                        // A lookup's answer is one message without NLM_F_MULTI.
                        // (NLM_F_DUMP_INTR, a dump that raced with changes, needs no
                        // handling: the next pass catches up.)
                        single |= msg.flags() & NLM_F_MULTI == 0;
                    }
                    _ => {}
                }
                data = &data[nla_align(len).min(data.len())..];
            }
            if single {
                return Ok(true);
            }
            if until.is_some_and(|t| std::time::Instant::now() >= t) {
                return Ok(false);
            }
        }
    }
}

/// CPU time this thread has used (user and system: a dump's cost is mostly the
/// kernel's walk, run in the caller's context). `watch` budgets its dumps by it,
/// not by wall time, so a loaded host does not make a dump look dear.
pub fn thread_cpu_time() -> Duration {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

/// `SKNLGRP_INET_TCP_DESTROY` and `SKNLGRP_INET6_TCP_DESTROY`
/// (include/uapi/linux/sock_diag.h).
const SKNLGRP_INET_TCP_DESTROY: u32 = 1;
const SKNLGRP_INET6_TCP_DESTROY: u32 = 3;
/// The receive buffer asked for destroy notifications (about 380 bytes each).
const DESTROY_RCVBUF: usize = 8 * 1024 * 1024;

/// sock_diag's destroy notifications: the kernel sends one message per TCP socket
/// of this namespace as it is destroyed (its owner closed it and the kernel is
/// done with it), with the socket's cookie and its final `TCP_INFO`. Measured on
/// Linux 6.18: no privilege is needed; the socket must be bound (a portid of 0 is
/// the kernel's own and is skipped by the broadcast); `idiag_rqueue` is the data
/// its owner never read.
pub struct DestroyListener {
    sock: Socket,
    buf: Vec<u8>,
}

impl DestroyListener {
    pub fn open() -> Result<DestroyListener, SockDiagError> {
        let mut sock = Socket::new(NETLINK_SOCK_DIAG).map_err(SockDiagError::Open)?;
        sock.bind_auto().map_err(SockDiagError::Open)?;
        for group in [SKNLGRP_INET_TCP_DESTROY, SKNLGRP_INET6_TCP_DESTROY] {
            sock.add_membership(group).map_err(SockDiagError::Open)?;
        }
        sock.set_non_blocking(true).map_err(SockDiagError::Open)?;
        // Every TCP socket destroyed in the namespace arrives here, not only the
        // watched ones: on a busy host a descheduled watcher would overflow the
        // default buffer (a few hundred messages). Ask for more; SO_RCVBUF is
        // capped at net.core.rmem_max, which is enough where it is not raised.
        let _ = sock.set_rx_buf_sz(DESTROY_RCVBUF);
        Ok(DestroyListener {
            sock,
            buf: vec![0; RECV_BUF],
        })
    }

    /// For registering with the poller.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.sock.as_fd()
    }

    /// Reads every notification queued now. Returns whether some were lost (the
    /// receive buffer overflowed: ENOBUFS), which the caller must say.
    pub fn drain(&mut self, mut each: impl FnMut(&DiagEntry)) -> Result<bool, SockDiagError> {
        let mut lost = false;
        loop {
            let n = match self.sock.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(lost),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    lost = true;
                    continue;
                }
                Err(e) => return Err(SockDiagError::Recv(e)),
            };
            let mut data = &self.buf[..n.min(self.buf.len())];
            while !data.is_empty() {
                let msg = NetlinkBuffer::new_checked(data)
                    .map_err(|e| SockDiagError::Malformed(e.to_string()))?;
                let len = (msg.length() as usize).min(data.len());
                if msg.message_type() == SOCK_DIAG_BY_FAMILY
                    && let Some(entry) = parse_entry(msg.payload())?
                {
                    each(&entry);
                }
                data = &data[nla_align(len).min(data.len())..];
            }
        }
    }
}

fn nla_align(len: usize) -> usize {
    (len + 3) & !3
}

/// Appends one netlink attribute to a serialized message and fixes `nlmsg_len`.
fn append_attribute(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(nla_align(buf.len()), 0);
    let total = buf.len() as u32;
    buf[..4].copy_from_slice(&total.to_ne_bytes());
}

/// `sport == port || dport == port` as inet_diag bytecode, laid out as `ss`
/// compiles an `or`: the kernel's audit only accepts jump targets reachable along
/// the "yes" chain, so the first test's "no" lands on the second test through a JMP.
/// Each op is `{code, yes, no}` (u8, u8, u16); a port test carries the port in the
/// `no` field of a second op. Falling off the end by 4 bytes rejects.
pub fn port_bytecode(port: u16) -> Vec<u8> {
    let op = |code: u8, yes: u8, no: u16| {
        let n = no.to_ne_bytes();
        [code, yes, n[0], n[1]]
    };
    [
        op(INET_DIAG_BC_S_EQ, 8, 12),
        op(0, 0, port),
        op(INET_DIAG_BC_JMP, 4, 12),
        op(INET_DIAG_BC_D_EQ, 8, 12),
        op(0, 0, port),
    ]
    .concat()
}

/// Parses one `inet_diag_msg` and its `INET_DIAG_INFO`; `None` for a family this
/// module does not handle.
fn parse_entry(payload: &[u8]) -> Result<Option<DiagEntry>, SockDiagError> {
    let header =
        InetResponseHeader::parse(payload).map_err(|e| SockDiagError::Malformed(e.to_string()))?;
    if header.family != AF_INET && header.family != AF_INET6 {
        return Ok(None);
    }
    let (timer, expires) = match header.timer {
        None => (TimerKind::None, Duration::ZERO),
        Some(Timer::Retransmit(d, _)) => (TimerKind::Retransmit, d),
        Some(Timer::KeepAlive(d)) => (TimerKind::KeepAlive, d),
        Some(Timer::TimeWait) => (TimerKind::TimeWait, Duration::ZERO),
        Some(Timer::Probe(d)) => (TimerKind::ZeroWindow, d),
    };
    let id = &header.socket_id;
    let info = payload.get(INET_DIAG_MSG_LEN..).and_then(|attrs| {
        NlasIterator::new(attrs)
            .filter_map(Result::ok)
            .find(|nla| nla.kind() == INET_DIAG_INFO)
            .map(|nla| sample_from_bytes(nla.value()))
    });
    Ok(Some(DiagEntry {
        family: header.family,
        state: header.state,
        timer,
        expires,
        local: SocketAddr::new(canonical(id.source_address), id.source_port),
        peer: SocketAddr::new(canonical(id.destination_address), id.destination_port),
        uid: header.uid,
        inode: header.inode,
        cookie: u64::from_ne_bytes(id.cookie),
        send_queue: header.send_queue,
        recv_queue: header.recv_queue,
        interface: id.interface_id,
        info,
    }))
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket talking IPv4) as plain IPv4,
/// so filters and output name the address the way the user does.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

#[cfg(test)]
mod tests;
