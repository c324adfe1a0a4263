//! Tables built by the control thread and read by the workers.

pub mod lpm;
