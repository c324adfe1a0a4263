//! Gratuitous ARP (RFC 5227 section 3 announcements) for floating IPs.
//!
//! When vgate starts, when a floating IP is added, and when its MAC or port changes, every
//! neighbour on the external segment must move to the new MAC at once instead of waiting
//! for its cache to expire (the failover problem of seed 002). The control thread schedules
//! `control.garp.count` announcements `interval_ms` apart; worker 0 builds and sends them.
//!
//! Bounded: one burst per floating IP at most (a newer one replaces it), `count` is at most
//! 10 (validated), and announcements are handed to worker 0 only as far as its queue has
//! room; the rest wait for the next tick instead of being lost.

use crate::tables::Snapshot;
use crate::wire::EthernetAddress;
use std::time::{Duration, Instant};

/// One announcement: "`ip` is at `mac`", sent on `port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announcement {
    pub port: u8,
    pub ip: u32,
    pub mac: EthernetAddress,
}

struct Pending {
    a: Announcement,
    remaining: u32,
    next: Instant,
}

/// Announcements waiting for their time.
pub struct GarpScheduler {
    count: u32,
    interval: Duration,
    pending: Vec<Pending>,
}

impl GarpScheduler {
    pub fn new(count: u32, interval_ms: u64) -> GarpScheduler {
        GarpScheduler {
            count,
            interval: Duration::from_millis(interval_ms),
            pending: Vec::new(),
        }
    }

    /// Change the burst shape (a reload changed `control.garp`).
    pub fn set_shape(&mut self, count: u32, interval_ms: u64) {
        self.count = count;
        self.interval = Duration::from_millis(interval_ms);
    }

    /// Start a burst for `a`, the first one now. A burst already running for the same
    /// address is replaced: only the newest MAC is announced.
    pub fn schedule(&mut self, a: Announcement, now: Instant) {
        self.pending.retain(|p| p.a.ip != a.ip);
        if self.count > 0 {
            self.pending.push(Pending {
                a,
                remaining: self.count,
                next: now,
            });
        }
    }

    /// Stop announcing `ip` (the floating IP was removed).
    pub fn cancel(&mut self, ip: u32) {
        self.pending.retain(|p| p.a.ip != ip);
    }

    /// Announcements due at `now`, at most `room` of them, appended to `out`. Those left over
    /// stay due and go first next time (after a start with many floating IPs, say).
    pub fn due(&mut self, now: Instant, room: usize, out: &mut Vec<Announcement>) {
        let mut room = room;
        for p in self.pending.iter_mut() {
            if room == 0 {
                break;
            }
            if now >= p.next && p.remaining > 0 {
                out.push(p.a);
                room -= 1;
                p.remaining -= 1;
                p.next = now + self.interval;
            }
        }
        self.pending.retain(|p| p.remaining > 0);
        // Bursts still due (no room this time) move to the front, so every floating IP gets
        // its turn before any sends again.
        let (sent, waiting): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.next > now);
        self.pending = waiting;
        self.pending.extend(sent);
    }

    /// Announcements still to send, over all bursts.
    pub fn queued(&self) -> u64 {
        self.pending.iter().map(|p| u64::from(p.remaining)).sum()
    }

    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Floating IPs of `new` that need announcing after `old` (None: at start): new ones, and
/// ones whose MAC or port changed. Also returns the addresses no longer served.
pub fn fip_changes(old: Option<&Snapshot>, new: &Snapshot) -> (Vec<Announcement>, Vec<u32>) {
    let mut announce = Vec::new();
    for f in &new.fips {
        let before = old.and_then(|o| {
            o.fip_by_external
                .get(&f.external)
                .map(|&i| o.fips[i as usize])
        });
        if before.is_none_or(|b| b.mac != f.mac || b.ext_port != f.ext_port) {
            announce.push(Announcement {
                port: f.ext_port,
                ip: f.external,
                mac: f.mac,
            });
        }
    }
    let removed = old
        .map(|o| {
            o.fips
                .iter()
                .filter(|f| !new.fip_by_external.contains_key(&f.external))
                .map(|f| f.external)
                .collect()
        })
        .unwrap_or_default();
    (announce, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(ip: u32, m: u8) -> Announcement {
        Announcement {
            port: 0,
            ip,
            mac: EthernetAddress([2, 0, 0, 0, 0, m]),
        }
    }

    #[test]
    fn bursts_count_times_interval_apart() {
        let t0 = Instant::now();
        let mut s = GarpScheduler::new(3, 1000);
        s.schedule(a(1, 1), t0);
        let mut out = Vec::new();
        s.due(t0, usize::MAX, &mut out);
        assert_eq!(out.len(), 1);
        s.due(t0 + Duration::from_millis(500), usize::MAX, &mut out);
        assert_eq!(out.len(), 1, "not before the interval");
        s.due(t0 + Duration::from_millis(1000), usize::MAX, &mut out);
        s.due(t0 + Duration::from_millis(2000), usize::MAX, &mut out);
        s.due(t0 + Duration::from_millis(3000), usize::MAX, &mut out);
        assert_eq!(out.len(), 3);
        assert!(s.is_idle());
    }

    #[test]
    fn newer_mac_replaces_running_burst() {
        let t0 = Instant::now();
        let mut s = GarpScheduler::new(2, 10);
        s.schedule(a(1, 1), t0);
        s.schedule(a(1, 2), t0);
        let mut out = Vec::new();
        s.due(t0, usize::MAX, &mut out);
        assert_eq!(out, vec![a(1, 2)]);
        s.cancel(1);
        assert!(s.is_idle());
    }

    #[test]
    fn room_limits_a_tick_and_the_rest_waits() {
        let t0 = Instant::now();
        let mut s = GarpScheduler::new(2, 1000);
        for ip in 1..=5 {
            s.schedule(a(ip, 1), t0);
        }
        assert_eq!(s.queued(), 10);
        let mut out = Vec::new();
        s.due(t0, 3, &mut out);
        assert_eq!(out.iter().map(|a| a.ip).collect::<Vec<_>>(), vec![1, 2, 3]);
        // The two that did not fit go first, a moment later; nothing is lost.
        out.clear();
        s.due(t0 + Duration::from_millis(50), 3, &mut out);
        assert_eq!(out.iter().map(|a| a.ip).collect::<Vec<_>>(), vec![4, 5]);
        out.clear();
        s.due(t0 + Duration::from_millis(1000), 3, &mut out);
        assert_eq!(out.iter().map(|a| a.ip).collect::<Vec<_>>(), vec![1, 2, 3]);
        out.clear();
        s.due(t0 + Duration::from_millis(1050), 3, &mut out);
        assert_eq!(out.iter().map(|a| a.ip).collect::<Vec<_>>(), vec![4, 5]);
        assert!(s.is_idle());
        assert_eq!(s.queued(), 0);
    }

    #[test]
    fn zero_count_sends_nothing() {
        let mut s = GarpScheduler::new(0, 10);
        s.schedule(a(1, 1), Instant::now());
        assert!(s.is_idle());
    }
}
