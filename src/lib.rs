//! vgate: a userspace, AF_XDP fast-path gateway router.
//!
//! See `README.md` for the operator's view and `docs/ARCHITECTURE.md` for how the parts fit:
//! the wire views in [`wire`], the batch pipeline in [`pipeline`], the tables the control
//! thread builds in [`tables`], the I/O backends in [`io`], the poll loop in [`worker`].

pub mod control;
pub mod io;
pub mod lab;
pub mod metrics;
pub mod pipeline;
pub mod pktgen;
pub mod run;
pub mod show;
pub mod tables;
pub mod wire;
pub mod worker;
