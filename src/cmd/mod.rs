//! The subcommands: each wires sockets, the observer and the reporter together.

pub mod connect;
pub mod demo;
pub mod listen;
pub mod reconnect;
pub mod watch;
