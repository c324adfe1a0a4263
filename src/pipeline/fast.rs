//! The fast path: the common case of every stage from l2_input to rewrite in one pass per
//! packet, in front of the staged pipeline (VPP's fast-path node variants, DPDK's
//! run-to-completion loop).
//!
//! It makes no decision of its own: every check is the function the stage that owns it
//! calls (`l2_input::PortMacs::common`, `ip4_input::common`, `route::ttl_forwards`,
//! `Snapshot::routes`, `nat::inbound` / `nat::outbound`, `vrrp::backup_owns`,
//! `rewrite::ready`; the table is in
//! docs/ARCHITECTURE.md), so a check added there holds here too.
//!
//! A received packet qualifies when it is an option-less, valid IPv4 datagram to the port
//! MAC (or its one other MAC, or broadcast), routed out of a port to a next hop the neighbour table has cached as
//! reachable, within the port MTU, with a TTL above 1, and at most one translation on the
//! way: a floating IP (DNAT in or SNAT out) or an SNAT session that already exists.
//! Everything about it is decided first, from reads only; only then is the packet written,
//! with the stages' own changes (the NAT translation and the TTL decrement, in one IP
//! checksum update when there are both, then the Ethernet header), so its bytes and counters
//! are those the staged pipeline gives it.
//!
//! Geneve without options from a known chassis, for a known VNI, with its inner frame to the
//! network's gateway MAC, is decapsulated in the pass (geneve_decap's checks, from reads
//! only) and its inner packet then takes the same pass; if the inner packet needs more, it
//! stays decapsulated at ip4_input, where the decap stage would have put it. A packet routed
//! into a Geneve network that fits the tunnel to a chassis with a reachable underlay next hop
//! is encapsulated in the pass with geneve_encap's own functions. Other Geneve goes on to
//! the decap or encap stage in the state ip4_input (and nat_in, route) would have left it
//! in. Anything else (ARP, errors, ICMP to vgate, new SNAT sessions, SNAT return traffic,
//! unresolved neighbours, fragmentation, every drop) is left untouched at l2_input for the
//! stages. `tests/pipeline_fast.rs` runs mixed traffic through both and compares bytes and
//! counters.
//!
//! Like nat_out, SNAT goes in two passes: the first computes every session key and
//! prefetches its slot, the second looks the sessions up, so that with a million sessions
//! the cache misses of a batch overlap.

use super::ip4_input::is_geneve;
use super::nat::{self, Inbound, Outbound, TenantSpan};
use super::rewrite::{self, Cache};
use super::{Batch, Ctx, MAX_BATCH, Next, WorkerState, bits};
use super::{geneve_decap, geneve_encap, ip4_input, ip6, l2_input, policy, route, vrrp};
use crate::io::Desc;
use crate::metrics::WorkerStats;
use crate::tables::nat::inside_key;
use crate::tables::{NextHop, Snapshot, TunnelInfo};
use crate::wire::ethernet::HEADER_LEN as ETH;
use crate::wire::geneve::ENCAP_OVERHEAD_IPV4;
use crate::wire::ipv4;

/// The translation a packet gets: none, DNAT/SNAT with this floating IP index, or an
/// SNAT session of this rule.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nat {
    None,
    FipIn(u16),
    FipOut(u16),
    Snat(u16),
}

/// What the second pass needs of a packet waiting for its SNAT session.
#[derive(Clone, Copy, Default)]
struct Pending {
    rule: u16,
    /// [`inside_key`] and its home slot.
    key: u64,
    home: usize,
    tcp_flags: u8,
    total: u16,
    tx: u8,
    eth: [u8; ETH],
}

/// Take every packet of `mask` (received on one port, at l2_input) that qualifies all the
/// way to [`Next::Tx`], or on to [`Next::Decap`] / [`Next::Encap`]; leave the others where
/// they are, untouched.
pub fn run(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    // The stages learn from every ARP frame of a batch before they rewrite any packet of
    // it; the fast path, running first, would use the MAC from before. Such a batch (rare:
    // ARP is a few frames a second) takes the stages whole.
    if carries_neighbor_updates(ctx, b, mask, false) {
        return;
    }
    // A plain router (no NAT, no tunnel) gets its own loop, without their checks and the
    // registers they hold through every packet.
    if ctx.snap.has_nat()
        || ctx.snap.tunnel.is_some()
        || ctx.snap.policy.any()
        || !ctx.snap.vrrp.is_empty()
    {
        run_with::<true>(ctx, b, mask)
    } else {
        run_with::<false>(ctx, b, mask)
    }
}

/// [`run`], for a snapshot that may have floating IPs, SNAT rules, a tunnel, policies or
/// VRRP groups (`MORE`), or has none of them.
fn run_with<const MORE: bool>(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    let port = b.meta[mask.trailing_zeros() as usize & 63].rx_port;
    let snap = ctx.snap;
    let Some(pinfo) = snap.ports.get(usize::from(port)) else {
        return;
    };
    let macs = l2_input::PortMacs::of(snap, usize::from(port));
    let routes = snap.routes(pinfo.table);
    let has_nat = MORE && snap.has_nat();
    let has_policy = MORE && snap.policy.any();
    let tunnel = if MORE { snap.tunnel } else { None };
    // The tunnel address, or 0 (a martian destination, never seen here) without a tunnel:
    // one compare per packet.
    let tunnel_local = tunnel.map_or(0, |t| t.local);
    let tenants = TenantSpan::new(snap);
    let ha_masters = ctx.state.ha_masters;
    // Without VRRP groups no port is ever guarded (the plain router's loop skips the check).
    let guarded = MORE && ctx.state.ha_guarded & (1u64 << (port & 63)) != 0;
    let mut c = Cache::new();
    let (mut done, mut bytes) = (0u64, 0u64);
    let mut pending = [Pending::default(); MAX_BATCH];
    let mut waiting = 0u64;
    let (mut to_decap, mut to_encap) = (0u64, 0u64);
    // Geneve packets decapsulated here and still at ip4_input: left there for the stages
    // unless they get all the way through.
    let (mut to_ip4, mut decapped) = (0u64, 0u64);
    let mut last = geneve_decap::Last::NONE;
    // Encapsulation: the way to the last chassis, and its underlay next hop.
    let (mut way, mut cu, mut encapped) = (geneve_encap::Way::NONE, Cache::new(), 0u64);
    'packets: for i in bits(mask) {
        if b.meta[i].rx_port != port {
            continue;
        }
        let mut d = b.desc[i];
        let mut rx_len = u64::from(d.len);
        // The received packet, then (once) the packet decapsulated from it.
        let mut inner = false;
        // The packet's bytes, borrowed once from its check to its write (one bounds check).
        let (frame, ip) = loop {
            let frame = ctx.pool.bytes_mut(&d);
            let Some(f) = frame.first_chunk::<{ ETH + ipv4::HEADER_LEN }>() else {
                continue 'packets;
            };
            // l2_input (geneve_decap checked the inner frame's), then ip4_input.
            if !inner && f.first_chunk().map(|h| macs.common(h)) != Some(l2_input::Common::Ip4) {
                continue 'packets;
            }
            let Some(ip) = ip4_input::common(snap, f, d.len as usize) else {
                continue 'packets;
            };
            // ip4_input drops what a VRRP backup must not take.
            if !inner && guarded && vrrp::backup_owns(snap, ha_masters, port, &f[..6], ip.dst) {
                continue 'packets;
            }
            if ip.dst != tunnel_local {
                break (frame, ip);
            }
            let Some(t) = tunnel.as_ref() else {
                continue 'packets; // not reached: 0 is a martian destination
            };
            // To the tunnel endpoint: Geneve is decapsulated (the common case here, the rest
            // by the decap stage, as ip4_input sends it there); anything else to that
            // address, or a tunnel inside the tunnel, is the stages'.
            if inner {
                continue 'packets;
            }
            match decap(ctx, b, i, ip.total, t, &mut last) {
                Decap::NotGeneve => continue 'packets,
                Decap::Stage => {
                    bytes += rx_len;
                    to_decap |= 1 << i;
                    continue 'packets;
                }
                Decap::Inner(x) => {
                    d = x;
                    decapped += 1;
                    // Counted as received once, now.
                    bytes += rx_len;
                    rx_len = 0;
                    to_ip4 |= 1 << i;
                    inner = true;
                }
            }
        };
        let (total, proto) = (ip.total, ip.proto);
        let mut dst = ip.dst;
        if !route::ttl_forwards(ip.ttl, false) {
            continue;
        }
        // nat_in, then nat_out's decision (it needs nothing from route); what needs the
        // stages (spoofed sources, SNAT return traffic, a new SNAT session) is theirs.
        let mut nat = Nat::None;
        if has_nat {
            match nat::inbound(snap, ip.src, dst) {
                Inbound::Spoofed | Inbound::Snat(_) => continue,
                Inbound::Fip(x) => {
                    // A tenant reaching a floating IP needs its source translated too
                    // (hairpin): the stages'.
                    if tenants.holds(snap, ip.src)
                        && nat::hairpin(snap, &b.meta[i], ip.src) != Outbound::None
                    {
                        continue;
                    }
                    nat = Nat::FipIn(x);
                    dst = snap.fips[usize::from(x)].internal;
                    // route and rewrite: the floating IP's next hop as it was last resolved
                    // here, while it holds. Decided: written as below. (What it must have
                    // been resolved under is read here, not kept in a register for every
                    // packet.)
                    let stamp = FipHop::stamp(ctx.state.neighbors.epoch(), pinfo.table);
                    if let Some(h) = ctx
                        .state
                        .fip_hops
                        .get(usize::from(x))
                        .filter(|h| h.holds(stamp, ctx.now, total))
                        .copied()
                    {
                        // policy, then written.
                        let dscp = if has_policy {
                            let hops = b.meta[i].handoff_hops;
                            match admit(
                                snap,
                                ctx.state,
                                ctx.stats,
                                ctx.now,
                                hops,
                                true,
                                &frame[ETH..ETH + total],
                                dst,
                            ) {
                                Some(dscp) => dscp,
                                None => continue,
                            }
                        } else {
                            None
                        };
                        b.desc[i].len = (ETH + total) as u32;
                        bytes += rx_len;
                        let frame = &mut frame[..ETH + total];
                        nat::fip_dnat::<true>(snap, ctx.stats, &mut frame[ETH..], x, proto);
                        if let Some(dscp) = dscp {
                            policy::mark_dscp(&mut frame[ETH..], dscp);
                        }
                        frame[..ETH].copy_from_slice(&h.eth);
                        b.meta[i].tx_port = h.tx;
                        done |= 1 << i;
                        continue;
                    }
                }
                Inbound::None => match nat::outbound(snap, tenants, ip.src, dst) {
                    Outbound::None => {}
                    Outbound::Fip(x) => nat = Nat::FipOut(x),
                    Outbound::Snat(ri) => {
                        let Some(Some(table)) = ctx.state.snat.get(usize::from(ri)) else {
                            continue;
                        };
                        let l3 = &frame[ETH..ETH + total];
                        let Ok((p, port)) = nat::session_key_fast(l3) else {
                            continue;
                        };
                        let key = inside_key(p, ip.src, port);
                        let home = table.hash(key);
                        table.prefetch(home);
                        // The session's part of the second pass's record, kept only if the
                        // packet gets there.
                        let w = &mut pending[i];
                        (w.key, w.home) = (key, home);
                        w.tcp_flags = nat::tcp_flags(l3, ipv4::HEADER_LEN, p);
                        nat = Nat::Snat(ri);
                    }
                },
            }
        }
        // route: the port's table, then main; out of a port.
        let hop = routes.lookup(dst);
        let Some(&NextHop::Forward { port: tx, via }) =
            hop.and_then(|h| snap.nexthops.get(h as usize))
        else {
            // Routed into a Geneve network (such a destination is a tenant's: nat_out has
            // nothing to do with it). Encapsulated here when the whole packet fits the
            // tunnel to a chassis whose underlay next hop is cached as reachable; otherwise
            // on to the encap stage with what nat_in and route leave.
            if !matches!(nat, Nat::None | Nat::FipIn(_))
                || hop.and_then(|h| snap.tunnel_network(h)).is_none()
            {
                continue;
            }
            let mut whole = None;
            // A packet with a policy is the policy stage's, in front of encap.
            let policed = has_policy && {
                let l3 = &ctx.pool.bytes(&b.desc[i])[ETH..ETH + total];
                !policy::decide(
                    snap,
                    &ctx.state.policy,
                    ctx.stats,
                    (
                        ctx.state.worker,
                        ctx.state.workers,
                        b.meta[i].handoff_hops,
                        true,
                        nat != Nat::None,
                    ),
                    l3,
                    dst,
                    ctx.now,
                    &mut policy::Parsed::default(),
                )
                .is_nothing()
            };
            if !policed
                && let Some(t) = tunnel.as_ref()
                && let Some(target) = geneve_encap::fast_target(ctx, b, i, dst, total, t, &mut way)
                && rewrite::ready(
                    &ctx.state.neighbors,
                    snap,
                    ctx.now,
                    &mut cu,
                    way.port,
                    way.nexthop,
                    total + ENCAP_OVERHEAD_IPV4,
                )
            {
                whole = Some((t, target));
            }
            advance(b, i, total, dst, ip.ttl);
            bytes += rx_len;
            if let Nat::FipIn(x) = nat {
                let l3 = &mut ctx.pool.bytes_mut(&b.desc[i])[ETH..];
                nat::fip_dnat::<false>(snap, ctx.stats, l3, x, proto);
                b.meta[i].nat_done = true;
            }
            match whole {
                Some((t, target)) if geneve_encap::encap_whole(ctx, b, i, t, &way, target) => {
                    // rewrite's part for the outer packet (vgate's own: no TTL change).
                    ctx.pool.bytes_mut(&b.desc[i])[..ETH].copy_from_slice(&cu.eth);
                    encapped += 1;
                    done |= 1 << i;
                }
                _ => to_encap |= 1 << i,
            }
            continue;
        };
        let nexthop = route::next_hop(dst, via);
        if !rewrite::ready(
            &ctx.state.neighbors,
            snap,
            ctx.now,
            &mut c,
            tx,
            nexthop,
            total,
        ) {
            continue;
        }
        if let Nat::FipIn(x) = nat {
            remember(ctx.state, snap, port, x, &c, tx, nexthop, ctx.now);
        }
        // policy: applied here when it passes and takes no tokens; the rest (and SNAT with
        // a policy, whose session is only looked up in the second pass) is the stage's.
        let mut dscp = None;
        if has_policy {
            let hops = b.meta[i].handoff_hops;
            let l3 = &frame[ETH..ETH + total];
            if matches!(nat, Nat::Snat(_)) {
                let d = policy::decide(
                    snap,
                    &ctx.state.policy,
                    ctx.stats,
                    (ctx.state.worker, ctx.state.workers, hops, true, false),
                    l3,
                    dst,
                    ctx.now,
                    &mut policy::Parsed::default(),
                );
                if !d.is_nothing() {
                    continue;
                }
            } else {
                match admit(
                    snap,
                    ctx.state,
                    ctx.stats,
                    ctx.now,
                    hops,
                    matches!(nat, Nat::FipIn(_)),
                    l3,
                    dst,
                ) {
                    Some(d) => dscp = d,
                    None => continue,
                }
            }
        }

        if let Nat::Snat(rule) = nat {
            // Decided but for the session: the second pass.
            let p = &mut pending[i];
            (p.rule, p.total, p.tx, p.eth) = (rule, total as u16, tx, c.eth);
            waiting |= 1 << i;
            continue;
        }

        // Decided: write it, as the stages would.
        b.desc[i].len = (ETH + total) as u32;
        bytes += rx_len;
        let frame = &mut frame[..ETH + total];
        // rewrite's TTL decrement, in the translation's checksum update when there is one.
        match nat {
            Nat::None | Nat::Snat(_) => {
                ipv4::Packet::new_unchecked(&mut frame[ETH..]).decrement_ttl();
            }
            Nat::FipIn(x) => {
                nat::fip_dnat::<true>(snap, ctx.stats, &mut frame[ETH..], x, proto);
            }
            Nat::FipOut(x) => nat::fip_snat::<true>(snap, ctx.stats, &mut frame[ETH..], x, proto),
        }
        if let Some(dscp) = dscp {
            policy::mark_dscp(&mut frame[ETH..], dscp);
        }
        frame[..ETH].copy_from_slice(&c.eth);
        b.meta[i].tx_port = tx;
        done |= 1 << i;
    }
    // SNAT: packets whose session exists leave translated; a new session is the stages'
    // (nothing was changed, the packet is still as received).
    for i in bits(waiting) {
        let p = &pending[i];
        let Some(Some(table)) = ctx.state.snat.get_mut(usize::from(p.rule)) else {
            continue;
        };
        let Some(ext_port) = table.outbound_existing(p.key, p.home, p.tcp_flags, ctx.now) else {
            continue;
        };
        // The rule's own (a table is kept across reloads only for the same parameters).
        let ext = table.params().external;
        if to_ip4 & (1 << i) == 0 {
            bytes += u64::from(b.desc[i].len);
        }
        b.desc[i].len = ETH as u32 + u32::from(p.total);
        let frame = ctx.pool.bytes_mut(&b.desc[i]);
        nat::snat_out::<true>(&mut frame[ETH..], p.key, ext, ext_port);
        frame[..ETH].copy_from_slice(&p.eth);
        b.meta[i].tx_port = p.tx;
        done |= 1 << i;
    }
    b.set_next_mask(Next::L2Input, done, Next::Tx);
    b.set_next_mask(Next::L2Input, to_decap, Next::Decap);
    b.set_next_mask(Next::L2Input, to_encap, Next::Encap);
    let to_ip4 = to_ip4 & !(done | to_encap);
    b.set_next_mask(Next::L2Input, to_ip4, Next::Ip4Input);
    if decapped != 0 {
        ctx.stats.geneve_decap.add(decapped);
    }
    if encapped != 0 {
        ctx.stats.geneve_encap.add(encapped);
    }
    let taken = done | to_decap | to_encap | to_ip4;
    l2_input::count_rx(
        ctx.stats,
        usize::from(port),
        u64::from(taken.count_ones()),
        bytes,
    );
    if done != 0 {
        ctx.stats.fast_path.add(u64::from(done.count_ones()));
    }
}

/// The policy stage's decision for packet `l3` to `dst` (after DNAT), applied when the
/// fast path may take it ([`policy::Decision::fast`]): Some(the DSCP to mark, if any), or
/// None when the packet is the stages'.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn admit(
    snap: &Snapshot,
    state: &mut WorkerState,
    stats: &WorkerStats,
    now: u64,
    hops: u8,
    translated: bool,
    l3: &[u8],
    dst: u32,
) -> Option<Option<u8>> {
    let mut parsed = policy::Parsed::default();
    let d = policy::decide(
        snap,
        &state.policy,
        stats,
        (state.worker, state.workers, hops, true, translated),
        l3,
        dst,
        now,
        &mut parsed,
    );
    if d.is_nothing() {
        return Some(None);
    }
    if !d.fast(&parsed) {
        return None;
    }
    policy::commit(snap, &mut state.policy, stats, &d, &parsed, now);
    Some(d.dscp)
}

/// A floating IP's inbound next hop as the fast path last resolved it: the route from the
/// receiving port's table to a reachable neighbour, with the Ethernet header and MTU it
/// gives. DNAT to many VMs goes to a different next hop with nearly every packet, which
/// the one-hop [`Cache`] misses; this way each floating IP keeps its own. It holds while
/// the snapshot, the receiving port's table and the neighbour table's
/// [epoch](crate::tables::neighbor::NeighborTable::epoch) are those it was resolved under,
/// up to the end of the neighbour's reachable time; the worker clears them all when the
/// snapshot changes ([`WorkerState::sync`](super::WorkerState::sync)).
#[derive(Clone, Copy)]
pub struct FipHop {
    /// [`FipHop::stamp`] of the resolution.
    stamp: u64,
    /// The neighbour's reachable deadline.
    until: u64,
    eth: [u8; ETH],
    mtu: u16,
    tx: u8,
}

impl FipHop {
    /// Nothing resolved.
    pub const NONE: FipHop = FipHop {
        stamp: u64::MAX,
        until: 0,
        eth: [0; ETH],
        mtu: 0,
        tx: 0,
    };

    /// The neighbour table's `epoch` and the receiving port's `table`, as one word.
    #[inline(always)]
    fn stamp(epoch: u64, table: u16) -> u64 {
        (epoch << 16) | u64::from(table)
    }

    /// True when this next hop still holds for a packet of `total` bytes.
    #[inline(always)]
    fn holds(&self, stamp: u64, now: u64, total: usize) -> bool {
        self.stamp == stamp && now <= self.until && rewrite::fits(total, self.mtu)
    }
}

/// Remember the next hop just resolved (`c`'s, `nexthop` out of `tx`) for floating IP `x`
/// received on port `rx`.
/// Out of line: it runs once per floating IP and neighbour change, not per packet.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn remember(
    state: &mut WorkerState,
    snap: &Snapshot,
    rx: u8,
    x: u16,
    c: &Cache,
    tx: u8,
    nexthop: u32,
    now: u64,
) {
    let Some(until) = state.neighbors.hot_deadline(tx, nexthop, now) else {
        return;
    };
    let Some(p) = snap.ports.get(usize::from(rx)) else {
        return;
    };
    let stamp = FipHop::stamp(state.neighbors.epoch(), p.table);
    if let Some(h) = state.fip_hops.get_mut(usize::from(x)) {
        *h = FipHop {
            stamp,
            until,
            eth: c.eth,
            mtu: c.hop_mtu,
            tx,
        };
    }
}

/// What [`decap`] did with a packet to the tunnel address.
enum Decap {
    /// Not Geneve: left untouched.
    NotGeneve,
    /// On to the decap stage, as ip4_input leaves it.
    Stage,
    /// Decapsulated as geneve_decap does it: the inner frame, at ip4_input.
    Inner(Desc),
}

/// ip4_input and geneve_decap for packet `i`, an option-less IPv4 datagram of `total`
/// bytes to the tunnel address `t`: the common case
/// of Geneve is decapsulated here; the rest goes to the stage (Geneve) or stays as it is.
#[inline(never)]
fn decap(
    ctx: &mut Ctx,
    b: &mut Batch,
    i: usize,
    total: usize,
    t: &TunnelInfo,
    last: &mut geneve_decap::Last,
) -> Decap {
    let mut d = b.desc[i];
    let outer = ctx.pool.bytes(&d);
    if !is_geneve(&outer[ETH..ETH + total], t.udp_port) {
        return Decap::NotGeneve;
    }
    let Some(x) = geneve_decap::inner_ip4(ctx.snap, outer, total, last) else {
        let ttl = outer[ETH + 8];
        advance(b, i, total, t.local, ttl);
        return Decap::Stage;
    };
    d.pull_front(x.at);
    d.len = x.len as u32;
    b.desc[i] = d;
    b.meta[i].vni_net = u8::try_from(x.network + 1).unwrap_or(0);
    if t.tcp_mss_clamp && ctx.pool.bytes(&d)[ETH + 9] == ipv4::protocol::TCP {
        geneve_decap::clamp_inner_mss(ctx, &d, b.meta[i].rx_port);
    }
    Decap::Inner(d)
}

/// What ip4_input leaves of packet `i`: trimmed to its datagram, destination and TTL in the
/// batch for route.
#[inline(always)]
fn advance(b: &mut Batch, i: usize, total: usize, dst: u32, ttl: u8) {
    b.desc[i].len = (ETH + total) as u32;
    b.dst[i] = dst;
    b.meta[i].ttl = ttl;
}

/// The IPv6 common case: forwarded to a next hop the neighbour table has cached as
/// reachable, within the port MTU, with a hop limit above 1. The decisions are
/// `l2_input::PortMacs::common`, `ip6::classify` and `ip6::decide`, and the neighbour
/// table's reachable cache, which `ndp::resolve` answers a hit from; the writes are
/// ip6_forward's (hop limit, Ethernet header). Anything else stays at l2_input, untouched.
pub fn run6(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    if carries_neighbor_updates(ctx, b, mask, true) {
        return;
    }
    let port = b.meta[mask.trailing_zeros() as usize & 63].rx_port;
    let snap = ctx.snap;
    let macs = l2_input::PortMacs::of(snap, usize::from(port));
    let (mut done, mut bytes) = (0u64, 0u64);
    for i in bits(mask) {
        if b.meta[i].rx_port != port {
            continue;
        }
        let d = b.desc[i];
        let frame = ctx.pool.bytes(&d);
        let Some(h) = frame.first_chunk::<ETH>() else {
            continue;
        };
        if macs.common(h) != l2_input::Common::Ip6 {
            continue;
        }
        let link = crate::tables::ip6::Link::Port(port);
        let Ok((ip6::Input::Forward, total)) = ip6::classify(snap, link, &frame[ETH..]) else {
            continue;
        };
        let (dst, hop_limit, _) = ip6::header_facts(frame);
        // Into a Geneve network: the stages.
        let Ok(ip6::Out::Port { port: out, nexthop }) =
            ip6::decide(snap, port, false, dst, hop_limit, total)
        else {
            continue;
        };
        let Some(mac) = ctx.state.neighbors6.lookup_hot(out, nexthop, ctx.now) else {
            continue;
        };
        bytes += u64::from(d.len);
        b.desc[i].len = (ETH + total) as u32;
        ctx.pool.bytes_mut(&d)[ETH + 7] = hop_limit - 1;
        ip6::write_ethernet(ctx, out, d, mac);
        b.meta[i].tx_port = out;
        done |= 1 << i;
    }
    if done != 0 {
        let n = u64::from(done.count_ones());
        l2_input::count_rx(ctx.stats, usize::from(port), n, bytes);
        ctx.stats.fast_path.add(n);
        b.set_next_mask(Next::L2Input, done, Next::Tx);
    }
}

/// True when a frame of `mask` may change the neighbour table in the stages: ARP, or (with
/// `ip6`) Neighbor Discovery and IPv6 whose extension headers could hide it.
#[inline]
fn carries_neighbor_updates(ctx: &Ctx, b: &Batch, mask: u64, ip6: bool) -> bool {
    use crate::wire::ethernet::ethertype;
    use crate::wire::ipv6::next_header;
    bits(mask).any(|i| {
        let f = ctx.pool.bytes(&b.desc[i]);
        let Some(h) = f.first_chunk::<{ ETH + 41 }>() else {
            return !ip6 && f.get(12..14) == Some(&ethertype::ARP.to_be_bytes()[..]);
        };
        match u16::from_be_bytes([h[12], h[13]]) {
            ethertype::ARP => !ip6,
            ethertype::IPV6 if ip6 => match h[ETH + 6] {
                next_header::ICMPV6 => (crate::wire::icmpv6::msg::ROUTER_SOLICIT
                    ..=crate::wire::icmpv6::msg::REDIRECT)
                    .contains(&f.get(ETH + 40).copied().unwrap_or(0)),
                next_header::HOP_BY_HOP
                | next_header::ROUTING
                | next_header::FRAGMENT
                | next_header::DEST_OPTS => true,
                _ => false,
            },
            _ => false,
        }
    })
}
