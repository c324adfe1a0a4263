//! IPv6 (dual stack): the sections and keys only IPv6 has ([`Route6Cfg`], [`ProxyNdpCfg`],
//! [`RaCfg`]) and the semantic rules of every IPv6 key. NAT stays IPv4-only: IPv6 tenant
//! prefixes are routed, never translated.
//!
//! `port.addresses` and `[[route]]` hold both families in the TOML. A port's IPv6 addresses
//! are named after its IPv4 ones (`port[0].addresses[1]` is the first IPv6 address of a port
//! with one IPv4 address), the order they are written back in; routes keep the index of
//! their `[[route]]` element.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use super::validate::{Validator, first_seen};
use super::{Config, Ipv6Cidr, NetworkCfg};

/// Recursive DNS servers one router advertisement carries (RFC 8106 section 5.1).
pub const MAX_RDNSS: usize = 8;
/// RFC 4861 section 6.2.1: MaxRtrAdvInterval is 4 to 1800 seconds.
const RA_INTERVAL_S: RangeInclusive<u32> = 4..=1800;
/// RFC 4861 section 6.2.1: AdvDefaultLifetime is 0 or MaxRtrAdvInterval to 9000 seconds.
const MAX_RA_LIFETIME_S: u32 = 9000;

/// An IPv6 element of `[[route]]`: one static route ([`super::RouteCfg`] is an IPv4 one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route6Cfg {
    #[serde(default = "super::default_table")]
    pub table: String,
    pub prefix: Ipv6Cidr,
    /// Next hop, resolved by NDP; `None` for an on-link route. A link-local next hop needs
    /// `port`.
    #[serde(default)]
    pub via: Option<Ipv6Addr>,
    /// Optional when `via` is a global address on-link of exactly one port.
    #[serde(default)]
    pub port: Option<String>,
    /// Position of the element in the TOML `[[route]]` array, which holds both families;
    /// errors name it. Not written out.
    #[serde(skip)]
    pub index: usize,
}

impl Default for Route6Cfg {
    /// An on-link default route in "main" (for struct update syntax; it needs a `port` or a
    /// `via` to validate).
    fn default() -> Self {
        Route6Cfg {
            table: super::default_table(),
            prefix: Ipv6Cidr {
                addr: Ipv6Addr::UNSPECIFIED,
                len: 0,
            },
            via: None,
            port: None,
            index: 0,
        }
    }
}

/// `[[proxy_ndp]]`: answer neighbour solicitations (RFC 4861 section 7.2.4) on `port` for
/// every address in `prefix` with the port MAC; the IPv6 counterpart of `[[proxy_arp]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyNdpCfg {
    pub port: String,
    pub prefix: Ipv6Cidr,
}

/// `network.ra`: router advertisements for the network's `subnet6` (RFC 4861 section 6).
/// Sent only when the network has `subnet6` and `enabled` is true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaCfg {
    pub enabled: bool,
    /// The M flag: addresses come from DHCPv6 (RFC 4861 section 4.2).
    pub managed: bool,
    /// The O flag: other configuration (DNS and so on) comes from DHCPv6.
    pub other: bool,
    /// MaxRtrAdvInterval, seconds (4 to 1800).
    pub interval_s: u32,
    /// Router Lifetime (AdvDefaultLifetime), seconds: 0 (not a default router) or
    /// `interval_s` to 9000.
    pub lifetime_s: u32,
    /// Recursive DNS servers advertised in an RDNSS option (RFC 8106), at most
    /// [`MAX_RDNSS`].
    pub rdnss: Vec<Ipv6Addr>,
}

impl Default for RaCfg {
    fn default() -> Self {
        RaCfg {
            enabled: true,
            managed: false,
            other: false,
            interval_s: 200,
            lifetime_s: 1800,
            rdnss: Vec::new(),
        }
    }
}

/// Ranges no port, next hop or tenant subnet may use (RFC 4291 section 2.4): what an
/// address in it is, and what the range is.
const SPECIAL: [(Ipv6Cidr, &str, &str); 5] = [
    (
        Ipv6Cidr {
            addr: Ipv6Addr::UNSPECIFIED,
            len: 128,
        },
        "the unspecified address",
        "the unspecified address",
    ),
    (
        Ipv6Cidr {
            addr: Ipv6Addr::LOCALHOST,
            len: 128,
        },
        "the loopback address",
        "the loopback address",
    ),
    (
        // RFC 4291 section 2.5.5.2.
        Ipv6Cidr {
            addr: Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0),
            len: 96,
        },
        "an IPv4-mapped address",
        "the IPv4-mapped addresses",
    ),
    (
        Ipv6Cidr {
            addr: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
            len: 10,
        },
        "a link-local address",
        "the link-local addresses",
    ),
    (
        Ipv6Cidr {
            addr: Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
            len: 8,
        },
        "a multicast address",
        "the multicast addresses",
    ),
];

/// What `ip` is when it is neither global unicast nor unique local (RFC 4193).
fn special(ip: Ipv6Addr) -> Option<&'static str> {
    SPECIAL
        .iter()
        .find(|(range, _, _)| range.contains(ip))
        .map(|(_, what, _)| *what)
}

/// What `ip` is when it is no unicast address (link-local ones are unicast).
fn not_unicast(ip: Ipv6Addr) -> Option<&'static str> {
    special(ip).filter(|_| !ip.is_unicast_link_local())
}

/// The first special range `prefix` overlaps, with what it holds.
fn special_overlap(prefix: &Ipv6Cidr) -> Option<(Ipv6Cidr, &'static str)> {
    SPECIAL
        .iter()
        .find(|(range, _, _)| range.overlaps(prefix))
        .map(|(range, _, what)| (*range, *what))
}

/// A port address the overlap rules compare with: one that passed its own rules.
fn usable(a: &Ipv6Cidr) -> bool {
    (1..=128).contains(&a.len) && special(a.addr).is_none()
}

/// The path of `c.ports[port].addresses6[j]`: IPv6 addresses are written back after the
/// IPv4 ones under `addresses`.
fn address6_path(c: &Config, port: usize, j: usize) -> String {
    format!(
        "port[{port}].addresses[{}]",
        c.ports[port].addresses.len() + j
    )
}

impl Validator<'_> {
    /// The IPv6 entries of `port.addresses`.
    pub(super) fn ports6(&mut self) {
        let c = self.c;
        let mut seen = HashMap::new();
        for (i, p) in c.ports.iter().enumerate() {
            for (j, a) in p.addresses6.iter().enumerate() {
                let path = address6_path(c, i, j);
                if a.len == 0 {
                    self.err(
                        path,
                        format!("{a}: the prefix length of an address must be 1..=128"),
                    );
                    continue;
                }
                if let Some(what) = special(a.addr) {
                    let why = if a.addr.is_unicast_link_local() {
                        "every port has its link-local address already, made from its MAC \
                         (fe80::/64 with the modified EUI-64 of RFC 4291 appendix A): \
                         configure only global or unique-local addresses"
                    } else {
                        "a port address must be global unicast or unique local"
                    };
                    self.err(path, format!("{} is {what}: {why}", a.addr));
                    continue;
                }
                if let Some((k, l)) = first_seen(&mut seen, a.addr, (i, j)) {
                    self.err(
                        path,
                        format!(
                            "duplicate address {} (also {})",
                            a.addr,
                            address6_path(c, k, l)
                        ),
                    );
                    continue;
                }
                for (k, other) in c.ports[..i].iter().enumerate() {
                    for (l, b) in other.addresses6.iter().enumerate() {
                        if usable(b) && a.overlaps(b) {
                            self.err(
                                path.clone(),
                                format!(
                                    "subnet {} overlaps {} ({b}) of port \"{}\": subnets of \
                                     different ports must not overlap",
                                    a.canonical(),
                                    address6_path(c, k, l),
                                    other.name
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    /// The IPv6 elements of `[[route]]`, named by their `[[route]]` index.
    pub(super) fn routes6(&mut self) {
        let c = self.c;
        let mut seen = HashMap::new();
        for (i, r) in c.routes6.iter().enumerate() {
            let index = self.route6_at[i];
            let at = |field: &str| format!("route[{index}].{field}");
            self.canonical6(at("prefix"), &r.prefix);
            let key = (r.table.as_str(), r.prefix.canonical());
            let first = first_seen(&mut seen, key, index);
            let port = self.route_common(index, &r.table, &r.prefix.canonical(), first, &r.port);
            match (r.via, port) {
                (None, None) => self.err(
                    at("port"),
                    "an on-link route needs `port` (or give a next hop in `via`)",
                ),
                (None, Some(_)) => {}
                (Some(via), port) => self.next_hop6(&at("via"), via, port),
            }
        }
    }

    /// An IPv6 next hop: link-local on the given port, or a global address on-link of a
    /// port's IPv6 subnet (the given port's, when there is one).
    fn next_hop6(&mut self, path: &str, via: Ipv6Addr, port: Option<Option<usize>>) {
        if let Some(what) = not_unicast(via) {
            self.err(path, format!("{via} is {what}, not a unicast address"));
            return;
        }
        if via.is_unicast_link_local() {
            if port.is_none() {
                self.err(
                    path,
                    format!(
                        "{via} is link-local: a link-local next hop needs `port` (the link \
                         it is on)"
                    ),
                );
            }
            return;
        }
        if let Some((k, l)) = self.own_address6(via) {
            let message = format!("{via} is our own address ({})", address6_path(self.c, k, l));
            self.err(path, message);
            return;
        }
        match port {
            Some(None) => {}
            Some(Some(p)) => {
                if self.subnet6_on(p, via).is_none() {
                    let message = format!(
                        "{via} is not on-link on port \"{}\" ({}): give an address inside \
                         one of its IPv6 subnets, or a link-local one",
                        self.c.ports[p].name,
                        self.describe_subnets6(p)
                    );
                    self.err(path, message);
                }
            }
            None => match self.onlink_ports6(via).as_slice() {
                [] => self.err(path, format!("{via} is not on-link on any port")),
                [_] => {}
                several => {
                    let names = self.port_names(several);
                    self.err(
                        path,
                        format!("{via} is on-link on several ports ({names}): set `port`"),
                    );
                }
            },
        }
    }

    pub(super) fn proxy_ndp(&mut self) {
        let c = self.c;
        for (i, pn) in c.proxy_ndp.iter().enumerate() {
            let at = |field: &str| format!("proxy_ndp[{i}].{field}");
            if c.port_index(&pn.port).is_none() {
                self.err(at("port"), format!("unknown port \"{}\"", pn.port));
            }
            if pn.prefix.len == 0 {
                self.err(
                    at("prefix"),
                    format!(
                        "{} would answer for every address: give the prefix to proxy",
                        pn.prefix
                    ),
                );
                continue;
            }
            self.canonical6(at("prefix"), &pn.prefix);
            let prefix = pn.prefix.canonical();
            for (k, other) in c.proxy_ndp[..i].iter().enumerate() {
                if other.port == pn.port && other.prefix.len > 0 && prefix.overlaps(&other.prefix) {
                    self.err(
                        at("prefix"),
                        format!(
                            "{prefix} overlaps proxy_ndp[{k}].prefix ({}) on port \"{}\"",
                            other.prefix.canonical(),
                            pn.port
                        ),
                    );
                }
            }
        }
    }

    /// `network.subnet6`, `gateway6` and `ra`.
    pub(super) fn networks6(&mut self) {
        let c = self.c;
        for (i, n) in c.networks.iter().enumerate() {
            let at = |field: &str| format!("network[{i}].{field}");
            self.ra(i, &n.ra);
            let Some(subnet6) = n.subnet6 else {
                if let Some(g) = n.gateway6 {
                    self.err(
                        at("gateway6"),
                        format!("{g} is set but the network has no subnet6"),
                    );
                }
                if n.ra != RaCfg::default() {
                    self.err(
                        at("ra"),
                        "router advertisement settings need subnet6: advertisements are \
                         sent only for a network with an IPv6 subnet",
                    );
                }
                continue;
            };
            self.canonical6(at("subnet6"), &subnet6);
            let subnet = subnet6.canonical();
            if let Some((range, what)) = special_overlap(&subnet) {
                self.err(
                    at("subnet6"),
                    format!(
                        "{subnet} is not a global unicast or unique-local prefix (it overlaps \
                         {range}, {what})"
                    ),
                );
                continue;
            }
            if n.ra.enabled && subnet.len != 64 {
                self.err(
                    at("subnet6"),
                    format!(
                        "{subnet} is a /{}: router advertisements need a /64, as SLAAC forms \
                         addresses from a 64-bit interface identifier (RFC 4862 section \
                         5.5.3, RFC 4291 section 2.5.1); set ra.enabled = false for another \
                         length",
                        subnet.len
                    ),
                );
            }
            self.subnet6_overlaps(i, n, &subnet);
            if let Some(g) = n.gateway6 {
                if g.is_multicast() {
                    self.err(at("gateway6"), format!("{g} is a multicast address"));
                } else if !g.is_unicast_link_local() && !subnet.contains(g) {
                    self.err(
                        at("gateway6"),
                        format!("{g} is neither link-local nor inside subnet6 {subnet}"),
                    );
                }
            }
        }
    }

    /// A network's `subnet6` against the other networks' and the ports' IPv6 subnets. As
    /// for IPv4, a flat network may contain its own port's subnet.
    fn subnet6_overlaps(&mut self, i: usize, n: &NetworkCfg, subnet: &Ipv6Cidr) {
        let c = self.c;
        let path = format!("network[{i}].subnet6");
        for (k, other) in c.networks[..i].iter().enumerate() {
            let Some(o) = other.subnet6.map(|s| s.canonical()) else {
                continue;
            };
            if special_overlap(&o).is_none() && subnet.overlaps(&o) {
                self.err(
                    path.clone(),
                    format!(
                        "{subnet} overlaps network[{k}].subnet6 ({o}) of network \"{}\"",
                        other.name
                    ),
                );
            }
        }
        for (k, p) in c.ports.iter().enumerate() {
            if n.port.as_deref() == Some(p.name.as_str()) {
                continue;
            }
            for (l, a) in p.addresses6.iter().enumerate() {
                if usable(a) && subnet.overlaps(a) {
                    self.err(
                        path.clone(),
                        format!(
                            "{subnet} overlaps {} ({a}) of port \"{}\"",
                            address6_path(c, k, l),
                            p.name
                        ),
                    );
                }
            }
        }
    }

    /// `network.ra`'s values; whether the network has `subnet6` is [`Self::networks6`]'s.
    fn ra(&mut self, i: usize, ra: &RaCfg) {
        let at = |field: &str| format!("network[{i}].ra.{field}");
        let interval_ok = RA_INTERVAL_S.contains(&ra.interval_s);
        if !interval_ok {
            self.err(
                at("interval_s"),
                format!(
                    "{} is outside {}..={} (RFC 4861 section 6.2.1: MaxRtrAdvInterval)",
                    ra.interval_s,
                    RA_INTERVAL_S.start(),
                    RA_INTERVAL_S.end()
                ),
            );
        }
        let min = if interval_ok {
            ra.interval_s
        } else {
            *RA_INTERVAL_S.start()
        };
        if ra.lifetime_s != 0 && !(min..=MAX_RA_LIFETIME_S).contains(&ra.lifetime_s) {
            self.err(
                at("lifetime_s"),
                format!(
                    "{} must be 0 (not a default router) or within {min}..={MAX_RA_LIFETIME_S}, \
                     at least interval_s (RFC 4861 section 6.2.1: AdvDefaultLifetime)",
                    ra.lifetime_s
                ),
            );
        }
        if ra.rdnss.len() > MAX_RDNSS {
            self.err(
                at("rdnss"),
                format!(
                    "{} servers; at most {MAX_RDNSS} are advertised",
                    ra.rdnss.len()
                ),
            );
        }
        for (j, s) in ra.rdnss.iter().enumerate() {
            if let Some(what) = not_unicast(*s) {
                self.err(
                    format!("network[{i}].ra.rdnss[{j}]"),
                    format!("{s} is {what}, not a unicast address"),
                );
            }
        }
    }

    /// `endpoint.ip6`: a host of its network's `subnet6`, unique.
    pub(super) fn endpoints6(&mut self) {
        let c = self.c;
        let mut seen = HashMap::new();
        for (i, e) in c.endpoints.iter().enumerate() {
            let Some(ip6) = e.ip6 else {
                continue;
            };
            // An unknown network is reported with endpoint.network.
            let Some(ni) = c.network_index(&e.network) else {
                continue;
            };
            let path = format!("endpoint[{i}].ip6");
            let n = &c.networks[ni];
            let Some(subnet6) = n.subnet6 else {
                self.err(
                    path,
                    format!("network \"{}\" has no subnet6 for {ip6}", n.name),
                );
                continue;
            };
            let subnet = subnet6.canonical();
            let problem = if !subnet.contains(ip6) {
                format!(
                    "{ip6} is not inside network \"{}\" subnet6 {subnet}",
                    n.name
                )
            } else if n.gateway6 == Some(ip6) {
                format!("{ip6} is the gateway6 of network \"{}\"", n.name)
            } else if subnet.len < 127 && ip6 == subnet.network() {
                format!(
                    "{ip6} is the Subnet-Router anycast address of {subnet} (RFC 4291 \
                     section 2.6.1)"
                )
            } else if let Some(k) = first_seen(&mut seen, ip6, i) {
                format!("duplicate {ip6} (also endpoint[{k}])")
            } else {
                continue;
            };
            self.err(path, problem);
        }
    }

    // ---- shared rules and lookups ----

    fn canonical6(&mut self, path: String, prefix: &Ipv6Cidr) {
        if !prefix.is_canonical() {
            self.err(
                path,
                format!(
                    "{prefix} has host bits set: did you mean {}?",
                    prefix.canonical()
                ),
            );
        }
    }

    /// Which port IPv6 address (port index, index in `addresses6`) is `ip`.
    fn own_address6(&self, ip: Ipv6Addr) -> Option<(usize, usize)> {
        self.c.ports.iter().enumerate().find_map(|(k, p)| {
            p.addresses6
                .iter()
                .position(|a| a.addr == ip)
                .map(|l| (k, l))
        })
    }

    /// The IPv6 subnet of port `p` that `ip` is on.
    fn subnet6_on(&self, p: usize, ip: Ipv6Addr) -> Option<Ipv6Cidr> {
        self.c.ports[p]
            .addresses6
            .iter()
            .find(|a| usable(a) && a.contains(ip))
            .map(Ipv6Cidr::canonical)
    }

    /// Ports with an IPv6 subnet containing `ip`.
    fn onlink_ports6(&self, ip: Ipv6Addr) -> Vec<usize> {
        (0..self.c.ports.len())
            .filter(|p| self.subnet6_on(*p, ip).is_some())
            .collect()
    }

    fn describe_subnets6(&self, p: usize) -> String {
        let addresses = &self.c.ports[p].addresses6;
        if addresses.is_empty() {
            return "it has no IPv6 address".to_string();
        }
        let subnets: Vec<String> = addresses
            .iter()
            .map(|a| a.canonical().to_string())
            .collect();
        format!("its IPv6 subnets: {}", subnets.join(", "))
    }
}
