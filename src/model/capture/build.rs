//! Test captures built byte by byte: TCP segments over Ethernet/IPv4/IPv6 (by
//! `etherparse`'s builder), written as pcap or pcapng, so the reader is tested
//! on files no tool of ours wrote.

use std::net::SocketAddr;
use std::time::Duration;

use etherparse::PacketBuilder;

/// One segment to build.
#[derive(Debug, Clone)]
pub struct Seg {
    pub at: Duration,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: &'static str,
    pub window: u16,
    pub payload: Vec<u8>,
}

/// An Ethernet frame carrying the segment.
pub fn ethernet(s: &Seg) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let ip = match (s.src, s.dst) {
        (SocketAddr::V4(a), SocketAddr::V4(b)) => eth.ipv4(a.ip().octets(), b.ip().octets(), 64),
        (SocketAddr::V6(a), SocketAddr::V6(b)) => eth.ipv6(a.ip().octets(), b.ip().octets(), 64),
        _ => panic!("mixed address families"),
    };
    let mut tcp = ip.tcp(s.src.port(), s.dst.port(), s.seq, s.window);
    if s.flags.contains('S') {
        tcp = tcp.syn();
    }
    if s.flags.contains('.') {
        tcp = tcp.ack(s.ack);
    }
    if s.flags.contains('F') {
        tcp = tcp.fin();
    }
    if s.flags.contains('R') {
        tcp = tcp.rst();
    }
    if s.flags.contains('P') {
        tcp = tcp.psh();
    }
    let mut out = Vec::with_capacity(tcp.size(s.payload.len()));
    tcp.write(&mut out, &s.payload).expect("build a packet");
    out
}

/// A pcap file (microseconds, little-endian) of frames of `linktype`, each cut to `snaplen`.
pub fn pcap(linktype: u32, snaplen: u32, frames: &[(Duration, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&snaplen.to_le_bytes());
    out.extend_from_slice(&linktype.to_le_bytes());
    for (at, data) in frames {
        let cap = data.len().min(snaplen as usize);
        out.extend_from_slice(&(at.as_secs() as u32).to_le_bytes());
        out.extend_from_slice(&at.subsec_micros().to_le_bytes());
        out.extend_from_slice(&(cap as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&data[..cap]);
    }
    out
}

fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let pad = (4 - body.len() % 4) % 4;
    let len = (12 + body.len() + pad) as u32;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    out.extend(std::iter::repeat_n(0u8, pad));
    out.extend_from_slice(&len.to_le_bytes());
}

/// A pcapng file: one section, one interface of `linktype` with nanosecond
/// timestamps (if_tsresol 9), the frames as Enhanced Packet Blocks.
pub fn pcapng(linktype: u16, frames: &[(Duration, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut out, 0x0a0d_0d0a, &shb);
    let mut idb = Vec::new();
    idb.extend_from_slice(&linktype.to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&0u32.to_le_bytes());
    // if_tsresol (9) = 10^-9, then opt_endofopt.
    idb.extend_from_slice(&9u16.to_le_bytes());
    idb.extend_from_slice(&1u16.to_le_bytes());
    idb.extend_from_slice(&[9, 0, 0, 0]);
    idb.extend_from_slice(&[0, 0, 0, 0]);
    block(&mut out, 1, &idb);
    for (at, data) in frames {
        let units = at.as_nanos() as u64;
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(units as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(data);
        epb.extend(std::iter::repeat_n(0u8, (4 - data.len() % 4) % 4));
        block(&mut out, 6, &epb);
    }
    out
}
