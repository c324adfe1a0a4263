//! ARP (RFC 826): answer for what vgate owns or serves, learn next hops, resolve.

use super::{Batch, Ctx, Next, bits};
use crate::metrics::{ArpKind, DropReason};
use crate::wire::arp::{self, Operation};
use crate::wire::ethernet::{self, EthernetAddress, ethertype};

/// Handle received ARP packets. Requests for an address vgate answers for are turned into
/// replies in place; replies and requests from on-link senders update the neighbour table
/// (RFC 826 "merge"), releasing packets that waited for them. An ARP packet that claims
/// an address vgate owns or answers for, from another MAC, is never learned.
pub fn run(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    let mut replies = [0u64; 4];
    for i in bits(mask) {
        let d = b.desc[i];
        let port = b.meta[i].rx_port;
        let pinfo = &ctx.snap.ports[port as usize];
        let answers = &ctx.snap.arp[port as usize];
        let bytes = ctx.pool.bytes(&d);
        let Ok(p) = arp::Packet::new_checked(&bytes[ethernet::HEADER_LEN..]) else {
            b.drop(i, DropReason::ArpMalformed);
            continue;
        };
        let Some(op) = p.operation().filter(|_| p.is_ethernet_ipv4()) else {
            b.drop(i, DropReason::ArpMalformed);
            continue;
        };
        let (sha, spa, tpa) = (p.sender_hw(), p.sender_ip(), p.target_ip());
        let eth_src = ethernet::Frame::new_unchecked(bytes).src_addr();

        // Anti-spoofing: a sender claiming one of our addresses (or one we answer for).
        if spa != 0
            && answers
                .answer(spa, pinfo.mac)
                .is_some_and(|(m, _)| m != sha)
        {
            b.drop(i, DropReason::ArpSpoofed);
            continue;
        }
        if !sha.is_unicast() || (spa != 0 && eth_src != sha) {
            b.drop(i, DropReason::ArpMalformed);
            continue;
        }

        // Learn (RFC 826): update an existing entry; create one when the sender is talking
        // to us and is on-link of this port.
        // The snapshot does not change under us: one lookup serves both uses.
        let answer = answers.answer(tpa, pinfo.mac);
        let to_us = answer.is_some();
        let mut learned = false;
        if spa != 0 {
            // An announcement (RFC 5227 section 3, sender == target) only refreshes what we
            // already have; anything else may create an entry when it talks to us.
            let create = spa != tpa && to_us && (pinfo.on_link(spa) || pinfo.addrs.is_empty());
            learned = learn(ctx, port, spa, sha, create);
        }

        match op {
            Operation::Request => {
                // Never answer a host asking about its own address (a GARP).
                match answer.filter(|_| spa != tpa) {
                    Some((mac, kind)) => {
                        let buf = ctx.pool.bytes_mut(&d);
                        let mut f = ethernet::Frame::new_unchecked(&mut buf[..]);
                        f.set_dst_addr(sha);
                        f.set_src_addr(mac);
                        arp::Packet::new_unchecked(&mut buf[ethernet::HEADER_LEN..])
                            .make_reply(mac);
                        // Trim any link padding: a reply is exactly header + ARP.
                        b.desc[i].len = (ethernet::HEADER_LEN + arp::PACKET_LEN) as u32;
                        b.meta[i].tx_port = port;
                        b.set_next(i, Next::Tx);
                        replies[kind as usize] += 1;
                    }
                    // Not answered, whether or not it refreshed a neighbour entry.
                    None => b.drop(i, DropReason::ArpNotOurs),
                }
            }
            Operation::Reply if learned => b.drop(i, DropReason::ArpLearned),
            Operation::Reply => b.drop(i, DropReason::ArpIgnored),
        }
    }
    for k in ArpKind::ALL {
        ctx.stats.arp_replies[k as usize].add(replies[k as usize]);
    }
}

/// Record a neighbour and send the packets that waited for it.
fn learn(ctx: &mut Ctx, port: u8, ip: u32, mac: EthernetAddress, create: bool) -> bool {
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
        let rel = std::mem::take(&mut ctx.state.released);
        for d in &rel {
            super::rewrite::output(ctx, port, *d, mac);
        }
        ctx.state.released = rel;
        ctx.stats.held.set(ctx.state.neighbors.held() as u64);
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
