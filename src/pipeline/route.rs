//! Route lookup: longest-prefix match in the receiving port's table (policy routing), then
//! "main"; TTL check for forwarded packets (RFC 1812 section 5.3.1).

use super::{Batch, Ctx, Next, bits};
use crate::metrics::{DropReason, IcmpKind};
use crate::tables::{MAIN_TABLE, NextHop};
use crate::wire::ethernet::HEADER_LEN as ETH;
use crate::wire::ipv4;

pub fn run(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    // Per-batch cache of the last lookup: most batches are one flow or one destination.
    let mut last: Option<(u16, u32, Option<NextHop>)> = None;
    let (mut to_rewrite, mut to_local) = (0u64, 0u64);
    for i in bits(mask) {
        let d = b.desc[i];
        let m = b.meta[i];
        let ip = ipv4::Packet::new_unchecked(&ctx.pool.bytes(&d)[ETH..]);
        let (dst, ttl) = (ip.dst_u32(), ip.ttl());
        let table = if m.local_origin {
            MAIN_TABLE
        } else {
            ctx.snap.ports[m.rx_port as usize].table
        };
        let nh = match last {
            Some((t, a, nh)) if t == table && a == dst => nh,
            _ => {
                let nh = ctx.snap.lookup(table, dst);
                last = Some((table, dst, nh));
                nh
            }
        };
        match nh {
            Some(NextHop::Forward { port, via }) => {
                if !m.local_origin && ttl <= 1 {
                    b.icmp_error(i, DropReason::RouteTtlExpired, IcmpKind::TimeExceeded, 0);
                    continue;
                }
                b.meta[i].tx_port = port;
                b.meta[i].nexthop = if via == 0 { dst } else { via };
                to_rewrite |= 1 << i;
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
