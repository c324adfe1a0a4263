//! Rewrite: MTU check, TTL decrement (RFC 1812 section 5.3.1, RFC 1624 checksum update),
//! next-hop resolution and the Ethernet header; fragmentation on output (RFC 791 section
//! 3.2, RFC 1812 section 5.2.6) for packets without DF.

use super::{Batch, Ctx, Next, bits};
use crate::io::Desc;
use crate::metrics::{DropReason, IcmpKind, MAX_PORTS};
use crate::tables::neighbor::Resolve;
use crate::wire::ethernet::{self, EthernetAddress, HEADER_LEN as ETH, ethertype};
use crate::wire::ipv4;

pub fn run(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    // Per-batch cache of the last resolved next hop.
    let mut last: Option<(u8, u32, EthernetAddress)> = None;
    let mut to_tx = 0u64;
    for i in bits(mask) {
        let d = b.desc[i];
        let m = b.meta[i];
        let port = m.tx_port;
        let mtu = ctx.snap.ports[port as usize].mtu;
        {
            let buf = ctx.pool.bytes_mut(&d);
            let mut ip = ipv4::Packet::new_unchecked(&mut buf[ETH..]);
            if ip.total_len() > mtu && ip.dont_frag() && !m.local_origin {
                b.icmp_error(i, DropReason::MtuFragNeeded, IcmpKind::FragNeeded, mtu);
                continue;
            }
            if !m.local_origin {
                ip.decrement_ttl();
            }
        }
        let mac = match last {
            Some((p, a, mac)) if p == port && a == m.nexthop => mac,
            _ => match ctx.state.neighbors.resolve(port, m.nexthop, d, ctx.now) {
                Resolve::Hit(mac) => {
                    last = Some((port, m.nexthop, mac));
                    mac
                }
                Resolve::HitProbe(mac) => {
                    super::arp::send_request(ctx, port, m.nexthop);
                    last = Some((port, m.nexthop, mac));
                    mac
                }
                Resolve::Held { request } => {
                    if request {
                        super::arp::send_request(ctx, port, m.nexthop);
                        ctx.stats.neighbors.set(ctx.state.neighbors.len() as u64);
                    }
                    ctx.stats.held.set(ctx.state.neighbors.held() as u64);
                    b.set_next(i, Next::Consumed);
                    continue;
                }
                Resolve::QueueFull => {
                    b.drop(i, DropReason::RewriteNeighborQueueFull);
                    continue;
                }
                Resolve::TableFull => {
                    b.drop(i, DropReason::RewriteNeighborTableFull);
                    continue;
                }
            },
        };
        let total = {
            let buf = ctx.pool.bytes_mut(&d);
            set_macs(buf, mac, ctx.snap.ports[port as usize].mac);
            ipv4::Packet::new_unchecked(&buf[ETH..]).total_len()
        };
        if total > mtu {
            // Only packets without DF (or our own) get here: fragment on output.
            b.set_next(i, Next::Consumed);
            fragment(ctx, port, d);
        } else {
            to_tx |= 1 << i;
        }
    }
    b.set_next_mask(Next::Rewrite, to_tx, Next::Tx);
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
    if ipv4::Packet::new_unchecked(&buf[ETH..]).total_len() > mtu {
        fragment(ctx, port, d);
    } else {
        ctx.tx.push(port, d);
    }
}

/// Split the datagram in `d` (Ethernet header already written) into fragments that fit the
/// port MTU (RFC 791 section 3.2): every fragment but the last carries a multiple of 8
/// data bytes; options without the copied flag travel in the first fragment only. The
/// first fragment stays in `d`; the others take fresh frames. If frames run out the whole
/// datagram is dropped (a partial datagram is useless to the receiver).
pub fn fragment(ctx: &mut Ctx, port: u8, d: Desc) {
    let mtu = ctx.snap.ports[port as usize].mtu as usize;
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
            return abandon(ctx, d, &extra[..nextra]);
        };
        if nextra == extra.len() {
            ctx.pool.free(f);
            return abandon(ctx, d, &extra[..nextra]);
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
    ctx.tx.push(port, first);
    for f in &extra[..nextra] {
        ctx.tx.push(port, *f);
    }
    ctx.stats.generated.add(nextra as u64);
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
