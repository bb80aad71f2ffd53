//! Property tests for the heartbeat line protocol, the one parser that takes input
//! from the network (src/heartbeat.rs): no byte stream panics it, a line's meaning
//! does not depend on how the stream was split into reads, the buffer never holds
//! more than `MAX_LINE` bytes, and every message round-trips. `--heartbeat-payload`
//! escapes are covered too. scripts/fuzz-parsers.sh runs these with PROPTEST_CASES.

use proptest::prelude::*;

use crate::model::heartbeat::{LineReader, MAX_LINE, Message, parse_line, unescape};

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        any::<u64>().prop_map(Message::Ping),
        any::<u64>().prop_map(Message::Pong),
        any::<u64>().prop_map(Message::Held),
        (any::<u64>(), any::<u32>(), any::<u32>(), any::<u64>()).prop_map(
            |(seq, wake_ms, uto_ms, run)| Message::Hold {
                seq,
                wake_ms,
                uto_ms,
                run,
            }
        ),
        any::<u64>().prop_map(Message::Refused),
        any::<u64>().prop_map(Message::Watch),
        any::<u64>().prop_map(Message::Watching),
        any::<u64>().prop_map(Message::Done),
        (any::<u64>(), 0usize..4).prop_map(|(seq, i)| Message::Saw {
            seq,
            what: [
                crate::model::heartbeat::Saw::Fin,
                crate::model::heartbeat::Saw::Rst,
                crate::model::heartbeat::Saw::Timeout,
                crate::model::heartbeat::Saw::Error
            ][i],
        }),
    ]
}

/// A stream mixing real messages with garbage: binary, endless lines, near-misses.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        message().prop_map(|m| m.encode()),
        message().prop_map(|m| {
            let mut b = m.encode();
            b.insert(b.len() - 1, b'\r');
            b
        }),
        proptest::collection::vec(any::<u8>(), 0..200),
        (1usize..5000).prop_map(|n| vec![b'x'; n]),
        "(PING|PONG|PIN|ping)? ?[0-9 +-]{0,25}\r?\n?".prop_map(String::into_bytes),
    ];
    proptest::collection::vec(piece, 0..20).prop_map(|v| v.concat())
}

/// What the protocol says a stream means: complete lines of at most MAX_LINE bytes
/// that parse; longer lines are dropped whole; an unterminated tail means nothing yet.
fn model(bytes: &[u8]) -> Vec<Message> {
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    lines.pop();
    lines
        .into_iter()
        .filter(|l| l.len() <= MAX_LINE)
        .filter_map(parse_line)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parse_line_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_line(&bytes);
    }

    #[test]
    fn messages_round_trip(m in message(), crlf in any::<bool>()) {
        let mut line = m.encode();
        prop_assert_eq!(line.pop(), Some(b'\n'));
        if crlf {
            line.push(b'\r');
        }
        prop_assert!(line.len() <= MAX_LINE);
        prop_assert_eq!(parse_line(&line), Some(m));
    }

    #[test]
    fn reader_is_split_independent_bounded_and_matches_the_model(
        bytes in stream(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        at.sort_unstable();
        let mut reader = LineReader::default();
        let mut got = Vec::new();
        let mut from = 0;
        for to in at.into_iter().chain(std::iter::once(bytes.len())) {
            got.extend(reader.feed(&bytes[from..to]));
            prop_assert!(reader.buffered() <= MAX_LINE, "{} bytes buffered", reader.buffered());
            from = to;
        }
        let mut whole = LineReader::default();
        prop_assert_eq!(&got, &whole.feed(&bytes));
        prop_assert_eq!(got, model(&bytes));
    }

    #[test]
    fn unescape_never_panics(text in ".*|[\\\\xrnt0-9a-fA-F]{0,12}") {
        let _ = unescape(&text);
    }

    #[test]
    fn escaped_bytes_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let text: String = bytes.iter().map(|b| format!("\\x{b:02x}")).collect();
        prop_assert_eq!(unescape(&text), Ok(bytes));
    }
}
