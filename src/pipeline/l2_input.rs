//! Ethernet input: accept frames for us, classify by EtherType.

use super::{Batch, Ctx, Next, bits};
use crate::metrics::{DropReason, MAX_PORTS};
use crate::wire::ethernet::{self, EthernetAddress, ethertype};

/// Accept unicast to the port MAC (or a MAC vgate answers ARP with on that port, such as a
/// distributed floating IP's) and broadcast; drop everything else with its reason.
pub fn run(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    let mut rx_pkts = [0u64; MAX_PORTS];
    let mut rx_bytes = [0u64; MAX_PORTS];
    let (mut to_ip4, mut to_arp) = (0u64, 0u64);
    for i in bits(mask) {
        let port = b.meta[i].rx_port as usize;
        let d = b.desc[i];
        rx_pkts[port] += 1;
        rx_bytes[port] += u64::from(d.len);
        let bytes = ctx.pool.bytes(&d);
        if bytes.len() < ethernet::HEADER_LEN {
            b.drop(i, DropReason::L2Runt);
            continue;
        }
        let f = ethernet::Frame::new_unchecked(bytes);
        let dst = f.dst_addr();
        let pinfo = &ctx.snap.ports[port];
        if dst != pinfo.mac && !dst.is_broadcast() {
            if dst.is_multicast() {
                b.drop(i, DropReason::L2Multicast);
                continue;
            }
            if !accepts(ctx, port, dst) {
                b.drop(i, DropReason::L2NotForUs);
                continue;
            }
        }
        match f.ethertype() {
            ethertype::IPV4 => to_ip4 |= 1 << i,
            ethertype::ARP => to_arp |= 1 << i,
            ethertype::IPV6 => b.drop(i, DropReason::L2Ipv6),
            _ => b.drop(i, DropReason::L2UnknownEthertype),
        }
    }
    b.set_next_mask(Next::L2Input, to_ip4, Next::Ip4Input);
    b.set_next_mask(Next::L2Input, to_arp, Next::Arp);
    for p in 0..ctx.snap.ports.len().min(MAX_PORTS) {
        ctx.stats.port_rx_packets[p].add(rx_pkts[p]);
        ctx.stats.port_rx_bytes[p].add(rx_bytes[p]);
    }
}

#[inline]
fn accepts(ctx: &Ctx, port: usize, dst: EthernetAddress) -> bool {
    ctx.snap
        .arp
        .get(port)
        .is_some_and(|a| a.extra_macs.contains(&dst))
}
