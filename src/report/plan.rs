//! Renders a `plan`: human text or one JSON object. Render only: every figure
//! comes from `model::plan`.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::model::plan::secs_text;
use crate::model::plan::snippets::Snippet;
use crate::model::plan::{Knob, Plan};

fn knob_json(k: &Knob) -> Value {
    json!({ "value": k.value, "source": k.source.name(), "note": k.note })
}

/// One JSON object; the settings and predictions use the `config` event's names.
pub fn json(plan: &Plan, code: &[Snippet]) -> String {
    let v = json!({
        "event": "plan",
        "platform": plan.stack.platform.name(),
        "runtime": plan.stack.runtime.map(|r| r.name()),
        "keepalive": plan.keepalive,
        "idle_s": plan.idle.value,
        "intvl_s": plan.intvl.value,
        "cnt": plan.cnt.value,
        "user_timeout_ms": plan.user_timeout.value,
        "predicted_detect_s": plan.predicted_detect.map(|d| d.as_secs_f64()),
        "predicted_probes": plan.predicted_probes,
        "predicted_busy_detect_s": plan.busy.low.as_secs_f64(),
        "predicted_busy_detect_max_s": plan.busy.high.as_secs_f64(),
        "explain": plan.explain,
        "busy_explain": plan.busy.explain,
        "sources": {
            "keepalive": { "note": plan.keepalive_note },
            "idle_s": knob_json(&plan.idle),
            "intvl_s": knob_json(&plan.intvl),
            "cnt": knob_json(&plan.cnt),
            "user_timeout_ms": knob_json(&plan.user_timeout),
        },
        "facts": {
            "platform": plan.stack.platform.facts().source,
            "runtime": plan.stack.runtime.map(|r| r.facts().source),
            "runtime_note": plan.stack.runtime.map(|r| r.facts().note),
        },
        "not_settable": plan.not_settable,
        "warnings": plan.warnings,
        "detect_within_s": plan.detect_within.map(|d| d.as_secs_f64()),
        "idle_limit_s": plan.idle_limit.map(|d| d.as_secs_f64()),
        "rtt_s": plan.rtt.map(|d| d.as_secs_f64()),
        "code": code.iter().map(|s| json!({
            "lang": s.lang.name(),
            "title": s.lang.title(),
            "code": s.code,
        })).collect::<Vec<_>>(),
    });
    format!("{v}\n")
}

fn row(out: &mut String, name: &str, value: String, k: Option<&Knob>, note: &str) {
    let (source, note) = match k {
        Some(k) => (k.source.name(), k.note.as_str()),
        None => ("", note),
    };
    let _ = writeln!(out, "  {name:<13} {value:<8} {source:<16} {note}");
}

/// Human text: the effective settings with their provenance, both predictions,
/// what cannot be set, the warnings, then the code.
pub fn human(plan: &Plan, code: &[Snippet]) -> String {
    let mut out = String::new();
    let what = match plan.detect_within {
        Some(d) => format!(
            "recommended for {} (detect a dead idle peer within {}{})",
            plan.stack.title(),
            secs_text(d),
            plan.idle_limit
                .map(|l| format!(", path idle limit {}", secs_text(l)))
                .unwrap_or_default()
        ),
        None => plan.stack.title().to_string(),
    };
    let _ = writeln!(out, "plan: {what}");
    row(
        &mut out,
        "keepalive",
        if plan.keepalive { "on" } else { "off" }.to_string(),
        None,
        &plan.keepalive_note,
    );
    row(
        &mut out,
        "idle",
        format!("{}s", plan.idle.value),
        Some(&plan.idle),
        "",
    );
    row(
        &mut out,
        "intvl",
        format!("{}s", plan.intvl.value),
        Some(&plan.intvl),
        "",
    );
    row(
        &mut out,
        "cnt",
        plan.cnt.value.to_string(),
        Some(&plan.cnt),
        "",
    );
    let uto = match plan.user_timeout.value {
        0 => "off".to_string(),
        ms => format!("{ms}ms"),
    };
    row(&mut out, "user timeout", uto, Some(&plan.user_timeout), "");
    let _ = writeln!(out, "idle peer: {}", plan.explain);
    let range = if plan.busy.low == plan.busy.high {
        secs_text(plan.busy.low)
    } else {
        format!(
            "{}..{}",
            secs_text(plan.busy.low),
            secs_text(plan.busy.high)
        )
    };
    let _ = writeln!(
        out,
        "busy peer: dead peer detected {range} after the first unacknowledged send ({})",
        plan.busy.explain
    );
    for n in &plan.not_settable {
        let _ = writeln!(out, "not settable: {n}");
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if let Some(r) = plan.stack.runtime.map(|r| r.facts()) {
        let _ = writeln!(out, "{}: {} [{}]", r.title, r.note, r.source);
    }
    let _ = writeln!(out, "sources: {}", plan.stack.platform.facts().source);
    for s in code {
        let _ = writeln!(out, "\n--- {} ---", s.lang.title());
        out.push_str(&s.code);
    }
    out
}
