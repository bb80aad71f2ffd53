//! Hand-built captures through the whole pipeline: the keepalive timeline and
//! its inferred settings, every link type and IPv6, pcapng, and captures that are
//! truncated, cut by the snap length, out of time order or checksum-offloaded.

use std::net::SocketAddr;
use std::time::Duration;

use super::build::{self, Seg};
use crate::model::event::Path;
use crate::model::event::{EventKind, Outcome};

const T0: u64 = 1_796_000_000;

fn at(ms: u64) -> Duration {
    Duration::from_secs(T0) + Duration::from_millis(ms)
}

fn seg(
    ms: u64,
    src: &str,
    dst: &str,
    seq: u32,
    ack: u32,
    flags: &'static str,
    payload: &[u8],
) -> Seg {
    Seg {
        at: at(ms),
        src: src.parse::<SocketAddr>().expect("address"),
        dst: dst.parse::<SocketAddr>().expect("address"),
        seq,
        ack,
        flags,
        window: 64_000,
        payload: payload.to_vec(),
    }
}

const C: &str = "198.18.0.1:40000";
const S: &str = "198.18.0.2:7000";

/// Handshake, a request and reply, then Linux keepalive idle 5 / intvl 2 / cnt 3
/// unanswered and the prober's RST.
pub fn keepalive_segments() -> Vec<Seg> {
    vec![
        seg(0, C, S, 100, 0, "S", &[]),
        seg(1, S, C, 900, 101, "S.", &[]),
        seg(2, C, S, 101, 901, ".", &[]),
        seg(10, C, S, 101, 901, "P.", b"ping"),
        seg(11, S, C, 901, 105, "P.", b"pong"),
        seg(12, C, S, 105, 905, ".", &[]),
        seg(5_011 + 30, C, S, 104, 905, ".", &[]),
        seg(7_041 + 25, C, S, 104, 905, ".", &[]),
        seg(9_066 + 20, C, S, 104, 905, ".", &[]),
        seg(11_086 + 21, C, S, 105, 905, "R.", &[]),
    ]
}

fn frames(segs: &[Seg]) -> Vec<(Duration, Vec<u8>)> {
    segs.iter().map(|s| (s.at, build::ethernet(s))).collect()
}

fn one(bytes: &[u8]) -> super::Capture {
    super::explain(bytes).expect("a capture")
}

fn names(c: &super::Capture) -> Vec<&'static str> {
    c.conns[0].events.iter().map(|e| e.kind.name()).collect()
}

fn assert_keepalive(c: &super::Capture) {
    assert_eq!(c.conns.len(), 1, "{:?}", c.notes);
    let x = &c.conns[0];
    assert_eq!(x.local, C.parse::<SocketAddr>().expect("addr"));
    let config = x
        .events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Config(f) => Some(f.clone()),
            _ => None,
        })
        .expect("config");
    assert_eq!(
        (config.idle_s, config.intvl_s, config.cnt),
        (5, 2, 3),
        "{:?}",
        names(c)
    );
    assert_eq!(config.predicted_detect_s, Some(11.0));
    assert_eq!(x.end.outcome, Outcome::Timeout);
    assert_eq!(x.end.detect_s, Some(11.096));
    let probes = names(c).iter().filter(|n| **n == "probe").count();
    assert_eq!(probes, 3);
    // Relative to the first frame, absolute from the frames' own clock.
    let end = x.events.last().expect("end");
    assert_eq!(end.at, Duration::from_millis(11_107));
    assert_eq!(end.wall, std::time::UNIX_EPOCH + at(11_107));
}

#[test]
fn a_keepalive_timeout_in_pcap_and_pcapng() {
    let f = frames(&keepalive_segments());
    assert_keepalive(&one(&build::pcap(1, 65_535, &f)));
    assert_keepalive(&one(&build::pcapng(1, &f)));
}

#[test]
fn every_link_type_and_ipv6() {
    let segs = keepalive_segments();
    let eth: Vec<(Duration, Vec<u8>)> = frames(&segs);
    let ip: Vec<(Duration, Vec<u8>)> = eth.iter().map(|(t, f)| (*t, f[14..].to_vec())).collect();
    for linktype in [101u32, 228] {
        assert_keepalive(&one(&build::pcap(linktype, 65_535, &ip)));
    }
    let sll: Vec<(Duration, Vec<u8>)> = ip
        .iter()
        .map(|(t, p)| {
            let mut h = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
            h.extend_from_slice(p);
            (*t, h)
        })
        .collect();
    assert_keepalive(&one(&build::pcap(113, 65_535, &sll)));
    let sll2: Vec<(Duration, Vec<u8>)> = ip
        .iter()
        .map(|(t, p)| {
            let mut h = vec![
                0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
            ];
            h.extend_from_slice(p);
            (*t, h)
        })
        .collect();
    assert_keepalive(&one(&build::pcapng(276, &sll2)));
    let v6: Vec<Seg> = segs
        .iter()
        .map(|s| {
            let mut s = s.clone();
            let map = |a: SocketAddr| -> SocketAddr {
                let last = if a.port() == 7000 { 2 } else { 1 };
                format!("[2001:db8::{last}]:{}", a.port())
                    .parse()
                    .expect("v6")
            };
            s.src = map(s.src);
            s.dst = map(s.dst);
            s
        })
        .collect();
    let c = one(&build::pcap(1, 65_535, &frames(&v6)));
    assert_eq!(c.conns[0].end.outcome, Outcome::Timeout);
    assert_eq!(c.conns[0].end.detect_s, Some(11.096));
}

#[test]
fn out_of_order_snaplen_cut_offloaded_and_truncated_captures() {
    let mut f = frames(&keepalive_segments());
    // Checksum offload: the sender's capture shows checksums not yet filled in.
    for (_, frame) in f.iter_mut() {
        frame[14 + 20 + 16] = 0;
        frame[14 + 20 + 17] = 0;
    }
    // Two frames swapped in file order (captured on two CPUs).
    f.swap(3, 4);
    // A snap length of 60 cuts the 4-byte payloads (14 + 20 + 20 = 54 of headers + 6).
    let c = one(&build::pcap(1, 56, &f));
    assert_keepalive(&c);
    assert!(
        c.notes.iter().any(|n| n.contains("snap length")),
        "{:?}",
        c.notes
    );
    // Cut inside the last frame: everything before it is explained, and said.
    let bytes = build::pcap(1, 65_535, &f);
    let c = one(&bytes[..bytes.len() - 10]);
    assert!(
        c.notes.iter().any(|n| n.contains("truncated")),
        "{:?}",
        c.notes
    );
    let x = &c.conns[0];
    assert_eq!(x.end.outcome, Outcome::Alive, "no RST in the cut capture");
    assert!(x.end.message.contains("still open"), "{}", x.end.message);
}

#[test]
fn zero_window_probes_are_window_probes_not_keepalive() {
    let mut segs = vec![
        seg(0, C, S, 100, 0, "S", &[]),
        seg(1, S, C, 900, 101, "S.", &[]),
        seg(2, C, S, 101, 901, ".", &[]),
        seg(10, C, S, 101, 901, ".", &[7u8; 1000]),
    ];
    let mut zero = seg(11, S, C, 901, 1101, ".", &[]);
    zero.window = 0;
    segs.push(zero.clone());
    for (i, ms) in [211u64, 611, 1411, 3011].iter().enumerate() {
        segs.push(seg(*ms, C, S, 1100, 901, ".", &[]));
        if i < 2 {
            let mut answer = zero.clone();
            answer.at = at(ms + 1);
            segs.push(answer);
        }
    }
    let c = one(&build::pcap(1, 65_535, &frames(&segs)));
    let n = names(&c);
    assert!(!n.contains(&"probe"), "{n:?}");
    assert_eq!(
        n.iter().filter(|x| **x == "window-probe").count(),
        4,
        "{n:?}"
    );
    assert_eq!(
        n.iter().filter(|x| **x == "window-probe-acked").count(),
        2,
        "{n:?}"
    );
    assert!(n.contains(&"zero-window"));
    assert_eq!(c.conns[0].end.path, Some(Path::ZeroWindow));
}

#[test]
fn a_peer_reset_and_a_clean_close() {
    let mut segs = keepalive_segments();
    segs.truncate(7);
    segs.push(seg(5_042, S, C, 905, 0, "R", &[]));
    let c = one(&build::pcap(1, 65_535, &frames(&segs)));
    let e = &c.conns[0].end;
    assert_eq!(e.outcome, Outcome::Reset);
    assert!(
        e.message.contains("in answer to keepalive probe 1"),
        "{}",
        e.message
    );
    let mut segs = keepalive_segments();
    segs.truncate(6);
    segs.push(seg(20, S, C, 905, 105, "F.", &[]));
    let c = one(&build::pcap(1, 65_535, &frames(&segs)));
    assert_eq!(c.conns[0].end.outcome, Outcome::Eof);
}

#[test]
fn non_captures_are_described() {
    match super::explain(&b"hello\n"[..]) {
        Err(super::FileError::NotACapture(head)) => {
            assert_eq!(super::sniff::describe(&head), "text (\"hello\")")
        }
        other => panic!("{other:?}"),
    }
}
