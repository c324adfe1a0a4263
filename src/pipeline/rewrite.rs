//! Rewrite: MTU check, TTL decrement (RFC 1812 section 5.3.1, RFC 1624 checksum update)
//! and the Ethernet header for the next hop ([`adjacency`] resolves it); fragmentation on
//! output (RFC 791 section 3.2, RFC 1812 section 5.2.6) for packets without DF.

use super::adjacency::{self, Resolved};
use super::{Batch, Ctx, Next, bits};
use crate::io::Desc;
use crate::metrics::{DropReason, IcmpKind, MAX_PORTS};
use crate::tables::Snapshot;
use crate::tables::neighbor::NeighborTable;
use crate::wire::ethernet::{self, EthernetAddress, HEADER_LEN as ETH, ethertype};
use crate::wire::ipv4;

/// The last next hop resolved in a batch, the Ethernet header it gives and the MTU of its
/// port; the MTU and MAC of the last transmit port seen.
pub(super) struct Cache {
    /// [`hop_key`] of the last next hop, [`NO_HOP`] before the first.
    pub(super) hop: u64,
    pub(super) eth: [u8; ETH],
    pub(super) hop_mtu: u16,
    port: Option<u8>,
    mtu: u16,
    mac: EthernetAddress,
}

impl Cache {
    /// Nothing cached yet.
    pub(super) fn new() -> Cache {
        Cache {
            hop: NO_HOP,
            eth: [0; ETH],
            hop_mtu: 0,
            port: None,
            mtu: 0,
            mac: EthernetAddress::ZERO,
        }
    }
}

pub fn run(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    let mut c = Cache::new();
    let mut not_tx = 0u64;
    for i in bits(mask) {
        let d = b.desc[i];
        let m = b.meta[i];
        // Fast path: a packet within the MTU, to the next hop resolved last or one the
        // neighbour table has cached as reachable. Everything else goes through
        // `rewrite_one`, in order, since resolution has side effects (hold queues, ARP
        // requests). vgate's own packets (echo replies, errors, Geneve outer headers) keep
        // their TTL.
        if let Some(f) = ctx
            .pool
            .bytes_mut(&d)
            .first_chunk_mut::<{ ETH + ipv4::HEADER_LEN }>()
            && ready(
                &ctx.state.neighbors,
                ctx.snap,
                ctx.now,
                &mut c,
                m.tx_port,
                m.nexthop,
                usize::from(u16::from_be_bytes([f[ETH + 2], f[ETH + 3]])),
            )
        {
            let (eth, l3) = f.split_at_mut(ETH);
            if !m.local_origin {
                ipv4::Packet::new_unchecked(l3).decrement_ttl();
            }
            eth.copy_from_slice(&c.eth);
            continue;
        }
        if !rewrite_one(ctx, b, i, &mut c) {
            not_tx |= 1 << i;
        }
    }
    b.set_next_mask(Next::Rewrite, mask & !not_tx, Next::Tx);
}

/// True when a datagram of `total` bytes fits the IP MTU `mtu` as it is (RFC 791 section
/// 3.2): no fragmentation and no fragmentation-needed error.
#[inline(always)]
pub(super) fn fits(total: usize, mtu: u16) -> bool {
    total <= usize::from(mtu)
}

/// rewrite's decision for the common case: a datagram of `total` bytes to `nexthop` on
/// `port` is written with the cached Ethernet header ([`hop_ready`]) and leaves as it is,
/// within the port MTU ([`fits`]). False sends it through the whole of rewrite (resolution,
/// hold queue, fragmentation, errors). The stage and the fast path both decide by this.
#[inline(always)]
pub(super) fn ready(
    neighbors: &NeighborTable,
    snap: &Snapshot,
    now: u64,
    c: &mut Cache,
    port: u8,
    nexthop: u32,
    total: usize,
) -> bool {
    hop_ready(neighbors, snap, now, c, port, nexthop) && fits(total, c.hop_mtu)
}

/// A next hop as one comparable word.
#[inline(always)]
fn hop_key(port: u8, nexthop: u32) -> u64 {
    (u64::from(port) << 32) | u64::from(nexthop)
}

/// True when `hop` (a [`hop_key`]) is on `port`.
#[inline(always)]
fn hop_on_port(hop: u64, port: u8) -> bool {
    hop >> 32 == u64::from(port)
}

/// No next hop: above every [`hop_key`].
const NO_HOP: u64 = u64::MAX;

/// True when `nexthop` on `port` is the cached hop, or becomes it because the neighbour
/// table has it cached as reachable; otherwise (false) the cache stays as it is and the
/// packet takes `rewrite_one`.
#[inline(always)]
fn hop_ready(
    neighbors: &NeighborTable,
    snap: &Snapshot,
    now: u64,
    c: &mut Cache,
    port: u8,
    nexthop: u32,
) -> bool {
    c.hop == hop_key(port, nexthop) || refill(neighbors, snap, now, c, port, nexthop)
}

/// Make `nexthop` on `port` the cached hop when the neighbour table has it cached as
/// reachable (true); otherwise leave the cache as it is. Out of line: inlined, its
/// registers cost the fast path's common loop more than the call costs a miss (callgrind,
/// per packet: 9 to 19 instructions fewer on the floating IP and Geneve benches, the
/// per-packet misses of 64 floating IPs included; 7 more on SNAT with a million sessions).
#[inline(never)]
fn refill(
    neighbors: &NeighborTable,
    snap: &Snapshot,
    now: u64,
    c: &mut Cache,
    port: u8,
    nexthop: u32,
) -> bool {
    let Some(mac) = neighbors.lookup_hot(port, nexthop, now) else {
        return false;
    };
    // The cached header's source MAC, EtherType and MTU are the port's when the cached hop
    // is on the same port (the common case: many next hops behind one port); only the
    // destination MAC changes then.
    if !hop_on_port(c.hop, port) {
        let Some(p) = snap.ports.get(usize::from(port)) else {
            return false;
        };
        c.hop_mtu = p.mtu;
        set_macs(&mut c.eth, mac, p.mac);
    } else {
        c.eth[..6].copy_from_slice(&mac.0);
    }
    c.hop = hop_key(port, nexthop);
    true
}

/// The whole of rewrite for packet `i`. True when it is ready to transmit as it is;
/// otherwise it was sent elsewhere (ICMP error, hold queue, fragments, drop).
#[inline(never)]
fn rewrite_one(ctx: &mut Ctx, b: &mut Batch, i: usize, c: &mut Cache) -> bool {
    let d = b.desc[i];
    let m = b.meta[i];
    let port = m.tx_port;
    if c.port != Some(port) {
        let p = &ctx.snap.ports[port as usize];
        (c.mtu, c.mac) = (p.mtu, p.mac);
        c.port = Some(port);
    }
    let mtu = c.mtu;
    {
        let buf = ctx.pool.bytes_mut(&d);
        let mut ip = ipv4::Packet::new_unchecked(&mut buf[ETH..]);
        if !fits(usize::from(ip.total_len()), mtu) && ip.dont_frag() && !m.local_origin {
            b.icmp_error(i, DropReason::MtuFragNeeded, IcmpKind::FragNeeded, mtu);
            return false;
        }
        if !m.local_origin {
            ip.decrement_ttl();
        }
    }
    if c.hop == hop_key(port, m.nexthop) {
        ctx.pool.bytes_mut(&d)[..ETH].copy_from_slice(&c.eth);
    } else {
        let mac = match adjacency::resolve(ctx, port, m.nexthop, d) {
            Resolved::Mac(mac) => mac,
            Resolved::Held => {
                b.set_next(i, Next::Consumed);
                return false;
            }
            Resolved::Refused(reason) => {
                b.drop(i, reason);
                return false;
            }
        };
        c.hop = hop_key(port, m.nexthop);
        c.hop_mtu = mtu;
        set_macs(&mut c.eth, mac, c.mac);
        ctx.pool.bytes_mut(&d)[..ETH].copy_from_slice(&c.eth);
    }
    let total = ipv4::Packet::new_unchecked(&ctx.pool.bytes(&d)[ETH..]).total_len();
    if !fits(usize::from(total), mtu) {
        // Only packets without DF (or our own) get here: fragment on output.
        b.set_next(i, Next::Consumed);
        fragment(ctx, port, d);
        false
    } else {
        true
    }
}

#[inline]
fn set_macs(buf: &mut [u8], dst: EthernetAddress, src: EthernetAddress) {
    let mut f = ethernet::Frame::new_unchecked(buf);
    f.set_dst_addr(dst);
    f.set_src_addr(src);
    f.set_ethertype(ethertype::IPV4);
}

/// Send a packet whose next hop just resolved (it waited in a hold queue with TTL and MTU
/// already handled): write the MACs, fragment if needed, queue it on `port`.
pub fn output(ctx: &mut Ctx, port: u8, d: Desc, mac: EthernetAddress) {
    let pinfo = &ctx.snap.ports[port as usize];
    let (mtu, src) = (pinfo.mtu, pinfo.mac);
    let buf = ctx.pool.bytes_mut(&d);
    set_macs(buf, mac, src);
    if !fits(
        usize::from(ipv4::Packet::new_unchecked(&buf[ETH..]).total_len()),
        mtu,
    ) {
        fragment(ctx, port, d);
    } else {
        ctx.tx.push(port, d);
    }
}

/// Send the packets that waited for the neighbour just learned on `port` at `mac`
/// (`ctx.state.released`, left there by the neighbour table), each with [`output`].
pub fn send_released(ctx: &mut Ctx, port: u8, mac: EthernetAddress) {
    if ctx.state.released.is_empty() {
        return;
    }
    let released = std::mem::take(&mut ctx.state.released);
    for d in &released {
        output(ctx, port, *d, mac);
    }
    ctx.state.released = released;
}

/// Split the datagram in `d` (Ethernet header already written) into fragments that fit the
/// port MTU (RFC 791 section 3.2): every fragment but the last carries a multiple of 8
/// data bytes; options without the copied flag travel in the first fragment only. The
/// first fragment stays in `d`; the others take fresh frames. If frames run out the whole
/// datagram is dropped (a partial datagram is useless to the receiver).
pub fn fragment(ctx: &mut Ctx, port: u8, d: Desc) {
    let mtu = ctx.snap.ports[port as usize].mtu as usize;
    let mut out = [Desc::default(); MAX_FRAGMENTS];
    if let Some(n) = split(ctx, d, mtu, &mut out) {
        for f in &out[..n] {
            ctx.tx.push(port, *f);
        }
    }
}

/// Most fragments [`split`] makes of one datagram.
pub const MAX_FRAGMENTS: usize = 65;

/// [`fragment`]'s splitting for an IP MTU of `mtu`: the fragments, first (`d` itself) to
/// last, in `out`; their number, or None when frames ran out (the datagram is dropped and
/// counted). Fragments beyond the first count as generated.
pub fn split(ctx: &mut Ctx, d: Desc, mtu: usize, out: &mut [Desc; MAX_FRAGMENTS]) -> Option<usize> {
    let (hl, total, more, base_off, opts_copied) = {
        let buf = ctx.pool.bytes(&d);
        let ip = ipv4::Packet::new_unchecked(&buf[ETH..]);
        let hl = ip.header_len();
        let mut copied = [0u8; 40];
        let n = copied_options(&ip.header()[ipv4::HEADER_LEN..], &mut copied);
        (
            hl,
            ip.total_len() as usize,
            ip.more_frags(),
            ip.frag_offset() as usize,
            (copied, n),
        )
    };
    let (copied, ncopied) = opts_copied;
    let hl2 = ipv4::HEADER_LEN + ncopied.div_ceil(4) * 4;
    let first_data = (mtu - hl) & !7;
    let rest_data = (mtu - hl2) & !7;
    let payload = total - hl;

    let mut extra = [Desc::default(); 64];
    let mut nextra = 0;
    let mut pos = first_data;
    while pos < payload {
        let len = rest_data.min(payload - pos);
        let last = pos + len >= payload;
        let Some(mut f) = ctx.pool.alloc() else {
            abandon(ctx, d, &extra[..nextra]);
            return None;
        };
        if nextra == extra.len() {
            ctx.pool.free(f);
            abandon(ctx, d, &extra[..nextra]);
            return None;
        }
        f.len = (ETH + hl2 + len) as u32;
        // Copy Ethernet + the fixed header, then the copied options, then this data chunk.
        let mut tmp = [0u8; ETH + ipv4::HEADER_LEN];
        tmp.copy_from_slice(&ctx.pool.bytes(&d)[..ETH + ipv4::HEADER_LEN]);
        let src_data_at = ETH + hl + pos;
        // Frames of one pool never overlap; copy through the frame-sized views.
        let data: *const u8 = ctx.pool.bytes(&d)[src_data_at..src_data_at + len].as_ptr();
        let out = ctx.pool.bytes_mut(&f);
        out[..ETH + ipv4::HEADER_LEN].copy_from_slice(&tmp);
        out[ETH + ipv4::HEADER_LEN..ETH + ipv4::HEADER_LEN + ncopied]
            .copy_from_slice(&copied[..ncopied]);
        out[ETH + ipv4::HEADER_LEN + ncopied..ETH + hl2].fill(0); // end-of-options padding
        // SAFETY: `data` points into frame `d`, `out` is frame `f`; distinct frames of the
        // same pool, both in bounds (checked by the slicing above).
        unsafe {
            std::ptr::copy_nonoverlapping(data, out[ETH + hl2..].as_mut_ptr(), len);
        }
        let mut ip = ipv4::Packet::new_unchecked(&mut out[ETH..]);
        ip.set_version_ihl(hl2);
        ip.set_total_len((hl2 + len) as u16);
        ip.set_flags_offset(false, !last || more, (base_off + pos) as u16);
        ip.fill_checksum();
        extra[nextra] = f;
        nextra += 1;
        pos += len;
    }
    {
        let buf = ctx.pool.bytes_mut(&d);
        let mut ip = ipv4::Packet::new_unchecked(&mut buf[ETH..]);
        ip.set_total_len((hl + first_data) as u16);
        ip.set_flags_offset(false, true, base_off as u16);
        ip.fill_checksum();
    }
    let mut first = d;
    first.len = (ETH + hl + first_data) as u32;
    out[0] = first;
    out[1..=nextra].copy_from_slice(&extra[..nextra]);
    ctx.stats.generated.add(nextra as u64);
    Some(nextra + 1)
}

fn abandon(ctx: &mut Ctx, d: Desc, extra: &[Desc]) {
    for f in extra {
        ctx.pool.free(*f);
    }
    ctx.pool.free(d);
    ctx.stats.generated.add(extra.len() as u64);
    ctx.stats
        .count_drop(DropReason::RewriteNoFrames, 1 + extra.len() as u64);
}

/// Options whose copied flag is set (RFC 791 section 3.1, "Options"), in order.
fn copied_options(opts: &[u8], out: &mut [u8; 40]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < opts.len() {
        let t = opts[i];
        match t {
            0 => break, // end of option list
            1 => {
                i += 1; // no-operation: not copied
                continue;
            }
            _ => {
                let Some(&l) = opts.get(i + 1) else { break };
                let l = l as usize;
                if l < 2 || i + l > opts.len() {
                    break;
                }
                if t & 0x80 != 0 {
                    out[n..n + l].copy_from_slice(&opts[i..i + l]);
                    n += l;
                }
                i += l;
            }
        }
    }
    n
}

/// Count transmitted packets and bytes per port (called once per burst by the worker).
pub fn count_tx(ctx: &Ctx, port: usize, pkts: &[Desc]) {
    if port < MAX_PORTS {
        let bytes: u64 = pkts.iter().map(|d| u64::from(d.len)).sum();
        ctx.stats.port_tx_packets[port].add(pkts.len() as u64);
        ctx.stats.port_tx_bytes[port].add(bytes);
    }
}
