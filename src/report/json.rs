//! JSON Lines renderer: one object per event, flushed per event, `end` last.

use std::io::Write;

use serde_json::{Map, Value, json};

use crate::model::event::{Event, EventKind, Sink};

pub struct Json {
    out: Box<dyn Write>,
}

impl Json {
    pub fn new(out: Box<dyn Write>) -> Json {
        Json { out }
    }
}

fn secs(d: std::time::Duration) -> Value {
    json!((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// The object for one event: the common fields, then the event's own.
pub fn to_value(event: &Event) -> Value {
    let mut obj = Map::new();
    obj.insert("event".into(), json!(event.kind.name()));
    obj.insert("t".into(), secs(event.at));
    obj.insert(
        "time".into(),
        json!(humantime::format_rfc3339_millis(event.wall).to_string()),
    );
    obj.insert("conn".into(), json!(event.conn));
    let fields = match &event.kind {
        EventKind::Listening { local, max_conns } => {
            json!({"local": local.to_string(), "max_conns": max_conns})
        }
        EventKind::Refused { peer, reason } => json!({"peer": peer.to_string(), "reason": reason}),
        EventKind::Connected { local, peer } => {
            json!({"local": local.to_string(), "peer": peer.to_string()})
        }
        EventKind::Config(facts) => serde_json::to_value(facts).unwrap_or(Value::Null),
        EventKind::Idle { since } => json!({"since": secs(*since)}),
        EventKind::ProbeWindow { due, dead_at } => {
            json!({"due": secs(*due), "dead_at": dead_at.map(secs)})
        }
        EventKind::Probe { n, due } => json!({"n": n, "due": secs(*due)}),
        EventKind::ProbeAcked { n } => json!({"n": n}),
        EventKind::Retransmit { n, unacked } => json!({"n": n, "unacked": unacked}),
        EventKind::Data {
            bytes_in,
            bytes_out,
        } => {
            json!({"bytes_in": bytes_in, "bytes_out": bytes_out})
        }
        EventKind::Heartbeat { seq } => json!({"seq": seq}),
        EventKind::HeartbeatReply { seq, rtt } => {
            json!({"seq": seq, "rtt_ms": (rtt.as_secs_f64() * 1e6).round() / 1e3})
        }
        EventKind::Down {
            n,
            outcome,
            errno,
            detect_s,
        } => json!({"n": n, "outcome": outcome, "errno": errno, "detect_s": detect_s}),
        EventKind::Up { n, downtime } => json!({"n": n, "downtime_s": secs(*downtime)}),
        EventKind::Warning { message } => json!({"message": message}),
        EventKind::End(facts) => serde_json::to_value(facts).unwrap_or(Value::Null),
        EventKind::Watched(facts) => serde_json::to_value(facts).unwrap_or(Value::Null),
    };
    if let Value::Object(fields) = fields {
        obj.extend(fields);
    }
    Value::Object(obj)
}

impl Sink for Json {
    fn emit(&mut self, event: &Event) -> std::io::Result<()> {
        let line = to_value(event).to_string();
        writeln!(self.out, "{line}")?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::{EndFacts, Outcome};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn end_event_has_the_contract_fields() {
        let event = Event {
            at: Duration::from_millis(4012),
            wall: UNIX_EPOCH + Duration::from_millis(1_795_000_000_123),
            conn: 1,
            kind: EventKind::End(EndFacts::new(
                Outcome::Timeout,
                Some("ETIMEDOUT".into()),
                "Connection timed out".into(),
                Some(4.012),
                Some(4.0),
            )),
        };
        let v = to_value(&event);
        assert_eq!(v["event"], "end");
        assert_eq!(v["t"], 4.012);
        assert_eq!(v["time"], "2026-11-18T11:06:40.123Z");
        assert_eq!(v["conn"], 1);
        assert_eq!(v["outcome"], "timeout");
        assert_eq!(v["errno"], "ETIMEDOUT");
        assert_eq!(v["exit_code"], 6);
        assert_eq!(v["detect_s"], 4.012);
        assert_eq!(v["predicted_detect_s"], 4.0);
    }
}
