//! Virtual reassembly for SNAT (as VPP's NAT44 does it): fragments are never put back
//! together, but every fragment of a datagram gets the translation its first fragment got.
//!
//! Only the first fragment carries the ports a session is found by (RFC 791: the transport
//! header is at offset 0). Its translation is recorded under the datagram's identity
//! (source, destination, protocol and IP identification, RFC 791 section 3.2), in the
//! addresses as the later fragments carry them, and each later fragment is translated the
//! same way: its address only (the ports and the transport checksum are in the first
//! fragment alone). A later fragment that arrives before its first fragment is held, and
//! goes through again once the first one has been seen. Inbound, the first fragment may be
//! handed to the worker that owns its session: the later ones are then handed after it.
//!
//! Everything is bounded (`[limits]`): the datagrams tracked, the fragments held (each keeps
//! a UMEM frame) and their lifetime. What does not fit is dropped and counted, never held
//! without bound: a flood of fragments without a first one costs at most
//! `reassembly_fragments` frames for `reassembly_timeout_ms`.

use crate::io::Desc;
use crate::tables::neighbor::IntMap;

/// Fragments one datagram may hold while its first fragment is missing.
pub const MAX_HELD_PER_DATAGRAM: u16 = 64;

/// A datagram: source, destination, identification and protocol as the fragments carry
/// them, and whether it is leaving through SNAT (out) or returning to an SNAT address (in).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DatagramKey(u128);

impl DatagramKey {
    pub fn new(src: u32, dst: u32, id: u16, proto: u8, inbound: bool) -> DatagramKey {
        DatagramKey(
            (u128::from(src) << 96)
                | (u128::from(dst) << 64)
                | (u128::from(id) << 48)
                | (u128::from(proto) << 40)
                | u128::from(inbound),
        )
    }

    /// Its 64-bit digest, for the map (the map compares the whole key).
    fn digest(self) -> u64 {
        let (hi, lo) = ((self.0 >> 64) as u64, self.0 as u64);
        hi.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ lo.rotate_left(17)
    }
}

/// What the later fragments of a datagram get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Translation {
    /// The first fragment has not been seen: hold them.
    Pending,
    /// Leaving: the source becomes this SNAT address.
    Source(u32),
    /// Returning: the destination becomes this inside address.
    Destination(u32),
    /// Returning to a session of this worker: hand them there.
    Worker(u8),
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    key: DatagramKey,
    translation: Translation,
    deadline: u64,
    held: u16,
}

/// A fragment held for its datagram.
#[derive(Clone, Copy, Debug)]
pub struct HeldFragment {
    pub key: DatagramKey,
    pub desc: Desc,
    pub rx_port: u8,
    pub vni_net: u8,
    pub hops: u8,
}

/// What [`Reassembly::later`] did with a later fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Later {
    /// Translate it so.
    Apply(Translation),
    /// Held until its first fragment arrives (the frame is the table's now).
    Held,
    /// No room: drop it.
    Full,
}

/// The bounds (`[limits]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReassemblyConfig {
    pub datagrams: usize,
    pub fragments: usize,
    pub timeout_ns: u64,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            datagrams: 1024,
            fragments: 256,
            timeout_ns: 2_000_000_000,
        }
    }
}

/// One worker's reassembly state. Allocated once; never grows past its bounds.
pub struct Reassembly {
    cfg: ReassemblyConfig,
    /// By [`DatagramKey::digest`]; a bucket holds the datagrams whose digests collide.
    map: IntMap<u64, Entry>,
    held: Vec<HeldFragment>,
    /// Held fragments whose first fragment has been seen: to go through the stages again.
    pub ready: Vec<HeldFragment>,
}

impl Reassembly {
    pub fn new(cfg: ReassemblyConfig) -> Reassembly {
        Reassembly {
            cfg,
            map: IntMap::with_capacity_and_hasher(cfg.datagrams, Default::default()),
            held: Vec::with_capacity(cfg.fragments),
            ready: Vec::with_capacity(cfg.fragments),
        }
    }

    /// Fragments held (each keeps a frame), waiting or ready.
    pub fn held(&self) -> usize {
        self.held.len() + self.ready.len()
    }

    /// Datagrams tracked.
    pub fn datagrams(&self) -> usize {
        self.map.len()
    }

    fn get(&self, key: DatagramKey) -> Option<&Entry> {
        self.map.get(&key.digest()).filter(|e| e.key == key)
    }

    /// Record the translation of a datagram's first fragment at `now`; its held fragments
    /// move to [`Reassembly::ready`]. False when a new datagram does not fit (its later
    /// fragments will then be dropped as they come).
    pub fn first(&mut self, key: DatagramKey, t: Translation, now: u64) -> bool {
        let deadline = now.saturating_add(self.cfg.timeout_ns);
        let d = key.digest();
        match self.map.get_mut(&d) {
            Some(e) if e.key == key => {
                e.translation = t;
                e.deadline = deadline;
                if e.held > 0 {
                    e.held = 0;
                    let mut i = 0;
                    while i < self.held.len() {
                        if self.held[i].key == key {
                            self.ready.push(self.held.swap_remove(i));
                        } else {
                            i += 1;
                        }
                    }
                }
                true
            }
            // A colliding digest of another live datagram: its entry stays.
            Some(e) if e.deadline > now => false,
            _ => {
                if self.map.len() >= self.cfg.datagrams && !self.map.contains_key(&d) {
                    return false;
                }
                self.map.insert(
                    d,
                    Entry {
                        key,
                        translation: t,
                        deadline,
                        held: 0,
                    },
                );
                true
            }
        }
    }

    /// A later fragment of datagram `key`: its translation, or held (`frag` keeps its
    /// frame), or no room.
    pub fn later(&mut self, key: DatagramKey, frag: HeldFragment, now: u64) -> Later {
        let d = key.digest();
        let hold_room = self.held() < self.cfg.fragments;
        match self.map.get_mut(&d) {
            Some(e) if e.key == key && e.deadline > now => {
                if e.translation != Translation::Pending {
                    e.deadline = now.saturating_add(self.cfg.timeout_ns);
                    return Later::Apply(e.translation);
                }
                if !hold_room || e.held >= MAX_HELD_PER_DATAGRAM {
                    return Later::Full;
                }
                e.held += 1;
                self.held.push(frag);
                Later::Held
            }
            Some(e) if e.deadline > now => Later::Full, // a colliding live datagram
            _ => {
                if !hold_room
                    || (self.map.len() >= self.cfg.datagrams && !self.map.contains_key(&d))
                {
                    return Later::Full;
                }
                // The first fragment is late (or lost): hold until it comes or time runs out.
                self.map.insert(
                    d,
                    Entry {
                        key,
                        translation: Translation::Pending,
                        deadline: now.saturating_add(self.cfg.timeout_ns),
                        held: 1,
                    },
                );
                self.held.push(frag);
                Later::Held
            }
        }
    }

    /// Forget datagrams past their time; their held fragments are appended to `expired`
    /// (the caller frees and counts them). Runs on the worker's timer.
    pub fn expire(&mut self, now: u64, expired: &mut Vec<HeldFragment>) {
        if self.map.is_empty() {
            return;
        }
        let mut gone = false;
        self.map.retain(|_, e| {
            let keep = e.deadline > now;
            gone |= !keep && e.held > 0;
            keep
        });
        if gone {
            let mut i = 0;
            while i < self.held.len() {
                if self.get(self.held[i].key).is_none() {
                    expired.push(self.held.swap_remove(i));
                } else {
                    i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(key: DatagramKey, n: u32) -> HeldFragment {
        HeldFragment {
            key,
            desc: Desc {
                addr: u64::from(n) * 4096,
                len: 100,
            },
            rx_port: 1,
            vni_net: 0,
            hops: 0,
        }
    }

    fn small() -> Reassembly {
        Reassembly::new(ReassemblyConfig {
            datagrams: 4,
            fragments: 3,
            timeout_ns: 1000,
        })
    }

    #[test]
    fn later_fragments_get_the_first_ones_translation() {
        let mut r = small();
        let k = DatagramKey::new(1, 2, 77, 17, false);
        assert!(r.first(k, Translation::Source(9), 0));
        assert_eq!(
            r.later(k, frag(k, 1), 10),
            Later::Apply(Translation::Source(9))
        );
        // Another identification, protocol or direction is another datagram.
        let other = DatagramKey::new(1, 2, 78, 17, false);
        assert_eq!(r.later(other, frag(other, 2), 10), Later::Held);
        assert_ne!(DatagramKey::new(1, 2, 77, 6, false), k);
        assert_ne!(DatagramKey::new(1, 2, 77, 17, true), k);
    }

    #[test]
    fn early_fragments_wait_for_their_first() {
        let mut r = small();
        let k = DatagramKey::new(1, 2, 5, 17, true);
        assert_eq!(r.later(k, frag(k, 1), 0), Later::Held);
        assert_eq!(r.later(k, frag(k, 2), 1), Later::Held);
        assert_eq!(r.held(), 2);
        assert!(r.ready.is_empty());
        assert!(r.first(k, Translation::Destination(7), 2));
        assert_eq!(r.ready.len(), 2);
        assert_eq!(r.held(), 2, "ready ones still hold their frames");
        r.ready.clear();
        assert_eq!(
            r.later(k, frag(k, 3), 3),
            Later::Apply(Translation::Destination(7))
        );
    }

    #[test]
    fn bounds_hold_and_time_frees() {
        let mut r = small();
        let keys: Vec<DatagramKey> = (0..5)
            .map(|i| DatagramKey::new(1, 2, i, 17, false))
            .collect();
        // Three fragments held fill the fragment bound.
        for (n, k) in keys.iter().take(3).enumerate() {
            assert_eq!(r.later(*k, frag(*k, n as u32), 0), Later::Held);
        }
        assert_eq!(r.later(keys[3], frag(keys[3], 9), 0), Later::Full);
        // A translated datagram still fits (4 datagrams), a fifth does not.
        assert!(r.first(keys[3], Translation::Source(1), 0));
        assert!(!r.first(keys[4], Translation::Source(1), 0));
        // Past the timeout everything goes, the held frames to the caller.
        let mut expired = Vec::new();
        r.expire(1000, &mut expired);
        assert_eq!(expired.len(), 3);
        assert_eq!((r.held(), r.datagrams()), (0, 0));
        assert!(r.first(keys[4], Translation::Source(1), 1000));
    }
}
