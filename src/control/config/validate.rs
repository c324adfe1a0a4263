//! Semantic rules: value ranges, names, references between sections, address plans.
//!
//! Every rule runs on every element and pushes its own error; nothing stops at the first
//! mistake. A rule that depends on a broken reference (an unknown port, say) is skipped for
//! that element, since the broken reference is already reported.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use crate::metrics::MAX_FIPS;

use super::{
    Config, ConfigError, Ipv4Cidr, MAIN_TABLE, MAX_BATCH_SIZE, MAX_VNI, MAX_WORKERS, MIN_MTU,
    MacAddr, max_mtu,
};
use crate::io::{FRAME_SIZE, SMALL_FRAME_SIZE};

const MAX_GARP_COUNT: u32 = 10;
const GARP_INTERVAL_MS: RangeInclusive<u64> = 10..=60_000;
const MIN_TOKEN_CHARS: usize = 16;
const MAX_SESSIONS: usize = 100_000_000;
/// `[limits]` ranges. The neighbour map and the hold queues are allocated at start, so their
/// ceilings keep a typo from reserving gigabytes; held packets each keep a 4 KiB UMEM frame.
const NEIGHBORS: RangeInclusive<usize> = 1..=1_048_576;
const UNRESOLVED_NEIGHBORS: RangeInclusive<usize> = 1..=65_536;
const HELD_PER_NEIGHBOR: RangeInclusive<usize> = 1..=1024;
const HELD_PACKETS: RangeInclusive<usize> = 1..=65_536;
/// Hold-queue slots preallocated per worker (`unresolved_neighbors * held_per_neighbor`),
/// 16 bytes each.
const MAX_HOLD_SLOTS: usize = 1 << 20;
const ICMP_ERRORS_PER_SEC: RangeInclusive<u64> = 0..=1_000_000;
const ICMP_ERRORS_BURST: RangeInclusive<u64> = 1..=1_000_000;
/// 4 Mi flows: 160 MiB of table per worker.
const ACL_SESSIONS: RangeInclusive<usize> = 1..=4_194_304;
const REASSEMBLY_DATAGRAMS: RangeInclusive<usize> = 1..=1_048_576;
/// Each held fragment keeps a 4 KiB UMEM frame.
const REASSEMBLY_FRAGMENTS: RangeInclusive<usize> = 1..=65_536;
/// RFC 791 suggests an upper bound of 15 s for reassembly; Linux waits 30 s.
const REASSEMBLY_TIMEOUT_MS: RangeInclusive<u64> = 10..=30_000;
/// Linux IFNAMSIZ (16) less the terminating NUL.
const MAX_IFACE_BYTES: usize = 15;

pub(super) fn validate(config: &Config) -> Vec<ConfigError> {
    let (route4_at, route6_at) = route_indexes(config);
    let mut v = Validator {
        c: config,
        errors: Vec::new(),
        route4_at,
        route6_at,
    };
    v.dataplane();
    v.control();
    v.limits();
    v.ports();
    v.ports6();
    v.routes();
    v.routes6();
    v.proxy_arp();
    v.proxy_ndp();
    v.tunnel();
    v.chassis();
    v.networks();
    v.networks6();
    v.endpoints();
    v.endpoints6();
    v.floating_ips();
    v.snat();
    v.acls();
    v.vrrp();
    v.bgp();
    v.errors
}

pub(super) struct Validator<'a> {
    pub(super) c: &'a Config,
    errors: Vec<ConfigError>,
    /// Index in the TOML `[[route]]` array of `c.routes[i]` and `c.routes6[i]`.
    pub(super) route4_at: Vec<usize>,
    pub(super) route6_at: Vec<usize>,
}

/// Where each route sits in the `[[route]]` array, which holds both families: the `index`
/// the parser recorded. A configuration built in code may leave every `index` at 0; when the
/// indexes do not number the routes 0..n exactly once each, the routes are numbered in the
/// order they are written back (the IPv4 ones, then the IPv6 ones).
fn route_indexes(c: &Config) -> (Vec<usize>, Vec<usize>) {
    let v4: Vec<usize> = c.routes.iter().map(|r| r.index).collect();
    let v6: Vec<usize> = c.routes6.iter().map(|r| r.index).collect();
    let n = v4.len() + v6.len();
    let mut taken = vec![false; n];
    let consistent = v4
        .iter()
        .chain(&v6)
        .all(|&k| k < n && !std::mem::replace(&mut taken[k], true));
    if consistent {
        (v4, v6)
    } else {
        ((0..c.routes.len()).collect(), (c.routes.len()..n).collect())
    }
}

impl<'a> Validator<'a> {
    pub(super) fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(path, message));
    }

    fn dataplane(&mut self) {
        let d = &self.c.dataplane;
        if !(1..=MAX_WORKERS).contains(&d.workers) {
            self.err(
                "dataplane.workers",
                format!("{} is outside 1..={MAX_WORKERS}", d.workers),
            );
        }
        if let Some(cpus) = &d.cpus {
            if cpus.len() != d.workers {
                self.err(
                    "dataplane.cpus",
                    format!(
                        "lists {} CPUs for {} workers: give exactly one CPU per worker",
                        cpus.len(),
                        d.workers
                    ),
                );
            }
            let mut seen = HashMap::new();
            for (i, cpu) in cpus.iter().enumerate() {
                if let Some(k) = first_seen(&mut seen, *cpu, i) {
                    self.err(
                        format!("dataplane.cpus[{i}]"),
                        format!("duplicate CPU {cpu} (also cpus[{k}])"),
                    );
                }
            }
        }
        if d.napi_defer_hard_irqs > 1_000_000 {
            self.err(
                "dataplane.napi_defer_hard_irqs",
                format!("{} is outside 0..=1000000", d.napi_defer_hard_irqs),
            );
        }
        if d.gro_flush_timeout_us > 1_000_000 {
            self.err(
                "dataplane.gro_flush_timeout_us",
                format!(
                    "{} is outside 0..=1000000 (it is microseconds of latency)",
                    d.gro_flush_timeout_us
                ),
            );
        }
        if d.frame_size != FRAME_SIZE && d.frame_size != SMALL_FRAME_SIZE {
            self.err(
                "dataplane.frame_size",
                format!(
                    "{} is not {SMALL_FRAME_SIZE} or {FRAME_SIZE} (AF_XDP frames are a power \
                     of two from 2048 bytes to a page)",
                    d.frame_size
                ),
            );
        }
        if !(1..=MAX_BATCH_SIZE).contains(&d.batch_size) {
            self.err(
                "dataplane.batch_size",
                format!(
                    "{} is outside 1..={MAX_BATCH_SIZE} (a batch holds at most {MAX_BATCH_SIZE} frames)",
                    d.batch_size
                ),
            );
        }
    }

    fn control(&mut self) {
        let ctl = &self.c.control;
        match &ctl.token {
            None if !ctl.listen.ip().is_loopback() => self.err(
                "control.token",
                format!(
                    "required when listen ({}) is not a loopback address: the API can change \
                     the dataplane",
                    ctl.listen
                ),
            ),
            None => {}
            Some(token) => {
                if let Err(message) = check_token(token) {
                    self.err("control.token", message);
                }
            }
        }
        if ctl.garp.count > MAX_GARP_COUNT {
            self.err(
                "control.garp.count",
                format!("{} is outside 0..={MAX_GARP_COUNT}", ctl.garp.count),
            );
        }
        if !GARP_INTERVAL_MS.contains(&ctl.garp.interval_ms) {
            self.err(
                "control.garp.interval_ms",
                format!(
                    "{} is outside {}..={}",
                    ctl.garp.interval_ms,
                    GARP_INTERVAL_MS.start(),
                    GARP_INTERVAL_MS.end()
                ),
            );
        }
    }

    fn limits(&mut self) {
        let l = &self.c.limits;
        self.in_range("limits.neighbors", l.neighbors, &NEIGHBORS);
        if self.in_range(
            "limits.unresolved_neighbors",
            l.unresolved_neighbors,
            &UNRESOLVED_NEIGHBORS,
        ) && l.unresolved_neighbors > l.neighbors
        {
            self.err(
                "limits.unresolved_neighbors",
                format!(
                    "{} is more than limits.neighbors ({}): every unresolved next hop is a \
                     neighbour entry",
                    l.unresolved_neighbors, l.neighbors
                ),
            );
        }
        if self.in_range(
            "limits.held_per_neighbor",
            l.held_per_neighbor,
            &HELD_PER_NEIGHBOR,
        ) && UNRESOLVED_NEIGHBORS.contains(&l.unresolved_neighbors)
            && l.unresolved_neighbors * l.held_per_neighbor > MAX_HOLD_SLOTS
        {
            self.err(
                "limits.held_per_neighbor",
                format!(
                    "{} per next hop times limits.unresolved_neighbors ({}) is {} hold-queue \
                     slots; at most {MAX_HOLD_SLOTS} are allocated per worker",
                    l.held_per_neighbor,
                    l.unresolved_neighbors,
                    l.unresolved_neighbors * l.held_per_neighbor
                ),
            );
        }
        self.in_range("limits.held_packets", l.held_packets, &HELD_PACKETS);
        self.in_range(
            "limits.icmp_errors_per_sec",
            l.icmp_errors_per_sec,
            &ICMP_ERRORS_PER_SEC,
        );
        self.in_range(
            "limits.icmp_errors_burst",
            l.icmp_errors_burst,
            &ICMP_ERRORS_BURST,
        );
        self.in_range("limits.acl_sessions", l.acl_sessions, &ACL_SESSIONS);
        self.in_range(
            "limits.reassembly_datagrams",
            l.reassembly_datagrams,
            &REASSEMBLY_DATAGRAMS,
        );
        self.in_range(
            "limits.reassembly_fragments",
            l.reassembly_fragments,
            &REASSEMBLY_FRAGMENTS,
        );
        self.in_range(
            "limits.reassembly_timeout_ms",
            l.reassembly_timeout_ms,
            &REASSEMBLY_TIMEOUT_MS,
        );
    }

    /// Reports `value` outside `range`; true when it is inside.
    fn in_range<T: PartialOrd + std::fmt::Display>(
        &mut self,
        path: &str,
        value: T,
        range: &RangeInclusive<T>,
    ) -> bool {
        let ok = range.contains(&value);
        if !ok {
            self.err(
                path,
                format!("{value} is outside {}..={}", range.start(), range.end()),
            );
        }
        ok
    }

    fn ports(&mut self) {
        let c = self.c;
        if c.ports.is_empty() {
            self.err("port", "at least one [[port]] is required");
        }
        let mut names = HashMap::new();
        let mut ifaces = HashMap::new();
        let mut addresses = HashMap::new();
        for (i, p) in c.ports.iter().enumerate() {
            let at = |field: &str| format!("port[{i}].{field}");
            if self.name(at("name"), "port", &p.name, &mut names, i) {
                let bad = |ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '-');
                if p.name.contains(bad) {
                    self.err(
                        at("name"),
                        format!("{:?} may only contain A-Z a-z 0-9 _ -", p.name),
                    );
                }
            }
            self.iface(&at("iface"), &p.iface, &mut ifaces, i);
            if let Some(mac) = p.mac {
                self.unicast_mac(at("mac"), mac);
            }
            for (j, a) in p.addresses.iter().enumerate() {
                self.port_address(i, j, a, &mut addresses);
            }
            let max = max_mtu(c.dataplane.frame_size.max(SMALL_FRAME_SIZE));
            if !(MIN_MTU..=max).contains(&p.mtu) {
                self.err(
                    at("mtu"),
                    format!(
                        "{} is outside {MIN_MTU}..={max}: AF_XDP frames are {} bytes \
                         (dataplane.frame_size) and each also holds the receive headroom \
                         and the Ethernet header",
                        p.mtu, c.dataplane.frame_size
                    ),
                );
            }
            match p.route_table.as_deref() {
                Some("") => self.err(at("route_table"), "must not be empty"),
                Some(t)
                    if t != MAIN_TABLE
                        && !c.routes.iter().any(|r| r.table == t)
                        && !c.routes6.iter().any(|r| r.table == t) =>
                {
                    self.err(at("route_table"), format!("table \"{t}\" has no [[route]]"))
                }
                _ => {}
            }
            if let Some(h) = &p.host_address {
                self.host_address(&at("host_address"), h);
            }
            if let Some(ip) = p.arp_source {
                self.unicast_ip(at("arp_source"), ip);
            }
        }
    }

    /// Linux `dev_valid_name()` (net/core/dev.c): not empty, shorter than IFNAMSIZ, not "." or
    /// "..", no '/', ':' or whitespace.
    fn iface(&mut self, path: &str, iface: &'a str, seen: &mut HashMap<&'a str, usize>, i: usize) {
        if iface.is_empty() {
            self.err(path, "must not be empty");
            return;
        }
        if iface.len() > MAX_IFACE_BYTES {
            self.err(
                path,
                format!(
                    "{iface:?} is {} bytes; Linux interface names are at most {MAX_IFACE_BYTES} \
                     (IFNAMSIZ - 1)",
                    iface.len()
                ),
            );
        }
        if iface.contains(|ch: char| ch == '/' || ch == ':' || ch.is_whitespace())
            || iface == "."
            || iface == ".."
        {
            self.err(
                path,
                format!("{iface:?} is not a valid interface name (no '/', ':' or whitespace)"),
            );
        }
        if let Some(k) = first_seen(seen, iface, i) {
            self.err(
                path,
                format!("duplicate interface \"{iface}\" (also port[{k}])"),
            );
        }
    }

    fn port_address(
        &mut self,
        i: usize,
        j: usize,
        a: &Ipv4Cidr,
        seen: &mut HashMap<Ipv4Addr, (usize, usize)>,
    ) {
        let path = format!("port[{i}].addresses[{j}]");
        if !is_unicast(a.addr) {
            self.err(path, format!("{} is not a unicast address", a.addr));
            return;
        }
        if let Some(which) = network_or_broadcast(a, a.addr) {
            self.err(
                path,
                format!("{a} is the {which} address of {}", a.canonical()),
            );
            return;
        }
        if let Some((k, l)) = first_seen(seen, a.addr, (i, j)) {
            self.err(
                path,
                format!("duplicate address {} (also {})", a.addr, address_path(k, l)),
            );
            return;
        }
        for (k, other) in self.c.ports[..i].iter().enumerate() {
            for (l, b) in other.addresses.iter().enumerate() {
                if a.overlaps(b) {
                    self.err(
                        path.clone(),
                        format!(
                            "subnet {} overlaps {} ({b}) of port \"{}\": subnets of different \
                             ports must not overlap",
                            a.canonical(),
                            address_path(k, l),
                            other.name
                        ),
                    );
                }
            }
        }
    }

    /// What IPv4 and IPv6 routes share: the table, the duplicate (`first`, the index of an
    /// earlier route with the same table and prefix), and the port. None: no port given;
    /// Some(None): an unknown port (reported here).
    pub(super) fn route_common(
        &mut self,
        index: usize,
        table: &str,
        prefix: &dyn std::fmt::Display,
        first: Option<usize>,
        port: &Option<String>,
    ) -> Option<Option<usize>> {
        let at = |field: &str| format!("route[{index}].{field}");
        self.route_table(at("table"), table);
        if let Some(k) = first {
            self.err(
                at("prefix"),
                format!("duplicate route {prefix} in table \"{table}\" (also route[{k}])"),
            );
        }
        port.as_deref().map(|name| {
            let index = self.c.port_index(name);
            if index.is_none() {
                self.err(at("port"), format!("unknown port \"{name}\""));
            }
            index
        })
    }

    fn routes(&mut self) {
        let c = self.c;
        let mut seen = HashMap::new();
        for (i, r) in c.routes.iter().enumerate() {
            let index = self.route4_at[i];
            let at = |field: &str| format!("route[{index}].{field}");
            self.canonical(at("prefix"), &r.prefix);
            let key = (r.table.as_str(), r.prefix.canonical());
            let first = first_seen(&mut seen, key, index);
            let port = self.route_common(index, &r.table, &r.prefix.canonical(), first, &r.port);
            match (r.via, port) {
                (None, None) => self.err(
                    at("port"),
                    "an on-link route needs `port` (or give a next hop in `via`)",
                ),
                (None, Some(_)) => {}
                (Some(via), port) => self.next_hop(&at("via"), via, port),
            }
        }
    }

    /// A route's `table`: not empty, and "main" or a table some port looks up.
    pub(super) fn route_table(&mut self, path: String, table: &str) {
        if table.is_empty() {
            self.err(path, "must not be empty");
        } else if table != MAIN_TABLE
            && !self
                .c
                .ports
                .iter()
                .any(|p| p.route_table.as_deref() == Some(table))
        {
            self.err(
                path,
                format!(
                    "table \"{table}\" is not used by any port: set route_table = \"{table}\" on a port"
                ),
            );
        }
    }

    fn next_hop(&mut self, path: &str, via: Ipv4Addr, port: Option<Option<usize>>) {
        if !is_unicast(via) {
            self.err(path, format!("{via} is not a unicast address"));
            return;
        }
        if !self.not_our_own(path, via) {
            return;
        }
        let subnet = match port {
            Some(None) => return,
            Some(Some(p)) => match self.subnet_on(p, via) {
                Some(subnet) => subnet,
                // A port without an address of its own asks for neighbours from arp_source.
                None if self.c.ports[p].arp_source.is_some() => return,
                None => {
                    let message = format!(
                        "{via} is not on-link on port \"{}\" ({}) and the port has no arp_source",
                        self.c.ports[p].name,
                        self.describe_subnets(p)
                    );
                    self.err(path, message);
                    return;
                }
            },
            None => match self.onlink_ports(via).as_slice() {
                [] => {
                    self.err(path, format!("{via} is not on-link on any port"));
                    return;
                }
                [p] => match self.subnet_on(*p, via) {
                    Some(subnet) => subnet,
                    None => return,
                },
                several => {
                    let names = self.port_names(several);
                    self.err(
                        path,
                        format!("{via} is on-link on several ports ({names}): set `port`"),
                    );
                    return;
                }
            },
        };
        if let Some(which) = network_or_broadcast(&subnet, via) {
            self.err(
                path,
                format!("{via} is the {which} address of {}", subnet.canonical()),
            );
        }
    }

    /// A port's `host_address`: a unicast address the kernel owns, so none vgate answers for.
    fn host_address(&mut self, path: &str, h: &Ipv4Cidr) {
        let c = self.c;
        let ip = h.addr;
        self.unicast_ip(path.to_string(), ip);
        if let Some(which) = network_or_broadcast(h, ip) {
            self.err(
                path,
                format!("{ip} is the {which} address of {}", h.canonical()),
            );
        }
        let taken = if self.own_address(ip).is_some() {
            Some("a port address")
        } else if c.floating_ips.iter().any(|f| f.external == ip) {
            Some("a floating IP")
        } else if c.snat.iter().any(|s| s.external == ip) {
            Some("an SNAT address")
        } else if c.networks.iter().any(|n| n.gateway == ip) {
            Some("a network's gateway")
        } else if c.vrrp.iter().any(|g| g.addresses.contains(&ip)) {
            Some("a VRRP virtual IP")
        } else if c.proxy_arp.iter().any(|p| p.prefix.contains(ip)) {
            Some("inside a proxy_arp prefix")
        } else if c
            .ports
            .iter()
            .filter_map(|p| p.host_address.as_ref())
            .filter(|o| o.addr == ip)
            .count()
            > 1
        {
            Some("the host address of another port")
        } else {
            None
        };
        if let Some(what) = taken {
            self.err(
                path,
                format!(
                    "{ip} is {what}: the kernel's address must be one vgate does not answer for"
                ),
            );
        }
    }

    fn proxy_arp(&mut self) {
        let c = self.c;
        let mut seen = HashMap::new();
        for (i, pa) in c.proxy_arp.iter().enumerate() {
            let at = |field: &str| format!("proxy_arp[{i}].{field}");
            if c.port_index(&pa.port).is_none() {
                self.err(at("port"), format!("unknown port \"{}\"", pa.port));
            }
            self.canonical(at("prefix"), &pa.prefix);
            let key = (pa.port.as_str(), pa.prefix.canonical());
            if let Some(k) = first_seen(&mut seen, key, i) {
                self.err(
                    at("prefix"),
                    format!(
                        "duplicate proxy ARP prefix {} on port \"{}\" (also proxy_arp[{k}])",
                        pa.prefix.canonical(),
                        pa.port
                    ),
                );
            }
        }
    }

    fn tunnel(&mut self) {
        let Some(t) = &self.c.tunnel else {
            return;
        };
        if self.own_address(t.local).is_none() {
            self.err(
                "tunnel.local",
                format!("{} is not an address of any port", t.local),
            );
        }
        if t.udp_port == 0 {
            self.err("tunnel.udp_port", "must not be 0");
        }
    }

    fn chassis(&mut self) {
        let c = self.c;
        if !c.chassis.is_empty() && c.tunnel.is_none() {
            self.err(
                "chassis",
                "[[chassis]] needs a [tunnel] section (the Geneve underlay)",
            );
        }
        let mut names = HashMap::new();
        let mut addresses = HashMap::new();
        for (i, ch) in c.chassis.iter().enumerate() {
            let at = |field: &str| format!("chassis[{i}].{field}");
            self.name(at("name"), "chassis", &ch.name, &mut names, i);
            if !self.unicast_ip(at("address"), ch.address) {
                continue;
            }
            if let Some(k) = first_seen(&mut addresses, ch.address, i) {
                self.err(
                    at("address"),
                    format!("duplicate address {} (also chassis[{k}])", ch.address),
                );
            } else {
                self.not_our_own(&at("address"), ch.address);
            }
        }
    }

    fn networks(&mut self) {
        let c = self.c;
        let mut names = HashMap::new();
        let mut vnis = HashMap::new();
        for (i, n) in c.networks.iter().enumerate() {
            let at = |field: &str| format!("network[{i}].{field}");
            self.name(at("name"), "network", &n.name, &mut names, i);
            self.policy_refs(&format!("network[{i}]"), n.acl.as_deref(), n.qos.as_ref());
            match (n.vni, &n.port) {
                (Some(_), Some(_)) => {
                    self.err(format!("network[{i}]"), "set either vni or port, not both")
                }
                (None, None) => self.err(
                    format!("network[{i}]"),
                    "set either vni (a Geneve network) or port (a flat network)",
                ),
                _ => {}
            }
            if let Some(vni) = n.vni {
                if vni > MAX_VNI {
                    self.err(
                        at("vni"),
                        format!(
                            "{vni} does not fit in 24 bits (RFC 8926 section 3.4: at most {MAX_VNI})"
                        ),
                    );
                }
                if let Some(k) = first_seen(&mut vnis, vni, i) {
                    self.err(
                        at("vni"),
                        format!("duplicate vni {vni} (also network[{k}])"),
                    );
                }
                if c.tunnel.is_none() {
                    self.err(at("vni"), "a Geneve network needs a [tunnel] section");
                }
            }
            if let Some(port) = &n.port
                && c.port_index(port).is_none()
            {
                self.err(at("port"), format!("unknown port \"{port}\""));
            }
            self.canonical(at("subnet"), &n.subnet);
            let subnet = n.subnet.canonical();
            if !subnet.contains(n.gateway) {
                self.err(
                    at("gateway"),
                    format!("{} is not inside subnet {subnet}", n.gateway),
                );
            } else if let Some(which) = network_or_broadcast(&subnet, n.gateway) {
                self.err(
                    at("gateway"),
                    format!("{} is the {which} address of {subnet}", n.gateway),
                );
            } else {
                self.unicast_ip(at("gateway"), n.gateway);
            }
            self.unicast_mac(at("gateway_mac"), n.gateway_mac);
            for (k, other) in c.networks[..i].iter().enumerate() {
                if subnet.overlaps(&other.subnet) {
                    self.err(
                        at("subnet"),
                        format!(
                            "{subnet} overlaps network[{k}].subnet ({}) of network \"{}\"",
                            other.subnet.canonical(),
                            other.name
                        ),
                    );
                }
            }
            for (k, p) in c.ports.iter().enumerate() {
                // A flat network may contain its own port's subnet: the port can carry the
                // gateway address itself.
                if n.port.as_deref() == Some(p.name.as_str()) {
                    continue;
                }
                for (l, a) in p.addresses.iter().enumerate() {
                    if subnet.overlaps(a) {
                        self.err(
                            at("subnet"),
                            format!(
                                "{subnet} overlaps {} ({a}) of port \"{}\"",
                                address_path(k, l),
                                p.name
                            ),
                        );
                    }
                }
            }
        }
    }

    fn endpoints(&mut self) {
        let c = self.c;
        let mut seen = HashMap::new();
        for (i, e) in c.endpoints.iter().enumerate() {
            let at = |field: &str| format!("endpoint[{i}].{field}");
            self.unicast_mac(at("mac"), e.mac);
            let Some(ni) = c.network_index(&e.network) else {
                self.err(at("network"), format!("unknown network \"{}\"", e.network));
                continue;
            };
            let n = &c.networks[ni];
            if self.host_in_network(&at("ip"), e.ip, ni)
                && let Some(k) = first_seen(&mut seen, (ni, e.ip), i)
            {
                self.err(
                    at("ip"),
                    format!(
                        "duplicate {} in network \"{}\" (also endpoint[{k}])",
                        e.ip, n.name
                    ),
                );
            }
            if let Some(vni) = n.vni {
                match &e.chassis {
                    None => self.err(
                        at("chassis"),
                        format!(
                            "required: network \"{}\" is a Geneve network (vni {vni})",
                            n.name
                        ),
                    ),
                    Some(ch) if !c.chassis.iter().any(|x| x.name == *ch) => {
                        self.err(at("chassis"), format!("unknown chassis \"{ch}\""))
                    }
                    Some(_) => {}
                }
            } else if let (Some(port), Some(_)) = (&n.port, &e.chassis) {
                self.err(
                    at("chassis"),
                    format!(
                        "network \"{}\" is flat (on port \"{port}\"): remove chassis",
                        n.name
                    ),
                );
            }
        }
    }

    fn floating_ips(&mut self) {
        let c = self.c;
        let mut externals = HashMap::new();
        let mut internals = HashMap::new();
        if c.floating_ips.len() > MAX_FIPS {
            // Each floating IP has its own counter slot, preallocated per worker.
            self.err(
                format!("floating_ip[{MAX_FIPS}]"),
                format!(
                    "{} floating IPs configured; at most {MAX_FIPS} are supported",
                    c.floating_ips.len()
                ),
            );
        }
        for (i, f) in c.floating_ips.iter().enumerate() {
            let at = |field: &str| format!("floating_ip[{i}].{field}");
            self.policy_refs(
                &format!("floating_ip[{i}]"),
                f.acl.as_deref(),
                f.qos.as_ref(),
            );
            self.external_address(&at("external"), f.external, i, &mut externals);
            if let Some(mac) = f.mac {
                self.unicast_mac(at("mac"), mac);
            }
            let Some(ni) = c.network_index(&f.network) else {
                self.err(at("network"), format!("unknown network \"{}\"", f.network));
                continue;
            };
            if self.host_in_network(&at("internal"), f.internal, ni)
                && let Some(k) = first_seen(&mut internals, (ni, f.internal), i)
            {
                self.err(
                    at("internal"),
                    format!(
                        "{} in network \"{}\" already has a floating IP (floating_ip[{k}])",
                        f.internal, f.network
                    ),
                );
            }
        }
    }

    /// A floating IP's external address: unique, not ours, not masqueraded, and on-link of
    /// exactly one port so that ARP for it is answered there.
    fn external_address(
        &mut self,
        path: &str,
        ip: Ipv4Addr,
        i: usize,
        seen: &mut HashMap<Ipv4Addr, usize>,
    ) {
        if let Some(k) = first_seen(seen, ip, i) {
            self.err(path, format!("duplicate {ip} (also floating_ip[{k}])"));
            return;
        }
        if !self.unicast_ip(path, ip) || !self.not_our_own(path, ip) {
            return;
        }
        if let Some(k) = self.c.snat.iter().position(|s| s.external == ip) {
            self.err(path, format!("{ip} is already used by snat[{k}].external"));
            return;
        }
        match self.onlink_ports(ip).as_slice() {
            [] => self.err(
                path,
                format!("{ip} is not on-link on any port: it must be inside a port address subnet"),
            ),
            [p] => {
                if let Some(subnet) = self.subnet_on(*p, ip)
                    && let Some(which) = network_or_broadcast(&subnet, ip)
                {
                    let message = format!(
                        "{ip} is the {which} address of {} on port \"{}\"",
                        subnet.canonical(),
                        self.c.ports[*p].name
                    );
                    self.err(path, message);
                }
            }
            several => {
                let names = self.port_names(several);
                self.err(path, format!("{ip} is on-link on several ports ({names})"));
            }
        }
    }

    fn snat(&mut self) {
        let c = self.c;
        let mut networks = HashMap::new();
        for (i, s) in c.snat.iter().enumerate() {
            let at = |field: &str| format!("snat[{i}].{field}");
            match c.network_index(&s.network) {
                None => self.err(at("network"), format!("unknown network \"{}\"", s.network)),
                Some(ni) => {
                    if let Some(k) = first_seen(&mut networks, ni, i) {
                        self.err(
                            at("network"),
                            format!("network \"{}\" already has a snat (snat[{k}])", s.network),
                        );
                    }
                }
            }
            self.unicast_ip(at("external"), s.external);
            let ports = s.ports;
            let workers = c.dataplane.workers;
            if ports.first == 0 {
                self.err(at("ports"), format!("{ports}: ports start at 1"));
            } else if ports.first > ports.last {
                self.err(
                    at("ports"),
                    format!("{ports}: the first port is greater than the last"),
                );
            } else if (1..=MAX_WORKERS).contains(&workers) && (ports.count() as usize) < workers {
                self.err(
                    at("ports"),
                    format!(
                        "{ports} holds {} ports, fewer than the {workers} workers: each worker \
                         owns a block of the range",
                        ports.count()
                    ),
                );
            }
            if !(1..=MAX_SESSIONS).contains(&s.max_sessions) {
                self.err(
                    at("max_sessions"),
                    format!("{} is outside 1..={MAX_SESSIONS}", s.max_sessions),
                );
            }
            for (field, value) in [
                ("tcp_established_timeout_s", s.tcp_established_timeout_s),
                ("tcp_transitory_timeout_s", s.tcp_transitory_timeout_s),
                ("udp_timeout_s", s.udp_timeout_s),
                ("icmp_timeout_s", s.icmp_timeout_s),
            ] {
                if value == 0 {
                    self.err(at(field), "must be at least 1 second");
                }
            }
        }
    }

    // ---- shared rules and lookups ----

    /// Non-empty and unique; true when the name is usable for further checks. `kind` is also
    /// the section name (`port`, `chassis`, `network`).
    pub(super) fn name(
        &mut self,
        path: String,
        kind: &str,
        name: &'a str,
        seen: &mut HashMap<&'a str, usize>,
        i: usize,
    ) -> bool {
        if name.is_empty() {
            self.err(path, "must not be empty");
            return false;
        }
        if let Some(k) = first_seen(seen, name, i) {
            self.err(
                path,
                format!("duplicate {kind} name \"{name}\" (also {kind}[{k}])"),
            );
            return false;
        }
        true
    }

    pub(super) fn canonical(&mut self, path: String, prefix: &Ipv4Cidr) {
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

    fn unicast_mac(&mut self, path: String, mac: MacAddr) {
        if mac.is_zero() {
            self.err(path, format!("{mac} is all-zero"));
        } else if mac.is_multicast() {
            self.err(
                path,
                format!("{mac} is a multicast address (the low bit of the first octet is set)"),
            );
        }
    }

    /// True when `ip` is a unicast address (an error is pushed otherwise).
    fn unicast_ip(&mut self, path: impl Into<String>, ip: Ipv4Addr) -> bool {
        let ok = is_unicast(ip);
        if !ok {
            self.err(path, format!("{ip} is not a unicast address"));
        }
        ok
    }

    /// A host address inside network `ni`: in the subnet, not the gateway, not the network or
    /// broadcast address. True when it is.
    fn host_in_network(&mut self, path: &str, ip: Ipv4Addr, ni: usize) -> bool {
        let n = &self.c.networks[ni];
        let subnet = n.subnet.canonical();
        let problem = if !subnet.contains(ip) {
            format!("{ip} is not inside network \"{}\" subnet {subnet}", n.name)
        } else if ip == n.gateway {
            format!("{ip} is the gateway of network \"{}\"", n.name)
        } else if let Some(which) = network_or_broadcast(&subnet, ip) {
            format!("{ip} is the {which} address of network \"{}\"", n.name)
        } else {
            return true;
        };
        self.err(path, problem);
        false
    }

    /// True when `ip` is none of the ports' addresses (an error is pushed otherwise).
    fn not_our_own(&mut self, path: &str, ip: Ipv4Addr) -> bool {
        let Some((k, l)) = self.own_address(ip) else {
            return true;
        };
        self.err(
            path,
            format!("{ip} is our own address ({})", address_path(k, l)),
        );
        false
    }

    /// Which port address (port index, address index) is `ip`.
    fn own_address(&self, ip: Ipv4Addr) -> Option<(usize, usize)> {
        self.c.ports.iter().enumerate().find_map(|(k, p)| {
            p.addresses
                .iter()
                .position(|a| a.addr == ip)
                .map(|l| (k, l))
        })
    }

    /// The subnet of port `p` that `ip` is on.
    fn subnet_on(&self, p: usize, ip: Ipv4Addr) -> Option<Ipv4Cidr> {
        self.c.ports[p]
            .addresses
            .iter()
            .find(|a| a.contains(ip))
            .map(Ipv4Cidr::canonical)
    }

    /// Ports with an address subnet containing `ip`.
    fn onlink_ports(&self, ip: Ipv4Addr) -> Vec<usize> {
        (0..self.c.ports.len())
            .filter(|p| self.subnet_on(*p, ip).is_some())
            .collect()
    }

    pub(super) fn port_names(&self, ports: &[usize]) -> String {
        ports
            .iter()
            .map(|p| format!("\"{}\"", self.c.ports[*p].name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn describe_subnets(&self, p: usize) -> String {
        let addresses = &self.c.ports[p].addresses;
        if addresses.is_empty() {
            return "it has no address".to_string();
        }
        let subnets: Vec<String> = addresses
            .iter()
            .map(|a| a.canonical().to_string())
            .collect();
        format!("its subnets: {}", subnets.join(", "))
    }
}

/// Records `key` at `index`; returns the index it was first seen at if it is a repeat.
pub(super) fn first_seen<K: Eq + Hash, I: Copy>(
    seen: &mut HashMap<K, I>,
    key: K,
    index: I,
) -> Option<I> {
    match seen.entry(key) {
        Entry::Occupied(first) => Some(*first.get()),
        Entry::Vacant(slot) => {
            slot.insert(index);
            None
        }
    }
}

fn address_path(port: usize, address: usize) -> String {
    format!("port[{port}].addresses[{address}]")
}

/// "network" or "broadcast" when `ip` is that address of `subnet`
/// (see [`Ipv4Cidr::is_network_or_broadcast`]).
fn network_or_broadcast(subnet: &Ipv4Cidr, ip: Ipv4Addr) -> Option<&'static str> {
    if !subnet.is_network_or_broadcast(ip) {
        None
    } else if ip == subnet.network() {
        Some("network")
    } else {
        Some("broadcast")
    }
}

/// An address a host can own: not "this network" 0/8 nor loopback 127/8 (RFC 1122 section
/// 3.2.1.3), not multicast 224/4 (RFC 5771), not reserved 240/4 or the limited broadcast
/// (RFC 1112 section 4).
pub(super) fn is_unicast(ip: Ipv4Addr) -> bool {
    let first = ip.octets()[0];
    !(first == 0 || first == 127 || first >= 224)
}

/// RFC 6750 section 2.1 `b64token`: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" )
/// *"=" — the only characters a Bearer token may have in an Authorization header.
fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("must not be empty".to_string());
    }
    let chars = token.chars().count();
    if chars < MIN_TOKEN_CHARS {
        return Err(format!(
            "is {chars} characters long, at least {MIN_TOKEN_CHARS} are required"
        ));
    }
    let body = token.trim_end_matches('=');
    let allowed = |ch: char| ch.is_ascii_alphanumeric() || "-._~+/".contains(ch);
    if body.is_empty() || !body.chars().all(allowed) {
        return Err(
            "may only contain letters, digits and - . _ ~ + / (then optional trailing '='), \
             as a Bearer token (RFC 6750 section 2.1)"
                .to_string(),
        );
    }
    Ok(())
}
