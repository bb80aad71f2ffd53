//! What every command runs on: the run clock, the reporter that stamps events and
//! hands them to a renderer, signals, typed run errors, and the driver of one
//! monitored connection ([`session::Session`]).

pub mod run;
pub mod session;
