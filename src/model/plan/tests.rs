//! The model's figures, sources, busy-path ranges, warnings and recommender.

use super::*;

fn stack(p: Platform, r: Option<Runtime>) -> Stack {
    Stack {
        platform: p,
        runtime: r,
    }
}

fn detect(p: Platform, r: Option<Runtime>, req: PlanRequest) -> f64 {
    evaluate(stack(p, r), &req, Source::User)
        .predicted_detect
        .expect("keepalive on")
        .as_secs_f64()
}

#[test]
fn defaults_of_each_stack() {
    let d = PlanRequest::default();
    // The figures the issue lists, from each stack's documented defaults.
    assert_eq!(detect(Platform::Linux, None, d.clone()), 7875.0);
    assert_eq!(detect(Platform::Windows, None, d.clone()), 7210.0);
    assert_eq!(detect(Platform::Macos, None, d.clone()), 7800.0);
    assert_eq!(detect(Platform::Freebsd, None, d.clone()), 7800.0);
    assert_eq!(detect(Platform::Linux, Some(Runtime::Go), d.clone()), 150.0);
    assert_eq!(detect(Platform::Macos, Some(Runtime::Go), d.clone()), 150.0);
    assert_eq!(
        detect(Platform::Linux, Some(Runtime::Curl), d.clone()),
        600.0
    );
    // Java, .NET and Python leave the OS defaults.
    assert_eq!(
        detect(Platform::Linux, Some(Runtime::Java), d.clone()),
        7875.0
    );
    assert_eq!(
        detect(Platform::Windows, Some(Runtime::Dotnet), d.clone()),
        7210.0
    );
    assert_eq!(detect(Platform::Macos, Some(Runtime::Python), d), 7800.0);
}

#[test]
fn node_set_keepalive_5000() {
    // setKeepAlive(true, 5000): idle 5 s, libuv's intvl 1 s and cnt 10.
    let req = PlanRequest {
        idle_s: Some(5),
        ..PlanRequest::default()
    };
    let p = evaluate(
        stack(Platform::Linux, Some(Runtime::Node)),
        &req,
        Source::User,
    );
    assert_eq!(p.predicted_detect, Some(Duration::from_secs(15)));
    assert_eq!(p.intvl.source, Source::Fixed);
    assert_eq!(p.cnt.source, Source::Fixed);
    assert_eq!(p.idle.source, Source::User);
    assert!(
        p.not_settable
            .iter()
            .any(|n| n.starts_with("count: fixed at 10"))
    );
    assert_eq!(p.user_timeout.source, Source::NotSettable);
}

#[test]
fn node_without_a_delay_keeps_the_os_values() {
    // Measured with Node v20 (tests/plan.rs): setKeepAlive(true) leaves 7200/75/9.
    let p = evaluate(
        stack(Platform::Linux, Some(Runtime::Node)),
        &PlanRequest::default(),
        Source::User,
    );
    assert_eq!((p.idle.value, p.intvl.value, p.cnt.value), (7200, 75, 9));
    assert_eq!(p.cnt.source, Source::PlatformDefault);
    assert_eq!(p.predicted_detect, Some(Duration::from_secs(7875)));
}

#[test]
fn published_macos_measurement() {
    // idle 15 / intvl 15 / cnt 4 measured at 75 s on macOS.
    let req = PlanRequest {
        idle_s: Some(15),
        intvl_s: Some(15),
        cnt: Some(4),
        ..PlanRequest::default()
    };
    assert_eq!(detect(Platform::Macos, None, req), 75.0);
}

#[test]
fn user_timeout_overrides_cnt_only_on_linux() {
    let req = PlanRequest {
        idle_s: Some(2),
        intvl_s: Some(1),
        cnt: Some(3),
        user_timeout_ms: Some(6500),
        ..PlanRequest::default()
    };
    // Linux: measured 5 probes, 7 s (docs/kernel-facts.md, "TCP_USER_TIMEOUT overrides
    // TCP_KEEPCNT"); the others keep cnt.
    assert_eq!(detect(Platform::Linux, None, req.clone()), 7.0);
    assert_eq!(detect(Platform::Macos, None, req.clone()), 5.0);
    assert_eq!(detect(Platform::Windows, None, req), 5.0);
}

#[test]
fn provenance_per_field() {
    let p = evaluate(
        stack(Platform::Windows, None),
        &PlanRequest::default(),
        Source::User,
    );
    assert_eq!(p.idle.source, Source::PlatformDefault);
    assert!(p.cnt.note.contains("fixed at 10"), "{}", p.cnt.note);
    assert!(!p.keepalive_note.starts_with("on"));
    let p = evaluate(
        stack(Platform::Freebsd, None),
        &PlanRequest::default(),
        Source::User,
    );
    assert_eq!(p.user_timeout.source, Source::NotSettable);
    assert!(p.keepalive_note.starts_with("on by default"));
    let p = evaluate(
        stack(Platform::Linux, Some(Runtime::Go)),
        &PlanRequest::default(),
        Source::User,
    );
    assert_eq!(p.idle.source, Source::RuntimeDefault);
    assert!(p.keepalive_note.starts_with("on by default"));
    let p = evaluate(
        stack(Platform::Linux, Some(Runtime::Curl)),
        &PlanRequest {
            idle_s: Some(20),
            ..PlanRequest::default()
        },
        Source::User,
    );
    assert_eq!((p.idle.value, p.intvl.value, p.cnt.value), (20, 20, 9));
    assert_eq!(p.intvl.source, Source::User);
}

#[test]
fn busy_path_linux_default_and_range() {
    let p = evaluate(
        stack(Platform::Linux, None),
        &PlanRequest::default(),
        Source::User,
    );
    // tcp_retries2 15 with RTO min 200 ms: the kernel's documented 924.6 s.
    assert_eq!(p.busy.low, Duration::from_millis(924_600));
    // Unknown RTT: the last firing can land up to one RTO max (120 s) later.
    assert!(p.busy.high > Duration::from_secs(1000), "{:?}", p.busy);
    assert!(
        p.busy.high <= Duration::from_millis(1_044_600),
        "{:?}",
        p.busy
    );
    // A known RTT narrows it.
    let req = PlanRequest {
        rtt: Some(Duration::from_millis(1)),
        ..PlanRequest::default()
    };
    let p = evaluate(stack(Platform::Linux, None), &req, Source::User);
    assert!(p.busy.low >= Duration::from_millis(924_600), "{:?}", p.busy);
    assert!(p.busy.high < Duration::from_secs(940), "{:?}", p.busy);
    // With a user timeout: exactly it.
    let req = PlanRequest {
        user_timeout_ms: Some(6000),
        ..PlanRequest::default()
    };
    let p = evaluate(stack(Platform::Linux, None), &req, Source::User);
    assert_eq!(
        (p.busy.low, p.busy.high),
        (Duration::from_secs(6), Duration::from_secs(6))
    );
}

#[test]
fn busy_path_count_based_stacks() {
    // Windows: 5 retransmissions at RTO 300 ms: 0.3 x (1+2+4+8+16+32) = 18.9 s.
    let p = evaluate(
        stack(Platform::Windows, None),
        &PlanRequest::default(),
        Source::User,
    );
    assert_eq!(p.busy.low, Duration::from_millis(18_900));
    assert!(p.busy.high >= Duration::from_secs(300), "{:?}", p.busy);
    // BSD: 12 retransmissions, 13 firings, multiplier capped at 64; at RTO 1 s:
    // 1+2+4+8+16+32 + 7 x 64 = 511 s; at 0.2 s: 0.2 x 511 = 102.2 s.
    assert_eq!(
        busy_give_up(&MACOS, Duration::from_millis(200)),
        Duration::from_millis(102_200)
    );
    assert_eq!(
        busy_give_up(&MACOS, Duration::from_secs(1)),
        Duration::from_secs(511)
    );
}

#[test]
fn warnings_rfc1122_and_aggressive() {
    let req = |idle, intvl, cnt| PlanRequest {
        idle_s: Some(idle),
        intvl_s: Some(intvl),
        cnt: Some(cnt),
        ..PlanRequest::default()
    };
    let w = evaluate(stack(Platform::Linux, None), &req(5, 5, 1), Source::User).warnings;
    assert!(w.iter().any(|w| w.contains("RFC 1122 4.2.3.6")), "{w:?}");
    let w = evaluate(stack(Platform::Linux, None), &req(1, 1, 3), Source::User).warnings;
    assert!(w.iter().any(|w| w.starts_with("aggressive")), "{w:?}");
    let w = evaluate(stack(Platform::Linux, None), &req(30, 10, 3), Source::User).warnings;
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn idle_limit_warnings() {
    let req = PlanRequest {
        idle_s: Some(60),
        intvl_s: Some(10),
        cnt: Some(3),
        path: presets::combine(Some(Duration::from_secs(30)), &[]),
        ..PlanRequest::default()
    };
    let w = evaluate(stack(Platform::Linux, None), &req, Source::User).warnings;
    assert!(w.iter().any(|w| w.contains("idle limit is 30s")), "{w:?}");
    // A preset names itself and says what its box does at expiry.
    let req = PlanRequest {
        idle_s: Some(300),
        path: presets::combine(None, &[presets::preset("azure-lb").unwrap()]),
        ..req
    };
    let w = evaluate(stack(Platform::Linux, None), &req, Source::User).warnings;
    assert!(
        w.iter().any(|w| w.contains("idle limit is 240s (azure-lb)")
            && w.ends_with("the next send vanishes (silently dropped)")),
        "{w:?}"
    );
}

/// `--path aws-nlb --detect-within`: idle + intvl stay below 350 s, and the
/// defaults' warning (7200 s idle) goes away.
#[test]
fn preset_limits_the_recommendation() {
    let nlb = presets::combine(None, &[presets::preset("aws-nlb").unwrap()]);
    let plan = recommend(
        stack(Platform::Linux, None),
        Duration::from_secs(15 * 60),
        nlb.as_ref(),
        None,
    );
    assert!(plan.idle.value + plan.intvl.value < 350, "{plan:?}");
    assert!(
        !plan.warnings.iter().any(|w| w.contains("idle limit")),
        "{:?}",
        plan.warnings
    );
    let defaults = evaluate(
        stack(Platform::Linux, None),
        &PlanRequest {
            path: nlb,
            ..PlanRequest::default()
        },
        Source::User,
    );
    assert!(
        defaults
            .warnings
            .iter()
            .any(|w| w
                .contains("idle limit is 350s (aws-nlb) but keepalive traffic comes every 7200s")),
        "{:?}",
        defaults.warnings
    );
}

#[test]
fn seconds_text() {
    for (ms, want) in [
        (924_600, "924.6s"),
        (200, "0.2s"),
        (20_000, "20s"),
        (1_044_590, "1044.59s"),
    ] {
        assert_eq!(secs_text(Duration::from_millis(ms)), want);
    }
}

#[test]
fn idle_limit_ceiling_table() {
    let table = [
        (30.0, Some(27)),
        (10.0, Some(9)),
        (2.0, Some(1)),
        (1.5, Some(1)),
        (1.0, None),
    ];
    for (limit, want) in table {
        assert_eq!(
            idle_limit_ceiling(Duration::from_secs_f64(limit)),
            want,
            "{limit}"
        );
    }
}

/// Recommender rows: stack, within, idle limit, rtt -> idle, intvl, cnt, uto ms.
#[test]
fn recommender_table() {
    use Platform::*;
    type Row = (
        Platform,
        Option<Runtime>,
        u64,
        Option<u64>,
        Option<u64>,
        (u32, u32, u32, u32),
    );
    let rows: [Row; 10] = [
        (Linux, None, 60, None, None, (30, 10, 3, 60_000)),
        (Linux, None, 30, None, None, (15, 5, 3, 30_000)),
        (Linux, None, 3, None, None, (1, 1, 2, 3_000)),
        (Linux, None, 10, None, None, (7, 1, 3, 10_000)),
        // Idle limit 30 s (ceiling 27): probes 9 s apart and idle 18, so a lost
        // probe's retry (idle + intvl = 27 s) still comes before the path forgets.
        (Linux, None, 300, Some(30), None, (18, 9, 9, 99_000)),
        // RTT 2 s: probes at least 2 x (2 + 0.2) -> 5 s apart.
        (Linux, None, 20, None, Some(2000), (5, 5, 3, 20_000)),
        (Windows, None, 60, None, None, (30, 3, 10, 60_000)),
        (Macos, Some(Runtime::Node), 60, None, None, (50, 1, 10, 0)),
        (Linux, Some(Runtime::Curl), 60, None, None, (15, 15, 3, 0)),
        (
            Freebsd,
            Some(Runtime::Go),
            90,
            Some(20),
            None,
            (12, 6, 9, 0),
        ),
    ];
    for (p, r, within, limit, rtt, want) in rows {
        let plan = recommend(
            stack(p, r),
            Duration::from_secs(within),
            presets::combine(limit.map(Duration::from_secs), &[]).as_ref(),
            rtt.map(Duration::from_millis),
        );
        let got = (
            plan.idle.value,
            plan.intvl.value,
            plan.cnt.value,
            plan.user_timeout.value,
        );
        assert_eq!(got, want, "{p:?} {r:?} within {within}");
        if let Some(l) = limit {
            assert!(
                u64::from(plan.idle.value) + u64::from(plan.intvl.value) < l,
                "{p:?} {r:?}: a lost probe's retry comes after the idle limit"
            );
        }
        // The model, not the recommender, has the last word: it must agree.
        let detect = plan.predicted_detect.expect("keepalive on");
        assert!(
            detect <= Duration::from_secs(within),
            "{p:?} {r:?}: {detect:?}"
        );
        assert!(
            !plan
                .warnings
                .iter()
                .any(|w| w.starts_with("one unanswered") || w.contains("idle limit is")),
            "{p:?} {r:?}: {:?}",
            plan.warnings
        );
    }
}

#[test]
fn recommender_names_what_it_cannot_bound() {
    let plan = recommend(
        stack(Platform::Linux, Some(Runtime::Node)),
        Duration::from_secs(30),
        None,
        None,
    );
    assert!(
        plan.warnings.iter().any(|w| w.starts_with("the busy path")),
        "{:?}",
        plan.warnings
    );
    assert_eq!(plan.idle.source, Source::Recommended);
    assert_eq!(plan.intvl.source, Source::Fixed);
}
