//! A small read-mostly map from IPv4 address to a u16 index (floating IPs by address, SNAT
//! rules by external address), looked up for every NAT packet.
//!
//! Open addressing over 8-byte slots (`1 << 63 | value << 32 | address`, 0 when empty),
//! power of two, at most a quarter full: most hits read the home slot and stop. Sixty-four
//! floating IPs take 256 slots (2 KiB, in L1). Built by the control thread (inserts rehash as
//! it grows); the workers only read it.
//!
//! A miss is told first by an [`AddrFilter`] of the keys: whether the home slot of a
//! quarter-full table is taken is a coin the branch predictor loses one time in four, and
//! most lookups on the SNAT path (tenant sources that have no floating IP) miss. Sixty-four
//! keys set at most 64 of its 4096 bits (1.6 %); with thousands of keys the filter passes
//! more and more, and the slots decide as before.

const OCCUPIED: u64 = 1 << 63;

/// 2^32 / golden ratio, odd: the Fibonacci hashing multiplier for 32-bit keys.
const FIB32: u32 = 0x9e37_79b9;

/// A 4096-bit filter of addresses (512 bytes), one bit per address at the top 12 bits of its
/// Fibonacci hash, so that addresses differing in a few low bits (a subnet's hosts) spread
/// over it: false means the address is certainly not in the set, true means look. For a
/// check on every packet that almost never matches, a branch that predicts well.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrFilter(Box<[u64; 64]>);

impl Default for AddrFilter {
    fn default() -> AddrFilter {
        AddrFilter(Box::new([0; 64]))
    }
}

impl AddrFilter {
    /// The hash the filter (and [`AddrMap`]'s slots) are taken from.
    #[inline(always)]
    pub fn hash(a: u32) -> u32 {
        a.wrapping_mul(FIB32)
    }

    /// The word and bit of `hash`: its top 12 bits.
    #[inline(always)]
    fn at(hash: u32) -> (usize, u64) {
        let b = (hash >> 20) as usize;
        (b / 64, 1 << (b % 64))
    }

    pub fn insert(&mut self, a: u32) {
        self.insert_hashed(Self::hash(a));
    }

    fn insert_hashed(&mut self, hash: u32) {
        let (w, bit) = Self::at(hash);
        self.0[w] |= bit;
    }

    #[inline(always)]
    pub fn maybe(&self, a: u32) -> bool {
        self.maybe_hashed(Self::hash(a))
    }

    #[inline(always)]
    fn maybe_hashed(&self, hash: u32) -> bool {
        let (w, bit) = Self::at(hash);
        self.0[w] & bit != 0
    }
}

#[derive(Clone, Debug)]
pub struct AddrMap {
    slots: Box<[u64]>,
    /// 32 - log2(slots.len()).
    shift: u32,
    len: usize,
    /// The value of each entry, to hand out references (`get` returns `Option<&u16>` like a
    /// `HashMap`); indexed like `slots`.
    values: Box<[u16]>,
    /// Every key present; never cleared (there is no removal).
    filter: AddrFilter,
}

impl Default for AddrMap {
    fn default() -> Self {
        AddrMap::with_slots(4)
    }
}

impl AddrMap {
    fn with_slots(n: usize) -> AddrMap {
        debug_assert!(n.is_power_of_two());
        AddrMap {
            slots: vec![0; n].into_boxed_slice(),
            shift: 32 - n.trailing_zeros(),
            len: 0,
            values: vec![0; n].into_boxed_slice(),
            filter: AddrFilter::default(),
        }
    }

    #[inline(always)]
    fn home(&self, hash: u32) -> usize {
        // u64 shift: 32 when the table has one slot would overflow a u32 shift.
        (u64::from(hash) >> self.shift) as usize
    }

    /// The slot holding `key`, and its word.
    #[inline(always)]
    fn find(&self, key: u32) -> Option<(usize, u64)> {
        let h = AddrFilter::hash(key);
        if !self.filter.maybe_hashed(h) {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(h);
        // Terminates: the table is never more than a quarter full.
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if s as u32 == key {
                return Some((i, s));
            }
            i = (i + 1) & mask;
        }
    }

    /// The slot holding `key`.
    #[inline(always)]
    fn slot_of(&self, key: u32) -> Option<usize> {
        self.find(key).map(|(i, _)| i)
    }

    /// The value for `key`.
    #[inline(always)]
    pub fn get(&self, key: &u32) -> Option<&u16> {
        self.slot_of(*key).map(|i| &self.values[i])
    }

    /// The value for `key`, by value (from the slot's word: one load).
    #[inline(always)]
    pub fn lookup(&self, key: u32) -> Option<u16> {
        self.find(key).map(|(_, s)| (s >> 32) as u16)
    }

    #[inline]
    pub fn contains_key(&self, key: &u32) -> bool {
        self.slot_of(*key).is_some()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Insert or replace; returns the previous value.
    pub fn insert(&mut self, key: u32, value: u16) -> Option<u16> {
        if let Some(i) = self.slot_of(key) {
            let old = self.values[i];
            self.slots[i] = OCCUPIED | u64::from(value) << 32 | u64::from(key);
            self.values[i] = value;
            return Some(old);
        }
        if (self.len + 1) * 4 > self.slots.len() {
            let mut bigger = AddrMap::with_slots(self.slots.len() * 2);
            for (k, v) in self.iter() {
                bigger.insert(k, v);
            }
            *self = bigger;
        }
        let mask = self.slots.len() - 1;
        let h = AddrFilter::hash(key);
        let mut i = self.home(h);
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = OCCUPIED | u64::from(value) << 32 | u64::from(key);
        self.values[i] = value;
        self.filter.insert_hashed(h);
        self.len += 1;
        None
    }

    /// Entries, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u16)> + '_ {
        self.slots
            .iter()
            .filter(|s| **s != 0)
            .map(|s| (*s as u32, (*s >> 32) as u16))
    }
}

impl FromIterator<(u32, u16)> for AddrMap {
    fn from_iter<I: IntoIterator<Item = (u32, u16)>>(iter: I) -> Self {
        let mut m = AddrMap::default();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn matches_a_hashmap() {
        let mut m = AddrMap::default();
        let mut r = HashMap::new();
        let mut x = 0x1234_5678u32;
        for i in 0..3000u32 {
            // Addresses from a few /24s plus pseudo-random ones, including 0.
            let k = if i % 3 == 0 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x
            } else {
                0xcb00_7100 + (i % 700)
            };
            let k = if i == 5 { 0 } else { k };
            assert_eq!(m.insert(k, i as u16), r.insert(k, i as u16));
            if i % 97 == 0 {
                for (&k, &v) in &r {
                    assert_eq!(m.get(&k), Some(&v));
                    assert_eq!(m.lookup(k), Some(v));
                }
                assert_eq!(m.lookup(0xdead_beef), r.get(&0xdead_beef).copied());
            }
        }
        assert_eq!(m.len(), r.len());
        assert_eq!(m.iter().count(), r.len());
        assert!(m.len() * 4 <= m.slots.len());
        assert!(!m.contains_key(&0x0a00_0001));
    }
}
