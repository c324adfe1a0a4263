//! The bodies of vgate's fuzz targets, one module per target. Each module uses only vgate
//! and std, so `tests/fuzz_regressions.rs` includes the same file and replays a crashing
//! input through exactly the code the fuzzer ran, without libFuzzer.

pub mod config;
pub mod pipeline;
pub mod wire;
