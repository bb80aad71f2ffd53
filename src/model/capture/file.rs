//! Capture files: pcap (micro- and nanosecond, either byte order) and pcapng
//! (any number of sections and interfaces) read with `pcap-parser`, frame by
//! frame, from any `Read` (bytes in memory in the tests, the opened file in the
//! engine). Memory stays bounded by the largest block (at most [`MAX_BLOCK`]), not
//! by the file. A file cut short, or damaged after a good start, ends the
//! frames with a note instead of an error: what was read is still explained.

use std::io::Read;
use std::time::Duration;

use pcap_parser::pcapng::Block;
use pcap_parser::{Linktype, PcapBlockOwned, PcapError};

/// The first read and the buffer's starting size.
const BUFFER: usize = 1 << 16;
/// The largest block accepted (a jumbo frame with pcapng options is far below).
pub const MAX_BLOCK: usize = 16 << 20;

/// The two file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pcap,
    Pcapng,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Pcap => "pcap",
            Format::Pcapng => "pcapng",
        }
    }
}

/// One captured frame as the file holds it.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Since the Unix epoch.
    pub ts: Duration,
    /// The link type (LINKTYPE_* number) of the frame's interface.
    pub linktype: i32,
    /// The captured bytes (fewer than the frame had when the snap length cut it).
    pub data: &'a [u8],
}

/// Why a file could not be read as a capture at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileError {
    /// Neither pcap nor pcapng: the first bytes, for [`super::sniff::describe`].
    #[error("not a pcap or pcapng capture")]
    NotACapture(Vec<u8>),
    #[error("cannot read the capture: {0}")]
    Read(String),
}

/// What reading the whole file found besides frames.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileNotes {
    pub format: Option<&'static str>,
    pub frames: u64,
    /// Why reading stopped before the end of the file, if it did.
    pub stopped: Option<String>,
    /// pcapng packets on an interface no description block declared, or whose
    /// timestamp resolution is invalid (skipped).
    pub skipped: u64,
    /// pcapng Simple Packet Blocks (no timestamp: skipped).
    pub untimed: u64,
}

/// A pcapng interface: its link type and timestamp units per second.
#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: i32,
    resolution: Option<u64>,
    offset_s: i64,
}

/// Reads every frame of a capture, calling `each` with it.
pub fn read_frames<R: Read + Send>(
    input: R,
    mut each: impl FnMut(Frame<'_>),
) -> Result<FileNotes, FileError> {
    let mut input = input;
    let mut head = vec![0u8; 0];
    // Read the first bytes ourselves: the sniffing needs them whatever the format.
    let mut first = [0u8; 512];
    let mut got = 0;
    while got < first.len() {
        match input.read(&mut first[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FileError::Read(e.to_string())),
        }
    }
    head.extend_from_slice(&first[..got]);
    let format = match detect(&head) {
        Some(f) => f,
        None => return Err(FileError::NotACapture(head)),
    };
    let chained = std::io::Cursor::new(head.clone()).chain(input);
    let mut reader = match pcap_parser::create_reader(BUFFER, chained) {
        Ok(r) => r,
        Err(PcapError::Eof) | Err(PcapError::Incomplete(_)) | Err(PcapError::UnexpectedEof) => {
            return Ok(FileNotes {
                format: Some(format.name()),
                stopped: Some("the file ends inside its header".into()),
                ..FileNotes::default()
            });
        }
        Err(_) => return Err(FileError::NotACapture(head)),
    };
    let mut notes = FileNotes {
        format: Some(format.name()),
        ..FileNotes::default()
    };
    let mut legacy: Option<(i32, bool)> = None;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut capacity = BUFFER;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy = Some((h.network.0, h.is_nanosecond_precision()));
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let (linktype, nanos) = legacy.unwrap_or((Linktype::ETHERNET.0, false));
                        let frac = if nanos {
                            b.ts_usec.min(999_999_999)
                        } else {
                            b.ts_usec.min(999_999).saturating_mul(1000)
                        };
                        notes.frames += 1;
                        each(Frame {
                            ts: Duration::new(b.ts_sec as u64, frac),
                            linktype,
                            data: b.data,
                        });
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        interfaces.push(Interface {
                            linktype: idb.linktype.0,
                            resolution: idb.ts_resolution(),
                            offset_s: idb.ts_offset(),
                        })
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let iface = interfaces.get(epb.if_id as usize).copied();
                        let ts = iface.and_then(|i| {
                            ng_time(epb.ts_high, epb.ts_low, i.resolution?, i.offset_s)
                        });
                        match (iface, ts) {
                            (Some(i), Some(ts)) => {
                                notes.frames += 1;
                                each(Frame {
                                    ts,
                                    linktype: i.linktype,
                                    data: epb.data,
                                });
                            }
                            _ => notes.skipped += 1,
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(_)) => notes.untimed += 1,
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    notes.stopped =
                        Some("the file ends inside a packet (truncated capture)".into());
                    break;
                }
                if let Err(e) = reader.refill() {
                    notes.stopped = Some(format!("read error: {e:?}"));
                    break;
                }
            }
            Err(PcapError::BufferTooSmall) => {
                if capacity >= MAX_BLOCK || !reader.grow(capacity * 2) {
                    notes.stopped = Some(format!(
                        "a block larger than {} MiB (damaged file?)",
                        MAX_BLOCK >> 20
                    ));
                    break;
                }
                capacity *= 2;
                if let Err(e) = reader.refill() {
                    notes.stopped = Some(format!("read error: {e:?}"));
                    break;
                }
            }
            Err(PcapError::UnexpectedEof) => {
                notes.stopped = Some("the file ends inside a packet (truncated capture)".into());
                break;
            }
            Err(PcapError::ReadError) => {
                notes.stopped = Some("the file could not be read to its end".into());
                break;
            }
            Err(_) => {
                notes.stopped = Some(format!(
                    "damaged data after {} frame(s); the rest is ignored",
                    notes.frames
                ));
                break;
            }
        }
    }
    Ok(notes)
}

/// pcap or pcapng by the first four bytes (all byte orders and precisions).
pub fn detect(head: &[u8]) -> Option<Format> {
    let magic: [u8; 4] = head.get(..4)?.try_into().ok()?;
    match magic {
        [0x0a, 0x0d, 0x0d, 0x0a] => Some(Format::Pcapng),
        [0xd4, 0xc3, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0xc3, 0xd4]
        | [0x4d, 0x3c, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0x3c, 0x4d] => Some(Format::Pcap),
        _ => None,
    }
}

/// A pcapng timestamp (units of 1/resolution s since the epoch, plus the
/// interface's offset in seconds) as a duration; `None` if out of range.
fn ng_time(high: u32, low: u32, resolution: u64, offset_s: i64) -> Option<Duration> {
    if resolution == 0 {
        return None;
    }
    let units = ((high as u64) << 32) | low as u64;
    let secs = (units / resolution) as i64;
    let frac = units % resolution;
    let nanos = (frac as u128 * 1_000_000_000 / resolution as u128) as u32;
    let secs = u64::try_from(secs.checked_add(offset_s)?).ok()?;
    Some(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapng_time_resolutions() {
        assert_eq!(
            ng_time(0, 1_500_000, 1_000_000, 0),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            ng_time(0, 1_500_000_000, 1_000_000_000, 10),
            Some(Duration::from_millis(11_500))
        );
        assert_eq!(ng_time(0, 1, 0, 0), None);
        assert_eq!(ng_time(0, 0, 1_000_000, -1), None);
    }

    #[test]
    fn magic_numbers() {
        assert_eq!(detect(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]), Some(Format::Pcap));
        assert_eq!(detect(&[0x4d, 0x3c, 0xb2, 0xa1]), Some(Format::Pcap));
        assert_eq!(detect(&[0x0a, 0x0d, 0x0d, 0x0a]), Some(Format::Pcapng));
        assert_eq!(detect(b"GET / HTTP/1.1"), None);
        assert_eq!(detect(&[0xd4]), None);
    }
}
