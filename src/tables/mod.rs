//! Tables built by the control thread and read by the workers.
//!
//! A [`Snapshot`] is immutable once built. The control thread builds a new one off the hot path
//! and swaps it in atomically; a worker loads the current one once per batch. Mutable state that
//! the dataplane itself learns (neighbours) lives per worker in [`neighbor`].

pub mod acl;
pub mod addrmap;
pub mod flows;
pub mod ha;
pub mod ip6;
pub mod lpm;
pub mod lpm6;
pub mod nat;
pub mod neighbor;
pub mod policy;
pub mod reass;
pub mod session;

/// A xorshift generator for the tables' randomised tests.
#[cfg(test)]
pub(crate) mod test_rng {
    pub struct Rng(pub u64);

    impl Rng {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// A number below `n`.
        pub fn pick(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }
}

use crate::metrics::ArpKind;
use crate::wire::EthernetAddress;
use crate::wire::checksum::AddrSums;
use addrmap::{AddrFilter, AddrMap};
use lpm::Lpm;
use std::collections::{HashMap, HashSet};

/// Index of the "main" routing table.
pub const MAIN_TABLE: u16 = 0;

/// One port as the dataplane sees it.
#[derive(Clone, Debug)]
pub struct PortInfo {
    pub name: String,
    pub iface: String,
    pub mac: EthernetAddress,
    /// (address, prefix length), host order.
    pub addrs: Vec<(u32, u8)>,
    pub mtu: u16,
    /// Routing table for packets arriving here (policy routing, seed 001 `ip rule iif`).
    pub table: u16,
    /// Sender address for ARP requests when no port address is on-link of the target.
    pub arp_source: Option<u32>,
}

impl PortInfo {
    /// The address to speak from toward `target` on this port: one whose subnet holds the
    /// target, else `arp_source`, else the first address (RFC 826 needs some sender address).
    pub fn source_for(&self, target: u32) -> Option<u32> {
        self.addrs
            .iter()
            .find(|(a, l)| same_subnet(*a, target, *l))
            .map(|(a, _)| *a)
            .or(self.arp_source)
            .or(self.addrs.first().map(|(a, _)| *a))
    }

    /// True when `ip` is inside one of this port's subnets.
    pub fn on_link(&self, ip: u32) -> bool {
        self.addrs.iter().any(|(a, l)| same_subnet(*a, ip, *l))
    }
}

/// Network mask for a prefix length.
#[inline]
pub fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

#[inline]
pub fn same_subnet(a: u32, b: u32, len: u8) -> bool {
    (a ^ b) & mask(len) == 0
}

/// What a route lookup resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// Send out `port`, to `via` (0: on-link, the destination itself is the neighbour).
    Forward { port: u8, via: u32 },
    /// One of vgate's own addresses, configured on `port`.
    Local { port: u8 },
    /// Broadcast address of a connected subnet: not forwarded (RFC 2644).
    Broadcast,
}

/// A route as configured, for the API and `vgate show routes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    pub prefix: u32,
    pub len: u8,
    pub nexthop: NextHop,
    /// "static", "connected", "local", "broadcast".
    pub origin: &'static str,
}

/// One routing table.
pub struct RouteTable {
    pub name: String,
    pub lpm: Lpm,
    pub routes: Vec<RouteInfo>,
}

/// What vgate answers ARP requests with on one port.
#[derive(Clone, Debug, Default)]
pub struct PortArp {
    /// Exact addresses: the port's own, and later floating IPs and endpoints.
    pub exact: HashMap<u32, (EthernetAddress, ArpKind)>,
    /// Proxy-ARP prefixes (network, mask), answered with the port MAC.
    pub proxy: Vec<(u32, u32)>,
    /// Destination MACs accepted besides the port MAC and broadcast.
    pub extra_macs: HashSet<EthernetAddress>,
    /// The one of `extra_macs` the common case (and so the fast path) takes besides the port
    /// MAC: the gateway MAC of the port's flat network, else a VRRP group's virtual MAC.
    pub fast_mac: Option<EthernetAddress>,
    /// On a port with VRRP groups: the group slot each answered address follows (every
    /// address but the node's own port addresses; `tunnel.local` follows too).
    pub owned: HashMap<u32, u8>,
    /// The group the proxy-ARP prefixes follow (the port's first group).
    pub proxy_owner: Option<u8>,
    /// MACs the groups carry with them (virtual MACs, gateway MACs of the port's networks):
    /// a backup takes no frame to them.
    pub owned_macs: Vec<(EthernetAddress, u8)>,
}

impl PortArp {
    /// The MAC to answer a request for `ip` with, if any.
    #[inline]
    pub fn answer(&self, ip: u32, port_mac: EthernetAddress) -> Option<(EthernetAddress, ArpKind)> {
        if let Some(a) = self.exact.get(&ip) {
            return Some(*a);
        }
        self.proxy
            .iter()
            .any(|(net, m)| ip & m == *net)
            .then_some((port_mac, ArpKind::Proxy))
    }

    /// The VRRP group slot `ip` follows on this port, if any: answered, and received, only
    /// while this node is that group's master.
    #[inline]
    pub fn owner(&self, ip: u32) -> Option<u8> {
        if let Some(&g) = self.owned.get(&ip) {
            return Some(g);
        }
        self.proxy_owner
            .filter(|_| self.proxy.iter().any(|(net, m)| ip & m == *net))
    }
}

/// The published [`Snapshot`] with a change counter. A worker checks the counter on every
/// poll (one atomic load) and loads the snapshot only when it moved, so an empty poll pays
/// no `ArcSwap` load and no per-snapshot bookkeeping.
pub struct SharedTables {
    current: arc_swap::ArcSwap<Snapshot>,
    changes: std::sync::atomic::AtomicU64,
}

impl SharedTables {
    pub fn new(snap: Snapshot) -> SharedTables {
        SharedTables::from_arc(std::sync::Arc::new(snap))
    }

    /// Over a snapshot others may hold too.
    pub fn from_arc(snap: std::sync::Arc<Snapshot>) -> SharedTables {
        SharedTables {
            current: arc_swap::ArcSwap::new(snap),
            changes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The current snapshot (control thread, API, tests).
    pub fn load(&self) -> arc_swap::Guard<std::sync::Arc<Snapshot>> {
        self.current.load()
    }

    /// The current snapshot, owned (a worker keeps it until the next change).
    pub fn load_full(&self) -> std::sync::Arc<Snapshot> {
        self.current.load_full()
    }

    /// Publish `snap`; workers pick it up at their next poll.
    pub fn store(&self, snap: std::sync::Arc<Snapshot>) {
        self.current.store(snap);
        // Release after the store: a worker that sees the new count loads this snapshot
        // (or a newer one).
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// How many snapshots were published since the first.
    #[inline]
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Everything a worker reads, built by the control thread.
pub struct Snapshot {
    pub generation: u64,
    pub ports: Vec<PortInfo>,
    /// Index [`MAIN_TABLE`] is "main".
    pub tables: Vec<RouteTable>,
    pub nexthops: Vec<NextHop>,
    /// Per port, indexed like `ports`.
    pub arp: Vec<PortArp>,
    /// Tenant networks.
    pub networks: Vec<NetworkInfo>,
    /// Floating IPs (1:1 NAT, OVN dnat_and_snat).
    pub fips: Vec<FipEntry>,
    /// Floating IP index by external address (looked up per packet: [`AddrMap`]).
    pub fip_by_external: AddrMap,
    /// Floating IP index by internal address (internal addresses are unique: tenant subnets
    /// never overlap).
    pub fip_by_internal: AddrMap,
    /// SNAT rules, indexed like `NetworkInfo::snat`.
    pub snat: Vec<SnatRule>,
    /// SNAT rule index by external address.
    pub snat_by_external: AddrMap,
    /// Every address nat_in translates to, in one map for one lookup per packet: a floating
    /// IP's index, or [`NAT_SNAT`] | an SNAT rule's index.
    pub nat_by_external: AddrMap,
    /// Tenant networks by subnet (subnets never overlap).
    pub network_ranges: SubnetIndex,
    /// The Geneve underlay endpoint (`[tunnel]`), when Geneve networks are served.
    pub tunnel: Option<TunnelInfo>,
    /// `[[chassis]]`, in configuration order.
    pub chassis: Vec<ChassisInfo>,
    /// Chassis index by underlay address.
    pub chassis_by_addr: AddrMap,
    /// Geneve network index by VNI.
    pub network_by_vni: AddrMap,
    /// `[[endpoint]]`s of every network.
    pub endpoints: Vec<EndpointInfo>,
    /// Endpoint index by IP (tenant subnets never overlap).
    pub endpoint_by_ip: AddrMap,
    /// vgate's own addresses (ports, gateways): never a valid source of a received packet.
    pub own: OwnAddrs,
    /// Floating IPs and SNAT addresses: sources only vgate may send from.
    pub nat_sources: OwnAddrs,
    /// Received packets try the fast path (`pipeline::fast`) first. `dataplane.fast_path`
    /// sets it; a feature the fast path does not decide by the stages' own functions must
    /// clear it in `build_snapshot` for the configurations that use it, so that it never
    /// slips past the fast path.
    pub fast_path: bool,
    /// ACLs and rate limits on floating IPs and networks.
    pub policy: policy::Policies,
    /// VRRP groups (`[[vrrp]]`), indexed by slot.
    pub vrrp: Vec<ha::VrrpGroup>,
    /// IPv6: addresses, routes, RAs, proxy NDP, endpoints.
    pub ip6: ip6::Ip6Tables,
}

/// Marks an SNAT rule in [`Snapshot::nat_by_external`] (floating IPs are far fewer than
/// 2^15: `metrics::MAX_FIPS`).
pub const NAT_SNAT: u16 = 0x8000;
const _: () = assert!(crate::metrics::MAX_FIPS < NAT_SNAT as usize);

/// A small set of addresses with a one-load pre-filter ([`AddrFilter`]), for a check that
/// runs on every received packet and almost never matches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnAddrs {
    filter: AddrFilter,
    addrs: Vec<u32>,
}

impl OwnAddrs {
    pub fn new(addrs: impl IntoIterator<Item = u32>) -> OwnAddrs {
        let mut o = OwnAddrs::default();
        for a in addrs {
            if !o.addrs.contains(&a) {
                o.filter.insert(a);
                o.addrs.push(a);
            }
        }
        o
    }

    /// False means `a` is certainly not in the set; true means look with
    /// [`OwnAddrs::contains`].
    #[inline(always)]
    pub fn maybe(&self, a: u32) -> bool {
        self.filter.maybe(a)
    }

    #[inline]
    pub fn contains(&self, a: u32) -> bool {
        self.maybe(a) && self.addrs.contains(&a)
    }
}

/// Non-overlapping address ranges (subnets), each naming a value (a network): sorted by
/// start, with an index by /16 so that a lookup searches only the ranges that can hold the
/// address (usually one) instead of all of them, and for a /16 that only one range overlaps
/// (a network of a /16 or more, or the only one in its /16) names that range outright. The
/// index costs 384 KiB, and is only built for more than [`SubnetIndex::SMALL`] ranges: a
/// search over so few is as quick.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubnetIndex {
    /// (first address, last address, value), sorted, never overlapping.
    ranges: Vec<(u32, u32, u16)>,
    /// For each /16 `h` and one past the last: how many ranges start below `h << 16`. The
    /// ranges an address of `h` can fall in start in `ranges[..by16[h + 1]]`, and all of
    /// `ranges[..by16[h]]` start below it. Empty for a few ranges.
    by16: Box<[u32]>,
    /// For each /16: [`SubnetIndex::NONE`] when no range overlaps it, `k + 1` when only
    /// `ranges[k]` does, [`SubnetIndex::MANY`] otherwise (search `by16`'s ranges). Empty for
    /// a few ranges.
    one16: Box<[u16]>,
}

impl SubnetIndex {
    /// Up to this many ranges are searched without the index.
    pub const SMALL: usize = 8;
    /// `one16`: no range overlaps the /16.
    const NONE: u16 = 0;
    /// `one16`: several ranges overlap the /16 (or the one that does has an index too large
    /// to name).
    const MANY: u16 = u16::MAX;

    /// Index `ranges` ((first, last, value)); they must not overlap.
    pub fn new(mut ranges: Vec<(u32, u32, u16)>) -> SubnetIndex {
        ranges.sort_unstable();
        debug_assert!(ranges.windows(2).all(|w| w[0].1 < w[1].0), "overlap");
        if ranges.len() <= Self::SMALL {
            return SubnetIndex {
                ranges,
                by16: Box::default(),
                one16: Box::default(),
            };
        }
        let mut by16 = vec![0u32; (1 << 16) + 1].into_boxed_slice();
        let mut below = 0;
        for (h, n) in by16.iter_mut().enumerate() {
            let start = (h as u64) << 16;
            while below < ranges.len() && u64::from(ranges[below].0) < start {
                below += 1;
            }
            *n = below as u32;
        }
        // The ranges overlapping /16 `h`: those starting in it, and the one before them if it
        // reaches into it.
        let mut one16 = vec![Self::NONE; 1 << 16].into_boxed_slice();
        for (h, one) in one16.iter_mut().enumerate() {
            let first = (h as u32) << 16;
            let (lo, hi) = (by16[h] as usize, by16[h + 1] as usize);
            let before = lo.checked_sub(1).filter(|&k| ranges[k].1 >= first);
            *one = match (before, hi - lo) {
                (None, 0) => Self::NONE,
                (Some(k), 0) => u16::try_from(k + 1).unwrap_or(Self::MANY),
                (None, 1) => u16::try_from(lo + 1).unwrap_or(Self::MANY),
                _ => Self::MANY,
            };
        }
        SubnetIndex {
            ranges,
            by16,
            one16,
        }
    }

    /// The first address of the lowest range and the last of the highest.
    pub fn span(&self) -> Option<(u32, u32)> {
        Some((self.ranges.first()?.0, self.ranges.last()?.1))
    }

    /// The value of the range holding `ip`.
    #[inline(always)]
    pub fn lookup(&self, ip: u32) -> Option<u16> {
        let h = (ip >> 16) as usize;
        match self.one16.get(h).copied() {
            Some(Self::NONE) => return None,
            Some(Self::MANY) | None => {}
            Some(k) => {
                let &(start, end, n) = self.ranges.get(usize::from(k) - 1)?;
                return (start <= ip && ip <= end).then_some(n);
            }
        }
        let (lo, hi) = match (self.by16.get(h), self.by16.get(h + 1)) {
            (Some(&lo), Some(&hi)) => (lo as usize, hi as usize),
            _ => (0, self.ranges.len()),
        };
        // The number of ranges starting at or below `ip`: all below `lo`, some up to `hi`.
        // Most /16s have at most one range starting in them: no search.
        let i = match self.ranges.get(lo..hi)? {
            [] => lo,
            [(start, _, _)] => lo + usize::from(*start <= ip),
            some => lo + some.partition_point(|&(start, _, _)| start <= ip),
        };
        let &(_, end, n) = self.ranges.get(i.checked_sub(1)?)?;
        (ip <= end).then_some(n)
    }
}

/// Route values (LPM payloads) from this one up name a Geneve network (value - base)
/// instead of an index into [`Snapshot::nexthops`]: the subnet of a Geneve network is
/// reached through the tunnel, not out of a port.
pub const TUNNEL_HOP_BASE: u32 = 1 << 24;

/// `[tunnel]`: vgate's end of the Geneve underlay (RFC 8926).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelInfo {
    /// Outer source address; one of the port addresses.
    pub local: u32,
    pub udp_port: u16,
    /// Compute the outer UDP checksum (RFC 8926 section 3.3 allows zero over IPv4).
    pub udp_checksum: bool,
    /// Clamp the TCP MSS of SYNs through the tunnel to the tenant MTU - 40.
    pub tcp_mss_clamp: bool,
}

/// A `[[chassis]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChassisInfo {
    pub name: String,
    pub address: u32,
}

/// An `[[endpoint]]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    pub ip: u32,
    pub mac: EthernetAddress,
    pub network: u16,
    /// Index into [`Snapshot::chassis`] for an endpoint of a Geneve network.
    pub chassis: Option<u16>,
    /// A VIP whose chassis follows gratuitous ARPs (OVN virtual port).
    pub is_virtual: bool,
}

/// A tenant network as the dataplane sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkInfo {
    pub name: String,
    pub subnet: u32,
    pub len: u8,
    pub gateway: u32,
    pub gateway_mac: EthernetAddress,
    /// Flat network: the port it is attached to.
    pub port: Option<u8>,
    /// Geneve network: its VNI.
    pub vni: Option<u32>,
    /// Index of its SNAT rule.
    pub snat: Option<u16>,
}

impl NetworkInfo {
    #[inline]
    pub fn contains(&self, ip: u32) -> bool {
        same_subnet(self.subnet, ip, self.len)
    }
}

/// A floating IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FipEntry {
    pub external: u32,
    pub internal: u32,
    pub network: u16,
    /// The port on whose subnet the external address lives (where ARP is answered).
    pub ext_port: u8,
    /// The MAC answered in ARP: `floating_ip.mac` (distributed FIP) or the port MAC.
    pub mac: EthernetAddress,
    /// Counter slot, stable across reloads for the same external address.
    pub slot: u16,
    /// RFC 1624 eqn. 3's sums for `external` becoming `internal` (DNAT) and for `internal`
    /// becoming `external` (SNAT): the same for every packet of the floating IP, so summed
    /// once here.
    pub sums_in: AddrSums,
    pub sums_out: AddrSums,
}

/// A `[[snat]]` rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnatRule {
    pub network: u16,
    pub params: nat::SnatParams,
}

/// The routing tables a packet is looked up in: one table first (the receiving port's,
/// policy routing), then "main" when that table has no match (the Linux `ip rule iif DEV
/// lookup T` followed by the default `lookup main` rule). The fallback is decided here
/// only: the route stage, the fast path and [`Snapshot::lookup`] all look up through it.
#[derive(Clone, Copy)]
pub struct Routes<'a> {
    first: &'a Lpm,
    /// "main", when `first` is another table.
    main: Option<&'a Lpm>,
}

impl Routes<'_> {
    /// The route value of `dst`: an index into [`Snapshot::nexthops`], or a Geneve network
    /// ([`Snapshot::tunnel_network`]).
    #[inline(always)]
    pub fn lookup(self, dst: u32) -> Option<u32> {
        match self.first.lookup(dst) {
            None => self.main.and_then(|m| m.lookup(dst)),
            h => h,
        }
    }

    /// [`Routes::lookup`] of many destinations: `out[k]` for `dsts[k]`, `k < min(dsts.len(),
    /// out.len())`; the rest of `out` is left as it is. The first table's loads for the
    /// whole batch are issued together ([`Lpm::lookup_batch`]), so their cache misses
    /// overlap instead of queueing one after another.
    #[inline]
    pub fn lookup_batch(self, dsts: &[u32], out: &mut [Option<u32>]) {
        let n = dsts.len().min(out.len());
        let (dsts, out) = (&dsts[..n], &mut out[..n]);
        self.first.lookup_batch(dsts, out);
        if let Some(main) = self.main {
            for (o, &dst) in out.iter_mut().zip(dsts) {
                if o.is_none() {
                    *o = main.lookup(dst);
                }
            }
        }
    }
}

impl Snapshot {
    /// The tables a packet is looked up in when `table` is its first ([`Routes`]).
    #[inline(always)]
    pub fn routes(&self, table: u16) -> Routes<'_> {
        Routes {
            first: &self.tables[usize::from(table)].lpm,
            main: (table != MAIN_TABLE).then(|| &self.tables[usize::from(MAIN_TABLE)].lpm),
        }
    }

    /// Route lookup through [`Snapshot::routes`]`(table)`. A Geneve network's subnet has no
    /// [`NextHop`] (None): see [`Snapshot::tunnel_network`].
    #[inline]
    pub fn lookup(&self, table: u16, dst: u32) -> Option<NextHop> {
        self.routes(table)
            .lookup(dst)
            .and_then(|i| self.nexthops.get(i as usize).copied())
    }

    /// The Geneve network a route value (from [`Routes::lookup`]) names, if it
    /// names one rather than a [`NextHop`].
    #[inline]
    pub fn tunnel_network(&self, hop: u32) -> Option<u16> {
        hop.checked_sub(TUNNEL_HOP_BASE)
            .filter(|n| (*n as usize) < self.networks.len())
            .map(|n| n as u16)
    }

    /// The tenant network holding `ip` that is reachable through port `port` (flat networks).
    #[inline]
    pub fn flat_network_of(&self, port: u8, ip: u32) -> Option<u16> {
        self.networks
            .iter()
            .position(|n| n.port == Some(port) && n.contains(ip))
            .map(|i| i as u16)
    }

    /// The tenant network holding `ip`, whatever its attachment.
    #[inline]
    pub fn network_of(&self, ip: u32) -> Option<u16> {
        self.network_ranges.lookup(ip)
    }

    /// True when any floating IP or SNAT rule is configured (the NAT stages run at all).
    #[inline]
    pub fn has_nat(&self) -> bool {
        !self.fips.is_empty() || !self.snat.is_empty()
    }

    /// True when `ip` is one of vgate's own addresses.
    pub fn is_local(&self, ip: u32) -> bool {
        self.ports
            .iter()
            .any(|p| p.addrs.iter().any(|(a, _)| *a == ip))
    }

    /// The port index with this name.
    pub fn port_by_name(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }

    /// An address of vgate to originate packets from when nothing better is known.
    pub fn any_local_address(&self) -> Option<u32> {
        self.ports
            .iter()
            .flat_map(|p| p.addrs.iter().map(|(a, _)| *a).chain(p.arp_source))
            .next()
    }
}

#[cfg(test)]
mod tests {
    use super::{SubnetIndex, mask};

    fn range(a: [u8; 4], len: u8, v: u16) -> (u32, u32, u16) {
        let start = u32::from_be_bytes(a);
        (start, start | !mask(len), v)
    }

    #[test]
    fn subnet_index_finds_what_a_scan_finds() {
        // A /8 over many /16s, /24s side by side in one /16, a /30, a /32, both ends of the
        // address space.
        let ranges = vec![
            range([10, 0, 0, 0], 8, 0),
            range([192, 168, 1, 0], 24, 1),
            range([192, 168, 2, 0], 24, 2),
            range([192, 168, 3, 4], 30, 3),
            range([172, 16, 0, 7], 32, 4),
            range([0, 0, 0, 0], 24, 5),
            range([255, 255, 255, 0], 24, 6),
        ];
        // Indexed, and (the first few) searched whole.
        let few = ranges.len();
        assert!(few <= SubnetIndex::SMALL);
        let small = SubnetIndex::new(ranges.clone());
        let mut ranges = ranges;
        for k in 0..3u8 {
            ranges.push(range([100, 64 + k, 0, 0], 16, 7 + u16::from(k)));
        }
        // A range reaching into the next /16 and another starting in that /16 after it.
        ranges.push((0x0b00_ff00, 0x0b01_00ff, 10));
        ranges.push(range([11, 1, 1, 0], 24, 11));
        assert!(ranges.len() > SubnetIndex::SMALL);
        let index = SubnetIndex::new(ranges.clone());
        let scan = |ip: u32| {
            ranges
                .iter()
                .find(|&&(s, e, _)| s <= ip && ip <= e)
                .map(|r| r.2)
        };
        let mut probes: Vec<u32> = ranges
            .iter()
            .flat_map(|&(s, e, _)| {
                [
                    s.wrapping_sub(1),
                    s,
                    s.wrapping_add(1),
                    e - 1,
                    e,
                    e.wrapping_add(1),
                ]
            })
            .collect();
        let mut x = 0x1234_5678u32;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            probes.push(x);
            probes.push(0xc0a8_0000 | (x & 0xffff));
            probes.push(0x0b00_0000 | (x & 0x1_ffff));
        }
        for ip in probes {
            assert_eq!(index.lookup(ip), scan(ip), "{ip:#x}");
            let in_small = scan(ip).filter(|&v| usize::from(v) < few);
            assert_eq!(small.lookup(ip), in_small, "{ip:#x}");
        }
        assert_eq!(index.lookup(u32::from_be_bytes([10, 200, 3, 1])), Some(0));
        assert_eq!(index.lookup(u32::from_be_bytes([192, 168, 3, 8])), None);
        assert_eq!(index.span(), Some((0, u32::MAX)));
    }

    #[test]
    fn an_empty_subnet_index_holds_nothing() {
        let index = SubnetIndex::new(Vec::new());
        assert_eq!(index.lookup(0), None);
        assert_eq!(index.lookup(u32::MAX), None);
        assert_eq!(index.span(), None);
    }
}
