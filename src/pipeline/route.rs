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

/// RFC 1812 section 5.3.1: a forwarded packet leaves with its TTL decremented, so only a
/// TTL above 1 is forwarded (the rest get time exceeded); vgate's own packets keep theirs.
/// The stage and the fast path both decide by this.
#[inline(always)]
pub(super) fn ttl_forwards(ttl: u8, local_origin: bool) -> bool {
    local_origin || ttl > 1
}

/// The neighbour a packet to `dst` is sent to by a route through `via` (0: on-link, the
/// destination itself).
#[inline(always)]
pub(super) fn next_hop(dst: u32, via: u32) -> u32 {
    if via == 0 { dst } else { via }
}

/// Route every packet of `mask` by [`Batch::dst`] and `Meta::ttl`.
pub fn run(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    if mask == 0 {
        return;
    }
    // Look the whole batch up at once in the table of its first packet: with a large table
    // every lookup is a cache miss, and a batch of independent loads overlaps them. Usually
    // every packet uses that table (one receiving port); any other is looked up again.
    let first = b.meta[mask.trailing_zeros() as usize & (MAX_BATCH - 1)];
    let table = table_of(ctx.snap, &first);
    let n = (u64::BITS - mask.leading_zeros()) as usize;
    let mut hop = [None; MAX_BATCH];
    ctx.snap
        .routes(table)
        .lookup_batch(&b.dst[..n], &mut hop[..n]);
    // Packets that do not go on to rewrite; all others do.
    let (mut other, mut to_local, mut to_encap) = (0u64, 0u64, 0u64);
    for i in bits(mask) {
        let m = &mut b.meta[i];
        let mut h = hop[i];
        if (m.local_origin, m.rx_port) != (first.local_origin, first.rx_port) {
            let t = table_of(ctx.snap, m);
            if t != table {
                h = ctx.snap.routes(t).lookup(b.dst[i]);
            }
        }
        let nh = h.and_then(|h| ctx.snap.nexthops.get(h as usize).copied());
        if let Some(NextHop::Forward { port, via }) = nh
            && ttl_forwards(m.ttl, m.local_origin)
        {
            m.tx_port = port;
            m.nexthop = next_hop(b.dst[i], via);
            continue;
        }
        other |= 1 << i;
        if nh.is_none()
            && let Some(_net) = h.and_then(|h| ctx.snap.tunnel_network(h))
        {
            if ttl_forwards(m.ttl, m.local_origin) {
                to_encap |= 1 << i;
            } else {
                b.icmp_error(i, DropReason::RouteTtlExpired, IcmpKind::TimeExceeded, 0);
            }
            continue;
        }
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
    let next = if ctx.snap.has_nat() {
        Next::NatOut
    } else {
        Next::Rewrite
    };
    b.set_next_mask(Next::Route, to_rewrite, next);
    b.set_next_mask(Next::Route, to_local, Next::Local);
    // Tunnel traffic is never source-translated (its destination is a tenant network).
    b.set_next_mask(Next::Route, to_encap, Next::Encap);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::apply::build_snapshot;
    use crate::control::config::Config;
    use crate::io::{Desc, FramePool};
    use crate::metrics::WorkerStats;
    use crate::pipeline::{TxQueues, WorkerState};
    use crate::tables::neighbor::NeighborConfig;

    const CONF: &str = r#"
[[port]]
name = "external"
iface = "ext0"
mac = "02:00:00:00:00:01"
addresses = ["203.0.113.2/24"]

[[port]]
name = "dmz"
iface = "dmz0"
mac = "02:00:00:00:00:03"
addresses = ["192.168.5.1/24"]
route_table = "dmz"

[[route]]
prefix = "198.51.100.0/24"
via = "203.0.113.1"

[[route]]
table = "dmz"
prefix = "198.51.100.0/25"
via = "192.168.5.7"
"#;

    fn ip(s: &str) -> u32 {
        s.parse::<std::net::Ipv4Addr>().unwrap().to_bits()
    }

    /// Packets of one pass from different ports and origins each use their own table, as
    /// `Snapshot::lookup` resolves it, whichever packet comes first.
    #[test]
    fn mixed_tables_in_one_batch() {
        let cfg = Config::from_toml_str(CONF).unwrap();
        let snap = build_snapshot(&cfg, 1, &|_| None, None).unwrap();
        let (ext, dmz) = (0u8, 1u8);
        let cases = [
            (dmz, false, "198.51.100.5", dmz, "192.168.5.7"),
            (ext, false, "198.51.100.5", ext, "203.0.113.1"),
            (dmz, false, "198.51.100.100", dmz, "192.168.5.7"),
            (dmz, true, "198.51.100.5", ext, "203.0.113.1"),
            (dmz, false, "198.51.100.200", ext, "203.0.113.1"),
            (ext, true, "198.51.100.6", ext, "203.0.113.1"),
        ];
        for rotate in 0..cases.len() {
            let mut b = Batch::default();
            for k in 0..cases.len() {
                let (rx_port, local_origin, dst, ..) = cases[(k + rotate) % cases.len()];
                let meta = Meta {
                    rx_port,
                    local_origin,
                    ttl: 64,
                    ..Meta::default()
                };
                assert!(b.push(Desc::default(), meta, Next::Route));
                b.dst[k] = ip(dst);
            }
            let mut pool = FramePool::new_heap(1);
            let mut state = WorkerState::new(NeighborConfig::default());
            let stats = WorkerStats::default();
            let mut tx = TxQueues::new(2, 8);
            let mut ctx = Ctx {
                snap: &snap,
                pool: &mut pool,
                state: &mut state,
                stats: &stats,
                tx: &mut tx,
                now: 0,
            };
            let mask = b.mask(Next::Route);
            run(&mut ctx, &mut b, mask);
            assert_eq!(b.mask(Next::Rewrite), mask, "rotation {rotate}");
            for k in 0..cases.len() {
                let (rx_port, local_origin, dst, tx_port, nexthop) =
                    cases[(k + rotate) % cases.len()];
                let table = if local_origin {
                    MAIN_TABLE
                } else {
                    snap.ports[rx_port as usize].table
                };
                assert_eq!(
                    snap.lookup(table, ip(dst)),
                    Some(NextHop::Forward {
                        port: tx_port,
                        via: ip(nexthop)
                    })
                );
                let m = &b.meta[k];
                assert_eq!(
                    (m.tx_port, m.nexthop),
                    (tx_port, ip(nexthop)),
                    "rotation {rotate}, packet {k} to {dst}"
                );
            }
        }
    }
}
