//! The control thread: configuration, table snapshots, HTTP API, GARP timers.

pub mod config;
