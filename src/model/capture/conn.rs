//! Reconstruction: segments into connections, each segment classified the way
//! the sender's TCP meant it. A keepalive probe repeats the last byte already
//! acknowledged: zero-length at snd.nxt - 1 (Linux, BSD, macOS) or one garbage
//! byte there (Windows, older stacks). A zero-window probe has the same Linux
//! shape, so it is told apart by the window: a probe into a window its receiver
//! advertised as zero is a window probe, never a keepalive probe. Data below
//! snd.nxt is a retransmission. Sequence numbers compare modulo 2^32.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::decode::Segment;

/// The most connections tracked; more are counted and left out.
pub const MAX_CONNS: usize = 100_000;
/// The most observations kept for one connection; more are counted.
pub const MAX_OBS: usize = 20_000;

/// `a` is before `b` in sequence space.
pub fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// What one segment was, from its sender's side (`side` 0 is the client: the
/// SYN's sender, or the first sender seen when the capture starts mid-stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Obs {
    /// A SYN or SYN-ACK from `side`.
    Handshake {
        side: usize,
    },
    /// The handshake's last ACK (or the SYN-ACK when that ACK is not captured).
    Established,
    SynRetransmit {
        n: u32,
    },
    Data {
        side: usize,
        bytes: u32,
    },
    KeepaliveProbe {
        side: usize,
        one_byte: bool,
    },
    WindowProbe {
        side: usize,
    },
    Retransmit {
        side: usize,
        bytes: u32,
        unacked: u32,
    },
    /// `side` advertised a zero window while the other had sent data up to it.
    ZeroWindow {
        side: usize,
    },
    /// `side`'s window opened again.
    WindowOpen {
        side: usize,
    },
    Fin {
        side: usize,
    },
    Rst {
        side: usize,
    },
    /// Anything else from `side` (a pure ACK, a window update): contact.
    Ack {
        side: usize,
    },
}

impl Obs {
    pub fn side(&self) -> Option<usize> {
        match *self {
            Obs::Established | Obs::SynRetransmit { .. } => None,
            Obs::Handshake { side }
            | Obs::Data { side, .. }
            | Obs::KeepaliveProbe { side, .. }
            | Obs::WindowProbe { side }
            | Obs::Retransmit { side, .. }
            | Obs::ZeroWindow { side }
            | Obs::WindowOpen { side }
            | Obs::Fin { side }
            | Obs::Rst { side }
            | Obs::Ack { side } => Some(side),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Side {
    /// One past the highest sequence number sent (SYN and FIN count one).
    pub nxt: Option<u32>,
    /// The highest acknowledgment the other side sent for this side's data.
    pub una: Option<u32>,
    /// The last window this side advertised was zero.
    pub window_zero: bool,
    pub fin: bool,
    pub rst: bool,
    /// Segments whose payload the snap length cut.
    pub cut: u64,
}

#[derive(Debug, Clone)]
pub struct Conn {
    pub id: u64,
    /// Side 0 then side 1.
    pub addrs: [SocketAddr; 2],
    pub sides: [Side; 2],
    /// A SYN from side 0 was seen (else the capture starts mid-connection).
    pub syn_seen: bool,
    pub established: bool,
    pub first: Duration,
    pub last: Duration,
    /// Observations with their capture times, in time order.
    pub obs: Vec<(Duration, Obs)>,
    pub obs_dropped: u64,
    syns: u32,
}

impl Conn {
    fn new(id: u64, seg: &Segment) -> Conn {
        // A SYN-ACK first (the SYN was not captured): its receiver is the client.
        let addrs = if seg.flags.syn && seg.flags.ack {
            [seg.dst, seg.src]
        } else {
            [seg.src, seg.dst]
        };
        Conn {
            id,
            addrs,
            sides: [Side::default(), Side::default()],
            syn_seen: false,
            established: false,
            first: seg.ts,
            last: seg.ts,
            obs: Vec::new(),
            obs_dropped: 0,
            syns: 0,
        }
    }

    /// Neither side can send more: a RST went either way, or both sent FIN.
    pub fn closed(&self) -> bool {
        self.sides.iter().any(|s| s.rst) || self.sides.iter().all(|s| s.fin)
    }

    fn note(&mut self, at: Duration, obs: Obs) {
        if self.obs.len() < MAX_OBS {
            self.obs.push((at, obs));
        } else {
            self.obs_dropped += 1;
        }
    }

    /// Classifies one segment of this connection.
    fn push(&mut self, seg: &Segment) {
        let s = if seg.src == self.addrs[0] { 0 } else { 1 };
        let o = 1 - s;
        let at = seg.ts;
        self.last = self.last.max(at);
        if seg.cut {
            self.sides[s].cut += 1;
        }
        let f = seg.flags;
        if f.rst {
            if !self.sides[s].rst {
                self.sides[s].rst = true;
                self.note(at, Obs::Rst { side: s });
            }
            return;
        }
        if f.syn {
            if !f.ack {
                self.syn_seen = s == 0;
                self.syns += 1;
                if self.syns > 1 {
                    self.note(at, Obs::SynRetransmit { n: self.syns - 1 });
                }
            }
            self.note(at, Obs::Handshake { side: s });
            self.sides[s].nxt = Some(seg.seq.wrapping_add(1));
            if f.ack {
                self.acked(o, seg.ack);
            }
            self.sides[s].window_zero = seg.window == 0 && f.ack;
            return;
        }
        if f.ack {
            if !self.established && self.sides[o].nxt.is_some() && self.sides[s].nxt.is_some() {
                self.established = true;
                self.note(at, Obs::Established);
            }
            self.acked(o, seg.ack);
        }
        let end = seg.seq.wrapping_add(seg.len).wrapping_add(f.fin as u32);
        let nxt = *self.sides[s].nxt.get_or_insert(seg.seq);
        let una = self.sides[s].una.unwrap_or(nxt);
        let peer_zero = self.sides[o].window_zero;
        let at_last = seg.seq == nxt.wrapping_sub(1);
        let kind = if f.fin {
            if self.sides[s].fin {
                Obs::Retransmit {
                    side: s,
                    bytes: seg.len,
                    unacked: nxt.wrapping_sub(una),
                }
            } else {
                self.sides[s].fin = true;
                Obs::Fin { side: s }
            }
        } else if at_last && seg.len == 0 {
            if peer_zero {
                Obs::WindowProbe { side: s }
            } else {
                Obs::KeepaliveProbe {
                    side: s,
                    one_byte: false,
                }
            }
        } else if at_last && seg.len == 1 && una == nxt {
            if peer_zero {
                Obs::WindowProbe { side: s }
            } else {
                Obs::KeepaliveProbe {
                    side: s,
                    one_byte: true,
                }
            }
        } else if seg.len > 0 && seq_lt(seg.seq, nxt) {
            Obs::Retransmit {
                side: s,
                bytes: seg.len,
                unacked: nxt.wrapping_sub(una),
            }
        } else if seg.len > 0 {
            // BSD and Windows persist: one new byte pushed into a zero window.
            if peer_zero && seg.len == 1 {
                Obs::WindowProbe { side: s }
            } else {
                Obs::Data {
                    side: s,
                    bytes: seg.len,
                }
            }
        } else {
            Obs::Ack { side: s }
        };
        if seq_lt(nxt, end) {
            self.sides[s].nxt = Some(end);
        }
        // The window this side offers the other: zero after data reached it.
        let zero = seg.window == 0;
        let was_zero = self.sides[s].window_zero;
        self.note(at, kind);
        if zero && !was_zero {
            self.sides[s].window_zero = true;
            self.note(at, Obs::ZeroWindow { side: s });
        } else if !zero && was_zero {
            self.sides[s].window_zero = false;
            self.note(at, Obs::WindowOpen { side: s });
        }
    }

    fn acked(&mut self, side: usize, ack: u32) {
        let una = &mut self.sides[side].una;
        if una.is_none_or(|u| seq_lt(u, ack)) {
            *una = Some(ack);
        }
    }
}

/// Every connection of a capture, in the order they first appear.
#[derive(Debug, Default)]
pub struct Table {
    pub conns: Vec<Conn>,
    index: HashMap<(SocketAddr, SocketAddr), usize>,
    pub dropped_conns: u64,
}

impl Table {
    pub fn push(&mut self, seg: &Segment) {
        let key = if seg.src <= seg.dst {
            (seg.src, seg.dst)
        } else {
            (seg.dst, seg.src)
        };
        let fresh_syn = seg.flags.syn && !seg.flags.ack;
        let existing = self.index.get(&key).copied().filter(|&i| {
            // A new SYN on a closed connection's ports is a new connection.
            !(fresh_syn && self.conns[i].closed())
        });
        let i = match existing {
            Some(i) => i,
            None => {
                if self.conns.len() >= MAX_CONNS {
                    self.dropped_conns += 1;
                    return;
                }
                let id = self.conns.len() as u64 + 1;
                self.conns.push(Conn::new(id, seg));
                self.index.insert(key, self.conns.len() - 1);
                self.conns.len() - 1
            }
        };
        self.conns[i].push(seg);
    }
}
