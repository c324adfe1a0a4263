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

use super::{Batch, Ctx, MAX_BATCH, Next, bits};
use crate::metrics::{DropReason, WorkerStats};
use crate::tables::nat::{Proto, SnatError, inside_key, port_owner};
use crate::tables::reass::{DatagramKey, HeldFragment, Later, Translation};
use crate::tables::{NAT_SNAT, Snapshot};
use crate::wire::checksum::{AddrSums, TTL_DOWN_NE};
use crate::wire::ethernet::HEADER_LEN as ETH;
use crate::wire::{checksum, icmp, ipv4, tcp, udp};

/// Which address of a packet a translation rewrites.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Src,
    Dst,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Src => Side::Dst,
            Side::Dst => Side::Src,
        }
    }
}

/// Byte offsets of the L4 checksum for TCP/UDP at the start of an L4 header.
const TCP_CSUM: usize = 16;
const UDP_CSUM: usize = 6;

/// The checksum `c` updated by an unfolded `delta` (RFC 1624 eqn. 3).
#[inline(always)]
fn apply(c: u16, delta: u32) -> u16 {
    !checksum::fold(u32::from(!c) + delta)
}

#[inline(always)]
fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The 16 bits at `at` in the machine's byte order: checksum arithmetic in memory order
/// ([`checksum::delta32_ne`]).
#[inline(always)]
fn get16_ne(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

/// The sums an address change updates the checksums with: computed for the packet (`u32`,
/// [`checksum::delta32_ne`], unfolded) or a floating IP's, folded when the snapshot is built
/// ([`AddrSums`]). Either way in memory order.
trait Sums: Copy {
    /// The IP header checksum `c`, with `FORWARD` for the TTL decrement too.
    fn ip<const FORWARD: bool>(self, c: u16) -> u16;
    /// A TCP/UDP checksum `c`.
    fn l4(self, c: u16) -> u16;
    /// The address sum unfolded, to add a port change to.
    fn unfolded(self) -> u32;
}

impl Sums for u32 {
    #[inline(always)]
    fn ip<const FORWARD: bool>(self, c: u16) -> u16 {
        apply(c, if FORWARD { self + TTL_DOWN_NE } else { self })
    }
    #[inline(always)]
    fn l4(self, c: u16) -> u16 {
        apply(c, self)
    }
    #[inline(always)]
    fn unfolded(self) -> u32 {
        self
    }
}

impl Sums for AddrSums {
    #[inline(always)]
    fn ip<const FORWARD: bool>(self, c: u16) -> u16 {
        checksum::apply16(c, if FORWARD { self.addr_ttl } else { self.addr })
    }
    #[inline(always)]
    fn l4(self, c: u16) -> u16 {
        checksum::apply16(c, self.addr)
    }
    #[inline(always)]
    fn unfolded(self) -> u32 {
        u32::from(self.addr)
    }
}

/// Rewrite the source or destination address of the IPv4 packet `l3` (checked by
/// ip4_input, trimmed to its total length) to `addr`, and with `port = Some((old, new))` the
/// TCP/UDP port on the same side or the ICMP echo identifier. The IP header checksum and, in
/// a first fragment, the TCP/UDP checksum (its pseudo-header holds the address, RFC 793
/// section 3.1, RFC 768) are patched incrementally, each once (RFC 1624). Returns the old
/// address.
#[inline(always)]
pub(super) fn translate(l3: &mut [u8], side: Side, addr: u32, port: Option<(u16, u16)>) -> u32 {
    translate_as::<false>(l3, side, addr, port)
}

/// [`translate`], and with `FORWARD` (the fast path: an option-less header, TTL above 1)
/// also rewrite's TTL decrement, in the same IP checksum update: one RFC 1624 update for
/// both changes gives the bytes two give (eqn. 3 never yields a negative zero from a
/// non-zero sum).
#[inline(always)]
pub(super) fn translate_as<const FORWARD: bool>(
    l3: &mut [u8],
    side: Side,
    addr: u32,
    port: Option<(u16, u16)>,
) -> u32 {
    let Some(h) = l3.first_chunk::<{ ipv4::HEADER_LEN }>() else {
        return 0;
    };
    let a = match side {
        Side::Src => 12,
        Side::Dst => 16,
    };
    let old = u32::from_be_bytes([h[a], h[a + 1], h[a + 2], h[a + 3]]);
    rewrite_as::<FORWARD>(l3, side, addr, checksum::delta32_ne(old, addr), port);
    old
}

/// [`translate_as`] for an address change whose RFC 1624 sums `d` are known ([`Sums`]). The
/// checksums are read, updated and written in memory order: no byte swaps.
#[inline(always)]
fn rewrite_as<const FORWARD: bool>(
    l3: &mut [u8],
    side: Side,
    addr: u32,
    d: impl Sums,
    port: Option<(u16, u16)>,
) {
    let (a, p) = match side {
        Side::Src => (12, 0),
        Side::Dst => (16, 2),
    };
    let Some(h) = l3.first_chunk_mut::<{ ipv4::HEADER_LEN }>() else {
        return;
    };
    h[a..a + 4].copy_from_slice(&addr.to_be_bytes());
    if FORWARD {
        h[8] -= 1;
    }
    let c = d.ip::<FORWARD>(get16_ne(h, 10));
    h[10..12].copy_from_slice(&c.to_ne_bytes());
    let hl = if FORWARD {
        ipv4::HEADER_LEN
    } else {
        usize::from(h[0] & 0x0f) * 4
    };
    let (proto, frag) = (h[9], get16(h, 6) & 0x1fff);
    if frag != 0 {
        return; // no L4 header in a later fragment
    }
    let Some(l4) = l3.get_mut(hl..) else {
        return;
    };
    let at = match proto {
        ipv4::protocol::TCP => TCP_CSUM,
        ipv4::protocol::UDP => UDP_CSUM,
        ipv4::protocol::ICMP => {
            // No pseudo-header: only the echo identifier changes the ICMP checksum.
            if let Some((o, n)) = port
                && l4.len() >= 8
            {
                let mut m = icmp::Packet::new_unchecked(&mut l4[..]);
                m.set_echo_ident(n);
                m.patch_checksum16(o, n);
            }
            return;
        }
        _ => return,
    };
    if l4.len() < at + 2 {
        return;
    }
    let mut d_port = None;
    if let Some((o, n)) = port {
        l4[p..p + 2].copy_from_slice(&n.to_be_bytes());
        d_port = Some(d.unfolded() + u32::from(!o.to_be()) + u32::from(n.to_be()));
    }
    // Zero and all ones read the same in either byte order.
    let c = get16_ne(l4, at);
    if proto == ipv4::protocol::UDP && c == 0 {
        return; // no checksum (RFC 768)
    }
    let mut n = match d_port {
        Some(d) => apply(c, d),
        None => d.l4(c),
    };
    if proto == ipv4::protocol::UDP && n == 0 {
        n = 0xffff; // a computed zero is sent as all ones (RFC 768)
    }
    l4[at..at + 2].copy_from_slice(&n.to_ne_bytes());
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
/// unless `l4` holds the whole header whose port and checksum [`translate`] patches.
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

/// A floating IP's stateless translation of address `side` of `l3` (protocol `proto`) to
/// `addr`, from the floating IP's other address, whose RFC 1624 sums are `sums`
/// ([`FipEntry::sums_in`](crate::tables::FipEntry::sums_in) or `sums_out`); an ICMP
/// error's quote gets the other side translated to match (RFC 5508). With `FORWARD`,
/// rewrite's TTL decrement too ([`translate_as`]).
#[inline(always)]
fn translate_fip_as<const FORWARD: bool>(
    l3: &mut [u8],
    side: Side,
    addr: u32,
    sums: AddrSums,
    proto: u8,
) {
    rewrite_as::<FORWARD>(l3, side, addr, sums, None);
    if proto == ipv4::protocol::ICMP {
        translate_quote(l3, side.other(), addr, None);
    }
}

/// The span of addresses the tenant networks cover (their subnets sorted by start, never
/// overlapping): most destinations are outside it and need no search.
#[derive(Clone, Copy)]
pub(super) struct TenantSpan(u32, u32);

impl TenantSpan {
    pub(super) fn new(snap: &Snapshot) -> TenantSpan {
        match snap.network_ranges.span() {
            Some((first, last)) => TenantSpan(first, last),
            None => TenantSpan(1, 0),
        }
    }

    /// True when `ip` is in a tenant network.
    #[inline(always)]
    pub(super) fn holds(self, snap: &Snapshot, ip: u32) -> bool {
        (self.0..=self.1).contains(&ip) && snap.network_of(ip).is_some()
    }
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

/// nat_in's decision for a packet from `src` to `dst`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Inbound {
    /// Nothing to translate.
    None,
    /// From one of vgate's floating IPs or SNAT addresses: dropped as
    /// [`DropReason::NatSpoofedSource`].
    Spoofed,
    /// To floating IP `x` (an index into [`Snapshot::fips`]): DNAT.
    Fip(u16),
    /// To the external address of SNAT rule `r`: return traffic of one of its sessions.
    Snat(usize),
}

/// nat_in's decision. Ingress filtering (RFC 2827) first: only vgate sends from its
/// floating IPs and SNAT addresses, and its own packets never enter here; forwarded, such a
/// packet would reach a tenant disguised as translated traffic of another tenant. The
/// stage and the fast path both decide by this.
#[inline(always)]
pub(super) fn inbound(snap: &Snapshot, src: u32, dst: u32) -> Inbound {
    // Exact behind the filter: with 80 NAT addresses 2 % of sources hit the filter alone.
    if snap.nat_sources.contains(src) {
        return Inbound::Spoofed;
    }
    match snap.nat_by_external.lookup(dst) {
        None => Inbound::None,
        Some(x) if x & NAT_SNAT == 0 => Inbound::Fip(x),
        Some(x) => Inbound::Snat(usize::from(x & !NAT_SNAT)),
    }
}

/// nat_out's decision for a packet from `src` to `dst` that was not translated inbound.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Outbound {
    /// Nothing to translate.
    None,
    /// From floating IP `x`'s internal address: SNAT to its external one.
    Fip(u16),
    /// From a network with SNAT rule `r`: a session of that rule.
    Snat(u16),
}

/// nat_out's decision: only tenant sources leaving the tenant networks are translated, by
/// their floating IP if they have one, else by their network's SNAT rule. It needs nothing
/// from route, so the fast path makes it before routing. The stage and the fast path both
/// decide by this.
#[inline(always)]
pub(super) fn outbound(snap: &Snapshot, tenants: TenantSpan, src: u32, dst: u32) -> Outbound {
    if tenants.holds(snap, dst) {
        return Outbound::None;
    }
    if let Some(x) = snap.fip_by_internal.lookup(src) {
        return Outbound::Fip(x);
    }
    match snap
        .network_of(src)
        .and_then(|n| snap.networks[usize::from(n)].snat)
    {
        Some(r) => Outbound::Snat(r),
        None => Outbound::None,
    }
}

/// The source translation a packet translated inbound (DNAT to a floating IP's internal
/// address, or un-SNAT) also needs when its source is a tenant host (hairpin: a VM reaching
/// a floating IP, its own or another's, or another network's SNAT address): without it the
/// destination would answer the VM's own address directly, and the VM, which spoke to the
/// floating IP, would drop the answer. The source leaves as nat_out would translate it
/// leaving vgate (its floating IP, else its network's SNAT rule), so the answer comes back
/// through vgate and is translated both ways. Only for a packet that arrived from the
/// source's own network (its flat port, or its VNI): a packet from outside claiming a tenant
/// address is not translated. The stage and the fast path (which leaves such packets to
/// the stages) both decide by this.
#[inline]
pub(super) fn hairpin(snap: &Snapshot, m: &super::Meta, src: u32) -> Outbound {
    let Some(n) = snap.network_of(src) else {
        return Outbound::None;
    };
    let Some(net) = snap.networks.get(usize::from(n)) else {
        return Outbound::None;
    };
    let from_it = match net.port {
        Some(p) => m.rx_port == p && m.vni_net == 0,
        None => usize::from(m.vni_net) == usize::from(n) + 1,
    };
    if !from_it {
        return Outbound::None;
    }
    if let Some(x) = snap.fip_by_internal.lookup(src) {
        return Outbound::Fip(x);
    }
    match net.snat {
        Some(r) => Outbound::Snat(r),
        None => Outbound::None,
    }
}

/// Floating IP `x`'s DNAT of the trimmed datagram `l3` of protocol `proto`, counted; with
/// `FORWARD`, rewrite's TTL decrement too ([`translate_as`]). Returns the internal address.
#[inline(always)]
pub(super) fn fip_dnat<const FORWARD: bool>(
    snap: &Snapshot,
    stats: &WorkerStats,
    l3: &mut [u8],
    x: u16,
    proto: u8,
) -> u32 {
    let f = &snap.fips[usize::from(x)];
    translate_fip_as::<FORWARD>(l3, Side::Dst, f.internal, f.sums_in, proto);
    stats.fip_in[usize::from(f.slot)].add(1);
    f.internal
}

/// Floating IP `x`'s SNAT of the trimmed datagram `l3` of protocol `proto`, counted; with
/// `FORWARD`, rewrite's TTL decrement too.
#[inline(always)]
pub(super) fn fip_snat<const FORWARD: bool>(
    snap: &Snapshot,
    stats: &WorkerStats,
    l3: &mut [u8],
    x: u16,
    proto: u8,
) {
    let f = &snap.fips[usize::from(x)];
    translate_fip_as::<FORWARD>(l3, Side::Src, f.external, f.sums_out, proto);
    stats.fip_out[usize::from(f.slot)].add(1);
}

/// An SNAT session's translation of the outbound datagram `l3` whose session key is `key`
/// ([`inside_key`]): the source becomes `ext` and the source port (or echo identifier)
/// `ext_port`; with `FORWARD`, rewrite's TTL decrement too.
#[inline(always)]
pub(super) fn snat_out<const FORWARD: bool>(l3: &mut [u8], key: u64, ext: u32, ext_port: u16) {
    translate_as::<FORWARD>(l3, Side::Src, ext, Some(((key >> 32) as u16, ext_port)));
}

/// The TCP flags an SNAT session's state follows, of a datagram `l3` with a header of `hl`
/// bytes; 0 for other protocols.
#[inline(always)]
pub(super) fn tcp_flags(l3: &[u8], hl: usize, proto: Proto) -> u8 {
    match l3.get(hl + 13) {
        Some(&f) if proto == Proto::Tcp => f,
        _ => 0,
    }
}

/// Before routing: DNAT to floating IPs, un-SNAT return traffic.
pub fn run_in(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    let snap = ctx.snap;
    // Everything goes on to route; the few packets handed off or dropped below are moved
    // one by one.
    b.set_next_mask(Next::NatIn, mask, Next::Route);
    for i in bits(mask) {
        let d = b.desc[i];
        let l3 = &mut ctx.pool.bytes_mut(&d)[ETH..];
        let Some(h) = l3.first_chunk::<{ ipv4::HEADER_LEN }>() else {
            continue;
        };
        let (src, dst, ttl, proto_num) = (
            u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
            u32::from_be_bytes([h[16], h[17], h[18], h[19]]),
            h[8],
            h[9],
        );
        // Route reads the destination and TTL from the batch (packets handed over by another
        // worker enter here without them).
        b.dst[i] = dst;
        b.meta[i].ttl = ttl;

        match inbound(snap, src, dst) {
            Inbound::None => {}
            Inbound::Spoofed => b.drop(i, DropReason::NatSpoofedSource),
            // Floating IP: stateless DNAT; an ICMP error's quote carries our source E.
            Inbound::Fip(x) => {
                b.dst[i] = fip_dnat::<false>(snap, ctx.stats, l3, x, proto_num);
                b.meta[i].nat_done = true;
            }
            Inbound::Snat(ri) => snat_in(ctx, b, i, ri, dst, proto_num),
        }
    }
}

/// Un-SNAT packet `i`, sent to the external address of rule `ri`: find its session (or the
/// worker that owns it) and rewrite the destination back to the inside endpoint.
#[inline]
fn snat_in(ctx: &mut Ctx, b: &mut Batch, i: usize, ri: usize, dst: u32, proto_num: u8) {
    let snap = ctx.snap;
    let rule = &snap.snat[ri];
    let l3 = &mut ctx.pool.bytes_mut(&b.desc[i])[ETH..];
    let hl = usize::from(l3[0] & 0x0f) * 4;
    let (id, frag) = (get16(l3, 4), get16(l3, 6));
    let src = u32::from_be_bytes([l3[12], l3[13], l3[14], l3[15]]);
    let datagram = DatagramKey::new(src, dst, id, proto_num, true);
    if frag & 0x1fff != 0 {
        // A later fragment: no ports; the first fragment's translation.
        later_fragment(ctx, b, i, datagram);
        return;
    }
    let first_fragment = frag & 0x2000 != 0;
    let Some((proto, port, err)) = return_key(l3, proto_num, hl) else {
        no_session(snap, b, i, dst);
        return;
    };
    match port_owner(&rule.params, ctx.state.workers, port) {
        Some(w) if w != ctx.state.worker => {
            b.meta[i].handoff_to = w as u8;
            b.set_next(i, Next::Handoff);
            if first_fragment {
                // Its later fragments follow it to that worker.
                ctx.state
                    .reass
                    .first(datagram, Translation::Worker(w as u8), ctx.now);
            }
            return;
        }
        None => {
            no_session(snap, b, i, dst);
            return;
        }
        Some(_) => {}
    }
    let flags = if err { 0 } else { tcp_flags(l3, hl, proto) };
    let Some(table) = ctx.state.snat.get_mut(ri).and_then(|t| t.as_mut()) else {
        no_session(snap, b, i, dst);
        return;
    };
    let Some((in_ip, in_port)) = table.inbound(proto, port, flags, ctx.now) else {
        no_session(snap, b, i, dst);
        return;
    };
    b.dst[i] = in_ip;
    if err {
        translate(l3, Side::Dst, in_ip, None);
        translate_quote(l3, Side::Src, in_ip, Some(in_port));
    } else {
        translate(l3, Side::Dst, in_ip, Some((port, in_port)));
    }
    b.meta[i].nat_done = true;
    if first_fragment {
        ctx.state
            .reass
            .first(datagram, Translation::Destination(in_ip), ctx.now);
    }
}

/// A later fragment of an SNAT datagram (`datagram`, as it arrived), leaving or returning:
/// translated as its first fragment was, handed to the worker its first fragment went to,
/// held until its first fragment comes, or dropped when there is no room to hold it.
#[inline(never)]
fn later_fragment(ctx: &mut Ctx, b: &mut Batch, i: usize, datagram: DatagramKey) {
    let m = b.meta[i];
    let held = HeldFragment {
        key: datagram,
        desc: b.desc[i],
        rx_port: m.rx_port,
        vni_net: m.vni_net,
        hops: m.handoff_hops,
    };
    match ctx.state.reass.later(datagram, held, ctx.now) {
        Later::Apply(Translation::Source(ext)) => {
            let l3 = &mut ctx.pool.bytes_mut(&b.desc[i])[ETH..];
            translate(l3, Side::Src, ext, None);
        }
        Later::Apply(Translation::Destination(inside)) => {
            let l3 = &mut ctx.pool.bytes_mut(&b.desc[i])[ETH..];
            translate(l3, Side::Dst, inside, None);
            b.dst[i] = inside;
            b.meta[i].nat_done = true;
        }
        Later::Apply(Translation::Worker(w)) => {
            b.meta[i].handoff_to = w;
            b.set_next(i, Next::Handoff);
        }
        Later::Apply(Translation::Pending) => b.drop(i, DropReason::NatReassemblyFull),
        Later::Held => {
            // The frame is the reassembly table's now.
            b.set_next(i, Next::Consumed);
            ctx.stats.held.set(ctx.state.held_frames());
        }
        Later::Full => b.drop(i, DropReason::NatReassemblyFull),
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
        // Later fragments never get here (snat_in takes them first).
        p => own_port(l4_of(l3, hl), p, 2).map(|port| (p, port, false)),
    }
}

/// A packet to SNAT address `dst` without a session: vgate's own traffic if the address is
/// one of its own, else dropped.
#[inline(never)]
fn no_session(snap: &Snapshot, b: &mut Batch, i: usize, dst: u32) {
    if !snap.is_local(dst) {
        b.drop(i, DropReason::NatNoSession);
    }
}

/// After routing: source translation for tenant traffic leaving toward the outside.
///
/// Two passes over the batch: the first classifies every packet, translates floating-IP
/// traffic and, for SNAT, computes the session key and prefetches its slot; the second looks
/// the sessions up and translates. With a million sessions nearly every slot is a cache miss;
/// issued together, the misses of a batch overlap.
pub fn run_out(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    let snap = ctx.snap;
    b.set_next_mask(Next::NatOut, mask, Next::Rewrite);
    // SNAT packets waiting for their session: rule, inside key, home slot.
    let mut rule = [0u16; MAX_BATCH];
    let mut key = [0u64; MAX_BATCH];
    let mut home = [0usize; MAX_BATCH];
    let mut pending = 0u64;
    // Packets of `pending` that are first fragments: their datagram's translation is kept.
    let mut firsts = 0u64;
    let tenants = TenantSpan::new(snap);
    for i in bits(mask) {
        let m = b.meta[i];
        let d = b.desc[i];
        if m.local_origin {
            if !m.nat_done {
                local_origin_out(snap, &mut ctx.pool.bytes_mut(&d)[ETH..]);
            }
            continue;
        }
        let l3 = &mut ctx.pool.bytes_mut(&d)[ETH..];
        let Some(h) = l3.first_chunk::<{ ipv4::HEADER_LEN }>() else {
            continue;
        };
        let src = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
        let dst = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
        let proto_num = h[9];
        let out = if m.nat_done {
            // Translated inbound already: only a tenant source needs more (hairpin).
            if !tenants.holds(snap, src) {
                continue;
            }
            hairpin(snap, &m, src)
        } else {
            outbound(snap, tenants, src, dst)
        };
        let ri = match out {
            Outbound::None => continue,
            Outbound::Fip(x) => {
                fip_snat::<false>(snap, ctx.stats, l3, x, proto_num);
                continue;
            }
            Outbound::Snat(ri) => ri,
        };
        let Some(Some(table)) = ctx.state.snat.get(usize::from(ri)) else {
            b.drop(i, DropReason::NatNoSession);
            continue;
        };
        match session_key(l3) {
            Ok((proto, port)) => {
                let k = inside_key(proto, src, port);
                let hm = table.hash(k);
                table.prefetch(hm);
                (rule[i], key[i], home[i]) = (ri, k, hm);
                pending |= 1 << i;
                firsts |= u64::from(get16(l3, 6) & 0x2000 != 0) << i;
            }
            Err(SlowOut::Drop(r)) => b.drop(i, r),
            Err(SlowOut::IcmpError) => icmp_error_out(ctx, b, i, usize::from(ri), src),
            Err(SlowOut::Later) => {
                let datagram = DatagramKey::new(src, dst, get16(l3, 4), proto_num, false);
                later_fragment(ctx, b, i, datagram);
            }
        }
    }
    let now = ctx.now;
    for i in bits(pending) {
        let Some(Some(table)) = ctx.state.snat.get_mut(usize::from(rule[i])) else {
            continue;
        };
        let l3 = &mut ctx.pool.bytes_mut(&b.desc[i])[ETH..];
        let hl = usize::from(l3[0] & 0x0f) * 4;
        let k = key[i];
        let proto = match (k >> 48) as u8 {
            1 => Proto::Tcp,
            2 => Proto::Udp,
            _ => Proto::Icmp,
        };
        match table.outbound_hashed(k, home[i], tcp_flags(l3, hl, proto), now) {
            Ok(ext_port) => {
                let ext = snap.snat[usize::from(rule[i])].params.external;
                if firsts & (1 << i) != 0 {
                    // Its later fragments (which carry no ports) get the same source.
                    let h = &l3[..ipv4::HEADER_LEN];
                    let datagram = DatagramKey::new(
                        u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
                        u32::from_be_bytes([h[16], h[17], h[18], h[19]]),
                        get16(h, 4),
                        h[9],
                        false,
                    );
                    ctx.state
                        .reass
                        .first(datagram, Translation::Source(ext), now);
                }
                snat_out::<false>(l3, k, ext, ext_port);
            }
            Err(SnatError::PortsExhausted) => {
                ctx.stats.nat_port_exhausted.add(1);
                b.drop(i, DropReason::NatPortExhausted);
            }
            Err(SnatError::TableFull) => b.drop(i, DropReason::NatSessionTableFull),
        }
    }
}

/// Why an outbound SNAT packet has no session key of its own.
pub(super) enum SlowOut {
    Drop(DropReason),
    /// An ICMP error from a tenant host: translated by the session it is about.
    IcmpError,
    /// A later fragment: translated as its datagram's first fragment was.
    Later,
}

/// The session of an outbound packet from a tenant host: (protocol, source port or echo
/// identifier), read from the IPv4 packet `l3` that ip4_input checked.
#[inline(always)]
pub(super) fn session_key(l3: &[u8]) -> Result<(Proto, u16), SlowOut> {
    let hl = usize::from(l3[0] & 0x0f) * 4;
    session_key_of(l3, hl, l4_of(l3, hl))
}

/// [`session_key`] for the fast path: `l3` has an option-less header (ip4_input's fast
/// check) and is trimmed to its total length, so its transport header and payload are the
/// rest of it.
#[inline(always)]
pub(super) fn session_key_fast(l3: &[u8]) -> Result<(Proto, u16), SlowOut> {
    if get16(l3, 6) & 0x3fff != 0 {
        // Any fragment: the stage keeps its datagram's translation for the others.
        return Err(SlowOut::Later);
    }
    let l4 = l3.get(ipv4::HEADER_LEN..).unwrap_or(&[]);
    session_key_of(l3, ipv4::HEADER_LEN, l4)
}

/// [`session_key`] with the transport header and payload `l4` found by the caller.
#[inline(always)]
fn session_key_of(l3: &[u8], hl: usize, l4: &[u8]) -> Result<(Proto, u16), SlowOut> {
    let Some(proto) = Proto::from_ip(l3[9]) else {
        return Err(SlowOut::Drop(DropReason::NatUnsupportedProtocol));
    };
    let frag = u16::from_be_bytes([l3[6], l3[7]]);
    if frag & 0x1fff != 0 {
        // A later fragment carries no ports (virtual reassembly, tables/reass.rs).
        return Err(SlowOut::Later);
    }
    let first_fragment = frag & 0x2000 != 0;
    if proto == Proto::Icmp {
        let t = l3.get(hl).copied().unwrap_or(0xff);
        if icmp::is_error_type(t) {
            return Err(SlowOut::IcmpError);
        }
        if t != icmp::msg::ECHO_REQUEST {
            return Err(SlowOut::Drop(DropReason::NatUnsupportedProtocol));
        }
    }
    own_port(l4, proto, 0)
        .map(|p| (proto, p))
        .ok_or(SlowOut::Drop(if first_fragment {
            DropReason::NatFragment
        } else {
            DropReason::NatUnsupportedProtocol
        }))
}

/// An ICMP error from tenant host `src` about an inbound packet: the quote's destination is
/// the inside endpoint of a session, whose translation the error gets. The session may be
/// another worker's (the one that received the flow's outbound packets): the error is then
/// handed on round the workers until one has it (at most once to each), and dropped when
/// none has.
#[inline(never)]
fn icmp_error_out(ctx: &mut Ctx, b: &mut Batch, i: usize, ri: usize, src: u32) {
    let ext = ctx.snap.snat[ri].params.external;
    let l3 = &mut ctx.pool.bytes_mut(&b.desc[i])[ETH..];
    if let Some((q, qhl)) = quote(l3)
        && let Some(qp) = Proto::from_ip(l3[q + 9])
        && let Some(qport) = key_port(&l3[q + qhl..], qp, 2)
        && let Some(Some(table)) = ctx.state.snat.get_mut(ri)
        && let Some(ext_port) = table.lookup_outbound(qp, src, qport, ctx.now)
    {
        translate(l3, Side::Src, ext, None);
        translate_quote(l3, Side::Dst, ext, Some(ext_port));
        return;
    }
    let (worker, workers) = (ctx.state.worker, ctx.state.workers);
    let m = &mut b.meta[i];
    if usize::from(m.handoff_hops) + 1 < workers {
        m.handoff_hops += 1;
        m.handoff_to = ((worker + 1) % workers) as u8;
        b.set_next(i, Next::Handoff);
        return;
    }
    b.drop(i, DropReason::NatNoSession);
}

/// vgate's own ICMP error about a packet it had DNATed: quote the original destination (the
/// floating IP), so the sender matches it to its flow.
#[inline(never)]
fn local_origin_out(snap: &Snapshot, l3: &mut [u8]) {
    if let Some((q, _)) = quote(l3) {
        let qdst = u32::from_be_bytes([l3[q + 16], l3[q + 17], l3[q + 18], l3[q + 19]]);
        if let Some(fi) = snap.fip_by_internal.lookup(qdst) {
            translate_quote(l3, Side::Dst, snap.fips[fi as usize].external, None);
        }
    }
}
