//! `watch` where there is no sock_diag: a clear error, exit 1.

use super::WatchOptions;
use crate::engine::event_loop::Signals;
use crate::engine::run::{Reporter, RunError};
use crate::model::event::EndFacts;

pub fn run(
    _options: &WatchOptions,
    _rep: &mut Reporter,
    _signals: &Signals,
) -> Result<EndFacts, RunError> {
    Err(RunError::Io {
        op: "watch connections",
        source: std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "watch needs Linux's sock_diag netlink interface; this platform has none",
        ),
    })
}
