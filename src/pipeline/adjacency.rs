//! Adjacency: resolving next hops to MAC addresses (RFC 826) for rewrite, and learning them
//! for arp. The neighbour table, its hold queues and the ARP requests that fill it are here,
//! so that rewrite is about rewriting and the two stages that use it do not depend on each
//! other.

use super::Ctx;
use crate::io::Desc;
use crate::metrics::DropReason;
use crate::tables::neighbor::Resolve;
use crate::wire::arp::{self, Operation};
use crate::wire::ethernet::{self, EthernetAddress, ethertype};

/// What [`resolve`] did with a packet for a next hop.
pub(super) enum Resolved {
    /// The next hop's MAC: send the packet now.
    Mac(EthernetAddress),
    /// The packet waits in the next hop's hold queue (an ARP request or a neighbour
    /// solicitation was sent if needed).
    Held,
    /// The packet cannot wait: drop it for this reason.
    Refused(DropReason),
}

/// Resolve `nexthop` on `port` for packet `d`: its MAC when known (re-confirming it when
/// stale), or hold the packet while an ARP request goes out, within the neighbour table's
/// bounds.
pub(super) fn resolve(ctx: &mut Ctx, port: u8, nexthop: u32, d: Desc) -> Resolved {
    match ctx.state.neighbors.resolve(port, nexthop, d, ctx.now) {
        Resolve::Hit(mac) => Resolved::Mac(mac),
        Resolve::HitProbe(mac) => {
            send_request(ctx, port, nexthop);
            Resolved::Mac(mac)
        }
        Resolve::Held { request } => {
            if request {
                send_request(ctx, port, nexthop);
                ctx.stats.neighbors.set(ctx.state.neighbors.len() as u64);
            }
            ctx.stats.held.set(ctx.state.held_frames());
            Resolved::Held
        }
        Resolve::QueueFull => Resolved::Refused(DropReason::RewriteNeighborQueueFull),
        Resolve::TableFull => Resolved::Refused(DropReason::RewriteNeighborTableFull),
    }
}

/// Record that `ip` on `port` is at `mac` (creating the entry only with `create`); false
/// when nothing was recorded. The packets that waited for it are left in
/// `ctx.state.released`, for the caller to send.
pub(super) fn learn(ctx: &mut Ctx, port: u8, ip: u32, mac: EthernetAddress, create: bool) -> bool {
    let before = ctx.state.neighbors.get(port, ip);
    ctx.state.released.clear();
    let ok = ctx
        .state
        .neighbors
        .learn(port, ip, mac, ctx.now, create, &mut ctx.state.released);
    if !ok {
        return false;
    }
    if before != Some(mac) {
        ctx.state.learned.push((port, ip, mac));
    }
    if !ctx.state.released.is_empty() {
        ctx.stats.held.set(ctx.state.held_frames());
        ctx.stats.neighbors.set(ctx.state.neighbors.len() as u64);
    }
    true
}

/// Send a broadcast ARP request for `ip` out of `port` (RFC 826), from the port address on
/// the target's subnet or the port's `arp_source` (seed 001's `--mangle-ip-s`).
pub fn send_request(ctx: &mut Ctx, port: u8, ip: u32) {
    let pinfo = &ctx.snap.ports[port as usize];
    // Config validation gives every port that routes an address or an arp_source; without
    // one the neighbour stays unresolved and its packets end as host unreachable, counted.
    let Some(src_ip) = pinfo.source_for(ip) else {
        return;
    };
    let mac = pinfo.mac;
    let Some(mut d) = ctx.pool.alloc() else {
        ctx.stats.count_drop(DropReason::RewriteNoFrames, 1);
        ctx.stats.generated.add(1);
        return;
    };
    d.len = (ethernet::HEADER_LEN + arp::PACKET_LEN) as u32;
    let buf = ctx.pool.bytes_mut(&d);
    build_arp(
        buf,
        mac,
        EthernetAddress::BROADCAST,
        &arp::Repr {
            operation: Operation::Request,
            sender_hw: mac,
            sender_ip: std::net::Ipv4Addr::from_bits(src_ip),
            target_hw: EthernetAddress::ZERO,
            target_ip: std::net::Ipv4Addr::from_bits(ip),
        },
    );
    ctx.tx.push(port, d);
    ctx.stats.arp_requests_sent.add(1);
    ctx.stats.generated.add(1);
}

/// Write an Ethernet + ARP frame into `buf` (at least 42 bytes).
pub fn build_arp(buf: &mut [u8], src: EthernetAddress, dst: EthernetAddress, r: &arp::Repr) {
    ethernet::Repr {
        src,
        dst,
        ethertype: ethertype::ARP,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut buf[..]));
    r.emit(&mut arp::Packet::new_unchecked(
        &mut buf[ethernet::HEADER_LEN..ethernet::HEADER_LEN + arp::PACKET_LEN],
    ));
}
