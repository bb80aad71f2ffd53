//! How late the kernel's timer wheel may fire a TCP timer.
//!
//! Linux keeps TCP's keepalive, retransmit and zero-window-probe timers in the timer
//! wheel (kernel/time/timer.c): LVL_DEPTH levels of 64 buckets, level `n` with a
//! granularity of 8^n jiffies, taking timers whose delta is below
//! `LVL_START(n + 1) = 63 << 3n` jiffies. `calc_index` rounds the expiry *up* to the
//! next bucket boundary of its level, so a timer fires between 0 and one granularity
//! late, plus up to one jiffy because TCP arms in whole jiffies from mid-tick. At
//! HZ=250 that is 36 ms for 0.25-2 s timers, 260 ms for 2-16 s, 2.05 s for 16-129 s
//! and 131 s for the 7200 s default idle (measured here: docs/prediction.md "How the
//! prediction is made"). Lateness below this bound is normal, never a fault.

use std::time::Duration;

/// Levels of the wheel at HZ > 100 (LVL_DEPTH 9); HZ = 100 has 8, the longer
/// levels only matter for timers of days.
const LVL_DEPTH: u32 = 9;
/// The HZ values Linux is built with; when this kernel's is unknown, the bound is
/// the largest over them, so the tool never calls a normal firing late.
const COMMON_HZ: [u32; 4] = [100, 250, 300, 1000];

/// The timer wheel of this kernel: its tick rate when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wheel {
    /// CONFIG_HZ, when it could be read (`None`: assumed, see [`Wheel::late_bound`]).
    pub hz: Option<u32>,
}

impl Wheel {
    pub fn new(hz: Option<u32>) -> Wheel {
        Wheel {
            hz: hz.filter(|&h| h > 0),
        }
    }

    /// The most a timer armed `armed` ahead can fire after its expiry: its level's
    /// granularity plus one jiffy. With HZ unknown, the largest over common HZ.
    pub fn late_bound(&self, armed: Duration) -> Duration {
        match self.hz {
            Some(hz) => late_bound_at(armed, hz),
            None => COMMON_HZ
                .iter()
                .map(|&hz| late_bound_at(armed, hz))
                .max()
                .unwrap_or_default(),
        }
    }

    /// One jiffy, when HZ is known.
    pub fn jiffy(&self) -> Option<Duration> {
        self.hz
            .map(|hz| Duration::from_nanos(1_000_000_000 / hz as u64))
    }

    /// The granularity (jiffies) of the level a timer armed `armed` ahead lands in,
    /// when HZ is known: the firing of such a timer is at a multiple of it.
    pub fn granularity(&self, armed: Duration) -> Option<u64> {
        let jiffy = self.jiffy()?.as_nanos() as u64;
        let delta = (armed.as_nanos() as u64).div_ceil(jiffy);
        Some(level_granularity(delta.saturating_sub(1)))
    }

    /// How long after its arming a timer of `armed` fires when it was armed from
    /// the callback of a timer whose firing was a multiple of `aligned` jiffies
    /// (the keepalive timer re-arms itself so, `inet_csk_reset_keepalive_timer`
    /// with the callback's `jiffies`): `calc_index` rounds the expiry up past the
    /// next multiple of its level's granularity `g`, and with `g` dividing the
    /// arming jiffy that is exactly `g * (armed_jiffies / g + 1)` jiffies, whatever
    /// the absolute jiffies. The level is chosen from `delta - 1`: the callback runs
    /// with the wheel's clock one ahead of the firing (`__run_timers`). `None` when
    /// HZ is unknown or `g` does not divide `aligned` (a longer level: the rounding
    /// depends on jiffies this process cannot see).
    pub fn rearmed_after(&self, armed: Duration, aligned: u64) -> Option<Duration> {
        let jiffy = self.jiffy()?;
        let delta = (armed.as_nanos() as u64).div_ceil(jiffy.as_nanos() as u64);
        let g = level_granularity(delta.saturating_sub(1));
        if aligned == 0 || !aligned.is_multiple_of(g) {
            return None;
        }
        let jiffies = g.saturating_mul(delta / g + 1);
        Some(Duration::from_nanos(
            jiffies.saturating_mul(jiffy.as_nanos() as u64),
        ))
    }

    /// "HZ=250" or "HZ assumed (100..1000)", for explanations.
    pub fn describe(&self) -> String {
        match self.hz {
            Some(hz) => format!("HZ={hz}"),
            None => "HZ unknown, assumed the worst of 100/250/300/1000".to_string(),
        }
    }
}

/// The granularity (in jiffies) of the wheel level a timer `delta` jiffies ahead
/// lands in (calc_wheel_index).
pub fn level_granularity(delta_jiffies: u64) -> u64 {
    let mut level = 0;
    while level + 1 < LVL_DEPTH && delta_jiffies >= 63u64 << (3 * level) {
        level += 1;
    }
    1u64 << (3 * level)
}

fn late_bound_at(armed: Duration, hz: u32) -> Duration {
    let jiffy_ns = 1_000_000_000u64 / hz as u64;
    // TCP converts milliseconds to jiffies rounding up (msecs_to_jiffies).
    let delta = (armed.as_nanos() as u64).div_ceil(jiffy_ns);
    let gran = level_granularity(delta);
    Duration::from_nanos((gran + 1).saturating_mul(jiffy_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn levels_at_hz_250() {
        let w = Wheel::new(Some(250));
        // Level 0: < 63 jiffies (252 ms): 1 jiffy + 1.
        assert_eq!(w.late_bound(ms(200)), ms(8));
        // Level 1: 252 ms .. 2.012 s: 8 jiffies = 32 ms, + 4 ms.
        assert_eq!(w.late_bound(ms(1000)), ms(36));
        assert_eq!(w.late_bound(ms(2000)), ms(36));
        // Level 2: 2.016 s .. 16.124 s: 64 jiffies = 256 ms. The 12 s
        // keepalive timer fired 259 ms late: inside this bound.
        assert_eq!(w.late_bound(ms(2016)), ms(260));
        assert_eq!(w.late_bound(ms(12_000)), ms(260));
        assert_eq!(w.late_bound(ms(11_000)), ms(260));
        // Level 3: 16.128 s .. 129 s: 2.048 s (measured: 1.4-1.9 s for 17 and 20 s).
        assert_eq!(w.late_bound(ms(20_000)), ms(2052));
        // The 7200 s default idle: level 5, 131 s.
        assert_eq!(w.late_bound(ms(7_200_000)), ms(131_076));
    }

    #[test]
    fn unknown_hz_takes_the_worst_case() {
        let w = Wheel::new(None);
        // 12 s: HZ=100 puts it in level 2 of 10 ms jiffies: 64 x 10 + 10 ms.
        assert_eq!(w.late_bound(ms(12_000)), ms(650));
        assert!(w.late_bound(ms(1000)) >= Wheel::new(Some(250)).late_bound(ms(1000)));
        assert!(w.describe().contains("unknown"));
    }

    #[test]
    fn a_timer_rearmed_from_an_aligned_firing_fires_a_whole_number_of_buckets_later() {
        let w = Wheel::new(Some(250));
        // Measured here (HZ=250, loopback, keepalive re-armed from its callback):
        // idle 1 intvl 1 probes 1.024 s apart, intvl 2 s 2.016 s, intvl 3 s 3.072 s.
        assert_eq!(w.rearmed_after(ms(1000), 8), Some(ms(1024)));
        assert_eq!(w.rearmed_after(ms(2000), 8), Some(ms(2016)));
        assert_eq!(w.rearmed_after(ms(3000), 64), Some(ms(3072)));
        // A 3 s timer (level 2, 64 jiffies) from a level-1 firing: not known.
        assert_eq!(w.rearmed_after(ms(3000), 8), None);
        assert_eq!(Wheel::new(None).rearmed_after(ms(1000), 8), None);
        assert_eq!(w.granularity(ms(1000)), Some(8));
        assert_eq!(w.granularity(ms(3000)), Some(64));
        // Within the late bound, never early.
        for armed in [200, 1000, 2000, 3000, 12_000] {
            let g = w.granularity(ms(armed)).unwrap_or(1);
            let after = w.rearmed_after(ms(armed), g).unwrap_or_default();
            assert!(after > ms(armed) && after <= ms(armed) + w.late_bound(ms(armed)));
        }
    }

    #[test]
    fn granularity_table() {
        assert_eq!(level_granularity(0), 1);
        assert_eq!(level_granularity(62), 1);
        assert_eq!(level_granularity(63), 8);
        assert_eq!(level_granularity(503), 8);
        assert_eq!(level_granularity(504), 64);
        assert_eq!(level_granularity(4031), 64);
        assert_eq!(level_granularity(4032), 512);
        assert_eq!(level_granularity(u64::MAX), 1 << 24);
    }
}
