//! Application heartbeats: the line protocol between two tcpalive ends, the raw
//! payload mode for any other server, and the schedule that decides when a peer's
//! application counts as hung.
//!
//! Protocol (ASCII lines, `\n`-terminated, `\r\n` accepted):
//!
//! ```text
//! PING <seq>     sender -> peer, seq a decimal u64 counting from 1
//! PONG <seq>     peer -> sender, echoing the seq it answers
//! WATCH <run>    idle-limit -> listener, on a connection of its own: this is the
//!                control flow of measurement <run> (a random u64 > 0). The
//!                listener answers WATCHING <run>. The run's test flows live
//!                as long as it does: when it ends, or carries nothing (its
//!                PINGs) for CONTROL_SILENCE, the listener closes them all.
//! WATCHING <run> listener -> idle-limit: the control flow is registered.
//! HOLD <seq> <wake_ms> <uto_ms> <run>
//!                idle-limit -> listener: this connection is an idle test flow of
//!                <run> (whose control flow must be open from the same address).
//!                The listener turns its keepalive and heartbeats off on it (its
//!                own packets would refresh the middlebox's state), answers its
//!                PINGs even under --mute (silence would read as a drop), answers
//!                HELD <seq>, and when <wake_ms> > 0 sends PING <seq> <wake_ms>
//!                milliseconds after HELD went out (the `in` check: the first
//!                packet after the idle period comes from outside),
//!                with TCP_USER_TIMEOUT <uto_ms> (0: unchanged) bounding that send.
//!                wake_ms and uto_ms are decimal u32. One HOLD per connection; a
//!                HOLD the listener will not keep (no such run, too many flows
//!                for it) is answered REFUSED <seq> and the flow is reset.
//! HELD <seq>     listener -> idle-limit: HOLD <seq> is in force.
//! REFUSED <seq>  listener -> idle-limit: HOLD <seq> is not (see above).
//! DONE <seq>     idle-limit -> listener, on the control flow: the test of flow
//!                <seq> is over; the listener closes that flow (reset).
//! SAW <seq> <what>
//!                listener -> idle-limit, on the control flow: test flow <seq>
//!                ended on the listener's side before DONE: `fin` (a FIN came),
//!                `rst` (a reset came), `timeout` (its PING went unanswered
//!                within <uto_ms>), `error` (any other error).
//! ```
//!
//! Anything else is ignored. Lines longer than [`MAX_LINE`] bytes are dropped
//! whole, so a peer sending garbage or endless lines costs a fixed buffer.
//! In raw mode (`--heartbeat-payload`) the payload is sent as given and any bytes
//! received answer every heartbeat outstanding.

use std::collections::VecDeque;
use std::time::Duration;

/// The longest `--heartbeat-payload`, in bytes: it must fit the connection's
/// outbox whole, so a heartbeat is never reported sent when it was not.
pub const MAX_PAYLOAD: usize = 1024;

/// Longest protocol line kept; longer ones are discarded up to their newline.
pub const MAX_LINE: usize = 80;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    Ping(u64),
    Pong(u64),
    Hold {
        seq: u64,
        wake_ms: u32,
        uto_ms: u32,
        run: u64,
    },
    Held(u64),
    Refused(u64),
    Watch(u64),
    Watching(u64),
    Done(u64),
    Saw {
        seq: u64,
        what: Saw,
    },
}

/// What the listener saw end a test flow (`SAW`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saw {
    Fin,
    Rst,
    Timeout,
    Error,
}

impl Saw {
    pub fn name(self) -> &'static str {
        match self {
            Saw::Fin => "fin",
            Saw::Rst => "rst",
            Saw::Timeout => "timeout",
            Saw::Error => "error",
        }
    }

    fn from_name(name: &str) -> Option<Saw> {
        [Saw::Fin, Saw::Rst, Saw::Timeout, Saw::Error]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

impl Message {
    pub fn encode(self) -> Vec<u8> {
        match self {
            Message::Ping(seq) => format!("PING {seq}\n").into_bytes(),
            Message::Pong(seq) => format!("PONG {seq}\n").into_bytes(),
            Message::Hold {
                seq,
                wake_ms,
                uto_ms,
                run,
            } => format!("HOLD {seq} {wake_ms} {uto_ms} {run}\n").into_bytes(),
            Message::Held(seq) => format!("HELD {seq}\n").into_bytes(),
            Message::Refused(seq) => format!("REFUSED {seq}\n").into_bytes(),
            Message::Watch(run) => format!("WATCH {run}\n").into_bytes(),
            Message::Watching(run) => format!("WATCHING {run}\n").into_bytes(),
            Message::Done(seq) => format!("DONE {seq}\n").into_bytes(),
            Message::Saw { seq, what } => format!("SAW {seq} {}\n", what.name()).into_bytes(),
        }
    }
}

/// A decimal number without sign, spaces or anything else.
fn number<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses one line (without its terminator). `None` for anything that is not a
/// well-formed message.
pub fn parse_line(line: &[u8]) -> Option<Message> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).ok()?;
    let mut words = text.split(' ');
    let verb = words.next()?;
    let args: Vec<&str> = words.collect();
    match (verb, args.as_slice()) {
        ("PING", [seq]) => Some(Message::Ping(number(seq)?)),
        ("PONG", [seq]) => Some(Message::Pong(number(seq)?)),
        ("HELD", [seq]) => Some(Message::Held(number(seq)?)),
        ("HOLD", [seq, wake, uto, run]) => Some(Message::Hold {
            seq: number(seq)?,
            wake_ms: number(wake)?,
            uto_ms: number(uto)?,
            run: number(run)?,
        }),
        ("REFUSED", [seq]) => Some(Message::Refused(number(seq)?)),
        ("WATCH", [run]) => Some(Message::Watch(number(run)?)),
        ("WATCHING", [run]) => Some(Message::Watching(number(run)?)),
        ("DONE", [seq]) => Some(Message::Done(number(seq)?)),
        ("SAW", [seq, what]) => Some(Message::Saw {
            seq: number(seq)?,
            what: Saw::from_name(what)?,
        }),
        _ => None,
    }
}

/// Splits a byte stream into protocol lines with a fixed-size buffer.
#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
    /// Inside a line that outgrew the buffer: skip to its newline.
    discarding: bool,
    /// Complete lines that were not a message (garbage, too long): a peer that
    /// must stay silent (an idle test flow) is caught sending them.
    ignored: u64,
}

impl LineReader {
    /// Feeds received bytes; returns the messages of the complete lines.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Vec<Message> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let (chunk, rest, complete) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            bytes = rest;
            if !self.discarding {
                if self.buf.len() + chunk.len() > MAX_LINE {
                    self.buf.clear();
                    self.discarding = true;
                } else {
                    self.buf.extend_from_slice(chunk);
                }
            }
            if complete {
                match (self.discarding, parse_line(&self.buf)) {
                    (false, Some(m)) => out.push(m),
                    _ => self.ignored = self.ignored.saturating_add(1),
                }
                self.buf.clear();
                self.discarding = false;
            }
        }
        out
    }

    /// Complete lines so far that were not a message.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// Bytes held for an incomplete line (never more than `MAX_LINE`).
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Decodes `--heartbeat-payload` escapes: `\r`, `\n`, `\t`, `\0`, `\\`, `\xHH`.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.bytes();
    while let Some(b) = chars.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match chars.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'0') => out.push(0),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex: Vec<u8> = chars.by_ref().take(2).collect();
                let hex = std::str::from_utf8(&hex).unwrap_or("");
                let v = (hex.len() == 2)
                    .then(|| u8::from_str_radix(hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| format!("'\\x{hex}' needs two hex digits"))?;
                out.push(v);
            }
            Some(other) => return Err(format!("unknown escape '\\{}'", other as char)),
            None => return Err("ends with a lone '\\'".to_string()),
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatConfig {
    pub every: Duration,
    pub timeout: Duration,
    /// Raw mode: send these bytes, count any bytes received as the reply.
    pub payload: Option<Vec<u8>>,
    /// Raw mode with `--heartbeat-expect`: only a reply line that starts with these
    /// bytes answers; any other reply is reported and does not.
    pub expect: Option<Vec<u8>>,
}

/// The longest `--heartbeat-expect`, in bytes.
pub const MAX_EXPECT: usize = 256;
/// Reply bytes shown on a `heartbeat-reply` line, at most (escaped).
pub const SHOWN_REPLY: usize = 64;

impl HeartbeatConfig {
    /// Time from the last reply to the detection of a dead or hung peer: the next
    /// heartbeat goes out at most `every` after it, and is given up `timeout` later.
    pub fn detect_after(&self) -> Duration {
        self.every.saturating_add(self.timeout)
    }

    /// The `config` event's prediction with the heartbeats in it: whichever of
    /// keepalive and heartbeats detects a dead peer first is the prediction.
    pub fn include_in(&self, facts: &mut crate::model::event::ConfigFacts) {
        let hb = self.detect_after();
        let hb_s = hb.as_secs_f64();
        let how = format!(
            "heartbeats detect a dead or hung peer {} after the last reply (every {} + timeout {})",
            crate::model::units::secs_text(hb),
            crate::model::units::secs_text(self.every),
            crate::model::units::secs_text(self.timeout)
        );
        match facts.predicted_detect_s {
            Some(ka) if ka <= hb_s => {
                facts.explain = format!("{}; {how}, keepalive first", facts.explain);
            }
            Some(_) => {
                facts.explain = format!("{how}, before keepalive: {}", facts.explain);
                facts.predicted_detect_s = Some(hb_s);
            }
            None => {
                facts.explain = format!("{how}; keepalive would never detect it");
                facts.predicted_detect_s = Some(hb_s);
                // Keepalive being off no longer means never.
                for w in &mut facts.warnings {
                    if w.contains("a dead idle peer is never detected") {
                        *w = w.replace(
                            "a dead idle peer is never detected",
                            "only the heartbeats detect a dead idle peer",
                        );
                    }
                }
            }
        }
    }
}

/// Reply bytes as one line of text: printable ASCII as is, `\r`, `\n`, `\t`,
/// `\0`, `\\` and `\xHH` for the rest, cut at [`SHOWN_REPLY`] bytes (`...` then).
pub fn show_reply(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(SHOWN_REPLY) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            0 => out.push_str("\\0"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > SHOWN_REPLY {
        out.push_str("...");
    }
    out
}

/// What a raw-mode reply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawReply {
    /// It answered heartbeat `seq` (and every older one) after `rtt`.
    Answer {
        seq: u64,
        rtt: Duration,
        shown: String,
    },
    /// A reply line that does not start with `--heartbeat-expect`: it answers
    /// nothing.
    Mismatch { shown: String },
}

/// What the schedule wants done now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Send heartbeat `seq` with these bytes.
    Send { seq: u64, bytes: Vec<u8> },
    /// Heartbeat `seq`, sent at `sent`, went unanswered for the whole timeout.
    TimedOut { seq: u64, sent: Duration },
}

/// The sending side: when to send, what is outstanding, when the peer is late.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    cfg: HeartbeatConfig,
    next_send: Duration,
    seq: u64,
    /// Unanswered heartbeats, oldest first. Bounded: the oldest times out before
    /// more than timeout/every + 1 can pile up.
    outstanding: VecDeque<(u64, Duration)>,
    last_reply: Duration,
    /// `--heartbeat-expect`: the current reply line's first bytes, and whether it
    /// was judged already (the rest of the line is skipped).
    reply: Vec<u8>,
    judged: bool,
    /// The last reply that did not match, as shown.
    last_mismatch: Option<String>,
}

impl Heartbeat {
    pub fn new(cfg: HeartbeatConfig, now: Duration) -> Heartbeat {
        Heartbeat {
            next_send: now.saturating_add(cfg.every),
            cfg,
            seq: 0,
            outstanding: VecDeque::new(),
            last_reply: now,
            reply: Vec::new(),
            judged: false,
            last_mismatch: None,
        }
    }

    /// The last reply that did not match `--heartbeat-expect`, as shown.
    pub fn last_mismatch(&self) -> Option<&str> {
        self.last_mismatch.as_deref()
    }

    /// Raw mode: bytes received. Without `--heartbeat-expect` any bytes answer
    /// everything outstanding. With it, replies are lines (a line protocol, as
    /// Redis's): a line is judged as soon as it holds as many bytes as the expected
    /// prefix, or ends; only one that starts with the prefix answers.
    pub fn on_raw_bytes(&mut self, bytes: &[u8], now: Duration) -> Vec<RawReply> {
        let Some(expect) = self.cfg.expect.clone() else {
            return self
                .on_any_reply(now)
                .map(|(seq, rtt)| RawReply::Answer {
                    seq,
                    rtt,
                    shown: show_reply(bytes),
                })
                .into_iter()
                .collect();
        };
        let keep = expect.len().max(SHOWN_REPLY + 1);
        let mut out = Vec::new();
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            let complete = piece.ends_with(b"\n");
            if !self.judged {
                let room = keep.saturating_sub(self.reply.len());
                self.reply
                    .extend_from_slice(&piece[..piece.len().min(room)]);
                if self.reply.len() >= expect.len() || complete {
                    let shown = show_reply(&self.reply);
                    if self.reply.starts_with(&expect) {
                        if let Some((seq, rtt)) = self.on_any_reply(now) {
                            out.push(RawReply::Answer { seq, rtt, shown });
                        }
                    } else {
                        self.last_mismatch = Some(shown.clone());
                        out.push(RawReply::Mismatch { shown });
                    }
                    self.judged = true;
                }
            }
            if complete {
                self.reply.clear();
                self.judged = false;
            }
        }
        out
    }

    pub fn raw(&self) -> bool {
        self.cfg.payload.is_some()
    }

    /// Time from the last reply to the detection of a hung peer application.
    pub fn predicted_detect(&self) -> Duration {
        self.cfg.every.saturating_add(self.cfg.timeout)
    }

    pub fn last_reply(&self) -> Duration {
        self.last_reply
    }

    pub fn next_deadline(&self) -> Duration {
        match self.outstanding.front() {
            Some(&(_, sent)) => self.next_send.min(sent.saturating_add(self.cfg.timeout)),
            None => self.next_send,
        }
    }

    /// The action due at `now`, if any. A timeout wins over a send.
    pub fn poll(&mut self, now: Duration) -> Option<Due> {
        if let Some(&(seq, sent)) = self.outstanding.front()
            && now >= sent.saturating_add(self.cfg.timeout)
        {
            return Some(Due::TimedOut { seq, sent });
        }
        if now < self.next_send {
            return None;
        }
        self.seq = self.seq.saturating_add(1);
        self.next_send = now.saturating_add(self.cfg.every);
        self.outstanding.push_back((self.seq, now));
        let bytes = match &self.cfg.payload {
            Some(p) => p.clone(),
            None => Message::Ping(self.seq).encode(),
        };
        Some(Due::Send {
            seq: self.seq,
            bytes,
        })
    }

    /// A `PONG seq` arrived: answers that heartbeat and every older one. Returns the
    /// answered seq and its round-trip time, or `None` for a stale or unknown seq.
    pub fn on_pong(&mut self, seq: u64, now: Duration) -> Option<(u64, Duration)> {
        let &(_, sent) = self.outstanding.iter().find(|(s, _)| *s == seq)?;
        self.outstanding.retain(|(s, _)| *s > seq);
        self.last_reply = now;
        Some((seq, now.saturating_sub(sent)))
    }

    /// Raw mode: any bytes received answer everything outstanding; the RTT is that
    /// of the newest heartbeat they can be a reply to.
    pub fn on_any_reply(&mut self, now: Duration) -> Option<(u64, Duration)> {
        let &(seq, sent) = self.outstanding.back()?;
        self.outstanding.clear();
        self.last_reply = now;
        Some((seq, now.saturating_sub(sent)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn parses_the_protocol_and_ignores_the_rest() {
        let table: &[(&[u8], Option<Message>)] = &[
            (b"PING 1", Some(Message::Ping(1))),
            (b"PONG 42\r", Some(Message::Pong(42))),
            (b"PONG 18446744073709551615", Some(Message::Pong(u64::MAX))),
            (b"PONG 18446744073709551616", None),
            (b"PING", None),
            (b"PING ", None),
            (b"PING -1", None),
            (b"PING +1", None),
            (b"ping 1", None),
            (b"PING 1 2", None),
            (b"\xff\xfe", None),
            (
                b"HOLD 3 12000 1000 9",
                Some(Message::Hold {
                    seq: 3,
                    wake_ms: 12000,
                    uto_ms: 1000,
                    run: 9,
                }),
            ),
            (
                b"HOLD 18446744073709551615 4294967295 0 18446744073709551615\r",
                Some(Message::Hold {
                    seq: u64::MAX,
                    wake_ms: u32::MAX,
                    uto_ms: 0,
                    run: u64::MAX,
                }),
            ),
            (b"HOLD 3 4294967296 0 1", None),
            (b"HOLD 3 12000 1000", None),
            (b"HOLD 3 12000 1000 7 8", None),
            (b"HOLD 3  1000 7", None),
            (b"WATCH 77", Some(Message::Watch(77))),
            (b"WATCHING 77", Some(Message::Watching(77))),
            (b"DONE 5", Some(Message::Done(5))),
            (b"REFUSED 5", Some(Message::Refused(5))),
            (
                b"SAW 5 rst",
                Some(Message::Saw {
                    seq: 5,
                    what: Saw::Rst,
                }),
            ),
            (
                b"SAW 5 timeout",
                Some(Message::Saw {
                    seq: 5,
                    what: Saw::Timeout,
                }),
            ),
            (b"SAW 5 RST", None),
            (b"SAW 5", None),
            (b"HELD 3", Some(Message::Held(3))),
            (b"HELD", None),
        ];
        for (line, want) in table {
            assert_eq!(parse_line(line), *want, "{line:?}");
        }
    }

    #[test]
    fn line_reader_splits_across_reads_and_bounds_memory() {
        let mut r = LineReader::default();
        assert_eq!(r.feed(b"PI"), vec![]);
        assert_eq!(
            r.feed(b"NG 7\nPONG 8\nxx"),
            vec![Message::Ping(7), Message::Pong(8)]
        );
        assert_eq!(r.buffered(), 2);
        // An endless line never grows the buffer past MAX_LINE...
        for _ in 0..10_000 {
            r.feed(&[b'a'; 100]);
            assert!(r.buffered() <= MAX_LINE);
        }
        // ...and the reader resynchronises at its end.
        assert_eq!(r.feed(b"tail\nPING 9\n"), vec![Message::Ping(9)]);
    }

    #[test]
    fn unescapes_payloads() {
        assert_eq!(unescape("PING\\r\\n"), Ok(b"PING\r\n".to_vec()));
        assert_eq!(unescape("a\\x41\\\\\\0"), Ok(b"aA\\\0".to_vec()));
        assert_eq!(unescape("bad\\q"), Err("unknown escape '\\q'".to_string()));
        assert_eq!(
            unescape("\\x4"),
            Err("'\\x4' needs two hex digits".to_string())
        );
        assert_eq!(unescape("end\\"), Err("ends with a lone '\\'".to_string()));
    }

    fn hb(payload: Option<&[u8]>) -> Heartbeat {
        Heartbeat::new(
            HeartbeatConfig {
                every: ms(1000),
                timeout: ms(3000),
                payload: payload.map(<[u8]>::to_vec),
                expect: None,
            },
            ms(0),
        )
    }

    fn expecting(prefix: &[u8]) -> Heartbeat {
        Heartbeat::new(
            HeartbeatConfig {
                every: ms(1000),
                timeout: ms(3000),
                payload: Some(b"PING\r\n".to_vec()),
                expect: Some(prefix.to_vec()),
            },
            ms(0),
        )
    }

    #[test]
    fn replies_are_shown_escaped_and_cut() {
        assert_eq!(show_reply(b"+PONG\r\n"), "+PONG\\r\\n");
        assert_eq!(show_reply(b"a\\b\0\xff\t"), "a\\\\b\\0\\xff\\t");
        let long = vec![b'x'; 100];
        assert_eq!(show_reply(&long), format!("{}...", "x".repeat(SHOWN_REPLY)));
    }

    #[test]
    fn only_lines_with_the_expected_prefix_answer() {
        let mut h = expecting(b"+PONG");
        assert!(matches!(h.poll(ms(1000)), Some(Due::Send { seq: 1, .. })));
        // Redis without AUTH: a reply, but not the one expected.
        assert_eq!(
            h.on_raw_bytes(b"-NOAUTH Authentication required.\r\n", ms(1001)),
            vec![RawReply::Mismatch {
                shown: "-NOAUTH Authentication required.\\r\\n".into()
            }]
        );
        assert_eq!(
            h.last_mismatch(),
            Some("-NOAUTH Authentication required.\\r\\n")
        );
        // Still outstanding: it times out.
        assert!(matches!(
            h.poll(ms(4000)),
            Some(Due::TimedOut { seq: 1, .. })
        ));

        let mut h = expecting(b"+PONG");
        h.poll(ms(1000));
        // Split across reads, the line is judged once it holds the prefix.
        assert_eq!(h.on_raw_bytes(b"+PO", ms(1001)), vec![]);
        assert_eq!(
            h.on_raw_bytes(b"NG\r", ms(1002)),
            vec![RawReply::Answer {
                seq: 1,
                rtt: ms(2),
                shown: "+PONG\\r".into()
            }]
        );
        // The rest of that line is not a new reply.
        assert_eq!(h.on_raw_bytes(b"\n", ms(1003)), vec![]);
        // A short complete line is judged at its end.
        h.poll(ms(2002));
        assert_eq!(
            h.on_raw_bytes(b"+OK\r\n+PONG\r\n", ms(2003)),
            vec![
                RawReply::Mismatch {
                    shown: "+OK\\r\\n".into()
                },
                RawReply::Answer {
                    seq: 2,
                    rtt: ms(1),
                    shown: "+PONG\\r\\n".into()
                }
            ]
        );
    }

    #[test]
    fn without_expect_any_bytes_answer_and_are_shown() {
        let mut h = hb(Some(b"PING\r\n"));
        h.poll(ms(1000));
        assert_eq!(
            h.on_raw_bytes(b"-ERR unknown command\r\n", ms(1005)),
            vec![RawReply::Answer {
                seq: 1,
                rtt: ms(5),
                shown: "-ERR unknown command\\r\\n".into()
            }]
        );
    }

    /// Issue 12 #3: huge durations overflowed at run time ("overflow when adding
    /// durations", exit 101). The parser now bounds them; the schedule itself
    /// saturates, whatever it is given.
    #[test]
    fn huge_intervals_saturate_instead_of_overflowing() {
        let mut hb = Heartbeat::new(
            HeartbeatConfig {
                every: Duration::MAX,
                timeout: Duration::MAX,
                payload: None,
                expect: None,
            },
            ms(5),
        );
        assert_eq!(hb.next_deadline(), Duration::MAX);
        assert_eq!(hb.predicted_detect(), Duration::MAX);
        assert!(hb.poll(ms(10)).is_none());
        assert!(matches!(hb.poll(Duration::MAX), Some(Due::Send { .. })));
        assert_eq!(hb.next_deadline(), Duration::MAX);
        assert!(hb.poll(Duration::MAX).is_some());
    }

    #[test]
    fn the_prediction_includes_the_heartbeats() {
        use crate::model::predict::Effective;
        let cfg = |every: u64, timeout: u64| HeartbeatConfig {
            every: ms(every),
            timeout: ms(timeout),
            payload: None,
            expect: None,
        };
        let ka = Effective {
            keepalive: true,
            idle_s: 5,
            intvl_s: 5,
            cnt: 3,
            user_timeout_ms: 0,
        };
        // Heartbeats first: 1 s + 3 s beats 20 s of keepalive.
        let mut f = ka.facts(15);
        cfg(1000, 3000).include_in(&mut f);
        assert_eq!(f.predicted_detect_s, Some(4.0));
        assert!(
            f.explain
                .starts_with("heartbeats detect a dead or hung peer 4s after the last reply"),
            "{}",
            f.explain
        );
        assert!(
            f.explain
                .contains("before keepalive: dead peer detected 20s"),
            "{}",
            f.explain
        );
        // Keepalive first.
        let mut f = ka.facts(15);
        cfg(30_000, 90_000).include_in(&mut f);
        assert_eq!(f.predicted_detect_s, Some(20.0));
        assert!(f.explain.ends_with("keepalive first"), "{}", f.explain);
        // Keepalive off: the heartbeats are the only detection.
        let off = Effective {
            keepalive: false,
            ..ka
        };
        let mut f = off.facts(15);
        assert_eq!(f.predicted_detect_s, None);
        cfg(1000, 3000).include_in(&mut f);
        assert_eq!(f.predicted_detect_s, Some(4.0));
        assert!(
            f.warnings.iter().all(|w| !w.contains("never detected")),
            "{:?}",
            f.warnings
        );
    }

    #[test]
    fn sends_every_interval_and_times_out_the_oldest() {
        let mut h = hb(None);
        assert_eq!(h.poll(ms(999)), None);
        assert_eq!(
            h.poll(ms(1000)),
            Some(Due::Send {
                seq: 1,
                bytes: b"PING 1\n".to_vec()
            })
        );
        assert_eq!(h.next_deadline(), ms(2000));
        assert!(matches!(h.poll(ms(2000)), Some(Due::Send { seq: 2, .. })));
        assert_eq!(h.on_pong(2, ms(2001)), Some((2, ms(1))));
        // The reply to 2 answers 1 too.
        assert!(matches!(h.poll(ms(3000)), Some(Due::Send { seq: 3, .. })));
        for t in [4000, 5000] {
            assert!(matches!(h.poll(ms(t)), Some(Due::Send { .. })));
        }
        assert_eq!(h.next_deadline(), ms(6000));
        assert_eq!(
            h.poll(ms(6000)),
            Some(Due::TimedOut {
                seq: 3,
                sent: ms(3000)
            })
        );
        assert_eq!(h.predicted_detect(), ms(4000));
    }

    #[test]
    fn unknown_pongs_are_ignored() {
        let mut h = hb(None);
        h.poll(ms(1000));
        assert_eq!(h.on_pong(99, ms(1001)), None);
        assert_eq!(h.last_reply(), ms(0));
    }

    #[test]
    fn raw_mode_counts_any_bytes_as_the_reply() {
        let mut h = hb(Some(b"PING\r\n"));
        assert_eq!(
            h.poll(ms(1000)),
            Some(Due::Send {
                seq: 1,
                bytes: b"PING\r\n".to_vec()
            })
        );
        assert_eq!(h.on_any_reply(ms(1002)), Some((1, ms(2))));
        assert_eq!(h.on_any_reply(ms(1003)), None);
    }
}
