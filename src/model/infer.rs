//! What is known about a watched socket's settings, and from where: read exactly
//! through pidfd_getfd (when the watcher may), else inferred from the socket's
//! keepalive timer at the moments a reading proves a value, else the namespace's
//! sysctl defaults or an assumption, each labelled as such. With unknowns left, the
//! prediction is the range they allow.

pub use crate::model::settings::Source;
use std::time::Duration;

use crate::model::predict::Effective;

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

/// What is known about one watched socket's settings, each with its source.
///
/// Without pidfd_getfd the settings are inferred from the keepalive timer. Linux
/// arms it for last contact + idle and re-arms it only when it fires (not on every
/// packet): with `elapsed` since the last contact below idle it re-arms for
/// `idle - elapsed` (no probe), else it sends a probe and re-arms for intvl. So
/// (time since contact + time to expiry) equals idle only when the timer re-armed
/// after the last contact without a probe; after any later contact it is less, and
/// just after an answered probe it is about intvl. A first reading therefore
/// proves nothing; only a re-arm seen between two readings does: without a probe
/// and without contact it proves idle, with a probe it proves intvl (to the second
/// when readings are less than 1 s apart). cnt and the user timeout cannot be seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knowledge {
    pub keepalive: Option<bool>,
    pub keepalive_source: Source,
    pub idle_s: u32,
    pub idle_source: Source,
    pub intvl_s: u32,
    pub intvl_source: Source,
    pub cnt: u32,
    pub cnt_source: Source,
    pub user_timeout_ms: u32,
    pub user_timeout_source: Source,
    /// The kernel showed the settings changed since they were read (see
    /// [`contradiction`]) and they could not be read again: what was read may
    /// no longer hold.
    pub stale: bool,
}

/// Tolerance for "the timer moved later than time alone explains" (jiffies and
/// millisecond rounding on both readings).
const REARM_TOLERANCE_MS: u64 = 20;
/// The kernel's ranges (TCP_KEEPIDLE/INTVL 1..=32767 s, TCP_KEEPCNT 1..=127).
const MAX_KEEPALIVE_S: u32 = 32767;
const MAX_CNT: u32 = 127;

/// The prediction with unknowns left: the shortest and longest detection their
/// ranges allow (the longest assuming no user timeout longer than it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectRange {
    pub min: Duration,
    pub max: Duration,
}

impl Knowledge {
    /// Nothing read yet: the namespace's defaults, user timeout assumed off.
    pub fn from_defaults(idle_s: u32, intvl_s: u32, cnt: u32) -> Knowledge {
        Knowledge {
            keepalive: None,
            keepalive_source: Source::KernelTimer,
            idle_s,
            idle_source: Source::SystemDefault,
            intvl_s,
            intvl_source: Source::SystemDefault,
            cnt,
            cnt_source: Source::SystemDefault,
            user_timeout_ms: 0,
            user_timeout_source: Source::Assumed,
            stale: false,
        }
    }

    /// Everything read from the socket.
    pub fn read(e: Effective) -> Knowledge {
        Knowledge {
            keepalive: Some(e.keepalive),
            keepalive_source: Source::ReadBack,
            idle_s: e.idle_s,
            idle_source: Source::ReadBack,
            intvl_s: e.intvl_s,
            intvl_source: Source::ReadBack,
            cnt: e.cnt,
            cnt_source: Source::ReadBack,
            user_timeout_ms: e.user_timeout_ms,
            user_timeout_source: Source::ReadBack,
            stale: false,
        }
    }

    /// Whether every setting was read from the socket.
    pub fn is_read(&self) -> bool {
        self.keepalive_source == Source::ReadBack
    }

    /// The settings as the prediction uses them (unknowns at their default).
    pub fn effective(&self) -> Effective {
        Effective {
            keepalive: self.keepalive.unwrap_or(false),
            idle_s: self.idle_s,
            intvl_s: self.intvl_s,
            cnt: self.cnt,
            user_timeout_ms: self.user_timeout_ms,
        }
    }

    /// The names of the settings that are not known, for the explanation.
    pub fn unknowns(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (name, src) in [
            ("idle", self.idle_source),
            ("intvl", self.intvl_source),
            ("cnt", self.cnt_source),
            ("user timeout", self.user_timeout_source),
        ] {
            if !src.known() {
                out.push(name);
            }
        }
        out
    }

    /// With keepalive on and some setting unknown: the detection range the unknown
    /// settings allow (each over the kernel's whole range; a user timeout, unknown,
    /// makes the shortest one probe). `None` when all is known or keepalive is off.
    pub fn detect_range(&self) -> Option<DetectRange> {
        if self.keepalive != Some(true) || self.unknowns().is_empty() {
            return None;
        }
        let span = |v: u32, src: Source, max: u32| if src.known() { (v, v) } else { (1, max) };
        let (idle_lo, idle_hi) = span(self.idle_s, self.idle_source, MAX_KEEPALIVE_S);
        let (intvl_lo, intvl_hi) = span(self.intvl_s, self.intvl_source, MAX_KEEPALIVE_S);
        let (cnt_lo, cnt_hi) = match (self.cnt_source.known(), self.user_timeout_source.known()) {
            (true, true) => {
                let n = self
                    .effective()
                    .idle_schedule()
                    .map_or(self.cnt, |s| s.probes);
                (n, n)
            }
            (true, false) => (1, self.cnt),
            (false, _) => (1, MAX_CNT),
        };
        let secs = |idle: u32, intvl: u32, n: u32| {
            Duration::from_secs(u64::from(idle) + u64::from(intvl) * u64::from(n))
        };
        Some(DetectRange {
            min: secs(idle_lo, intvl_lo, cnt_lo),
            max: secs(idle_hi, intvl_hi, cnt_hi),
        })
    }

    /// The first reading of a socket: only whether keepalive is on (its timer is
    /// pending). `keepalive` is `None` when another timer hides the keepalive timer.
    /// The values wait for a reading that proves them (see the type's docs).
    pub fn first(&mut self, keepalive: Option<bool>) {
        if !self.is_read() {
            self.keepalive = keepalive;
        }
    }

    /// Tests only.
    #[cfg(test)]
    /// A later reading, `dt_ms` after `prev`. Returns whether anything changed.
    pub fn update(
        &mut self,
        keepalive: Option<bool>,
        prev: &TimerReading,
        r: &TimerReading,
        dt_ms: u64,
    ) -> bool {
        self.update_seen(keepalive, prev, r, dt_ms).0
    }

    /// As [`Knowledge::update`], and whether the readings prove that a probe went
    /// out and was answered between them (the timer re-armed for intvl and the
    /// contact moved without traffic): the caller reports that probe even while
    /// idle is not known yet.
    pub fn update_seen(
        &mut self,
        keepalive: Option<bool>,
        prev: &TimerReading,
        r: &TimerReading,
        dt_ms: u64,
    ) -> (bool, bool) {
        let before = *self;
        if self.is_read() {
            return (false, false);
        }
        let mut answered = false;
        if keepalive.is_some() {
            self.keepalive = keepalive;
        }
        if prev.keepalive_timer && r.keepalive_timer {
            // sock_diag shows an overdue timer (the wheel fires late) as 0 ms: time
            // alone explains that, so it is no re-arm.
            let rearmed = r.expires_ms > prev.expires_ms.saturating_sub(dt_ms) + REARM_TOLERANCE_MS;
            let traffic =
                r.bytes_received != prev.bytes_received || r.bytes_acked != prev.bytes_acked;
            let contact = r.since_contact_ms + REARM_TOLERANCE_MS < prev.since_contact_ms + dt_ms;
            if rearmed && !traffic {
                if r.probes > prev.probes || (contact && r.probes == 0) {
                    // A probe went out (and maybe was answered): armed for probe + intvl.
                    answered = contact && r.probes == 0;
                    self.intvl_s = r.expires_ms.div_ceil(1000).max(1) as u32;
                    self.intvl_source = Source::KernelTimer;
                } else if !contact && r.probes == 0 {
                    // Re-armed without a probe: armed for last contact + idle.
                    let idle = round_s(r.since_contact_ms.saturating_add(r.expires_ms));
                    if idle > 0 {
                        self.idle_s = idle;
                        self.idle_source = Source::KernelTimer;
                    }
                }
            }
        }
        (*self != before, answered)
    }
}

/// Why two readings of a socket's keepalive timer cannot come from the settings
/// held (read earlier), or `None` when they can. The kernel touches the keepalive
/// timer of an ESTABLISHED socket only when it fires and when an option is set
/// (SO_KEEPALIVE switched on, TCP_KEEPIDLE: both re-arm it for last contact + idle);
/// so, `tolerance_ms` aside (jiffies, millisecond rounding, the readings' own
/// uncertainty):
/// - a timer that moved while the previous one was still pending was re-armed by
///   an option set in between;
/// - a timer can never be set further ahead than the longest wait the settings
///   allow: intvl with probes out, else last contact + max(idle, intvl);
/// - a first probe goes out only once idle has passed since the last contact;
/// - more probes out than cnt means the kernel did not give up at cnt.
pub fn contradiction(
    held: &Effective,
    prev: &TimerReading,
    r: &TimerReading,
    dt_ms: u64,
    tolerance_ms: u64,
) -> Option<String> {
    if !held.keepalive || !r.keepalive_timer {
        return None;
    }
    let idle_ms = u64::from(held.idle_s) * 1000;
    let intvl_ms = u64::from(held.intvl_s) * 1000;
    if prev.keepalive_timer {
        // Where the previous reading's timer stands now.
        let old = prev.expires_ms.checked_sub(dt_ms);
        if let Some(old) = old.filter(|&o| o > tolerance_ms)
            && r.expires_ms.abs_diff(old) > tolerance_ms
        {
            return Some(format!(
                "the keepalive timer was re-armed {} before it was due: an option was set",
                secs_text_ms(old)
            ));
        }
    }
    let longest = if r.probes > 0 {
        intvl_ms
    } else {
        idle_ms.max(intvl_ms).saturating_sub(r.since_contact_ms)
    };
    if r.expires_ms > longest.saturating_add(tolerance_ms) {
        return Some(format!(
            "the keepalive timer is due in {}, later than idle {}s / intvl {}s allow",
            secs_text_ms(r.expires_ms),
            held.idle_s,
            held.intvl_s
        ));
    }
    if r.probes > prev.probes
        && prev.probes == 0
        && r.since_contact_ms.saturating_add(tolerance_ms) < idle_ms
    {
        return Some(format!(
            "a keepalive probe went out {} after the last contact, before idle {}s",
            secs_text_ms(r.since_contact_ms),
            held.idle_s
        ));
    }
    if u32::from(r.probes) > held.cnt {
        return Some(format!(
            "{} keepalive probes are out, more than cnt {}",
            r.probes, held.cnt
        ));
    }
    None
}

fn secs_text_ms(ms: u64) -> String {
    format!("{:.3}s", ms as f64 / 1000.0)
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

    fn held(idle_s: u32, intvl_s: u32, cnt: u32) -> Effective {
        Effective {
            keepalive: true,
            idle_s,
            intvl_s,
            cnt,
            user_timeout_ms: 0,
        }
    }

    #[test]
    fn a_timer_re_armed_before_it_was_due_contradicts_the_settings_held() {
        // socat 7200/75/9 read at join, 5 s idle; `tune --pid` sets 2/1/2: the
        // kernel re-arms the timer for last contact + 2 s, already past: due now.
        let h = held(7200, 75, 9);
        let why = contradiction(
            &h,
            &r(true, 7_195_000, 5_000, 0),
            &r(true, 0, 5_050, 0),
            50,
            250,
        )
        .expect("re-armed early");
        assert!(why.starts_with("the keepalive timer was re-armed"), "{why}");
        // Ticking down, or firing late (overdue reads 0): no contradiction.
        assert_eq!(
            contradiction(&h, &r(true, 5_000, 0, 0), &r(true, 4_950, 50, 0), 50, 250),
            None
        );
        assert_eq!(
            contradiction(
                &h,
                &r(true, 20, 7_199_980, 0),
                &r(true, 0, 7_200_030, 0),
                50,
                250
            ),
            None
        );
        // The held 3/1/3 of Redis, measured: re-armed at its own firing, nothing to say.
        let redis = held(3, 1, 3);
        assert_eq!(
            contradiction(
                &redis,
                &r(true, 184, 816, 0),
                &r(true, 1_968, 1_032, 0),
                216,
                250
            ),
            None
        );
        // A probe answered (re-armed for intvl at the firing): allowed.
        assert_eq!(
            contradiction(
                &redis,
                &r(true, 150, 2_850, 0),
                &r(true, 880, 120, 0),
                200,
                250
            ),
            None
        );
    }

    #[test]
    fn a_timer_too_far_ahead_or_probes_too_early_or_too_many_contradict() {
        // idle raised to 600 s: the timer stands beyond what 3/1/3 allow.
        let redis = held(3, 1, 3);
        let why = contradiction(
            &redis,
            &r(false, 0, 0, 0),
            &r(true, 599_000, 1_000, 0),
            200,
            250,
        )
        .expect("too far ahead");
        assert!(why.contains("later than idle 3s / intvl 1s allow"), "{why}");
        // A first probe 2 s after contact while idle 7200 is held.
        let why = contradiction(
            &held(7200, 75, 9),
            &r(false, 0, 1_800, 0),
            &r(true, 1_000, 2_000, 1),
            200,
            250,
        )
        .expect("probe before idle");
        assert!(why.contains("before idle 7200s"), "{why}");
        // A fourth probe out with cnt 3 held.
        let why = contradiction(
            &redis,
            &r(true, 50, 5_950, 3),
            &r(true, 900, 6_100, 4),
            150,
            250,
        )
        .expect("beyond cnt");
        assert!(why.contains("more than cnt 3"), "{why}");
        // Keepalive off held, or another timer pending: nothing to compare.
        assert_eq!(
            contradiction(
                &Effective {
                    keepalive: false,
                    ..redis
                },
                &r(true, 0, 0, 0),
                &r(true, 599_000, 1_000, 0),
                200,
                250
            ),
            None
        );
    }

    #[test]
    fn a_first_reading_proves_no_value() {
        // Just after an answered probe (Redis 3/1/3, measured): since contact 160 ms,
        // timer in 840 ms; the sum is intvl, not idle. Nothing is taken from it.
        let mut k = know();
        k.first(Some(true));
        assert_eq!(k.keepalive, Some(true));
        assert_eq!((k.idle_s, k.idle_source), (7200, Source::SystemDefault));
        assert_eq!(k.unknowns(), ["idle", "intvl", "cnt", "user timeout"]);
        let mut k = know();
        k.first(Some(false));
        assert_eq!(k.keepalive, Some(false));
        assert_eq!(k.detect_range(), None);
    }

    #[test]
    fn measured_redis_readings_prove_idle_then_nothing_flaps() {
        // ss every 220 ms on a Redis socket (idle 3, intvl 1): after the answered
        // probe the timer fired at +1 s, found 1 s of idle and re-armed for 2 s.
        let mut k = know();
        k.first(Some(true));
        assert!(k.update(
            Some(true),
            &r(true, 184, 816, 0),
            &r(true, 1_968, 1_032, 0),
            216
        ));
        assert_eq!((k.idle_s, k.idle_source), (3, Source::KernelTimer));
        // Ticking on: nothing changes, nothing flaps.
        assert!(!k.update(
            Some(true),
            &r(true, 1_968, 1_032, 0),
            &r(true, 1_748, 1_252, 0),
            220
        ));
        assert_eq!(k.idle_s, 3);
    }

    #[test]
    fn an_overdue_timer_is_not_a_rearm() {
        // Measured (Redis, as nobody): 172 ms left, then 200 ms later the timer is
        // overdue (the wheel fires it late) and reads 0: nothing is proven.
        let mut k = know();
        k.first(Some(true));
        assert!(!k.update(
            Some(true),
            &r(true, 172, 2_833, 0),
            &r(true, 0, 3_033, 0),
            200
        ));
        assert_eq!(k.idle_source, Source::SystemDefault);
    }

    #[test]
    fn read_settings_are_never_overridden() {
        let eff = Effective {
            keepalive: true,
            idle_s: 3,
            intvl_s: 1,
            cnt: 3,
            user_timeout_ms: 0,
        };
        let mut k = Knowledge::read(eff);
        assert!(k.is_read());
        assert!(!k.update(
            Some(true),
            &r(true, 100, 2_900, 0),
            &r(true, 4_880, 120, 0),
            200
        ));
        k.first(Some(false));
        assert_eq!(k.effective(), eff);
        assert_eq!(k.detect_range(), None);
        assert!(k.unknowns().is_empty());
    }

    #[test]
    fn unknowns_give_the_range_they_allow() {
        // idle and intvl proven by the timer, cnt and user timeout unknown.
        let mut k = know();
        k.first(Some(true));
        k.idle_s = 2;
        k.idle_source = Source::KernelTimer;
        k.intvl_s = 1;
        k.intvl_source = Source::KernelTimer;
        let range = k.detect_range().expect("unknowns left");
        assert_eq!(range.min, Duration::from_secs(3));
        assert_eq!(range.max, Duration::from_secs(2 + 127));
        // cnt read but the user timeout not: it can only shorten the schedule.
        k.cnt = 3;
        k.cnt_source = Source::ReadBack;
        let range = k.detect_range().expect("user timeout unknown");
        assert_eq!(
            (range.min, range.max),
            (Duration::from_secs(3), Duration::from_secs(5))
        );
    }

    #[test]
    fn rearm_without_contact_reads_idle_exactly() {
        let mut k = know();
        k.first(Some(true));
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
        k.first(Some(true));
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
        assert_eq!(k.idle_source, Source::SystemDefault);
        let mut k = know();
        let seen = k.update_seen(
            Some(true),
            &r(true, 150, 850, 0),
            &r(true, 4_880, 120, 0),
            200,
        );
        assert_eq!(seen, (true, true), "the answered probe is reported");
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
        k.first(Some(true));
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
