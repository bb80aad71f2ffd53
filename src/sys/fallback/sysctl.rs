//! Without Linux's per-namespace sysctls, the documented Linux defaults stand in;
//! the prediction labels them as such.

use crate::model::predict::Effective;
use crate::model::schedule::KernelParams;
use crate::model::wheel::Wheel;

/// Linux's compile-time keepalive defaults (7200 s / 75 s / 9).
pub fn system_defaults() -> Effective {
    Effective {
        keepalive: false,
        idle_s: 7200,
        intvl_s: 75,
        cnt: 9,
        user_timeout_ms: 0,
    }
}

/// Linux's default ephemeral port range (other systems differ; it only decides
/// which ports the metrics call `ephemeral`).
pub fn local_port_range() -> (u16, u16) {
    (32768, 60999)
}

/// Linux's default tcp_retries2.
pub fn system_retries2() -> u32 {
    15
}

/// Linux's defaults for the rest of the prediction, HZ unknown (the wheel model then
/// assumes the worst case).
pub fn kernel_params() -> KernelParams {
    KernelParams {
        wheel: Wheel::new(None),
        ..KernelParams::default()
    }
}
