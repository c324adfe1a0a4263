//! IPv6 longest-prefix match: a Poptrie with path compression.
//!
//! A direct table indexed by the top 16 address bits (256 KiB of `u32`: a leaf, or the node
//! holding the rest of the /16), then a trie of 32-byte nodes of two kinds:
//!
//! * Poptrie nodes (Asai and Ohara, "Poptrie: A Compressed Trie with Population Count for
//!   Fast and Scalable Software IP Routing Table Lookup", SIGCOMM 2015): 6 bits, 64 slots,
//!   two 64-bit bitmaps. The slot's bit in one says "child", and a popcount below it gives
//!   the child's index in a contiguous array; leaves are pushed down and runs of equal ones
//!   share one entry, found the same way. One node, one load (nodes are 32-byte aligned,
//!   never across a cache line), plus one for the leaf at the end.
//! * Path nodes: where every prefix of a block shares the next bits (up to 58 of them), one
//!   node compares them and goes on or falls back to the block's leaf, instead of a chain of
//!   Poptrie nodes with one child each (a skip); where a block holds one prefix, one node
//!   compares the rest of it and answers the leaf itself (a tail). This is Patricia's path
//!   compression, kept in the same node format.
//!
//! So a lookup is one load for an address under a prefix of /16 or shorter with nothing
//! longer inside, and otherwise one per Poptrie level (6 bits) or skip below the /16, plus
//! the leaf. No allocation, no lock, no hashing. The control thread builds an [`Lpm6`] from
//! scratch with an [`Lpm6Builder`], as for IPv4; the result is immutable, `Send + Sync`.
//!
//! Cost (bench/lpm6.rs, two runs, bench/RESULTS.md): [`Lpm6::lookup_batch`] of 64 addresses
//! takes 11.4 to 11.6 ns a lookup at best (criterion's mean: 15.3 to 15.9) over the
//! 1,000-route BGP-like mix below, 19.1 (25.2 to 26.1) over 100,000, 21.9 to 22.4 (27.2 to
//! 27.4) over a gateway's table; [`Lpm6::lookup`] one at a time 13.9 to 14.1 (17.4 to
//! 17.9), 26.4 to 26.6 (34.6) and 23.5 to 23.6 (28.8 to 31.3). IPv4's DIR-24-8 takes 1.6 to
//! 4.6 ns at the same sizes: one or two loads where this takes four to seven. Build: 0.05
//! ms for 1,000 routes, 12 to 14 ms for 100,000. Memory: 0.29 MiB and 4.0 MiB.
//!
//! # Why this structure
//!
//! What the table holds: the global IPv6 table is /48s and /32s above all, average length
//! 43.2 over 226,415 prefixes (bgp.potaroo.net, AS6447, October 2024); prefixes longer than
//! /48 are filtered by most of the Internet (RIPE NCC RIS visibility studies, 2011 and 2019).
//! A gateway adds tenant /64s, a default route, /127 links and /128 host routes. So the
//! depth that matters is /16 to /64, cheaply, with /65 to /128 correct but rarer.
//!
//! Candidates, built here from the same routes (bench/lpm6.rs's mixes) and timed in the same
//! process on the bench machine (bench/HISTORY.md), best of seven 1,024-lookup rounds of
//! `lookup`, per lookup, and the memory (prototypes of the others were measured, not kept):
//!
//! | structure | 1,000 BGP-like | 100,000 BGP-like | gateway (below) |
//! | --- | --- | --- | --- |
//! | this | 13.7 ns, 0.29 MiB | 28.0 ns, 4.0 MiB | 24.4 ns, 0.43 MiB |
//! | Poptrie alone | 17.5 ns, 0.35 MiB | 45.1 ns, 9.4 MiB | 40.0 ns, 1.1 MiB |
//! | fixed strides | 14.2 ns, 2.0 MiB | 145 ns, 146 MiB | 69 ns, 17 MiB |
//! | lengths search | 49.9 ns, 0.18 MiB | 156 ns, 19 MiB | 21.3 ns, 0.19 MiB |
//!
//! "Poptrie alone" is this without path nodes; "fixed strides" a direct /16 and 8-bit
//! strides below it, leaf pushed (DIR-24-8 generalised, as DPDK's `rte_lpm6` does with 24
//! bits first); "lengths search" binary search on prefix lengths with markers, one
//! open-addressing hash table per length (Waldvogel, Varghese, Turner, Plattner 1997). The
//! gateway: a default route, 2,000 tenant /64s in a /40 and 2,000 /128s in them.
//!
//! * Fixed strides cost as few loads as anything for a /48 (five) but a 1 KiB group per
//!   8 bits of every path that no other prefix shares: 1.5 KiB per route at 100,000, up to
//!   14 KiB per route in the worst case, and at that size its lookups miss the cache.
//! * Binary search on lengths is the most compact and the quickest when there are few
//!   distinct lengths (the gateway's three: two probes), but the BGP-like mixes have 25 and
//!   33, and each of their five or six probes is a hash and a dependent miss; markers also
//!   make its build the slowest (138 ms at 100,000).
//! * A tree bitmap (Eatherton, Varghese, Dittia 2004) keeps prefixes inside its nodes and
//!   searches each node's internal bitmap on the way down; Poptrie is its leaf-pushed
//!   successor, quicker in software by that paper's measurements, and was built instead.
//! * Path nodes took Poptrie from 6.8 to 3.7 loads per lookup on the 1,000-route mix, 6.9
//!   to 4.7 at 100,000, and 14.4 to 6.3 on the gateway (a tenant /64 under a provider /40:
//!   direct, a skip over bits 16..40, four Poptrie levels, the leaf; a host route: two nodes
//!   more), and took 17 to 60 % off the memory.
//!
//! A larger direct table (18 or 20 bits) saved 0.1 to 0.5 loads per lookup and no time
//! measurable through this VM's noise, for 1 or 4 MiB of table: 16 bits it is.
//!
//! # Memory
//!
//! 256 KiB of direct table, 32 bytes per node and 4 per leaf; [`Lpm6::memory_bytes`] reports
//! all of it. Measured: 0.29 MiB for the 1,000-route mix, 4.0 MiB (42 bytes a route) for
//! 100,000. Bounded whatever the routes: every node has a route below it and a route has at
//! most 20 nodes above it (offsets grow by at least 6 bits from bit 16), and a Poptrie node
//! has at most one leaf more than twice the routes ending in it, so a table takes at most
//! 256 KiB + 728 bytes per route (70 MiB for 100,000); the tests check it. The builder's
//! route budget ([`DEFAULT_MAX_ROUTES`], [`Lpm6Builder::with_max_routes`]) caps the total.
//!
//! # Build
//!
//! The routes sorted by (prefix, length) put each block's prefixes together, covering ones
//! first, so each node is filled from a slice of them in one pass: 0.05 ms for 1,000
//! routes, 12 to 14 ms for 100,000 (bench/HISTORY.md). Changes rebuild the table, as for
//! IPv4; there is no incremental update.
//!
//! # Batches
//!
//! [`Lpm6::lookup_batch`] walks a table that fits in the cache one address after another,
//! and a larger one 16 addresses at a time, a level of each in turn, so that their cache
//! misses overlap. Measured as the candidates above: 1,000 routes, 13.4 ns a lookup one by
//! one against 17 to 18 interleaved (more instructions, no miss to hide); 100,000, 27 against
//! 23; 300,000 (11 MiB), 80 to 100 against 38. [`INTERLEAVE_BYTES`] is the switch.
//!
//! x86-64's baseline has no `popcnt` instruction; the walks are compiled twice and the one
//! with it is used when the CPU has it (it has on every x86-64 server of the last 15
//! years).

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv6Addr;

/// Bits resolved by the direct table (Poptrie's "direct pointing", section 3.4 of the paper).
const DIRECT_BITS: u32 = 16;
const DIRECT_ENTRIES: usize = 1 << DIRECT_BITS;
/// Bits resolved by each node: 2^6 slots, one `u64` per bitmap.
const STRIDE: u32 = 6;
const SLOTS: usize = 1 << STRIDE;

/// The direct-table entry of an address (or prefix): its top 16 bits.
#[inline(always)]
fn top(addr: u128) -> usize {
    (addr >> (128 - DIRECT_BITS)) as usize
}

/// A direct-table entry with this bit set names a node (the low 31 bits are its index);
/// without it the entry is a leaf.
const NODE: u32 = 1 << 31;

/// Leaves are `0` for no route and `value + 1` otherwise.
#[inline(always)]
fn leaf(value: u32) -> u32 {
    value + 1
}

#[inline(always)]
fn decode(leaf: u32) -> Option<u32> {
    leaf.checked_sub(1)
}

/// [`Lpm6::lookup_batch`] interleaves the walks of a table larger than this; it walks a
/// smaller one address by address. The crossover measured on the bench machine (1 MiB of L2
/// per core) lies between 1.4 MiB (one by one quicker, 22 against 26 ns per lookup) and 4
/// MiB (interleaved quicker, 23 against 27 ns).
pub const INTERLEAVE_BYTES: usize = 2 << 20;

/// Route budget of a new [`Lpm6Builder`].
pub const DEFAULT_MAX_ROUTES: usize = 1 << 20;

/// Most routes a builder accepts whatever its budget: keeps every node and leaf index below
/// 2^31 (at most 20 nodes and 22 leaves per route, see "Memory").
const ROUTES_LIMIT: usize = 1 << 24;

/// Why a route was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lpm6Error {
    /// Prefix length above 128.
    PrefixLength { len: u8 },
    /// The prefix has bits set below its length (e.g. 2001:db8::1/32).
    HostBitsSet { prefix: u128, len: u8 },
    /// Value not below [`Lpm6::MAX_VALUE`].
    ValueTooLarge { value: u32 },
    /// A new prefix beyond the builder's route budget.
    TooManyRoutes { max: usize },
}

impl fmt::Display for Lpm6Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Lpm6Error::PrefixLength { len } => {
                write!(f, "prefix length {len} is above 128")
            }
            Lpm6Error::HostBitsSet { prefix, len } => write!(
                f,
                "prefix {}/{len} has host bits set (network is {}/{len})",
                Ipv6Addr::from(prefix),
                Ipv6Addr::from(prefix & mask(len))
            ),
            Lpm6Error::ValueTooLarge { value } => write!(
                f,
                "route value {value} is not below the limit {}",
                Lpm6::MAX_VALUE
            ),
            Lpm6Error::TooManyRoutes { max } => {
                write!(f, "more than {max} IPv6 routes (the table's route budget)")
            }
        }
    }
}

impl std::error::Error for Lpm6Error {}

/// Network mask of a prefix length in 0..=128.
#[inline]
fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

/// Collects routes; [`Lpm6Builder::build`] turns them into an [`Lpm6`].
#[derive(Clone, Debug)]
pub struct Lpm6Builder {
    /// Keyed by (prefix, length): a prefix sorts before every prefix it covers, and the
    /// prefixes inside any aligned block are contiguous. The build relies on both.
    routes: BTreeMap<(u128, u8), u32>,
    max_routes: usize,
}

impl Default for Lpm6Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Lpm6Builder {
    /// An empty builder with a budget of [`DEFAULT_MAX_ROUTES`] routes.
    pub fn new() -> Self {
        Lpm6Builder {
            routes: BTreeMap::new(),
            max_routes: DEFAULT_MAX_ROUTES,
        }
    }

    /// Sets the route budget. Values above 2^24 are clamped to it.
    pub fn with_max_routes(mut self, max: usize) -> Self {
        self.max_routes = max.min(ROUTES_LIMIT);
        self
    }

    /// Adds `prefix/len -> value`. `prefix` is the address read big-endian
    /// (`u128::from_be_bytes(addr.octets())`) and must have no bits set below `len`; `value`
    /// must be below [`Lpm6::MAX_VALUE`]. A later insert of the same prefix and length
    /// replaces the earlier value (and does not count against the budget again).
    pub fn insert(&mut self, prefix: u128, len: u8, value: u32) -> Result<(), Lpm6Error> {
        if len > 128 {
            return Err(Lpm6Error::PrefixLength { len });
        }
        if prefix & !mask(len) != 0 {
            return Err(Lpm6Error::HostBitsSet { prefix, len });
        }
        if value >= Lpm6::MAX_VALUE {
            return Err(Lpm6Error::ValueTooLarge { value });
        }
        if self.routes.len() >= self.max_routes && !self.routes.contains_key(&(prefix, len)) {
            return Err(Lpm6Error::TooManyRoutes {
                max: self.max_routes,
            });
        }
        self.routes.insert((prefix, len), value);
        Ok(())
    }

    /// Number of distinct prefixes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Builds the table. Cannot fail today (the budget is enforced by
    /// [`insert`](Self::insert)); it returns a `Result` as the IPv4
    /// [`LpmBuilder::build`](crate::tables::lpm::LpmBuilder::build) does. Cost: one pass over
    /// the routes per trie level they reach (module doc, "Build").
    pub fn build(self) -> Result<Lpm6, Lpm6Error> {
        let routes: Vec<Route> = self
            .routes
            .iter()
            .map(|(&(prefix, len), &value)| Route { prefix, len, value })
            .collect();
        let mut direct = vec![0u32; DIRECT_ENTRIES].into_boxed_slice();
        // Prefixes up to /16 fill the direct table. Sorted by (prefix, length), a prefix
        // comes before the ones it covers, so each overwrites only what it is longer than.
        for r in routes.iter().filter(|r| u32::from(r.len) <= DIRECT_BITS) {
            let start = top(r.prefix);
            let end = start + (1usize << (DIRECT_BITS - u32::from(r.len)));
            direct[start..end].fill(leaf(r.value));
        }
        let long: Vec<Route> = routes
            .into_iter()
            .filter(|r| u32::from(r.len) > DIRECT_BITS)
            .collect();
        let mut trie = Trie::default();
        for group in long.chunk_by(|a, b| top(a.prefix) == top(b.prefix)) {
            let slot = top(group[0].prefix);
            let at = trie.push();
            trie.place(at, group, DIRECT_BITS, direct[slot]);
            direct[slot] = NODE | at as u32;
        }
        let mut table = Lpm6 {
            direct,
            nodes: trie.nodes.into_boxed_slice(),
            leaves: trie.leaves.into_boxed_slice(),
            routes: self.routes.len(),
            hw_popcnt: hw_popcnt(),
            interleave: false,
        };
        table.interleave = table.memory_bytes() > INTERLEAVE_BYTES;
        Ok(table)
    }
}

#[derive(Clone, Copy, Debug)]
struct Route {
    prefix: u128,
    len: u8,
    value: u32,
}

/// Most address bits a path node compares: 64 less the 6 bits holding the count.
const PATH_MAX: u32 = 58;

/// A node of the trie, for the block of addresses that share their first `offset` bits
/// (the offset is implied by the walk). Two kinds:
///
/// * A Poptrie node resolves the next 6 bits: 64 slots, each a child node or a leaf. Bit `i`
///   of `vector` is set when slot `i` is a child; the children are `nodes[base1..]` in slot
///   order, so slot `i`'s is `base1 + popcount(vector below i)`. Consecutive leaf slots with
///   the same leaf share one entry of `leaves[base0..]`: bit `i` of `leafvec` is set when
///   leaf slot `i` starts such a run, so slot `i`'s leaf is `base0 + popcount(leafvec up to
///   i) - 1` (child slots have no bit and do not break a run). Its first leaf slot starts a
///   run, so `leafvec` is never 0 unless every slot is a child.
/// * A path node (path compression), with both bitmaps 0: the next `count` bits (1..=58) of
///   every address in the block that has a longer route are the same. `path` holds them,
///   left-aligned, with `count` in its low 6 bits. An address that differs in them takes
///   `base0`, the leaf of the block; one that does not goes on to `base1`: a leaf, or
///   `NODE | index` of the node for the rest. It stands for a chain of Poptrie nodes with
///   one child each (a skip) or for the last prefix of a block (a tail), in one load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(32))]
struct Node {
    vector: u64,
    leafvec: u64,
    base0: u32,
    base1: u32,
    path: u64,
}

impl Node {
    /// A path node: `key`'s first `count` bits, then `next`; `miss` otherwise.
    fn path(key: u128, count: u32, next: u32, miss: u32) -> Node {
        debug_assert!((1..=PATH_MAX).contains(&count));
        let bits = ((key >> 64) as u64) & !(u64::MAX >> count);
        Node {
            base0: miss,
            base1: next,
            path: bits | u64::from(count),
            ..Node::default()
        }
    }
}

#[derive(Default)]
struct Trie {
    nodes: Vec<Node>,
    leaves: Vec<u32>,
}

/// Slot of `prefix` in a Poptrie node at bit offset `at`: the 6 bits from `at`, zero-padded
/// past bit 128.
#[inline(always)]
fn slot(prefix: u128, at: u32) -> usize {
    ((prefix << at) >> (128 - STRIDE)) as usize
}

impl Trie {
    /// A new node, filled in later.
    fn push(&mut self) -> usize {
        self.nodes.push(Node::default());
        self.nodes.len() - 1
    }

    /// Fills `nodes[at]`, the node for the block of addresses sharing their first `offset`
    /// bits, which holds `routes`: at least one, all longer than `offset`, sorted by (prefix,
    /// length). `inherited` is the leaf of the longest prefix covering the whole block.
    fn place(&mut self, at: usize, routes: &[Route], offset: u32, inherited: u32) {
        let first = routes[0].prefix << offset;
        if let [r] = routes {
            // A tail: the rest of the one prefix, in path nodes of up to 58 bits.
            let count = u32::from(r.len) - offset;
            if count <= PATH_MAX {
                self.nodes[at] = Node::path(first, count, leaf(r.value), inherited);
            } else {
                let next = self.push();
                self.nodes[at] = Node::path(first, PATH_MAX, NODE | next as u32, inherited);
                self.place(next, routes, offset + PATH_MAX, inherited);
            }
            return;
        }
        // The bits all the prefixes share (those of the first and the last, as they are
        // sorted), up to the shortest: no prefix ends inside a skip.
        let last = routes[routes.len() - 1].prefix << offset;
        let shortest = routes.iter().map(|r| u32::from(r.len)).min().unwrap_or(128) - offset;
        let count = (first ^ last).leading_zeros().min(shortest).min(PATH_MAX);
        if count < STRIDE {
            self.fill(at, routes, offset, inherited);
            return;
        }
        // A skip: as many loads as a single Poptrie node, so worth it from 6 bits. A prefix
        // ending where the skip does (sorted first) covers the whole block below it.
        let end = offset + count;
        let (below, rest) = match routes {
            [r, rest @ ..] if u32::from(r.len) == end => (leaf(r.value), rest),
            _ => (inherited, routes),
        };
        let next = self.push();
        self.nodes[at] = Node::path(first, count, NODE | next as u32, inherited);
        self.place(next, rest, end, below);
    }

    /// Fills `nodes[at]` as a Poptrie node for bits `offset..offset + 6`; arguments as in
    /// [`place`](Self::place).
    fn fill(&mut self, at: usize, routes: &[Route], offset: u32, inherited: u32) {
        let end = offset + STRIDE;
        let mut slots = [inherited; SLOTS];
        // Prefixes ending in this node, covering runs of slots: parents before children.
        for r in routes.iter().filter(|r| u32::from(r.len) <= end) {
            let first = slot(r.prefix, offset);
            slots[first..first + (1 << (end - u32::from(r.len)))].fill(leaf(r.value));
        }
        // Longer prefixes, grouped by slot: a block's prefixes are contiguous, and the ones
        // ending in this node sort before the longer ones of their slot.
        let mut children: Vec<(usize, &[Route])> = Vec::new();
        let mut i = 0;
        while i < routes.len() {
            if u32::from(routes[i].len) <= end {
                i += 1;
                continue;
            }
            let s = slot(routes[i].prefix, offset);
            let mut j = i + 1;
            while j < routes.len() && slot(routes[j].prefix, offset) == s {
                debug_assert!(u32::from(routes[j].len) > end);
                j += 1;
            }
            children.push((s, &routes[i..j]));
            i = j;
        }
        let mut node = Node {
            base0: self.leaves.len() as u32,
            base1: self.nodes.len() as u32,
            ..Node::default()
        };
        for &(s, _) in &children {
            node.vector |= 1 << s;
        }
        let mut last = None;
        for (s, &l) in slots.iter().enumerate() {
            if node.vector & (1 << s) == 0 && last != Some(l) {
                node.leafvec |= 1 << s;
                self.leaves.push(l);
                last = Some(l);
            }
        }
        self.nodes[at] = node;
        let base1 = self.nodes.len();
        self.nodes.resize(base1 + children.len(), Node::default());
        for (k, &(s, sub)) in children.iter().enumerate() {
            self.place(base1 + k, sub, end, slots[s]);
        }
    }
}

/// True when the CPU has the `popcnt` instruction (detected once per build).
fn hw_popcnt() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("popcnt")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Hints the CPU to start loading the cache line of `p`. No effect on other architectures.
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and does not dereference `p` architecturally.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// An immutable IPv6 longest-prefix-match table. Build it with [`Lpm6Builder`].
#[cfg_attr(test, derive(Clone))]
pub struct Lpm6 {
    /// One entry per /16: a leaf, or `NODE | index` of the node for the rest of the /16.
    direct: Box<[u32]>,
    nodes: Box<[Node]>,
    leaves: Box<[u32]>,
    routes: usize,
    /// Walk with the `popcnt` instruction (x86-64 without it counts bits in software).
    hw_popcnt: bool,
    /// `lookup_batch` interleaves walks: the table is larger than [`INTERLEAVE_BYTES`].
    interleave: bool,
}

impl fmt::Debug for Lpm6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lpm6")
            .field("routes", &self.routes)
            .field("nodes", &self.nodes.len())
            .field("leaves", &self.leaves.len())
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

/// Where one level of a walk goes.
enum Step {
    /// On to this node, with the address shifted left by this many bits.
    Node(u32, u32),
    /// Done: this leaf.
    Leaf(u32),
}

impl Lpm6 {
    /// Values must be strictly below this (the same limit as the IPv4 [`Lpm`]).
    ///
    /// [`Lpm`]: crate::tables::lpm::Lpm
    pub const MAX_VALUE: u32 = 1 << 30;

    /// The value of the longest prefix containing `addr` (the address read big-endian,
    /// `u128::from_be_bytes(addr.octets())`), if any.
    #[inline]
    pub fn lookup(&self, addr: u128) -> Option<u32> {
        let d = self.direct[top(addr)];
        if d & NODE == 0 {
            return decode(d);
        }
        #[cfg(target_arch = "x86_64")]
        if self.hw_popcnt {
            // SAFETY: `hw_popcnt` is only true when the CPU has `popcnt`.
            return decode(unsafe { self.walk_popcnt(d & !NODE, addr << DIRECT_BITS) });
        }
        decode(self.walk(d & !NODE, addr << DIRECT_BITS))
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt")]
    fn walk_popcnt(&self, at: u32, key: u128) -> u32 {
        self.walk(at, key)
    }

    /// The leaf of `key` (the address with the bits above node `at`'s block shifted out).
    #[inline(always)]
    fn walk(&self, mut at: u32, mut key: u128) -> u32 {
        loop {
            match self.step(at, key) {
                Step::Node(next, shift) => {
                    at = next;
                    key <<= shift;
                }
                Step::Leaf(l) => return l,
            }
        }
    }

    /// One level of a walk: node `at` for `key`.
    #[inline(always)]
    fn step(&self, at: u32, key: u128) -> Step {
        let node = &self.nodes[at as usize];
        let bit = 1u64 << (key >> (128 - STRIDE)) as u32;
        if node.vector & bit != 0 {
            return Step::Node(node.base1 + (node.vector & (bit - 1)).count_ones(), STRIDE);
        }
        if node.leafvec != 0 {
            // A leaf slot: it or a leaf slot before it starts a run.
            let run = (node.leafvec & ((bit << 1).wrapping_sub(1))).count_ones();
            return Step::Leaf(self.leaves[(node.base0 + run - 1) as usize]);
        }
        // A path node.
        let count = (node.path & 63) as u32;
        if ((key >> 64) as u64 ^ node.path) & !(u64::MAX >> count) != 0 {
            Step::Leaf(node.base0)
        } else if node.base1 & NODE != 0 {
            Step::Node(node.base1 & !NODE, count)
        } else {
            Step::Leaf(node.base1)
        }
    }

    /// `out[i] = lookup(addrs[i])` for `i < min(addrs.len(), out.len())`; the rest of `out` is
    /// left as it is. A table larger than [`INTERLEAVE_BYTES`] is walked in chunks of 16
    /// addresses, a level of each in turn, so that the loads of different addresses are
    /// independent and their cache misses overlap; a smaller one, whose loads hit the
    /// cache, one address after another, which costs fewer instructions.
    #[inline]
    pub fn lookup_batch(&self, addrs: &[u128], out: &mut [Option<u32>]) {
        let n = addrs.len().min(out.len());
        let (addrs, out) = (&addrs[..n], &mut out[..n]);
        #[cfg(target_arch = "x86_64")]
        if self.hw_popcnt {
            // SAFETY: `hw_popcnt` is only true when the CPU has `popcnt`.
            return unsafe { self.batch_popcnt(addrs, out) };
        }
        self.batch(addrs, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt")]
    fn batch_popcnt(&self, addrs: &[u128], out: &mut [Option<u32>]) {
        self.batch(addrs, out)
    }

    #[inline(always)]
    fn batch(&self, addrs: &[u128], out: &mut [Option<u32>]) {
        const CHUNK: usize = 16;
        if !self.interleave {
            for (i, (&a, o)) in addrs.iter().zip(out.iter_mut()).enumerate() {
                if let Some(&b) = addrs.get(i + CHUNK) {
                    prefetch(&self.direct[top(b)]);
                }
                let d = self.direct[top(a)];
                *o = decode(if d & NODE == 0 {
                    d
                } else {
                    self.walk(d & !NODE, a << DIRECT_BITS)
                });
            }
            return;
        }
        for &a in &addrs[..addrs.len().min(CHUNK)] {
            prefetch(&self.direct[top(a)]);
        }
        for (c, (chunk, out)) in addrs.chunks(CHUNK).zip(out.chunks_mut(CHUNK)).enumerate() {
            let next = ((c + 1) * CHUNK).min(addrs.len());
            for &a in &addrs[next..(next + CHUNK).min(addrs.len())] {
                prefetch(&self.direct[top(a)]);
            }
            // Lanes still walking: their node and their address with the bits above the
            // node's block shifted out.
            let mut at = [0u32; CHUNK];
            let mut key = [0u128; CHUNK];
            let mut walking = 0u32;
            for (k, (&a, o)) in chunk.iter().zip(out.iter_mut()).enumerate() {
                let d = self.direct[top(a)];
                if d & NODE == 0 {
                    *o = decode(d);
                } else {
                    at[k] = d & !NODE;
                    key[k] = a << DIRECT_BITS;
                    prefetch(&self.nodes[at[k] as usize]);
                    walking |= 1 << k;
                }
            }
            while walking != 0 {
                let mut still = 0u32;
                let mut lanes = walking;
                while lanes != 0 {
                    let k = lanes.trailing_zeros() as usize;
                    lanes &= lanes - 1;
                    match self.step(at[k], key[k]) {
                        Step::Node(n, shift) => {
                            at[k] = n;
                            key[k] <<= shift;
                            prefetch(&self.nodes[n as usize]);
                            still |= 1 << k;
                        }
                        Step::Leaf(l) => out[k] = decode(l),
                    }
                }
                walking = still;
            }
        }
    }

    /// Number of distinct prefixes in the table.
    pub fn routes(&self) -> usize {
        self.routes
    }

    /// Number of trie nodes (32 bytes each).
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Bytes of table memory: the 256 KiB direct table, the nodes and the leaves.
    pub fn memory_bytes(&self) -> usize {
        size_of_val(&*self.direct) + size_of_val(&*self.nodes) + size_of_val(&*self.leaves)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::test_rng::Rng;
    use std::collections::HashMap;

    fn ip(s: &str) -> u128 {
        u128::from(s.parse::<Ipv6Addr>().unwrap())
    }

    fn build(routes: &[(&str, u8, u32)]) -> Lpm6 {
        let mut b = Lpm6Builder::new();
        for &(p, len, v) in routes {
            b.insert(ip(p), len, v).unwrap();
        }
        b.build().unwrap()
    }

    /// Every address `lookup` and `lookup_batch` are asked about in a test: both must agree.
    fn check(t: &Lpm6, cases: &[(u128, Option<u32>)]) {
        for &(a, want) in cases {
            assert_eq!(t.lookup(a), want, "{}", Ipv6Addr::from(a));
        }
        let addrs: Vec<u128> = cases.iter().map(|c| c.0).collect();
        // Both ways of walking a batch, whatever the table's size.
        for interleave in [false, true] {
            let mut t = t.clone();
            t.interleave = interleave;
            let mut out = vec![Some(u32::MAX); addrs.len()];
            t.lookup_batch(&addrs, &mut out);
            for (&(a, want), got) in cases.iter().zip(out) {
                assert_eq!(
                    got,
                    want,
                    "batch (interleave {interleave}) {}",
                    Ipv6Addr::from(a)
                );
            }
        }
    }

    /// The most memory a table of `routes` prefixes can take (module doc, "Memory").
    fn memory_bound(routes: usize) -> usize {
        DIRECT_ENTRIES * 4 + routes * (20 * (32 + 4) + 2 * 4)
    }

    #[test]
    fn empty_table_matches_nothing() {
        let b = Lpm6Builder::new();
        assert!(b.is_empty());
        assert_eq!(b.len(), 0);
        let t = b.build().unwrap();
        check(
            &t,
            &[
                (0, None),
                (1, None),
                (ip("2001:db8::1"), None),
                (u128::MAX, None),
                (1 << 127, None),
            ],
        );
        assert_eq!(t.routes(), 0);
        assert_eq!(t.nodes(), 0);
        assert_eq!(t.memory_bytes(), 256 * 1024);
    }

    #[test]
    fn default_route_matches_everything() {
        let t = build(&[("::", 0, 7)]);
        check(
            &t,
            &[
                (0, Some(7)),
                (ip("2001:db8::1"), Some(7)),
                (ip("fe80::1"), Some(7)),
                (u128::MAX, Some(7)),
            ],
        );
        assert_eq!(t.routes(), 1);
        assert_eq!(t.nodes(), 0);
    }

    #[test]
    fn host_route_and_default_route_together() {
        let t = build(&[("::", 0, 1), ("2001:db8::1", 128, 2)]);
        let host = ip("2001:db8::1");
        check(
            &t,
            &[
                (host, Some(2)),
                (host - 1, Some(1)),
                (host + 1, Some(1)),
                (host ^ (1 << 127), Some(1)),
                (0, Some(1)),
                (u128::MAX, Some(1)),
            ],
        );
        // Alone in its /16: below the direct table, a tail of two path nodes (58 and 54
        // bits), not a chain of 19 Poptrie nodes.
        assert_eq!(t.nodes(), 2);
        // With a neighbour that differs only in the last 2 bits: skips of 58 and 52 bits,
        // then a Poptrie node for bits 126..128, where both end.
        let t = build(&[
            ("::", 0, 1),
            ("2001:db8::1", 128, 2),
            ("2001:db8::2", 128, 3),
        ]);
        check(
            &t,
            &[
                (host, Some(2)),
                (host + 1, Some(3)),
                (host - 1, Some(1)),
                (host + 2, Some(1)),
                (host + 16, Some(1)),
            ],
        );
        assert_eq!(t.nodes(), 3);

        // Host routes at both ends of the address space, without a default.
        let t = build(&[
            ("::", 128, 3),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 128, 4),
        ]);
        check(
            &t,
            &[
                (0, Some(3)),
                (1, None),
                (2, None),
                (u128::MAX, Some(4)),
                (u128::MAX - 1, None),
                (u128::MAX >> 1, None),
            ],
        );
    }

    /// Nested prefixes ending on and beside the direct table's and the nodes' boundaries
    /// (16, 22, ..., 64, ..., 124), the /64 and /127 of a link, and a /128 inside it.
    const NESTED: [(&str, u8, u32); 12] = [
        ("2000::", 3, 1),
        ("2001::", 16, 2),
        ("2001::", 17, 3),
        ("2001:c00::", 22, 4),
        ("2001:db8::", 32, 5),
        ("2001:db8:1::", 48, 6),
        ("2001:db8:1:2::", 63, 7),
        ("2001:db8:1:2::", 64, 8),
        ("2001:db8:1:2::", 65, 9),
        ("2001:db8:1:2::a", 127, 10),
        ("2001:db8:1:2::b", 128, 11),
        ("2001:db8:1:2::10", 124, 12),
    ];

    const NESTED_EXPECT: [(&str, Option<u32>); 32] = [
        ("::", None),
        ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("2000::", Some(1)),
        ("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(1)),
        ("4000::", None),
        ("2001::", Some(3)),
        ("2001:7fff:ffff:ffff:ffff:ffff:ffff:ffff", Some(3)),
        ("2001:8000::", Some(2)),
        ("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(2)),
        ("2002::", Some(1)),
        ("2001:bff:ffff:ffff:ffff:ffff:ffff:ffff", Some(3)),
        ("2001:c00::", Some(4)),
        ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", Some(4)),
        ("2001:db8::", Some(5)),
        ("2001:db9::", Some(4)),
        ("2001:fff:ffff:ffff:ffff:ffff:ffff:ffff", Some(4)),
        ("2001:1000::", Some(3)),
        ("2001:db8:1::", Some(6)),
        ("2001:db8:1:1:ffff:ffff:ffff:ffff", Some(6)),
        ("2001:db8:1:2::", Some(9)),
        ("2001:db8:1:2:7fff:ffff:ffff:ffff", Some(9)),
        ("2001:db8:1:2:8000::", Some(8)),
        ("2001:db8:1:3::", Some(7)),
        ("2001:db8:1:4::", Some(6)),
        ("2001:db8:1:2::a", Some(10)),
        ("2001:db8:1:2::b", Some(11)),
        ("2001:db8:1:2::9", Some(9)),
        ("2001:db8:1:2::c", Some(9)),
        ("2001:db8:1:2::1f", Some(12)),
        ("2001:db8:1:2::20", Some(9)),
        ("2001:db8:2::", Some(5)),
        ("2001:db9:1:2::b", Some(4)),
    ];

    fn nested_cases() -> Vec<(u128, Option<u32>)> {
        NESTED_EXPECT.iter().map(|&(a, w)| (ip(a), w)).collect()
    }

    #[test]
    fn overlapping_prefixes_at_every_boundary() {
        let forward = build(&NESTED);
        let mut reversed = NESTED;
        reversed.reverse();
        let backward = build(&reversed);
        check(&forward, &nested_cases());
        check(&backward, &nested_cases());
        assert_eq!(forward.routes(), NESTED.len());
        assert_eq!(forward.nodes(), backward.nodes());
        assert!(forward.memory_bytes() <= memory_bound(NESTED.len()));
    }

    #[test]
    fn later_insert_replaces() {
        let mut b = Lpm6Builder::new().with_max_routes(3);
        b.insert(ip("2001:db8::"), 32, 1).unwrap();
        b.insert(ip("2001:db8:1:2::"), 64, 2).unwrap();
        // Same prefix, other length: a distinct route.
        b.insert(ip("2001:db8::"), 48, 5).unwrap();
        // Replacements do not count against the budget.
        b.insert(ip("2001:db8::"), 32, 3).unwrap();
        b.insert(ip("2001:db8:1:2::"), 64, 4).unwrap();
        assert_eq!(b.len(), 3);
        let t = b.build().unwrap();
        assert_eq!(t.routes(), 3);
        check(
            &t,
            &[
                (ip("2001:db8:9::"), Some(3)),
                (ip("2001:db8:0:9::"), Some(5)),
                (ip("2001:db8:1:2::1"), Some(4)),
                (ip("2001:db8:1:3::1"), Some(3)),
            ],
        );
    }

    #[test]
    fn insert_errors() {
        let mut b = Lpm6Builder::new();
        assert_eq!(
            b.insert(0, 129, 1),
            Err(Lpm6Error::PrefixLength { len: 129 })
        );
        assert_eq!(
            b.insert(0, u8::MAX, 1),
            Err(Lpm6Error::PrefixLength { len: u8::MAX })
        );
        assert_eq!(
            b.insert(ip("2001:db8::1"), 32, 1),
            Err(Lpm6Error::HostBitsSet {
                prefix: ip("2001:db8::1"),
                len: 32
            })
        );
        assert_eq!(
            b.insert(1, 0, 1),
            Err(Lpm6Error::HostBitsSet { prefix: 1, len: 0 })
        );
        assert_eq!(
            b.insert(1, 127, 1),
            Err(Lpm6Error::HostBitsSet {
                prefix: 1,
                len: 127
            })
        );
        assert_eq!(
            b.insert(0, 0, Lpm6::MAX_VALUE),
            Err(Lpm6Error::ValueTooLarge {
                value: Lpm6::MAX_VALUE
            })
        );
        assert_eq!(
            b.insert(0, 0, u32::MAX),
            Err(Lpm6Error::ValueTooLarge { value: u32::MAX })
        );
        assert!(b.is_empty(), "refused routes must not be kept");
        b.insert(ip("2001:db8::1"), 128, Lpm6::MAX_VALUE - 1)
            .unwrap();
        b.insert(u128::MAX, 128, 0).unwrap();
        let t = b.build().unwrap();
        check(
            &t,
            &[
                (ip("2001:db8::1"), Some(Lpm6::MAX_VALUE - 1)),
                (u128::MAX, Some(0)),
            ],
        );

        let mut b = Lpm6Builder::new().with_max_routes(1);
        b.insert(ip("2001:db8::"), 32, 1).unwrap();
        assert_eq!(
            b.insert(ip("2001:db8::"), 33, 1),
            Err(Lpm6Error::TooManyRoutes { max: 1 })
        );
        assert_eq!(b.len(), 1);
        let mut none = Lpm6Builder::new().with_max_routes(0);
        assert_eq!(
            none.insert(0, 0, 1),
            Err(Lpm6Error::TooManyRoutes { max: 0 })
        );
        assert_eq!(
            Lpm6Builder::new().with_max_routes(usize::MAX).max_routes,
            1 << 24
        );
        assert_eq!(Lpm6Builder::default().max_routes, DEFAULT_MAX_ROUTES);

        assert_eq!(
            Lpm6Error::PrefixLength { len: 129 }.to_string(),
            "prefix length 129 is above 128"
        );
        assert_eq!(
            Lpm6Error::HostBitsSet {
                prefix: ip("2001:db8::1"),
                len: 32
            }
            .to_string(),
            "prefix 2001:db8::1/32 has host bits set (network is 2001:db8::/32)"
        );
        assert_eq!(
            Lpm6Error::ValueTooLarge { value: 1 << 30 }.to_string(),
            "route value 1073741824 is not below the limit 1073741824"
        );
        let e: Box<dyn std::error::Error> = Box::new(Lpm6Error::TooManyRoutes { max: 2 });
        assert_eq!(
            e.to_string(),
            "more than 2 IPv6 routes (the table's route budget)"
        );
    }

    #[test]
    fn shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Lpm6>();
        let t = std::sync::Arc::new(build(&NESTED));
        std::thread::scope(|s| {
            for _ in 0..2 {
                let t = t.clone();
                s.spawn(move || check(&t, &nested_cases()));
            }
        });
    }

    #[test]
    fn batch_with_mismatched_lengths() {
        let mut t = build(&NESTED);
        let cases = nested_cases();
        let addrs: Vec<u128> = cases.iter().map(|c| c.0).collect();
        for interleave in [false, true] {
            t.interleave = interleave;
            // Every length around the chunk size, with `out` one longer than `addrs`.
            for n in 0..addrs.len() {
                let mut out = vec![Some(99); n + 1];
                t.lookup_batch(&addrs[..n], &mut out);
                for (i, &(a, want)) in cases[..n].iter().enumerate() {
                    assert_eq!(out[i], want, "n={n} {}", Ipv6Addr::from(a));
                }
                assert_eq!(out[n], Some(99), "entry past the input must be untouched");
            }
            // `out` shorter than `addrs`: only `out.len()` lookups.
            let mut out = vec![Some(99); 3];
            t.lookup_batch(&addrs, &mut out);
            assert_eq!(out, [None, None, Some(1)]);
        }
    }

    #[test]
    fn path_compression() {
        // A /48 and a /64 inside it, alone in their /16: a skip of 32 bits to the /48's
        // block (the /48 covers all of it), then a tail of 16 bits for the /64.
        let t = build(&[("2001:db8:1::", 48, 1), ("2001:db8:1:2::", 64, 2)]);
        assert_eq!(t.nodes(), 2);
        check(
            &t,
            &[
                (ip("2001:db8:1::"), Some(1)),
                (ip("2001:db8:1:2::"), Some(2)),
                (ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), Some(2)),
                (ip("2001:db8:1:3::"), Some(1)),
                (ip("2001:db8:1:ffff:ffff:ffff:ffff:ffff"), Some(1)),
                (ip("2001:db8:2::"), None),
                (ip("2001:db8::"), None),
                (ip("2001:db9:1:2::"), None),
                (ip("3001:db8:1:2::"), None),
            ],
        );
        // Tenant /64s of a /48 under a default route: a skip to the /48, then Poptrie nodes
        // for where they part.
        let t = build(&[
            ("::", 0, 0),
            ("2001:db8:1:1::", 64, 1),
            ("2001:db8:1:2::", 64, 2),
            ("2001:db8:1:4000::", 64, 3),
        ]);
        check(
            &t,
            &[
                (ip("2001:db8:1:1::5"), Some(1)),
                (ip("2001:db8:1:2::5"), Some(2)),
                (ip("2001:db8:1:3::5"), Some(0)),
                (ip("2001:db8:1:4000::5"), Some(3)),
                (ip("2001:db8:1:4001::5"), Some(0)),
                (ip("2001:db8:2:1::5"), Some(0)),
                (ip("2001:db9:1:1::5"), Some(0)),
            ],
        );
    }

    #[test]
    fn software_popcount_walk_agrees() {
        let mut t = build(&NESTED);
        t.hw_popcnt = false;
        check(&t, &nested_cases());
    }

    fn rng128(rng: &mut Rng) -> u128 {
        (u128::from(rng.next()) << 64) | u128::from(rng.next())
    }

    /// A length: mostly /32../64 (/48 and /64 most of all), some shorter, some between /65
    /// and /127, and /128s.
    fn random_len(rng: &mut Rng) -> u8 {
        match rng.pick(100) {
            0..5 => rng.pick(32) as u8,
            5..45 => 32 + rng.pick(33) as u8,
            45..60 => 48,
            60..75 => 64,
            75..85 => 65 + rng.pick(63) as u8,
            _ => 128,
        }
    }

    /// `n` distinct random routes, clustered as real ones are: most share their upper bits
    /// with one of a few "sites" (inside a handful of /16s), so prefixes nest and share trie
    /// paths; a few are anywhere.
    fn random_routes(rng: &mut Rng, n: usize) -> (Lpm6Builder, Vec<(u128, u8, u32)>) {
        let tops: [u128; 5] = [0x2001, 0x2a00, 0x2600, 0xfd00, 0xfe80];
        let sites: Vec<u128> = (0..n / 8 + 1)
            .map(|_| {
                let top = tops[rng.pick(tops.len() as u64) as usize];
                (top << 112) | (rng128(rng) >> 16)
            })
            .collect();
        let mut builder = Lpm6Builder::new();
        let mut reference: HashMap<(u128, u8), u32> = HashMap::new();
        while reference.len() < n {
            let len = random_len(rng);
            let base = if rng.pick(10) == 0 {
                rng128(rng)
            } else {
                // A site with its bits below a random depth scrambled: siblings and cousins.
                let site = sites[rng.pick(sites.len() as u64) as usize];
                site ^ (rng128(rng) >> (16 + rng.pick(112)))
            };
            let prefix = base & mask(len);
            let value = rng.pick(u64::from(Lpm6::MAX_VALUE)) as u32;
            builder.insert(prefix, len, value).unwrap();
            reference.insert((prefix, len), value);
        }
        let mut routes: Vec<(u128, u8, u32)> =
            reference.into_iter().map(|((p, l), v)| (p, l, v)).collect();
        routes.sort_unstable();
        (builder, routes)
    }

    /// Longest match by brute force: every route, keep the longest that contains `addr`.
    fn linear_scan(routes: &[(u128, u128, u8, u32)], addr: u128) -> Option<u32> {
        let mut best: Option<(u8, u32)> = None;
        for &(p, m, len, v) in routes {
            if addr & m == p && best.is_none_or(|(l, _)| len > l) {
                best = Some((len, v));
            }
        }
        best.map(|(_, v)| v)
    }

    /// Probes for a table of `routes`: per route its first and last address, the addresses
    /// just outside both ends and one inside at random; then random addresses, half of them
    /// near the routes (a route's address with bits below a random depth scrambled).
    fn probes(rng: &mut Rng, routes: &[(u128, u8, u32)]) -> Vec<u128> {
        let mut addrs = Vec::new();
        for &(p, len, _) in routes {
            let last = p | !mask(len);
            addrs.extend([
                p,
                last,
                p.wrapping_sub(1),
                last.wrapping_add(1),
                p | (rng128(rng) & !mask(len)),
            ]);
        }
        for _ in 0..2_000 {
            let a = rng128(rng);
            addrs.push(a);
            if let Some(&(p, _, _)) = routes.get(rng.pick(routes.len().max(1) as u64) as usize) {
                addrs.push(p ^ (rng128(rng) >> rng.pick(128)));
            }
        }
        addrs
    }

    /// A random table of `n` routes against a linear scan: every probe when the scan is
    /// cheap enough for a debug build, otherwise every probe against probing each length
    /// in a map of the routes and that reference against the scan on every 16th probe.
    fn random_table_matches_scan(seed: u64, n: usize) {
        let mut rng = Rng(seed);
        let (builder, routes) = random_routes(&mut rng, n);
        assert_eq!(builder.len(), n);
        let t = builder.build().unwrap();
        assert_eq!(t.routes(), n);
        assert_eq!(t.interleave, t.memory_bytes() > INTERLEAVE_BYTES);
        assert!(
            t.memory_bytes() <= memory_bound(n),
            "{} bytes for {n} routes",
            t.memory_bytes()
        );
        let scan: Vec<(u128, u128, u8, u32)> =
            routes.iter().map(|&(p, l, v)| (p, mask(l), l, v)).collect();
        let by_len: HashMap<(u8, u128), u32> =
            routes.iter().map(|&(p, l, v)| ((l, p), v)).collect();
        let mut lens: Vec<u8> = routes.iter().map(|r| r.1).collect();
        lens.sort_unstable_by(|a, b| b.cmp(a));
        lens.dedup();
        let probe = |a: u128| {
            lens.iter()
                .find_map(|&l| by_len.get(&(l, a & mask(l))).copied())
        };

        let addrs = probes(&mut rng, &routes);
        let every = if n * addrs.len() <= 20_000_000 { 1 } else { 16 };
        let mut want = Vec::with_capacity(addrs.len());
        for (i, &a) in addrs.iter().enumerate() {
            let w = probe(a);
            if i % every == 0 {
                assert_eq!(
                    w,
                    linear_scan(&scan, a),
                    "reference at {}",
                    Ipv6Addr::from(a)
                );
            }
            assert_eq!(t.lookup(a), w, "{n} routes: {}", Ipv6Addr::from(a));
            want.push(w);
        }
        // A route's first, last and inside address always match.
        let hits = want.iter().filter(|w| w.is_some()).count();
        assert!(hits >= 3 * n, "{hits} of {} probes matched", addrs.len());
        let mut out = vec![Some(u32::MAX); addrs.len()];
        t.lookup_batch(&addrs, &mut out);
        assert_eq!(out, want, "lookup_batch");

        // The other way of walking a batch, and both without the popcnt instruction.
        let mut t = t;
        for (hw_popcnt, interleave) in [(true, true), (false, true), (false, false)] {
            t.hw_popcnt = hw_popcnt;
            t.interleave = interleave;
            let mut out = vec![Some(u32::MAX); addrs.len()];
            t.lookup_batch(&addrs, &mut out);
            assert_eq!(
                out, want,
                "lookup_batch, popcnt {hw_popcnt}, interleave {interleave}"
            );
        }
        for (&a, &w) in addrs.iter().zip(&want).step_by(7) {
            assert_eq!(t.lookup(a), w, "software popcount: {}", Ipv6Addr::from(a));
        }
    }

    #[test]
    fn random_0_routes() {
        random_table_matches_scan(1, 0);
    }

    #[test]
    fn random_1_route() {
        for seed in 1..50 {
            random_table_matches_scan(seed, 1);
        }
    }

    #[test]
    fn random_10_routes() {
        for seed in 1..20 {
            random_table_matches_scan(seed, 10);
        }
    }

    #[test]
    fn random_1000_routes() {
        random_table_matches_scan(0x9e37_79b9_7f4a_7c15, 1_000);
    }

    #[test]
    fn random_10000_routes() {
        random_table_matches_scan(0x2545_f491_4f6c_dd1d, 10_000);
    }
}
