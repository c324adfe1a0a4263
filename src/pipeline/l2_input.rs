//! Ethernet input: accept frames for us, classify by EtherType.

use super::{Batch, Ctx, Next, bits};
use crate::metrics::{DropReason, MAX_PORTS, WorkerStats};
use crate::tables::Snapshot;
use crate::wire::ethernet::{self, EthernetAddress, ethertype};

/// 224.0.0.18 mapped to Ethernet (RFC 1112 section 6.4).
const VRRP_MULTICAST_MAC: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];

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
    let (mut to_arp, mut to_ip6, mut slow) = (0u64, 0u64, 0u64);
    // A burst comes from one port: count packets and bytes of the current run of one port in
    // registers and keep that port's MAC at hand.
    let mut run_port = usize::MAX;
    let (mut run_pkts, mut run_bytes) = (0u64, 0u64);
    let mut macs = PortMacs::NONE;
    for i in bits(mask) {
        let port = b.meta[i].rx_port as usize;
        let d = b.desc[i];
        if port != run_port {
            if run_port != usize::MAX {
                rx_pkts[run_port] += run_pkts;
                rx_bytes[run_port] += run_bytes;
            }
            (run_port, run_pkts, run_bytes) = (port, 0, 0);
            macs = PortMacs::of(ctx.snap, port);
        }
        run_pkts += 1;
        run_bytes += u64::from(d.len);
        // The common case as the fast path decides it; the rest, runts included, through the
        // full checks of `classify`.
        match ctx.pool.bytes(&d).first_chunk::<{ ethernet::HEADER_LEN }>() {
            Some(h) => match macs.common(h) {
                Common::Ip4 => {}
                Common::Arp => to_arp |= 1 << i,
                Common::Ip6 => to_ip6 |= 1 << i,
                Common::Other => slow |= 1 << i,
            },
            None => slow |= 1 << i,
        }
    }
    if run_port != usize::MAX {
        rx_pkts[run_port] += run_pkts;
        rx_bytes[run_port] += run_bytes;
    }
    // What the fast path did not set aside is IPv4 for us.
    let mut to_ip4 = mask & !(to_arp | to_ip6 | slow);
    for i in bits(slow) {
        match classify(ctx, b, i) {
            Ok(Next::Arp) => to_arp |= 1 << i,
            Ok(Next::Ip6Input) => to_ip6 |= 1 << i,
            Ok(_) => to_ip4 |= 1 << i,
            Err(r) => b.drop(i, r),
        }
    }
    b.set_next_mask(Next::L2Input, to_ip4, Next::Ip4Input);
    b.set_next_mask(Next::L2Input, to_arp, Next::Arp);
    b.set_next_mask(Next::L2Input, to_ip6, Next::Ip6Input);
    for p in 0..ctx.snap.ports.len().min(MAX_PORTS) {
        count_rx(ctx.stats, p, rx_pkts[p], rx_bytes[p]);
    }
}

/// Count `pkts` packets of `bytes` bytes received on `port`: every received packet is
/// counted once, here or by the fast path, whichever takes it from l2_input.
#[inline(always)]
pub(super) fn count_rx(stats: &WorkerStats, port: usize, pkts: u64, bytes: u64) {
    if port < MAX_PORTS && pkts != 0 {
        stats.port_rx_packets[port].add(pkts);
        stats.port_rx_bytes[port].add(bytes);
    }
}

/// The common case of l2_input's decision, from the Ethernet header alone.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Common {
    /// IPv4 to the port MAC or broadcast: on to ip4_input.
    Ip4,
    /// ARP to the port MAC or broadcast: on to arp.
    Arp,
    /// IPv6 to the port MAC (or its other MAC) on a configuration with IPv6: on to
    /// ip6_input.
    Ip6,
    /// Anything else (other MACs vgate accepts, other EtherTypes, drops): the full checks
    /// of [`classify`], which name the drop reason.
    Other,
}

/// The MACs of one receiving port that the common case accepts, as [`mac_bits`] words.
#[derive(Clone, Copy)]
pub(super) struct PortMacs {
    unicast: u64,
    /// [`crate::tables::PortArp::fast_mac`], or nothing.
    also: u64,
    broadcast: u64,
    /// IPv6 is configured ([`crate::tables::ip6::Ip6Tables::enabled`]).
    ip6: bool,
}

impl PortMacs {
    /// Matches nothing.
    const NONE: PortMacs = PortMacs {
        unicast: u64::MAX,
        also: u64::MAX,
        broadcast: u64::MAX,
        ip6: false,
    };

    /// Port `port`'s: its MAC, the one other MAC the common case takes there (a flat
    /// network's gateway MAC, or a VRRP group's virtual MAC), and broadcast. No such port
    /// matches nothing, and `classify` fails on it.
    #[inline(always)]
    pub(super) fn of(snap: &Snapshot, port: usize) -> PortMacs {
        match snap.ports.get(port) {
            Some(p) => PortMacs {
                unicast: mac_bits(p.mac),
                also: snap
                    .arp
                    .get(port)
                    .and_then(|a| a.fast_mac)
                    .map_or(u64::MAX, mac_bits),
                broadcast: MAC_BITS,
                ip6: snap.ip6.enabled(),
            },
            None => PortMacs::NONE,
        }
    }

    /// l2_input's decision for the common case: IPv4 or ARP to the port MAC or broadcast,
    /// IPv6 to the port MAC.
    /// The stage and the fast path both decide by this.
    #[inline(always)]
    pub(super) fn common(self, h: &[u8; ethernet::HEADER_LEN]) -> Common {
        let dst = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]) & MAC_BITS;
        let for_us = dst == self.unicast || dst == self.also || dst == self.broadcast;
        match u16::from_be_bytes([h[12], h[13]]) {
            ethertype::IPV4 if for_us => Common::Ip4,
            ethertype::ARP if for_us => Common::Arp,
            ethertype::IPV6 if self.ip6 && dst != self.broadcast && for_us => Common::Ip6,
            _ => Common::Other,
        }
    }
}

/// Every check for packet `i`: where it goes ([`Next::Ip4Input`], [`Next::Arp`] or
/// [`Next::Ip6Input`]), or why it is dropped.
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
    let ip6 = f.ethertype() == ethertype::IPV6 && ctx.snap.ip6.enabled();
    if dst != pinfo.mac && !dst.is_broadcast() {
        // IPv6 multicast (RFC 2464 section 7): ip6_input takes the groups vgate joined.
        if ip6 && dst.0[..2] == [0x33, 0x33] {
            return Ok(Next::Ip6Input);
        }
        if dst.is_multicast() {
            // 224.0.0.18 (RFC 5798 section 5.1.1.2) on a port with VRRP groups.
            if dst.0 != VRRP_MULTICAST_MAC
                || !ctx.snap.vrrp.iter().any(|g| usize::from(g.port) == port)
            {
                return Err(DropReason::L2Multicast);
            }
        }
        if !dst.is_multicast() && !accepts(ctx, port, dst) {
            return Err(DropReason::L2NotForUs);
        }
    }
    match f.ethertype() {
        ethertype::IPV4 => Ok(Next::Ip4Input),
        ethertype::ARP => Ok(Next::Arp),
        ethertype::IPV6 if ip6 => Ok(Next::Ip6Input),
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
