//! Receiver-side accounting: sequence tracking (loss, reordering, duplicates) and a
//! fixed-size latency histogram. Pure Rust, no I/O: the AF_XDP receive loop feeds it frames,
//! the unit tests feed it crafted sequences.

use super::frame::{self, Probe};
use serde::Serialize;

/// Sub-buckets per power of two: values are kept with 5 significant bits, so a reported
/// percentile is at most 1/32 (3.1 %) above the true value.
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Values at or above 2^48 ns (78 hours) share the last bucket; the exact maximum is kept
/// aside.
const MAX_BITS: u32 = 48;
const BUCKETS: usize = SUB + (MAX_BITS - SUB_BITS) as usize * SUB;

/// A log-linear histogram of `u64` values (latencies in ns) in a fixed array: recording is
/// an index computation and an increment, never an allocation.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Forget every value.
    pub fn reset(&mut self) {
        self.counts.fill(0);
        self.total = 0;
        self.sum = 0;
        self.min = u64::MAX;
        self.max = 0;
    }

    #[inline]
    fn index(v: u64) -> usize {
        if v < SUB as u64 {
            return v as usize;
        }
        let v = v.min((1u64 << MAX_BITS) - 1);
        let e = 63 - v.leading_zeros();
        let mantissa = (v >> (e - SUB_BITS)) as usize - SUB;
        SUB + (e - SUB_BITS) as usize * SUB + mantissa
    }

    /// Largest value that lands in bucket `idx`.
    fn bucket_high(idx: usize) -> u64 {
        if idx < SUB {
            return idx as u64;
        }
        let k = idx - SUB;
        let shift = (k / SUB) as u32;
        let low = ((SUB + k % SUB) as u64) << shift;
        low + (1u64 << shift) - 1
    }

    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.sum += u128::from(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn min(&self) -> Option<u64> {
        (self.total > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<u64> {
        (self.total > 0).then_some(self.max)
    }

    /// Exact arithmetic mean.
    pub fn mean(&self) -> Option<f64> {
        (self.total > 0).then(|| self.sum as f64 / self.total as f64)
    }

    /// The nearest-rank percentile `p` (0 < p <= 100): the smallest recorded value such that
    /// at least `p` % of the values are at or below it, reported as the upper bound of its
    /// bucket (exact below 32, within 3.1 % above) and never outside [min, max].
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.total == 0 || p.is_nan() {
            return None;
        }
        let p = p.clamp(0.0, 100.0);
        let rank = ((p / 100.0 * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (idx, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::bucket_high(idx).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// The usual latency summary.
    pub fn summary(&self) -> Option<LatencySummary> {
        Some(LatencySummary {
            samples: self.total,
            min: self.min()?,
            avg: self.mean()?,
            p50: self.percentile(50.0)?,
            p90: self.percentile(90.0)?,
            p99: self.percentile(99.0)?,
            p999: self.percentile(99.9)?,
            max: self.max()?,
        })
    }
}

/// Latency figures of one trial, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LatencySummary {
    pub samples: u64,
    pub min: u64,
    pub avg: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// Sequence numbers remembered behind the highest one seen, for duplicate detection.
pub const WINDOW: u64 = 1 << 16;
const WORDS: usize = (WINDOW / 64) as usize;

/// What the receiver counted for the stream it follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RxCounts {
    /// Probes of the stream, duplicates included.
    pub received: u64,
    /// Distinct sequence numbers received.
    pub unique: u64,
    /// Wire bytes (frame and 4-byte FCS) of every probe of the stream.
    pub bytes: u64,
    /// Probes whose sequence number was already received.
    pub duplicates: u64,
    /// First arrivals of a sequence number lower than the highest one seen.
    pub reordered: u64,
    /// Reordered probes more than [`WINDOW`] behind the highest sequence number: counted as
    /// unique, since whether they are duplicates is no longer known.
    pub late: u64,
    /// Probes of another stream (an earlier trial's stragglers).
    pub other_stream: u64,
    /// Frames that are not probes.
    pub foreign: u64,
}

/// Follows one stream of probes: counts, sequence tracking and latency.
///
/// Sequence numbers are tracked with a sliding bitmap of the last [`WINDOW`] numbers below
/// the highest one seen, so memory and per-packet work are fixed however many packets pass.
pub struct Receiver {
    stream: Option<u16>,
    highest: Option<u64>,
    seen: Box<[u64; WORDS]>,
    counts: RxCounts,
    latency: Histogram,
    first_ns: Option<u64>,
    last_ns: Option<u64>,
}

impl Default for Receiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Receiver {
    /// A receiver following no stream yet (every probe counts as `other_stream`).
    pub fn new() -> Self {
        Receiver {
            stream: None,
            highest: None,
            seen: Box::new([0; WORDS]),
            counts: RxCounts::default(),
            latency: Histogram::new(),
            first_ns: None,
            last_ns: None,
        }
    }

    /// Start over, following `stream`.
    pub fn begin(&mut self, stream: u16) {
        self.stream = Some(stream);
        self.highest = None;
        self.seen.fill(0);
        self.counts = RxCounts::default();
        self.latency.reset();
        self.first_ns = None;
        self.last_ns = None;
    }

    /// Stop following the stream; the figures stay readable.
    pub fn end(&mut self) {
        self.stream = None;
    }

    pub fn stream(&self) -> Option<u16> {
        self.stream
    }

    pub fn counts(&self) -> &RxCounts {
        &self.counts
    }

    pub fn latency(&self) -> &Histogram {
        &self.latency
    }

    /// Highest sequence number received.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// CLOCK_MONOTONIC time of the first and last probe of the stream.
    pub fn first_ns(&self) -> Option<u64> {
        self.first_ns
    }

    pub fn last_ns(&self) -> Option<u64> {
        self.last_ns
    }

    /// Probes sent and never received: `sent` minus the distinct sequence numbers received.
    pub fn loss(&self, sent: u64) -> u64 {
        sent.saturating_sub(self.counts.unique)
    }

    /// Account one received frame, `now_ns` being CLOCK_MONOTONIC at reception.
    #[inline]
    pub fn on_frame(&mut self, frame: &[u8], now_ns: u64) {
        match frame::parse_probe(frame) {
            Some(p) => self.on_probe(&p, (frame.len() + frame::FCS_LEN) as u64, now_ns),
            None => self.counts.foreign += 1,
        }
    }

    /// Account one probe of `wire_len` bytes.
    #[inline]
    pub fn on_probe(&mut self, p: &Probe, wire_len: u64, now_ns: u64) {
        if self.stream != Some(p.stream) {
            self.counts.other_stream += 1;
            return;
        }
        self.counts.received += 1;
        self.counts.bytes += wire_len;
        if self.first_ns.is_none() {
            self.first_ns = Some(now_ns);
        }
        self.last_ns = Some(now_ns);
        let seq = p.seq;
        match self.highest {
            Some(h) if seq <= h => {
                let behind = h - seq;
                if behind >= WINDOW {
                    self.counts.late += 1;
                } else if self.test_and_set(seq) {
                    self.counts.duplicates += 1;
                    return;
                }
                self.counts.reordered += 1;
            }
            Some(h) => {
                self.forget(h + 1, seq);
                self.test_and_set(seq);
                self.highest = Some(seq);
            }
            None => {
                self.test_and_set(seq);
                self.highest = Some(seq);
            }
        }
        self.counts.unique += 1;
        self.latency.record(frame::latency_ns(p.ts48, now_ns));
    }

    /// Clear the bits of `from..=to` (numbers entering the window, not yet seen).
    #[inline]
    fn forget(&mut self, from: u64, to: u64) {
        if to - from >= WINDOW {
            self.seen.fill(0);
            return;
        }
        let mut s = from;
        while s <= to {
            let bit = s % WINDOW;
            let word = (bit / 64) as usize;
            if bit.is_multiple_of(64) && to - s >= 63 {
                self.seen[word] = 0;
                s += 64;
            } else {
                self.seen[word] &= !(1u64 << (bit % 64));
                s += 1;
            }
        }
    }

    /// Mark `seq` seen; true when it already was.
    #[inline]
    fn test_and_set(&mut self, seq: u64) -> bool {
        let bit = seq % WINDOW;
        let word = &mut self.seen[(bit / 64) as usize];
        let mask = 1u64 << (bit % 64);
        let was = *word & mask != 0;
        *word |= mask;
        was
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(stream: u16, seq: u64) -> Probe {
        Probe {
            stream,
            seq,
            ts48: 1000,
        }
    }

    fn feed(r: &mut Receiver, seqs: &[u64]) {
        for &s in seqs {
            r.on_probe(&probe(7, s), 64, 1500);
        }
    }

    #[test]
    fn in_order_stream_counts_everything_once() {
        let mut r = Receiver::new();
        r.begin(7);
        feed(&mut r, &(0..1000).collect::<Vec<_>>());
        let c = r.counts();
        assert_eq!((c.received, c.unique), (1000, 1000));
        assert_eq!((c.duplicates, c.reordered, c.late), (0, 0, 0));
        assert_eq!(c.bytes, 64_000);
        assert_eq!(r.loss(1000), 0);
        assert_eq!(r.highest(), Some(999));
        assert_eq!(r.latency().count(), 1000);
        assert_eq!(r.latency().min(), Some(500));
    }

    #[test]
    fn exact_loss_reorder_and_duplicate_counts() {
        let mut r = Receiver::new();
        r.begin(7);
        // 0..10 sent; 3 and 8 lost, 5 and 6 swapped, 2 and 9 duplicated (9 twice).
        feed(&mut r, &[0, 1, 2, 2, 4, 6, 5, 7, 9, 9, 9]);
        let c = *r.counts();
        assert_eq!(c.received, 11);
        assert_eq!(c.unique, 8);
        assert_eq!(c.duplicates, 3);
        assert_eq!(c.reordered, 1, "5 after 6");
        assert_eq!(c.late, 0);
        assert_eq!(r.loss(10), 2);
        // A straggler of a lost number fills the gap: reordered, not duplicate.
        feed(&mut r, &[3]);
        assert_eq!(r.counts().reordered, 2);
        assert_eq!(r.loss(10), 1);
        // Only unique probes carry a latency sample.
        assert_eq!(r.latency().count(), 9);
    }

    #[test]
    fn first_probe_need_not_be_zero() {
        let mut r = Receiver::new();
        r.begin(7);
        feed(&mut r, &[5, 6, 0, 1, 6]);
        let c = r.counts();
        assert_eq!((c.unique, c.reordered, c.duplicates), (4, 2, 1));
        assert_eq!(r.loss(7), 3);
    }

    #[test]
    fn numbers_entering_the_window_are_forgotten() {
        let mut r = Receiver::new();
        r.begin(7);
        // WINDOW+1 reuses the bit of 1: it must have been cleared when the window moved.
        feed(&mut r, &[0, 1, 2, WINDOW + 2, WINDOW + 1]);
        let c = *r.counts();
        assert_eq!((c.duplicates, c.reordered, c.late, c.unique), (0, 1, 0, 5));
        // 2 is exactly WINDOW behind: too old to tell, counted late and unique.
        feed(&mut r, &[2]);
        let c = *r.counts();
        assert_eq!((c.duplicates, c.reordered, c.late, c.unique), (0, 2, 1, 6));
        // A jump of more than a window clears everything at once.
        feed(&mut r, &[5 * WINDOW, 5 * WINDOW - 1, 5 * WINDOW - 1]);
        let c = *r.counts();
        assert_eq!((c.duplicates, c.reordered, c.unique), (1, 3, 8));
    }

    #[test]
    fn window_wraps_around_exactly() {
        let mut r = Receiver::new();
        r.begin(7);
        // Every third number over three windows, then the ones in between, late.
        let mut seqs: Vec<u64> = (0..3 * WINDOW).step_by(3).collect();
        let highest = 3 * WINDOW - 3;
        let second: Vec<u64> = (1..highest).step_by(3).collect();
        seqs.extend(&second);
        feed(&mut r, &seqs);
        let c = *r.counts();
        assert_eq!(c.duplicates, 0);
        assert_eq!(c.unique, seqs.len() as u64);
        assert_eq!(c.reordered, second.len() as u64);
        let late = second.iter().filter(|&&s| highest - s >= WINDOW).count() as u64;
        assert!(late > 0);
        assert_eq!(c.late, late);
        // The recent ones are remembered: a repeat is a duplicate.
        feed(&mut r, &[highest - 2]);
        assert_eq!(r.counts().duplicates, 1);
    }

    #[test]
    fn other_streams_and_foreign_frames_are_set_apart() {
        let mut r = Receiver::new();
        r.on_probe(&probe(7, 0), 64, 1);
        assert_eq!(r.counts().other_stream, 1, "no stream followed yet");
        r.begin(7);
        r.on_probe(&probe(6, 0), 64, 1);
        r.on_frame(&[0u8; 60], 1);
        r.on_probe(&probe(7, 0), 64, 1);
        let c = *r.counts();
        assert_eq!((c.other_stream, c.foreign, c.unique), (1, 1, 1));
        r.end();
        r.on_probe(&probe(7, 1), 64, 1);
        assert_eq!(r.counts().unique, 1);
        assert_eq!(r.counts().other_stream, 2);
    }

    #[test]
    fn histogram_percentiles_exact_in_small_range() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.min(), Some(1));
        assert_eq!(h.max(), Some(100));
        assert_eq!(h.mean(), Some(50.5));
        assert_eq!(h.percentile(50.0), Some(50));
        // 99 sits in the two-wide bucket 98..=99.
        assert_eq!(h.percentile(99.0), Some(99));
        assert_eq!(h.percentile(100.0), Some(100));
        assert_eq!(h.percentile(1.0), Some(1));
        assert_eq!(h.percentile(0.0), Some(1));
    }

    #[test]
    fn histogram_relative_error_is_bounded() {
        let mut h = Histogram::new();
        // 99 samples of 10 µs and one of 5 ms.
        for _ in 0..99 {
            h.record(10_000);
        }
        h.record(5_000_000);
        let p50 = h.percentile(50.0).unwrap();
        assert!((10_000..=10_000 + 10_000 / 32).contains(&p50), "{p50}");
        assert_eq!(h.percentile(99.0), Some(p50));
        // The top is clamped to the real maximum.
        assert_eq!(h.percentile(99.9), Some(5_000_000));
        assert_eq!(h.max(), Some(5_000_000));
        for v in [33u64, 1000, 123_456, 9_876_543_210, u64::MAX / 3] {
            let hi = Histogram::bucket_high(Histogram::index(v));
            assert!(hi >= v.min((1 << MAX_BITS) - 1), "{v} -> {hi}");
            if v < 1 << MAX_BITS {
                assert!(hi - v <= v / 32, "{v} -> {hi}");
            }
        }
    }

    #[test]
    fn histogram_buckets_are_contiguous() {
        for idx in 1..BUCKETS {
            let lo = Histogram::bucket_high(idx - 1) + 1;
            assert_eq!(Histogram::index(lo), idx, "bucket {idx} starts at {lo}");
            assert_eq!(Histogram::index(Histogram::bucket_high(idx)), idx);
        }
        assert_eq!(Histogram::index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn empty_histogram_has_no_summary() {
        let mut h = Histogram::new();
        assert!(h.summary().is_none());
        assert_eq!(h.percentile(50.0), None);
        h.record(7);
        h.reset();
        assert_eq!(h.count(), 0);
        assert!(h.summary().is_none());
    }
}
