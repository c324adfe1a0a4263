//! Ethernet input: accept frames for us, classify by EtherType.

use super::{Batch, Ctx, Next, bits};
use crate::metrics::{DropReason, MAX_PORTS};
use crate::wire::ethernet::{self, EthernetAddress, ethertype};

/// The low 48 bits of a little-endian load of 8 bytes starting at a MAC address.
const MAC_BITS: u64 = (1 << 48) - 1;

/// A MAC address as the low 48 bits of a `u64`, as [`MAC_BITS`] extracts it from a frame.
#[inline(always)]
fn mac_bits(m: EthernetAddress) -> u64 {
    let [a, b, c, d, e, f] = m.0;
    u64::from_le_bytes([a, b, c, d, e, f, 0, 0])
}

/// Accept unicast to the port MAC (or a MAC vgate answers ARP with on that port, such as a
/// distributed floating IP's) and broadcast; drop everything else with its reason.
pub fn run(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    let mut rx_pkts = [0u64; MAX_PORTS];
    let mut rx_bytes = [0u64; MAX_PORTS];
    let (mut to_arp, mut slow) = (0u64, 0u64);
    // A burst comes from one port: count packets and bytes of the current run of one port in
    // registers and keep that port's MAC at hand.
    let mut run_port = usize::MAX;
    let (mut run_pkts, mut run_bytes) = (0u64, 0u64);
    let (mut port_mac, mut port_bcast) = (0u64, 0u64);
    for i in bits(mask) {
        let port = b.meta[i].rx_port as usize;
        let d = b.desc[i];
        if port != run_port {
            if run_port != usize::MAX {
                rx_pkts[run_port] += run_pkts;
                rx_bytes[run_port] += run_bytes;
            }
            (run_port, run_pkts, run_bytes) = (port, 0, 0);
            // No such port: nothing matches, and `classify` fails on it as it always did.
            (port_mac, port_bcast) = match ctx.snap.ports.get(port) {
                Some(p) => (mac_bits(p.mac), MAC_BITS),
                None => (u64::MAX, u64::MAX),
            };
        }
        run_pkts += 1;
        run_bytes += u64::from(d.len);
        // Fast path: IPv4 or ARP to the port MAC or broadcast. Everything else, including
        // runts, goes through the full checks of `classify`.
        let Some(h) = ctx.pool.bytes(&d).first_chunk::<{ ethernet::HEADER_LEN }>() else {
            slow |= 1 << i;
            continue;
        };
        let dst = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]) & MAC_BITS;
        let ethertype = u16::from_be_bytes([h[12], h[13]]);
        let for_us = dst == port_mac || dst == port_bcast;
        if for_us && ethertype == ethertype::IPV4 {
            continue;
        }
        if for_us && ethertype == ethertype::ARP {
            to_arp |= 1 << i;
        } else {
            slow |= 1 << i;
        }
    }
    if run_port != usize::MAX {
        rx_pkts[run_port] += run_pkts;
        rx_bytes[run_port] += run_bytes;
    }
    // What the fast path did not set aside is IPv4 for us.
    let mut to_ip4 = mask & !(to_arp | slow);
    for i in bits(slow) {
        match classify(ctx, b, i) {
            Ok(Next::Arp) => to_arp |= 1 << i,
            Ok(_) => to_ip4 |= 1 << i,
            Err(r) => b.drop(i, r),
        }
    }
    b.set_next_mask(Next::L2Input, to_ip4, Next::Ip4Input);
    b.set_next_mask(Next::L2Input, to_arp, Next::Arp);
    for p in 0..ctx.snap.ports.len().min(MAX_PORTS) {
        ctx.stats.port_rx_packets[p].add(rx_pkts[p]);
        ctx.stats.port_rx_bytes[p].add(rx_bytes[p]);
    }
}

/// Every check for packet `i`: where it goes ([`Next::Ip4Input`] or [`Next::Arp`]), or why it
/// is dropped.
#[inline(never)]
fn classify(ctx: &Ctx, b: &Batch, i: usize) -> Result<Next, DropReason> {
    let port = b.meta[i].rx_port as usize;
    let bytes = ctx.pool.bytes(&b.desc[i]);
    if bytes.len() < ethernet::HEADER_LEN {
        return Err(DropReason::L2Runt);
    }
    let f = ethernet::Frame::new_unchecked(bytes);
    let dst = f.dst_addr();
    let pinfo = &ctx.snap.ports[port];
    if dst != pinfo.mac && !dst.is_broadcast() {
        if dst.is_multicast() {
            return Err(DropReason::L2Multicast);
        }
        if !accepts(ctx, port, dst) {
            return Err(DropReason::L2NotForUs);
        }
    }
    match f.ethertype() {
        ethertype::IPV4 => Ok(Next::Ip4Input),
        ethertype::ARP => Ok(Next::Arp),
        ethertype::IPV6 => Err(DropReason::L2Ipv6),
        _ => Err(DropReason::L2UnknownEthertype),
    }
}

#[inline]
fn accepts(ctx: &Ctx, port: usize, dst: EthernetAddress) -> bool {
    ctx.snap
        .arp
        .get(port)
        .is_some_and(|a| a.extra_macs.contains(&dst))
}
