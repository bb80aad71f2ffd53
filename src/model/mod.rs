//! The pure domain: no I/O. Outcomes and the one exit-code table, the events the
//! core emits, the prediction of when a dead peer is noticed, the timeline that
//! turns kernel samples into events, the heartbeat protocol, what `watch` can infer
//! from outside and decides about each connection it follows, and the `--expect`
//! rules; the kernel timers replayed forward (schedule) and the timer wheel's
//! lateness (wheel), and when `watch` reads each connection again (lookups). Everything here is tested without sockets.

pub mod capture;
pub mod event;
pub mod expect;
pub mod filter;
pub mod heartbeat;
#[cfg(test)]
mod heartbeat_props;
pub mod idle_limit;
pub mod infer;
pub mod lab;
pub mod lookups;
pub mod outages;
pub mod outcome;
pub mod plan;
pub mod predict;
pub mod sample;
pub mod schedule;
pub mod settings;
pub mod timeline;
pub mod tune;
pub mod units;
pub mod verdict;
pub mod watch;
pub mod wheel;
