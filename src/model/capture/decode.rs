//! One frame's TCP segment: link layer (Ethernet with VLAN tags, Linux cooked
//! SLL and SLL2, raw IP, BSD loopback) to IPv4/IPv6 to TCP, with `etherparse`'s
//! lax slicing, so a frame cut by the snap length still gives its header and the
//! payload length its IP header declares. Checksums are never checked: a capture
//! on the sending host shows the checksum the NIC had yet to fill in
//! (checksum offload), and the segment is still real.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use etherparse::{EtherType, IpNumber, LaxNetSlice, LaxSlicedPacket, TcpSlice};

use super::file::Frame;

pub const LINKTYPE_NULL: i32 = 0;
pub const LINKTYPE_ETHERNET: i32 = 1;
/// LINKTYPE_RAW (101) and the DLT_RAW values some systems write (12, 14).
pub const LINKTYPE_RAW: i32 = 101;
pub const LINKTYPE_LINUX_SLL: i32 = 113;
pub const LINKTYPE_IPV4: i32 = 228;
pub const LINKTYPE_IPV6: i32 = 229;
pub const LINKTYPE_LINUX_SLL2: i32 = 276;
pub const LINKTYPE_LOOP: i32 = 108;

/// TCP flags the reconstruction reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

/// One TCP segment as seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Since the Unix epoch.
    pub ts: Duration,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: Flags,
    /// The window field as sent (unscaled: only zero or not matters here).
    pub window: u16,
    /// Payload bytes the IP header declares (also when the capture cut them).
    pub len: u32,
    /// The capture holds fewer payload bytes than `len`.
    pub cut: bool,
}

/// Why a frame gave no segment (counted, never fatal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A link type this reader does not decode.
    Linktype(i32),
    /// Not IP, or IP but not TCP (ARP, UDP, ICMP...).
    NotTcp,
    /// An IP fragment (TCP is not fragmented by Linux; reassembly is not done).
    Fragment,
    /// The headers themselves are cut or malformed.
    Malformed,
}

/// The TCP segment a frame carries.
pub fn segment(frame: &Frame<'_>) -> Result<Segment, Skip> {
    let data = frame.data;
    let sliced = match frame.linktype {
        LINKTYPE_ETHERNET => LaxSlicedPacket::from_ethernet(data).map_err(|_| Skip::Malformed)?,
        LINKTYPE_RAW | 12 | 14 | LINKTYPE_IPV4 | LINKTYPE_IPV6 => {
            LaxSlicedPacket::from_ip(data).map_err(|_| Skip::Malformed)?
        }
        LINKTYPE_LINUX_SLL => {
            let proto = be16(data, 14).ok_or(Skip::Malformed)?;
            LaxSlicedPacket::from_ether_type(EtherType(proto), data.get(16..).unwrap_or(&[]))
        }
        LINKTYPE_LINUX_SLL2 => {
            let proto = be16(data, 0).ok_or(Skip::Malformed)?;
            LaxSlicedPacket::from_ether_type(EtherType(proto), data.get(20..).unwrap_or(&[]))
        }
        // BSD loopback: a 4-byte address family in the writer's (NULL) or network
        // (LOOP) byte order; the IP version nibble says the rest.
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            LaxSlicedPacket::from_ip(data.get(4..).unwrap_or(&[])).map_err(|_| Skip::Malformed)?
        }
        other => return Err(Skip::Linktype(other)),
    };
    let (src_ip, dst_ip, payload) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let p = v4.payload();
            let declared = (h.total_len() as usize).saturating_sub(
                h.slice().len() + v4.extensions().auth.map_or(0, |a| a.slice().len()),
            );
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                (p, declared),
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            let p = v6.payload();
            let declared =
                (h.payload_length() as usize).saturating_sub(v6.extensions().slice().len());
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                (p, declared),
            )
        }
        _ => return Err(Skip::NotTcp),
    };
    let (ip_payload, declared) = payload;
    if ip_payload.ip_number != IpNumber::TCP {
        return Err(Skip::NotTcp);
    }
    if ip_payload.fragmented {
        return Err(Skip::Fragment);
    }
    let tcp = TcpSlice::from_slice(ip_payload.payload).map_err(|_| Skip::Malformed)?;
    let header_len = tcp.header_slice().len();
    let captured = tcp.payload().len();
    // Complete: the captured payload is the payload (also when total_len was 0,
    // as a TSO capture on the sender shows). Cut: the IP header's length counts.
    let len = if ip_payload.incomplete {
        declared.saturating_sub(header_len).max(captured)
    } else {
        captured
    };
    Ok(Segment {
        ts: frame.ts,
        src: SocketAddr::new(src_ip, tcp.source_port()),
        dst: SocketAddr::new(dst_ip, tcp.destination_port()),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        flags: Flags {
            syn: tcp.syn(),
            ack: tcp.ack(),
            fin: tcp.fin(),
            rst: tcp.rst(),
        },
        window: tcp.window_size(),
        len: u32::try_from(len).unwrap_or(u32::MAX),
        cut: len > captured,
    })
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}
