//! NAT: floating IPs (stateless 1:1, OVN `dnat_and_snat`) and SNAT (PAT).
//!
//! `nat_in` runs before the route lookup: packets to a floating IP have their destination
//! rewritten to the internal address (DNAT); packets to an SNAT address are matched to their
//! session by external port and rewritten back (un-SNAT). `nat_out` runs after it, when the
//! egress is known: packets from a tenant network leaving toward a non-tenant destination
//! get the floating IP as source, or a session of their network's SNAT rule.
//!
//! Checksums are patched incrementally (RFC 1624). ICMP errors about a translated flow have
//! the embedded header translated too (RFC 5508 section 4.2, RFC 7857 section 3.4 behaviour),
//! so traceroute and path-MTU discovery work through a floating IP and through SNAT.

use super::{Batch, Ctx, Next, bits};
use crate::metrics::DropReason;
use crate::tables::nat::{Proto, SnatError, port_owner};
use crate::wire::ethernet::HEADER_LEN as ETH;
use crate::wire::{checksum, icmp, ipv4, tcp, udp};

/// Which address of a packet a translation rewrites.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Src,
    Dst,
}

/// Byte offsets of the L4 checksum for TCP/UDP at the start of an L4 header.
const TCP_CSUM: usize = 16;
const UDP_CSUM: usize = 6;

/// Rewrite the source or destination address of the IPv4 packet at `l3` and patch the IP
/// header and (first-fragment) TCP/UDP checksums. Returns the old address.
#[inline]
fn rewrite_addr(l3: &mut [u8], side: Side, new: u32) -> u32 {
    let mut ip = ipv4::Packet::new_unchecked(&mut l3[..]);
    let old = match side {
        Side::Src => ip.rewrite_src(new),
        Side::Dst => ip.rewrite_dst(new),
    };
    if ip.frag_offset() == 0 {
        let hl = ip.header_len();
        let total = ip.total_len() as usize;
        let proto = l3_protocol(l3);
        patch_l4(&mut l3[hl..total], proto, old, new, None);
    }
    old
}

#[inline]
fn l3_protocol(l3: &[u8]) -> u8 {
    l3[9]
}

/// Patch a TCP/UDP checksum in `l4` (which may be a truncated quote) for an address change
/// and optionally a port change `(offset, old, new)`.
#[inline]
fn patch_l4(l4: &mut [u8], proto: u8, old: u32, new: u32, port: Option<(usize, u16, u16)>) {
    let at = match proto {
        ipv4::protocol::TCP => TCP_CSUM,
        ipv4::protocol::UDP => UDP_CSUM,
        _ => return,
    };
    if l4.len() < at + 2 {
        return;
    }
    let c = u16::from_be_bytes([l4[at], l4[at + 1]]);
    if proto == ipv4::protocol::UDP && c == 0 {
        return; // no checksum (RFC 768)
    }
    let mut n = checksum::update32(c, old, new);
    if let Some((_, o, p)) = port {
        n = checksum::update16(n, o, p);
    }
    if proto == ipv4::protocol::UDP && n == 0 {
        n = 0xffff;
    }
    l4[at..at + 2].copy_from_slice(&n.to_be_bytes());
    if let Some((off, _, p)) = port
        && l4.len() >= off + 2
    {
        l4[off..off + 2].copy_from_slice(&p.to_be_bytes());
    }
}

/// The L4 "port" used as the NAT key: TCP/UDP port at `off` (0: source, 2: destination),
/// or the ICMP echo identifier.
#[inline]
fn key_port(l4: &[u8], proto: Proto, off: usize) -> Option<u16> {
    match proto {
        Proto::Tcp | Proto::Udp => {
            (l4.len() >= off + 2).then(|| u16::from_be_bytes([l4[off], l4[off + 1]]))
        }
        Proto::Icmp => (l4.len() >= 8).then(|| u16::from_be_bytes([l4[4], l4[5]])),
    }
}

/// The transport header and payload of the IPv4 packet at `l3`: up to its total length,
/// so trailing Ethernet padding is never read as a header.
fn l4_of(l3: &[u8], hl: usize) -> &[u8] {
    let total = ipv4::Packet::new_unchecked(l3).total_len() as usize;
    l3.get(hl..total).unwrap_or(&[])
}

/// The port (or echo identifier) at `off` of a packet whose own header NAT rewrites: None
/// unless `l4` holds the whole header whose port and checksum [`set_port`] patches.
fn own_port(l4: &[u8], proto: Proto, off: usize) -> Option<u16> {
    let header = match proto {
        Proto::Tcp => tcp::HEADER_LEN,
        Proto::Udp => udp::HEADER_LEN,
        Proto::Icmp => icmp::HEADER_LEN,
    };
    if l4.len() < header {
        return None;
    }
    key_port(l4, proto, off)
}

/// Recompute the ICMP checksum over the whole message (after its quote changed).
fn refill_icmp(l3: &mut [u8]) {
    let ip = ipv4::Packet::new_unchecked(&l3[..]);
    let (hl, total) = (ip.header_len(), ip.total_len() as usize);
    icmp::Packet::new_unchecked(&mut l3[hl..total]).fill_checksum();
}

/// The quoted datagram of an ICMP error: (offset in l3, header length), when complete
/// enough to translate (the quoted IPv4 header and at least 8 bytes, RFC 792).
fn quote(l3: &[u8]) -> Option<(usize, usize)> {
    let ip = ipv4::Packet::new_unchecked(l3);
    let (hl, total) = (ip.header_len(), ip.total_len() as usize);
    if ip.protocol() != ipv4::protocol::ICMP || total < hl + icmp::HEADER_LEN + 20 {
        return None;
    }
    let t = l3[hl];
    if !icmp::is_error_type(t) {
        return None;
    }
    let q = hl + icmp::HEADER_LEN;
    let qhl = usize::from(l3[q] & 0x0f) * 4;
    (l3[q] >> 4 == 4 && qhl >= 20 && q + qhl <= total).then_some((q, qhl))
}

/// Translate the datagram quoted in an ICMP error: address `side` becomes `new`, and the
/// quoted L4 port (source port for `Side::Src`) becomes `port` if given. The ICMP checksum
/// is recomputed.
fn translate_quote(l3: &mut [u8], side: Side, new: u32, port: Option<u16>) -> bool {
    let Some((q, qhl)) = quote(l3) else {
        return false;
    };
    let total = ipv4::Packet::new_unchecked(&l3[..]).total_len() as usize;
    let qproto = l3[q + 9];
    let old = {
        let mut qip = ipv4::Packet::new_unchecked(&mut l3[q..total]);
        match side {
            Side::Src => qip.rewrite_src(new),
            Side::Dst => qip.rewrite_dst(new),
        }
    };
    let l4 = &mut l3[q + qhl..total];
    let port_off = if side == Side::Src { 0 } else { 2 };
    match (qproto, port) {
        (ipv4::protocol::TCP | ipv4::protocol::UDP, Some(p)) if l4.len() >= port_off + 2 => {
            let o = u16::from_be_bytes([l4[port_off], l4[port_off + 1]]);
            patch_l4(l4, qproto, old, new, Some((port_off, o, p)));
        }
        (ipv4::protocol::ICMP, Some(p)) if l4.len() >= 8 => {
            // The quoted echo's identifier (its checksum covers only itself).
            let o = u16::from_be_bytes([l4[4], l4[5]]);
            l4[4..6].copy_from_slice(&p.to_be_bytes());
            let c = u16::from_be_bytes([l4[2], l4[3]]);
            l4[2..4].copy_from_slice(&checksum::update16(c, o, p).to_be_bytes());
        }
        _ => patch_l4(l4, qproto, old, new, None),
    }
    refill_icmp(l3);
    true
}

/// Before routing: DNAT to floating IPs, un-SNAT return traffic.
pub fn run_in(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    let snap = ctx.snap;
    for i in bits(mask) {
        b.set_next(i, Next::Route);
        let d = b.desc[i];
        let l3 = &mut ctx.pool.bytes_mut(&d)[ETH..];
        let (dst, ttl) = {
            let ip = ipv4::Packet::new_unchecked(&l3[..]);
            (ip.dst_u32(), ip.ttl())
        };
        // Route reads the destination and TTL from the batch (packets handed over by another
        // worker enter here without them).
        b.dst[i] = dst;
        b.meta[i].ttl = ttl;

        // Floating IP: stateless DNAT; an ICMP error's quote carries our source E.
        if let Some(&fi) = snap.fip_by_external.get(&dst) {
            let f = snap.fips[fi as usize];
            rewrite_addr(l3, Side::Dst, f.internal);
            translate_quote(l3, Side::Src, f.internal, None);
            b.dst[i] = f.internal;
            b.meta[i].nat_done = true;
            ctx.stats.fip_in[f.slot as usize].add(1);
            continue;
        }

        // SNAT return traffic.
        let Some(&ri) = snap.snat_by_external.get(&dst) else {
            continue;
        };
        let ri = usize::from(ri);
        let rule = &snap.snat[ri];
        let proto_num = ipv4::Packet::new_unchecked(&l3[..]).protocol();
        let hl = ipv4::Packet::new_unchecked(&l3[..]).header_len();
        let is_local = snap.is_local(dst);
        let Some((proto, port, err)) = return_key(l3, proto_num, hl) else {
            no_session(b, i, is_local);
            continue;
        };
        let owner = port_owner(&rule.params, ctx.state.workers, port);
        match owner {
            Some(w) if w != ctx.state.worker => {
                b.meta[i].handoff_to = w as u8;
                b.set_next(i, Next::Handoff);
                continue;
            }
            None => {
                no_session(b, i, is_local);
                continue;
            }
            Some(_) => {}
        }
        let flags = if proto == Proto::Tcp && !err && l3.len() >= hl + 14 {
            l3[hl + 13]
        } else {
            0
        };
        let Some(table) = ctx.state.snat.get_mut(ri).and_then(|t| t.as_mut()) else {
            no_session(b, i, is_local);
            continue;
        };
        let Some((in_ip, in_port)) = table.inbound(proto, port, flags, ctx.now) else {
            no_session(b, i, is_local);
            continue;
        };
        rewrite_addr(l3, Side::Dst, in_ip);
        b.dst[i] = in_ip;
        if err {
            translate_quote(l3, Side::Src, in_ip, Some(in_port));
        } else {
            set_port(l3, proto, Side::Dst, port, in_port);
        }
        b.meta[i].nat_done = true;
    }
}

/// The session key of a packet to an SNAT address: (protocol, external port, is an ICMP
/// error). The destination port, the echo reply's identifier, or for an ICMP error the
/// quoted packet's source port. None when the packet cannot belong to a session.
fn return_key(l3: &[u8], proto_num: u8, hl: usize) -> Option<(Proto, u16, bool)> {
    match Proto::from_ip(proto_num)? {
        Proto::Icmp => {
            if let Some((q, qhl)) = quote(l3) {
                let qp = Proto::from_ip(l3[q + 9])?;
                return key_port(&l3[q + qhl..], qp, 0).map(|p| (qp, p, true));
            }
            // Only echo replies belong to a session.
            let l4 = l4_of(l3, hl);
            if l4.first() != Some(&icmp::msg::ECHO_REPLY) {
                return None;
            }
            own_port(l4, Proto::Icmp, 0).map(|id| (Proto::Icmp, id, false))
        }
        p => {
            if ipv4::Packet::new_unchecked(l3).is_fragment() {
                return None;
            }
            own_port(l4_of(l3, hl), p, 2).map(|port| (p, port, false))
        }
    }
}

/// A packet to an SNAT address without a session: vgate's own traffic if the address is
/// one of its own, else dropped.
#[inline]
fn no_session(b: &mut Batch, i: usize, is_local: bool) {
    if !is_local {
        b.drop(i, DropReason::NatNoSession);
    }
}

/// Rewrite the TCP/UDP port (or ICMP echo identifier) on `side` from `old` to `new`.
#[inline]
fn set_port(l3: &mut [u8], proto: Proto, side: Side, old: u16, new: u16) {
    let hl = ipv4::Packet::new_unchecked(&l3[..]).header_len();
    let total = ipv4::Packet::new_unchecked(&l3[..]).total_len() as usize;
    let l4 = &mut l3[hl..total];
    match proto {
        Proto::Tcp => {
            let mut t = tcp::Packet::new_unchecked(l4);
            match side {
                Side::Src => t.set_src_port(new),
                Side::Dst => t.set_dst_port(new),
            }
            t.patch_checksum16(old, new);
        }
        Proto::Udp => {
            let mut u = udp::Packet::new_unchecked(l4);
            match side {
                Side::Src => u.set_src_port(new),
                Side::Dst => u.set_dst_port(new),
            }
            u.patch_checksum16(old, new);
        }
        Proto::Icmp => {
            let mut m = icmp::Packet::new_unchecked(l4);
            m.set_echo_ident(new);
            m.patch_checksum16(old, new);
        }
    }
}

/// After routing: source translation for tenant traffic leaving toward the outside.
pub fn run_out(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    let snap = ctx.snap;
    for i in bits(mask) {
        b.set_next(i, Next::Rewrite);
        let m = b.meta[i];
        if m.nat_done {
            continue;
        }
        let d = b.desc[i];
        let l3 = &mut ctx.pool.bytes_mut(&d)[ETH..];
        let (src, dst) = {
            let ip = ipv4::Packet::new_unchecked(&l3[..]);
            (ip.src_u32(), ip.dst_u32())
        };
        if m.local_origin {
            // vgate's own ICMP error about a packet it had DNATed: quote the original
            // destination (the floating IP), so the sender matches it to its flow.
            if let Some((q, _)) = quote(l3) {
                let qdst = u32::from_be_bytes([l3[q + 16], l3[q + 17], l3[q + 18], l3[q + 19]]);
                if let Some(&fi) = snap.fip_by_internal.get(&qdst) {
                    translate_quote(l3, Side::Dst, snap.fips[fi as usize].external, None);
                }
            }
            continue;
        }
        // Only tenant sources leaving the tenant networks are translated.
        if snap.network_of(dst).is_some() {
            continue;
        }
        if let Some(&fi) = snap.fip_by_internal.get(&src) {
            let f = snap.fips[fi as usize];
            rewrite_addr(l3, Side::Src, f.external);
            translate_quote(l3, Side::Dst, f.external, None);
            ctx.stats.fip_out[f.slot as usize].add(1);
            continue;
        }
        let Some(net) = snap.network_of(src) else {
            continue;
        };
        let Some(ri) = snap.networks[net as usize].snat else {
            continue;
        };
        let ext = snap.snat[ri as usize].params.external;
        let ip = ipv4::Packet::new_unchecked(&l3[..]);
        let (proto_num, hl, frag) = (ip.protocol(), ip.header_len(), ip.is_fragment());
        let Some(proto) = Proto::from_ip(proto_num) else {
            b.drop(i, DropReason::NatUnsupportedProtocol);
            continue;
        };
        if frag {
            // Non-first fragments carry no ports; vgate does not reassemble.
            b.drop(i, DropReason::NatFragment);
            continue;
        }
        if proto == Proto::Icmp {
            let t = l3.get(hl).copied().unwrap_or(0xff);
            if icmp::is_error_type(t) {
                // An error from a tenant host about an inbound packet: the quote's
                // destination is the inside endpoint of a session.
                if let Some((q, qhl)) = quote(l3)
                    && let Some(qp) = Proto::from_ip(l3[q + 9])
                    && let Some(qport) = key_port(&l3[q + qhl..], qp, 2)
                    && let Some(Some(table)) = ctx.state.snat.get_mut(ri as usize)
                    && let Some(ext_port) = table.lookup_outbound(qp, src, qport, ctx.now)
                {
                    rewrite_addr(l3, Side::Src, ext);
                    translate_quote(l3, Side::Dst, ext, Some(ext_port));
                    continue;
                }
                b.drop(i, DropReason::NatNoSession);
                continue;
            }
            if t != icmp::msg::ECHO_REQUEST {
                b.drop(i, DropReason::NatUnsupportedProtocol);
                continue;
            }
        }
        let Some(port) = own_port(l4_of(l3, hl), proto, 0) else {
            b.drop(i, DropReason::NatUnsupportedProtocol);
            continue;
        };
        let flags = if proto == Proto::Tcp && l3.len() >= hl + 14 {
            l3[hl + 13]
        } else {
            0
        };
        let Some(Some(table)) = ctx.state.snat.get_mut(ri as usize) else {
            b.drop(i, DropReason::NatNoSession);
            continue;
        };
        match table.outbound(proto, src, port, flags, ctx.now) {
            Ok(ext_port) => {
                rewrite_addr(l3, Side::Src, ext);
                set_port(l3, proto, Side::Src, port, ext_port);
            }
            Err(SnatError::PortsExhausted) => {
                ctx.stats.nat_port_exhausted.add(1);
                b.drop(i, DropReason::NatPortExhausted);
            }
            Err(SnatError::TableFull) => b.drop(i, DropReason::NatSessionTableFull),
        }
    }
}
