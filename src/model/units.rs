//! How durations are written for people: the one set of formatters every message
//! and renderer uses (JSON numbers are `event::secs_value`).

use std::time::Duration;

/// "20s", "924.6s", "0.2s": seconds with at most three decimals, no trailing zeros.
pub fn secs_text(d: Duration) -> String {
    let text = format!("{:.3}", d.as_secs_f64());
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}s")
}

/// "4.012s": seconds with exactly three decimals, for measured times that line up.
pub fn secs_fixed(secs: f64) -> String {
    format!("{secs:.3}s")
}

/// "+4.012s": a time since the start of the run.
pub fn since_start(d: Duration) -> String {
    format!("+{}", secs_fixed(d.as_secs_f64()))
}

/// "1m 30s": a duration as the user would type it (humantime).
pub fn typed(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let table = [
            (Duration::from_secs(20), "20s"),
            (Duration::from_millis(924_600), "924.6s"),
            (Duration::from_millis(200), "0.2s"),
            (Duration::from_millis(7_500), "7.5s"),
            (Duration::ZERO, "0s"),
        ];
        for (d, want) in table {
            assert_eq!(secs_text(d), want);
        }
        assert_eq!(secs_fixed(4.0123), "4.012s");
        assert_eq!(since_start(Duration::from_millis(1500)), "+1.500s");
        assert_eq!(typed(Duration::from_secs(90)), "1m 30s");
    }
}
