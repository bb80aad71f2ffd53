//! What a file that is not a capture looks like, from its first bytes, for the
//! one error line (`explain` exits 2 with it): a compressed capture, tcpdump's
//! text output, some other text, an executable, or nothing recognisable.

/// One phrase: "gzip-compressed data (decompress it first)", "empty", ...
pub fn describe(head: &[u8]) -> String {
    if head.is_empty() {
        return "an empty file".into();
    }
    let starts = |magic: &[u8]| head.starts_with(magic);
    if starts(&[0x1f, 0x8b]) {
        return "gzip-compressed data (decompress it first: gunzip)".into();
    }
    if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return "zstd-compressed data (decompress it first: unzstd)".into();
    }
    if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return "xz-compressed data (decompress it first: unxz)".into();
    }
    if starts(b"BZh") {
        return "bzip2-compressed data (decompress it first: bunzip2)".into();
    }
    if starts(b"PK\x03\x04") {
        return "a zip archive (extract the capture first)".into();
    }
    if starts(b"\x7fELF") {
        return "an ELF executable".into();
    }
    if starts(b"snoop\0\0\0") {
        return "a Solaris snoop capture (convert it to pcap: editcap -F pcap)".into();
    }
    if head.len() >= 4 && head[..4] == [0x34, 0xcd, 0xb2, 0xa1] {
        return "a Kuznetsov-patched pcap (convert it: editcap -F pcap)".into();
    }
    match std::str::from_utf8(text_prefix(head)) {
        Ok(text) if is_text(text) => describe_text(text),
        _ => format!("binary data starting {}", hex(&head[..head.len().min(8)])),
    }
}

/// The prefix up to a cut UTF-8 character at the end of the sniffed bytes.
fn text_prefix(head: &[u8]) -> &[u8] {
    match std::str::from_utf8(head) {
        Ok(_) => head,
        Err(e) if e.error_len().is_none() => &head[..e.valid_up_to()],
        Err(_) => head,
    }
}

fn is_text(text: &str) -> bool {
    text.chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
}

fn describe_text(text: &str) -> String {
    let first = text.lines().next().unwrap_or("").trim();
    let shown: String = first.chars().take(40).collect();
    let ellipsis = if first.chars().count() > 40 {
        "..."
    } else {
        ""
    };
    let words: Vec<&str> = first.split_whitespace().collect();
    let timestamp = words.first().is_some_and(|w| {
        w.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ':')
            && w.contains(['.', ':'])
    });
    if timestamp && words.get(1).is_some_and(|w| *w == "IP" || *w == "IP6") {
        return format!(
            "tcpdump's text output (\"{shown}{ellipsis}\"): capture with tcpdump -w FILE instead"
        );
    }
    if first.starts_with('{') || first.starts_with('[') {
        return format!("JSON text (\"{shown}{ellipsis}\")");
    }
    format!("text (\"{shown}{ellipsis}\")")
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn what_files_look_like() {
        let rows: [(&[u8], &str); 9] = [
            (b"", "an empty file"),
            (&[0x1f, 0x8b, 8, 0], "gzip-compressed"),
            (b"\x7fELF\x02\x01", "an ELF executable"),
            (
                b"1796301226.512116 IP 198.18.12.57.50910 > 198.18.12.58.20391: Flags [S]",
                "tcpdump's text output",
            ),
            (
                b"12:33:46.512116 IP6 ::1.5 > ::1.6: Flags [S]",
                "tcpdump's text output",
            ),
            (b"{\"event\":\"end\"}\n", "JSON text"),
            (b"hello world\n", "text (\"hello world\")"),
            (&[0, 1, 2, 3, 0xff], "binary data starting 00 01 02 03 ff"),
            (b"caf\xc3", "text (\"caf\")"),
        ];
        for (bytes, want) in rows {
            let got = describe(bytes);
            assert!(got.contains(want), "{bytes:?}: {got}");
        }
    }
}
