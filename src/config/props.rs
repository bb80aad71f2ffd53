//! Property tests for every parser that takes outside input (the command line):
//! durations, keepalive seconds, counts, the user timeout, `connect`'s HOST:PORT,
//! `listen`'s [HOST:]PORT, --expect/--within, and whole argument vectors (connect,
//! listen, watch, with every flag) through clap and validation.
//!
//! Properties: no input panics; accepted values round-trip and respect their ranges;
//! rejected values give the one-line "invalid FLAG 'VALUE': reason" naming the flag
//! and the value. `cargo test` runs 256 cases per property; scripts/fuzz-parsers.sh
//! runs many more (PROPTEST_CASES).

use std::time::Duration;

use clap::Parser;
use proptest::prelude::*;

use crate::cli::Cli;
use crate::config::{
    ConfigError, MAX_KEEPCNT, MAX_KEEPIDLE_S, parse_duration, validate_count, validate_endpoint,
    validate_expect, validate_keepalive_seconds, validate_listen_addr, validate_user_timeout,
    validate_within,
};

/// Text a user could type, weighted towards the characters parsers care about.
fn cli_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        "[0-9.:\\[\\]a-z -]{0,24}",
        "[0-9]{0,25}(\\.[0-9]{0,12})?(ns|us|ms|s|m|h|d|w|M|y|sec|min|hours)?",
        "\\[[0-9a-fA-F:.%a-z]{0,40}\\](:[0-9]{0,7})?",
        "[a-z0-9.-]{0,20}:[0-9+-]{0,8}",
        "[\\[\\]:a-z0-9]{0,6}:[0-9]{1,5}",
    ]
}

/// Asserts the contract of a rejection: one line naming the flag and the value.
fn assert_names_flag_and_value(
    err: &ConfigError,
    flag: &str,
    value: &str,
) -> Result<(), TestCaseError> {
    let text = err.to_string();
    // Control characters are shown escaped, and very long values cut after 60
    // characters ("..."), so the one line stays one line.
    let shown: String = crate::config::printable(value).chars().take(60).collect();
    let head = format!("invalid {flag} '{shown}");
    prop_assert!(
        text.starts_with(&head),
        "{text:?} does not start with {head:?}"
    );
    prop_assert!(!text.contains('\n'), "more than one line: {text:?}");
    prop_assert!(text.contains("': "), "no reason given: {text:?}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    // ---- durations ---------------------------------------------------------

    #[test]
    fn parse_duration_never_panics(text in cli_text()) {
        let _ = parse_duration(&text);
    }

    #[test]
    fn whole_seconds_round_trip(n in 0u64..=10_000_000_000) {
        prop_assert_eq!(parse_duration(&n.to_string()), Ok(Duration::from_secs(n)));
        prop_assert_eq!(parse_duration(&format!("{n}s")), Ok(Duration::from_secs(n)));
        prop_assert_eq!(parse_duration(&format!(" {n} ")), Ok(Duration::from_secs(n)));
    }

    #[test]
    fn unit_suffixes_scale(n in 0u64..=1_000_000_000) {
        prop_assert_eq!(parse_duration(&format!("{n}ms")), Ok(Duration::from_millis(n)));
        prop_assert_eq!(parse_duration(&format!("{n}m")), Ok(Duration::from_secs(n * 60)));
        prop_assert_eq!(parse_duration(&format!("{n}h")), Ok(Duration::from_secs(n * 3600)));
    }

    #[test]
    fn decimal_seconds_are_close(whole in 0u64..=100_000, frac in 0u32..1000) {
        let want = Duration::from_secs(whole) + Duration::from_millis(frac.into());
        for text in [format!("{whole}.{frac:03}"), format!("{whole}.{frac:03}s")] {
            let got = parse_duration(&text);
            prop_assert!(got.is_ok(), "{text:?} rejected: {got:?}");
            let got = got.unwrap_or_default();
            let diff = got.abs_diff(want);
            prop_assert!(diff <= Duration::from_micros(1), "{text:?} -> {got:?}, want {want:?}");
        }
    }

    #[test]
    fn humantime_output_round_trips(secs in 0u64..=10_000_000_000, nanos in 0u32..1_000_000_000) {
        let d = Duration::new(secs, nanos);
        let text = humantime::format_duration(d).to_string();
        prop_assert_eq!(parse_duration(&text), Ok(d), "{}", text);
    }

    #[test]
    fn negative_durations_are_rejected(text in "-[0-9]{1,8}(\\.[0-9]{1,3})?(ms|s|m)?") {
        prop_assert!(parse_duration(&text).is_err(), "{} accepted", text);
    }

    // ---- keepalive seconds, counts, user timeout ------------------------------

    #[test]
    fn keepalive_seconds_respect_the_kernel_range(text in cli_text()) {
        match validate_keepalive_seconds("--idle", &text, MAX_KEEPIDLE_S) {
            Ok(s) => {
                prop_assert!((1..=MAX_KEEPIDLE_S).contains(&u64::from(s)), "{} -> {}", text, s);
                prop_assert_eq!(parse_duration(&text), Ok(Duration::from_secs(s.into())));
            }
            Err(e) => assert_names_flag_and_value(&e, "--idle", &text)?,
        }
    }

    #[test]
    fn keepalive_seconds_accept_every_value_in_range(n in 1u64..=MAX_KEEPIDLE_S) {
        prop_assert_eq!(validate_keepalive_seconds("--intvl", &n.to_string(), MAX_KEEPIDLE_S), Ok(n as u32));
        prop_assert_eq!(validate_keepalive_seconds("--intvl", &format!("{}ms", n * 1000), MAX_KEEPIDLE_S), Ok(n as u32));
    }

    #[test]
    fn counts_respect_their_range(text in cli_text()) {
        match validate_count("--cnt", &text, 1, MAX_KEEPCNT) {
            Ok(n) => prop_assert!((1..=MAX_KEEPCNT).contains(&n)),
            Err(e) => assert_names_flag_and_value(&e, "--cnt", &text)?,
        }
    }

    #[test]
    fn user_timeout_is_whole_milliseconds_in_range(text in cli_text()) {
        match validate_user_timeout(&text) {
            Ok(d) => {
                prop_assert!(!d.is_zero());
                prop_assert_eq!(d.subsec_nanos() % 1_000_000, 0);
                prop_assert!(d.as_millis() <= i32::MAX as u128);
            }
            Err(e) => assert_names_flag_and_value(&e, "--user-timeout", &text)?,
        }
    }

    // ---- addresses -------------------------------------------------------------

    #[test]
    fn endpoint_never_panics_and_respects_ranges(text in cli_text(), zero in any::<bool>()) {
        match validate_endpoint("HOST:PORT", &text, zero) {
            Ok(ep) => {
                prop_assert!(!ep.host.is_empty());
                prop_assert!(zero || ep.port != 0, "port 0 accepted in {:?}", text);
                // The port is the number after the last colon, as written.
                let written = text.rsplit_once(':').and_then(|(_, p)| p.parse::<u64>().ok());
                prop_assert_eq!(written, Some(u64::from(ep.port)), "{:?}", text);
            }
            Err(e) => assert_names_flag_and_value(&e, "HOST:PORT", &text)?,
        }
    }

    /// Found by this property (fixed since in `validate_endpoint`): a bracketed host
    /// that was not an IPv6 address was accepted ("[[]:0" gave host "[", printed as
    /// "[:0", which was rejected), so such a typo exited 3 instead of 2.
    #[test]
    fn endpoint_round_trips(text in cli_text(), zero in any::<bool>()) {
        if let Ok(ep) = validate_endpoint("HOST:PORT", &text, zero) {
            // What tcpalive prints for an endpoint parses back to the same endpoint.
            let shown = ep.to_string();
            prop_assert_eq!(validate_endpoint("HOST:PORT", &shown, zero), Ok(ep), "{:?} shown as {:?}", text, shown);
        }
    }

    #[test]
    fn endpoint_accepts_names_and_addresses(
        host in prop_oneof![
            "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
            any::<std::net::Ipv4Addr>().prop_map(|a| a.to_string()),
        ],
        port in 1u16..,
    ) {
        let ep = validate_endpoint("HOST:PORT", &format!("{host}:{port}"), false);
        prop_assert_eq!(ep.as_ref().map(|e| (e.host.as_str(), e.port)), Ok((host.as_str(), port)));
    }

    #[test]
    fn endpoint_accepts_bracketed_ipv6(addr in any::<std::net::Ipv6Addr>(), port in 1u16..) {
        let host = addr.to_string();
        let ep = validate_endpoint("HOST:PORT", &format!("[{host}]:{port}"), false);
        prop_assert_eq!(ep.as_ref().map(|e| (e.host.as_str(), e.port)), Ok((host.as_str(), port)));
        // Without brackets the colon is ambiguous: rejected with a hint.
        let bare = format!("{host}:{port}");
        match validate_endpoint("HOST:PORT", &bare, false) {
            Ok(ep) => prop_assert!(false, "{:?} accepted as {:?}", bare, ep),
            Err(e) => assert_names_flag_and_value(&e, "HOST:PORT", &bare)?,
        }
    }

    #[test]
    fn listen_addr_never_panics_and_respects_ranges(text in cli_text()) {
        match validate_listen_addr(&text) {
            Ok(ep) => {
                prop_assert!(!ep.host.is_empty());
                if text.chars().all(|c| c.is_ascii_digit()) {
                    prop_assert_eq!(ep.host.as_str(), "0.0.0.0");
                    prop_assert_eq!(u64::from(ep.port), text.parse::<u64>().unwrap_or(u64::MAX));
                }
            }
            Err(e) => assert_names_flag_and_value(&e, "[HOST:]PORT", &text)?,
        }
    }

    #[test]
    fn listen_bare_port(port in 0u32..=200_000) {
        let got = validate_listen_addr(&port.to_string());
        if port <= 65535 {
            prop_assert_eq!(got.map(|e| (e.host, e.port)), Ok(("0.0.0.0".to_string(), port as u16)));
        } else {
            let err = got.err();
            prop_assert!(err.is_some());
            if let Some(e) = err {
                assert_names_flag_and_value(&e, "[HOST:]PORT", &port.to_string())?;
            }
        }
    }

    // ---- --expect / --within ---------------------------------------------------

    #[test]
    fn expect_accepts_outcome_names_only(text in prop_oneof![cli_text(), "[a-z-]{1,20}"]) {
        match validate_expect(&text) {
            Ok(outcome) => prop_assert_eq!(outcome.name(), text.as_str()),
            Err(e) => assert_names_flag_and_value(&e, "--expect", &text)?,
        }
    }

    #[test]
    fn within_bounds_are_ordered_durations(
        text in prop_oneof![cli_text(), "[0-9]{0,4}(ms|s|m)? ?\\.\\. ?[0-9]{0,4}(ms|s|m)?"],
    ) {
        match validate_within(Some(&text)) {
            Ok(exp) => {
                prop_assert!(exp.min.is_some() || exp.max.is_some(), "{:?}", text);
                if let (Some(lo), Some(hi)) = (exp.min, exp.max) {
                    prop_assert!(lo <= hi, "{:?}", text);
                }
                let (min, max) = text.split_once("..").unwrap_or_default();
                for (side, got) in [(min, exp.min), (max, exp.max)] {
                    if side.trim().is_empty() {
                        prop_assert_eq!(got, None);
                    } else {
                        prop_assert_eq!(got, parse_duration(side).ok());
                    }
                }
            }
            Err(e) => assert_names_flag_and_value(&e, "--within", &text)?,
        }
    }

    // ---- whole command lines -----------------------------------------------------

    /// The whole contract on any argv, extreme numbers and non-UTF-8 bytes included:
    /// nothing panics, and a rejection is exactly one line.
    #[test]
    fn any_command_line_parses_or_fails_cleanly(
        sub in prop_oneof![Just("connect"), Just("listen"), Just("watch")],
        words in proptest::collection::vec(
            prop_oneof![
                Just("--idle".to_string()), Just("--intvl".to_string()), Just("--cnt".to_string()),
                Just("--user-timeout".to_string()), Just("--for".to_string()), Just("--max-conns".to_string()),
                Just("--close-after".to_string()), Just("--reset-after".to_string()),
                Just("--send-every".to_string()), Just("--send-size".to_string()),
                Just("--connect-timeout".to_string()), Just("--no-keepalive".to_string()),
                Just("--timestamps".to_string()), Just("--json".to_string()),
                Just("--heartbeat".to_string()), Just("--heartbeat-timeout".to_string()),
                Just("--heartbeat-payload".to_string()), Just("--expect".to_string()),
                Just("--within".to_string()), Just("--reconnect".to_string()),
                Just("--count".to_string()), Just("--mute".to_string()),
                Just("--port".to_string()), Just("--peer".to_string()), Just("--pid".to_string()),
                Just("--interval".to_string()),
                Just("18446744073709551615".to_string()), Just("18446744073709551615s".to_string()),
                Just("99999999999999d".to_string()), Just("1ns".to_string()), Just("0".to_string()),
                Just("-1".to_string()), Just("4294967296".to_string()), Just("1e308".to_string()),
                cli_text(),
            ],
            0..8,
        ),
        bad_utf8 in proptest::option::of((0usize..8, proptest::collection::vec(any::<u8>(), 1..6))),
    ) {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let mut argv: Vec<OsString> = ["tcpalive", sub].iter().map(OsString::from).collect();
        argv.extend(words.into_iter().map(OsString::from));
        if let Some((at, mut bytes)) = bad_utf8 {
            bytes.push(0xff);
            let at = (2 + at).min(argv.len());
            argv.insert(at, OsString::from_vec(bytes));
        }
        let line = match crate::check_utf8(&argv) {
            Err(line) => Some(line),
            Ok(()) => match Cli::try_parse_from(&argv) {
                Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => None,
                Err(e) => Some(crate::usage_line(&e)),
                Ok(cli) => crate::config::Config::from_command(&cli.command).err().map(|e| e.to_string()),
            },
        };
        if let Some(line) = line {
            prop_assert!(!line.is_empty() && !line.contains('\n'), "{:?}", line);
        }
    }
}
