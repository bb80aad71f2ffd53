//! `explain`: a packet capture (pcap or pcapng) turned into `connect`'s timeline
//! for every TCP connection in it. Pure: frames come from any `Read` (the engine
//! opens the file; tests hand in bytes), and nothing here touches the system.
//!
//! The pipeline: [`file`] reads frames, [`decode`] finds each one's TCP segment,
//! a bounded reorder window puts segments in time order (captures from several
//! CPUs or interfaces are not), [`conn`] reconstructs connections and classifies
//! segments, [`infer`] reads settings off the timing, [`timeline`] tells each
//! connection as events and `end` reads its end off the wire. Memory is bounded: the reorder window, at most
//! `conn::MAX_CONNS` connections of at most `conn::MAX_OBS` observations each.

pub mod conn;
pub mod decode;
mod end;
pub mod file;
pub mod infer;
pub mod sniff;
pub mod timeline;

#[cfg(test)]
pub(crate) mod build;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use file::FileError;
pub use timeline::Explained;

/// Segments held to put a capture's frames back in time order.
pub const REORDER: usize = 4096;

/// Which connections to explain (`--conn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnFilter {
    /// The connection numbered so on the timeline (1-based, in order of appearance).
    Number(u64),
    /// Either end has this address and/or port.
    Endpoint {
        ip: Option<IpAddr>,
        port: Option<u16>,
    },
}

impl ConnFilter {
    pub fn matches(&self, id: u64, a: SocketAddr, b: SocketAddr) -> bool {
        match *self {
            ConnFilter::Number(n) => n == id,
            ConnFilter::Endpoint { ip, port } => [a, b].iter().any(|e| {
                ip.is_none_or(|ip| ip.to_canonical() == e.ip().to_canonical())
                    && port.is_none_or(|p| p == e.port())
            }),
        }
    }
}

/// A whole capture explained.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    /// The first frame's time (since the epoch).
    pub start: Duration,
    pub conns: Vec<Explained>,
    /// What the reader wants known (truncation, skipped frames, reordering).
    pub notes: Vec<String>,
    pub frames: u64,
    pub segments: u64,
}

/// Reads and explains a capture.
pub fn explain<R: Read + Send>(input: R) -> Result<Capture, FileError> {
    let mut table = conn::Table::default();
    let mut heap: BinaryHeap<Reverse<(Duration, u64, Keyed)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut released = Duration::ZERO;
    let mut late = 0u64;
    let mut skips = Skips::default();
    let mut first: Option<Duration> = None;
    let mut last = Duration::ZERO;
    let mut segments = 0u64;
    let mut release = |seg: decode::Segment, table: &mut conn::Table, released: &mut Duration| {
        if seg.ts < *released {
            late += 1;
        }
        *released = (*released).max(seg.ts);
        table.push(&seg);
    };
    let notes = file::read_frames(input, |frame| {
        first = Some(first.map_or(frame.ts, |f: Duration| f.min(frame.ts)));
        last = last.max(frame.ts);
        match decode::segment(&frame) {
            Ok(seg) => {
                segments += 1;
                seq += 1;
                heap.push(Reverse((seg.ts, seq, Keyed(seg))));
                if heap.len() > REORDER
                    && let Some(Reverse((_, _, Keyed(s)))) = heap.pop()
                {
                    release(s, &mut table, &mut released);
                }
            }
            Err(skip) => skips.count(skip),
        }
    })?;
    while let Some(Reverse((_, _, Keyed(s)))) = heap.pop() {
        release(s, &mut table, &mut released);
    }
    let start = first.unwrap_or_default();
    let mut out = Capture {
        start,
        frames: notes.frames,
        segments,
        ..Capture::default()
    };
    if let Some(why) = &notes.stopped {
        out.notes.push(format!("reading stopped early: {why}"));
    }
    if notes.skipped + notes.untimed > 0 {
        out.notes.push(format!(
            "{} packet(s) without a usable timestamp or interface were skipped",
            notes.skipped + notes.untimed
        ));
    }
    out.notes.extend(skips.notes());
    if late > 0 {
        out.notes.push(format!(
            "{late} segment(s) arrived more than {REORDER} segments out of time order and were \
             taken as they came"
        ));
    }
    if table.dropped_conns > 0 {
        out.notes.push(format!(
            "{} connection(s) past the first {} were left out",
            table.dropped_conns,
            conn::MAX_CONNS
        ));
    }
    let cut: u64 = table
        .conns
        .iter()
        .flat_map(|c| c.sides.iter().map(|s| s.cut))
        .sum();
    if cut > 0 {
        out.notes.push(format!(
            "{cut} segment(s) were cut by the snap length: their lengths come from the IP header"
        ));
    }
    for c in &table.conns {
        if c.obs_dropped > 0 {
            out.notes.push(format!(
                "connection {}: {} observation(s) past the first {} were not kept",
                c.id,
                c.obs_dropped,
                conn::MAX_OBS
            ));
        }
    }
    out.conns = table
        .conns
        .iter()
        .map(|c| timeline::explain(c, start, last))
        .collect();
    Ok(out)
}

/// A segment ordered only by the heap's (time, arrival) key.
#[derive(Debug, Clone)]
struct Keyed(decode::Segment);

impl PartialEq for Keyed {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Keyed {}
impl PartialOrd for Keyed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Keyed {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

#[derive(Debug, Default)]
struct Skips {
    linktypes: Vec<(i32, u64)>,
    not_tcp: u64,
    fragments: u64,
    malformed: u64,
}

impl Skips {
    fn count(&mut self, skip: decode::Skip) {
        match skip {
            decode::Skip::Linktype(l) => {
                if let Some((_, n)) = self.linktypes.iter_mut().find(|(t, _)| *t == l) {
                    *n += 1;
                } else if self.linktypes.len() < 16 {
                    self.linktypes.push((l, 1));
                }
            }
            decode::Skip::NotTcp => self.not_tcp += 1,
            decode::Skip::Fragment => self.fragments += 1,
            decode::Skip::Malformed => self.malformed += 1,
        }
    }

    fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (l, n) in &self.linktypes {
            out.push(format!(
                "{n} frame(s) of link type {l} are not decoded (Ethernet, Linux cooked SLL/SLL2, \
                 raw IP and BSD loopback are)"
            ));
        }
        if self.fragments > 0 {
            out.push(format!("{} IP fragment(s) were skipped", self.fragments));
        }
        if self.malformed > 0 {
            out.push(format!(
                "{} frame(s) with cut or malformed headers were skipped",
                self.malformed
            ));
        }
        out
    }
}

/// How bad an end is, for the exit code of a capture with several connections:
/// a detected dead peer first, a clean end last.
pub fn severity(outcome: crate::model::event::Outcome) -> u8 {
    use crate::model::event::Outcome::*;
    match outcome {
        Timeout => 9,
        Unreachable => 8,
        HeartbeatTimeout => 7,
        Reset => 6,
        ConnectFailed => 5,
        Ambiguous => 4,
        Error => 3,
        Eof => 2,
        Interrupted | Terminated | HungUp => 1,
        Alive | LimitFound => 0,
    }
}

/// The connection with the worst end (the first of equals).
pub fn worst(conns: &[&Explained]) -> Option<usize> {
    let mut best: Option<(usize, u8)> = None;
    for (i, c) in conns.iter().enumerate() {
        let s = severity(c.end.outcome);
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((i, s));
        }
    }
    best.map(|(i, _)| i)
}
