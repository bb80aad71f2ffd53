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
