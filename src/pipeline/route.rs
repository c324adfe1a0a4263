//! Route lookup: longest-prefix match in the receiving port's table (policy routing), then
//! "main"; TTL check for forwarded packets (RFC 1812 section 5.3.1).

use super::{Batch, Ctx, MAX_BATCH, Meta, Next, bits};
use crate::metrics::{DropReason, IcmpKind};
use crate::tables::{MAIN_TABLE, NextHop, Snapshot};
use crate::wire::ethernet::HEADER_LEN as ETH;
use crate::wire::ipv4;

/// The table a packet is looked up in: vgate's own packets use "main", others the table of
/// the port they arrived on.
#[inline(always)]
fn table_of(snap: &Snapshot, m: &Meta) -> u16 {
    if m.local_origin {
        MAIN_TABLE
    } else {
        snap.ports[m.rx_port as usize].table
    }
}

pub fn run(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    // Gather destinations and TTLs, then look them all up at once: with a large table every
    // lookup is a cache miss, and a batch of independent loads overlaps them.
    let mut dst = [0u32; MAX_BATCH];
    let mut ttl = [0u8; MAX_BATCH];
    let mut n = 0;
    let mut short = 0u64;
    let mut table = None;
    let mut one_table = true;
    // The last receiving port and its table: a burst comes from one port.
    let mut port_table: Option<(u8, u16)> = None;
    for i in bits(mask) {
        let m = &b.meta[i];
        // Every packet here has a full IPv4 header: ip4_input checked it, or vgate built it.
        let Some(h) = ctx
            .pool
            .bytes(&b.desc[i])
            .first_chunk::<{ ETH + ipv4::HEADER_LEN }>()
        else {
            short |= 1 << i;
            continue;
        };
        let t = match port_table {
            _ if m.local_origin => MAIN_TABLE,
            Some((p, t)) if p == m.rx_port => t,
            _ => {
                let t = table_of(ctx.snap, m);
                port_table = Some((m.rx_port, t));
                t
            }
        };
        one_table &= *table.get_or_insert(t) == t;
        let k = n & (MAX_BATCH - 1);
        dst[k] = u32::from_be_bytes([h[30], h[31], h[32], h[33]]);
        ttl[k] = h[ETH + 8];
        n += 1;
    }
    for i in bits(short) {
        b.drop(i, DropReason::Ip4TooShort);
    }
    let mask = mask & !short;
    let n = n.min(MAX_BATCH);

    let mut nh = [None; MAX_BATCH];
    match table {
        Some(t) if one_table => ctx.snap.lookup_batch(t, &dst[..n], &mut nh[..n]),
        _ => {
            for (k, i) in bits(mask).enumerate() {
                let k = k & (MAX_BATCH - 1);
                nh[k] = ctx.snap.lookup(table_of(ctx.snap, &b.meta[i]), dst[k]);
            }
        }
    }

    let (mut to_rewrite, mut to_local) = (0u64, 0u64);
    for (k, i) in bits(mask).enumerate() {
        let k = k & (MAX_BATCH - 1);
        let m = &mut b.meta[i];
        match nh[k] {
            Some(NextHop::Forward { port, via }) if m.local_origin || ttl[k] > 1 => {
                m.tx_port = port;
                m.nexthop = if via == 0 { dst[k] } else { via };
                to_rewrite |= 1 << i;
            }
            Some(NextHop::Forward { .. }) => {
                b.icmp_error(i, DropReason::RouteTtlExpired, IcmpKind::TimeExceeded, 0)
            }
            Some(NextHop::Local { .. }) if !m.local_origin => to_local |= 1 << i,
            // vgate never sends to itself: an error about our own packet has nowhere to go.
            Some(NextHop::Local { .. }) => b.drop(i, DropReason::RouteNoRoute),
            Some(NextHop::Broadcast) => b.drop(i, DropReason::RouteDirectedBroadcast),
            None if m.local_origin => b.drop(i, DropReason::RouteNoRoute),
            None => b.icmp_error(i, DropReason::RouteNoRoute, IcmpKind::NetUnreachable, 0),
        }
    }
    b.set_next_mask(Next::Route, to_rewrite, Next::Rewrite);
    b.set_next_mask(Next::Route, to_local, Next::Local);
}
