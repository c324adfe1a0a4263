//! In-memory backend: frames are injected and collected as byte vectors. Every stage is
//! testable with it without root, and the benches drive the pipeline through it.

use super::{Desc, FramePool, Port, TxResult};
use std::collections::VecDeque;

/// A port whose wire is two queues of frames.
#[derive(Default)]
pub struct MemPort {
    /// Frames waiting to be received.
    pub rx: VecDeque<Vec<u8>>,
    /// Frames transmitted, in order.
    pub tx: Vec<Vec<u8>>,
    /// Transmit ring size: a burst beyond it is dropped as a real ring would (None: unbounded).
    pub tx_ring: Option<usize>,
    /// Frames received but not copied in because the pool was empty.
    pub rx_no_frames: u64,
}

impl MemPort {
    pub fn new() -> MemPort {
        MemPort::default()
    }

    /// Queue a frame for reception.
    pub fn inject(&mut self, frame: &[u8]) {
        self.rx.push_back(frame.to_vec());
    }

    /// Take everything transmitted so far.
    pub fn take_tx(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.tx)
    }
}

impl Port for MemPort {
    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut [Desc]) -> usize {
        let mut n = 0;
        while n < out.len() {
            let Some(frame) = self.rx.front() else { break };
            match pool.alloc_with(frame) {
                Some(d) => {
                    out[n] = d;
                    n += 1;
                    self.rx.pop_front();
                }
                None => {
                    self.rx_no_frames += 1;
                    break;
                }
            }
        }
        n
    }

    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Desc]) -> TxResult {
        let room = self.tx_ring.unwrap_or(usize::MAX).min(pkts.len());
        for d in &pkts[..room] {
            self.tx.push(pool.bytes(d).to_vec());
            pool.free(*d);
        }
        for d in &pkts[room..] {
            pool.free(*d);
        }
        TxResult {
            sent: room,
            dropped: pkts.len() - room,
        }
    }

    fn maintain(&mut self, _pool: &mut FramePool) {}

    fn drain(&mut self, _pool: &mut FramePool) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_frames_returned() {
        let mut pool = FramePool::new_heap(8);
        let mut p = MemPort::new();
        p.inject(&[1, 2, 3]);
        p.inject(&[4, 5]);
        let mut out = [Desc::default(); 4];
        assert_eq!(p.rx_burst(&mut pool, &mut out), 2);
        assert_eq!(pool.free_count(), 6);
        assert_eq!(pool.bytes(&out[0]), &[1, 2, 3]);
        assert_eq!(pool.headroom(&out[0]), crate::io::RX_HEADROOM);
        let r = p.tx_burst(&mut pool, &out[..2]);
        assert_eq!((r.sent, r.dropped), (2, 0));
        assert_eq!(p.take_tx(), vec![vec![1, 2, 3], vec![4, 5]]);
        assert_eq!(pool.free_count(), 8);
    }

    #[test]
    fn bounded_tx_ring_drops_tail() {
        let mut pool = FramePool::new_heap(4);
        let mut p = MemPort {
            tx_ring: Some(1),
            ..MemPort::default()
        };
        let a = pool.alloc_with(&[1]).unwrap();
        let b = pool.alloc_with(&[2]).unwrap();
        let r = p.tx_burst(&mut pool, &[a, b]);
        assert_eq!((r.sent, r.dropped), (1, 1));
        assert_eq!(pool.free_count(), 4);
    }
}
