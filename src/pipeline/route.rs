//! Route lookup: longest-prefix match in the receiving port's table (policy routing), then
//! "main"; TTL check for forwarded packets (RFC 1812 section 5.3.1).

use super::{Batch, Ctx, MAX_BATCH, Meta, Next, bits};
use crate::metrics::{DropReason, IcmpKind};
use crate::tables::{MAIN_TABLE, NextHop, Snapshot};

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

/// Route every packet of `mask` by `Meta::dst` and `Meta::ttl`.
pub fn run(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    if mask == 0 {
        return;
    }
    // Gather the destinations, then look them all up at once: with a large table every
    // lookup is a cache miss, and a batch of independent loads overlaps them. Usually the
    // whole batch uses one table (one receiving port); otherwise look up one by one.
    let first = b.meta[mask.trailing_zeros() as usize & (MAX_BATCH - 1)];
    let mut dst = [0u32; MAX_BATCH];
    let mut n = 0;
    let mut one_table = true;
    for i in bits(mask) {
        let m = &b.meta[i];
        one_table &= m.local_origin == first.local_origin && m.rx_port == first.rx_port;
        dst[n & (MAX_BATCH - 1)] = m.dst;
        n += 1;
    }
    let n = n.min(MAX_BATCH);
    let mut hop = [None; MAX_BATCH];
    if one_table {
        ctx.snap
            .lookup_batch(table_of(ctx.snap, &first), &dst[..n], &mut hop[..n]);
    } else {
        for (k, i) in bits(mask).enumerate() {
            let k = k & (MAX_BATCH - 1);
            let table = table_of(ctx.snap, &b.meta[i]);
            ctx.snap
                .lookup_batch(table, &dst[k..k + 1], &mut hop[k..k + 1]);
        }
    }

    // Packets that do not go on to rewrite; all others do.
    let (mut other, mut to_local) = (0u64, 0u64);
    for (k, i) in bits(mask).enumerate() {
        let m = &mut b.meta[i];
        let nh = hop[k & (MAX_BATCH - 1)].map(|h| ctx.snap.nexthops[h as usize]);
        if let Some(NextHop::Forward { port, via }) = nh
            && (m.local_origin || m.ttl > 1)
        {
            m.tx_port = port;
            m.nexthop = if via == 0 { m.dst } else { via };
            continue;
        }
        other |= 1 << i;
        match nh {
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
    let to_rewrite = mask & !other;
    b.set_next_mask(Next::Route, to_rewrite, Next::Rewrite);
    b.set_next_mask(Next::Route, to_local, Next::Local);
}
