//! The packet pipeline: batches of up to 64 packets through named stages.
//!
//! The shape follows VPP and DPDK's graph nodes: each stage takes the whole batch and the
//! bitmask of packets addressed to it, decides a [`Next`] for every one of them, and the
//! dispatcher runs the next stage once for all packets that want it. When every packet of
//! a batch goes the same way (the common case) each stage runs over one dense mask. Drops
//! carry a [`DropReason`]; there is no other way out of the pipeline.
//!
//! ```text
//! fast (the common case of l2_input .. rewrite in one pass) ----------------------> tx
//! l2_input -> arp ---------------------------------------------------------------> tx
//!          -> ip4_input -> nat_in -> route -> nat_out -> rewrite (neighbour, TTL, MTU) -> tx
//!                     |                  \-> local (echo) -/  \-> hold (ARP pending)
//!                     |                  \-> encap (Geneve) -> rewrite
//!                     |      (policy: ACLs and rate limits, on the way into nat_out and encap)
//!                     \-> decap (Geneve to the tunnel endpoint) -> ip4_input (inner)
//!          any stage -> icmp_error -> route ...
//! ```

pub mod adjacency;
pub mod arp;
pub mod fast;
pub mod geneve_decap;
pub mod geneve_encap;
pub mod icmp_error;
pub mod ip4_input;
pub mod ip6;
pub mod l2_input;
pub mod local;
pub mod nat;
pub mod ndp;
pub mod policy;
pub mod rewrite;
pub mod route;
pub mod vrrp;

use crate::io::{Desc, FramePool};
use crate::metrics::{DropReason, IcmpKind, WorkerStats};
use crate::tables::Snapshot;
use crate::tables::nat::SnatTable;
use crate::tables::neighbor::{NeighborConfig, NeighborTable, TickOutput};

/// Largest batch.
pub const MAX_BATCH: usize = 64;

/// Where a packet goes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Next {
    L2Input = 0,
    Arp,
    Ip4Input,
    Local,
    Route,
    Rewrite,
    IcmpError,
    /// Destination NAT (floating IPs) and SNAT return traffic, before routing.
    NatIn,
    /// Source NAT of tenant traffic, after routing.
    NatOut,
    /// Transmit on `Meta::tx_port`.
    Tx,
    /// Free the frame and count `Meta::drop`.
    Drop,
    /// The frame now belongs to someone else (a hold queue); nothing more to do.
    Consumed,
    /// For worker `Meta::handoff_to`: SNAT return traffic for one of its sessions, or a
    /// tenant's ICMP error about a flow whose session is on some other worker.
    Handoff,
    /// Routed to a Geneve network: encapsulate toward the endpoint's chassis.
    Encap,
    /// Geneve to the tunnel endpoint: decapsulate (found by ip4_input).
    Decap,
    /// IPv6 receive checks ([`ip6::run_input`]).
    Ip6Input,
    /// IPv6 route, hop limit, MTU and next hop ([`ip6::run_forward`]).
    Ip6Forward,
    /// ICMPv6 errors ([`ip6::run_error`]).
    Icmp6Error,
}

const NEXT_COUNT: usize = 18;

/// Per-packet metadata, VPP's `vnet_buffer` opaque. Aligned to 16 bytes so one vector
/// store writes it and one load reads it.
#[derive(Clone, Copy, Debug)]
#[repr(align(16))]
pub struct Meta {
    pub rx_port: u8,
    pub tx_port: u8,
    /// Set when vgate originated the packet (echo reply, ICMP error): routed from the main
    /// table, no TTL decrement.
    pub local_origin: bool,
    pub drop: DropReason,
    /// ICMP error to send about this packet.
    pub icmp: IcmpKind,
    /// Extra ICMP field: next-hop MTU for fragmentation needed.
    pub icmp_mtu: u16,
    /// Neighbour to resolve on `tx_port` (the next hop, or the destination when on-link).
    pub nexthop: u32,
    /// NAT already applied (a DNATed packet is not source-translated again).
    pub nat_done: bool,
    /// Worker that owns the SNAT session of a packet sent to `Next::Handoff`.
    pub handoff_to: u8,
    /// Workers this packet was handed on to so far without finding its session (tenant
    /// ICMP errors go round the workers: their session's owner is not computable).
    pub handoff_hops: u8,
    /// TTL of the packet as the stage that sends it to route left it (ip4_input, local,
    /// icmp_error), so route reads no packet bytes; see also [`Batch::dst`]. A stage that
    /// changes it in the packet before route must update it here too.
    pub ttl: u8,
    /// Tenant network (index + 1) a decapsulated Geneve packet arrived in; 0 for packets
    /// that did not come through a tunnel (or from a network beyond index 254).
    pub vni_net: u8,
}

// One vector register: the tunnel fields must fit the bytes the others leave free.
const _: () = assert!(std::mem::size_of::<Meta>() == 16);

impl Default for Meta {
    fn default() -> Self {
        Meta {
            rx_port: 0,
            tx_port: 0,
            local_origin: false,
            // Every stage that drops names its reason: a packet dropped with this one was
            // never classified.
            drop: DropReason::Internal,
            icmp: IcmpKind::NetUnreachable,
            icmp_mtu: 0,
            nexthop: 0,
            nat_done: false,
            handoff_to: 0,
            handoff_hops: 0,
            ttl: 0,
            vni_net: 0,
        }
    }
}

/// A batch: descriptors, metadata and one bitmask per [`Next`].
///
/// The masks are the only record of where a packet is: every packet of the batch has its
/// bit in exactly one of them. Moving a whole mask of packets is two word operations.
pub struct Batch {
    pub len: usize,
    pub desc: [Desc; MAX_BATCH],
    pub meta: [Meta; MAX_BATCH],
    /// IPv4 destination of each packet as the stage that sends it to route left it
    /// (ip4_input, local, icmp_error), so route reads no packet bytes and looks up the batch
    /// straight from this array. A stage that changes the destination in the packet before
    /// route must update it here too.
    pub dst: [u32; MAX_BATCH],
    masks: [u64; NEXT_COUNT],
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            len: 0,
            desc: [Desc::default(); MAX_BATCH],
            meta: [Meta::default(); MAX_BATCH],
            dst: [0; MAX_BATCH],
            masks: [0; NEXT_COUNT],
        }
    }
}

/// Every [`Next`], indexed by its value.
const NEXT_ALL: [Next; NEXT_COUNT] = [
    Next::L2Input,
    Next::Arp,
    Next::Ip4Input,
    Next::Local,
    Next::Route,
    Next::Rewrite,
    Next::IcmpError,
    Next::NatIn,
    Next::NatOut,
    Next::Tx,
    Next::Drop,
    Next::Consumed,
    Next::Handoff,
    Next::Encap,
    Next::Decap,
    Next::Ip6Input,
    Next::Ip6Forward,
    Next::Icmp6Error,
];

impl Batch {
    /// Start a batch of `n` received packets, all entering at `l2_input` from `port`.
    pub fn reset_rx(&mut self, n: usize, port: u8) {
        debug_assert!(n <= MAX_BATCH);
        self.len = n;
        self.masks = [0; NEXT_COUNT];
        self.masks[Next::L2Input as usize] = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        self.meta[..n].fill(Meta {
            rx_port: port,
            ..Meta::default()
        });
    }

    /// Append one packet entering at `next` (used for packets the worker injects).
    pub fn push(&mut self, desc: Desc, meta: Meta, next: Next) -> bool {
        if self.len == MAX_BATCH {
            return false;
        }
        let i = self.len;
        self.len += 1;
        self.desc[i] = desc;
        self.meta[i] = meta;
        self.masks[next as usize] |= 1 << i;
        true
    }

    /// Empty the batch.
    pub fn clear(&mut self) {
        self.len = 0;
        self.masks = [0; NEXT_COUNT];
    }

    #[inline]
    pub fn mask(&self, n: Next) -> u64 {
        self.masks[n as usize]
    }

    /// Where packet `i` goes next; [`Next::Consumed`] for a slot that holds no packet.
    #[inline]
    pub fn next(&self, i: usize) -> Next {
        let bit = 1u64 << i;
        NEXT_ALL
            .into_iter()
            .find(|n| self.masks[*n as usize] & bit != 0)
            .unwrap_or(Next::Consumed)
    }

    /// Send packet `i` to `n`.
    ///
    /// Out of line on purpose: stages call it only off their fast path (drops, errors), and
    /// inlined it makes the compiler carry all the masks in registers through the stage loop.
    #[inline(never)]
    pub fn set_next(&mut self, i: usize, n: Next) {
        let bit = 1u64 << i;
        for m in self.masks.iter_mut() {
            *m &= !bit;
        }
        self.masks[n as usize] |= bit;
    }

    /// Move every packet of `mask` (all currently at `from`) to `n` at once.
    #[inline]
    pub fn set_next_mask(&mut self, from: Next, mask: u64, n: Next) {
        self.masks[from as usize] &= !mask;
        self.masks[n as usize] |= mask;
    }

    /// Drop packet `i` for `reason`.
    #[inline]
    pub fn drop(&mut self, i: usize, reason: DropReason) {
        self.meta[i].drop = reason;
        self.set_next(i, Next::Drop);
    }

    /// Packet `i` is lost for `reason`; the icmp_error stage counts that and turns the frame
    /// into an ICMP error of `kind` about it.
    #[inline]
    pub fn icmp_error(&mut self, i: usize, reason: DropReason, kind: IcmpKind, mtu: u16) {
        self.meta[i].drop = reason;
        self.meta[i].icmp = kind;
        self.meta[i].icmp_mtu = mtu;
        self.set_next(
            i,
            if kind.is_v6() {
                Next::Icmp6Error
            } else {
                Next::IcmpError
            },
        );
    }
}

/// The set bits of a mask, lowest first.
#[derive(Clone, Copy, Debug)]
pub struct Bits(u64);

impl Iterator for Bits {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        // Masked to 0..64 so indexing a batch array needs no bounds check.
        let i = (self.0.trailing_zeros() & 63) as usize;
        self.0 &= self.0 - 1;
        Some(i)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.count_ones() as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Bits {}

/// Iterate the set bits of a mask, lowest first.
#[inline(always)]
pub fn bits(m: u64) -> Bits {
    Bits(m)
}

/// Packets ready to leave, per port. Capacity is reserved up front; nothing allocates while
/// processing as long as a batch stays within it (it cannot exceed one batch plus the
/// packets released from hold queues, both bounded).
pub struct TxQueues {
    pub per_port: Vec<Vec<Desc>>,
}

impl TxQueues {
    pub fn new(ports: usize, cap: usize) -> TxQueues {
        TxQueues {
            per_port: (0..ports).map(|_| Vec::with_capacity(cap)).collect(),
        }
    }

    #[inline]
    pub fn push(&mut self, port: u8, d: Desc) {
        self.per_port[port as usize].push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.per_port.iter().all(Vec::is_empty)
    }

    pub fn total(&self) -> usize {
        self.per_port.iter().map(Vec::len).sum()
    }
}

/// Token bucket for ICMP errors, per worker (RFC 1812 section 4.3.2.8).
#[derive(Clone, Copy, Debug)]
pub struct RateLimiter {
    tokens: u64,
    burst: u64,
    per_sec: u64,
    last: u64,
}

impl RateLimiter {
    /// `per_sec` tokens a second, at most `burst` saved up (`limits.icmp_errors_per_sec` and
    /// `limits.icmp_errors_burst`); the bucket starts full. A rate of 0 allows nothing.
    pub fn new(per_sec: u64, burst: u64) -> RateLimiter {
        RateLimiter {
            tokens: burst,
            burst,
            per_sec,
            last: 0,
        }
    }

    /// Take one token at time `now` (ns). False when exhausted.
    #[inline]
    pub fn allow(&mut self, now: u64) -> bool {
        if self.per_sec == 0 {
            return false;
        }
        let interval = 1_000_000_000 / self.per_sec;
        if now > self.last {
            let earned = (now - self.last) / interval.max(1);
            if earned > 0 {
                self.tokens = (self.tokens + earned).min(self.burst);
                self.last += earned * interval;
                if self.tokens == self.burst {
                    self.last = now;
                }
            }
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

/// Worker-owned mutable state the stages use.
pub struct WorkerState {
    pub neighbors: NeighborTable,
    /// IPv6 neighbours (NDP), with the same bounds.
    pub neighbors6: NeighborTable<u128>,
    pub tick6: TickOutput<u128>,
    /// IPv6 neighbours learned here, for the other workers.
    pub learned6: Vec<(u8, u128, crate::wire::EthernetAddress)>,
    /// Worker 0's unsolicited router advertisements.
    pub ra: ndp::RaSchedule,
    pub icmp_limiter: RateLimiter,
    /// Scratch for packets released from hold queues.
    pub released: Vec<Desc>,
    /// Scratch for timer output.
    pub tick: TickOutput,
    /// Neighbour learned here, to tell other workers and the control thread.
    pub learned: Vec<(u8, u32, crate::wire::EthernetAddress)>,
    /// This worker's index and the number of workers (SNAT port blocks).
    pub worker: usize,
    pub workers: usize,
    /// SNAT sessions per rule of the snapshot in service (None: rule not set up yet).
    pub snat: Vec<Option<SnatTable>>,
    /// Generation of the snapshot `snat` was synchronised with.
    pub snat_generation: u64,
    /// The fast path's inbound next hop per floating IP of the snapshot in service.
    pub fip_hops: Vec<fast::FipHop>,
    /// The snapshot `fip_hops` belongs to: its generation and address.
    fip_hops_of: (u64, usize),
    /// Packets to hand to other workers after this batch: (worker, rx port, frame).
    pub handoff: Vec<Handoff>,
    /// Virtual endpoints moved by a gratuitous ARP through a tunnel: IP -> chassis address.
    pub virtual_chassis: crate::tables::neighbor::IntMap<u32, u32>,
    /// Moves seen here, to tell the other workers and the control thread: (IP, chassis).
    pub virtual_moved: Vec<(u32, u32)>,
    /// Stateful ACL flows and rate-limit buckets.
    pub policy: policy::PolicyState,
    /// SNAT virtual reassembly: the translations of fragmented datagrams, held fragments.
    pub reass: crate::tables::reass::Reassembly,
    /// Scratch for held fragments whose time ran out.
    pub reass_expired: Vec<crate::tables::reass::HeldFragment>,
    /// VRRP: bit `slot` set while this node is master of group `slot` of the snapshot, and
    /// the ports where some group is not master ([`crate::tables::ha::masters`], loaded
    /// once per poll).
    pub ha_masters: u64,
    pub ha_guarded: u64,
    /// Adverts received for the election, and how many more this poll may take.
    pub vrrp_rx: Vec<vrrp::AdvertIn>,
    pub vrrp_room: usize,
}

/// True when a VIP location learned from a gratuitous ARP (`ip` at chassis address
/// `chassis`) still holds in `snap`: the endpoint is still virtual and the chassis still
/// configured. A reload that removes either forgets the location (the workers' and the
/// control thread's alike).
pub fn virtual_location_holds(snap: &Snapshot, ip: u32, chassis: u32) -> bool {
    snap.endpoint_by_ip
        .get(&ip)
        .and_then(|&e| snap.endpoints.get(usize::from(e)))
        .is_some_and(|e| e.is_virtual)
        && snap.chassis_by_addr.get(&chassis).is_some()
}

/// A packet to hand to another worker after this batch ([`Next::Handoff`]).
#[derive(Clone, Copy, Debug)]
pub struct Handoff {
    pub worker: u8,
    pub rx_port: u8,
    /// [`Meta::handoff_hops`], counting this one.
    pub hops: u8,
    /// [`Meta::vni_net`]: the tenant network a decapsulated packet came from (hairpin NAT
    /// and policy need it on the receiving worker too).
    pub vni_net: u8,
    pub desc: Desc,
}

/// Virtual-endpoint moves one worker publishes per poll; more in one poll wait for the
/// next GARP of the burst (RFC 5227 announcements come in threes).
pub const MAX_VIRTUAL_MOVES_PER_POLL: usize = 64;

/// Default ICMP error rate per worker: like Linux's `icmp_msgs_per_sec` / `icmp_msgs_burst`.
pub const ICMP_RATE_PER_SEC: u64 = 1000;
pub const ICMP_BURST: u64 = 50;
/// Default bound on the flows stateful ACLs track, per worker (`limits.acl_sessions`).
pub const DEFAULT_ACL_SESSIONS: usize = 65_536;

impl WorkerState {
    pub fn new(ncfg: NeighborConfig) -> WorkerState {
        WorkerState {
            neighbors: NeighborTable::new(ncfg),
            neighbors6: NeighborTable::new(ncfg),
            tick6: TickOutput {
                requests: Vec::with_capacity(ncfg.max_unresolved + 64),
                failed: Vec::with_capacity(
                    (ncfg.max_unresolved * ncfg.hold_per_entry).min(ncfg.max_held),
                ),
            },
            learned6: Vec::with_capacity(256),
            ra: ndp::RaSchedule::default(),
            icmp_limiter: RateLimiter::new(ICMP_RATE_PER_SEC, ICMP_BURST),
            // One learn releases one hold queue; one timer pass fails at most every held
            // packet: neither exceeds what the table can hold.
            released: Vec::with_capacity(ncfg.hold_per_entry.min(ncfg.max_held)),
            tick: TickOutput {
                requests: Vec::with_capacity(ncfg.max_unresolved + 64),
                failed: Vec::with_capacity(
                    (ncfg.max_unresolved * ncfg.hold_per_entry).min(ncfg.max_held),
                ),
            },
            learned: Vec::with_capacity(256),
            worker: 0,
            workers: 1,
            snat: Vec::new(),
            snat_generation: 0,
            fip_hops: Vec::new(),
            fip_hops_of: (0, 0),
            handoff: Vec::with_capacity(MAX_BATCH),
            // Keyed by configured virtual endpoints only: bounded, and sized up front so
            // a gratuitous ARP does not allocate.
            virtual_chassis: crate::tables::neighbor::IntMap::with_capacity_and_hasher(
                256,
                Default::default(),
            ),
            virtual_moved: Vec::with_capacity(MAX_VIRTUAL_MOVES_PER_POLL),
            policy: policy::PolicyState::new(DEFAULT_ACL_SESSIONS),
            reass: crate::tables::reass::Reassembly::new(Default::default()),
            reass_expired: Vec::with_capacity(
                crate::tables::reass::ReassemblyConfig::default().fragments,
            ),
            ha_masters: 0,
            ha_guarded: 0,
            vrrp_rx: Vec::with_capacity(vrrp::ADVERTS_PER_POLL),
            vrrp_room: vrrp::ADVERTS_PER_POLL,
        }
    }

    /// Load the election's outcome for `snap`'s groups ([`crate::tables::ha::masters`]);
    /// once per poll, before its batches.
    #[inline]
    pub fn load_ha(&mut self, snap: &Snapshot, ha: &crate::tables::ha::HaState) {
        (self.ha_masters, self.ha_guarded) = if snap.vrrp.is_empty() {
            (0, 0)
        } else {
            crate::tables::ha::masters(&snap.vrrp, ha)
        };
    }

    /// Use `[limits]`' reassembly bounds; before the first poll.
    pub fn set_reassembly(&mut self, cfg: crate::tables::reass::ReassemblyConfig) {
        self.reass = crate::tables::reass::Reassembly::new(cfg);
        self.reass_expired = Vec::with_capacity(cfg.fragments);
    }

    /// Frames this worker holds for later: packets waiting for ARP, fragments waiting for
    /// their datagram's first fragment (the `held_packets` gauge).
    pub fn held_frames(&self) -> u64 {
        (self.neighbors.held() + self.neighbors6.held() + self.reass.held()) as u64
    }

    /// Track at most `n` stateful ACL flows (`limits.acl_sessions`); before the first poll.
    pub fn set_acl_sessions(&mut self, n: usize) {
        self.policy = policy::PolicyState::new(n);
    }

    /// Use `limits.icmp_errors_per_sec` and `limits.icmp_errors_burst` instead of the
    /// defaults; the bucket starts full.
    pub fn set_icmp_rate(&mut self, per_sec: u64, burst: u64) {
        self.icmp_limiter = RateLimiter::new(per_sec, burst);
    }

    /// Follow the snapshot in service: its SNAT rules' session tables, and forget every
    /// floating IP's remembered next hop when the snapshot changes. Runs once per poll,
    /// before the batch; allocates only when the snapshot has more floating IPs than any
    /// before. The policy state follows it too ([`policy::PolicyState::sync`]).
    pub fn sync(&mut self, snap: &Snapshot, stats: &WorkerStats) {
        self.sync_snat(snap);
        self.policy.sync(snap, stats, self.worker);
        let of = (snap.generation, std::ptr::from_ref(snap) as usize);
        if self.fip_hops_of != of {
            self.fip_hops.clear();
            self.fip_hops.resize(snap.fips.len(), fast::FipHop::NONE);
            self.fip_hops_of = of;
            // Learned VIP locations hold only for VIPs and chassis the snapshot still has.
            self.virtual_chassis
                .retain(|ip, chassis| virtual_location_holds(snap, *ip, *chassis));
        }
    }

    /// Follow a new snapshot's SNAT rules: keep the sessions of rules that did not change,
    /// drop those of removed or changed rules at once (their translations stop now), set up
    /// tables for new ones. Runs once per snapshot change, never per packet.
    fn sync_snat(&mut self, snap: &Snapshot) {
        if self.snat_generation == snap.generation && self.snat.len() == snap.snat.len() {
            return;
        }
        let mut old: Vec<Option<SnatTable>> = std::mem::take(&mut self.snat);
        self.snat = snap
            .snat
            .iter()
            .map(|r| {
                let kept = old
                    .iter_mut()
                    .find(|t| t.as_ref().is_some_and(|t| *t.params() == r.params))
                    .and_then(Option::take);
                Some(kept.unwrap_or_else(|| SnatTable::new(r.params, self.worker, self.workers)))
            })
            .collect();
        self.snat_generation = snap.generation;
    }
}

/// What a stage may touch.
pub struct Ctx<'a> {
    pub snap: &'a Snapshot,
    pub pool: &'a mut FramePool,
    pub state: &'a mut WorkerState,
    pub stats: &'a WorkerStats,
    pub tx: &'a mut TxQueues,
    /// Monotonic nanoseconds, read once per batch.
    pub now: u64,
}

/// Run a batch through the stages until every packet is transmitted, dropped or held:
/// received packets take the [`fast`] path when they qualify and the snapshot allows it
/// ([`Snapshot::fast_path`]), the stages otherwise.
/// Out of line: one call per batch, and one symbol to profile.
#[inline(never)]
pub fn process(ctx: &mut Ctx, b: &mut Batch) {
    if ctx.snap.fast_path {
        let m = b.mask(Next::L2Input);
        if m != 0 {
            fast::run(ctx, b, m);
        }
        let m = b.mask(Next::L2Input);
        if m != 0 && ctx.snap.ip6.enabled() {
            fast::run6(ctx, b, m);
        }
    }
    process_staged(ctx, b);
}

/// Rounds of the stages a batch may need. Rewrite waits while any packet is at route, so a
/// packet waiting there since the first round is rewritten in the third at the latest (the
/// first round's errors are routed in the second; packets route sent to local are answered
/// in the second, their port unreachable routed in the third); its frag-needed error is
/// built in the fourth and routed and rewritten in the fifth; an error about that error is
/// never sent but is counted by icmp_error, in the sixth. Two spare.
const ROUNDS: usize = 8;

/// [`process`] without the fast path: every packet through the stages.
pub fn process_staged(ctx: &mut Ctx, b: &mut Batch) {
    for _ in 0..ROUNDS {
        let m = b.mask(Next::L2Input);
        if m != 0 {
            l2_input::run(ctx, b, m);
        }
        let m = b.mask(Next::Arp);
        if m != 0 {
            arp::run(ctx, b, m);
        }
        let m = b.mask(Next::Ip4Input);
        if m != 0 {
            ip4_input::run(ctx, b, m);
        }
        let m = b.mask(Next::Decap);
        if m != 0 {
            // Inner IPv4 goes back to ip4_input.
            geneve_decap::run(ctx, b, m);
            let m = b.mask(Next::Ip4Input);
            if m != 0 {
                ip4_input::run(ctx, b, m);
            }
        }
        let m = b.mask(Next::Ip6Input);
        if m != 0 {
            ip6::run_input(ctx, b, m);
        }
        let m = b.mask(Next::NatIn);
        if m != 0 {
            nat::run_in(ctx, b, m);
        }
        let m = b.mask(Next::Local);
        if m != 0 {
            local::run(ctx, b, m);
        }
        let m = b.mask(Next::Route);
        if m != 0 {
            route::run(ctx, b, m);
        }
        let m = b.mask(Next::IcmpError);
        if m != 0 {
            icmp_error::run(ctx, b, m);
        }
        let m = b.mask(Next::Icmp6Error);
        if m != 0 {
            ip6::run_error(ctx, b, m);
        }
        let m = b.mask(Next::Ip6Forward);
        if m != 0 {
            ip6::run_forward(ctx, b, m);
            // Errors about packets ip6_forward could not send, routed at once.
            let m = b.mask(Next::Icmp6Error);
            if m != 0 {
                ip6::run_error(ctx, b, m);
                let m = b.mask(Next::Ip6Forward);
                if m != 0 {
                    ip6::run_forward(ctx, b, m);
                }
            }
        }
        // Errors built this round are routed in the next; rewrite waits until then so it
        // runs once over everything.
        if b.mask(Next::Route) != 0 {
            continue;
        }
        if ctx.snap.policy.any() {
            let m = b.mask(Next::NatOut) | b.mask(Next::Encap);
            if m != 0 {
                policy::run(ctx, b, m);
            }
        }
        let m = b.mask(Next::NatOut);
        if m != 0 {
            nat::run_out(ctx, b, m);
        }
        let m = b.mask(Next::Encap);
        if m != 0 {
            geneve_encap::run(ctx, b, m);
        }
        let m = b.mask(Next::Rewrite);
        if m != 0 {
            rewrite::run(ctx, b, m);
        }
        if pending(b) == 0 {
            break;
        }
    }
    finish(ctx, b);
}

#[inline]
fn pending(b: &Batch) -> u64 {
    b.mask(Next::L2Input)
        | b.mask(Next::Arp)
        | b.mask(Next::Ip4Input)
        | b.mask(Next::Local)
        | b.mask(Next::Route)
        | b.mask(Next::Rewrite)
        | b.mask(Next::IcmpError)
        | b.mask(Next::NatIn)
        | b.mask(Next::NatOut)
        | b.mask(Next::Encap)
        | b.mask(Next::Decap)
        | b.mask(Next::Ip6Input)
        | b.mask(Next::Ip6Forward)
        | b.mask(Next::Icmp6Error)
}

/// Hand transmitted packets to their port queues, free and count dropped ones.
fn finish(ctx: &mut Ctx, b: &mut Batch) {
    // Anything still in flight after the rounds is a pipeline bug: fail in tests, and in
    // production count it as such a drop rather than leak the frame.
    let stuck = pending(b);
    debug_assert!(
        stuck == 0,
        "packets left unclassified: {stuck:#x} at {:?}",
        bits(stuck).map(|i| b.next(i)).collect::<Vec<_>>()
    );
    for i in bits(stuck) {
        b.drop(i, DropReason::Internal);
    }
    let tx = b.mask(Next::Tx);
    let n = b.len.min(MAX_BATCH);
    let dense = if n == MAX_BATCH {
        u64::MAX
    } else {
        (1 << n) - 1
    };
    if tx == dense && n > 0 {
        // The whole batch leaves: usually all on one port, a single copy.
        let port = b.meta[0].tx_port;
        if b.meta[..n]
            .iter()
            .fold(true, |one, m| one & (m.tx_port == port))
        {
            ctx.tx.per_port[port as usize].extend_from_slice(&b.desc[..n]);
        } else {
            append_tx(ctx, b, tx);
        }
    } else {
        append_tx(ctx, b, tx);
    }
    for i in bits(b.mask(Next::Handoff)) {
        let m = &b.meta[i];
        ctx.state.handoff.push(Handoff {
            worker: m.handoff_to,
            rx_port: m.rx_port,
            hops: m.handoff_hops,
            vni_net: m.vni_net,
            desc: b.desc[i],
        });
    }
    let drops = b.mask(Next::Drop);
    if drops != 0 {
        // Batch-local tally, one counter write per distinct reason.
        let mut last = b.meta[drops.trailing_zeros() as usize].drop;
        let mut n = 0u64;
        for i in bits(drops) {
            let r = b.meta[i].drop;
            if r != last {
                ctx.stats.count_drop(last, n);
                last = r;
                n = 0;
            }
            n += 1;
            ctx.pool.free(b.desc[i]);
        }
        ctx.stats.count_drop(last, n);
    }
    b.clear();
}

/// Append the packets of `tx` to their ports' queues: one pass per port, in packet order.
fn append_tx(ctx: &mut Ctx, b: &Batch, mut tx: u64) {
    let mut out = [Desc::default(); MAX_BATCH];
    while tx != 0 {
        let port = b.meta[tx.trailing_zeros() as usize & (MAX_BATCH - 1)].tx_port;
        let (mut n, mut other) = (0, 0);
        for i in bits(tx) {
            if b.meta[i].tx_port == port {
                out[n & (MAX_BATCH - 1)] = b.desc[i];
                n += 1;
            } else {
                other |= 1 << i;
            }
        }
        ctx.tx.per_port[port as usize].extend_from_slice(&out[..n.min(MAX_BATCH)]);
        tx = other;
    }
}

/// Timer work for a worker: ARP retries and resolution failures. Failed held packets become
/// ICMP host unreachable through a batch of their own.
pub fn tick(ctx: &mut Ctx, b: &mut Batch) {
    ctx.state.tick.requests.clear();
    ctx.state.tick.failed.clear();
    ctx.state.neighbors.tick(ctx.now, &mut ctx.state.tick);
    ctx.state.policy.tick(ctx.now, ctx.stats);
    let mut expired = std::mem::take(&mut ctx.state.reass_expired);
    ctx.state.reass.expire(ctx.now, &mut expired);
    if !expired.is_empty() {
        ctx.stats
            .count_drop(DropReason::NatReassemblyTimeout, expired.len() as u64);
        for f in expired.drain(..) {
            ctx.pool.free(f.desc);
        }
    }
    ctx.state.reass_expired = expired;
    let reqs = std::mem::take(&mut ctx.state.tick.requests);
    for (port, ip) in reqs.iter() {
        adjacency::send_request(ctx, *port, *ip);
    }
    ctx.state.tick.requests = reqs;
    tick6(ctx, b);
    let failed = std::mem::take(&mut ctx.state.tick.failed);
    ctx.stats.held.set(ctx.state.held_frames());
    unreachable(
        ctx,
        b,
        &failed,
        DropReason::RewriteNeighborUnresolved,
        IcmpKind::HostUnreachable,
    );
    ctx.state.tick.failed = failed;
}

/// Packets whose next hop never answered, (port, frame): lost for `reason`, each turned
/// into an ICMP error of `kind` through batches of their own.
fn unreachable(
    ctx: &mut Ctx,
    b: &mut Batch,
    failed: &[(u8, Desc)],
    reason: DropReason,
    kind: IcmpKind,
) {
    let next = if kind.is_v6() {
        Next::Icmp6Error
    } else {
        Next::IcmpError
    };
    for chunk in failed.chunks(MAX_BATCH) {
        b.clear();
        for (port, d) in chunk {
            let meta = Meta {
                rx_port: *port,
                tx_port: *port,
                drop: reason,
                icmp: kind,
                ..Meta::default()
            };
            b.push(*d, meta, next);
        }
        process(ctx, b);
    }
}

/// IPv6's part of [`tick`]: NDP retries, next hops given up on (their packets become ICMPv6
/// address unreachable, RFC 4861 section 7.2.2), and worker 0's router advertisements.
fn tick6(ctx: &mut Ctx, b: &mut Batch) {
    if !ctx.snap.ip6.enabled() && ctx.state.neighbors6.is_empty() {
        return;
    }
    ctx.state.tick6.requests.clear();
    ctx.state.tick6.failed.clear();
    ctx.state.neighbors6.tick(ctx.now, &mut ctx.state.tick6);
    let reqs = std::mem::take(&mut ctx.state.tick6.requests);
    for (port, ip) in reqs.iter() {
        ndp::send_solicitation(ctx, *port, *ip);
    }
    ctx.state.tick6.requests = reqs;
    if ctx.state.worker == 0 {
        b.clear();
        ndp::ra_tick(ctx, b);
        if b.len > 0 {
            process(ctx, b);
        }
    }
    let failed = std::mem::take(&mut ctx.state.tick6.failed);
    unreachable(
        ctx,
        b,
        &failed,
        DropReason::Ip6NeighborUnresolved,
        IcmpKind::Icmp6AddressUnreachable,
    );
    ctx.state.tick6.failed = failed;
}
