//! Geneve encapsulation (RFC 8926): packets routed to a Geneve network leave toward the
//! chassis of their endpoint, inside outer Ethernet + IPv4 + UDP + Geneve headers written in
//! place into the frame's headroom. The outer packet is then an ordinary packet of vgate's
//! for rewrite: its next hop is the chassis address's route in "main", resolved by ARP.

use super::{Batch, Ctx, Next, bits};
use crate::io::Desc;
use crate::metrics::{DropReason, IcmpKind, WorkerStats};
use crate::tables::{NextHop, TunnelInfo};
use crate::wire::ethernet::{self, HEADER_LEN as ETH, ethertype};
use crate::wire::geneve::{self, ENCAP_OVERHEAD_IPV4, PROTO_ETHERNET};
use crate::wire::{checksum, ipv4, tcp, udp};

/// TTL of the outer header (RFC 8926 section 4.3: set like any packet the tunnel end
/// originates).
const OUTER_TTL: u8 = 64;

/// Encapsulate every packet of `mask` (inner IPv4 routed to a Geneve network, `Batch::dst`
/// its destination) and send it on to rewrite.
pub fn run(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    let Some(tunnel) = ctx.snap.tunnel else {
        for i in bits(mask) {
            b.drop(i, DropReason::GeneveNoUnderlayRoute);
        }
        return;
    };
    // A batch usually goes to few chassis: the way to the last one and its outer headers
    // are kept.
    let mut way = Way::NONE;
    let (mut fast, mut done) = (0u64, 0u64);
    for i in bits(mask) {
        match encap_one(ctx, b, i, &tunnel, &mut way) {
            Encapped::Fast => {
                fast |= 1 << i;
                done += 1;
            }
            Encapped::Moved => done += 1,
            Encapped::Not => {}
        }
    }
    b.set_next_mask(Next::Encap, fast, Next::Rewrite);
    ctx.stats.geneve_encap.add(done);
}

/// What [`encap_one`] did with a packet.
enum Encapped {
    /// Encapsulated whole, still at `Next::Encap` with its outer metadata: on to rewrite.
    Fast,
    /// Encapsulated as fragments, already sent on.
    Moved,
    /// Dropped or turned into an ICMP error.
    Not,
}

/// The way to one chassis for one VNI: underlay port, next hop and MTUs, and the outer
/// headers every packet to it starts from (lengths, checksum and source port left to fill).
pub(super) struct Way {
    chassis: u32,
    vni: u32,
    pub(super) port: u8,
    pub(super) nexthop: u32,
    inner_mtu: usize,
    outer: [u8; ENCAP_OVERHEAD_IPV4],
    /// Unfolded sum of the outer IPv4 header with total length and checksum zero.
    ip_sum: u32,
}

impl Way {
    pub(super) const NONE: Way = Way {
        chassis: 0,
        vni: u32::MAX,
        port: 0,
        nexthop: 0,
        inner_mtu: 0,
        outer: [0; ENCAP_OVERHEAD_IPV4],
        ip_sum: 0,
    };

    /// The way to `t`'s chassis with its VNI, kept when it already is; false when the
    /// underlay has no route to it.
    #[inline(always)]
    fn to(&mut self, ctx: &Ctx, tunnel: &TunnelInfo, t: &Target) -> bool {
        (self.chassis, self.vni) == (t.chassis, t.vni) || self.set(ctx, tunnel, t.chassis, t.vni)
    }

    /// The way to `chassis` with `vni`; false when the underlay has no route to it.
    fn set(&mut self, ctx: &Ctx, tunnel: &TunnelInfo, chassis: u32, vni: u32) -> bool {
        let Some((port, nexthop, mtu)) = underlay(ctx, chassis) else {
            return false;
        };
        let mut outer = [0u8; ENCAP_OVERHEAD_IPV4];
        ethernet::Frame::new_unchecked(&mut outer[..]).set_ethertype(ethertype::IPV4);
        outer_ipv4(&mut outer, tunnel.local, chassis, 0);
        let l4 = ETH + ipv4::HEADER_LEN;
        udp::Packet::new_unchecked(&mut outer[l4..l4 + udp::HEADER_LEN])
            .set_dst_port(tunnel.udp_port);
        geneve_header(vni).emit(&mut geneve::Packet::new_unchecked(
            &mut outer[l4 + udp::HEADER_LEN..],
        ));
        let ip_sum = checksum::sum(&outer[ETH..l4], 0);
        *self = Way {
            chassis,
            vni,
            port,
            nexthop,
            // RFC 8926 section 4.1.1: the tenant MTU is what fits the underlay after the
            // overhead.
            inner_mtu: geneve::inner_ip_mtu(usize::from(mtu), 0),
            outer,
            ip_sum,
        };
        true
    }
}

/// The outer IPv4 header (RFC 8926 section 4.3) after the Ethernet header in `frame`, from
/// `local` to `chassis`, `total_len` long, checksum zero (left to the caller).
fn outer_ipv4(frame: &mut [u8], local: u32, chassis: u32, total_len: u16) {
    let mut ip = ipv4::Packet::new_unchecked(&mut frame[ETH..ETH + ipv4::HEADER_LEN]);
    ip.set_version_ihl(ipv4::HEADER_LEN);
    ip.set_dscp_ecn(0);
    ip.set_total_len(total_len);
    // An atomic datagram (DF set, never fragmented): identification zero (RFC 6864 section
    // 4.1).
    ip.set_ident(0);
    ip.set_flags_offset(true, false, 0);
    ip.set_ttl(OUTER_TTL);
    ip.set_protocol(ipv4::protocol::UDP);
    ip.set_src_addr(std::net::Ipv4Addr::from_bits(local));
    ip.set_dst_addr(std::net::Ipv4Addr::from_bits(chassis));
    ip.set_checksum(0);
}

fn geneve_header(vni: u32) -> geneve::Repr {
    geneve::Repr {
        vni,
        protocol: PROTO_ETHERNET,
        oam: false,
        critical: false,
        options_len: 0,
    }
}

/// The underlay way to `chassis`: (port, neighbour to resolve, IP MTU of the port).
#[inline]
pub fn underlay(ctx: &Ctx, chassis: u32) -> Option<(u8, u32, u16)> {
    match ctx.snap.lookup(crate::tables::MAIN_TABLE, chassis) {
        Some(NextHop::Forward { port, via }) => Some((
            port,
            if via == 0 { chassis } else { via },
            ctx.snap.ports[port as usize].mtu,
        )),
        _ => None,
    }
}

/// TCP SYNs through the tunnel announce at most the tenant MTU less IPv4 and TCP headers
/// (RFC 9293 section 3.7.1; RFC 879): an endpoint whose interface MTU is larger than the
/// tenant MTU then never sends a segment the tunnel cannot carry. This matters most for
/// packets from a VM, which the chassis encapsulates and can only drop when too big.
/// `l3` is the IPv4 packet; anything not a well-formed first fragment of TCP is left alone.
#[inline]
pub fn clamp_tcp_mss(stats: &WorkerStats, l3: &mut [u8], inner_mtu: usize) {
    let Ok(ip) = ipv4::Packet::new_checked(&l3[..]) else {
        return;
    };
    if ip.protocol() != ipv4::protocol::TCP || ip.frag_offset() != 0 {
        return;
    }
    let (hl, total) = (ip.header_len(), usize::from(ip.total_len()));
    let Ok(mut seg) = tcp::Packet::new_checked(&mut l3[hl..total]) else {
        return;
    };
    let max = inner_mtu.saturating_sub(ipv4::HEADER_LEN + tcp::HEADER_LEN);
    if seg.clamp_mss(max as u16).is_some() {
        stats.tcp_mss_clamped.add(1);
    }
}

/// [`clamp_tcp_mss`] for the IPv6 packet `l3`: at most the tenant MTU less the IPv6 and
/// TCP headers (60 bytes). Only TCP right after the fixed header is looked at; a packet
/// with extension headers is left alone.
#[inline]
pub fn clamp_tcp_mss6(stats: &WorkerStats, l3: &mut [u8], inner_mtu: usize) {
    use crate::wire::ipv6;
    if l3.len() < ipv6::HEADER_LEN || l3[6] != ipv6::next_header::TCP {
        return;
    }
    let Ok(mut seg) = tcp::Packet::new_checked(&mut l3[ipv6::HEADER_LEN..]) else {
        return;
    };
    let max = inner_mtu.saturating_sub(ipv6::HEADER_LEN + tcp::HEADER_LEN);
    if seg.clamp_mss(max as u16).is_some() {
        stats.tcp_mss_clamped.add(1);
    }
}

/// Where a packet for a Geneve endpoint goes: the endpoint, its network's VNI and its
/// chassis (a virtual endpoint is where its last gratuitous ARP came from, else where
/// configured).
#[derive(Clone, Copy)]
pub(super) struct Target {
    endpoint: u16,
    chassis: u32,
    vni: u32,
}

/// The [`Target`] of destination `dst`.
#[inline(always)]
fn target(ctx: &Ctx, dst: u32) -> Result<Target, DropReason> {
    let snap = ctx.snap;
    let Some(e) = snap.endpoint_by_ip.lookup(dst) else {
        return Err(DropReason::GeneveNoEndpoint);
    };
    let ep = &snap.endpoints[usize::from(e)];
    let Some(vni) = snap.networks[usize::from(ep.network)].vni else {
        return Err(DropReason::GeneveNoEndpoint);
    };
    let moved = if ep.is_virtual {
        ctx.state.virtual_chassis.get(&dst).copied()
    } else {
        None
    };
    match moved.or(ep.chassis.map(|c| snap.chassis[usize::from(c)].address)) {
        Some(chassis) => Ok(Target {
            endpoint: e,
            chassis,
            vni,
        }),
        None => Err(DropReason::GeneveNoEndpoint),
    }
}

/// The fast path's encap check, from reads only, for packet `i` (an option-less IPv4
/// datagram of `total` bytes, not yet trimmed, whose destination after nat_in is `dst`):
/// `Some` exactly when [`encap_one`] would encapsulate it whole; `way` is then the way to
/// its chassis. `None` leaves it to the stage.
#[inline(always)]
pub(super) fn fast_target(
    ctx: &Ctx,
    b: &Batch,
    i: usize,
    dst: u32,
    total: usize,
    tunnel: &TunnelInfo,
    way: &mut Way,
) -> Option<Target> {
    let t = target(ctx, dst).ok()?;
    if !way.to(ctx, tunnel, &t) {
        return None;
    }
    (total <= way.inner_mtu && ctx.pool.headroom(&b.desc[i]) >= ENCAP_OVERHEAD_IPV4).then_some(t)
}

/// Encapsulate packet `i` toward its endpoint's chassis.
#[inline]
fn encap_one(
    ctx: &mut Ctx,
    b: &mut Batch,
    i: usize,
    tunnel: &TunnelInfo,
    way: &mut Way,
) -> Encapped {
    let t = match target(ctx, b.dst[i]) {
        Ok(t) => t,
        Err(r) => {
            b.drop(i, r);
            return Encapped::Not;
        }
    };
    if !way.to(ctx, tunnel, &t) {
        b.drop(i, DropReason::GeneveNoUnderlayRoute);
        return Encapped::Not;
    }
    let m = b.meta[i];
    let inner_mtu = way.inner_mtu;
    let buf = ctx.pool.bytes(&b.desc[i]);
    let Some(h) = buf
        .get(ETH..)
        .and_then(|l3| l3.first_chunk::<{ ipv4::HEADER_LEN }>())
    else {
        b.drop(i, DropReason::GeneveNoUnderlayRoute);
        return Encapped::Not;
    };
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let (hl, df) = (usize::from(h[0] & 0x0f) * 4, h[6] & 0x40 != 0);
    if total > inner_mtu && df && !m.local_origin {
        // RFC 1191 section 4: the next-hop MTU is the tenant MTU.
        b.icmp_error(
            i,
            DropReason::MtuFragNeeded,
            IcmpKind::FragNeeded,
            inner_mtu as u16,
        );
        return Encapped::Not;
    }
    if total <= inner_mtu {
        return if encap_whole(ctx, b, i, tunnel, way, t) {
            Encapped::Fast
        } else {
            b.drop(i, DropReason::GeneveNoUnderlayRoute);
            Encapped::Not
        };
    }
    // Without DF (RFC 791 section 3.2): fragment the inner datagram, then encapsulate each
    // fragment, so the underlay never fragments.
    if inner_mtu < hl + 8 {
        b.drop(i, DropReason::GeneveNoUnderlayRoute);
        return Encapped::Not;
    }
    inner_frame(ctx, &b.desc[i], tunnel, t, m.local_origin, inner_mtu);
    let out = super::Meta {
        tx_port: way.port,
        nexthop: way.nexthop,
        local_origin: true,
        ..m
    };
    encap_fragments(ctx, b, i, tunnel, way.chassis, t.vni, out, inner_mtu);
    Encapped::Moved
}

/// The inner frame of `d` as it enters the tunnel: TCP MSS clamped, TTL decremented unless
/// vgate originated it, the Ethernet header from the network's gateway to the endpoint.
#[inline(always)]
fn inner_frame(
    ctx: &mut Ctx,
    d: &Desc,
    tunnel: &TunnelInfo,
    t: Target,
    local_origin: bool,
    inner_mtu: usize,
) {
    let snap = ctx.snap;
    let ep = &snap.endpoints[usize::from(t.endpoint)];
    let gateway_mac = snap.networks[usize::from(ep.network)].gateway_mac;
    let buf = ctx.pool.bytes_mut(d);
    let total = usize::from(u16::from_be_bytes([buf[ETH + 2], buf[ETH + 3]]));
    if buf[ETH + 9] == ipv4::protocol::TCP && tunnel.tcp_mss_clamp {
        clamp_tcp_mss(ctx.stats, &mut buf[ETH..ETH + total], inner_mtu);
    }
    if !local_origin {
        ipv4::Packet::new_unchecked(&mut buf[ETH..]).decrement_ttl();
    }
    let mut f = ethernet::Frame::new_unchecked(&mut buf[..]);
    f.set_dst_addr(ep.mac);
    f.set_src_addr(gateway_mac);
    f.set_ethertype(ethertype::IPV4);
}

/// Encapsulate packet `i` (within the tenant MTU) whole toward `t` by `way`: the inner
/// frame, the outer headers in the headroom, the outer metadata for rewrite. False when the
/// headroom is short (nothing written).
#[inline(always)]
pub(super) fn encap_whole(
    ctx: &mut Ctx,
    b: &mut Batch,
    i: usize,
    tunnel: &TunnelInfo,
    way: &Way,
    t: Target,
) -> bool {
    let mut d = b.desc[i];
    if ctx.pool.headroom(&d) < ENCAP_OVERHEAD_IPV4 {
        return false;
    }
    let m = b.meta[i];
    inner_frame(ctx, &d, tunnel, t, m.local_origin, way.inner_mtu);
    let l3 = &ctx.pool.bytes(&d)[ETH..];
    let (hl, proto) = (usize::from(l3[0] & 0x0f) * 4, l3[9]);
    let total = usize::from(u16::from_be_bytes([l3[2], l3[3]]));
    let ports = match (proto, l3.get(hl..hl + 4)) {
        (ipv4::protocol::TCP | ipv4::protocol::UDP, Some(p))
            if u16::from_be_bytes([l3[6], l3[7]]) & 0x3fff == 0 && total >= hl + 4 =>
        {
            u32::from_be_bytes([p[0], p[1], p[2], p[3]])
        }
        _ => 0,
    };
    let sport = geneve::flow_entropy_port_ipv4(
        u32::from_be_bytes([l3[12], l3[13], l3[14], l3[15]]),
        u32::from_be_bytes([l3[16], l3[17], l3[18], l3[19]]),
        proto,
        ports,
    );
    ctx.pool.push_front(&mut d, ENCAP_OVERHEAD_IPV4);
    write_outer(ctx, &d, way, tunnel, sport);
    b.desc[i] = d;
    b.meta[i] = super::Meta {
        tx_port: way.port,
        nexthop: way.nexthop,
        local_origin: true,
        ..m
    };
    true
}

/// Fill the outer headers of `d` (already grown by the overhead) from `way`: lengths, IPv4
/// checksum from the precomputed sum (RFC 1071 section 2, the header differs only in its
/// length), UDP source port, and the UDP checksum when configured.
#[inline(always)]
fn write_outer(ctx: &mut Ctx, d: &Desc, way: &Way, tunnel: &TunnelInfo, sport: u16) {
    let buf = ctx.pool.bytes_mut(d);
    let Some(o) = buf.first_chunk_mut::<ENCAP_OVERHEAD_IPV4>() else {
        return;
    };
    *o = way.outer;
    let ip_len = d.len as usize - ETH;
    let udp_len = ip_len - ipv4::HEADER_LEN;
    let l4 = ETH + ipv4::HEADER_LEN;
    o[ETH + 2..ETH + 4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    let c = !checksum::fold(way.ip_sum + ip_len as u32);
    o[ETH + 10..ETH + 12].copy_from_slice(&c.to_be_bytes());
    o[l4..l4 + 2].copy_from_slice(&sport.to_be_bytes());
    o[l4 + 4..l4 + 6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    if tunnel.udp_checksum {
        udp::Packet::new_unchecked(&mut buf[l4..l4 + udp_len])
            .fill_checksum(tunnel.local.to_be_bytes(), way.chassis.to_be_bytes());
    }
}

/// Packet `i`, larger than the tenant MTU and without DF: split into fragments (RFC 791),
/// each encapsulated and sent on to rewrite with `out` as metadata.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn encap_fragments(
    ctx: &mut Ctx,
    b: &mut Batch,
    i: usize,
    tunnel: &TunnelInfo,
    chassis: u32,
    vni: u32,
    out: super::Meta,
    inner_mtu: usize,
) {
    let d = b.desc[i];
    let mut frags = [Desc::default(); super::rewrite::MAX_FRAGMENTS];
    b.set_next(i, Next::Consumed);
    let Some(n) = super::rewrite::split(ctx, d, inner_mtu, &mut frags) else {
        return;
    };
    for (k, f) in frags[..n].iter().enumerate() {
        let mut f = *f;
        if !encapsulate(ctx, &mut f, tunnel, vni, chassis) {
            ctx.pool.free(f);
            ctx.stats.count_drop(DropReason::GeneveNoUnderlayRoute, 1);
            continue;
        }
        if k == 0 {
            b.desc[i] = f;
            b.meta[i] = out;
            b.set_next(i, Next::Rewrite);
        } else if !b.push(f, out, Next::Rewrite) {
            // The batch is full: this fragment cannot be resolved and sent now.
            ctx.pool.free(f);
            ctx.stats.count_drop(DropReason::RewriteNoFrames, 1);
        }
    }
}

/// Prepend outer Ethernet + IPv4 + UDP + Geneve (RFC 8926 sections 3.1 to 3.4) to the
/// Ethernet frame in `d`, in place in its headroom, toward `chassis`. The outer Ethernet
/// addresses are left for rewrite. False, leaving `d` as it was, when the headroom is short.
pub fn encapsulate(
    ctx: &mut Ctx,
    d: &mut Desc,
    tunnel: &TunnelInfo,
    vni: u32,
    chassis: u32,
) -> bool {
    let inner_len = d.len as usize;
    let sport = geneve::flow_entropy_port(ctx.pool.bytes(d));
    if !ctx.pool.push_front(d, ENCAP_OVERHEAD_IPV4) {
        return false;
    }
    let buf = ctx.pool.bytes_mut(d);
    ethernet::Frame::new_unchecked(&mut buf[..]).set_ethertype(ethertype::IPV4);
    let udp_len = udp::HEADER_LEN + geneve::HEADER_LEN + inner_len;
    let ip_len = ipv4::HEADER_LEN + udp_len;
    outer_ipv4(buf, tunnel.local, chassis, ip_len as u16);
    ipv4::Packet::new_unchecked(&mut buf[ETH..ETH + ipv4::HEADER_LEN]).fill_checksum();
    let l4 = ETH + ipv4::HEADER_LEN;
    geneve_header(vni).emit(&mut geneve::Packet::new_unchecked(
        &mut buf[l4 + udp::HEADER_LEN..],
    ));
    let mut u = udp::Packet::new_unchecked(&mut buf[l4..l4 + udp_len]);
    u.set_src_port(sport);
    u.set_dst_port(tunnel.udp_port);
    u.set_len(udp_len as u16);
    u.set_checksum(0);
    if tunnel.udp_checksum {
        u.fill_checksum(tunnel.local.to_be_bytes(), chassis.to_be_bytes());
    }
    true
}
