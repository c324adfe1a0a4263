//! IPv6 (RFC 8200) as three stages: ip6_input (receive checks, what is for vgate),
//! ip6_forward (route, hop limit, MTU, next hop: route and rewrite in one, as nothing
//! translates IPv6) and icmp6_error (RFC 4443 errors built in the frame).
//!
//! ```text
//! l2_input -> ip6_input -> ip6_forward (route, hop limit, MTU, NDP) -> tx
//!                     \-> ndp (NS, NA, RS) / echo reply -/   \-> hold (NDP pending)
//!          any stage -> icmp6_error -> ip6_forward
//! ```
//!
//! NAT never sees IPv6: tenant prefixes are routed (Neutron's model). IPv6 is never
//! fragmented in transit (RFC 8200 section 5): a packet over the egress MTU gets a Packet
//! Too Big with that MTU.

use super::{Batch, Ctx, Next, bits, ndp};
use crate::metrics::{DropReason, IcmpKind};
use crate::tables::Snapshot;
use crate::tables::ip6::{Hop6, Link, is_link_local, is_multicast};
use crate::wire::ethernet::{HEADER_LEN as ETH, ethertype};
use crate::wire::icmpv6;
use crate::wire::ipv6::{self, class, next_header};

/// Hop limit of packets vgate originates (RFC 4861 section 6.3.2's default, Linux's).
pub const DEFAULT_HOP_LIMIT: u8 = 64;

/// True for the groups vgate listens to: all-nodes, all-routers and the solicited-node
/// groups (RFC 4291 section 2.7.1).
#[inline]
fn joined(dst: u128) -> bool {
    let a = std::net::Ipv6Addr::from_bits(dst);
    a == class::ALL_NODES || a == class::ALL_ROUTERS || class::is_solicited_node(a)
}

#[inline(always)]
fn u128_at(b: &[u8], at: usize) -> u128 {
    ipv6::read_u128(&b[at..])
}

/// What ip6_input decided for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Input {
    Forward,
    Local,
}

/// ip6_input: RFC 8200 section 3's header checks and RFC 4291's address rules; trims
/// link-layer padding; sends what is for vgate to its local handling and the rest to
/// ip6_forward.
pub fn run_input(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    let mut forward = 0u64;
    for i in bits(mask) {
        let d = b.desc[i];
        let link = Link::of(b.meta[i].rx_port, b.meta[i].vni_net);
        match classify(ctx.snap, link, &ctx.pool.bytes(&d)[ETH..]) {
            Ok((input, total)) => {
                b.desc[i].len = (ETH + total) as u32;
                match input {
                    Input::Forward => forward |= 1 << i,
                    Input::Local => local(ctx, b, i),
                }
            }
            Err(r) => b.drop(i, r),
        }
    }
    b.set_next_mask(Next::Ip6Input, forward, Next::Ip6Forward);
}

/// ip6_input's decision for the IPv6 packet `l3` (what follows the Ethernet header)
/// received on `link`, with the packet's length (the frame may carry padding after it):
/// the checks in order, reads only. The stage and the fast path both decide by this.
#[inline]
pub(super) fn classify(
    snap: &Snapshot,
    link: Link,
    l3: &[u8],
) -> Result<(Input, usize), DropReason> {
    let Some(h) = l3.first_chunk::<{ ipv6::HEADER_LEN }>() else {
        return Err(DropReason::Ip6TooShort);
    };
    if h[0] >> 4 != 6 {
        return Err(DropReason::Ip6BadVersion);
    }
    let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if plen == 0 && h[6] == next_header::HOP_BY_HOP {
        return Err(DropReason::Ip6Jumbogram);
    }
    let total = ipv6::HEADER_LEN + plen;
    if total > l3.len() {
        return Err(DropReason::Ip6TooShort);
    }
    let (src, dst) = (u128_at(h, 8), u128_at(h, 24));
    let ip6 = &snap.ip6;
    // Multicast vgate does not listen to (MLD reports among them, some from the
    // unspecified address) is not for it, whatever its source.
    if is_multicast(dst) && !joined(dst) {
        return Err(DropReason::Ip6Multicast);
    }
    // The unspecified source is duplicate address detection's, to a solicited-node group
    // (RFC 4861 section 7.1.1); ndp checks the rest.
    if is_multicast(src)
        || src == 1
        || (src == 0 && !class::is_solicited_node(std::net::Ipv6Addr::from_bits(dst)))
    {
        return Err(DropReason::Ip6MartianSource);
    }
    if src != 0 && ip6.is_own(link, src) {
        return Err(DropReason::Ip6OwnSource);
    }
    if dst == 0 || dst == 1 {
        return Err(DropReason::Ip6MartianDestination);
    }
    if is_multicast(dst) {
        return if joined(dst) {
            Ok((Input::Local, total))
        } else {
            Err(DropReason::Ip6Multicast)
        };
    }
    if ip6.is_local(link, dst) {
        return Ok((Input::Local, total));
    }
    // RFC 4291 section 2.5.6: link-local packets never leave their link.
    if is_link_local(dst) || is_link_local(src) {
        return Err(DropReason::Ip6LinkLocalScope);
    }
    Ok((Input::Forward, total))
}

/// A packet for vgate: NDP to ndp, echo requests answered in place, UDP and TCP port
/// unreachable (vgate runs no services on its dataplane addresses), other protocols
/// parameter problem (RFC 4443 section 3.4, code 1).
fn local(ctx: &mut Ctx, b: &mut Batch, i: usize) {
    let d = b.desc[i];
    let (chain, src, dst) = {
        let ip = ipv6::Packet::new_unchecked(&ctx.pool.bytes(&d)[ETH..]);
        (ip.walk(), ip.src_u128(), ip.dst_u128())
    };
    let chain = match chain {
        Ok(c) => c,
        Err(_) => return b.drop(i, DropReason::Ip6BadExtensionHeaders),
    };
    // vgate reassembles nothing; NDP must never be fragmented (RFC 6980 section 5).
    if chain.fragment.is_some_and(|f| !f.is_atomic()) {
        return b.drop(i, DropReason::Ip6LocalIcmp);
    }
    match chain.protocol {
        next_header::ICMPV6 => {
            let l3 = &ctx.pool.bytes(&d)[ETH..];
            let msg_type = l3.get(chain.offset).copied().unwrap_or(0);
            match msg_type {
                icmpv6::msg::ROUTER_SOLICIT..=icmpv6::msg::REDIRECT => {
                    ndp::receive(ctx, b, i, chain.offset)
                }
                icmpv6::msg::ECHO_REQUEST if !is_multicast(dst) => echo(ctx, b, i, chain.offset),
                _ => b.drop(i, DropReason::Ip6LocalIcmp),
            }
        }
        _ if is_multicast(dst) || src == 0 => b.drop(i, DropReason::Ip6LocalUnsupported),
        next_header::UDP | next_header::TCP => b.icmp_error(
            i,
            DropReason::Ip6LocalUnsupported,
            IcmpKind::Icmp6PortUnreachable,
            0,
        ),
        next_header::NO_NEXT => b.drop(i, DropReason::Ip6LocalUnsupported),
        _ => {
            // The pointer names the Next Header field that holds the unknown value: the
            // fixed header's, or the last extension header's first byte.
            let pointer = match chain.offset {
                ipv6::HEADER_LEN => 6,
                _ => last_extension_start(ctx.pool.bytes(&d), chain.offset),
            };
            b.icmp_error(
                i,
                DropReason::Ip6LocalUnsupported,
                IcmpKind::Icmp6ParamProblem,
                pointer,
            )
        }
    }
}

/// Offset from the IPv6 header of the extension header that ends at `end` (a walked, valid
/// chain).
fn last_extension_start(frame: &[u8], end: usize) -> u16 {
    let ip = ipv6::Packet::new_unchecked(&frame[ETH..]);
    let mut protocol = ip.next_header();
    let mut at = ipv6::HEADER_LEN;
    let l3 = &frame[ETH..];
    let mut last = at;
    while at < end {
        last = at;
        let len = if protocol == next_header::FRAGMENT {
            ipv6::FRAGMENT_HEADER_LEN
        } else {
            (usize::from(l3[at + 1]) + 1) * 8
        };
        protocol = l3[at];
        at += len;
    }
    last as u16
}

/// Answer an echo request in place (RFC 4443 section 4.2): swap the addresses (the
/// pseudo-header sum is unchanged by a swap), type 128 -> 129 patched into the checksum,
/// a fresh hop limit. Requests through extension headers are not answered.
fn echo(ctx: &mut Ctx, b: &mut Batch, i: usize, offset: usize) {
    let d = b.desc[i];
    let buf = ctx.pool.bytes_mut(&d);
    let l3 = &mut buf[ETH..];
    let (src, dst) = (u128_at(l3, 8), u128_at(l3, 24));
    let ok = offset == ipv6::HEADER_LEN && {
        let msg = icmpv6::Packet::new_unchecked(&l3[offset..]);
        msg.check_len().is_ok()
            && msg.verify_checksum(
                std::net::Ipv6Addr::from_bits(src),
                std::net::Ipv6Addr::from_bits(dst),
            )
    };
    if !ok {
        return b.drop(i, DropReason::Ip6LocalIcmp);
    }
    l3[8..24].copy_from_slice(&dst.to_be_bytes());
    l3[24..40].copy_from_slice(&src.to_be_bytes());
    l3[7] = DEFAULT_HOP_LIMIT;
    icmpv6::Packet::new_unchecked(&mut l3[offset..]).echo_request_to_reply();
    b.meta[i].local_origin = true;
    ctx.stats.icmp_echo_replies.add(1);
    if is_link_local(src) || is_link_local(dst) {
        // No route leads to a link-local address, and a link-local source never leaves its
        // link (RFC 4291 section 2.5.6): back on the link it came from, to the MAC it came
        // from, from the MAC it was sent to.
        let mut macs = [0u8; 12];
        macs.copy_from_slice(&buf[..12]);
        buf[..6].copy_from_slice(&macs[6..]);
        buf[6..12].copy_from_slice(&macs[..6]);
        return reply_on_link(ctx, b, i);
    }
    b.set_next(i, Next::Ip6Forward);
}

/// ip6_forward: the route (the receiving port's table, then main; vgate's own packets from
/// main), the hop limit (RFC 8200 section 3), the egress MTU (Packet Too Big, section 5)
/// and the next hop's MAC (NDP, with the hold queues ARP has).
pub fn run_forward(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    for i in bits(mask) {
        forward(ctx, b, i);
    }
}

/// Where ip6_forward sends a packet it can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Out {
    /// Out of `port` to the neighbour `nexthop`.
    Port { port: u8, nexthop: u128 },
    /// Into Geneve network `network` (its MTU is the tunnel's: [`encap`] checks it).
    Tunnel { network: u16 },
}

/// ip6_forward's decision for a packet to `dst` with `hop_limit`, `total` bytes long,
/// received on `rx_port` (or originated by vgate: `local_origin`): the route (the receiving
/// port's table, then main; vgate's own packets from main), the hop limit (RFC 8200 section
/// 3), the egress MTU (section 5). An error says what to send instead. The stage and the
/// fast path both decide by this.
#[inline]
pub(super) fn decide(
    snap: &Snapshot,
    rx_port: u8,
    local_origin: bool,
    dst: u128,
    hop_limit: u8,
    total: usize,
) -> Result<Out, (DropReason, IcmpKind, u16)> {
    let table = if local_origin {
        crate::tables::MAIN_TABLE
    } else {
        snap.ports[usize::from(rx_port)].table
    };
    let Some(hop) = snap.ip6.lookup(table, dst) else {
        return Err((DropReason::Ip6NoRoute, IcmpKind::Icmp6NoRoute, 0));
    };
    if !local_origin && hop_limit <= 1 {
        return Err((
            DropReason::Ip6HopLimitExpired,
            IcmpKind::Icmp6TimeExceeded,
            0,
        ));
    }
    let (port, via) = match hop {
        Hop6::Forward { port, via } => (port, via),
        Hop6::Tunnel { network } => return Ok(Out::Tunnel { network }),
    };
    let mtu = snap.ports[usize::from(port)].mtu;
    if total > usize::from(mtu) {
        return Err((DropReason::Ip6TooBig, IcmpKind::Icmp6PacketTooBig, mtu));
    }
    Ok(Out::Port {
        port,
        nexthop: if via == 0 { dst } else { via },
    })
}

/// The destination, hop limit and length of the IPv6 packet in `frame`.
#[inline(always)]
pub(super) fn header_facts(frame: &[u8]) -> (u128, u8, usize) {
    let l3 = &frame[ETH..];
    (
        u128_at(l3, 24),
        l3[7],
        ipv6::HEADER_LEN + usize::from(u16::from_be_bytes([l3[4], l3[5]])),
    )
}

/// [`run_forward`] for packet `i`.
fn forward(ctx: &mut Ctx, b: &mut Batch, i: usize) {
    let d = b.desc[i];
    let m = b.meta[i];
    let (dst, hop_limit, total) = header_facts(ctx.pool.bytes(&d));
    let (port, nexthop) = match decide(ctx.snap, m.rx_port, m.local_origin, dst, hop_limit, total) {
        Ok(Out::Port { port, nexthop }) => (port, nexthop),
        Ok(Out::Tunnel { network }) => return encap(ctx, b, i, network, dst, total),
        Err((reason, kind, mtu)) => return b.icmp_error(i, reason, kind, mtu),
    };
    if !m.local_origin {
        ctx.pool.bytes_mut(&d)[ETH + 7] = hop_limit - 1;
    }
    b.meta[i].tx_port = port;
    match ndp::resolve(ctx, port, nexthop, d) {
        super::adjacency::Resolved::Mac(mac) => {
            write_ethernet(ctx, port, d, mac);
            b.set_next(i, Next::Tx);
        }
        super::adjacency::Resolved::Held => b.set_next(i, Next::Consumed),
        super::adjacency::Resolved::Refused(r) => b.drop(i, r),
    }
}

/// Packet `i` (to `dst`, `total` bytes, hop limit checked) into Geneve network `network`:
/// toward its endpoint's chassis, within the tenant MTU (the underlay's less the
/// encapsulation; a Packet Too Big with it otherwise, RFC 8926 section 4.1.1), its TCP MSS
/// clamped to that MTU less 60 (`tunnel.tcp_mss_clamp`), then on to rewrite as an outer
/// IPv4 packet of vgate's.
fn encap(ctx: &mut Ctx, b: &mut Batch, i: usize, network: u16, dst: u128, total: usize) {
    let snap = ctx.snap;
    let m = b.meta[i];
    let (Some(tunnel), Some(vni)) = (
        snap.tunnel,
        snap.networks.get(usize::from(network)).and_then(|n| n.vni),
    ) else {
        return b.drop(i, DropReason::GeneveNoUnderlayRoute);
    };
    let (Some(&(mac, net)), Some(&chassis)) = (
        snap.ip6.endpoints.get(&dst),
        snap.ip6.endpoint_chassis.get(&dst),
    ) else {
        return b.drop(i, DropReason::GeneveNoEndpoint);
    };
    if net != network {
        return b.drop(i, DropReason::GeneveNoEndpoint);
    }
    let Some((port, nexthop, mtu)) = super::geneve_encap::underlay(ctx, chassis) else {
        return b.drop(i, DropReason::GeneveNoUnderlayRoute);
    };
    let inner_mtu = crate::wire::geneve::inner_ip_mtu(usize::from(mtu), 0);
    if total > inner_mtu {
        return b.icmp_error(
            i,
            DropReason::Ip6TooBig,
            IcmpKind::Icmp6PacketTooBig,
            inner_mtu as u16,
        );
    }
    let gateway_mac = snap.networks[usize::from(network)].gateway_mac;
    let mut d = b.desc[i];
    {
        let buf = ctx.pool.bytes_mut(&d);
        if !m.local_origin {
            buf[ETH + 7] -= 1;
        }
        if tunnel.tcp_mss_clamp {
            super::geneve_encap::clamp_tcp_mss6(ctx.stats, &mut buf[ETH..ETH + total], inner_mtu);
        }
        buf[..6].copy_from_slice(&mac.0);
        buf[6..12].copy_from_slice(&gateway_mac.0);
        buf[12..14].copy_from_slice(&ethertype::IPV6.to_be_bytes());
    }
    if !super::geneve_encap::encapsulate(ctx, &mut d, &tunnel, vni, chassis) {
        return b.drop(i, DropReason::GeneveNoUnderlayRoute);
    }
    b.desc[i] = d;
    b.meta[i] = super::Meta {
        tx_port: port,
        nexthop,
        local_origin: true,
        ..m
    };
    ctx.stats.geneve_encap.add(1);
    b.set_next(i, Next::Rewrite);
}

/// Send the reply built in packet `i`'s frame (Ethernet header included) back on the link
/// the request came from: out of its port, or through the tunnel to the chassis of the
/// frame's destination MAC when it came from a Geneve network.
pub(super) fn reply_on_link(ctx: &mut Ctx, b: &mut Batch, i: usize) {
    let m = b.meta[i];
    let Link::Network(network) = Link::of(m.rx_port, m.vni_net) else {
        b.meta[i].tx_port = m.rx_port;
        return b.set_next(i, Next::Tx);
    };
    let snap = ctx.snap;
    let mut d = b.desc[i];
    let mut to = [0u8; 6];
    to.copy_from_slice(&ctx.pool.bytes(&d)[..6]);
    let target = snap
        .networks
        .get(usize::from(network))
        .and_then(|n| n.vni)
        .zip(snap.ip6.chassis_by_mac.get(&(network, to)).copied());
    let (Some(tunnel), Some((vni, chassis))) = (snap.tunnel, target) else {
        return b.drop(i, DropReason::GeneveNoEndpoint);
    };
    let Some((port, nexthop, _)) = super::geneve_encap::underlay(ctx, chassis) else {
        return b.drop(i, DropReason::GeneveNoUnderlayRoute);
    };
    if !super::geneve_encap::encapsulate(ctx, &mut d, &tunnel, vni, chassis) {
        return b.drop(i, DropReason::GeneveNoUnderlayRoute);
    }
    b.desc[i] = d;
    b.meta[i] = super::Meta {
        tx_port: port,
        nexthop,
        local_origin: true,
        ..m
    };
    ctx.stats.geneve_encap.add(1);
    b.set_next(i, Next::Rewrite);
}

/// The Ethernet header of a packet leaving `port` for `mac`.
pub(super) fn write_ethernet(
    ctx: &mut Ctx,
    port: u8,
    d: crate::io::Desc,
    mac: crate::wire::EthernetAddress,
) {
    let src = ctx.snap.ports[usize::from(port)].mac;
    let buf = ctx.pool.bytes_mut(&d);
    buf[..6].copy_from_slice(&mac.0);
    buf[6..12].copy_from_slice(&src.0);
    buf[12..14].copy_from_slice(&ethertype::IPV6.to_be_bytes());
}

/// The error message's headers in front of the quote.
const ERR_HEADERS: usize = ipv6::HEADER_LEN + icmpv6::HEADER_LEN;

/// icmp6_error (RFC 4443): count the original's loss under its reason, check that an error
/// may be sent about it (section 2.4 (e)), apply the per-worker rate limit shared with ICMP
/// (section 2.4 (f)), and build the error in the same frame: the invoking packet is quoted
/// as far as the error fits the minimum MTU of 1280 bytes.
pub fn run_error(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    for i in bits(mask) {
        let m = b.meta[i];
        ctx.stats.count_drop(m.drop, 1);
        ctx.stats.generated.add(1);
        let d = b.desc[i];
        let link = Link::of(m.rx_port, m.vni_net);
        let (src, allowed, macs) = {
            let frame = ctx.pool.bytes(&d);
            let mut macs = [0u8; 12];
            macs.copy_from_slice(&frame[..12]);
            let l3 = &frame[ETH..];
            (u128_at(l3, 8), error_allowed(l3, m.icmp), macs)
        };
        // Nor about a packet of vgate's own (an echo reply whose neighbour never answered).
        if !allowed || ctx.snap.ip6.is_local(link, src) {
            b.drop(i, DropReason::Icmp6NotAllowed);
            continue;
        }
        if !ctx.state.icmp_limiter.allow(ctx.now) {
            ctx.stats.icmp_rate_limited.add(1);
            b.drop(i, DropReason::Icmp6RateLimited);
            continue;
        }
        let ip6 = &ctx.snap.ip6;
        // A tenant host hears from its gateway (its link-local address only toward a
        // link-local one); otherwise from the receiving port's address toward it, or any
        // of vgate's.
        let gateway = match link {
            Link::Port(port) => ip6.network_on(port, src),
            Link::Network(net) => ip6.network6(net),
        }
        .map(|n| (n.gateway, n.gateway_mac));
        let from = match gateway {
            Some((g, mac)) if is_link_local(src) && !is_link_local(g) => {
                Some(crate::tables::ip6::link_local(mac))
            }
            Some((g, _)) if is_link_local(g) == is_link_local(src) => Some(g),
            _ => ip6.source_for(m.rx_port, src),
        };
        let Some(from) = from else {
            b.drop(i, DropReason::Icmp6NoSourceAddress);
            continue;
        };
        let mut nd = d;
        if !ctx.pool.push_front(&mut nd, ERR_HEADERS) {
            b.drop(i, DropReason::RewriteNoFrames);
            continue;
        }
        let quote = icmpv6::quote_len(d.len as usize - ETH);
        nd.len = (ETH + ERR_HEADERS + quote) as u32;
        let buf = ctx.pool.bytes_mut(&nd);
        buf[12..14].copy_from_slice(&ethertype::IPV6.to_be_bytes());
        let (from, to) = (
            std::net::Ipv6Addr::from_bits(from),
            std::net::Ipv6Addr::from_bits(src),
        );
        ipv6::Repr {
            src: from,
            dst: to,
            next_header: next_header::ICMPV6,
            payload_len: icmpv6::HEADER_LEN + quote,
            hop_limit: DEFAULT_HOP_LIMIT,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut ipv6::Packet::new_unchecked(&mut buf[ETH..]));
        let (t, c) = m.icmp.type_code();
        icmpv6::Repr::Error {
            msg_type: t,
            code: c,
            field: u32::from(m.icmp_mtu),
            quote_len: quote,
        }
        .emit(from, to, &mut buf[ETH + ipv6::HEADER_LEN..]);
        ctx.stats.icmp_errors[m.icmp as usize].add(1);
        b.desc[i] = nd;
        b.meta[i].local_origin = true;
        if is_link_local(src) {
            // To a link-local address: back on its link, to the MAC the packet came from.
            buf[..6].copy_from_slice(&macs[6..]);
            buf[6..12].copy_from_slice(&macs[..6]);
            reply_on_link(ctx, b, i);
            continue;
        }
        b.set_next(i, Next::Ip6Forward);
    }
}

/// RFC 4443 section 2.4 (e): no error about an ICMPv6 error, a packet to multicast (Packet
/// Too Big aside, which vgate never sends about multicast since it routes none), or from a
/// source that does not name one node. A later fragment cannot be told from an error
/// message, so it gets none either.
fn error_allowed(l3: &[u8], kind: IcmpKind) -> bool {
    let ip = ipv6::Packet::new_unchecked(l3);
    let (src, dst) = (ip.src_u128(), ip.dst_u128());
    if src == 0 || is_multicast(src) || (is_multicast(dst) && kind != IcmpKind::Icmp6PacketTooBig) {
        return false;
    }
    match ip.walk() {
        Ok(c) if c.fragment.is_some_and(|f| !f.is_first()) => false,
        Ok(c) if c.protocol == next_header::ICMPV6 => {
            l3.get(c.offset).is_some_and(|t| !icmpv6::is_error_type(*t))
        }
        _ => true,
    }
}
