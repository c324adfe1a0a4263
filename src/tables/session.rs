//! An open-addressing hash table of SNAT sessions: 16-byte slots (a 64-bit key and a 64-bit
//! value) stored inline, so a lookup that hits reads one cache line and nothing else.
//!
//! * Power-of-two slot count, allocated once: at least 5/4 of the entry bound, so the table is
//!   at most 4/5 full and linear probing stays short (Knuth, TAOCP vol. 3, 6.4: about 3
//!   probes for a hit and 13 for a miss at 4/5, 1.5 and 2.5 at 1/2), four slots per line.
//! * The slots are an anonymous mapping, 2 MiB aligned and advised for transparent huge
//!   pages once it is that large: random lookups over tens of MiB would otherwise take a TLB
//!   miss (a nested page walk on a VM) on top of every cache miss, and software prefetches
//!   wait for those walks.
//! * Fibonacci (multiplicative) hashing: one multiply, the high bits index the table.
//! * Deletion by backward shift (Knuth's Algorithm R), so there are no tombstones and probe
//!   lengths never degrade under churn. Moving an entry changes its slot; the caller is told
//!   (SNAT keeps a port -> slot index).
//! * [`SessionMap::prefetch`]: a batch computes its hashes, prefetches every home slot, then
//!   looks up, so the cache misses of 64 random sessions overlap instead of queueing.
//!
//! Key 0 marks an empty slot; callers never use it (SNAT keys carry the protocol + 1).

/// One slot: key, value. Both 0 when empty.
type Slot = [u64; 2];

const EMPTY: u64 = 0;

/// 2^64 / golden ratio, odd: the Fibonacci hashing multiplier.
const FIB: u64 = 0x9e37_79b9_7f4a_7c15;

pub struct SessionMap {
    slots: Slots,
    mask: usize,
    /// 64 - log2(slots.len()): the hash is the top bits of key * FIB.
    shift: u32,
    len: usize,
    max: usize,
}

impl SessionMap {
    /// A table for up to `max` entries (at least 1), all memory reserved now ([`Slots`]).
    /// The slot count is the power of two at or above 5/4 `max`: at most 4/5 full, about 3
    /// probes (one cache line) for a hit.
    pub fn new(max: usize) -> SessionMap {
        let max = max.max(1);
        let n = (max + max / 4 + 1).next_power_of_two().max(8);
        SessionMap {
            slots: Slots::map(n),
            mask: n - 1,
            shift: 64 - n.trailing_zeros(),
            len: 0,
            max,
        }
    }

    /// Entries held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when `max` entries are held: inserts fail.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len >= self.max
    }

    /// Number of slots (a power of two).
    #[inline]
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Home slot of `key`.
    #[inline(always)]
    pub fn hash(&self, key: u64) -> usize {
        (key.wrapping_mul(FIB) >> self.shift) as usize
    }

    /// Start loading the cache line of home slot `h` (a [`SessionMap::hash`]).
    #[inline(always)]
    pub fn prefetch(&self, h: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // wrapping_add: no reference is made, and a prefetch never faults.
            let p = self.slots.as_ptr().wrapping_add(h & self.mask);
            // SAFETY: prefetching is a hint with no architectural effect on memory; SSE is
            // part of the x86_64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = h;
    }

    /// The slot holding `key` (whose home slot is `h`), if any.
    #[inline(always)]
    pub fn find(&self, key: u64, h: usize) -> Option<usize> {
        debug_assert_ne!(key, EMPTY);
        let mut i = h & self.mask;
        // Terminates: at most `max` < slots entries, so an empty slot exists.
        loop {
            let k = self.slots[i][0];
            if k == key {
                return Some(i);
            }
            if k == EMPTY {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Insert `key` (not present; home slot `h`) with `value`: its slot, or None when full.
    #[inline]
    pub fn insert(&mut self, key: u64, value: u64, h: usize) -> Option<usize> {
        debug_assert_ne!(key, EMPTY);
        debug_assert!(self.find(key, h).is_none());
        if self.is_full() {
            return None;
        }
        let mut i = h & self.mask;
        while self.slots[i][0] != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = [key, value];
        self.len += 1;
        Some(i)
    }

    /// Key of slot `i` (0: empty).
    #[inline(always)]
    pub fn key(&self, i: usize) -> u64 {
        self.slots[i][0]
    }

    /// Value of slot `i`.
    #[inline(always)]
    pub fn value(&self, i: usize) -> u64 {
        self.slots[i][1]
    }

    #[inline(always)]
    pub fn value_mut(&mut self, i: usize) -> &mut u64 {
        &mut self.slots[i][1]
    }

    /// Remove the entry of occupied slot `i`. Entries after it in its probe run move back to
    /// close the gap; `moved(key, value, new_slot)` is called for each.
    pub fn remove_at(&mut self, i: usize, mut moved: impl FnMut(u64, u64, usize)) {
        debug_assert_ne!(self.slots[i][0], EMPTY);
        let mut hole = i & self.mask;
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let k = self.slots[j][0];
            if k == EMPTY {
                break;
            }
            // The entry at j may fill the hole if the hole lies on its probe path, i.e.
            // cyclically in [home, j): it is at least as far from home as from the hole.
            let home = self.hash(k) & self.mask;
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                self.slots[hole] = self.slots[j];
                moved(k, self.slots[hole][1], hole);
                hole = j;
            }
        }
        self.slots[hole] = [EMPTY, 0];
        self.len -= 1;
    }

    /// Occupied slots: (slot, key, value), in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, u64, u64)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s[0] != EMPTY)
            .map(|(i, s)| (i, s[0], s[1]))
    }
}

const HUGE_PAGE_BYTES: usize = 2 << 20;

/// The slot array: an anonymous private mapping (zero-filled by the kernel, so empty, and
/// backed on first touch), owned like a `Box<[Slot]>`.
struct Slots {
    ptr: std::ptr::NonNull<Slot>,
    len: usize,
    /// Bytes mapped at `ptr`.
    bytes: usize,
}

// SAFETY: `Slots` is the only owner of its mapping (like a `Box<[Slot]>`); it is written only
// through `&mut self` and read through `&self`, with no interior mutability.
unsafe impl Send for Slots {}
// SAFETY: as above; shared references only read.
unsafe impl Sync for Slots {}

impl Slots {
    /// Map `len` empty slots. Panics if the kernel refuses the memory, as a failed `Vec`
    /// allocation would abort.
    fn map(len: usize) -> Slots {
        let bytes = len * std::mem::size_of::<Slot>();
        // Huge pages only pay off (and only fit) from 2 MiB up; smaller tables are mapped
        // as they are.
        let huge = bytes >= HUGE_PAGE_BYTES;
        let span = if huge { bytes + HUGE_PAGE_BYTES } else { bytes };
        // SAFETY: a fresh anonymous private mapping; no existing memory is affected.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(
            raw != libc::MAP_FAILED,
            "session table: mapping {span} bytes failed: {}",
            std::io::Error::last_os_error()
        );
        let mut start = raw as usize;
        if huge {
            // Trim to a 2 MiB aligned start so transparent huge pages can back all of it.
            let base = start;
            start = (base + HUGE_PAGE_BYTES - 1) & !(HUGE_PAGE_BYTES - 1);
            let head = start - base;
            let tail = span - head - bytes;
            // SAFETY: both ranges lie inside the mapping just created and outside the part
            // kept; `bytes` is a multiple of 2 MiB here (a power of two of at least 2 MiB), so
            // the tail starts page aligned.
            unsafe {
                if head > 0 {
                    libc::munmap(raw, head);
                }
                if tail > 0 {
                    libc::munmap((start + bytes) as *mut libc::c_void, tail);
                }
                // Best effort: without transparent huge pages the table works the same with
                // 4 KiB pages.
                libc::madvise(start as *mut libc::c_void, bytes, libc::MADV_HUGEPAGE);
            }
        }
        let ptr = std::ptr::NonNull::new(start as *mut Slot).expect("mmap never returns null");
        Slots { ptr, len, bytes }
    }
}

impl std::ops::Deref for Slots {
    type Target = [Slot];
    #[inline(always)]
    fn deref(&self) -> &[Slot] {
        // SAFETY: the mapping holds `len` slots of two u64s, zero-filled by the kernel (valid
        // values), page aligned, lives as long as `self`, and is only mutated through
        // `&mut self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for Slots {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [Slot] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the range `map` kept; no reference outlives `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use crate::tables::test_rng::Rng;

    /// The table agrees with `reference`, and every entry is reachable from its home slot
    /// without crossing an empty slot (the linear-probing invariant backward shift keeps).
    fn check(m: &SessionMap, reference: &HashMap<u64, u64>) {
        assert_eq!(m.len(), reference.len());
        for (&k, &v) in reference {
            let i = m.find(k, m.hash(k)).expect("present");
            assert_eq!(m.value(i), v);
        }
        for (i, k, _) in m.iter() {
            let mut p = m.hash(k) & m.mask;
            while p != i {
                assert_ne!(m.key(p), EMPTY, "gap on the probe path of {k:#x}");
                p = (p + 1) & m.mask;
            }
        }
    }

    #[test]
    fn insert_lookup_remove() {
        let mut m = SessionMap::new(10);
        assert_eq!(m.slots(), 16);
        let h = m.hash(7);
        assert_eq!(m.find(7, h), None);
        let i = m.insert(7, 70, h).unwrap();
        assert_eq!(m.find(7, h), Some(i));
        assert_eq!(m.value(i), 70);
        *m.value_mut(i) = 71;
        assert_eq!(m.value(m.find(7, h).unwrap()), 71);
        m.remove_at(i, |_, _, _| panic!("nothing to move"));
        assert_eq!(m.find(7, h), None);
        assert!(m.is_empty());
    }

    #[test]
    fn full_at_the_bound() {
        let mut m = SessionMap::new(5);
        for k in 1..=5u64 {
            assert!(m.insert(k, k, m.hash(k)).is_some());
        }
        assert!(m.is_full());
        assert_eq!(m.insert(6, 6, m.hash(6)), None);
        let i = m.find(3, m.hash(3)).unwrap();
        m.remove_at(i, |_, _, _| {});
        assert!(m.insert(6, 6, m.hash(6)).is_some());
    }

    /// A run of colliding keys that wraps from the last slot to the first, then removals in
    /// every position of it.
    #[test]
    fn wraparound_runs_shift_back() {
        let probe = SessionMap::new(10);
        let last = probe.slots() - 1;
        // Keys whose home is the last slot, and one whose home is slot 0.
        let homed = |slot: usize, n: usize| -> Vec<u64> {
            (1u64..)
                .filter(|&k| probe.hash(k) == slot)
                .take(n)
                .collect()
        };
        let at_end = homed(last, 3);
        let at_zero = homed(0, 2);
        for remove in 0..5 {
            let mut m = SessionMap::new(10);
            let mut reference = HashMap::new();
            let keys: Vec<u64> = at_end.iter().chain(&at_zero).copied().collect();
            for &k in &keys {
                m.insert(k, k * 10, m.hash(k)).unwrap();
                reference.insert(k, k * 10);
            }
            // The three end keys occupy last, 0, 1; the zero keys 2, 3.
            assert_eq!(m.key(last), at_end[0]);
            assert_eq!(m.key(1), at_end[2]);
            assert_eq!(m.key(3), at_zero[1]);
            let k = keys[remove];
            let i = m.find(k, m.hash(k)).unwrap();
            let mut moves = Vec::new();
            m.remove_at(i, |k, v, at| moves.push((k, v, at)));
            reference.remove(&k);
            for (k, v, at) in moves {
                assert_eq!(m.key(at), k);
                assert_eq!(m.value(at), v);
            }
            check(&m, &reference);
        }
    }

    /// Random inserts, lookups and removals against a `HashMap`, with a small key space so
    /// that runs collide and wrap, and the bound reached now and then.
    #[test]
    fn random_operations_match_a_hashmap() {
        for (max, keyspace, seed) in [(12, 40, 1), (100, 300, 2), (1000, 1500, 3)] {
            let mut m = SessionMap::new(max);
            let mut reference: HashMap<u64, u64> = HashMap::new();
            // Where each key is, as `moved` reports it (like SNAT's port -> slot index).
            let mut where_: HashMap<u64, usize> = HashMap::new();
            let mut rng = Rng(seed);
            for step in 0..50_000u64 {
                let k = 1 + rng.next() % keyspace;
                let h = m.hash(k);
                match rng.next() % 3 {
                    0 => match (m.find(k, h), reference.contains_key(&k)) {
                        (Some(_), true) => {}
                        (None, false) => {
                            let r = m.insert(k, step, h);
                            if reference.len() >= max {
                                assert_eq!(r, None);
                            } else {
                                let at = r.unwrap();
                                reference.insert(k, step);
                                where_.insert(k, at);
                            }
                        }
                        other => panic!("disagree on {k}: {other:?}"),
                    },
                    1 => {
                        let got = m.find(k, h).map(|i| m.value(i));
                        assert_eq!(got, reference.get(&k).copied());
                        if let Some(i) = m.find(k, h) {
                            assert_eq!(where_[&k], i);
                        }
                    }
                    _ => {
                        if let Some(i) = m.find(k, h) {
                            m.remove_at(i, |k, _, at| {
                                where_.insert(k, at);
                            });
                            reference.remove(&k);
                            where_.remove(&k);
                        } else {
                            assert!(!reference.contains_key(&k));
                        }
                    }
                }
                if step % 5000 == 0 {
                    check(&m, &reference);
                }
            }
            check(&m, &reference);
        }
    }
}
