//! `plan`: what a dead peer costs on any platform and runtime, and which settings
//! bound it.
//!
//! This module owns the facts table (each stack's keepalive defaults, which knobs it
//! can set, where each fact comes from), the evaluation of effective settings into
//! an idle-path and a busy-path prediction, and the recommender behind
//! `--detect-within`. It is pure: no I/O, no clock, no host sysctl. The Linux idle
//! path is the very model `connect` and `listen` use (`model::predict::Effective::idle_schedule`),
//! so `plan --platform linux` and a real run cannot disagree.

mod paths;
pub mod presets;
mod recommend;
pub mod snippets;
mod stacks;
#[cfg(test)]
mod tests;

use paths::*;
pub use recommend::*;
pub use stacks::*;

use std::time::Duration;

pub use crate::model::units::secs_text;

/// Where one effective value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Given on the command line.
    User,
    /// Chosen by `--detect-within`.
    Recommended,
    /// The operating system's default.
    PlatformDefault,
    /// The runtime's default (the application can change it).
    RuntimeDefault,
    /// Set by the runtime, not changeable by the application.
    Fixed,
    /// The stack has no such knob.
    NotSettable,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::User => "user",
            Source::Recommended => "recommended",
            Source::PlatformDefault => "platform-default",
            Source::RuntimeDefault => "runtime-default",
            Source::Fixed => "fixed",
            Source::NotSettable => "not-settable",
        }
    }
}

/// One effective value with its provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knob {
    pub value: u32,
    pub source: Source,
    /// Which option or default this is, for people ("net.ipv4.tcp_keepalive_time").
    pub note: String,
}

/// What the user asked for; `None` leaves the stack's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanRequest {
    /// `--no-keepalive`: the application leaves keepalive off.
    pub no_keepalive: bool,
    pub idle_s: Option<u32>,
    pub intvl_s: Option<u32>,
    pub cnt: Option<u32>,
    pub user_timeout_ms: Option<u32>,
    /// `--idle-limit` and `--path`: the path forgets an idle flow after this long
    /// (the shortest of them).
    pub path: Option<presets::PathLimit>,
    /// `--rtt`: narrows the busy-path range.
    pub rtt: Option<Duration>,
}

/// The busy path: data in flight, peer silent. From the first unacknowledged send.
#[derive(Debug, Clone, PartialEq)]
pub struct BusyPrediction {
    pub low: Duration,
    pub high: Duration,
    pub explain: String,
}

/// The evaluated plan: effective settings, predictions, and what to watch out for.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub stack: Stack,
    pub keepalive: bool,
    pub keepalive_note: String,
    pub idle: Knob,
    pub intvl: Knob,
    pub cnt: Knob,
    /// Milliseconds; 0 = off.
    pub user_timeout: Knob,
    /// From the last contact to the detection of a dead idle peer; `None` = never.
    pub predicted_detect: Option<Duration>,
    pub predicted_probes: Option<u32>,
    pub explain: String,
    pub busy: BusyPrediction,
    /// Knobs this stack cannot set, named.
    pub not_settable: Vec<String>,
    pub warnings: Vec<String>,
    /// The path's idle limit, its drop mode and the presets it came from.
    pub path: Option<presets::PathLimit>,
    /// Keepalive that beats the path's limit even when one probe is lost (the
    /// rule `idle-limit` recommends by); `None` without a limit, or when it is too
    /// short for whole-second keepalive.
    pub path_keepalive: Option<crate::model::predict::Effective>,
    pub rtt: Option<Duration>,
    /// `--detect-within`, when the settings were recommended.
    pub detect_within: Option<Duration>,
}

fn knob(value: u32, source: Source, note: impl Into<String>) -> Knob {
    Knob {
        value,
        source,
        note: note.into(),
    }
}

/// The effective value of idle, intvl or cnt: user, runtime, then platform.
fn resolve(
    given: Option<u32>,
    given_source: Source,
    runtime: Option<(RuntimeValue, &str)>,
    platform_default: u32,
    platform_note: &str,
    same_as_idle: Option<&Knob>,
) -> Knob {
    if let Some((RuntimeValue::Fixed(v), title)) = runtime
        && given.is_none()
    {
        return knob(v, Source::Fixed, format!("set by {title}, not settable"));
    }
    if let (Some((RuntimeValue::SameAsIdle, title)), Some(idle)) = (runtime, same_as_idle) {
        return knob(
            idle.value,
            idle.source,
            format!("{title} sets it with idle (one option)"),
        );
    }
    if let Some(v) = given {
        let note = match given_source {
            Source::Recommended => "recommended",
            _ => "given",
        };
        return knob(v, given_source, note);
    }
    match runtime {
        Some((RuntimeValue::Default(v), title)) => {
            knob(v, Source::RuntimeDefault, format!("{title} default"))
        }
        _ => knob(platform_default, Source::PlatformDefault, platform_note),
    }
}

/// Evaluates a request on a stack. `given_source` marks user-given values as such
/// (or as recommended, when the recommender calls this).
pub fn evaluate(stack: Stack, req: &PlanRequest, given_source: Source) -> Plan {
    let pf = stack.platform.facts();
    let rf = stack.runtime.map(Runtime::facts);
    // Node.js: libuv sets interval 1 s and count 10 only together with a delay;
    // setKeepAlive(true) alone leaves all three to the OS (tests/plan.rs, Node v20).
    let node_bare = stack.runtime == Some(Runtime::Node) && req.idle_s.is_none();
    let rt = |pick: fn(&RuntimeFacts) -> RuntimeValue| {
        rf.map(|f| match pick(f) {
            RuntimeValue::Fixed(_) if node_bare => (RuntimeValue::Os, f.title),
            v => (v, f.title),
        })
    };
    let os = stack.platform.title();

    let idle = resolve(
        req.idle_s,
        given_source,
        rt(|f| f.idle),
        pf.idle_s,
        &format!("{os} default ({})", pf.idle_option),
        None,
    );
    let intvl = resolve(
        req.intvl_s,
        given_source,
        rt(|f| f.intvl),
        pf.intvl_s,
        &format!("{os} default ({})", pf.intvl_option),
        Some(&idle),
    );
    let mut cnt = resolve(
        req.cnt,
        given_source,
        rt(|f| f.cnt),
        pf.cnt,
        &format!("{os} default ({})", pf.cnt_option),
        None,
    );
    // A value a runtime fixes, given anyway: only newer releases take it.
    let mut intvl = intvl;
    if node_bare {
        for k in [&mut intvl, &mut cnt] {
            k.note = format!(
                "{}: setKeepAlive(true) without a delay leaves it (a delay makes it 1 s / 10)",
                k.note
            );
        }
    }
    if let Some(f) = rf {
        for (k, v) in [(&mut intvl, f.intvl), (&mut cnt, f.cnt)] {
            if let RuntimeValue::Fixed(n) = v
                && k.source == given_source
            {
                k.note = format!("{}; {}", k.note, fixed_but_given(f, n));
            }
        }
    }
    if stack.platform == Platform::Windows && cnt.source == Source::PlatformDefault {
        cnt.note = format!("{os} default: {}", pf.cnt_note);
    }

    let mut not_settable = Vec::new();
    let uto_knob = pf.user_timeout;
    let runtime_uto = rf.map_or(RuntimeUserTimeout::Api, |f| f.user_timeout);
    let user_timeout = match (uto_knob, runtime_uto) {
        (None, _) => {
            not_settable.push(format!(
                "user timeout: {os} has no TCP_USER_TIMEOUT equivalent"
            ));
            knob(0, Source::NotSettable, format!("{os} has no such option"))
        }
        (Some(_), RuntimeUserTimeout::None) => {
            let title = rf.map_or("", |f| f.title);
            not_settable.push(format!("user timeout: {title} has no way to set it"));
            knob(0, Source::NotSettable, format!("{title} cannot set it"))
        }
        (Some(k), _) => match req.user_timeout_ms {
            Some(ms) => knob(
                ms,
                given_source,
                format!(
                    "{} ({})",
                    k.option,
                    if given_source == Source::Recommended {
                        "recommended"
                    } else {
                        "given"
                    }
                ),
            ),
            None => knob(
                0,
                Source::PlatformDefault,
                format!("{} off by default", k.option),
            ),
        },
    };
    if let Some(f) = rf {
        for (what, v, k) in [("interval", f.intvl, &intvl), ("count", f.cnt, &cnt)] {
            if let RuntimeValue::Fixed(n) = v
                && k.source == Source::Fixed
            {
                not_settable.push(format!("{what}: fixed at {n} by {}", f.title));
            }
        }
        if f.intvl == RuntimeValue::SameAsIdle {
            not_settable.push(format!(
                "interval: {} sets it equal to idle (--keepalive-time)",
                f.title
            ));
        }
    } else if stack.platform == Platform::Windows && req.cnt.is_none() {
        not_settable.push(format!("count: {}", pf.cnt_note));
    }

    let default_on = rf.map_or(pf.keepalive_default, |f| f.keepalive_default)
        || (stack.platform == Platform::Freebsd);
    let keepalive = !req.no_keepalive;
    let keepalive_note = match (keepalive, default_on) {
        (true, true) => "on by default on this stack".to_string(),
        (true, false) => format!(
            "off by default on this stack: the application must enable it ({})",
            rf.map_or("setsockopt SO_KEEPALIVE 1", |f| f.enable)
        ),
        (false, true) => "turned off by the application (on by default here)".to_string(),
        (false, false) => "off (the default on this stack)".to_string(),
    };

    let mut warnings = Vec::new();
    let (predicted_detect, predicted_probes, explain) = idle_path(
        stack.platform,
        keepalive,
        &idle,
        &intvl,
        &cnt,
        &user_timeout,
    );
    if stack.platform == Platform::Linux {
        // The same warnings a live run prints for these settings.
        let e = linux_effective(keepalive, &idle, &intvl, &cnt, &user_timeout);
        // "cnt is ignored" is noise when the user timeout ends probing exactly
        // where cnt would (the recommender's user timeout = idle + cnt x intvl).
        let agrees = predicted_probes == Some(cnt.value);
        warnings.extend(
            e.facts(15)
                .warnings
                .into_iter()
                .filter(|w| !(agrees && w.starts_with("cnt "))),
        );
    } else if !keepalive {
        warnings.push(
            "keepalive is off: a dead idle peer is never detected, the connection stays \
             ESTABLISHED until something is sent"
                .to_string(),
        );
    }
    if let Some(probes) = predicted_probes {
        if probes == 1 {
            warnings.push(format!(
                "one unanswered probe ends the connection: RFC 1122 4.2.3.6 says a single \
                 lost probe must not be taken as a dead peer (use cnt >= 2{})",
                if user_timeout.value != 0 && stack.platform == Platform::Linux {
                    ", or a user timeout of at least idle + 2 x intvl"
                } else {
                    ""
                }
            ));
        } else {
            let window = (probes - 1).saturating_mul(intvl.value);
            if window < 5 {
                warnings.push(format!(
                    "aggressive: a healthy peer is declared dead when its answers are lost for \
                     {window}s ({} x intvl {}s); settings this tight have caused false \
                     disconnects under load (RFC 1122 4.2.3.6: probes may be lost)",
                    probes - 1,
                    intvl.value
                ));
            }
        }
    }
    if let Some(path) = &req.path {
        warnings.extend(idle_limit_warning(keepalive, &idle, &intvl, path));
    }
    let busy = busy_path(pf, user_timeout.value, req.rtt);
    if user_timeout.value != 0 {
        warnings.extend(user_timeout_warning(pf, user_timeout.value, req.rtt));
    }

    Plan {
        stack,
        keepalive,
        keepalive_note,
        idle,
        intvl,
        cnt,
        user_timeout,
        predicted_detect,
        predicted_probes,
        explain,
        busy,
        not_settable,
        warnings,
        path: req.path.clone(),
        path_keepalive: req
            .path
            .as_ref()
            .and_then(|p| crate::model::idle_limit::recommend(p.limit)),
        rtt: req.rtt,
        detect_within: None,
    }
}

/// Why a value a runtime fixes can still be given.
fn fixed_but_given(f: &RuntimeFacts, n: u32) -> String {
    match f.title {
        "Node.js" => {
            format!("only Node.js releases with nodejs/node#63825 take it (older ones use {n})")
        }
        title => format!("{title} normally fixes it at {n}"),
    }
}
