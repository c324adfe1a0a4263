//! Per-worker neighbour (ARP) table with bounded hold queues for unresolved next hops.
//!
//! Behaviour follows RFC 1122 section 2.3.2.2 (queue at least one packet per unresolved
//! address, flood-limit requests) and RFC 1812 section 5.2.7.1 (host unreachable when
//! resolution fails). States mirror Linux's: an entry is *incomplete* while we ask,
//! *reachable* for `reachable_ns` after a reply, then still used while being re-probed, and
//! removed if the probes go unanswered. All memory is allocated up front: the table never
//! grows past `max_entries` and never holds more than `max_held` frames (nor more than
//! `hold_per_entry` for one next hop). The bounds come from the `[limits]` configuration.

use crate::io::Desc;
use crate::wire::EthernetAddress;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Limits and timers.
#[derive(Clone, Copy, Debug)]
pub struct NeighborConfig {
    /// Entries in any state (`limits.neighbors`).
    pub max_entries: usize,
    /// Entries being resolved at once (`limits.unresolved_neighbors`).
    pub max_unresolved: usize,
    /// Packets held for one unresolved entry (`limits.held_per_neighbor`), at least 1.
    pub hold_per_entry: usize,
    /// Packets held for all unresolved entries together (`limits.held_packets`).
    pub max_held: usize,
    /// How long a reply keeps an entry fresh before it is re-probed.
    pub reachable_ns: u64,
    /// Interval between ARP requests for one address.
    pub retry_ns: u64,
    /// Requests sent before giving up.
    pub max_probes: u8,
}

impl Default for NeighborConfig {
    fn default() -> Self {
        NeighborConfig {
            max_entries: 16384,
            max_unresolved: 512,
            hold_per_entry: 16,
            max_held: 8192,
            reachable_ns: 30_000_000_000,
            retry_ns: 1_000_000_000,
            max_probes: 3,
        }
    }
}

/// A reachable entry unused for this many `reachable_ns` is removed by [`NeighborTable::tick`].
pub const STALE_FACTOR: u64 = 2;

/// A multiplicative hasher for the (port, ip) keys: cheap and well mixed for integers.
#[derive(Default)]
pub struct IntHasher(u64);

impl Hasher for IntHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        let x = (self.0 ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = x ^ (x >> 29);
    }
    #[inline]
    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64);
        self.write_u64((v >> 64) as u64);
    }
    #[inline]
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
}

pub type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

/// An address the table resolves: IPv4 (ARP) or IPv6 (NDP). The table keeps the two
/// apart by type: a worker has one of each, with the same bounds and timers.
pub trait NeighborAddr: Copy + Eq + std::fmt::Debug + 'static {
    /// (port, address) as one hashable value.
    type Key: Copy + Eq + std::hash::Hash + std::fmt::Debug;
    /// Never the key of a real entry: marks an empty slot of the reachable cache.
    const EMPTY: Self::Key;
    fn key(port: u8, ip: Self) -> Self::Key;
    fn port(k: Self::Key) -> u8;
    fn addr(k: Self::Key) -> Self;
    /// The key as one word for the reachable cache's slot.
    fn word(k: Self::Key) -> u64;
}

impl NeighborAddr for u32 {
    type Key = u64;
    // Real keys are below 2^40.
    const EMPTY: u64 = u64::MAX;

    #[inline(always)]
    fn key(port: u8, ip: u32) -> u64 {
        (u64::from(port) << 32) | u64::from(ip)
    }

    #[inline(always)]
    fn port(k: u64) -> u8 {
        (k >> 32) as u8
    }

    #[inline(always)]
    fn addr(k: u64) -> u32 {
        k as u32
    }

    #[inline(always)]
    fn word(k: u64) -> u64 {
        k
    }
}

/// An IPv6 neighbour's key: the address and the port it is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key6 {
    pub addr: u128,
    pub port: u8,
}

impl NeighborAddr for u128 {
    type Key = Key6;
    // The unspecified address is never resolved (RFC 4291 section 2.5.2).
    const EMPTY: Key6 = Key6 {
        addr: 0,
        port: u8::MAX,
    };

    #[inline(always)]
    fn key(port: u8, addr: u128) -> Key6 {
        Key6 { addr, port }
    }

    #[inline(always)]
    fn port(k: Key6) -> u8 {
        k.port
    }

    #[inline(always)]
    fn addr(k: Key6) -> u128 {
        k.addr
    }

    #[inline(always)]
    fn word(k: Key6) -> u64 {
        (k.addr as u64) ^ ((k.addr >> 64) as u64).rotate_left(17) ^ u64::from(k.port)
    }
}

#[inline(always)]
fn key<A: NeighborAddr>(port: u8, ip: A) -> A::Key {
    A::key(port, ip)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Asking; held packets wait in `slot`.
    Incomplete {
        probes: u8,
        next_probe: u64,
        slot: u32,
    },
    /// Answered at `confirmed`.
    Reachable {
        mac: EthernetAddress,
        confirmed: u64,
    },
    /// Past its reachable time: still used, being re-probed.
    Probe {
        mac: EthernetAddress,
        probes: u8,
        next_probe: u64,
    },
}

/// A neighbour as the API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborView<A = u32> {
    pub port: u8,
    pub ip: A,
    pub mac: Option<EthernetAddress>,
    pub state: &'static str,
}

/// What to do with a packet for a next hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolve {
    /// Send it to this MAC.
    Hit(EthernetAddress),
    /// Send it to this MAC, and send an ARP request to refresh the entry.
    HitProbe(EthernetAddress),
    /// Held until the neighbour answers; `request` says an ARP request must go out now.
    Held { request: bool },
    /// The hold queue of this neighbour is full, or the table already holds `max_held`
    /// packets: drop.
    QueueFull,
    /// No room for another unresolved neighbour: drop.
    TableFull,
}

struct HoldSlot {
    len: usize,
    descs: Box<[Desc]>,
}

/// Outcome of a timer pass, written into caller-owned buffers.
#[derive(Default)]
pub struct TickOutput<A = u32> {
    /// ARP requests (neighbour solicitations) to send: (port, target ip).
    pub requests: Vec<(u8, A)>,
    /// Packets whose next hop never answered: (port, desc) for ICMP host unreachable.
    pub failed: Vec<(u8, Desc)>,
}

/// Entries of the reachable cache: a power of two.
const HOT_ENTRIES: usize = 1024;
/// One entry of the reachable cache: the MAC of `key` until `deadline` (the end of its
/// reachable time).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
struct Hot<K> {
    key: K,
    deadline: u64,
    mac: EthernetAddress,
}

impl<K: Copy> Hot<K> {
    const fn none(empty: K) -> Hot<K> {
        Hot {
            key: empty,
            deadline: 0,
            mac: EthernetAddress([0; 6]),
        }
    }
}

#[inline(always)]
fn hot_slot<A: NeighborAddr>(k: A::Key) -> usize {
    (A::word(k).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - HOT_ENTRIES.trailing_zeros())) as usize
}

pub struct NeighborTable<A: NeighborAddr = u32> {
    cfg: NeighborConfig,
    map: IntMap<A::Key, State>,
    /// Direct-mapped cache of reachable entries in front of `map`: a hit is one load and
    /// two compares where the map costs a hash probe. An entry is written whenever its key
    /// is found or made reachable and cleared whenever the key's entry goes, so a cached MAC
    /// is always the map's; past its reachable time it misses and `resolve` re-probes.
    hot: Box<[Hot<A::Key>; HOT_ENTRIES]>,
    /// Bumped whenever an entry is learned (made reachable, refreshed or changed) or leaves
    /// the reachable state (probe, removal, flush); not when `hot` is refilled from an
    /// unchanged entry. A next hop resolved under an unchanged epoch still has the MAC it
    /// had, until the deadline it had ([`NeighborTable::epoch`]).
    epoch: u64,
    slots: Vec<HoldSlot>,
    free_slots: Vec<u32>,
    held: usize,
}

impl<A: NeighborAddr> NeighborTable<A> {
    pub fn new(cfg: NeighborConfig) -> NeighborTable<A> {
        let mut map = IntMap::default();
        map.reserve(cfg.max_entries);
        let slots = (0..cfg.max_unresolved)
            .map(|_| HoldSlot {
                len: 0,
                descs: vec![Desc::default(); cfg.hold_per_entry].into_boxed_slice(),
            })
            .collect();
        NeighborTable {
            cfg,
            map,
            hot: Box::new([Hot::none(A::EMPTY); HOT_ENTRIES]),
            epoch: 0,
            slots,
            free_slots: (0..cfg.max_unresolved as u32).rev().collect(),
            held: 0,
        }
    }

    pub fn config(&self) -> &NeighborConfig {
        &self.cfg
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Packets currently held for resolution.
    pub fn held(&self) -> usize {
        self.held
    }

    /// The MAC of a resolved neighbour, without side effects.
    pub fn get(&self, port: u8, ip: A) -> Option<EthernetAddress> {
        match self.map.get(&key(port, ip))? {
            State::Reachable { mac, .. } | State::Probe { mac, .. } => Some(*mac),
            State::Incomplete { .. } => None,
        }
    }

    /// The MAC of `ip` on `port` when the entry is cached and within its reachable time at
    /// `now`: what [`resolve`](Self::resolve) would answer with [`Resolve::Hit`], without its
    /// side effects (there are none for such an entry). None says "ask `resolve`".
    #[inline(always)]
    pub fn lookup_hot(&self, port: u8, ip: A, now: u64) -> Option<EthernetAddress> {
        self.hot_entry(port, ip, now).map(|h| h.mac)
    }

    /// The end of the reachable time of `ip` on `port` when the reachable cache holds it and
    /// `now` is within it.
    #[inline]
    pub fn hot_deadline(&self, port: u8, ip: A, now: u64) -> Option<u64> {
        self.hot_entry(port, ip, now).map(|h| h.deadline)
    }

    /// The reachable cache's entry for `ip` on `port`, when it holds one and `now` is within
    /// its reachable time.
    #[inline(always)]
    fn hot_entry(&self, port: u8, ip: A, now: u64) -> Option<&Hot<A::Key>> {
        let k = key(port, ip);
        let h = &self.hot[hot_slot::<A>(k)];
        (h.key == k && now <= h.deadline).then_some(h)
    }

    /// Something a caller of [`hot_deadline`](Self::hot_deadline) relies on changed.
    #[inline(always)]
    fn next_epoch(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
    }

    /// Changes with every change to a reachable entry. What [`lookup_hot`](Self::lookup_hot)
    /// answered stays its answer, up to the deadline [`hot_deadline`](Self::hot_deadline)
    /// gave, while the epoch stays the same: a caller may keep it that long.
    #[inline(always)]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    #[inline(always)]
    fn hot_fill(&mut self, k: A::Key, mac: EthernetAddress, confirmed: u64) {
        self.hot[hot_slot::<A>(k)] = Hot {
            key: k,
            deadline: confirmed.saturating_add(self.cfg.reachable_ns),
            mac,
        };
    }

    #[inline(always)]
    fn hot_clear(&mut self, k: A::Key) {
        self.next_epoch();
        let h = &mut self.hot[hot_slot::<A>(k)];
        if h.key == k {
            *h = Hot::none(A::EMPTY);
        }
    }

    /// Resolve `ip` on `port` for `desc`. On [`Resolve::Held`] the table owns `desc`.
    #[inline]
    pub fn resolve(&mut self, port: u8, ip: A, desc: Desc, now: u64) -> Resolve {
        let k = key(port, ip);
        if let Some(mac) = self.lookup_hot(port, ip, now) {
            return Resolve::Hit(mac);
        }
        if let Some(st) = self.map.get_mut(&k) {
            return match st {
                State::Reachable { mac, confirmed } => {
                    let (mac, confirmed) = (*mac, *confirmed);
                    if now.saturating_sub(confirmed) > self.cfg.reachable_ns {
                        *st = State::Probe {
                            mac,
                            probes: 1,
                            next_probe: now + self.cfg.retry_ns,
                        };
                        self.hot_clear(k);
                        Resolve::HitProbe(mac)
                    } else {
                        self.hot_fill(k, mac, confirmed);
                        Resolve::Hit(mac)
                    }
                }
                State::Probe { mac, .. } => Resolve::Hit(*mac),
                State::Incomplete { slot, .. } => {
                    let s = &mut self.slots[*slot as usize];
                    if s.len == s.descs.len() || self.held >= self.cfg.max_held {
                        Resolve::QueueFull
                    } else {
                        s.descs[s.len] = desc;
                        s.len += 1;
                        self.held += 1;
                        Resolve::Held { request: false }
                    }
                }
            };
        }
        if self.map.len() >= self.cfg.max_entries {
            return Resolve::TableFull;
        }
        // Every hold queue together is full: no entry is created, so no slot is taken by a
        // next hop whose first packet could not be kept. Holding resumes as soon as a
        // neighbour answers or is given up (after `max_probes` requests).
        if self.held >= self.cfg.max_held {
            return Resolve::QueueFull;
        }
        let Some(slot) = self.free_slots.pop() else {
            return Resolve::TableFull;
        };
        let s = &mut self.slots[slot as usize];
        s.descs[0] = desc;
        s.len = 1;
        self.held += 1;
        self.map.insert(
            k,
            State::Incomplete {
                probes: 1,
                next_probe: now + self.cfg.retry_ns,
                slot,
            },
        );
        Resolve::Held { request: true }
    }

    /// Record that `ip` on `port` is at `mac` (RFC 826 merge). An existing entry is always
    /// updated; a new one is created only when `create` (the sender asked us) and the table
    /// keeps room after it for every resolution vgate can still start (free hold slots).
    /// Packets that were waiting are appended to `released`. Returns false if nothing was
    /// recorded (no entry and not `create`, or the table is full).
    pub fn learn(
        &mut self,
        port: u8,
        ip: A,
        mac: EthernetAddress,
        now: u64,
        create: bool,
        released: &mut Vec<Desc>,
    ) -> bool {
        let k = key(port, ip);
        // Entries nobody asked vgate to resolve leave room for the resolutions vgate can
        // still start: a flood of ARP from forged on-link senders must not keep it from
        // resolving its own next hops.
        let room = self.map.len() + self.free_slots.len() < self.cfg.max_entries;
        match self.map.get_mut(&k) {
            Some(st) => {
                if let State::Incomplete { slot, .. } = *st {
                    let s = &mut self.slots[slot as usize];
                    released.extend_from_slice(&s.descs[..s.len]);
                    self.held -= s.len;
                    s.len = 0;
                    self.free_slots.push(slot);
                }
                *st = State::Reachable {
                    mac,
                    confirmed: now,
                };
                self.next_epoch();
                self.hot_fill(k, mac, now);
                true
            }
            None if create && room => {
                self.map.insert(
                    k,
                    State::Reachable {
                        mac,
                        confirmed: now,
                    },
                );
                self.next_epoch();
                self.hot_fill(k, mac, now);
                true
            }
            None => false,
        }
    }

    /// True when an entry (in any state) exists.
    pub fn contains(&self, port: u8, ip: A) -> bool {
        self.map.contains_key(&key(port, ip))
    }

    /// Forget every entry on `port` (port removed) or everything; held frames go to `out`.
    pub fn flush(&mut self, out: &mut Vec<Desc>) {
        for st in self.map.values() {
            if let State::Incomplete { slot, .. } = *st {
                let s = &mut self.slots[slot as usize];
                out.extend_from_slice(&s.descs[..s.len]);
                s.len = 0;
                self.free_slots.push(slot);
            }
        }
        self.held = 0;
        self.map.clear();
        self.hot.fill(Hot::none(A::EMPTY));
        self.next_epoch();
    }

    /// Timers: re-send requests, give up on silent neighbours. Cheap enough to call every few
    /// milliseconds; it walks the table, so the worker calls it on a timer, not per packet.
    pub fn tick(&mut self, now: u64, out: &mut TickOutput<A>) {
        let cfg = self.cfg;
        let mut dead: Vec<(A::Key, Option<u32>)> = Vec::new();
        for (k, st) in self.map.iter_mut() {
            let port = A::port(*k);
            let ip = A::addr(*k);
            match st {
                State::Incomplete {
                    probes,
                    next_probe,
                    slot,
                } if now >= *next_probe => {
                    if *probes >= cfg.max_probes {
                        dead.push((*k, Some(*slot)));
                    } else {
                        *probes += 1;
                        *next_probe = now + cfg.retry_ns;
                        out.requests.push((port, ip));
                    }
                }
                // Unused since it was confirmed (use past `reachable_ns` turns it into Probe):
                // forget it, as Linux collects stale entries, so entries learned from
                // senders that never come back do not fill the table for good.
                State::Reachable { confirmed, .. }
                    if now.saturating_sub(*confirmed) > STALE_FACTOR * cfg.reachable_ns =>
                {
                    dead.push((*k, None));
                }
                State::Probe {
                    probes, next_probe, ..
                } if now >= *next_probe => {
                    if *probes >= cfg.max_probes {
                        dead.push((*k, None));
                    } else {
                        *probes += 1;
                        *next_probe = now + cfg.retry_ns;
                        out.requests.push((port, ip));
                    }
                }
                _ => {}
            }
        }
        for (k, slot) in dead {
            self.map.remove(&k);
            self.hot_clear(k);
            if let Some(slot) = slot {
                let s = &mut self.slots[slot as usize];
                let port = A::port(k);
                out.failed
                    .extend(s.descs[..s.len].iter().map(|d| (port, *d)));
                self.held -= s.len;
                s.len = 0;
                self.free_slots.push(slot);
            }
        }
    }

    /// Every entry, for the API.
    pub fn entries(&self) -> impl Iterator<Item = NeighborView<A>> + '_ {
        self.map.iter().map(|(k, st)| {
            let (mac, state) = match st {
                State::Incomplete { .. } => (None, "incomplete"),
                State::Reachable { mac, .. } => (Some(*mac), "reachable"),
                State::Probe { mac, .. } => (Some(*mac), "probe"),
            };
            NeighborView {
                port: A::port(*k),
                ip: A::addr(*k),
                mac,
                state,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x42]);
    const S: u64 = 1_000_000_000;

    fn d(i: u64) -> Desc {
        Desc {
            addr: i * 4096 + 256,
            len: 60,
        }
    }

    fn small() -> NeighborTable {
        NeighborTable::<u32>::new(NeighborConfig {
            max_entries: 4,
            max_unresolved: 2,
            hold_per_entry: 2,
            ..Default::default()
        })
    }

    /// The epoch moves with every change a caller of `hot_deadline` relies on, and not when
    /// the reachable cache is refilled from an unchanged entry.
    #[test]
    fn epoch_moves_when_a_reachable_entry_changes() {
        let mut t = NeighborTable::<u32>::new(NeighborConfig::default());
        let r = t.cfg.reachable_ns;
        let mut out = Vec::new();
        let e0 = t.epoch();
        assert!(t.learn(1, 7, MAC, S, true, &mut out));
        let e1 = t.epoch();
        assert_ne!(e1, e0, "learned");
        assert_eq!(t.hot_deadline(1, 7, S), Some(S + r));
        assert_eq!(t.hot_deadline(1, 7, S + r + 1), None);
        // Evicted from the reachable cache by another key of its slot, then refilled by
        // `resolve` from the unchanged entry: same MAC, same deadline, same epoch.
        let k = key(1, 7u32);
        t.hot[hot_slot::<u32>(k)] = Hot::none(u32::EMPTY);
        assert_eq!(t.resolve(1, 7, d(0), 2 * S), Resolve::Hit(MAC));
        assert_eq!(t.epoch(), e1, "refilled");
        assert_eq!(t.hot_deadline(1, 7, 2 * S), Some(S + r));
        // Refreshed, then gone to probe, then flushed: each moves it.
        assert!(t.learn(1, 7, MAC, 3 * S, false, &mut out));
        let e2 = t.epoch();
        assert_ne!(e2, e1, "refreshed");
        assert_eq!(t.resolve(1, 7, d(0), 3 * S + r + 1), Resolve::HitProbe(MAC));
        let e3 = t.epoch();
        assert_ne!(e3, e2, "probe");
        t.flush(&mut out);
        assert_ne!(t.epoch(), e3, "flushed");
    }

    #[test]
    fn total_held_bound_spans_next_hops() {
        let mut t = NeighborTable::<u32>::new(NeighborConfig {
            max_entries: 8,
            max_unresolved: 4,
            hold_per_entry: 4,
            max_held: 3,
            ..Default::default()
        });
        assert_eq!(t.resolve(0, 1, d(0), 0), Resolve::Held { request: true });
        assert_eq!(t.resolve(0, 1, d(1), 0), Resolve::Held { request: false });
        assert_eq!(t.resolve(0, 2, d(2), 0), Resolve::Held { request: true });
        // Room in both queues, none in the total.
        assert_eq!(t.resolve(0, 1, d(3), 0), Resolve::QueueFull);
        assert_eq!(t.resolve(0, 3, d(4), 0), Resolve::QueueFull);
        assert!(
            !t.contains(0, 3),
            "no entry for a next hop whose packet was not held"
        );
        assert_eq!(t.held(), 3);
        let mut rel = Vec::new();
        assert!(t.learn(0, 1, MAC, 1, false, &mut rel));
        assert_eq!(rel, vec![d(0), d(1)]);
        assert_eq!(t.resolve(0, 3, d(5), 2), Resolve::Held { request: true });
    }

    #[test]
    fn hold_then_release_on_reply() {
        let mut t = small();
        assert_eq!(t.resolve(0, 7, d(0), 0), Resolve::Held { request: true });
        assert_eq!(t.resolve(0, 7, d(1), 1), Resolve::Held { request: false });
        assert_eq!(t.resolve(0, 7, d(2), 2), Resolve::QueueFull);
        assert_eq!(t.held(), 2);
        let mut rel = Vec::new();
        assert!(t.learn(0, 7, MAC, 3, false, &mut rel));
        assert_eq!(rel, vec![d(0), d(1)]);
        assert_eq!(t.held(), 0);
        assert_eq!(t.resolve(0, 7, d(3), 4), Resolve::Hit(MAC));
    }

    #[test]
    fn unsolicited_reply_not_learned_unless_create() {
        let mut t = small();
        let mut rel = Vec::new();
        assert!(!t.learn(0, 9, MAC, 0, false, &mut rel));
        assert!(!t.contains(0, 9));
        assert!(t.learn(0, 9, MAC, 0, true, &mut rel));
        assert_eq!(t.get(0, 9), Some(MAC));
    }

    #[test]
    fn retries_then_fails_with_held_packets() {
        let mut t = small();
        t.resolve(1, 5, d(0), 0);
        let mut out = TickOutput::default();
        t.tick(S / 2, &mut out);
        assert!(out.requests.is_empty());
        t.tick(S, &mut out);
        t.tick(2 * S, &mut out);
        assert_eq!(out.requests, vec![(1, 5), (1, 5)]);
        assert!(out.failed.is_empty());
        t.tick(3 * S, &mut out);
        assert_eq!(out.failed, vec![(1, d(0))]);
        assert!(t.is_empty());
        assert_eq!(t.held(), 0);
        // The slot is reusable.
        assert_eq!(
            t.resolve(1, 5, d(1), 4 * S),
            Resolve::Held { request: true }
        );
    }

    #[test]
    fn bounded_unresolved_and_entries() {
        let mut t = small();
        assert_eq!(t.resolve(0, 1, d(0), 0), Resolve::Held { request: true });
        assert_eq!(t.resolve(0, 2, d(1), 0), Resolve::Held { request: true });
        assert_eq!(t.resolve(0, 3, d(2), 0), Resolve::TableFull);
        let mut rel = Vec::new();
        assert!(t.learn(0, 10, MAC, 0, true, &mut rel));
        assert!(t.learn(0, 11, MAC, 0, true, &mut rel));
        assert!(!t.learn(0, 12, MAC, 0, true, &mut rel), "max_entries bound");
    }

    #[test]
    fn learning_leaves_room_for_own_resolutions() {
        let mut t = small();
        let mut rel = Vec::new();
        // max_entries 4, max_unresolved 2: senders asking us may fill 2 entries.
        assert!(t.learn(0, 10, MAC, 0, true, &mut rel));
        assert!(t.learn(0, 11, MAC, 0, true, &mut rel));
        assert!(!t.learn(0, 12, MAC, 0, true, &mut rel), "reserve kept");
        // vgate's own next hops still resolve.
        assert_eq!(t.resolve(0, 1, d(0), 0), Resolve::Held { request: true });
        assert_eq!(t.resolve(0, 2, d(1), 0), Resolve::Held { request: true });
        assert!(t.learn(0, 1, MAC, 1, false, &mut rel));
        assert_eq!(t.resolve(0, 1, d(2), 2), Resolve::Hit(MAC));
    }

    #[test]
    fn unused_reachable_entries_are_collected() {
        let mut t = small();
        let mut rel = Vec::new();
        assert!(t.learn(0, 10, MAC, 0, true, &mut rel));
        let r = t.config().reachable_ns;
        let mut out = TickOutput::default();
        t.tick(STALE_FACTOR * r, &mut out);
        assert!(t.contains(0, 10), "not stale yet");
        t.tick(STALE_FACTOR * r + 1, &mut out);
        assert!(!t.contains(0, 10), "stale entry removed");
        assert!(out.requests.is_empty() && out.failed.is_empty());
    }

    #[test]
    fn stale_entry_is_probed_and_expires() {
        let mut t = small();
        let mut rel = Vec::new();
        t.learn(0, 7, MAC, 0, true, &mut rel);
        let late = t.config().reachable_ns + 1;
        assert_eq!(t.resolve(0, 7, d(0), late), Resolve::HitProbe(MAC));
        assert_eq!(t.resolve(0, 7, d(0), late), Resolve::Hit(MAC));
        let mut out = TickOutput::default();
        for i in 1..=3 {
            t.tick(late + i * S, &mut out);
        }
        assert_eq!(out.requests.len(), 2);
        assert!(!t.contains(0, 7), "unanswered probes remove the entry");
        // A reply during probing confirms it again.
        t.learn(0, 8, MAC, 0, true, &mut rel);
        t.resolve(0, 8, d(0), late);
        t.learn(0, 8, MAC, late + 10, false, &mut rel);
        assert_eq!(t.resolve(0, 8, d(0), late + 20), Resolve::Hit(MAC));
    }

    /// The reachable cache answers exactly what the table would: a new MAC at once, nothing
    /// for a removed or flushed entry, and nothing past the reachable time (so `resolve`
    /// re-probes).
    #[test]
    fn reachable_cache_follows_the_table() {
        const OTHER: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x43]);
        let mut t = small();
        let mut rel = Vec::new();
        let r = t.config().reachable_ns;
        assert_eq!(t.lookup_hot(0, 7, 0), None, "unknown");
        t.learn(0, 7, MAC, 0, true, &mut rel);
        assert_eq!(t.lookup_hot(0, 7, 5), Some(MAC));
        assert_eq!(t.lookup_hot(1, 7, 5), None, "another port");
        t.learn(0, 7, OTHER, 10, false, &mut rel);
        assert_eq!(t.lookup_hot(0, 7, 20), Some(OTHER), "the new MAC at once");
        assert_eq!(t.lookup_hot(0, 7, 10 + r), Some(OTHER));
        assert_eq!(t.lookup_hot(0, 7, 11 + r), None, "past its reachable time");
        assert_eq!(t.resolve(0, 7, d(0), 11 + r), Resolve::HitProbe(OTHER));
        assert_eq!(t.lookup_hot(0, 7, 11 + r), None, "being probed");
        // Probes unanswered: the entry goes, and so does anything cached for it.
        let mut out = TickOutput::default();
        for i in 1..=3 {
            t.tick(11 + r + i * S, &mut out);
        }
        assert!(!t.contains(0, 7));
        assert_eq!(t.lookup_hot(0, 7, 0), None);
        // Collected as stale, and flushed.
        t.learn(0, 8, MAC, 0, true, &mut rel);
        t.tick(STALE_FACTOR * r + 1, &mut out);
        assert!(!t.contains(0, 8));
        assert_eq!(t.lookup_hot(0, 8, 0), None, "collected");
        t.learn(0, 9, MAC, 0, true, &mut rel);
        assert_eq!(t.resolve(0, 9, d(0), 1), Resolve::Hit(MAC));
        t.flush(&mut rel);
        assert_eq!(t.lookup_hot(0, 9, 1), None, "flushed");
        // Resolved after holding: cached from the reply on.
        assert_eq!(t.resolve(0, 9, d(1), 2), Resolve::Held { request: true });
        assert_eq!(t.lookup_hot(0, 9, 2), None, "incomplete");
        t.learn(0, 9, OTHER, 3, false, &mut rel);
        assert_eq!(t.lookup_hot(0, 9, 4), Some(OTHER));
    }
}
