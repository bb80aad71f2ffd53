//! Property: no bytes make the capture reader panic or loop, whatever they are:
//! arbitrary files, and real captures with arbitrary damage.

use proptest::prelude::*;

use super::build;
use std::time::Duration;

fn sample() -> Vec<u8> {
    let frames: Vec<(Duration, Vec<u8>)> = super::tests::keepalive_segments()
        .iter()
        .map(|s| (s.at, build::ethernet(s)))
        .collect();
    build::pcap(1, 65_535, &frames)
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = super::explain(bytes.as_slice());
    }

    #[test]
    fn arbitrary_bytes_after_a_pcap_header_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..4096),
        linktype in prop_oneof![Just(1u32), Just(101), Just(113), Just(276), Just(0), Just(228)],
    ) {
        let mut bytes = build::pcap(linktype, 65_535, &[]);
        bytes.extend_from_slice(&body);
        let _ = super::explain(bytes.as_slice());
        let mut ng = build::pcapng(linktype as u16, &[]);
        ng.extend_from_slice(&body);
        let _ = super::explain(ng.as_slice());
    }

    #[test]
    fn damaged_real_captures_never_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..16),
        cut in any::<usize>(),
    ) {
        let mut bytes = sample();
        for (at, b) in flips {
            let i = at % bytes.len();
            bytes[i] ^= b;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        let _ = super::explain(bytes.as_slice());
    }
}
