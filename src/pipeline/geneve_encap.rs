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
use crate::wire::{ipv4, tcp, udp};

/// TTL of the outer header (RFC 8926 section 4.3: set like any packet the tunnel end
/// originates).
const OUTER_TTL: u8 = 64;

/// Encapsulate every packet of `mask` (inner IPv4 routed to a Geneve network, `Batch::dst`
/// its destination) and send it on to rewrite.
pub fn run(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    let mut done = 0u64;
    for i in bits(mask) {
        if encap_one(ctx, b, i) {
            done += 1;
        }
    }
    ctx.stats.geneve_encap.add(done);
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

/// Encapsulate packet `i`; true when it went on to rewrite (with any fragments of it).
fn encap_one(ctx: &mut Ctx, b: &mut Batch, i: usize) -> bool {
    let snap = ctx.snap;
    let dst = b.dst[i];
    let Some(tunnel) = snap.tunnel else {
        b.drop(i, DropReason::GeneveNoUnderlayRoute);
        return false;
    };
    let Some(ep) = snap
        .endpoint_by_ip
        .get(&dst)
        .map(|&e| snap.endpoints[e as usize])
        .filter(|e| snap.networks[e.network as usize].vni.is_some())
    else {
        b.drop(i, DropReason::GeneveNoEndpoint);
        return false;
    };
    let net = &snap.networks[ep.network as usize];
    let vni = net.vni.unwrap_or(0);
    // A virtual endpoint is where its last gratuitous ARP came from, else where configured.
    let moved = if ep.is_virtual {
        ctx.state.virtual_chassis.get(&dst).copied()
    } else {
        None
    };
    let chassis = moved.or(ep.chassis.map(|c| snap.chassis[c as usize].address));
    let Some(chassis) = chassis else {
        b.drop(i, DropReason::GeneveNoEndpoint);
        return false;
    };
    let Some((port, nexthop, mtu)) = underlay(ctx, chassis) else {
        b.drop(i, DropReason::GeneveNoUnderlayRoute);
        return false;
    };
    // RFC 8926 section 4.1.1: the tenant MTU is what fits the underlay after the overhead.
    let inner_mtu = geneve::inner_ip_mtu(usize::from(mtu), 0);
    let m = b.meta[i];
    let d = b.desc[i];
    let (total, df, hl) = {
        let ip = ipv4::Packet::new_unchecked(&ctx.pool.bytes(&d)[ETH..]);
        (usize::from(ip.total_len()), ip.dont_frag(), ip.header_len())
    };
    if total > inner_mtu && df && !m.local_origin {
        // RFC 1191 section 4: the next-hop MTU is the tenant MTU.
        b.icmp_error(
            i,
            DropReason::MtuFragNeeded,
            IcmpKind::FragNeeded,
            inner_mtu as u16,
        );
        return false;
    }
    if tunnel.tcp_mss_clamp {
        let buf = ctx.pool.bytes_mut(&d);
        clamp_tcp_mss(ctx.stats, &mut buf[ETH..ETH + total], inner_mtu);
    }
    {
        let buf = ctx.pool.bytes_mut(&d);
        if !m.local_origin {
            ipv4::Packet::new_unchecked(&mut buf[ETH..]).decrement_ttl();
        }
        let mut f = ethernet::Frame::new_unchecked(&mut buf[..]);
        f.set_dst_addr(ep.mac);
        f.set_src_addr(net.gateway_mac);
        f.set_ethertype(ethertype::IPV4);
    }
    let out = super::Meta {
        tx_port: port,
        nexthop,
        local_origin: true,
        ..m
    };
    if total <= inner_mtu {
        let mut d = d;
        if !encapsulate(ctx, &mut d, &tunnel, vni, chassis) {
            b.drop(i, DropReason::GeneveNoUnderlayRoute);
            return false;
        }
        b.desc[i] = d;
        b.meta[i] = out;
        b.set_next(i, Next::Rewrite);
        return true;
    }
    // Without DF (RFC 791 section 3.2): fragment the inner datagram, then encapsulate each
    // fragment, so the underlay never fragments.
    if inner_mtu < hl + 8 {
        b.drop(i, DropReason::GeneveNoUnderlayRoute);
        return false;
    }
    let mut frags = [Desc::default(); super::rewrite::MAX_FRAGMENTS];
    b.set_next(i, Next::Consumed);
    let Some(n) = super::rewrite::split(ctx, d, inner_mtu, &mut frags) else {
        return false;
    };
    for (k, f) in frags[..n].iter().enumerate() {
        let mut f = *f;
        if !encapsulate(ctx, &mut f, &tunnel, vni, chassis) {
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
    true
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
    if !d.push_front(ENCAP_OVERHEAD_IPV4) {
        return false;
    }
    let buf = ctx.pool.bytes_mut(d);
    ethernet::Frame::new_unchecked(&mut buf[..]).set_ethertype(ethertype::IPV4);
    let udp_len = udp::HEADER_LEN + geneve::HEADER_LEN + inner_len;
    let ip_len = ipv4::HEADER_LEN + udp_len;
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut buf[ETH..ETH + ipv4::HEADER_LEN]);
        ip.set_version_ihl(ipv4::HEADER_LEN);
        ip.set_dscp_ecn(0);
        ip.set_total_len(ip_len as u16);
        // An atomic datagram (DF set, never fragmented): identification zero (RFC 6864
        // section 4.1).
        ip.set_ident(0);
        ip.set_flags_offset(true, false, 0);
        ip.set_ttl(OUTER_TTL);
        ip.set_protocol(ipv4::protocol::UDP);
        ip.set_src_addr(std::net::Ipv4Addr::from_bits(tunnel.local));
        ip.set_dst_addr(std::net::Ipv4Addr::from_bits(chassis));
        ip.fill_checksum();
    }
    let l4 = ETH + ipv4::HEADER_LEN;
    geneve::Repr {
        vni,
        protocol: PROTO_ETHERNET,
        oam: false,
        critical: false,
        options_len: 0,
    }
    .emit(&mut geneve::Packet::new_unchecked(
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
