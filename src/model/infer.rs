//! What can be known from outside about a watched socket's keepalive settings:
//! the socket's keepalive timer tells idle and intvl at the moments the reading is
//! exact; everything else is the namespace's sysctl defaults, labelled as such.

pub use crate::model::settings::Source;

/// A reading of a socket's keepalive timer, as one dump shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerReading {
    /// Whether the keepalive timer (not another one) is the pending timer.
    pub keepalive_timer: bool,
    pub expires_ms: u64,
    pub since_contact_ms: u64,
    pub probes: u8,
    pub bytes_received: u64,
    pub bytes_acked: u64,
}

/// What is known about one watched socket's keepalive settings.
///
/// Another process's TCP_KEEPIDLE cannot be read, but the keepalive timer can: the
/// kernel arms it for last contact + idle, and after a probe for probe + intvl. A
/// reading of (time since contact + time to expiry) is therefore exactly `idle`
/// right after the timer re-armed without a probe, and `ceil(expiry)` is exactly
/// `intvl` right after a probe (when dumps are less than 1 s apart). At other times
/// the sum is only a lower bound (contact since the timer was armed), so only those
/// two moments, plus a first reading clearly off the system default, change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knowledge {
    pub keepalive: Option<bool>,
    pub idle_s: u32,
    pub idle_source: Source,
    pub intvl_s: u32,
    pub intvl_source: Source,
    pub cnt: u32,
}

/// Tolerance for "the timer moved later than time alone explains" (jiffies and
/// millisecond rounding on both readings).
const REARM_TOLERANCE_MS: u64 = 20;

impl Knowledge {
    pub fn from_defaults(idle_s: u32, intvl_s: u32, cnt: u32) -> Knowledge {
        Knowledge {
            keepalive: None,
            idle_s,
            idle_source: Source::SystemDefault,
            intvl_s,
            intvl_source: Source::SystemDefault,
            cnt,
        }
    }

    /// The first reading of a socket. `keepalive` is `None` when another timer
    /// hides the keepalive timer.
    pub fn first(&mut self, keepalive: Option<bool>, r: &TimerReading) {
        self.keepalive = keepalive;
        if r.keepalive_timer && r.probes == 0 {
            let idle = round_s(r.since_contact_ms + r.expires_ms);
            // Within a second of the default: the default, as far as can be told.
            if idle.abs_diff(self.idle_s) > 1 && idle > 0 {
                self.idle_s = idle;
                self.idle_source = Source::KernelTimer;
            }
        }
    }

    /// A later reading, `dt_ms` after `prev`. Returns whether anything changed.
    pub fn update(
        &mut self,
        keepalive: Option<bool>,
        prev: &TimerReading,
        r: &TimerReading,
        dt_ms: u64,
    ) -> bool {
        let before = *self;
        if keepalive.is_some() {
            self.keepalive = keepalive;
        }
        if prev.keepalive_timer && r.keepalive_timer {
            let rearmed = r.expires_ms + dt_ms > prev.expires_ms + REARM_TOLERANCE_MS;
            let traffic =
                r.bytes_received != prev.bytes_received || r.bytes_acked != prev.bytes_acked;
            let contact = r.since_contact_ms + REARM_TOLERANCE_MS < prev.since_contact_ms + dt_ms;
            if rearmed && !traffic {
                if r.probes > prev.probes || (contact && r.probes == 0) {
                    // A probe went out (and maybe was answered): armed for probe + intvl.
                    self.intvl_s = r.expires_ms.div_ceil(1000).max(1) as u32;
                    self.intvl_source = Source::KernelTimer;
                } else if !contact && r.probes == 0 {
                    // Re-armed without a probe: armed for last contact + idle.
                    let idle = round_s(r.since_contact_ms + r.expires_ms);
                    if idle > 0 {
                        self.idle_s = idle;
                        self.idle_source = Source::KernelTimer;
                    }
                }
            }
        }
        *self != before
    }
}

fn round_s(ms: u64) -> u32 {
    ((ms + 500) / 1000).min(u32::MAX as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(
        keepalive_timer: bool,
        expires_ms: u64,
        since_contact_ms: u64,
        probes: u8,
    ) -> TimerReading {
        TimerReading {
            keepalive_timer,
            expires_ms,
            since_contact_ms,
            probes,
            bytes_received: 0,
            bytes_acked: 0,
        }
    }

    fn know() -> Knowledge {
        Knowledge::from_defaults(7200, 75, 9)
    }

    #[test]
    fn first_reading_off_the_default_is_the_apps_idle() {
        let mut k = know();
        k.first(Some(true), &r(true, 600, 400, 0));
        assert_eq!((k.idle_s, k.idle_source), (1, Source::KernelTimer));
        assert_eq!(k.intvl_source, Source::SystemDefault);
    }

    #[test]
    fn first_reading_near_the_default_keeps_the_default() {
        let mut k = know();
        k.first(Some(true), &r(true, 7_000_000, 199_500, 0));
        assert_eq!((k.idle_s, k.idle_source), (7200, Source::SystemDefault));
        let mut k = know();
        k.first(Some(false), &r(false, 0, 5000, 0));
        assert_eq!(k.keepalive, Some(false));
        assert_eq!(k.idle_source, Source::SystemDefault);
    }

    #[test]
    fn rearm_without_contact_reads_idle_exactly() {
        let mut k = know();
        k.first(Some(true), &r(true, 100, 7_199_900, 0));
        // 200 ms later the timer fired, found the connection not idle long enough
        // (a contact at 7_100 s) and re-armed for last contact + idle.
        let changed = k.update(
            Some(true),
            &r(true, 100, 4000, 0),
            &r(true, 2_800, 4200, 0),
            200,
        );
        assert!(changed);
        assert_eq!((k.idle_s, k.idle_source), (7, Source::KernelTimer));
    }

    #[test]
    fn answered_probe_reads_the_interval() {
        let mut k = know();
        k.first(Some(true), &r(true, 150, 850, 0));
        assert_eq!(k.idle_s, 1);
        // The probe went out at +1.0 s and was answered at once: contact moved, timer
        // re-armed for probe + intvl (5 s), 120 ms before this dump.
        let changed = k.update(
            Some(true),
            &r(true, 150, 850, 0),
            &r(true, 4_880, 120, 0),
            200,
        );
        assert!(changed);
        assert_eq!((k.intvl_s, k.intvl_source), (5, Source::KernelTimer));
        assert_eq!(k.idle_s, 1);
    }

    #[test]
    fn unanswered_probe_reads_the_interval() {
        let mut k = know();
        let changed = k.update(
            Some(true),
            &r(true, 50, 9_950, 0),
            &r(true, 2_900, 10_150, 1),
            200,
        );
        assert!(changed);
        assert_eq!(k.intvl_s, 3);
    }

    #[test]
    fn a_ticking_timer_changes_nothing() {
        let mut k = know();
        k.first(Some(true), &r(true, 5_000, 1000, 0));
        assert!(!k.update(
            Some(true),
            &r(true, 5_000, 1000, 0),
            &r(true, 4_800, 1200, 0),
            200
        ));
        // A retransmit timer hides keepalive: what was known stays.
        assert!(!k.update(None, &r(true, 4_800, 1200, 0), &r(false, 200, 0, 0), 200));
        assert_eq!(k.keepalive, Some(true));
    }
}
