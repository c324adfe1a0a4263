//! The workers' watchdog: a worker whose poll counter has not moved for [`WATCHDOG_MS`] has
//! stalled, and a node with a stalled worker cannot forward. The VRRP election steps down
//! and the BGP announcer withdraws on it; both ask this one function.

use crate::metrics::WorkerStats;
use std::sync::Arc;

/// A worker that has not polled for this long has stalled. An idle adaptive worker still
/// polls every millisecond (its `poll(2)` sleep is 1 ms at most).
pub const WATCHDOG_MS: u64 = 500;

/// Each worker's poll count when last seen to move, and when (ms on the caller's clock).
#[derive(Default)]
pub struct Watchdog {
    seen: Vec<(u64, u64)>,
}

impl Watchdog {
    /// The first worker that has not polled for [`WATCHDOG_MS`] at `now_ms`, if any. A
    /// worker first seen now starts its time now.
    pub fn stalled(&mut self, workers: &[Arc<WorkerStats>], now_ms: u64) -> Option<usize> {
        self.seen.resize(workers.len(), (0, now_ms));
        let mut stalled = None;
        for (k, (w, (count, since))) in workers.iter().zip(self.seen.iter_mut()).enumerate() {
            let c = w.polls_busy.get() + w.polls_idle.get();
            if c != *count {
                (*count, *since) = (c, now_ms);
            } else if stalled.is_none() && now_ms.saturating_sub(*since) > WATCHDOG_MS {
                stalled = Some(k);
            }
        }
        stalled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_stops_polling_is_stalled_until_it_polls_again() {
        let w: Vec<Arc<WorkerStats>> = (0..2).map(|_| Arc::default()).collect();
        let mut d = Watchdog::default();
        for t in (0..=1000).step_by(100) {
            w[0].polls_idle.add(1);
            w[1].polls_busy.add(1);
            assert_eq!(d.stalled(&w, t), None);
        }
        // Worker 1 stops at 1000 ms.
        w[0].polls_idle.add(1);
        assert_eq!(d.stalled(&w, 1500), None, "500 ms is not yet over");
        w[0].polls_idle.add(1);
        assert_eq!(d.stalled(&w, 1501), Some(1));
        w[1].polls_busy.add(1);
        assert_eq!(d.stalled(&w, 1600), None);
    }
}
