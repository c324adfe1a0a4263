//! Neighbor Discovery (RFC 4861) for ip6_input and ip6_forward: answering solicitations
//! for vgate's addresses, `[[proxy_ndp]]` prefixes and endpoints; resolving next hops with
//! the hold queues ARP has; learning from advertisements (never for addresses vgate
//! answers for); router advertisements on tenant networks, solicited and periodic (section
//! 6.2), so that hosts configure themselves by SLAAC (RFC 4862) and learn the tenant MTU.

use super::adjacency::Resolved;
use super::{Batch, Ctx, Next};
use crate::io::Desc;
use crate::metrics::{ArpKind, DropReason};
use crate::tables::ip6::{Link, NdpKind, mask};
use crate::tables::neighbor::Resolve;
use crate::wire::ethernet::{EthernetAddress, HEADER_LEN as ETH, ethertype};
use crate::wire::ipv6::{self, class, next_header};
use crate::wire::ndp::{
    self, NeighborAdvert, NeighborAdvertRepr, NeighborSolicit, NeighborSolicitRepr, PrefixInfo,
    RdnssRepr, RouterAdvertRepr,
};
use crate::wire::{Error, icmpv6};
use std::net::Ipv6Addr;

/// RDNSS addresses an advertisement carries at most (`network.ra.rdnss`).
pub const MAX_RDNSS: usize = 8;

/// ff02::1 (RFC 4291 section 2.7.1).
const ALL_NODES: u128 = class::ALL_NODES.to_bits();

/// Resolve `nexthop` on `port` for packet `d` (hop limit and MTU already handled): its
/// MAC when known (re-confirming it when stale), or hold the packet while a solicitation
/// goes out, within the same bounds as ARP's (`[limits]`).
pub(super) fn resolve(ctx: &mut Ctx, port: u8, nexthop: u128, d: Desc) -> Resolved {
    match ctx.state.neighbors6.resolve(port, nexthop, d, ctx.now) {
        Resolve::Hit(mac) => Resolved::Mac(mac),
        Resolve::HitProbe(mac) => {
            send_solicitation(ctx, port, nexthop);
            Resolved::Mac(mac)
        }
        Resolve::Held { request } => {
            if request {
                send_solicitation(ctx, port, nexthop);
            }
            ctx.stats.held.set(ctx.state.held_frames());
            Resolved::Held
        }
        Resolve::QueueFull => Resolved::Refused(DropReason::Ip6NeighborQueueFull),
        Resolve::TableFull => Resolved::Refused(DropReason::Ip6NeighborTableFull),
    }
}

/// A new frame for an NDP message of `msg_len` bytes, or None (counted) when the pool is
/// empty.
fn alloc(ctx: &mut Ctx, msg_len: usize) -> Option<Desc> {
    ctx.stats.generated.add(1);
    let Some(mut d) = ctx.pool.alloc() else {
        ctx.stats.count_drop(DropReason::RewriteNoFrames, 1);
        return None;
    };
    d.len = (ETH + ipv6::HEADER_LEN + msg_len) as u32;
    Some(d)
}

/// Ethernet and IPv6 headers of an NDP message (hop limit 255, RFC 4861 section 7.1).
fn headers(
    buf: &mut [u8],
    (src_mac, dst_mac): (EthernetAddress, EthernetAddress),
    (src, dst): (u128, u128),
    msg_len: usize,
) {
    buf[..6].copy_from_slice(&dst_mac.0);
    buf[6..12].copy_from_slice(&src_mac.0);
    buf[12..14].copy_from_slice(&ethertype::IPV6.to_be_bytes());
    ipv6::Repr {
        src: Ipv6Addr::from_bits(src),
        dst: Ipv6Addr::from_bits(dst),
        next_header: next_header::ICMPV6,
        payload_len: msg_len,
        hop_limit: ndp::HOP_LIMIT,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut ipv6::Packet::new_unchecked(&mut buf[ETH..]));
}

/// Send a neighbour solicitation for `target` out of `port`, to its solicited-node group
/// (RFC 4861 section 7.2.2), from the port's address toward it, with the port's MAC.
pub fn send_solicitation(ctx: &mut Ctx, port: u8, target: u128) {
    let Some(p) = ctx.snap.ip6.ports.get(usize::from(port)) else {
        return;
    };
    let src = p.source_for(target).unwrap_or(p.link_local);
    let mac = p.mac;
    let group = class::solicited_node(Ipv6Addr::from_bits(target));
    let repr = NeighborSolicitRepr {
        target: Ipv6Addr::from_bits(target),
        source_ll: Some(mac),
    };
    let len = repr.buffer_len();
    let Some(d) = alloc(ctx, len) else { return };
    let buf = ctx.pool.bytes_mut(&d);
    headers(
        buf,
        (mac, class::multicast_mac(group)),
        (src, group.to_bits()),
        len,
    );
    repr.emit(
        Ipv6Addr::from_bits(src),
        group,
        &mut buf[ETH + ipv6::HEADER_LEN..],
    );
    ctx.tx.push(port, d);
    ctx.stats.ndp_solicitations_sent.add(1);
}

/// A Neighbor Discovery message for vgate (packet `i`, the message at `offset` from the
/// IPv6 header): checked (RFC 4861 sections 6.1 and 7.1), then answered or learned from.
pub(super) fn receive(ctx: &mut Ctx, b: &mut Batch, i: usize, offset: usize) {
    let d = b.desc[i];
    let link = Link::of(b.meta[i].rx_port, b.meta[i].vni_net);
    let (src, eth_src, msg_type, checked) = {
        let frame = ctx.pool.bytes(&d);
        let ip = ipv6::Packet::new_unchecked(&frame[ETH..]);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let msg = &frame[ETH + offset..];
        let mut eth_src = [0u8; 6];
        eth_src.copy_from_slice(&frame[6..12]);
        (
            src.to_bits(),
            EthernetAddress(eth_src),
            msg[0],
            ndp::validate(src, dst, ip.hop_limit(), msg),
        )
    };
    match checked {
        Ok(()) => {}
        Err(Error::Unsupported) => return b.drop(i, DropReason::NdpRedirect),
        Err(_) => return b.drop(i, DropReason::NdpMalformed),
    }
    match msg_type {
        icmpv6::msg::NEIGHBOR_SOLICIT => solicitation(ctx, b, i, link, offset, src, eth_src),
        icmpv6::msg::NEIGHBOR_ADVERT => advertisement(ctx, b, i, link, offset),
        icmpv6::msg::ROUTER_SOLICIT => router_solicitation(ctx, b, i, link, src, eth_src, offset),
        _ => b.drop(i, DropReason::NdpRouterAdvert),
    }
}

/// A neighbour solicitation: learn the sender (section 7.2.3; on a port: a tenant network
/// behind Geneve has its neighbours configured), then answer for the target in the same
/// frame when vgate answers for it (section 7.2.4). Duplicate address detection (an
/// unspecified source) is answered, to all-nodes, only for vgate's own addresses: a
/// proxied address or an endpoint is the host's own to claim.
fn solicitation(
    ctx: &mut Ctx,
    b: &mut Batch,
    i: usize,
    link: Link,
    offset: usize,
    src: u128,
    eth_src: EthernetAddress,
) {
    let d = b.desc[i];
    let repr = {
        let msg = &ctx.pool.bytes(&d)[ETH + offset..];
        NeighborSolicitRepr::parse(&NeighborSolicit::new_unchecked(msg))
    };
    let Ok(repr) = repr else {
        return b.drop(i, DropReason::NdpMalformed);
    };
    let target = repr.target.to_bits();
    if let Some(ll) = repr.source_ll
        && src != 0
    {
        if claims_ours(ctx.snap, link, src, ll) {
            return b.drop(i, DropReason::NdpSpoofed);
        }
        if let Link::Port(port) = link {
            learn(ctx, port, src, ll, true);
        }
    }
    let Some(answer) = ctx.snap.ip6.answer(link, target, src) else {
        return b.drop(i, DropReason::NdpNotOurs);
    };
    if src == 0 && answer.kind != NdpKind::Router {
        return b.drop(i, DropReason::NdpNotOurs);
    }
    let ip6 = &ctx.snap.ip6;
    // The link's own MAC and link-local address: the port's, or a tenant network's
    // gateway's.
    let (link_mac, link_local) = match link {
        Link::Port(port) => {
            let p = &ip6.ports[usize::from(port)];
            (p.mac, p.link_local)
        }
        Link::Network(net) => match ip6.network6(net) {
            Some(n) => (n.gateway_mac, crate::tables::ip6::link_local(n.gateway_mac)),
            None => return b.drop(i, DropReason::NdpNotOurs),
        },
    };
    let (router, override_flag) = answer.flags();
    let na = NeighborAdvertRepr {
        router_flag: router,
        solicited_flag: src != 0,
        override_flag,
        target: repr.target,
        target_ll: Some(answer.mac),
    };
    // From the target when it is vgate's, else from the link's link-local address (an
    // address of the interface, section 7.2.4, as Linux answers for proxied targets).
    let from = if answer.kind == NdpKind::Router {
        target
    } else {
        link_local
    };
    let (to, to_mac) = if src == 0 {
        (ALL_NODES, class::multicast_mac(class::ALL_NODES))
    } else {
        (src, repr.source_ll.unwrap_or(eth_src))
    };
    let src_mac = if answer.kind == NdpKind::Endpoint {
        link_mac
    } else {
        answer.mac
    };
    let len = na.buffer_len();
    let mut out = d;
    out.len = (ETH + ipv6::HEADER_LEN + len) as u32;
    let buf = ctx.pool.bytes_mut(&out);
    headers(buf, (src_mac, to_mac), (from, to), len);
    na.emit(
        Ipv6Addr::from_bits(from),
        Ipv6Addr::from_bits(to),
        &mut buf[ETH + ipv6::HEADER_LEN..],
    );
    let kind = match answer.kind {
        NdpKind::Router => ArpKind::Router,
        NdpKind::Proxy => ArpKind::Proxy,
        NdpKind::Endpoint => ArpKind::Endpoint,
    };
    ctx.stats.ndp_advertisements[kind as usize].add(1);
    b.desc[i] = out;
    super::ip6::reply_on_link(ctx, b, i);
}

/// A neighbour advertisement: update the entry of its target (section 7.2.5; one vgate
/// has no entry for is not created), unless vgate answers for the target itself. A tenant
/// network behind Geneve has its neighbours configured: nothing is learned there.
fn advertisement(ctx: &mut Ctx, b: &mut Batch, i: usize, link: Link, offset: usize) {
    let d = b.desc[i];
    let repr = {
        let msg = &ctx.pool.bytes(&d)[ETH + offset..];
        NeighborAdvertRepr::parse(&NeighborAdvert::new_unchecked(msg))
    };
    let Ok(repr) = repr else {
        return b.drop(i, DropReason::NdpMalformed);
    };
    let target = repr.target.to_bits();
    let Some(mac) = repr.target_ll else {
        return b.drop(i, DropReason::NdpIgnored);
    };
    if claims_ours(ctx.snap, link, target, mac) {
        return b.drop(i, DropReason::NdpSpoofed);
    }
    match link {
        Link::Port(port) if learn(ctx, port, target, mac, false) => {
            b.drop(i, DropReason::NdpLearned)
        }
        _ => b.drop(i, DropReason::NdpIgnored),
    }
}

/// True when a message on `link` says `addr` is at `mac` and vgate answers for `addr`
/// there otherwise: its own addresses and proxied prefixes are never learned, an
/// endpoint's address only at the endpoint's own MAC (the VM itself speaking).
fn claims_ours(
    snap: &crate::tables::Snapshot,
    link: Link,
    addr: u128,
    mac: EthernetAddress,
) -> bool {
    if snap.ip6.is_own(link, addr) {
        return true;
    }
    match snap.ip6.answer(link, addr, 0) {
        Some(a) if a.kind == NdpKind::Endpoint => a.mac != mac,
        Some(_) => true,
        None => false,
    }
}

/// Record that `ip` on `port` is at `mac` (creating the entry only with `create`) and
/// send what waited for it; false when nothing was recorded.
fn learn(ctx: &mut Ctx, port: u8, ip: u128, mac: EthernetAddress, create: bool) -> bool {
    let before = ctx.state.neighbors6.get(port, ip);
    ctx.state.released.clear();
    if !ctx
        .state
        .neighbors6
        .learn(port, ip, mac, ctx.now, create, &mut ctx.state.released)
    {
        return false;
    }
    if before != Some(mac) {
        ctx.state.learned6.push((port, ip, mac));
    }
    send_released(ctx, port, mac);
    true
}

/// Send the packets that waited for the neighbour just learned on `port` at `mac`
/// (`ctx.state.released`): ip6_forward already handled their hop limit and MTU.
pub fn send_released(ctx: &mut Ctx, port: u8, mac: EthernetAddress) {
    if ctx.state.released.is_empty() {
        return;
    }
    let released = std::mem::take(&mut ctx.state.released);
    for d in &released {
        super::ip6::write_ethernet(ctx, port, *d, mac);
        ctx.tx.push(port, *d);
    }
    ctx.state.released = released;
    ctx.stats.held.set(ctx.state.held_frames());
}

/// A neighbour another worker learned: record it here too and send what waited for it.
pub fn apply_remote(ctx: &mut Ctx, port: u8, ip: u128, mac: EthernetAddress) {
    ctx.state.released.clear();
    ctx.state
        .neighbors6
        .learn(port, ip, mac, ctx.now, true, &mut ctx.state.released);
    send_released(ctx, port, mac);
}

/// A router solicitation (section 6.2.6): answered, in its own frame, with the
/// advertisement of the network on its link whose prefix holds the sender (or the first
/// with RAs), to the sender when it has an address, else to all-nodes. The ICMP error rate
/// limit bounds how many a flood of solicitations gets; one not answered is counted.
fn router_solicitation(
    ctx: &mut Ctx,
    b: &mut Batch,
    i: usize,
    link: Link,
    src: u128,
    eth_src: EthernetAddress,
    offset: usize,
) {
    let ip6 = &ctx.snap.ip6;
    let net = ip6.networks.iter().position(|n| {
        let on_link = match link {
            Link::Port(port) => n.port == Some(port),
            Link::Network(net) => n.network == net,
        };
        on_link && n.ra.is_some() && (src == 0 || is_link_local_or_in(src, n.subnet, n.len))
    });
    let Some(net) = net else {
        return b.drop(i, DropReason::NdpRouterSolicitation);
    };
    if !ctx.state.icmp_limiter.allow(ctx.now) {
        ctx.stats.icmp_rate_limited.add(1);
        return b.drop(i, DropReason::NdpRouterSolicitation);
    }
    let d = b.desc[i];
    let source_ll = {
        let msg = &ctx.pool.bytes(&d)[ETH + offset..];
        ndp::RouterSolicit::new_unchecked(msg)
            .options_iter()
            .filter_map(|o| o.ok())
            .find(|o| o.kind() == ndp::option_type::SOURCE_LL_ADDR)
            .and_then(|o| o.link_layer_addr())
    };
    let (to, to_mac) = if src == 0 {
        (ALL_NODES, class::multicast_mac(class::ALL_NODES))
    } else {
        (src, source_ll.unwrap_or(eth_src))
    };
    let mut out = d;
    if !build_ra(ctx, net, to, to_mac, &mut out) {
        return b.drop(i, DropReason::NdpRouterSolicitation);
    }
    b.desc[i] = out;
    ctx.stats.ra_sent.add(1);
    super::ip6::reply_on_link(ctx, b, i);
}

fn is_link_local_or_in(a: u128, subnet: u128, len: u8) -> bool {
    crate::tables::ip6::is_link_local(a) || (a & mask(len)) == subnet
}

/// Write network `net`'s (an index into the snapshot's IPv6 networks) router advertisement
/// to `to` at `to_mac` into frame `d` (section 6.2.3): from the gateway's link-local
/// address and MAC; the M and O flags; the prefix on-link and autonomous (SLAAC); the
/// tenant MTU; RDNSS (RFC 8106) when configured. False when the network sends none.
fn build_ra(ctx: &mut Ctx, net: usize, to: u128, to_mac: EthernetAddress, d: &mut Desc) -> bool {
    let Some(n) = ctx.snap.ip6.networks.get(net) else {
        return false;
    };
    let Some(ra) = &n.ra else {
        return false;
    };
    let from = if crate::tables::ip6::is_link_local(n.gateway) {
        n.gateway
    } else {
        crate::tables::ip6::link_local(n.gateway_mac)
    };
    let prefixes = [PrefixInfo {
        prefix_len: n.len,
        on_link: true,
        autonomous: true,
        // RFC 4861 section 6.2.1's defaults: 30 days valid, 7 days preferred.
        valid_lifetime: 2_592_000,
        preferred_lifetime: 604_800,
        prefix: Ipv6Addr::from_bits(n.subnet),
    }];
    let mut servers = [Ipv6Addr::UNSPECIFIED; MAX_RDNSS];
    let nservers = ra.rdnss.len().min(servers.len());
    for (s, a) in servers.iter_mut().zip(&ra.rdnss) {
        *s = Ipv6Addr::from_bits(*a);
    }
    let repr = RouterAdvertRepr {
        cur_hop_limit: super::ip6::DEFAULT_HOP_LIMIT,
        managed: ra.managed,
        other: ra.other,
        router_lifetime: ra.lifetime_s.min(u32::from(u16::MAX)) as u16,
        reachable_time: 0,
        retrans_timer: 0,
        source_ll: Some(n.gateway_mac),
        mtu: Some(u32::from(ra.mtu)),
        prefixes: &prefixes,
        // RFC 8106 section 5.1: a lifetime of at least MaxRtrAdvInterval.
        rdnss: (nservers > 0).then_some(RdnssRepr {
            lifetime: ra.interval_s.saturating_mul(3),
            servers: &servers[..nservers],
        }),
    };
    let gateway_mac = n.gateway_mac;
    let len = repr.buffer_len();
    d.len = (ETH + ipv6::HEADER_LEN + len) as u32;
    let buf = ctx.pool.bytes_mut(d);
    headers(buf, (gateway_mac, to_mac), (from, to), len);
    repr.emit(
        Ipv6Addr::from_bits(from),
        Ipv6Addr::from_bits(to),
        &mut buf[ETH + ipv6::HEADER_LEN..],
    );
    true
}

/// Send network `net`'s unsolicited router advertisement to all-nodes: out of its port
/// (a flat network), or through the tunnel to every chassis with an endpoint of it, as
/// packets of vgate's for rewrite pushed into `b` (a Geneve network).
fn send_ra(ctx: &mut Ctx, b: &mut Batch, net: usize) {
    let all_nodes_mac = class::multicast_mac(class::ALL_NODES);
    let Some(n) = ctx.snap.ip6.networks.get(net) else {
        return;
    };
    if let Some(port) = n.port {
        let Some(mut d) = alloc(ctx, 0) else { return };
        if build_ra(ctx, net, ALL_NODES, all_nodes_mac, &mut d) {
            ctx.tx.push(port, d);
            ctx.stats.ra_sent.add(1);
        } else {
            ctx.pool.free(d);
        }
        return;
    }
    let (network, vni, snap) = (n.network, n.vni, ctx.snap);
    let (Some(tunnel), Some(vni)) = (snap.tunnel, vni) else {
        return;
    };
    let mut chassis: Vec<u32> = snap
        .ip6
        .chassis_by_mac
        .iter()
        .filter(|((ni, _), _)| *ni == network)
        .map(|(_, c)| *c)
        .collect();
    chassis.sort_unstable();
    chassis.dedup();
    for c in chassis {
        let Some((port, nexthop, _)) = super::geneve_encap::underlay(ctx, c) else {
            continue;
        };
        let Some(mut d) = alloc(ctx, 0) else { return };
        if !build_ra(ctx, net, ALL_NODES, all_nodes_mac, &mut d)
            || !super::geneve_encap::encapsulate(ctx, &mut d, &tunnel, vni, c)
        {
            ctx.pool.free(d);
            ctx.stats.count_drop(DropReason::GeneveNoUnderlayRoute, 1);
            continue;
        }
        let meta = super::Meta {
            rx_port: port,
            tx_port: port,
            nexthop,
            local_origin: true,
            ..super::Meta::default()
        };
        if b.len == super::MAX_BATCH {
            super::process(ctx, b);
        }
        b.push(d, meta, Next::Rewrite);
        ctx.stats.ra_sent.add(1);
        ctx.stats.geneve_encap.add(1);
    }
}

/// RFC 4861 section 6.2.4: the first advertisements of an interface come at most 16 s
/// apart, three of them.
const MAX_INITIAL_RTR_ADVERT_INTERVAL_NS: u64 = 16_000_000_000;
const MAX_INITIAL_RTR_ADVERTISEMENTS: u8 = 3;

/// Unsolicited router advertisements (section 6.2.4), run on worker 0's timer: at a random
/// time between MinRtrAdvInterval (a third of `interval_s`, section 6.2.1's default) and
/// `interval_s`, the first three within 16 s of each other. A new snapshot starts the
/// schedule over, so a new or changed network is announced at once. Those into tunnels
/// are pushed into `b`, which the caller processes.
pub fn ra_tick(ctx: &mut Ctx, b: &mut Batch) {
    let st = &mut ctx.state.ra;
    let nets = ctx.snap.ip6.networks.len();
    if st.generation != ctx.snap.generation || st.next.len() != nets {
        st.generation = ctx.snap.generation;
        st.next.clear();
        st.next.resize(nets, (ctx.now, 0));
    }
    for net in 0..nets {
        let (due, sent) = ctx.state.ra.next[net];
        let Some(ra) = &ctx.snap.ip6.networks[net].ra else {
            continue;
        };
        if ctx.now < due {
            continue;
        }
        let max = u64::from(ra.interval_s) * 1_000_000_000;
        let min = max / 3;
        let rnd = ctx.state.ra.random();
        let mut wait = min + rnd % (max - min).max(1);
        if sent < MAX_INITIAL_RTR_ADVERTISEMENTS {
            wait = wait.min(MAX_INITIAL_RTR_ADVERT_INTERVAL_NS);
        }
        ctx.state.ra.next[net] = (ctx.now + wait, sent.saturating_add(1));
        send_ra(ctx, b, net);
    }
}

/// Worker 0's schedule of unsolicited router advertisements.
#[derive(Default)]
pub struct RaSchedule {
    /// Per network of the snapshot: when the next is due, and how many went out.
    next: Vec<(u64, u8)>,
    /// The snapshot `next` belongs to.
    generation: u64,
    rng: u64,
}

impl RaSchedule {
    /// xorshift64: the spread of section 6.2.4, nothing cryptographic.
    fn random(&mut self) -> u64 {
        if self.rng == 0 {
            self.rng = 0x9e37_79b9_7f4a_7c15;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

/// An unsolicited neighbour advertisement for `target` at `mac` out of `port`, to
/// all-nodes with the Override flag (section 7.2.6): IPv6's gratuitous ARP, sent when an
/// address vgate answers for appears or moves.
pub fn send_unsolicited_na(ctx: &mut Ctx, port: u8, target: u128, mac: EthernetAddress) {
    let Some(p) = ctx.snap.ip6.ports.get(usize::from(port)) else {
        return;
    };
    // vgate's own addresses (a port's, a gateway's) are a router's; an endpoint's is not
    // (RFC 4861 section 7.2.6: the flags are those of a solicited answer).
    let ours = ctx.snap.ip6.is_local(Link::Port(port), target);
    let from = if ours { target } else { p.link_local };
    let na = NeighborAdvertRepr {
        router_flag: ours,
        solicited_flag: false,
        override_flag: true,
        target: Ipv6Addr::from_bits(target),
        target_ll: Some(mac),
    };
    let len = na.buffer_len();
    let Some(d) = alloc(ctx, len) else { return };
    let buf = ctx.pool.bytes_mut(&d);
    headers(
        buf,
        (mac, class::multicast_mac(class::ALL_NODES)),
        (from, ALL_NODES),
        len,
    );
    na.emit(
        Ipv6Addr::from_bits(from),
        class::ALL_NODES,
        &mut buf[ETH + ipv6::HEADER_LEN..],
    );
    ctx.tx.push(port, d);
    ctx.stats.unsolicited_na_sent.add(1);
}
