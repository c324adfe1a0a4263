//! IPv4 longest-prefix match: DIR-24-8.
//!
//! The layout of Gupta, Lin and McKeown, "Routing Lookups in Hardware at Memory Access Speeds"
//! (IEEE INFOCOM 1998), as DPDK `rte_lpm` uses it. `tbl24` has one entry per /24 block,
//! indexed by the top 24 address bits. An entry is empty, a leaf (the value of the longest
//! prefix of length <= 24 covering the whole block), or the index of a 256-entry `tbl8` group
//! that resolves the last 8 bits for blocks holding prefixes longer than /24. A lookup is one
//! load, or two when the block has a group; nothing walks a list.
//!
//! The control thread builds an [`Lpm`] from scratch with an [`LpmBuilder`]; the result is
//! immutable, `Send + Sync`, and shared with the workers behind an `Arc`.
//!
//! # Memory
//!
//! Entries are `u32`, so `tbl24` is 2^24 * 4 bytes = 64 MiB of *virtual* memory per table. It
//! is an anonymous private mapping: pages never written stay unbacked (reads of them see the
//! shared zero page), so the resident cost is proportional to the address space the routes
//! cover: 4 KiB per 1024 /24 blocks (a /14) written, up to the full 64 MiB with a default
//! route. The mapping is 2 MiB aligned and advised `MADV_HUGEPAGE`, so with transparent huge
//! pages the resident size rounds up to 2 MiB chunks (each covers a /5) and a lookup costs
//! fewer TLB misses. Each `tbl8` group costs 1 KiB on the heap, one per /24 block that holds a
//! prefix longer than /24. [`Lpm::memory_bytes`] reports the 4 KiB-page figure.
//!
//! `u16` entries would halve the virtual size, but leave 15 bits for both values and group
//! indices; with random addresses every lookup misses the cache either way, so `u32` keeps
//! value space (2^30 next hops) and group space (every /24 block) without a second format.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::ptr::NonNull;

const TBL24_ENTRIES: usize = 1 << 24;
const TBL24_BYTES: usize = TBL24_ENTRIES * size_of::<u32>();
const TBL8_GROUP_ENTRIES: usize = 256;
const PAGE_BYTES: usize = 4096;
const PAGE_ENTRIES: usize = PAGE_BYTES / size_of::<u32>();
const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Entry encoding. `0` is empty. A leaf is `VALID | value`. A tbl24 entry pointing at a group
/// is `GROUP | group index`; tbl8 entries are never `GROUP`.
const VALID: u32 = 1 << 31;
const GROUP: u32 = 1 << 30;
const PAYLOAD: u32 = GROUP - 1;

/// Group budget of a new [`LpmBuilder`]: 65536 groups, 64 MiB of `tbl8`.
pub const DEFAULT_MAX_TBL8_GROUPS: u32 = 1 << 16;

/// Most groups a table can need: one per /24 block.
const TBL8_GROUPS_LIMIT: u32 = 1 << 24;

/// Why a route was refused or a table could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LpmError {
    /// Prefix length above 32.
    PrefixLength { len: u8 },
    /// The prefix has bits set below its length (e.g. 10.0.0.1/8).
    HostBitsSet { prefix: u32, len: u8 },
    /// Value not below [`Lpm::MAX_VALUE`].
    ValueTooLarge { value: u32 },
    /// More /24 blocks hold prefixes longer than /24 than the builder's group budget allows.
    Tbl8Exhausted { max: u32 },
    /// Mapping `tbl24` failed (`errno` of `mmap`).
    Map { errno: i32 },
}

impl fmt::Display for LpmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LpmError::PrefixLength { len } => {
                write!(f, "prefix length {len} is above 32")
            }
            LpmError::HostBitsSet { prefix, len } => write!(
                f,
                "prefix {}/{len} has host bits set (network is {}/{len})",
                Ipv4Addr::from(prefix),
                Ipv4Addr::from(prefix & mask(len))
            ),
            LpmError::ValueTooLarge { value } => write!(
                f,
                "route value {value} is not below the limit {}",
                Lpm::MAX_VALUE
            ),
            LpmError::Tbl8Exhausted { max } => write!(
                f,
                "more than {max} /24 blocks hold prefixes longer than /24 (tbl8 groups exhausted)"
            ),
            LpmError::Map { errno } => write!(
                f,
                "cannot map the 64 MiB route table: {}",
                std::io::Error::from_raw_os_error(errno)
            ),
        }
    }
}

impl std::error::Error for LpmError {}

/// Network mask of a prefix length in 0..=32.
#[inline]
fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

/// Collects routes; [`LpmBuilder::build`] turns them into an [`Lpm`].
#[derive(Clone, Debug)]
pub struct LpmBuilder {
    /// Keyed by (length, prefix) so iteration yields shorter prefixes first: the build order.
    routes: BTreeMap<(u8, u32), u32>,
    max_tbl8_groups: u32,
}

impl Default for LpmBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LpmBuilder {
    /// An empty builder with a budget of [`DEFAULT_MAX_TBL8_GROUPS`] tbl8 groups.
    pub fn new() -> Self {
        LpmBuilder {
            routes: BTreeMap::new(),
            max_tbl8_groups: DEFAULT_MAX_TBL8_GROUPS,
        }
    }

    /// Sets the tbl8 group budget (1 KiB each). Values above 2^24, the number of /24 blocks,
    /// are clamped to it since no table can need more.
    pub fn with_max_tbl8_groups(mut self, max: u32) -> Self {
        self.max_tbl8_groups = max.min(TBL8_GROUPS_LIMIT);
        self
    }

    /// Adds `prefix/len -> value`. `prefix` is in host byte order and must have no bits set
    /// below `len`; `value` must be below [`Lpm::MAX_VALUE`]. A later insert of the same
    /// prefix and length replaces the earlier value.
    pub fn insert(&mut self, prefix: u32, len: u8, value: u32) -> Result<(), LpmError> {
        if len > 32 {
            return Err(LpmError::PrefixLength { len });
        }
        if prefix & !mask(len) != 0 {
            return Err(LpmError::HostBitsSet { prefix, len });
        }
        if value >= Lpm::MAX_VALUE {
            return Err(LpmError::ValueTooLarge { value });
        }
        self.routes.insert((len, prefix), value);
        Ok(())
    }

    /// Number of distinct prefixes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Builds the table: prefixes in ascending length, each longer one overwriting the range
    /// it covers, so every entry ends up holding its longest match. A prefix longer than /24
    /// landing on a tbl24 leaf (or empty entry) first expands it into a tbl8 group pre-filled
    /// with that leaf. Cost: the number of entries the prefixes cover, summed over prefixes.
    pub fn build(self) -> Result<Lpm, LpmError> {
        let mut tbl24 = Tbl24::map()?;
        let t24 = tbl24.as_mut_slice();
        let mut tbl8: Vec<u32> = Vec::new();
        let mut touched = PageSet::default();

        for (&(len, prefix), &value) in &self.routes {
            let leaf = VALID | value;
            if len <= 24 {
                let start = (prefix >> 8) as usize;
                let end = start + (1usize << (24 - len));
                t24[start..end].fill(leaf);
                touched.mark(start, end);
                continue;
            }
            let i24 = (prefix >> 8) as usize;
            let entry = t24[i24];
            let group = if entry & GROUP != 0 {
                (entry & PAYLOAD) as usize
            } else {
                let group = tbl8.len() / TBL8_GROUP_ENTRIES;
                if group >= self.max_tbl8_groups as usize {
                    return Err(LpmError::Tbl8Exhausted {
                        max: self.max_tbl8_groups,
                    });
                }
                tbl8.resize(tbl8.len() + TBL8_GROUP_ENTRIES, entry);
                t24[i24] = GROUP | group as u32;
                touched.mark(i24, i24 + 1);
                group
            };
            let start = group * TBL8_GROUP_ENTRIES + (prefix & 0xff) as usize;
            let end = start + (1usize << (32 - len));
            tbl8[start..end].fill(leaf);
        }

        Ok(Lpm {
            tbl24,
            tbl8: tbl8.into_boxed_slice(),
            routes: self.routes.len(),
            tbl24_touched_bytes: touched.count() * PAGE_BYTES,
        })
    }
}

/// Which 4 KiB pages of tbl24 the build wrote.
struct PageSet {
    bits: [u64; TBL24_BYTES / PAGE_BYTES / 64],
}

impl Default for PageSet {
    fn default() -> Self {
        PageSet {
            bits: [0; TBL24_BYTES / PAGE_BYTES / 64],
        }
    }
}

impl PageSet {
    /// Marks the pages holding tbl24 entries `start..end` (non-empty).
    fn mark(&mut self, start: usize, end: usize) {
        for page in start / PAGE_ENTRIES..=(end - 1) / PAGE_ENTRIES {
            self.bits[page / 64] |= 1 << (page % 64);
        }
    }

    fn count(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// The 64 MiB tbl24 mapping. Owns it; unmaps on drop.
struct Tbl24 {
    ptr: NonNull<u32>,
}

// SAFETY: `Tbl24` is the only owner of its mapping (like a `Box<[u32]>`); it is written only
// through `&mut self` and read through `&self`, with no interior mutability.
unsafe impl Send for Tbl24 {}
// SAFETY: as above; shared references only read.
unsafe impl Sync for Tbl24 {}

impl Tbl24 {
    /// Maps `TBL24_BYTES` of zeroed (empty) entries, 2 MiB aligned, advised for huge pages.
    fn map() -> Result<Self, LpmError> {
        // Over-map by one huge page and trim, so the table starts on a 2 MiB boundary and
        // transparent huge pages can back all of it.
        let span = TBL24_BYTES + HUGE_PAGE_BYTES;
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
        if raw == libc::MAP_FAILED {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            return Err(LpmError::Map { errno });
        }
        let base = raw as usize;
        let start = (base + HUGE_PAGE_BYTES - 1) & !(HUGE_PAGE_BYTES - 1);
        let head = start - base;
        let tail = span - head - TBL24_BYTES;
        // SAFETY: both ranges lie inside the mapping just created and outside the part kept.
        // munmap of a valid page-aligned range of our own mapping cannot fail.
        unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            if tail > 0 {
                libc::munmap((start + TBL24_BYTES) as *mut libc::c_void, tail);
            }
            // Best effort: fails only on kernels without transparent huge pages, where the
            // table works the same with 4 KiB pages.
            libc::madvise(start as *mut libc::c_void, TBL24_BYTES, libc::MADV_HUGEPAGE);
        }
        let ptr = NonNull::new(start as *mut u32).ok_or(LpmError::Map { errno: 0 })?;
        Ok(Tbl24 { ptr })
    }

    #[inline(always)]
    fn as_slice(&self) -> &[u32] {
        // SAFETY: the mapping holds TBL24_ENTRIES u32s, zero-filled by the kernel (a valid
        // u32), lives as long as `self`, and is only mutated through `&mut self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), TBL24_ENTRIES) }
    }

    fn as_mut_slice(&mut self) -> &mut [u32] {
        // SAFETY: as in `as_slice`; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), TBL24_ENTRIES) }
    }
}

impl Drop for Tbl24 {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the range `map` kept; no reference outlives `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), TBL24_BYTES);
        }
    }
}

/// Hints the CPU to start loading the cache line of `p`. No effect on other architectures.
#[inline(always)]
fn prefetch(p: *const u32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and does not dereference `p` architecturally.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// An immutable IPv4 longest-prefix-match table. Build it with [`LpmBuilder`].
pub struct Lpm {
    tbl24: Tbl24,
    tbl8: Box<[u32]>,
    routes: usize,
    tbl24_touched_bytes: usize,
}

impl fmt::Debug for Lpm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lpm")
            .field("routes", &self.routes)
            .field("tbl8_groups", &self.tbl8_groups())
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

impl Lpm {
    /// Values must be strictly below this (30 bits; two bits of each entry are flags).
    pub const MAX_VALUE: u32 = 1 << 30;

    /// The value of the longest prefix containing `addr` (host byte order), if any.
    #[inline]
    pub fn lookup(&self, addr: u32) -> Option<u32> {
        let entry = self.tbl24.as_slice()[(addr >> 8) as usize];
        self.resolve(entry, addr)
    }

    /// Finishes a lookup from the tbl24 entry of `addr`.
    #[inline(always)]
    fn resolve(&self, entry: u32, addr: u32) -> Option<u32> {
        let entry = if entry & GROUP != 0 {
            self.tbl8[Self::tbl8_index(entry, addr)]
        } else {
            entry
        };
        if entry & VALID != 0 {
            Some(entry & PAYLOAD)
        } else {
            None
        }
    }

    #[inline(always)]
    fn tbl8_index(entry: u32, addr: u32) -> usize {
        ((entry & PAYLOAD) as usize) * TBL8_GROUP_ENTRIES + (addr & 0xff) as usize
    }

    /// `out[i] = lookup(addrs[i])` for `i < min(addrs.len(), out.len())`; the rest of `out` is
    /// left as it is. Works in chunks: while one chunk resolves, the tbl24 lines of the next
    /// are prefetched, and within a chunk all loads are independent, so the DRAM misses of a
    /// batch overlap instead of queueing one after another.
    #[inline]
    pub fn lookup_batch(&self, addrs: &[u32], out: &mut [Option<u32>]) {
        const CHUNK: usize = 16;
        let n = addrs.len().min(out.len());
        let (addrs, out) = (&addrs[..n], &mut out[..n]);
        let tbl24 = self.tbl24.as_slice();

        for &addr in &addrs[..n.min(CHUNK)] {
            prefetch(&tbl24[(addr >> 8) as usize]);
        }
        for (c, (chunk, out)) in addrs.chunks(CHUNK).zip(out.chunks_mut(CHUNK)).enumerate() {
            let next = ((c + 1) * CHUNK).min(n);
            for &addr in &addrs[next..(next + CHUNK).min(n)] {
                prefetch(&tbl24[(addr >> 8) as usize]);
            }
            let mut entries = [0u32; CHUNK];
            for (entry, &addr) in entries.iter_mut().zip(chunk) {
                *entry = tbl24[(addr >> 8) as usize];
            }
            for (&entry, &addr) in entries.iter().zip(chunk) {
                if entry & GROUP != 0 {
                    prefetch(&self.tbl8[Self::tbl8_index(entry, addr)]);
                }
            }
            for ((slot, &entry), &addr) in out.iter_mut().zip(&entries).zip(chunk) {
                *slot = self.resolve(entry, addr);
            }
        }
    }

    /// Number of distinct prefixes in the table.
    pub fn routes(&self) -> usize {
        self.routes
    }

    /// Number of 256-entry tbl8 groups (one per /24 block holding a prefix longer than /24).
    pub fn tbl8_groups(&self) -> usize {
        self.tbl8.len() / TBL8_GROUP_ENTRIES
    }

    /// Bytes of table memory in use: the 4 KiB pages of tbl24 the build wrote plus the tbl8
    /// groups. The 64 MiB tbl24 mapping is virtual beyond that; with transparent huge pages
    /// the resident tbl24 part rounds up to 2 MiB chunks.
    pub fn memory_bytes(&self) -> usize {
        self.tbl24_touched_bytes + self.tbl8.len() * size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().unwrap())
    }

    fn build(routes: &[(&str, u8, u32)]) -> Lpm {
        let mut b = LpmBuilder::new();
        for &(p, len, v) in routes {
            b.insert(ip(p), len, v).unwrap();
        }
        b.build().unwrap()
    }

    /// xorshift64 (Marsaglia 2003): deterministic, no dependencies.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
    }

    #[test]
    fn empty_table_matches_nothing() {
        let b = LpmBuilder::new();
        assert!(b.is_empty());
        assert_eq!(b.len(), 0);
        let t = b.build().unwrap();
        for a in [0, 1, ip("10.0.0.1"), ip("255.255.255.255"), 0x8000_0000] {
            assert_eq!(t.lookup(a), None, "{}", Ipv4Addr::from(a));
        }
        assert_eq!(t.routes(), 0);
        assert_eq!(t.tbl8_groups(), 0);
        assert_eq!(t.memory_bytes(), 0);
    }

    #[test]
    fn default_route_matches_everything() {
        let t = build(&[("0.0.0.0", 0, 7)]);
        for a in [0, ip("10.1.2.3"), ip("192.0.2.255"), u32::MAX] {
            assert_eq!(t.lookup(a), Some(7));
        }
        assert_eq!(t.routes(), 1);
        assert_eq!(t.memory_bytes(), TBL24_BYTES);
    }

    #[test]
    fn host_routes() {
        let t = build(&[
            ("10.0.0.1", 32, 1),
            ("10.0.0.2", 32, 2),
            ("10.0.0.255", 32, 3),
            ("192.168.1.1", 32, 4),
            ("0.0.0.0", 32, 5),
            ("255.255.255.255", 32, 6),
        ]);
        assert_eq!(t.lookup(ip("10.0.0.0")), None);
        assert_eq!(t.lookup(ip("10.0.0.1")), Some(1));
        assert_eq!(t.lookup(ip("10.0.0.2")), Some(2));
        assert_eq!(t.lookup(ip("10.0.0.3")), None);
        assert_eq!(t.lookup(ip("10.0.0.254")), None);
        assert_eq!(t.lookup(ip("10.0.0.255")), Some(3));
        assert_eq!(t.lookup(ip("10.0.1.0")), None);
        assert_eq!(t.lookup(ip("192.168.1.1")), Some(4));
        assert_eq!(t.lookup(ip("192.168.1.0")), None);
        assert_eq!(t.lookup(ip("192.168.1.2")), None);
        assert_eq!(t.lookup(0), Some(5));
        assert_eq!(t.lookup(1), None);
        assert_eq!(t.lookup(u32::MAX), Some(6));
        assert_eq!(t.lookup(u32::MAX - 1), None);
        // Four /24 blocks: 10.0.0, 192.168.1, 0.0.0, 255.255.255, each on its own page.
        assert_eq!(t.tbl8_groups(), 4);
        assert_eq!(t.memory_bytes(), 4 * PAGE_BYTES + 4 * 1024);
    }

    const NESTED: [(&str, u8, u32); 6] = [
        ("10.0.0.0", 8, 1),
        ("10.1.0.0", 16, 2),
        ("10.1.2.0", 24, 3),
        ("10.1.2.128", 25, 4),
        ("10.1.2.132", 30, 5),
        ("10.1.2.133", 32, 6),
    ];

    const NESTED_EXPECT: [(&str, Option<u32>); 23] = [
        ("9.255.255.255", None),
        ("10.0.0.0", Some(1)),
        ("10.0.255.255", Some(1)),
        ("10.1.0.0", Some(2)),
        ("10.1.1.255", Some(2)),
        ("10.1.2.0", Some(3)),
        ("10.1.2.127", Some(3)),
        ("10.1.2.128", Some(4)),
        ("10.1.2.131", Some(4)),
        ("10.1.2.132", Some(5)),
        ("10.1.2.133", Some(6)),
        ("10.1.2.134", Some(5)),
        ("10.1.2.135", Some(5)),
        ("10.1.2.136", Some(4)),
        ("10.1.2.255", Some(4)),
        ("10.1.3.0", Some(2)),
        ("10.1.255.255", Some(2)),
        ("10.2.0.0", Some(1)),
        ("10.0.2.133", Some(1)),
        ("10.255.255.255", Some(1)),
        ("11.0.0.0", None),
        ("0.0.0.0", None),
        ("255.255.255.255", None),
    ];

    #[test]
    fn overlapping_prefixes_at_every_boundary() {
        let forward = build(&NESTED);
        let mut reversed = NESTED;
        reversed.reverse();
        let backward = build(&reversed);
        for (a, want) in NESTED_EXPECT {
            assert_eq!(forward.lookup(ip(a)), want, "{a}");
            assert_eq!(backward.lookup(ip(a)), want, "{a} (reverse insert order)");
        }
        assert_eq!(forward.routes(), 6);
        assert_eq!(forward.tbl8_groups(), 1);
    }

    #[test]
    fn later_insert_replaces() {
        let mut b = LpmBuilder::new();
        b.insert(ip("10.0.0.0"), 8, 1).unwrap();
        b.insert(ip("10.1.2.128"), 25, 2).unwrap();
        b.insert(ip("10.0.0.0"), 8, 3).unwrap();
        b.insert(ip("10.1.2.128"), 25, 4).unwrap();
        // Same prefix, other length: a distinct route.
        b.insert(ip("10.0.0.0"), 16, 5).unwrap();
        assert_eq!(b.len(), 3);
        let t = b.build().unwrap();
        assert_eq!(t.routes(), 3);
        assert_eq!(t.lookup(ip("10.9.9.9")), Some(3));
        assert_eq!(t.lookup(ip("10.0.9.9")), Some(5));
        assert_eq!(t.lookup(ip("10.1.2.200")), Some(4));
        assert_eq!(t.lookup(ip("10.1.2.1")), Some(3));
    }

    #[test]
    fn slash25_inside_default_route() {
        let low = build(&[("0.0.0.0", 0, 1), ("192.0.2.0", 25, 2)]);
        let high = build(&[("0.0.0.0", 0, 1), ("192.0.2.128", 25, 3)]);
        let both = build(&[
            ("0.0.0.0", 0, 1),
            ("192.0.2.0", 25, 2),
            ("192.0.2.128", 25, 3),
        ]);
        for (a, l, h, b) in [
            ("192.0.1.255", 1, 1, 1),
            ("192.0.2.0", 2, 1, 2),
            ("192.0.2.127", 2, 1, 2),
            ("192.0.2.128", 1, 3, 3),
            ("192.0.2.255", 1, 3, 3),
            ("192.0.3.0", 1, 1, 1),
        ] {
            assert_eq!(low.lookup(ip(a)), Some(l), "low {a}");
            assert_eq!(high.lookup(ip(a)), Some(h), "high {a}");
            assert_eq!(both.lookup(ip(a)), Some(b), "both {a}");
        }
        assert_eq!(both.tbl8_groups(), 1);
    }

    #[test]
    fn insert_errors() {
        let mut b = LpmBuilder::new();
        assert_eq!(b.insert(0, 33, 1), Err(LpmError::PrefixLength { len: 33 }));
        assert_eq!(
            b.insert(ip("10.0.0.1"), 8, 1),
            Err(LpmError::HostBitsSet {
                prefix: ip("10.0.0.1"),
                len: 8
            })
        );
        assert_eq!(
            b.insert(1, 0, 1),
            Err(LpmError::HostBitsSet { prefix: 1, len: 0 })
        );
        assert_eq!(
            b.insert(0, 0, Lpm::MAX_VALUE),
            Err(LpmError::ValueTooLarge {
                value: Lpm::MAX_VALUE
            })
        );
        assert_eq!(
            b.insert(0, 0, u32::MAX),
            Err(LpmError::ValueTooLarge { value: u32::MAX })
        );
        assert!(b.is_empty(), "refused routes must not be kept");
        b.insert(ip("10.0.0.1"), 32, Lpm::MAX_VALUE - 1).unwrap();
        let t = b.build().unwrap();
        assert_eq!(t.lookup(ip("10.0.0.1")), Some(Lpm::MAX_VALUE - 1));

        assert_eq!(
            LpmError::PrefixLength { len: 33 }.to_string(),
            "prefix length 33 is above 32"
        );
        assert_eq!(
            LpmError::HostBitsSet {
                prefix: ip("10.0.0.1"),
                len: 8
            }
            .to_string(),
            "prefix 10.0.0.1/8 has host bits set (network is 10.0.0.0/8)"
        );
        assert_eq!(
            LpmError::ValueTooLarge { value: 1 << 30 }.to_string(),
            "route value 1073741824 is not below the limit 1073741824"
        );
        let e: Box<dyn std::error::Error> = Box::new(LpmError::Tbl8Exhausted { max: 2 });
        assert_eq!(
            e.to_string(),
            "more than 2 /24 blocks hold prefixes longer than /24 (tbl8 groups exhausted)"
        );
    }

    #[test]
    fn tbl8_budget() {
        let fits = LpmBuilder::new().with_max_tbl8_groups(2);
        let mut b = fits.clone();
        b.insert(ip("10.0.0.0"), 25, 1).unwrap();
        b.insert(ip("10.0.0.128"), 26, 2).unwrap(); // same /24: same group
        b.insert(ip("10.0.1.7"), 32, 3).unwrap();
        let t = b.clone().build().unwrap();
        assert_eq!(t.tbl8_groups(), 2);
        assert_eq!(t.lookup(ip("10.0.0.129")), Some(2));
        assert_eq!(t.lookup(ip("10.0.1.7")), Some(3));

        b.insert(ip("10.0.2.0"), 25, 4).unwrap();
        assert_eq!(b.build().unwrap_err(), LpmError::Tbl8Exhausted { max: 2 });

        let none = LpmBuilder::new().with_max_tbl8_groups(0);
        let mut b = none.clone();
        b.insert(ip("10.0.0.0"), 24, 1).unwrap();
        assert!(b.clone().build().is_ok(), "/24 needs no group");
        b.insert(ip("10.0.0.0"), 25, 1).unwrap();
        assert_eq!(b.build().unwrap_err(), LpmError::Tbl8Exhausted { max: 0 });

        let huge = LpmBuilder::new().with_max_tbl8_groups(u32::MAX);
        assert_eq!(huge.max_tbl8_groups, 1 << 24);
    }

    #[test]
    fn shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Lpm>();
        let t = std::sync::Arc::new(build(&NESTED));
        std::thread::scope(|s| {
            for _ in 0..2 {
                let t = t.clone();
                s.spawn(move || {
                    for (a, want) in NESTED_EXPECT {
                        assert_eq!(t.lookup(ip(a)), want, "{a}");
                    }
                });
            }
        });
    }

    /// Longest match by brute force: every route, keep the longest that contains `addr`.
    fn linear_scan(routes: &[(u32, u8, u32)], addr: u32) -> Option<u32> {
        routes
            .iter()
            .filter(|&&(p, len, _)| addr & mask(len) == p)
            .max_by_key(|&&(_, len, _)| len)
            .map(|&(_, _, v)| v)
    }

    /// Longest match by probing each length, longest first, in a map of the routes.
    fn probe_lengths(routes: &HashMap<(u8, u32), u32>, addr: u32) -> Option<u32> {
        (0..=32u8)
            .rev()
            .find_map(|len| routes.get(&(len, addr & mask(len))).copied())
    }

    #[test]
    fn random_routes_match_reference() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut builder = LpmBuilder::new();
        let mut reference: HashMap<(u8, u32), u32> = HashMap::new();
        for _ in 0..10_000 {
            let r = rng.next();
            let len = (r % 33) as u8;
            let prefix = (r >> 32) as u32 & mask(len);
            let value = (rng.next() as u32) % Lpm::MAX_VALUE;
            builder.insert(prefix, len, value).unwrap();
            reference.insert((len, prefix), value);
        }
        assert_eq!(builder.len(), reference.len());
        let table = builder.build().unwrap();
        assert_eq!(table.routes(), reference.len());
        let routes: Vec<(u32, u8, u32)> = reference.iter().map(|(&(l, p), &v)| (p, l, v)).collect();

        // Half uniformly random, half at or next to a route's first and last address, so
        // long prefixes and their edges are hit too.
        let mut addrs = Vec::with_capacity(100_000);
        while addrs.len() < 100_000 {
            let r = rng.next();
            if r & 1 == 0 {
                addrs.push((r >> 32) as u32);
            } else {
                let (p, len, _) = routes[(r >> 1) as usize % routes.len()];
                let last = p | !mask(len);
                let pick = match (r >> 40) % 5 {
                    0 => p,
                    1 => last,
                    2 => p.wrapping_sub(1),
                    3 => last.wrapping_add(1),
                    _ => p | (rng.next() as u32 & !mask(len)),
                };
                addrs.push(pick);
            }
        }

        // The fast reference is itself checked against the brute-force scan.
        for &a in &addrs[..2_000] {
            assert_eq!(
                probe_lengths(&reference, a),
                linear_scan(&routes, a),
                "reference disagrees at {}",
                Ipv4Addr::from(a)
            );
        }
        let mut matched = 0;
        for &a in &addrs {
            let want = probe_lengths(&reference, a);
            assert_eq!(table.lookup(a), want, "{}", Ipv4Addr::from(a));
            matched += usize::from(want.is_some());
        }
        assert!(matched > 50_000, "test addresses should mostly match");

        let mut out = vec![Some(u32::MAX); addrs.len()];
        table.lookup_batch(&addrs, &mut out);
        for (i, (&a, &got)) in addrs.iter().zip(&out).enumerate() {
            assert_eq!(got, table.lookup(a), "batch index {i}");
        }
    }

    #[test]
    fn batch_with_mismatched_lengths() {
        let t = build(&NESTED);
        let addrs: Vec<u32> = NESTED_EXPECT.iter().map(|&(a, _)| ip(a)).collect();
        // Every length around the chunk size, with `out` one longer than `addrs`.
        for n in 0..addrs.len() {
            let mut out = vec![Some(99); n + 1];
            t.lookup_batch(&addrs[..n], &mut out);
            for (i, &(a, want)) in NESTED_EXPECT[..n].iter().enumerate() {
                assert_eq!(out[i], want, "n={n} {a}");
            }
            assert_eq!(out[n], Some(99), "entry past the input must be untouched");
        }
        // `out` shorter than `addrs`: only `out.len()` lookups.
        let mut out = vec![None; 3];
        t.lookup_batch(&addrs, &mut out);
        assert_eq!(out, [None, Some(1), Some(1)]);
    }

    /// Build time and lookup rate on a large table. Run with
    /// `cargo test --release -- --ignored --nocapture lpm_throughput`.
    #[test]
    #[ignore = "timing report, not a check"]
    fn lpm_throughput() {
        use std::time::Instant;
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let mut b = LpmBuilder::new();
        b.insert(0, 0, 0).unwrap();
        for i in 0..900_000u32 {
            let r = rng.next();
            let len = 8 + (r % 17) as u8;
            b.insert((r >> 32) as u32 & mask(len), len, i % 1024)
                .unwrap();
        }
        for i in 0..20_000u32 {
            let r = rng.next();
            let len = 25 + (r % 8) as u8;
            b.insert((r >> 32) as u32 & mask(len), len, i % 1024)
                .unwrap();
        }
        let routes = b.len();
        let t0 = Instant::now();
        let t = b.build().unwrap();
        let built = t0.elapsed();
        let addrs: Vec<u32> = (0..1 << 22).map(|_| rng.next() as u32).collect();

        let t0 = Instant::now();
        let mut sum = 0u64;
        for &a in &addrs {
            sum += u64::from(t.lookup(a).unwrap_or(0));
        }
        let single = t0.elapsed();

        let mut out = vec![None; 64];
        let t0 = Instant::now();
        for chunk in addrs.chunks(64) {
            t.lookup_batch(chunk, &mut out);
            sum += out.iter().map(|v| u64::from(v.unwrap_or(0))).sum::<u64>();
        }
        let batch = t0.elapsed();
        let mlps = |d: std::time::Duration| addrs.len() as f64 / d.as_secs_f64() / 1e6;
        eprintln!(
            "{routes} routes, {} tbl8 groups, {} KiB: build {built:?}; lookup {:.1} M/s, \
             lookup_batch(64) {:.1} M/s (checksum {sum})",
            t.tbl8_groups(),
            t.memory_bytes() / 1024,
            mlps(single),
            mlps(batch),
        );
    }
}
