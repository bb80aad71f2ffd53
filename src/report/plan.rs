//! Renders a `plan`: human text or one JSON object. Render only: every figure
//! comes from `model::plan`.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::model::plan::presets::{PathLimit, PathPreset, minutes_text};
use crate::model::plan::secs_text;
use crate::model::plan::snippets::Snippet;
use crate::model::plan::{Knob, Plan};
use crate::model::predict::Effective;

fn preset_json(p: &PathPreset) -> Value {
    json!({
        "name": p.name,
        "title": p.title,
        "idle_limit_s": p.idle_limit.as_secs_f64(),
        "range": p.range,
        "drop_mode": p.drop_mode.map(|m| m.name()),
        "source": p.source,
        "note": p.note,
    })
}

/// `plan --path list --json`: one object per line, shortest timeout first.
pub fn presets_json(presets: &[PathPreset]) -> String {
    presets
        .iter()
        .map(|p| format!("{}\n", preset_json(p)))
        .collect()
}

fn preset_line(p: &PathPreset) -> String {
    format!(
        "{} ({}): idle timeout {}{}, at expiry: {}; {} [source: {}]",
        p.name,
        p.title,
        minutes_text(p.idle_limit),
        p.range
            .map(|r| format!(" (configurable {r})"))
            .unwrap_or_default(),
        p.drop_mode.map_or("not stated", |m| m.name()),
        p.note,
        p.source
    )
}

/// `plan --path list`: one line per preset, shortest timeout first.
pub fn presets_human(presets: &[PathPreset]) -> String {
    presets
        .iter()
        .map(|p| format!("{}\n", preset_line(p)))
        .collect()
}

fn path_human(out: &mut String, path: &PathLimit, beats: Option<&Effective>) {
    let _ = writeln!(
        out,
        "path idle limit: {}{}{}",
        path.label(),
        match (path.by, path.drop_mode) {
            (_, Some(m)) => format!(", at expiry: {}", m.name()),
            (Some(_), None) => ", at expiry: not stated by its source".to_string(),
            (None, None) => " (--idle-limit), at expiry: unknown".to_string(),
        },
        beats.map_or(
            "; too short for whole-second keepalive: use application heartbeats".to_string(),
            |e| format!(
                "; keepalive --idle {} --intvl {} --cnt {} beats it even when a probe is lost",
                e.idle_s, e.intvl_s, e.cnt
            )
        )
    );
    for p in &path.presets {
        let _ = writeln!(out, "path: {}", preset_line(p));
    }
}

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
        "idle_limit_s": plan.path.as_ref().map(|p| p.limit.as_secs_f64()),
        "drop_mode": plan.path.as_ref().and_then(|p| p.drop_mode).map(|m| m.name()),
        "idle_limit_by": plan.path.as_ref().map(|p| p.by.map_or("--idle-limit", |b| b.name)),
        "path_keepalive": plan.path_keepalive.map(|e| json!({
            "idle_s": e.idle_s, "intvl_s": e.intvl_s, "cnt": e.cnt,
        })),
        "paths": plan.path.as_ref().map_or(Vec::new(), |p| p.presets.iter().map(|p| preset_json(p)).collect()),
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
            plan.path
                .as_ref()
                .map(|l| format!(", path idle limit {}", l.label()))
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
    if let Some(path) = &plan.path {
        path_human(&mut out, path, plan.path_keepalive.as_ref());
    }
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
