//! ARP (RFC 826): answer for what vgate owns or serves, and learn next hops (the neighbour
//! table itself and the requests that resolve next hops are [`adjacency`]'s).

use super::{Batch, Ctx, Next, adjacency, bits, rewrite};
use crate::metrics::{ArpKind, DropReason};
use crate::wire::arp::{self, Operation};
use crate::wire::ethernet;

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

        // A backup neither answers for what its groups own nor learns the master's claims
        // to it (RFC 5798 section 6.4.2).
        if super::vrrp::arp_backup(ctx.snap, ctx.state, port, tpa)
            || (spa != 0 && super::vrrp::arp_backup(ctx.snap, ctx.state, port, spa))
        {
            b.drop(i, DropReason::VrrpBackup);
            continue;
        }
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
            learned = adjacency::learn(ctx, port, spa, sha, create);
            rewrite::send_released(ctx, port, sha);
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
