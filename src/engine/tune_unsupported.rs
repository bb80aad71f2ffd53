//! `tune` where there is no pidfd_getfd or sock_diag: a clear error.

use crate::config::TuneConfig;
use crate::engine::event_loop::Signals;
use crate::engine::run::{Reporter, RunError};
use crate::model::event::EndFacts;

pub fn run(
    _cfg: &TuneConfig,
    _rep: &mut Reporter,
    _signals: &Signals,
) -> Result<EndFacts, RunError> {
    Err(RunError::Io {
        op: "tune sockets",
        source: std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "tune needs Linux 5.6+ (pidfd_getfd) and sock_diag",
        ),
    })
}
