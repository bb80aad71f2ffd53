//! What every command runs on: the run clock, the reporter that stamps events and
//! hands them to a renderer, typed run errors ([`run`]), the one event loop with
//! its signals and interruptible name resolution ([`event_loop`]), stdout that
//! never blocks it ([`output`]), dialing and following a target ([`connection`]),
//! the reconnecting monitor ([`monitor`]), the listening side ([`listener`]), the
//! driver of one monitored connection ([`session::Session`]), `watch`'s loop over
//! other processes' connections ([`watch`]), `tune`'s changes to them ([`tune`]), the lab's scenario runner ([`lab`])
//! and the `idle-limit` measurement ([`idle_limit`]).

pub mod capture;
pub mod connection;
pub mod event_loop;
pub mod idle_limit;
pub mod lab;
pub mod listener;
pub mod monitor;
pub mod output;
pub mod run;
pub mod session;
#[cfg_attr(target_os = "linux", path = "tune.rs")]
#[cfg_attr(not(target_os = "linux"), path = "tune_unsupported.rs")]
pub mod tune;
pub mod watch;
