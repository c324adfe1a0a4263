//! The flows stateful ACLs let through (`allow-related`), per worker: an open-addressing
//! table like [`super::session::SessionMap`], with the whole flow as its key.
//!
//! * A flow is keyed by its ACL and its five-tuple in the direction the rule allowed, in
//!   tenant addresses; a reply looks up its own tuple reversed. The full key is compared,
//!   never a hash of it: a collision must not let a packet through.
//! * 32-byte slots (key 16 bytes, deadline, TCP state), power-of-two count at least 5/4 of
//!   the bound, linear probing, deletion by backward shift (no tombstones).
//! * Bounded by `limits.acl_sessions`: a new flow when it is full is refused, and the
//!   pipeline drops its packet as `acl/session_table_full` (fail closed, counted).
//! * Expired flows are never matched; [`Flows::sweep`] removes them a slice at a time from
//!   the worker's timer.
//! * The hash is seeded per table, so a sender cannot aim its flows at one probe chain.

use crate::tables::acl::Flow;

/// Timeouts, as the SNAT session defaults (RFC 7857 section 2.2, RFC 5382 REQ-5, RFC 4787
/// REQ-5, RFC 5508 REQ-1): established TCP, other TCP, UDP and others, ICMP.
pub const TCP_ESTABLISHED_NS: u64 = 7440 * 1_000_000_000;
pub const TCP_TRANSITORY_NS: u64 = 240 * 1_000_000_000;
pub const UDP_NS: u64 = 300 * 1_000_000_000;
pub const ICMP_NS: u64 = 60 * 1_000_000_000;

/// Slots examined per sweep call.
pub const SWEEP_SLOTS: usize = 4096;

#[derive(Clone, Copy, Default)]
struct Slot {
    k0: u64,
    k1: u64,
    deadline: u64,
    /// A TCP flow a reply was seen on (established timeout), else 0.
    established: u64,
}

/// The key of `f` allowed by ACL `acl`: never zero (the ACL is stored + 1).
#[inline]
pub fn key(acl: u16, f: &Flow) -> (u64, u64) {
    (
        (u64::from(f.src) << 32) | u64::from(f.dst),
        (u64::from(f.sport) << 48)
            | (u64::from(f.dport) << 32)
            | (u64::from(f.proto) << 16)
            | (u64::from(acl) + 1),
    )
}

/// What a packet of a tracked flow does to its entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Touch {
    /// A packet in the allowed direction.
    Forward,
    /// A reply.
    Reply,
}

pub struct Flows {
    slots: Vec<Slot>,
    mask: usize,
    len: usize,
    max: usize,
    seed: u64,
    cursor: usize,
}

impl Flows {
    /// A table for up to `max` flows, all memory reserved now.
    pub fn new(max: usize, seed: u64) -> Flows {
        let max = max.max(1);
        let n = (max + max / 4 + 1).next_power_of_two().max(8);
        Flows {
            slots: vec![Slot::default(); n],
            mask: n - 1,
            len: 0,
            max,
            seed: seed | 1,
            cursor: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn max(&self) -> usize {
        self.max
    }

    #[inline]
    fn home(&self, (k0, k1): (u64, u64)) -> usize {
        let h = (k0 ^ self.seed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29)
            ^ k1.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        (h.wrapping_mul(0x1656_67b1_9e37_79f9) >> 32) as usize & self.mask
    }

    #[inline]
    fn find(&self, k: (u64, u64)) -> Option<usize> {
        let mut i = self.home(k);
        loop {
            let s = &self.slots[i];
            if s.k0 == k.0 && s.k1 == k.1 {
                return Some(i);
            }
            if s.k1 == 0 {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// True when flow `k` is tracked and has not expired at `now`. Reads only.
    #[inline]
    pub fn holds(&self, k: (u64, u64), now: u64) -> bool {
        self.find(k).is_some_and(|i| self.slots[i].deadline > now)
    }

    /// Track flow `k` (protocol `proto`, TCP flags `flags`) at `now`: insert it, or refresh
    /// it. False when it is new and the table is full.
    pub fn track(&mut self, k: (u64, u64), proto: u8, flags: u8, now: u64, touch: Touch) -> bool {
        let i = match self.find(k) {
            Some(i) => i,
            None => {
                if self.len >= self.max {
                    return false;
                }
                let mut i = self.home(k);
                while self.slots[i].k1 != 0 {
                    i = (i + 1) & self.mask;
                }
                self.slots[i] = Slot {
                    k0: k.0,
                    k1: k.1,
                    deadline: 0,
                    established: 0,
                };
                self.len += 1;
                i
            }
        };
        let s = &mut self.slots[i];
        if touch == Touch::Reply {
            s.established = 1;
        }
        s.deadline = now.saturating_add(timeout(proto, flags, s.established != 0));
        true
    }

    /// Remove expired flows among the next [`SWEEP_SLOTS`] slots. Returns how many.
    pub fn sweep(&mut self, now: u64) -> usize {
        let mut removed = 0;
        for _ in 0..SWEEP_SLOTS.min(self.slots.len()) {
            let i = self.cursor;
            if self.slots[i].k1 != 0 && self.slots[i].deadline <= now {
                self.remove_at(i);
                removed += 1;
                // The shift may have moved a live or expired entry into `i`: look again.
                continue;
            }
            self.cursor = (i + 1) & self.mask;
        }
        removed
    }

    /// Backward-shift deletion (Knuth, TAOCP vol. 3, 6.4, Algorithm R).
    fn remove_at(&mut self, mut i: usize) {
        self.slots[i] = Slot::default();
        self.len -= 1;
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            if self.slots[j].k1 == 0 {
                return;
            }
            let h = self.home((self.slots[j].k0, self.slots[j].k1));
            // Move j back to i unless its home lies cyclically in (i, j].
            let stays = if i <= j {
                i < h && h <= j
            } else {
                i < h || h <= j
            };
            if !stays {
                self.slots[i] = self.slots[j];
                self.slots[j] = Slot::default();
                i = j;
            }
        }
    }
}

/// How long a flow lives after a packet: TCP by its state (a FIN or RST closes it, RFC 7857
/// section 2.2), others by protocol.
fn timeout(proto: u8, flags: u8, established: bool) -> u64 {
    match proto {
        6 if flags & 0x05 != 0 || !established => TCP_TRANSITORY_NS,
        6 => TCP_ESTABLISHED_NS,
        1 => ICMP_NS,
        _ => UDP_NS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(n: u32) -> Flow {
        Flow {
            src: 0x0a00_0000 + n,
            dst: 0xc633_6401,
            proto: 17,
            sport: 1000 + (n % 5000) as u16,
            dport: 53,
            ports: true,
            icmp_type: None,
        }
    }

    #[test]
    fn flows_are_bounded_expire_and_match_exactly() {
        let mut t = Flows::new(100, 7);
        for n in 0..100 {
            assert!(t.track(key(0, &flow(n)), 17, 0, 0, Touch::Forward));
        }
        assert_eq!(t.len(), 100);
        // Full: a new flow is refused, a known one refreshed.
        assert!(!t.track(key(0, &flow(100)), 17, 0, 0, Touch::Forward));
        assert!(t.track(key(0, &flow(5)), 17, 0, 10, Touch::Reply));
        // Another ACL's flow, or any other field, is another key.
        assert!(!t.holds(key(1, &flow(5)), 1));
        let mut other = flow(5);
        other.dport = 54;
        assert!(!t.holds(key(0, &other), 1));
        assert!(t.holds(key(0, &flow(5)), 1));
        // Expired: not matched, then swept, and then there is room again.
        let later = UDP_NS + 5;
        assert!(!t.holds(key(0, &flow(7)), later));
        assert!(t.holds(key(0, &flow(5)), later));
        let mut removed = 0;
        for _ in 0..4 {
            removed += t.sweep(later);
        }
        assert_eq!(removed, 99);
        assert_eq!(t.len(), 1);
        assert!(t.holds(key(0, &flow(5)), later));
        for n in 0..99 {
            assert!(!t.holds(key(0, &flow(n + 200)), later));
            assert!(t.track(key(0, &flow(n + 200)), 17, 0, later, Touch::Forward));
        }
        for n in 0..99 {
            assert!(t.holds(key(0, &flow(n + 200)), later + 1), "{n}");
        }
    }

    #[test]
    fn tcp_flows_time_out_by_state() {
        assert_eq!(timeout(6, 0x02, false), TCP_TRANSITORY_NS);
        assert_eq!(timeout(6, 0x10, true), TCP_ESTABLISHED_NS);
        assert_eq!(timeout(6, 0x11, true), TCP_TRANSITORY_NS);
        assert_eq!(timeout(1, 0, false), ICMP_NS);
    }
}
