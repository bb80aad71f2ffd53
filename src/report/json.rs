//! JSON Lines renderer: one object per event, flushed per event, `end` last.

use std::io::Write;

use serde::Serialize;
#[cfg(test)]
use serde_json::Value;

use crate::model::event::{Event, EventKind, Sink, secs_value};

pub struct Json {
    out: Box<dyn Write>,
}

impl Json {
    pub fn new(out: Box<dyn Write>) -> Json {
        Json { out }
    }
}

/// One JSON line: the fields every event has, then the event's own, in that
/// order, serialized straight into the output (no value tree per event).
#[derive(Serialize)]
struct Wire<'a> {
    event: &'static str,
    t: f64,
    time: Rfc3339,
    conn: u64,
    #[serde(flatten)]
    fields: &'a EventKind,
}

/// A wall-clock time serialized as [`rfc3339`] text, written without a String.
struct Rfc3339(std::time::SystemTime);

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match in_range(self.0) {
            Some(wall) => s.collect_str(&humantime::format_rfc3339_millis(wall)),
            None => s.collect_str(&rfc3339(self.0)),
        }
    }
}

fn wire(event: &Event) -> Wire<'_> {
    Wire {
        event: event.kind.name(),
        t: secs_value(event.at),
        time: Rfc3339(event.wall),
        conn: event.conn,
        fields: &event.kind,
    }
}

/// The object for one event (the tests read lines back through it).
#[cfg(test)]
pub fn to_value(event: &Event) -> Value {
    serde_json::to_value(wire(event)).unwrap_or(Value::Null)
}

/// 9999-12-31T23:59:59 in seconds since the epoch; its fraction still formats.
const LAST_S: u64 = 253_402_300_799;

/// The wall clock, when humantime can format it (1970..=9999).
fn in_range(wall: std::time::SystemTime) -> Option<std::time::SystemTime> {
    wall.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .filter(|since| since.as_secs() <= LAST_S)
        .map(|_| wall)
}

/// RFC 3339 with milliseconds; a wall clock outside 1970..=9999 (which humantime
/// cannot format) is written as the Unix epoch offset instead of panicking.
pub fn rfc3339(wall: std::time::SystemTime) -> String {
    match wall.duration_since(std::time::UNIX_EPOCH) {
        Ok(since) if since.as_secs() <= LAST_S => {
            humantime::format_rfc3339_millis(wall).to_string()
        }
        Ok(since) => format!("@{:.3}", since.as_secs_f64()),
        Err(before) => format!("@-{:.3}", before.duration().as_secs_f64()),
    }
}

impl Sink for Json {
    fn emit(&mut self, event: &Event) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, &wire(event))?;
        self.out.write_all(b"\n")?;
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

    /// Issue 12 #16: a wall clock before 1970 or after 9999 panicked in RFC 3339
    /// formatting; `time` is now the epoch offset there, in both renderers.
    #[test]
    fn wall_clock_out_of_rfc3339_range_never_panics() {
        let far = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        let before = UNIX_EPOCH - Duration::from_secs(1);
        for wall in [before, far] {
            let event = Event {
                at: Duration::from_millis(5),
                wall,
                conn: 1,
                kind: EventKind::ProbeAcked { n: 1 },
            };
            let v = to_value(&event);
            assert!(
                v["time"].as_str().is_some_and(|t| t.starts_with('@')),
                "{v}"
            );
            assert_eq!(v["t"], 0.005);
            let mut human = crate::report::Human::new(
                Box::new(Vec::new()),
                crate::config::Timestamps::Absolute,
                false,
            );
            crate::model::event::Sink::emit(&mut human, &event).expect("render");
        }
        let last = UNIX_EPOCH + Duration::from_millis(253_402_300_799_999);
        assert_eq!(rfc3339(last), "9999-12-31T23:59:59.999Z");
    }
}
