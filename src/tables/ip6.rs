//! The IPv6 part of a [`Snapshot`](super::Snapshot): addresses per port, routes per table,
//! the networks vgate advertises a prefix on, proxy NDP and the endpoints answered from the
//! table. Built by the control thread, read by the workers; immutable like the rest.
//!
//! Dual stack, no translation: IPv6 tenant prefixes are routed (Neutron's model), so
//! nothing here touches NAT.

use super::lpm6::Lpm6;
use super::neighbor::IntMap;
use crate::wire::EthernetAddress;
use crate::wire::ipv6::class;
use std::collections::HashMap;
use std::net::Ipv6Addr;

/// `fe80::/10` (RFC 4291 section 2.5.6).
#[inline(always)]
pub const fn is_link_local(a: u128) -> bool {
    class::is_link_local(Ipv6Addr::from_bits(a))
}

/// `ff00::/8`.
#[inline(always)]
pub const fn is_multicast(a: u128) -> bool {
    class::is_multicast(Ipv6Addr::from_bits(a))
}

/// The link-local address of a MAC: `fe80::` and the modified EUI-64 interface identifier
/// (RFC 4291 section 2.5.6 and appendix A; RFC 2464 section 4).
pub const fn link_local(mac: EthernetAddress) -> u128 {
    let m = mac.0;
    let iid = u64::from_be_bytes([m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]);
    (0xfe80u128 << 112) | iid as u128
}

/// Network mask of a prefix length.
#[inline(always)]
pub const fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

/// True when `a` and `b` share the first `len` bits.
#[inline(always)]
pub const fn same_prefix(a: u128, b: u128, len: u8) -> bool {
    (a ^ b) & mask(len) == 0
}

/// One port's IPv6 side.
#[derive(Clone, Debug, Default)]
pub struct Port6 {
    /// Global (or unique-local) addresses with their prefix lengths.
    pub addrs: Vec<(u128, u8)>,
    /// From the port MAC (RFC 4291 section 2.5.6): NDP and RAs speak from it.
    pub link_local: u128,
    pub mac: EthernetAddress,
}

impl Port6 {
    /// The address to speak from toward `dst` on this port: one whose prefix holds it, the
    /// link-local address toward a link-local destination, else the first global address
    /// (RFC 6724 section 5 prefers the matching scope and the longest common prefix; a
    /// port has few addresses, and the one on the destination's prefix is that).
    pub fn source_for(&self, dst: u128) -> Option<u128> {
        if is_link_local(dst) {
            return Some(self.link_local);
        }
        self.addrs
            .iter()
            .find(|(a, l)| same_prefix(*a, dst, *l))
            .or(self.addrs.first())
            .map(|(a, _)| *a)
    }

    /// True when `ip` is on one of this port's prefixes.
    pub fn on_link(&self, ip: u128) -> bool {
        self.addrs.iter().any(|(a, l)| same_prefix(*a, ip, *l))
    }
}

/// Where a route sends a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hop6 {
    /// Out of `port` to `via` (0: on-link, the destination is the neighbour).
    Forward { port: u8, via: u128 },
    /// Into Geneve network `network` (an index into the snapshot's networks), toward the
    /// chassis of the destination's endpoint.
    Tunnel { network: u16 },
}

/// A route as configured or derived, for the API and `vgate show routes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route6Info {
    pub prefix: u128,
    pub len: u8,
    pub hop: Hop6,
    /// "static", "connected".
    pub origin: &'static str,
}

/// One routing table's IPv6 routes (same index as [`super::Snapshot::tables`]).
pub struct Table6 {
    pub lpm: Lpm6,
    pub routes: Vec<Route6Info>,
}

/// Router advertisements on a network (RFC 4861 section 6.2.1's variables).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ra6 {
    pub managed: bool,
    pub other: bool,
    pub interval_s: u32,
    pub lifetime_s: u32,
    pub rdnss: Vec<u128>,
    /// The tenant MTU, advertised in the MTU option.
    pub mtu: u16,
}

/// A tenant network's IPv6 side.
#[derive(Clone, Debug)]
pub struct Network6 {
    /// Index in [`super::Snapshot::networks`].
    pub network: u16,
    /// The port of a flat network; None behind Geneve.
    pub port: Option<u8>,
    /// The VNI of a Geneve network.
    pub vni: Option<u32>,
    pub subnet: u128,
    pub len: u8,
    /// The gateway address (link-local unless configured otherwise), answered with
    /// `gateway_mac`; RAs come from it.
    pub gateway: u128,
    pub gateway_mac: EthernetAddress,
    /// None: no RAs on this network.
    pub ra: Option<Ra6>,
}

/// Who vgate answers a neighbour solicitation for, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NdpKind {
    /// One of vgate's own addresses (a port's, its link-local, a network gateway).
    Router,
    /// An address in a `[[proxy_ndp]]` prefix.
    Proxy,
    /// An endpoint's `ip6` (the table answers for the VM, as the ARP responder does).
    Endpoint,
}

/// A neighbour advertisement to send for a solicited target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NdpAnswer {
    pub mac: EthernetAddress,
    pub kind: NdpKind,
}

impl NdpAnswer {
    /// RFC 4861 section 7.2.4: the Router flag for a router's own addresses; the Override
    /// flag clear for a proxied target (section 7.2.8), so the owner's own answer wins.
    pub fn flags(&self) -> (bool, bool) {
        match self.kind {
            NdpKind::Router => (true, true),
            NdpKind::Proxy => (true, false),
            NdpKind::Endpoint => (false, true),
        }
    }
}

/// The link a packet came from: a port, or (decapsulated from Geneve) a tenant network.
/// Link-local addresses and Neighbor Discovery are per link (RFC 4291 section 2.5.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Port(u8),
    /// An index into the snapshot's networks.
    Network(u16),
}

impl Link {
    /// The link of a received packet: its tenant network when it came through a tunnel
    /// (`vni_net`, the network index + 1), else its port.
    #[inline(always)]
    pub fn of(rx_port: u8, vni_net: u8) -> Link {
        match vni_net {
            0 => Link::Port(rx_port),
            n => Link::Network(u16::from(n) - 1),
        }
    }
}

/// The IPv6 tables.
#[derive(Default)]
pub struct Ip6Tables {
    /// Per port, same index as [`super::Snapshot::ports`].
    pub ports: Vec<Port6>,
    /// Per routing table; empty when no IPv6 is configured.
    pub tables: Vec<Table6>,
    pub hops: Vec<Hop6>,
    pub networks: Vec<Network6>,
    /// `[[proxy_ndp]]`: (port, prefix, length).
    pub proxy: Vec<(u8, u128, u8)>,
    /// Endpoints with an `ip6`: address -> (MAC, network index).
    pub endpoints: HashMap<u128, (EthernetAddress, u16)>,
    /// The chassis address of each endpoint with an `ip6` on a Geneve network.
    pub endpoint_chassis: HashMap<u128, u32>,
    /// The chassis of every endpoint of a Geneve network with `subnet6`, by (network index,
    /// MAC): where vgate's answers to a VM's NDP and router solicitations go back to (a VM
    /// solicits from its link-local address, which no table holds).
    pub chassis_by_mac: HashMap<(u16, [u8; 6]), u32>,
    /// Global addresses of vgate (ports' and networks' global gateways) -> port. Looked up
    /// twice per packet (own source, for vgate): hashed with a multiply, not SipHash,
    /// which cost 168 instructions a lookup (bench/HISTORY.md, "IPv6 forwarding beside
    /// IPv4").
    pub own: IntMap<u128, u8>,
}

impl Ip6Tables {
    /// True when any IPv6 address, route or network is configured: without, IPv6 frames
    /// are dropped at l2_input as before.
    pub fn enabled(&self) -> bool {
        !self.tables.is_empty()
    }

    /// The route for `dst` in `table`, then in main (the same fallback as IPv4's
    /// [`super::Routes`]).
    #[inline]
    pub fn lookup(&self, table: u16, dst: u128) -> Option<Hop6> {
        let t = usize::from(table);
        let v = self
            .tables
            .get(t)
            .and_then(|t| t.lpm.lookup(dst))
            .or_else(|| {
                (t != 0)
                    .then(|| self.tables.first().and_then(|m| m.lpm.lookup(dst)))
                    .flatten()
            })?;
        self.hops.get(v as usize).copied()
    }

    /// True when `dst`, received on `link`, is addressed to vgate itself: a global address
    /// of any port or network gateway, or a link-local address of the link (a port's own,
    /// or a gateway of a network on it; link-local addresses are per link, RFC 4291 section
    /// 2.5.6).
    #[inline]
    pub fn is_local(&self, link: Link, dst: u128) -> bool {
        if !is_link_local(dst) {
            return self.own.contains_key(&dst);
        }
        match link {
            Link::Port(port) => {
                self.ports
                    .get(usize::from(port))
                    .is_some_and(|p| p.link_local == dst)
                    || self
                        .networks
                        .iter()
                        .any(|n| n.port == Some(port) && n.gateway == dst)
            }
            Link::Network(net) => self.network6(net).is_some_and(|n| n.gateway == dst),
        }
    }

    /// True when `a` is an address only vgate may send from on `link` (own-source check
    /// and anti-spoofing of neighbour advertisements).
    pub fn is_own(&self, link: Link, a: u128) -> bool {
        self.is_local(link, a)
    }

    /// The IPv6 side of network `net` (an index into the snapshot's networks).
    #[inline]
    pub fn network6(&self, net: u16) -> Option<&Network6> {
        self.networks.iter().find(|n| n.network == net)
    }

    /// What to answer a neighbour solicitation for `target` received on `link` with, if
    /// anything. `from` is the soliciting node (an endpoint is never answered for itself).
    pub fn answer(&self, link: Link, target: u128, from: u128) -> Option<NdpAnswer> {
        let router = |mac| {
            Some(NdpAnswer {
                mac,
                kind: NdpKind::Router,
            })
        };
        let endpoint = |net: u16| {
            self.endpoints
                .get(&target)
                .filter(|&&(_, n)| n == net && target != from)
                .map(|&(mac, _)| NdpAnswer {
                    mac,
                    kind: NdpKind::Endpoint,
                })
        };
        let port = match link {
            Link::Network(net) => {
                let n = self.network6(net)?;
                return if n.gateway == target {
                    router(n.gateway_mac)
                } else {
                    endpoint(net)
                };
            }
            Link::Port(port) => port,
        };
        let p = self.ports.get(usize::from(port))?;
        if target == p.link_local || self.own.get(&target) == Some(&port) {
            return router(p.mac);
        }
        if let Some(n) = self
            .networks
            .iter()
            .find(|n| n.port == Some(port) && n.gateway == target)
        {
            return router(n.gateway_mac);
        }
        if let Some(a) = self
            .networks
            .iter()
            .filter(|n| n.port == Some(port))
            .find_map(|n| endpoint(n.network))
        {
            return Some(a);
        }
        self.proxy
            .iter()
            .any(|&(pp, prefix, len)| pp == port && same_prefix(prefix, target, len))
            .then_some(NdpAnswer {
                mac: p.mac,
                kind: NdpKind::Proxy,
            })
    }

    /// An address of vgate to send an error or a solicitation from on `port` toward `dst`;
    /// any port's global address when `port` has none.
    pub fn source_for(&self, port: u8, dst: u128) -> Option<u128> {
        self.ports
            .get(usize::from(port))
            .and_then(|p| p.source_for(dst))
            .or_else(|| {
                self.ports
                    .iter()
                    .find_map(|p| p.addrs.first().map(|(a, _)| *a))
            })
    }

    /// The network whose gateway answers on `port` for hosts on `src`'s prefix: RAs and
    /// errors to a tenant host speak from its gateway.
    pub fn network_on(&self, port: u8, src: u128) -> Option<&Network6> {
        self.networks
            .iter()
            .find(|n| n.port == Some(port) && same_prefix(n.subnet, src, n.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_is_modified_eui64() {
        // RFC 4291 appendix A: 02:00:5e:10:00:00 -> fe80::5eff:fe10:0 with the U/L bit flipped.
        let mac = EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        let ll = link_local(mac);
        assert_eq!(
            std::net::Ipv6Addr::from_bits(ll).to_string(),
            "fe80::5054:ff:fe12:3456"
        );
        assert!(is_link_local(ll));
        assert!(!is_link_local(0x2001_0db8 << 96));
        assert!(is_multicast(0xff02 << 112 | 1));
    }

    #[test]
    fn masks_and_prefixes() {
        assert_eq!(mask(0), 0);
        assert_eq!(mask(128), u128::MAX);
        assert_eq!(mask(64), u128::MAX << 64);
        let a = 0x2001_0db8_0000_0001u128 << 64;
        assert!(same_prefix(a, a | 5, 64));
        assert!(!same_prefix(a, a | 5, 128));
    }
}
